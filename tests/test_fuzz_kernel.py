"""Fuzzing the kernel check's parsers: the image header and payload scan, build strings."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from snapshots_kernel import (
    bzimage,
)
from support.fuzz import (
    FUZZ,
    PROC_VERSIONS,
    VERSION_SIGNATURES,
    mutated,
)

from preflight_checks.kernel import facts as kernel_builds
from preflight_checks.kernel import image as kernel_image

# ------------------------------------------------------------------------------ kernel
IMAGE_VERSION = (
    "6.1.0-26-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 "
    "(2024-09-30)"
)


@FUZZ
@given(st.binary(max_size=0x400), st.integers(0, 0xFFFF), st.binary(max_size=600))
# Found by a non-derandomized run: the pointer 14 points at the pointer itself (0x20E), whose
# bytes (0x0E) were returned as the version string.
@example(head=b"", pointer=14, tail=b"")
def test_kernel_image_header_parser_never_raises(head: bytes, pointer: int, tail: bytes) -> None:
    header_version = kernel_image.header_version
    scan_version = kernel_image.scan_version
    data = bytearray(head.ljust(0x210, b"\0"))
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = pointer.to_bytes(2, "little")
    for blob in (bytes(data) + tail, bytes(head), head + b"Linux version " + tail):
        found = header_version(blob)
        assert found is None or (found.isprintable() and len(found) <= 512)
        scanned = scan_version(blob)
        assert scanned is None or scanned.isprintable()


@FUZZ
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=200))
def test_kernel_image_header_round_trips_printable_versions(version: str) -> None:
    assume(version.strip())
    found = kernel_image.header_version(bzimage(version))
    assert found == version.strip()


@FUZZ
@given(
    st.sampled_from([b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"]),
    st.binary(max_size=2000),
)
def test_kernel_image_scan_survives_truncated_and_corrupt_payloads(
    magic: bytes, rest: bytes
) -> None:
    import gzip

    scan_version = kernel_image.scan_version
    real = gzip.compress(b"\0" * 1000 + b"Linux version " + IMAGE_VERSION.encode() + b"\n\0")
    for blob in (magic + rest, b"MZ" + real[: len(rest) % len(real)], b"MZ" + real + rest):
        assert scan_version(blob) in (None, IMAGE_VERSION)


def test_kernel_image_scan_bounds_memory_on_a_decompression_bomb() -> None:
    """Found by fault injection: 1 MiB of gzip inflated to 1 GiB in one call (2 GB RSS, 8 s)."""
    import gzip
    import lzma
    import time
    import tracemalloc

    scan_version = kernel_image.scan_version
    zeros = b"\0" * (128 << 20)
    bombs = [gzip.compress(zeros, 1), lzma.compress(zeros[: 64 << 20], format=lzma.FORMAT_XZ)]
    del zeros
    for bomb in bombs:
        tracemalloc.start()
        started = time.monotonic()
        assert scan_version(b"MZ" + bomb) is None
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 48 << 20, f"peak {peak >> 20} MiB"
        assert time.monotonic() - started < 3


@FUZZ
@given(
    mutated(PROC_VERSIONS),
    mutated(VERSION_SIGNATURES),
    mutated(["6.1.0-26-amd64", "5.15.0-122-generic", "5.14.0-427.13.1.el9_4.x86_64"]),
)
def test_kernel_build_parsers_never_raise(uts: str, signature: str, release: str) -> None:
    running_build = kernel_builds.running_build
    image_build = kernel_builds.build_from_uts
    dpkg_image_release = kernel_builds.dpkg_image_release
    for build in (
        running_build(release, uts, signature),
        running_build(None, uts, None),
        running_build(release, None, None),
        image_build(uts, release),
        image_build(uts, None),
    ):
        assert build is None or (isinstance(build, str) and build)
    for name in (f"linux-image-{release}", f"linux-image-unsigned-{release}", release):
        found = dpkg_image_release(name)
        assert found is None or found in name


@pytest.mark.parametrize(
    ("release", "uts", "signature", "build"),
    [
        ("3.2.0-4-amd64", "#1 SMP Debian 3.2.54-2", None, "3.2.54-2"),
        (
            "6.1.0-26-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)",
            None,
            "6.1.112-1",
        ),
        (
            "5.15.0-122-generic",
            "#132-Ubuntu SMP Thu Aug 29 13:45:52 UTC 2024",
            None,
            "5.15.0-122.132",
        ),
        ("5.15.0-122-generic", "#132-Ubuntu SMP", VERSION_SIGNATURES[0], "5.15.0-122.132"),
    ],
)
def test_kernel_build_of_real_version_strings(
    release: str, uts: str, signature: str | None, build: str
) -> None:
    assert kernel_builds.running_build(release, uts, signature) == build
