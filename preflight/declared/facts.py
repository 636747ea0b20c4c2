"""Host facts the assertion kinds share: read once per run, whatever the number of assertions and
of declared checks (one socket-table read serves every `port` assertion).

Files are read through `Host`, so users, groups, mounts and modules work under `--root`. Sockets
and processes are read only on the live host (their kinds skip under `--root`), through psutil.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight.host import shared_fact

if TYPE_CHECKING:
    from preflight.host import Host

ACCOUNT_FILE_LIMIT = 16 << 20  # /etc/passwd of a big LDAP-synced host is a few MiB
MOUNTS_LIMIT = 16 << 20


@dataclass(frozen=True)
class Account:
    name: str
    id: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Listener:
    proto: str  # tcp | udp
    address: str
    port: int
    pid: int | None


@dataclass(frozen=True)
class Mount:
    device: str
    path: str
    fstype: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    argv: str  # the command line, arguments joined by blanks


def _unescape_mount(field: str) -> str:
    # /proc/mounts writes blanks, tabs, newlines and backslashes in paths as octal escapes.
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


class DeclaredFacts:
    """What assertions ask of one host, each computed on first use and shared."""

    def __init__(self, host: Host) -> None:
        self.host = host

    @shared_fact
    def accounts(self) -> dict[str, Account] | None:
        text = self.host.read_text("etc/passwd", ACCOUNT_FILE_LIMIT)
        if text is None:
            return None
        accounts: dict[str, Account] = {}
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) != 7 or not fields[2].isdecimal() or not fields[3].isdecimal():
                continue
            accounts.setdefault(
                fields[0], Account(fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6])
            )
        return accounts

    @shared_fact
    def groups(self) -> dict[str, Group] | None:
        text = self.host.read_text("etc/group", ACCOUNT_FILE_LIMIT)
        if text is None:
            return None
        groups: dict[str, Group] = {}
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) != 4 or not fields[2].isdecimal():
                continue
            members = tuple(m for m in fields[3].split(",") if m)
            groups.setdefault(fields[0], Group(fields[0], int(fields[2]), members))
        return groups

    def user_name(self, uid: int) -> str | None:
        return next((a.name for a in (self.accounts or {}).values() if a.id == uid), None)

    def group_name(self, gid: int) -> str | None:
        return next((g.name for g in (self.groups or {}).values() if g.gid == gid), None)

    @shared_fact
    def mounts(self) -> list[Mount] | None:
        text = self.host.read_text("proc/self/mounts", MOUNTS_LIMIT) or self.host.read_text(
            "proc/mounts", MOUNTS_LIMIT
        )
        if text is None:
            return None
        mounts = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 4:
                mounts.append(
                    Mount(
                        _unescape_mount(fields[0]),
                        _unescape_mount(fields[1]),
                        fields[2],
                        tuple(fields[3].split(",")),
                    )
                )
        return mounts

    @shared_fact
    def builtin_modules(self) -> frozenset[str] | None:
        """Modules compiled into the running kernel (lib/modules/<release>/modules.builtin)."""
        release = self.host.kernel_release
        if release is None:
            return None
        text = self.host.read_text(f"lib/modules/{release}/modules.builtin", 4 << 20)
        if text is None:
            return None
        names = set()
        for line in text.splitlines():
            base = line.strip().rsplit("/", 1)[-1]
            if base.endswith(".ko"):
                names.add(base[:-3].replace("-", "_"))
        return frozenset(names)

    @shared_fact
    def listeners(self) -> list[Listener]:
        """Listening TCP and bound, unconnected UDP sockets of the live host: one read of the
        socket tables for every port assertion of the run."""
        import psutil

        found = []
        for conn in psutil.net_connections(kind="inet"):
            if not conn.laddr:
                continue
            if conn.type == 1:  # SOCK_STREAM
                if conn.status != psutil.CONN_LISTEN:
                    continue
                proto = "tcp"
            else:
                if conn.raddr:
                    continue
                proto = "udp"
            address = conn.laddr.ip
            if address.startswith("::ffff:") and "." in address:
                address = address[7:]
            found.append(Listener(proto, address, conn.laddr.port, conn.pid))
        return found

    def process_name(self, pid: int | None) -> str | None:
        if pid is None:
            return None
        return next((p.name for p in self.processes if p.pid == pid), None)

    @shared_fact
    def processes(self) -> list[ProcessInfo]:
        """Every process of the live host: its name (comm) and command line."""
        import psutil

        found = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            info = proc.info
            argv = info.get("cmdline") or []
            found.append(ProcessInfo(proc.pid, info.get("name") or "", " ".join(argv)))
        return found


_SHARED: weakref.WeakKeyDictionary[Host, DeclaredFacts] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def facts_of(host: Host) -> DeclaredFacts:
    """The one DeclaredFacts of `host`, whichever declared check's thread asks first."""
    with _SHARED_LOCK:
        found = _SHARED.get(host)
        if found is None:
            found = _SHARED[host] = DeclaredFacts(host)
        return found
