"""The host fact layer: what the checks know about a host, computed once per run and shared.

`Host` (preflight/host.py) is the one door to the host: it resolves, reads, stats, globs and runs,
and nothing else. Each module here derives one kind of fact from what Host reads, and `HostFacts`
(which `Host` inherits) caches each fact on first use, for every check thread at once:

| fact | module | attribute |
|---|---|---|
| os-release (read by `distro`), codename | distribution | `os_release`, `os_codename` |
| running kernel: release, `uname -v`, cmdline, modules, boot time | kernel | `kernel_release` |
| virtualization, container, provider, service manager, hostname | platform | `container` |
| installed packages (dpkg, rpm) and version order | packages | `packages` |
| processes (psutil live, ROOT/proc under --root) | processes | `processes` |
| listening TCP / bound UDP sockets and their owners | sockets | `sockets` |
| users and groups by number | users | `users` |
| this process's capabilities | capabilities | `capabilities` |

Unknown is None, never a guess. psutil and distro are imported only when their fact is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from preflight.facts import distribution, kernel, packages, platform, users
from preflight.facts.distribution import parse_os_release
from preflight.facts.kernel import uts_version_of
from preflight.facts.platform import DMI_FIELDS
from preflight.facts.shared import shared_fact

if TYPE_CHECKING:
    from preflight.facts.capabilities import Capabilities
    from preflight.facts.packages import PackageDB
    from preflight.facts.processes import ProcessTable
    from preflight.facts.sockets import SocketTable
    from preflight.facts.users import Accounts
    from preflight.host import Host

__all__ = ["DMI_FIELDS", "FACT_PATHS", "HostFacts", "parse_os_release", "uts_version_of"]

# Every file the facts below read. `preflight collect` always copies them, so a snapshot gives the
# same `host` object (and `preflight facts`) as the host; checks need not declare them again.
FACT_PATHS = (
    *distribution.PATHS,
    *platform.PATHS,
    *kernel.PATHS,
    *packages.PATHS,
    *users.PATHS,
)


class HostFacts:
    """The shared facts of one host; `Host` inherits them (checks ask `ctx.host.kernel_release`)."""

    @property
    def _host(self) -> Host:
        return cast("Host", self)

    @shared_fact
    def os_release(self) -> dict[str, str] | None:
        return distribution.os_release(self._host)

    @shared_fact
    def os_codename(self) -> str | None:
        return distribution.os_codename(self._host)

    @shared_fact
    def proc_version(self) -> str | None:
        """The kernel banner in proc/version: release, compiler, `uname -v`."""
        return self._host.read_line("proc/version")

    @shared_fact
    def kernel_release(self) -> str | None:
        return kernel.kernel_release(self._host)

    @shared_fact
    def kernel_version(self) -> str | None:
        return kernel.kernel_version(self._host)

    @shared_fact
    def kernel_cmdline(self) -> str | None:
        return kernel.kernel_cmdline(self._host)

    @shared_fact
    def boot_image(self) -> str | None:
        return kernel.boot_image(self._host)

    @shared_fact
    def modules_dir(self) -> bool | None:
        return kernel.modules_dir(self._host)

    @shared_fact
    def loaded_modules(self) -> frozenset[str] | None:
        return kernel.loaded_modules(self._host)

    @shared_fact
    def boot_time(self) -> float | None:
        return kernel.boot_time(self._host)

    @shared_fact
    def dmi(self) -> dict[str, str | None]:
        return platform.dmi(self._host)

    @shared_fact
    def virtualization(self) -> str | None:
        return platform.virtualization(self._host)

    @shared_fact
    def container(self) -> str | None:
        return platform.container(self._host)

    @shared_fact
    def provider(self) -> str | None:
        return platform.provider(self._host)

    @shared_fact
    def service_manager(self) -> str | None:
        return platform.service_manager(self._host)

    @shared_fact
    def hostname(self) -> str | None:
        return platform.hostname(self._host)

    @shared_fact
    def packages(self) -> PackageDB:
        return packages.PackageDB(self._host)

    @shared_fact
    def users(self) -> Accounts:
        """uid/gid -> name from the root's passwd and group files."""
        return users.Accounts(self._host)

    @shared_fact
    def processes(self) -> ProcessTable:
        """Every process: psutil on the live host, ROOT/proc under --root."""
        from preflight.facts.processes import ProcessTable  # psutil only when asked for

        return ProcessTable(self._host)

    @shared_fact
    def sockets(self) -> SocketTable:
        """Listening TCP and bound UDP sockets, with their owners on request."""
        from preflight.facts.sockets import SocketTable

        return SocketTable(self._host)

    @shared_fact
    def capabilities(self) -> Capabilities:
        """This process's capability sets (meaningful on the live host only)."""
        from preflight.facts.capabilities import own_capabilities

        return own_capabilities(self._host)

    def summary(self) -> dict[str, Any]:
        """The report's `host` object (contract section 4)."""
        osr = self.os_release
        return {
            "hostname": self.hostname,
            "root": self._host.root,
            "os": None
            if osr is None
            else {
                "id": osr.get("ID"),
                "version": osr.get("VERSION_ID"),
                "codename": self.os_codename,
                "pretty_name": osr.get("PRETTY_NAME"),
            },
            "kernel": {"release": self.kernel_release, "version": self.kernel_version},
            "virtualization": self.virtualization,
            "container": self.container,
            "provider": self.provider,
        }
