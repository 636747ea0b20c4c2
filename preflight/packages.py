"""Installed packages (dpkg status file, or rpm on a live RPM host) and version comparison.

The dpkg status file of a busy host holds thousands of stanzas while a check cares about a few
packages, so stanzas are located with one regular-expression scan and only those are parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.host import Host

DPKG_STATUS = "var/lib/dpkg/status"
# Real status files are 1-30 MiB (a few thousand packages); the bound keeps a corrupt or
# hostile one (a 1 GiB sparse file) to a second or two and ~200 MB of memory.
STATUS_READ_LIMIT = 64 << 20
RPM_DB_DIRS = ("var/lib/rpm", "usr/lib/sysimage/rpm")
RPM_KERNEL_NAMES = ("kernel", "kernel-core", "kernel-default")


@dataclass
class Package:
    name: str
    version: str
    manager: str  # "dpkg" or "rpm"
    arch: str | None = None
    status: str = "install ok installed"
    source: str | None = None
    installed_at: float | None = None  # when the package was installed (epoch seconds)
    fields: dict[str, str] = field(default_factory=dict)


class PackageDB:
    def __init__(self, host: Host) -> None:
        self.host = host

    @cached_property
    def manager(self) -> str | None:
        """ "dpkg", "rpm" or None: which package database this host has."""
        if self.host.is_file(DPKG_STATUS):
            return "dpkg"
        if any(self.host.is_dir(d) for d in RPM_DB_DIRS):
            return "rpm"
        return None

    @cached_property
    def _dpkg_status(self) -> str | None:
        return self.host.read_text(DPKG_STATUS, STATUS_READ_LIMIT)

    def get(self, name: str) -> Package | None:
        """The installed package called `name`, or None."""
        found = self.find(names=[name])
        return found[0] if found else None

    def find(
        self, names: list[str] | tuple[str, ...] = (), prefix: str | None = None
    ) -> list[Package]:
        """Installed packages named in `names` or starting with `prefix`, in database order."""
        if self.manager == "dpkg":
            return self._dpkg_find(names, prefix)
        if self.manager == "rpm":
            return self._rpm_find(names, prefix)
        return []

    def _dpkg_find(self, names: list[str] | tuple[str, ...], prefix: str | None) -> list[Package]:
        text = self._dpkg_status
        if not text:
            return []
        alternatives = [re.escape(n) for n in names]
        if prefix:
            alternatives.append(re.escape(prefix) + r"\S*")
        if not alternatives:
            return []
        # A literal "\nPackage: " lets the regex engine skip ahead with a fast substring search;
        # "^Package: " under re.M is tried at every offset (35 ms instead of 2 ms on 8 MiB).
        pattern = re.compile(r"\nPackage: (" + "|".join(alternatives) + r")[ \t]*$", re.M)
        text = "\n" + text
        packages = []
        for match in pattern.finditer(text):
            start = match.start() + 1
            end = text.find("\n\n", start)
            stanza = parse_stanza(text[start : end if end != -1 else len(text)])
            package = self._dpkg_package(stanza)
            if package is not None:
                packages.append(package)
        return packages

    def _dpkg_package(self, stanza: dict[str, str]) -> Package | None:
        name = stanza.get("Package", "")
        version = stanza.get("Version", "")
        status = stanza.get("Status", "")
        if not name or not version or status.split()[-1:] != ["installed"]:
            return None
        arch = stanza.get("Architecture")
        installed_at = None
        for list_name in (f"{name}:{arch}.list", f"{name}.list"):
            # The .list file is written when dpkg unpacks the package: its mtime is the install
            # time. The kernel image's own mtime is the build date and says nothing about it.
            installed_at = self.host.mtime(f"var/lib/dpkg/info/{list_name}")
            if installed_at is not None:
                break
        source = stanza.get("Source")
        return Package(
            name,
            version,
            "dpkg",
            arch,
            status,
            source.split()[0] if source else None,
            installed_at,
            stanza,
        )

    def _rpm_find(self, names: list[str] | tuple[str, ...], prefix: str | None) -> list[Package]:
        patterns = list(names) + ([prefix + "*"] if prefix else [])
        if not patterns or not self.host.which("rpm"):
            return []
        result = self.host.run(
            [
                "rpm",
                "-q",
                "--qf",
                "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{INSTALLTIME}\\n",
                *(["-a"] + patterns if prefix else patterns),
            ]
        )
        if result is None or result.returncode is None:
            return []
        packages = []
        for line in result.stdout.splitlines():
            fields = line.split("\t")
            if len(fields) != 4:
                continue  # "package X is not installed"
            name, evr, arch, installed = fields
            version = evr[2:] if evr.startswith("0:") else evr
            packages.append(
                Package(
                    name,
                    version,
                    "rpm",
                    arch,
                    installed_at=float(installed) if installed.isdigit() else None,
                )
            )
        return packages

    def kernel_packages(self) -> list[Package]:
        """Installed kernel images: dpkg's linux-image-*, RPM's kernel/kernel-core."""
        if self.manager == "dpkg":
            return self.find(prefix="linux-image-")
        return self.find(names=RPM_KERNEL_NAMES)

    def compare(self, a: str, b: str) -> int:
        """-1, 0 or 1, by this host's package manager's rules (dpkg's unless it is RPM)."""
        return compare_versions(a, b, "rpm" if self.manager == "rpm" else "dpkg")


def compare_versions(a: str, b: str, manager: str = "dpkg") -> int:
    if manager == "rpm":
        from rpm_vercmp import vercmp

        ea, _, va = a.rpartition(":") if ":" in a else ("0", "", a)
        eb, _, vb = b.rpartition(":") if ":" in b else ("0", "", b)
        if ea != eb:
            return (int(ea or 0) > int(eb or 0)) - (int(ea or 0) < int(eb or 0))
        return int(vercmp(va, vb))
    from debian.debian_support import version_compare

    result = version_compare(a, b)
    return (result > 0) - (result < 0)


def parse_stanza(text: str) -> dict[str, str]:
    """One deb822 stanza; continuation lines are joined with newlines."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t"):
            if key is not None:
                fields[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip()
        fields[key] = value.strip()
    return fields
