"""Installed packages (dpkg status file, or rpm on a live RPM host) and version comparison.

The dpkg status file of a busy host holds thousands of stanzas while a check cares about a few
packages, so stanzas are located with a substring search over the raw bytes and only those are
decoded and parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from preflight.facts.shared import shared_fact

if TYPE_CHECKING:
    from preflight.host import Host

DPKG_STATUS = "var/lib/dpkg/status"
# Real status files are 1-30 MiB (a few thousand packages); the bound keeps a corrupt or
# hostile one (a 1 GiB sparse file) to a second or two and ~200 MB of memory.
STATUS_READ_LIMIT = 64 << 20
LIST_READ_LIMIT = 32 << 20  # a package's file list: the kernel image's is ~0.5 MiB
RPM_DB_DIRS = ("var/lib/rpm", "usr/lib/sysimage/rpm")
# A folder adds only itself to a snapshot: enough for "this host uses rpm".
PATHS = (DPKG_STATUS, *RPM_DB_DIRS)


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
    list_file: str | None = None  # dpkg: var/lib/dpkg/info/<name>[:<arch>].list, if present


class PackageDB:
    def __init__(self, host: Host) -> None:
        self.host = host

    @shared_fact
    def manager(self) -> str | None:
        """ "dpkg", "rpm" or None: which package database this host has."""
        if self.host.is_file(DPKG_STATUS):
            return "dpkg"
        if any(self.host.is_dir(d) for d in RPM_DB_DIRS):
            return "rpm"
        return None

    @shared_fact
    def _dpkg_status(self) -> bytes | None:
        # Kept as bytes: decoding a busy host's whole status file (8 MiB for 10,000 packages)
        # costs ~30 ms, searching it ~2 ms; only the stanzas a check asks for are decoded.
        return self.host.read_bytes(DPKG_STATUS, STATUS_READ_LIMIT)

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
        data = self._dpkg_status
        if not data or not (names or prefix):
            return []
        wanted = {name.encode("utf-8") for name in names}
        first_words = list(wanted) + ([prefix.encode("utf-8")] if prefix else [])
        data = b"\n" + data  # every stanza, the first one too, starts after a newline
        starts = set()
        for word in first_words:
            # A plain substring search for "\nPackage: WORD" (memchr-fast), then the whole
            # `Package:` line is checked: an exact name, or the prefix plus non-blanks.
            head = b"\nPackage: " + word
            at = data.find(head)
            while at != -1:
                line_end = data.find(b"\n", at + 1)
                name = data[at + 10 : line_end if line_end != -1 else len(data)].rstrip(b" \t")
                if name in wanted or (
                    prefix and name.startswith(first_words[-1]) and name.split() == [name]
                ):
                    starts.add(at + 1)
                at = data.find(head, at + len(head))
        packages = []
        for start in sorted(starts):  # database order
            end = data.find(b"\n\n", start)
            text = data[start : end if end != -1 else len(data)].decode("utf-8", "replace")
            package = self._dpkg_package(parse_stanza(text))
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
        installed_at = list_file = None
        for list_name in (f"{name}:{arch}.list", f"{name}.list"):
            # The .list file is written when dpkg unpacks the package: its mtime is the install
            # time. The kernel image's own mtime is the build date and says nothing about it.
            installed_at = self.host.mtime(f"var/lib/dpkg/info/{list_name}")
            if installed_at is not None:
                list_file = f"var/lib/dpkg/info/{list_name}"
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
            list_file,
        )

    def _rpm_find(self, names: list[str] | tuple[str, ...], prefix: str | None) -> list[Package]:
        if not self.host.is_live:  # nothing runs under --root: the database is read in place
            from preflight.facts.rpmdb import installed_packages

            found = installed_packages(self.host, RPM_DB_DIRS, names, prefix) or []
            return [
                Package(p.name, p.version, "rpm", p.arch, installed_at=p.installed_at)
                for p in found
            ]
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
                    installed_at=float(installed)
                    if installed.isascii() and installed.isdecimal()  # not "²", which isdigit
                    else None,
                )
            )
        return packages

    def owns(self, package: Package, path: str) -> bool:
        """Whether dpkg's file list of `package` names `path` (absolute, as the host sees it)."""
        if package.list_file is None:
            return False
        listing = self.host.read_bytes(package.list_file, LIST_READ_LIMIT) or b""
        return b"\n" + path.encode() + b"\n" in b"\n" + listing

    def order(self, a: str, b: str, rules: str | None = None) -> int:
        """-1, 0 or 1: `a` against `b` by `rules` ("dpkg" or "rpm"; default: this host's
        package manager's, dpkg's when it has none). Versions read from a damaged host that
        cannot be ordered compare as 0: never newer, never older."""
        try:
            return compare_versions(a, b, rules or ("rpm" if self.manager == "rpm" else "dpkg"))
        except ValueError:
            return 0


def compare_versions(a: str, b: str, manager: str = "dpkg") -> int:
    if manager == "rpm":
        from rpm_vercmp import vercmp

        ea, _, va = a.rpartition(":") if ":" in a else ("0", "", a)
        eb, _, vb = b.rpartition(":") if ":" in b else ("0", "", b)
        if ea != eb:
            return (int(ea or 0) > int(eb or 0)) - (int(ea or 0) < int(eb or 0))
        try:
            return int(vercmp(va, vb))
        except (AttributeError, TypeError, IndexError):  # rpm_vercmp on a string like "0\n0"
            raise ValueError(f"invalid version {a!r} or {b!r}") from None
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
