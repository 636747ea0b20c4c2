"""The running kernel as the host shows it: release, `uname -v`, command line, modules, boot time.

What a kernel *package* is belongs to the kernel check (preflight_checks/kernel), not here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.host import Host

PATHS = (
    "proc/sys/kernel/osrelease",
    "proc/sys/kernel/version",
    "proc/version",
    "proc/cmdline",
    "proc/modules",
    "proc/stat",
)


# `uname -v` inside a kernel banner: "#1 SMP Debian 6.1.112-1 (...)", "#101-Ubuntu SMP ...".
_UNAME_V = re.compile(r"\s(#\d\S*(?:\s.*)?)$")
_BANNER_RELEASE = re.compile(r"^Linux version (\S+)")


def uts_version_of(banner: str | None) -> str | None:
    """The `uname -v` part of a banner as in /proc/version or a kernel image's version string."""
    match = _UNAME_V.search(" " + (banner or ""))
    return match.group(1).strip() if match else None


def _valid_release(release: str | None) -> str | None:
    # uname's release field holds at most 64 printable characters without blanks; anything else
    # (a NUL-filled or garbled file) is not a release, and checks build paths from it.
    if release is None or len(release) > 64 or not release.isprintable() or " " in release:
        return None
    return release


def kernel_release(host: Host) -> str | None:
    """`uname -r`: proc/sys/kernel/osrelease, else the release named by proc/version."""
    direct = _valid_release(host.read_line("proc/sys/kernel/osrelease"))
    if direct:
        return direct
    match = _BANNER_RELEASE.match(host.proc_version or "")
    return _valid_release(match.group(1)) if match else None


def kernel_version(host: Host) -> str | None:
    """`uname -v`: proc/sys/kernel/version, else the tail of proc/version from `#N`."""
    return host.read_line("proc/sys/kernel/version") or uts_version_of(host.proc_version)


def boot_time(host: Host) -> float | None:
    text = host.read_text("proc/stat", 256 * 1024)
    if text is None:
        return None
    match = re.search(r"^btime\s+(\d+)\s*$", text, re.M)
    return float(match.group(1)) if match else None


def kernel_cmdline(host: Host) -> str | None:
    return host.read_line("proc/cmdline")


def boot_image(host: Host) -> str | None:
    """`BOOT_IMAGE=` on the kernel command line: the image a boot loader inside the machine
    chose; None when there is none (a hypervisor or provider loaded the kernel, or no cmdline)."""
    for word in (host.kernel_cmdline or "").split():
        if word.startswith("BOOT_IMAGE="):
            return word.split("=", 1)[1] or None
    return None


def modules_dir(host: Host) -> bool | None:
    """Whether lib/modules/<running release> exists; None when the release is unknown."""
    release = host.kernel_release
    return None if release is None else host.is_dir(f"lib/modules/{release}")


def loaded_modules(host: Host) -> frozenset[str] | None:
    """Names in proc/modules; None when the kernel has no module support (no proc/modules)."""
    text = host.read_text("proc/modules", 4 << 20)
    if text is None:
        return None
    return frozenset(line.split(None, 1)[0] for line in text.splitlines() if line.strip())
