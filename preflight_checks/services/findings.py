"""What the `services` check says: one finding per service that runs replaced code, worded for
how that service runs, with the restart that renews exactly those processes.

Every host string (unit, script, user and file names, command lines) is data: it is printed
through `printable` by the reporters, and a command is only suggested for a name that
`plausible_name` accepts, quoted with `shell_arg`. A command line is only offered back as a
command for a process of the user preflight runs as: another user's argv is shown, never
suggested for root to run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from preflight.check import Finding, Status
from preflight.text import plausible_name, shell_arg, shell_join

if TYPE_CHECKING:
    from preflight_checks.services.facts import Service, StaleFile

MAX_NAMED_FILES = 4
MAX_NAMED_PIDS = 8


def file_phrase(files: list[StaleFile], packages: dict[str, dict[str, object]]) -> str:
    """'the deleted libssl.so.3 (libssl3, replaced 2026-11-30T23:59:00Z) and 2 more'."""
    named = []
    for stale in files[:MAX_NAMED_FILES]:
        name = os.path.basename(stale.path)
        what = f"binary {name}" if stale.is_executable else name
        about = packages.get(stale.path, {})
        notes = []
        if about.get("package"):
            notes.append(str(about["package"]))
        if about.get("replaced_at"):
            notes.append(f"replaced {about['replaced_at']}")
        suffix = f" ({', '.join(notes)})" if notes else ""
        named.append(f"{stale.state} {what}{suffix}")
    more = len(files) - len(named)
    text = ", ".join(named)
    return text + (f" and {more} more" if more > 0 else "")


def pid_phrase(service: Service) -> str:
    pids = sorted(p.pid for p in service.processes)
    shown = ", ".join(str(pid) for pid in pids[:MAX_NAMED_PIDS])
    more = len(pids) - MAX_NAMED_PIDS
    word = "pid" if len(pids) == 1 else "pids"
    return f"{word} {shown}" + (f" and {more} more" if more > 0 else "")


def restart_needed(
    service: Service,
    packages: dict[str, dict[str, object]],
    status: Status,
    own_uid: int,
) -> Finding:
    files = file_phrase(service.files, packages)
    main = service.main
    if service.kind == "systemd":
        what = f"systemd unit {service.name}"
        steps = _command_or_text(
            ["systemctl", "restart", service.name], f"restart the unit {service.name}"
        )
    elif service.kind == "init":
        what = f"init script /etc/init.d/{service.name}"
        if service.pidfile:
            what += f" (pid file /{service.pidfile})"
        steps = _command_or_text(
            ["service", service.name, "restart"], f"restart /etc/init.d/{service.name}"
        )
    elif service.kind == "container":
        runtime, _, ident = service.name.partition(":")
        what = f"{runtime} container {ident}"
        steps = container_restart(runtime, ident)
    else:
        return hand_started(service, files, status, own_uid)
    message = f"{what}: {pid_phrase(service)} ({main.comm}) {_still_run(service)} the {files}"
    return Finding("services.restart-needed", status, message, steps)


def container_restart(runtime: str, ident: str) -> list[str]:
    commands = {"docker": "docker", "podman": "podman", "machine": "machinectl"}
    if runtime in commands and plausible_name(ident):
        verb = "reboot" if runtime == "machine" else "restart"
        return [f"{commands[runtime]} {verb} {shell_arg(ident)}"]
    if runtime == "lxc" and plausible_name(ident):
        return [f"lxc-stop -n {shell_arg(ident)} && lxc-start -n {shell_arg(ident)}"]
    return [
        f"restart the {runtime} container (on Kubernetes: delete the pod so its controller "
        "recreates it) with the updated image or host files"
    ]


def hand_started(service: Service, files: str, status: Status, own_uid: int) -> Finding:
    """A process tree no unit, init script or session owns: someone started it by hand."""
    main = service.main
    started = shell_join(main.argv) or main.comm
    tree = "" if len(service.processes) == 1 else f" (with its tree: {pid_phrase(service)})"
    message = (
        f"pid {main.pid} ({main.comm}, uid {main.uid}){tree}, started outside any service "
        f"manager, still runs the {files}; it was started as: {started}"
    )
    if main.uid == own_uid and main.argv:
        # Every process of the tree: a forked child outlives its parent's kill.
        others = sorted(p.pid for p in service.processes if p.pid != main.pid)
        steps = [" ".join(["kill", str(main.pid), *map(str, others)])]
        start = started if not main.cwd else f"cd {shell_arg(main.cwd)} && {started}"
        steps.append(start)
        steps.append(
            "(start it again with the environment it needs: its environment variables are "
            "not shown here)"
        )
    else:
        steps = [
            f"ask its owner (uid {main.uid}) to stop pid {main.pid} and start it again; its "
            "command line above is what it says about itself, not a command to run as root"
        ]
    return Finding("services.restart-needed", status, message, steps)


def session_outdated(
    service: Service, packages: dict[str, dict[str, object]], status: Status
) -> Finding:
    files = file_phrase(service.files, packages)
    where = f"login session {service.session}" if service.session else "processes"
    message = (
        f"{where} of user {service.name}: {pid_phrase(service)} ({service.main.comm}) "
        f"{_still_run(service)} the {files}"
    )
    steps = [f"log out every session of {service.name} and log in again"]
    if service.session and plausible_name(service.session):
        steps.append(f"loginctl terminate-session {shell_arg(service.session)}")
    return Finding("services.session-outdated", status, message, steps)


def self_outdated(
    service: Service,
    packages: dict[str, dict[str, object]],
    status: Status,
    *,
    systemd: bool,
    container: str | None,
) -> Finding:
    files = file_phrase(service.files, packages)
    main = service.main
    if service.name == "init":
        message = f"pid 1 ({main.comm}) still runs the {files}"
        if container:
            steps = [f"restart this {container} container from its host"]
        elif systemd:
            steps = ["systemctl daemon-reexec"]
        else:
            steps = ["reboot in a maintenance window (pid 1 cannot be restarted)"]
    else:
        message = (
            f"container runtime {main.comm} ({pid_phrase(service)}) still runs the {files}; "
            "restarting it stops the containers it runs"
        )
        steps = ["restart the containers it runs in a maintenance window, or reboot"]
    return Finding("services.self", status, message, steps)


def service_label(service: Service) -> str:
    """A short name for summaries: the unit, the script, the container, the user, pid 1."""
    if service.kind == "process":
        return f"pid {service.main.pid} ({service.main.comm})"
    if service.kind == "session":
        return f"session of {service.name}"
    if service.kind == "self":
        return "pid 1" if service.name == "init" else service.name
    return service.name


def summary(results: list[Finding], services: list[Service], unseen: str | None) -> str | None:
    """The check's summary when services run replaced code: how many and which when more than
    one, and what a non-root scan could not see (`unseen`); None: the finding's message."""
    line = None
    if len(results) > 1:
        line = f"{len(results)} services run replaced code: " + ", ".join(
            service_label(service) for service in services
        )
    if unseen:
        line = f"{line or results[0].message} ({unseen})"
    return line


def unseen_phrase(unreadable: list[int], own_uid: int) -> str:
    """What the scan could not see, and why."""
    if not unreadable:
        return ""
    shown = ", ".join(str(pid) for pid in unreadable[:MAX_NAMED_PIDS])
    more = len(unreadable) - MAX_NAMED_PIDS
    pids = f"pid {shown}" + (f" and {more} more" if more > 0 else "")
    if own_uid == 0:
        return f"the kernel refused the maps of {pids} even to root"
    return (
        f"the maps of {len(unreadable)} processes of other users (or setuid programs) need "
        "root: run as root to see them"
    )


def ok(scanned: int, unreadable: list[int], own_uid: int) -> Finding:
    unseen = unseen_phrase(unreadable, own_uid)
    who = "no process" if own_uid == 0 else f"no process of uid {own_uid}"
    message = f"{who} runs replaced code ({scanned} processes read"
    message += f"; {unseen})" if unseen else ")"
    return Finding("services.ok", Status.PASS, message)


def not_live(root: str) -> Finding:
    return Finding(
        "services.not-live",
        Status.SKIP,
        f"a snapshot ({root}) has no running processes: `preflight collect` does not record "
        "process memory maps, so what runs cannot be compared with what is installed",
        ["run preflight on the host itself"],
    )


def _still_run(service: Service) -> str:
    return "still runs" if len(service.processes) == 1 else "still run"


def _command_or_text(argv: list[str], text: str) -> list[str]:
    if all(plausible_name(word) for word in argv):
        return [shell_join(argv)]
    return [f"{text} (its name holds characters no unit or script name has; check it first)"]
