"""Kamailio processes and the sockets they hold, read from ROOT/proc.

The socket tables are read once and filtered by state with one regular expression per table, and
only the file descriptors of Kamailio's own processes are mapped to socket inodes, so a host with
tens of thousands of connections costs a few milliseconds, not a walk over every process.

What Kamailio should be doing: which running instance and config to judge, what
`kamailio -c` resolves that config to, and so which sockets it should hold.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.check import Status
from preflight_checks.kamailio.config import (
    DEFAULT_CONFIG,
    CheckOutput,
    ParsedConfig,
    Socket,
    normalize_path,
    parse_check_output,
    parse_socket,
)

if TYPE_CHECKING:
    from preflight.host import Host
    from preflight_checks.kamailio.findings import Report


# --- from kamailio_sockets.py
SOCKET_TABLE_LIMIT = 256 << 20  # /proc/net/tcp of a busy host is megabytes; never cut it short
PROC_NAME = "kamailio"
IPV4_ANY = "0.0.0.0"  # noqa: S104 - an address read from the tables, nothing is bound here
IPV6_ANY = "::"
# getopt letters of kamailio 5.x that take an argument: `-f FILE`, `-fFILE`.
_ARG_LETTERS = set("fmMblLnNWwtugPGQOaAxXY")
_LONG_WITH_ARG = {
    "alias",
    "atexit",
    "debug",
    "loadmodule",
    "log-engine",
    "modparam",
    "server-id",
    "subst",
    "substdef",
    "substdefs",
}
# TCP LISTEN (0A) rows, and UDP rows not connected to a peer (CLOSE, 07): bound sockets.
_TCP_LISTEN = re.compile(
    rb"^\s*\d+: ([0-9A-F]+):([0-9A-F]{4}) [0-9A-F]+:0000 0A (?:\S+\s+){5}(\d+)", re.M
)
_UDP_BOUND = re.compile(
    rb"^\s*\d+: ([0-9A-F]+):([0-9A-F]{4}) [0-9A-F]+:0000 07 (?:\S+\s+){5}(\d+)", re.M
)


@dataclass
class Process:
    pid: int
    ppid: int
    comm: str
    starttime_ticks: int | None
    argv: list[str] = field(default_factory=list)


def parse_argv(argv: list[str]) -> dict[str, list[str]]:
    """Kamailio's options by letter (or long name): {"f": [...], "A": [...], "D": [""]}."""
    options: dict[str, list[str]] = {}
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            if name in _LONG_WITH_ARG and not eq and i < len(argv):
                value = argv[i]
                i += 1
            options.setdefault(name, []).append(value)
            continue
        if not arg.startswith("-") or len(arg) < 2:
            continue
        j = 1
        while j < len(arg):
            letter = arg[j]
            if letter in _ARG_LETTERS:
                value = arg[j + 1 :]
                if not value and i < len(argv):
                    value = argv[i]
                    i += 1
                options.setdefault(letter, []).append(value)
                break
            options.setdefault(letter, []).append("")
            j += 1
    return options


def read_process(host: Host, pid: int) -> Process | None:
    stat = host.read_text(f"proc/{pid}/stat", limit=4096)
    if not stat:
        return None
    open_paren, close_paren = stat.find("("), stat.rfind(")")
    if open_paren < 0 or close_paren < 0:
        return None
    comm = stat[open_paren + 1 : close_paren]
    fields = stat[close_paren + 2 :].split()
    try:
        ppid = int(fields[1])
        starttime: int | None = int(fields[19])
    except (IndexError, ValueError):
        return None
    return Process(pid, ppid, comm, starttime)


def list_processes(host: Host) -> list[Process]:
    """Every process of ROOT/proc, by its stat file (comm and parent); cheap enough per run."""
    processes = []
    for name in host.listdir("proc"):
        if name.isdecimal():
            proc = read_process(host, int(name))
            if proc is not None:
                processes.append(proc)
    return processes


@dataclass
class Instance:
    main: Process
    members: list[Process]  # the main process and every descendant
    options: dict[str, list[str]]  # the main process's command line, parsed once (parse_argv)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.members]

    @property
    def config(self) -> str | None:
        """The -f argument as given; None: the default config."""
        values = self.options.get("f")
        return values[-1] if values else None

    @property
    def config_rel(self) -> str:
        """The config it runs, root-relative."""
        return normalize_path(self.config) if self.config else DEFAULT_CONFIG


def find_instances(host: Host, processes: list[Process]) -> list[Instance]:
    """Kamailio trees: a main process (its parent is not Kamailio) and its descendants."""
    by_pid = {p.pid: p for p in processes}
    children: dict[int, list[Process]] = {}
    for proc in processes:
        children.setdefault(proc.ppid, []).append(proc)
    instances = []
    for proc in processes:
        if proc.comm != PROC_NAME:
            continue
        parent = by_pid.get(proc.ppid)
        if parent is not None and parent.comm == PROC_NAME:
            continue
        cmdline = host.read_bytes(f"proc/{proc.pid}/cmdline", limit=64 * 1024) or b""
        proc.argv = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
        members = [proc]
        queue = [proc.pid]
        while queue:
            for child in children.get(queue.pop(), []):
                if child not in members:
                    members.append(child)
                    queue.append(child.pid)
        instances.append(Instance(proc, members, parse_argv(proc.argv)))
    return sorted(instances, key=lambda inst: inst.main.pid)


def start_time(host: Host, proc: Process) -> float | None:
    """When the process started (epoch seconds): starttime ticks after boot plus btime."""
    boot = host.boot_time
    if boot is None or proc.starttime_ticks is None:
        return None
    return boot + proc.starttime_ticks / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ socket tables
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


def holders(host: Host, inodes: set[int], processes: list[Process]) -> dict[int, Process]:
    """Which of `processes` holds each of `inodes` (the first in `processes` order), reading
    each process's fd folder once; inodes nobody there holds are left out."""
    found: dict[int, Process] = {}
    if not inodes:
        return found
    for proc in processes:
        for inode in (socket_inodes(host, proc.pid) or set()) & inodes:
            found.setdefault(inode, proc)
        if len(found) == len(inodes):
            break
    return found


def covers(bound: BoundSocket, want: Socket, bindv6only: bool) -> bool:
    """Does a bound socket serve `want`? A wildcard bind covers every address of its family;
    `::` covers IPv4 too unless bindv6only (IPV6_V6ONLY is not visible in the tables)."""
    if bound.transport != want.transport or bound.port != want.port:
        return False
    if want.addr == "*" or bound.addr == want.addr:
        return True
    want_v6 = ":" in want.addr
    if bound.addr == IPV4_ANY:
        return not want_v6
    if bound.addr == IPV6_ANY:
        return want_v6 or not bindv6only
    return False


def conflicts(bound: BoundSocket, want: Socket) -> bool:
    """Would `bound` keep Kamailio from binding `want` (same port, overlapping address)?"""
    if bound.transport != want.transport or bound.port != want.port:
        return False
    return (
        want.addr in ("*", IPV4_ANY, IPV6_ANY)
        or bound.addr in (IPV4_ANY, IPV6_ANY)
        or bound.addr == want.addr
    )


# --- from kamailio_expected.py
def expected_from_option(report: Report, raw: list[Any]) -> list[Socket]:
    """The sockets of `[checks.kamailio] expect`; option-invalid for each malformed entry."""
    sockets = []
    for entry in raw:
        sock = parse_socket(str(entry))
        if sock is None:
            report.add(
                "option-invalid",
                Status.ERROR,
                f"[checks.kamailio] expect: {str(entry)!r} is not proto:addr:port",
                ['write entries such as "udp:0.0.0.0:5060" or "tcp:[::]:8080"'],
            )
        elif sock not in sockets:
            sockets.append(sock)
    return sockets


def choose_instance(
    report: Report, instances: list[Instance], option: str | None
) -> tuple[Instance | None, str, str]:
    """The instance to judge, its config (root-relative) and where the config came from."""
    wanted = normalize_path(option) if option else None
    if len(instances) > 1:
        report.details["instances"] = [
            {"pid": i.main.pid, "config": report.host.display(i.config_rel)} for i in instances
        ]
    if wanted is not None:
        match = next((i for i in instances if i.config_rel == wanted), None)
        return match, wanted, "option"
    if instances:
        chosen = next((i for i in instances if i.config_rel == DEFAULT_CONFIG), instances[0])
        return chosen, chosen.config_rel, "running process"
    return None, DEFAULT_CONFIG, "default"


def run_kamailio_c(
    report: Report,
    binary: str | None,
    config: str,
    argv_options: dict[str, list[str]],
    timeout: float,
) -> CheckOutput | None:
    """`kamailio -c -f CONFIG` on a live host; None where it cannot run (then: best effort)."""
    host = report.host
    if not host.is_live or binary is None:
        return None
    argv = [binary, "-c", "-f", config]
    # The running instance's own preprocessor defines and paths shape what it resolves.
    for letter in ("A", "L", "l"):
        for value in argv_options.get(letter, []):
            argv += [f"-{letter}", value]
    for letter in ("T", "S"):
        if letter in argv_options:
            argv.append(f"-{letter}")
    for name in ("subst", "substdef", "substdefs", "loadmodule"):
        argv += [f"--{name}={value}" for value in argv_options.get(name, [])]
    result = host.run(argv, timeout=max(1.0, timeout / 2))
    if result is None:
        return None
    if result.returncode is None:
        why = "timed out" if result.timed_out else (result.error or "could not start")
        report.notes.append(f"`kamailio -c` {why}; the configuration was read best effort")
        return None
    return parse_check_output(result.returncode, result.stdout, result.stderr)


def expected_from_config(
    report: Report, parsed: ParsedConfig | None, check_out: CheckOutput | None
) -> list[Socket] | None:
    """The configured sockets: `kamailio -c`'s, else the best-effort reading's; None: unknown."""
    if check_out is not None:
        if not check_out.ok:
            report.notes.append(
                "kamailio -c failed: the configured sockets are unknown; only `expect` is compared"
            )
            return None
        sockets = [s for s in check_out.sockets if s.proto != "sctp"]
    elif parsed is not None:
        sockets = [s for s in parsed.expected_sockets() if s.proto != "sctp"]
        unresolved = [u for e in parsed.listens for u in e.unresolved]
        if unresolved:
            report.details["unresolved"] = unresolved
            report.notes.append(
                "listen= names that need a lookup or an interface are not compared under --root"
            )
    else:
        return None
    return sockets
