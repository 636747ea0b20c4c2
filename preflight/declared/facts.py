"""Host facts the assertion kinds share: read once per run, whatever the number of assertions and
of declared checks (one socket-table read serves every `port` assertion).

Everything is read through `Host` (ROOT/proc included), so users, groups, mounts and modules work
under `--root`. Sockets and processes come from the host's fact layer (`host.sockets`,
`host.processes`: read once per run); socket owners are found by reading the fd links of the
processes a port assertion names first, all processes' only when those do not hold it.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight.host import shared_fact

if TYPE_CHECKING:
    from preflight.facts.sockets import BoundSocket
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
class Mount:
    device: str
    path: str
    fstype: str
    options: tuple[str, ...]


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

    # An owner's name comes from the engine's account fact, as for every other check (one
    # reading of passwd/group ids, the same as getpwuid's).
    def user_name(self, uid: int) -> str | None:
        return self.host.users.user_name(uid)

    def group_name(self, gid: int) -> str | None:
        return self.host.users.group_name(gid)

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

    def owners(self, sockets: list[BoundSocket], wanted: str) -> list[str | None]:
        """The process name holding each socket (None: not seen), from the host's fact layer.
        The fd folders of processes named `wanted` are read first; every process's only when
        those do not hold them all."""
        inodes = {s.inode for s in sockets}
        table = self.host.sockets
        processes = list(self.host.processes)
        named = [p for p in processes if is_named(p.name, wanted)]
        found = table.holders(inodes, named)
        if len(found) < len(inodes):
            found = table.holders(inodes, processes)
        return [found[s.inode].name if s.inode in found else None for s in sockets]


def is_named(comm: str, name: str) -> bool:
    """comm is the name cut to 15 characters: "rtpengine-recording" runs as "rtpengine-recor"."""
    return comm == name or (len(comm) == 15 and name.startswith(comm))


_SHARED: weakref.WeakKeyDictionary[Host, DeclaredFacts] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def facts_of(host: Host) -> DeclaredFacts:
    """The one DeclaredFacts of `host`, whichever declared check's thread asks first."""
    with _SHARED_LOCK:
        found = _SHARED.get(host)
        if found is None:
            found = _SHARED[host] = DeclaredFacts(host)
        return found
