"""Comparing the sockets Kamailio should hold with the ones it holds: listener-missing,
listener-unexpected and address-not-bound, naming whichever other process holds a port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight_checks.kamailio_sockets import (
    conflicts,
    covers,
    find_holder,
    read_socket_tables,
    socket_inodes,
)

from preflight.check import Status

if TYPE_CHECKING:
    from preflight_checks.kamailio_config import Socket
    from preflight_checks.kamailio_report import Report
    from preflight_checks.kamailio_sockets import BoundSocket, Instance

    from preflight.host import Host


def report_held_ports(report: Report, expected: list[Socket]) -> None:
    """One listener-missing per expected socket another process holds (Kamailio not running)."""
    tables, _missing = read_socket_tables(report.host)
    for sock in expected:
        holder = port_holder(report.host, sock, tables, set())
        if holder:
            report.add(
                "listener-missing",
                Status.FAIL,
                f"{sock} is held by {holder[1]} (pid {holder[0]}), so Kamailio cannot bind it",
                [
                    f"stop {holder[1]} (pid {holder[0]}) or move it to another port",
                    report.service.start,
                ],
            )


def port_holder(
    host: Host, sock: Socket, tables: list[BoundSocket], ours: set[int]
) -> tuple[int, str] | None:
    """The pid and name of a process other than Kamailio (`ours`: its inodes) holding `sock`."""
    inodes = {b.inode for b in tables if conflicts(b, sock) and b.inode not in ours}
    inodes.discard(0)
    if not inodes:
        return None
    return find_holder(host, inodes, set())


def compare_listeners(
    report: Report,
    instance: Instance,
    expected: list[Socket],
    from_option: set[Socket],
    config_known: bool,
    explicit_listen: bool,
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
    report.details["actual"] = (
        sorted({f"{b.transport}:{_fmt(b.addr)}:{b.port}" for b in ours}) if visible else None
    )
    for sock in expected:
        if any(covers(b, sock, bindv6only) for b in ours):
            continue
        serving_port = any(b.transport == sock.transport and b.port == sock.port for b in ours)
        if not explicit_listen and sock not in from_option and serving_port and sock.addr != "*":
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
        holder = port_holder(host, sock, tables, inodes) if visible else None
        if holder:
            message = (
                f"{sock} is not held by Kamailio (pid {instance.main.pid}): "
                f"{holder[1]} (pid {holder[0]}) holds the port"
            )
            steps = [
                f"stop {holder[1]} (pid {holder[0]}) or move it to another port",
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
            f"Kamailio (pid {instance.main.pid}) listens on {bound.transport}:"
            f"{_fmt(bound.addr)}:{bound.port}, which its configuration does not "
            "resolve to (an older configuration is running?)",
            ["kamailio -c -f " + report.details["config"], report.service.restart],
        )


def _fmt(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr
