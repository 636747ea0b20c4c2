"""Kamailio processes and the sockets they hold (the host's process and socket tables are
engine facts: preflight.facts.processes and preflight.facts.sockets).

What Kamailio should be doing: which running instance and config to judge, what
`kamailio -c` resolves that config to, and so which sockets it should hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.check import Status
from preflight.facts.sockets import IPV4_ANY, IPV6_ANY, BoundSocket

# The host's socket tables are an engine fact now; these names stay importable from here.
from preflight.facts.sockets import SOCKET_TABLE_LIMIT as SOCKET_TABLE_LIMIT
from preflight.facts.sockets import holders as holders
from preflight.facts.sockets import read_socket_tables as read_socket_tables
from preflight.facts.sockets import socket_inodes as socket_inodes
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


PROC_NAME = "kamailio"
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


@dataclass
class Process:
    pid: int
    ppid: int
    comm: str
    started: float | None  # epoch seconds
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


def list_processes(host: Host) -> list[Process]:
    """Every process of the host, from the run's shared process table (preflight.facts)."""
    return [Process(p.pid, p.ppid, p.name, p.start_time) for p in host.processes]


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
    """When the process started (epoch seconds)."""
    return proc.started


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
