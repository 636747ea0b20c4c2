"""Services drift: processes that still run code a package (or anyone) replaced on disk.

After `apt-get upgrade` or a Puppet run a daemon keeps the old copy of its binary or of a
library (OpenSSL, glibc) mapped until it is restarted: it runs unpatched code while the package
database says the fix is installed. The check reads every process's memory maps, keeps the files
whose on-disk copy is deleted or is another inode now, leaves out what is not package code
(memfd, shared memory, /tmp, files the process made itself), groups what is left by how it runs
(systemd unit, init script, container, login session, pid 1, or a hand-started process tree) and
says how to restart each.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from preflight.check import Check, CheckContext, Finding, FindingDoc, Option, Status

if TYPE_CHECKING:
    from preflight.host import Host
    from preflight_checks.services.facts import Service


class ServicesCheck(Check):
    id = "services"
    title = "Services running replaced code"
    description = """
Reads /proc/PID/maps of every process (as root; as another user, only that user's own, and the
report says how many it could not read) and keeps each mapped file that was deleted (the kernel
marks it "(deleted)": a package upgrade renames the new file over the old one) or replaced (the
path now holds another inode than the one mapped, compared as the process sees the file system,
through /proc/PID/root). Ignored, and counted in details["ignored"] with the reason: memfd
mappings (sealed code copies such as /memfd:sealed-..., which needrestart 3.6 reports as an
obsolete binary), System V and /dev/shm shared memory, shared anonymous memory, files in /tmp
and /var/tmp, files outside the folders packages install code into (/usr, /lib*, /bin, /sbin,
/opt, /snap): JIT code and caches a process made itself, and files mapped without execute
permission (data such as the locale archive, which `locale-gen` rewrites; not code).

What is left is grouped by how it runs: the systemd unit, container or login session its cgroup
names; else the init script whose pid file (/run/*.pid, /run/*/*.pid) names the process or an
ancestor; else a login user's process; else the hand-started process tree. For the files found
it asks dpkg (or rpm) once which package owns each path and reads when the package and the file
were last replaced. Under --root it skips: a snapshot has no processes.
""".strip()
    findings = {
        "services.ok": FindingDoc(
            Status.PASS,
            "No process (as another user than root: none of that user's) maps a binary or "
            "library that was deleted or replaced on disk.",
        ),
        "services.restart-needed": FindingDoc(
            Status.WARN,
            "A service still runs code that was replaced on disk (one finding per systemd unit, "
            "init script, container or hand-started process tree); it runs the old, possibly "
            "unpatched, copy until restarted. A failure with `fail_on_restart = true`.",
            "The finding gives the restart for how it runs: `systemctl restart UNIT`, `service "
            "NAME restart`, `docker restart ID`, or for a process started by hand its pid and the "
            "command line to start it again (only for your own processes).",
        ),
        "services.session-outdated": FindingDoc(
            Status.WARN,
            "Processes of a login session or of a login user (uid in login.defs' UID_MIN.."
            "UID_MAX) still run replaced code: the session needs a logout, not a service "
            "restart. A failure with `fail_on_restart = true`.",
            "Log out every session of that user and log in again (`loginctl terminate-session "
            "ID` where the session is known).",
        ),
        "services.self": FindingDoc(
            Status.WARN,
            "pid 1 (the init process) or the container runtime still runs replaced code; it "
            "cannot be restarted like a service. A failure with `fail_on_restart = true`.",
            "systemd: `systemctl daemon-reexec`; another init: reboot in a maintenance window; "
            "inside a container: restart the container from its host.",
        ),
        "services.not-live": FindingDoc(
            Status.SKIP,
            "Under --root: a snapshot has no running processes (`preflight collect` does not "
            "record process maps).",
            "Run preflight on the host itself.",
        ),
    }
    options = {
        "ignore_processes": Option(
            list, [], "process names (comm or argv[0]'s base name) not to report"
        ),
        "ignore_units": Option(
            list, [], "systemd units, init scripts or container ids not to report"
        ),
        "fail_on_restart": Option(
            bool, False, "report a needed restart as a failure, not a warning (deployment gates)"
        ),
    }

    def run(self, ctx: CheckContext) -> list[Finding]:
        from preflight_checks.services import facts
        from preflight_checks.services import findings as words

        host = ctx.host
        if not host.is_live:
            return [words.not_live(host.root)]
        own_uid = os.geteuid()
        found = facts.scan(host)
        found.stale.pop(os.getpid(), None)  # preflight itself exits in a moment
        ctx.details["scanned"] = found.scanned
        ctx.details["unreadable"] = found.unreadable[:100]
        unseen = words.unseen_phrase(found.unreadable, own_uid)
        if unseen:
            ctx.details["unreadable_note"] = unseen
        ctx.details["ignored"] = found.ignored
        services = self._wanted(facts.group_services(host, found), ctx.options)
        files: dict[str, int] = {}  # path -> a pid that maps it (to see the file as it does)
        for service in services:
            for process in service.processes:
                for stale in process.stale:
                    files.setdefault(stale.path, process.pid)
        packages = self._packages(host, files) if files else {}
        ctx.details["services"] = [
            {
                "kind": s.kind,
                "name": s.name,
                "pidfile": s.pidfile and host.display(s.pidfile),
                "session": s.session,
                "main_pid": s.main.pid,
                "processes": [p.to_dict() for p in s.processes],
            }
            for s in services
        ]
        ctx.details["files"] = packages
        status = Status.FAIL if ctx.options.get("fail_on_restart") else Status.WARN
        results: list[Finding] = []
        for service in services:
            if service.kind == "session":
                results.append(words.session_outdated(service, packages, status))
            elif service.kind == "self":
                results.append(
                    words.self_outdated(
                        service,
                        packages,
                        status,
                        systemd=host.service_manager == "systemd",
                        container=host.container,
                    )
                )
            else:
                results.append(words.restart_needed(service, packages, status, own_uid))
        if not results:
            return [words.ok(found.scanned, found.unreadable, own_uid)]
        summary = words.summary(results, services, unseen if own_uid != 0 else None)
        return [replace(results[0], summary=summary), *results[1:]]

    @staticmethod
    def _wanted(services: list[Service], options: dict[str, Any]) -> list[Service]:
        """Services not excluded by `ignore_processes` / `ignore_units`."""
        names = set(options.get("ignore_processes") or [])
        units = set(options.get("ignore_units") or [])
        units |= {u.removesuffix(".service") for u in units}
        kept = []
        for service in services:
            ident = service.name.partition(":")[2] if service.kind == "container" else service.name
            if ident in units or ident.removesuffix(".service") in units:
                continue
            service.processes = [
                p
                for p in service.processes
                if p.comm not in names and not (p.argv and os.path.basename(p.argv[0]) in names)
            ]
            if service.processes:
                kept.append(service)
        return kept

    @staticmethod
    def _packages(host: Host, files: dict[str, int]) -> dict[str, dict[str, object]]:
        """path -> {package, package_installed_at, replaced_at}: looked up only for what was
        found, one package-manager query for all of them."""
        from preflight.timefmt import iso_utc
        from preflight_checks.services import facts

        owners = facts.package_owners(host, files)
        about: dict[str, dict[str, object]] = {}
        for path, pid in files.items():
            package = owners.get(path)
            installed = facts.installed_at(host, package) if package else None
            about[path] = {
                "package": package,
                "package_installed_at": iso_utc(installed),
                "replaced_at": iso_utc(facts.replaced_at(host, pid, path)),
            }
        return about
