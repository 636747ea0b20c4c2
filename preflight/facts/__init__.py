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
| processes (ROOT/proc, live and under --root alike) | processes | `processes` |
| listening TCP / bound UDP sockets and their owners | sockets | `sockets` |
| users and groups: by number, accounts by name | users | `users` |
| this process's capabilities | capabilities | `capabilities` |

Unknown is None, never a guess. Each module is imported when one of its facts is first asked for
(distro with it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from preflight.facts.shared import compute_once, shared_fact

if TYPE_CHECKING:
    from preflight.facts.capabilities import Capabilities
    from preflight.facts.packages import PackageDB
    from preflight.facts.processes import ProcessTable
    from preflight.facts.sockets import SocketTable
    from preflight.facts.users import Accounts
    from preflight.host import Host

__all__ = ["DMI_FIELDS", "FACT_PATHS", "HostFacts", "parse_os_release", "uts_version_of"]

# The fact modules whose files `preflight collect` always copies (each module's PATHS), so a
# snapshot gives the same `host` object (and `preflight facts`) as the host.
_PATH_MODULES = ("distribution", "platform", "kernel", "packages", "users")
# Names kept importable from here; each module is imported when first asked for (PEP 562), so
# a run loads only the facts it uses.
_REEXPORTS = {
    "parse_os_release": "distribution",
    "uts_version_of": "kernel",
    "DMI_FIELDS": "platform",
}


def __getattr__(name: str) -> Any:
    if name == "FACT_PATHS":
        return tuple(path for module in _PATH_MODULES for path in _module(module).PATHS)
    if name in _REEXPORTS:
        return getattr(_module(_REEXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _module(name: str) -> Any:
    return importlib.import_module(f"preflight.facts.{name}")


T = TypeVar("T")


class HostFacts:
    """The shared facts of one host; `Host` inherits them (checks ask `ctx.host.kernel_release`)."""

    @property
    def _host(self) -> Host:
        return cast("Host", self)

    @shared_fact
    def os_release(self) -> dict[str, str] | None:
        from preflight.facts.distribution import os_release

        return os_release(self._host)

    @shared_fact
    def os_codename(self) -> str | None:
        from preflight.facts.distribution import os_codename

        return os_codename(self._host)

    @shared_fact
    def proc_version(self) -> str | None:
        """The kernel banner in proc/version: release, compiler, `uname -v`."""
        return self._host.read_line("proc/version")

    @shared_fact
    def kernel_release(self) -> str | None:
        from preflight.facts.kernel import kernel_release

        return kernel_release(self._host)

    @shared_fact
    def kernel_version(self) -> str | None:
        from preflight.facts.kernel import kernel_version

        return kernel_version(self._host)

    @shared_fact
    def kernel_cmdline(self) -> str | None:
        from preflight.facts.kernel import kernel_cmdline

        return kernel_cmdline(self._host)

    @shared_fact
    def boot_image(self) -> str | None:
        from preflight.facts.kernel import boot_image

        return boot_image(self._host)

    @shared_fact
    def modules_dir(self) -> bool | None:
        from preflight.facts.kernel import modules_dir

        return modules_dir(self._host)

    @shared_fact
    def loaded_modules(self) -> frozenset[str] | None:
        from preflight.facts.kernel import loaded_modules

        return loaded_modules(self._host)

    @shared_fact
    def boot_time(self) -> float | None:
        from preflight.facts.kernel import boot_time

        return boot_time(self._host)

    @shared_fact
    def dmi(self) -> dict[str, str | None]:
        from preflight.facts.platform import dmi

        return dmi(self._host)

    @shared_fact
    def virtualization(self) -> str | None:
        from preflight.facts.platform import virtualization

        return virtualization(self._host)

    @shared_fact
    def container(self) -> str | None:
        from preflight.facts.platform import container

        return container(self._host)

    @shared_fact
    def dmi_vendor(self) -> str | None:
        """Who made the (virtual) machine by its DMI names: a provider or a hypervisor."""
        from preflight.facts.platform import dmi_vendor

        return dmi_vendor(self._host)

    @shared_fact
    def provider(self) -> str | None:
        from preflight.facts.platform import provider

        return provider(self._host)

    @shared_fact
    def service_manager(self) -> str | None:
        from preflight.facts.platform import service_manager

        return service_manager(self._host)

    @shared_fact
    def hostname(self) -> str | None:
        from preflight.facts.platform import hostname

        return hostname(self._host)

    @shared_fact
    def packages(self) -> PackageDB:
        from preflight.facts.packages import PackageDB

        return PackageDB(self._host)

    @shared_fact
    def users(self) -> Accounts:
        """uid/gid -> name from the root's passwd and group files."""
        from preflight.facts.users import Accounts

        return Accounts(self._host)

    @shared_fact
    def processes(self) -> ProcessTable:
        """Every process, from ROOT/proc; a process's details read when first asked for."""
        from preflight.facts.processes import ProcessTable

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

    def check_fact(self, key: str, compute: Callable[[Host], T]) -> T:
        """A fact only one check asks for (its `facts.py` computes it), computed once per run
        and shared like the facts above: `key` names it, `<check id>/<fact>` (a finding code
        is written `<check id>.<reason>`)."""
        return compute_once(self, f"check-fact:{key}", lambda: compute(self._host))

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
