"""Which distribution and release the host runs: os-release (read by `distro`), the codename."""

from __future__ import annotations

import os
import re
import shlex
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.host import Host

PATHS = ("etc/os-release", "usr/lib/os-release", "etc/lsb-release")
OS_RELEASE_LIMIT = 64 * 1024
# Keys distro derives from VERSION (they are not in the file): the report keeps the file's keys.
_DERIVED_KEYS = ("codename", "release_codename")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def os_release(host: Host) -> dict[str, str] | None:
    """The os-release fields (upper-case keys as in the file), read by `distro`; None if there is
    no os-release file or it holds no assignment."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        # distro opens the path itself: give it the file Host resolved inside the root, and only
        # a regular one, so a snapshot's absolute symlink or FIFO never reaches it.
        path = host.resolve(rel)
        st = host.stat(rel)
        if path is None or st is None or not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            continue
        values = _read_with_distro(path) if st.st_size <= OS_RELEASE_LIMIT else None
        if values is None:
            # distro gives up on a whole file for one unbalanced quote or a byte that is not
            # UTF-8: the lines that are fine still say what the host is.
            text = host.read_text(rel, OS_RELEASE_LIMIT)
            if text is None:
                continue
            values = parse_os_release(text)
        return values or None
    return None


def _read_with_distro(path: str) -> dict[str, str] | None:
    import distro

    reader = distro.LinuxDistribution(
        include_lsb=False,
        include_uname=False,
        include_oslevel=False,
        os_release_file=path,
        distro_release_file=os.devnull,
    )
    try:
        info = reader.os_release_info()
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    return {
        key.upper(): value
        for key, value in info.items()
        if key not in _DERIVED_KEYS and _SHELL_NAME.fullmatch(key)
    }


def parse_os_release(text: str) -> dict[str, str]:
    """Shell assignments, one a line (os-release, lsb-release, /etc/default files)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        if not _SHELL_NAME.fullmatch(key):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        values[key] = words[0] if words else ""
    return values


def os_codename(host: Host) -> str | None:
    """The release codename: VERSION_CODENAME (or UBUNTU_CODENAME) in os-release, else
    /etc/lsb-release (Ubuntu 12.04 has no codename in os-release), else the name in VERSION
    (Debian 7's "7 (wheezy)")."""
    osr = host.os_release or {}
    for key in ("VERSION_CODENAME", "UBUNTU_CODENAME"):
        if osr.get(key):
            return osr[key]
    lsb = host.read_text("etc/lsb-release", 64 * 1024)
    if lsb:
        codename = parse_os_release(lsb).get("DISTRIB_CODENAME")
        if codename:
            return codename.lower()
    # VERSION="7 (wheezy)" or VERSION="12.04.5 LTS, Precise Pangolin"
    match = re.search(r"\(([A-Za-z]+)\)|, ([A-Za-z]+) ", osr.get("VERSION", ""))
    return (match.group(1) or match.group(2)).lower() if match else None
