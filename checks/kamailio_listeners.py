"""Comparing the sockets Kamailio should hold with the ones it holds: listener-missing,
listener-unexpected and address-not-bound, naming whichever other process holds a port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight_checks.kamailio_config import Socket
from preflight_checks.kamailio_sockets import (
    conflicts,
    covers,
    holders,
    read_socket_tables,
    socket_inodes,
)

from preflight.check import Status

if TYPE_CHECKING:
    from preflight_checks.kamailio_report import Report
    from preflight_checks.kamailio_sockets import BoundSocket, Instance, Process

    from preflight.host import Host


def report_held_ports(report: Report, expected: list[Socket], processes: list[Process]) -> None:
    """One listener-missing per expected socket another process holds (Kamailio not running)."""
    tables, _missing = read_socket_tables(report.host)
    for sock, holder in port_holders(report.host, expected, tables, set(), processes).items():
        report.add(
            "listener-missing",
            Status.FAIL,
            f"{sock} is held by {holder.comm} (pid {holder.pid}), so Kamailio cannot bind it",
            [
                f"stop {holder.comm} (pid {holder.pid}) or move it to another port",
                report.service.start,
            ],
        )


def port_holders(
    host: Host,
    socks: list[Socket],
    tables: list[BoundSocket],
    ours: set[int],
    processes: list[Process],
) -> dict[Socket, Process]:
    """The process other than Kamailio (`ours`: its inodes) holding each of `socks`, in the
    order of `socks`; /proc is walked once for all of them."""
    wanted = {
        sock: {b.inode for b in tables if conflicts(b, sock) and b.inode not in ours} - {0}
        for sock in socks
    }
    held_by = holders(host, set().union(*wanted.values()), processes)
    order = {proc.pid: index for index, proc in enumerate(processes)}
    found: dict[Socket, Process] = {}
    for sock, inodes in wanted.items():
        candidates = [held_by[i] for i in inodes if i in held_by]
        if candidates:
            # The first in /proc order holding any of them, as a walk over /proc finds it.
            found[sock] = min(candidates, key=lambda p: order[p.pid])
    return found


def compare_listeners(
    report: Report,
    instance: Instance,
    expected: list[Socket],
    from_option: set[Socket],
    config_known: bool,
    explicit_listen: bool,
    processes: list[Process],
) -> None:
    host = report.host
    tables, missing_tables = read_socket_tables(host)
    if len(missing_tables) == 4:
        report.notes.append(
            "no socket tables (ROOT/proc/net/{tcp,tcp6,udp,udp6}): listeners not compared"
        )
        return
    if missing_tables:
        report.notes.append("missing socket tables: " + ", ".join(missing_tables))
    bindv6only = host.read_line("proc/sys/net/ipv6/bindv6only") == "1"
    inodes: set[int] = set()
    visible = True
    for pid in instance.pids:
        held = socket_inodes(host, pid)
        if held is None:
            visible = False
        else:
            inodes |= held
    ours = [b for b in tables if b.inode in inodes] if visible else tables
    if not visible:
        report.add(
            "owners-unknown",
            Status.WARN,
            "the socket owners of Kamailio's processes cannot be read (not root?): "
            "sockets were matched by address only, unexpected ones not reported",
            ["run preflight as root"],
        )
    report.details["actual"] = sorted({_fmt(b) for b in ours}) if visible else None
    unserved = [s for s in expected if not any(covers(b, s, bindv6only) for b in ours)]
    not_bound = [
        s
        for s in unserved
        if not explicit_listen
        and s not in from_option
        and s.addr != "*"
        and any(b.transport == s.transport and b.port == s.port for b in ours)
    ]
    missing = [s for s in unserved if s not in not_bound]
    holder_of: dict[Socket, Process] = {}
    if visible:
        pids = set(instance.pids)
        others = [p for p in processes if p.pid not in pids]
        holder_of = port_holders(host, missing, tables, inodes, others)
    for sock in unserved:
        if sock in not_bound:
            report.add(
                "address-not-bound",
                Status.WARN,
                f"{sock} is not served: the address appeared after Kamailio (pid "
                f"{instance.main.pid}) started and the config has no listen=, so it "
                "binds only the addresses present at start",
                [
                    report.service.restart,
                    "or list the addresses with listen= in the config",
                ],
            )
            continue
        holder = holder_of.get(sock)
        if holder:
            message = (
                f"{sock} is not held by Kamailio (pid {instance.main.pid}): "
                f"{holder.comm} (pid {holder.pid}) holds the port"
            )
            steps = [
                f"stop {holder.comm} (pid {holder.pid}) or move it to another port",
                report.service.restart,
            ]
        else:
            message = f"Kamailio (pid {instance.main.pid}) does not listen on {sock}"
            steps = [report.service.restart, *report.service.status]
        report.add("listener-missing", Status.FAIL, message, steps)
    if not (visible and config_known):
        return
    reported: set[tuple[str, str, int]] = set()
    for bound in ours:
        key = (bound.transport, bound.addr, bound.port)
        if key in reported or any(covers(bound, s, bindv6only) for s in expected):
            continue
        reported.add(key)
        report.add(
            "listener-unexpected",
            Status.WARN,
            f"Kamailio (pid {instance.main.pid}) listens on {_fmt(bound)}, which its "
            "configuration does not "
            "resolve to (an older configuration is running?)",
            ["kamailio -c -f " + report.details["config"], report.service.restart],
        )


def _fmt(bound: BoundSocket) -> str:
    """`udp:[::1]:5060`: a bound socket written as Socket writes a configured one."""
    return str(Socket(bound.transport, bound.addr, bound.port))
