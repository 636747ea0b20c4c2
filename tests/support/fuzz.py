"""Shared by the fuzz tests: example budgets, real samples, mutation strategies."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from snapshots_kernel import DEBIAN7_PROC_VERSION, UBUNTU_PROC_VERSION, bookworm_proc_version

from support.cli import IN_CI

# CI replays a fixed set of examples, so a landing never depends on the dice; developers'
# runs explore new ones and bring the failures they find back as fixes.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=25)

# Real samples the mutations start from (copied from real hosts).
PROC_VERSIONS = [
    DEBIAN7_PROC_VERSION,
    bookworm_proc_version("6.1.0-26"),
    UBUNTU_PROC_VERSION,
    # Ubuntu 22.04's 5.15.0-122, the kernel VERSION_SIGNATURES[0] belongs to.
    "Linux version 5.15.0-122-generic (buildd@lcy02-amd64-106) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04)"
    " 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #132-Ubuntu SMP Thu Aug 29 13:45:52 UTC 2024",
    # This Firecracker microVM's own.
    "Linux version 6.18.44-fc-v595 (root@buildkitsandbox) (gcc (GCC) 11.4.1) #1 SMP "
    "PREEMPT_DYNAMIC @0",
]
VERSION_SIGNATURES = [
    "Ubuntu 5.15.0-122.132-generic 5.15.163",
    "Ubuntu 4.4.0-210.242-generic 4.4.302",
]
DPKG_STANZA = """Package: linux-image-6.1.0-26-amd64
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 398289
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Source: linux-signed-amd64 (6.1.112+1)
Version: 6.1.112-1
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Description: Linux 6.1 for 64-bit PCs (signed)
 The Linux kernel 6.1 and modules for use on PCs with AMD64, Intel 64 or
 VIA Nano processors.
"""


def mutated(samples: list[str]) -> st.SearchStrategy[str]:
    """A real sample, a random string, or a sample with random text spliced in or cut."""
    sample = st.sampled_from(samples)
    splice = st.tuples(sample, st.integers(0, 400), st.integers(0, 400), st.text(max_size=40)).map(
        lambda t: t[0][: t[1]] + t[3] + t[0][t[2] :]
    )
    return st.one_of(sample, splice, st.text(max_size=300))


def raw_bytes(samples: list[str]) -> st.SearchStrategy[bytes]:
    """Bytes for a file: a mutated sample (possibly with invalid UTF-8) or random bytes."""
    return st.one_of(
        mutated(samples).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.tuples(mutated(samples), st.binary(max_size=20)).map(
            lambda t: t[0].encode("utf-8", "surrogatepass") + t[1] + b"\xff\xfe\n"
        ),
        st.binary(max_size=400),
    )
