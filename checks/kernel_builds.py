"""Build strings: which package version a kernel is, read from what the kernel says about itself.

`uname -r` names only the ABI (`3.2.0-4-amd64`); two different builds share it. The build comes
from `/proc/version` (Debian: `Debian 3.2.54-2`), `/proc/version_signature` (Ubuntu), an image's
own version string, or the release itself (RPM: version-release.arch).
"""

from __future__ import annotations

import re

_DEBIAN_BUILD = re.compile(r"\bDebian (\d\S*)")
_UBUNTU_UPLOAD = re.compile(r"#(\d+(?:~[\w.+]+)?)-Ubuntu\b")
RPM_ARCH = re.compile(r"\.(x86_64|aarch64|ppc64le|s390x|i686|armv7hl|noarch)$")


def dpkg_image_release(name: str) -> str | None:
    """The release a dpkg image package provides (linux-image-6.1.0-26-amd64 -> 6.1.0-26-amd64,
    Ubuntu's linux-image-unsigned-<release>, Debian's <release>-unsigned); None for a meta
    package such as linux-image-amd64."""
    rest = name[len("linux-image-") :] if name.startswith("linux-image-") else ""
    rest = rest.removeprefix("unsigned-").removesuffix("-unsigned")
    return rest if rest[:1].isdigit() else None


def running_build(
    release: str | None, uts_version: str | None, signature: str | None
) -> str | None:
    """The package version of the running kernel, from what the kernel says about itself."""
    if signature:
        fields = signature.split()
        if len(fields) >= 2 and fields[0] == "Ubuntu":
            flavour = _flavour(release)
            build = fields[1]
            if flavour and build.endswith("-" + flavour):
                build = build[: -len(flavour) - 1]
            return build
    return build_from_uts(uts_version, release)


def build_from_uts(uts_version: str | None, release: str | None) -> str | None:
    """The build named by a `uname -v` string, else by an RPM release; None when neither says."""
    if uts_version:
        debian = _DEBIAN_BUILD.search(uts_version)
        if debian:
            return debian.group(1)
        ubuntu = _UBUNTU_UPLOAD.search(uts_version)
        if ubuntu and release:
            base = "-".join(release.split("-")[:2])
            return f"{base}.{ubuntu.group(1)}"
    if release and RPM_ARCH.search(release):
        return RPM_ARCH.sub("", release)  # RPM: the release is version-release.arch
    return None


def _flavour(release: str | None) -> str | None:
    parts = (release or "").split("-")
    return "-".join(parts[2:]) or None if len(parts) > 2 else None
