"""Host facts the assertion kinds share: read once per run, whatever the number of assertions and
of declared checks (one socket-table read serves every `port` assertion).

Everything is read through `Host` (ROOT/proc included), so users, groups, mounts and modules work
under `--root`; the kinds that read sockets and processes skip there all the same, since a
snapshot's process table is not the host's now. Socket owners are found by reading the fd links
of the processes a port assertion names first, all processes' only when those do not hold it.
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
SOCKET_TABLE_LIMIT = 256 << 20  # /proc/net/tcp of a busy host is megabytes: never cut short
CMDLINE_LIMIT = 64 * 1024


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
    inode: int


@dataclass(frozen=True)
class Mount:
    device: str
    path: str
    fstype: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str  # comm: at most 15 characters
    argv: str  # the command line, arguments joined by blanks

    def is_named(self, name: str) -> bool:
        """comm is the name cut to 15 characters: "rtpengine-recording" runs as
        "rtpengine-recor"."""
        return self.name == name or (len(self.name) == 15 and name.startswith(self.name))


def _unescape_mount(field: str) -> str:
    # /proc/mounts writes blanks, tabs, newlines and backslashes in paths as octal escapes.
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


class DeclaredFacts:
    """What assertions ask of one host, each computed on first use and shared."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._fd_cache: dict[int, frozenset[int]] = {}

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
        """Listening TCP and bound, unconnected UDP sockets: one read of the socket tables for
        every port assertion of the check."""
        found: list[Listener] = []
        for table, proto, state in (
            ("tcp", "tcp", b"0A"),
            ("tcp6", "tcp", b"0A"),
            ("udp", "udp", b"07"),
            ("udp6", "udp", b"07"),
        ):
            data = self.host.read_bytes(f"proc/net/{table}", SOCKET_TABLE_LIMIT) or b""
            # Bound rows have no peer (port 0000) and the state after it: a substring test skips
            # the thousands of connected rows of a busy host before any split.
            marker = b":0000 " + state + b" "
            for line in data.split(b"\n"):
                if marker not in line:
                    continue
                fields = line.split()
                if len(fields) < 10 or fields[3] != state or not fields[9].isdigit():
                    continue
                local, _, port = fields[1].partition(b":")
                address = _hex_address(local)
                if address is not None and len(port) == 4:
                    found.append(Listener(proto, address, int(port, 16), int(fields[9])))
        return found

    @shared_fact
    def processes(self) -> list[ProcessInfo]:
        """Every process in ROOT/proc: its name (comm) and command line."""
        found = []
        for entry in self.host.listdir("proc"):
            if not entry.isdecimal():
                continue
            comm = self.host.read_line(f"proc/{entry}/comm")
            if comm is None:
                continue  # gone meanwhile
            raw = self.host.read_bytes(f"proc/{entry}/cmdline", CMDLINE_LIMIT) or b""
            argv = " ".join(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
            found.append(ProcessInfo(int(entry), comm, argv))
        return found

    def socket_inodes(self, pid: int) -> frozenset[int]:
        """Inodes of the sockets process `pid` holds (empty when its fds cannot be read)."""
        cached = self._fd_cache.get(pid)
        if cached is None:
            inodes = set()
            folder = f"proc/{pid}/fd"
            for fd in self.host.listdir(folder):
                target = self.host.readlink(f"{folder}/{fd}") or ""
                if target.startswith("socket:[") and target.endswith("]"):
                    number = target[8:-1]
                    if number.isdecimal():
                        inodes.add(int(number))
            cached = self._fd_cache[pid] = frozenset(inodes)
        return cached

    def owners(self, sockets: list[Listener], wanted: str) -> list[str | None]:
        """The process name holding each socket (None: not seen). Processes named `wanted` are
        looked at first; every process's fds only when they do not hold one of them."""
        inodes = {s.inode for s in sockets}
        held: set[int] = set()
        for proc in self.processes:
            if proc.is_named(wanted):
                held |= self.socket_inodes(proc.pid) & inodes
        if held == inodes:
            return [wanted] * len(sockets)
        names: dict[int, str] = {}
        for proc in self.processes:
            for inode in self.socket_inodes(proc.pid) & inodes:
                names.setdefault(inode, proc.name)
        return [names.get(s.inode) for s in sockets]


def _hex_address(text: bytes) -> str | None:
    """An address of /proc/net/{tcp,udp}[6]: IPv4 as one little-endian word, IPv6 as four."""
    import ipaddress

    try:
        raw = bytes.fromhex(text.decode("ascii"))
        if len(raw) == 4:
            return str(ipaddress.IPv4Address(raw[::-1]))
        if len(raw) == 16:
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            address = ipaddress.IPv6Address(words)
            return str(address.ipv4_mapped or address)
    except ValueError:
        pass
    return None


_SHARED: weakref.WeakKeyDictionary[Host, DeclaredFacts] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def facts_of(host: Host) -> DeclaredFacts:
    """The one DeclaredFacts of `host`, whichever declared check's thread asks first."""
    with _SHARED_LOCK:
        found = _SHARED.get(host)
        if found is None:
            found = _SHARED[host] = DeclaredFacts(host)
        return found
