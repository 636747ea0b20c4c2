"""Listening TCP and bound UDP sockets of the host, and which processes hold them.

The socket tables (ROOT/proc/net/tcp, tcp6, udp, udp6) are read once per run and filtered by state
with one regular expression per table, and only the file descriptors of the processes a check
asks about are mapped to socket inodes, so a host with tens of thousands of connections costs a few
milliseconds, not a walk over every process. The same reader serves the live host and a snapshot
(--root): psutil.net_connections() would need root to name owners and cannot read a snapshot.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from preflight.host import Host

SOCKET_TABLE_LIMIT = 256 << 20  # /proc/net/tcp of a busy host is megabytes; never cut it short
IPV4_ANY = "0.0.0.0"  # noqa: S104 - an address read from the tables, nothing is bound here
IPV6_ANY = "::"
# TCP LISTEN (0A) rows, and UDP rows not connected to a peer (CLOSE, 07): bound sockets.
_TCP_LISTEN = re.compile(
    rb"^\s*\d+: ([0-9A-F]+):([0-9A-F]{4}) [0-9A-F]+:0000 0A (?:\S+\s+){5}(\d+)", re.M
)
_UDP_BOUND = re.compile(
    rb"^\s*\d+: ([0-9A-F]+):([0-9A-F]{4}) [0-9A-F]+:0000 07 (?:\S+\s+){5}(\d+)", re.M
)


class HasPid(Protocol):
    @property
    def pid(self) -> int: ...


P = TypeVar("P", bound=HasPid)


@dataclass(frozen=True)
class BoundSocket:
    transport: str  # udp | tcp
    addr: str
    port: int
    inode: int


def _hex_address(text: bytes) -> str:
    raw = bytes.fromhex(text.decode())
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # IPv6: four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


# Every row the patterns above match has a peer port of 0 followed by the state, which no
# connected row has: a substring search skips the thousands of ESTABLISHED rows of a busy host
# (2 ms instead of 35 ms for 20,000 rows) and the pattern then checks the few candidates.
_MARKER = {"tcp": b":0000 0A ", "udp": b":0000 07 "}


def _bound_rows(
    pattern: re.Pattern[bytes], data: bytes, marker: bytes
) -> Iterator[re.Match[bytes]]:
    at = data.find(marker)
    while at != -1:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        if end == -1:
            end = len(data)
        match = pattern.match(data, start, end)
        if match is not None:
            yield match
        at = data.find(marker, end)


def read_socket_tables(host: Host) -> tuple[list[BoundSocket], list[str]]:
    """TCP listening and UDP bound sockets of every table present; and the tables missing."""
    sockets: list[BoundSocket] = []
    missing: list[str] = []
    for table, pattern, transport in (
        ("tcp", _TCP_LISTEN, "tcp"),
        ("tcp6", _TCP_LISTEN, "tcp"),
        ("udp", _UDP_BOUND, "udp"),
        ("udp6", _UDP_BOUND, "udp"),
    ):
        data = host.read_bytes(f"proc/net/{table}", limit=SOCKET_TABLE_LIMIT)
        if data is None:
            missing.append(f"/proc/net/{table}")
            continue
        for match in _bound_rows(pattern, data, _MARKER[transport]):
            try:
                addr = _hex_address(match.group(1))
            except ValueError:
                continue
            sockets.append(
                BoundSocket(transport, addr, int(match.group(2), 16), int(match.group(3)))
            )
    return sockets, missing


def socket_inodes(host: Host, pid: int) -> set[int] | None:
    """Inodes of the sockets a process holds; None when its fd folder cannot be read."""
    folder = f"proc/{pid}/fd"
    names = host.listdir(folder)
    # An empty listing is also what a missing or forbidden folder gives (not root: another
    # user's fd folder): those say nothing about the sockets, an empty folder does.
    if not names and (not host.is_dir(folder) or host.is_readable(folder) is False):
        return None
    inodes = set()
    for name in names:
        target = host.readlink(f"{folder}/{name}") or ""
        # A snapshot's fd links are whatever was copied: only well-formed ones count.
        if target.startswith("socket:[") and target.endswith("]") and target[8:-1].isdecimal():
            inodes.add(int(target[8:-1]))
    return inodes


def holders(host: Host, inodes: set[int], processes: Iterable[P]) -> dict[int, P]:
    """Which of `processes` holds each of `inodes` (the first in `processes` order), reading
    each process's fd folder once; inodes nobody there holds are left out."""
    found: dict[int, P] = {}
    if not inodes:
        return found
    for proc in processes:
        for inode in (socket_inodes(host, proc.pid) or set()) & inodes:
            found.setdefault(inode, proc)
        if len(found) == len(inodes):
            break
    return found


class SocketTable:
    """The host's bound sockets (read once per run, shared by every check) and their owners."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.bound, self.missing = read_socket_tables(host)

    def on_port(self, transport: str, port: int) -> list[BoundSocket]:
        return [s for s in self.bound if s.transport == transport and s.port == port]

    def inodes_of(self, pid: int) -> set[int] | None:
        """Inodes of the sockets process `pid` holds; None when its fd folder is unreadable."""
        return socket_inodes(self.host, pid)

    def holders(self, inodes: set[int], processes: Iterable[P]) -> dict[int, P]:
        """Which of `processes` holds each of `inodes` (see `holders`)."""
        return holders(self.host, inodes, processes)
