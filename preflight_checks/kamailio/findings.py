"""What the kamailio check reports: its findings, details and notes, credentials masked.

Every finding passes through `Report.add`, so no message or remediation step can echo a
password from a database URL Kamailio or its configuration printed.

Whether Kamailio runs the configuration: not-running, and config-changed (a file edited after
the main process started, so a restart is pending).

Comparing the sockets Kamailio should hold with the ones it holds: listener-missing,
listener-unexpected and address-not-bound, naming whichever other process holds a port.

Kamailio's TLS: a tls: listen that enable_tls=yes is missing for; certificate, key, CA and
CRL files that tls.cfg or modparam("tls", ...) names but that are missing, unreadable by the
run user, not loadable by OpenSSL or not a matching pair; tls.cfg profiles the tls module
refuses at start.

`kamailio -c` notices none of these: the first silently drops the listener, the others fail
the start. Keys are loaded in memory only (live), never reported or copied.

Kamailio's modules: is every loadmodule's .so on the module path, and which Debian package
ships a missing one?

Debian splits Kamailio's modules over kamailio-*-modules packages, so a missing .so usually means
a package is not installed; the remediation names it.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from preflight.check import Finding, Status
from preflight.facts.users import Account
from preflight.text import plausible_name, printable, shell_arg, shell_join
from preflight.timefmt import iso_utc
from preflight_checks.kamailio.config import (
    MODULE_DIRS,
    TLS_DEFAULT_FILES,
    CheckOutput,
    Location,
    ParsedConfig,
    Socket,
    TlsDomain,
    mask_secrets,
    module_basename,
    path_from_config,
)
from preflight_checks.kamailio.facts import (
    DEFAULTS_FILE,
    UNIT_FILES,
    access_blockers,
    access_problem,
    conflicts,
    covers,
    holders,
    init_defaults,
    local_addresses,
    path_risk,
    run_owners,
    service_config,
    service_users,
    socket_inodes,
    tls_config,
)

if TYPE_CHECKING:
    from preflight.facts.processes import Process
    from preflight.host import Host
    from preflight_checks.kamailio.config import CheckOutput, ParsedConfig
    from preflight_checks.kamailio.facts import BoundSocket, Instance


# --- from kamailio_report.py
@dataclass(frozen=True)
class ServiceCommands:
    """How this host starts Kamailio: remediation must name commands that exist here.
    `enable`: a separate, explained step that must run before `start`/`restart` can work
    (RUN_KAMAILIO=yes for Debian's init script); never folded silently into them.
    `diagnose`: where no log exists, Kamailio in the foreground after a start that failed."""

    start: str
    restart: str
    status: tuple[str, ...]
    stop: str = ""
    enable: str = ""
    diagnose: str = ""
    init_script: bool = False  # Debian's init script starts it (its fork=no test applies)


UNIT = "kamailio.service"  # Debian's unit
INIT_SCRIPT_FILE = "etc/init.d/kamailio"
SYSLOG = "var/log/syslog"


def systemd_commands(unit: str) -> ServiceCommands:
    quoted = shell_arg(unit)
    return ServiceCommands(
        f"systemctl start {quoted}",
        f"systemctl restart {quoted}",
        (f"systemctl status {quoted}", f"journalctl -u {quoted} -n 50 --no-pager"),
        f"systemctl stop {quoted}",
    )


def syslog_step(host: Host) -> str | None:
    """Where Kamailio's syslog messages are on this host: the syslog file where rsyslog
    writes one, else the journal (journald-only hosts, containers with systemd); None: no
    step (see `diagnose_step`)."""
    if host.is_file(SYSLOG):
        return f"grep kamailio {host.display(SYSLOG)} | tail -n 50"
    if host.exists("run/systemd/journal/socket"):  # journald runs
        return "journalctl -t kamailio -n 50 --no-pager"
    return None


def diagnose_step(host: Host, foreground: str) -> str:
    """With no syslog file or journal, a start's errors are seen only by starting Kamailio
    in the foreground. It comes after the start step: when the start worked, it stops at
    once on the sockets the running one holds, so following every step is harmless."""
    if not foreground or syslog_step(host) is not None:
        return ""
    return (
        f"{foreground}  # only if it did not start: no syslog file or journal here, so this "
        "prints its errors (Ctrl-C stops it)"
    )


def foreground_command(binary: str, config: str, defines: list[str] | None = None) -> str:
    """Kamailio started in the foreground with its log on stderr (`-DD`: the creator does
    not daemonize; `-E`: log to stderr), every word shell-quoted."""
    words = [binary, "-DD", "-E", "-f", config]
    for value in defines or []:
        words += ["-A", value]
    return shell_join(words)


def _steps(*steps: str | None) -> tuple[str, ...]:
    return tuple(step for step in steps if step)


def init_script_commands(host: Host, foreground: str = "") -> ServiceCommands:
    """Debian's init script through `service`. When RUN_KAMAILIO is not yes the script
    refuses to start ("Kamailio not yet configured"): turning it on is a step of its own that
    says it also starts Kamailio at boot."""
    start, restart = "service kamailio start", "service kamailio restart"
    status = _steps("service kamailio status", syslog_step(host))
    stop = "service kamailio stop"
    enable = ""
    enabled = init_script_enabled(host)
    defaults = host.display(DEFAULTS_FILE)
    if enabled is None:
        enable = (
            f"make {defaults} set RUN_KAMAILIO=yes (it is set by shell code this run does not "
            "execute): without it the init script refuses to start Kamailio"
        )
    elif not enabled:
        enable = (
            f"sed -i 's/^#*RUN_KAMAILIO=.*/RUN_KAMAILIO=yes/' {shell_arg(defaults)}  "
            f"# turns RUN_KAMAILIO=yes on in {defaults}: without it the init script refuses "
            "to start Kamailio; it also starts Kamailio at every boot"
        )
    return ServiceCommands(
        start, restart, status, stop, enable, diagnose_step(host, foreground), init_script=True
    )


def init_script_enabled(host: Host) -> bool | None:
    """RUN_KAMAILIO=yes as the init script sees it after sourcing /etc/default/kamailio: it
    starts Kamailio (at boot too). A missing file: the script's own default, no. None: the
    file sets it with shell code this run does not execute (init_defaults)."""
    value = init_defaults(host).get("RUN_KAMAILIO")
    return None if value is None else value == "yes"


def service_commands(host: Host, foreground: str = "") -> ServiceCommands:
    """How this host starts Kamailio when none runs: systemctl where systemd runs (or nothing
    says otherwise); Debian's init script where something else is pid 1 (sysvinit, a
    container, a microVM)."""
    manager = host.service_manager
    if manager in (None, "systemd") or not host.is_file(INIT_SCRIPT_FILE):
        return systemd_commands("kamailio")
    return init_script_commands(host, foreground)


@dataclass(frozen=True)
class Service:
    """The service that starts Kamailio on this host (Debian's init script, or the kamailio
    unit where systemd runs): the config it starts (CFGFILE of /etc/default/kamailio, else
    the default), and whether it is enabled (starts at boot)."""

    kind: str  # "init-script" or "systemd"
    config_rel: str | None  # None: unknown (CFGFILE is set by shell code not executed here)
    enabled: bool
    enabled_by: str  # what says it is enabled, for messages

    def runs(self, instance: Instance) -> bool:
        """Was `instance` started by this service?"""
        if self.kind == "systemd":
            return instance.unit == UNIT
        return instance.manager == "init-script"


def host_service(host: Host) -> Service | None:
    """This host's Kamailio service, or None when neither an init script nor a unit of
    systemd (as pid 1) would start Kamailio."""
    config = service_config(host)
    manager = host.service_manager
    if manager == "systemd":
        if not any(host.is_file(unit) for unit in UNIT_FILES):
            return None
        wants = host.glob(f"etc/systemd/system/*.wants/{UNIT}")
        enabled_by = f"{host.display(wants[0])} exists" if wants else ""
        return Service("systemd", config, bool(wants), enabled_by)
    if manager is None or not host.is_file(INIT_SCRIPT_FILE):
        return None
    return Service(
        "init-script",
        config,
        bool(init_script_enabled(host)),
        f"RUN_KAMAILIO=yes in /{DEFAULTS_FILE}",
    )


def by_hand_commands(host: Host, instance: Instance) -> ServiceCommands | None:
    """A hand-started instance is restarted as it was started: its pid, then its exact command
    line in its start folder. None when its command line cannot be repeated safely."""
    argv = instance.main.argv
    if not argv or any(printable(a) != a for a in argv):
        return None
    pid = instance.main.pid
    command = shell_join(argv)
    if instance.start_dir and instance.start_dir != "/":
        command = f"cd {shell_arg(instance.start_dir)} && {command}"
    # Wait until it is gone: a zombie nobody reaps yet counts as gone (kill -0 would wait).
    stop = f"kill {pid} && while ps -o stat= -p {pid} | grep -qv Z; do sleep 0.2; done"
    log = host.readlink(f"proc/{pid}/fd/2") or ""
    # It runs: a second one in the foreground would only fail on its ports, so no log step
    # when no log file, syslog or journal exists.
    status = _steps(
        f"ps -o pid,user,args -p {pid}",
        f"tail -n 50 {shell_arg(log)}"
        if log.startswith("/") and host.is_file(log.lstrip("/"))
        else syslog_step(host),
    )
    return ServiceCommands(command, f"{stop} && {command}", status, stop)


def instance_commands(
    host: Host, instance: Instance | None, config: str = "", binary: str = "kamailio"
) -> ServiceCommands:
    """The commands that act on the judged instance as it was started; with none running,
    the service when it starts `config`, else Kamailio started on `config` itself."""
    if instance is None:
        foreground = foreground_command(binary, config) if config else ""
        service_config_rel = service_config(host)
        if not config or (service_config_rel and config == host.display(service_config_rel)):
            return service_commands(host, foreground)
        command = f"{shell_arg(binary)} -f {shell_arg(config)}"
        return ServiceCommands(
            command,
            command,
            _steps(syslog_step(host)),
            diagnose=diagnose_step(host, foreground),
        )
    if instance.fs_root:
        # A container's Kamailio: this host's unit, init script or command line is not how
        # it starts; whatever manages the container is.
        managed = f"with whatever manages the container pid {instance.main.pid} runs in"
        return ServiceCommands(
            f"start it {managed}",
            f"restart it {managed}",
            (f"ps -o pid,user,args -p {instance.main.pid}",),
            f"stop it {managed} (another mount namespace)",
        )
    if instance.unit:
        return systemd_commands(instance.unit)
    if instance.manager == "init-script":
        return init_script_commands(host)
    by_hand = by_hand_commands(host, instance)
    if by_hand is not None:
        return by_hand
    pid = instance.main.pid
    return ServiceCommands(
        f"start Kamailio again as pid {pid} was started",
        f"stop pid {pid} and start it again as it was started",
        _steps(f"ps -o pid,user,args -p {pid}", syslog_step(host)),
        f"kill {pid}",
    )


# Findings that keep Kamailio from starting: a restart before they are cleared takes it down.
START_BLOCKING = frozenset(
    f"kamailio.{code}"
    for code in (
        "config-invalid",
        "init-script-fork-no",
        "module-missing",
        "address-missing",
        "tls-files-missing",
        "tls-key-unreadable",
        "tls-key-mismatch",
        "tls-cert-invalid",
    )
)
# The finding that carries an instance's one restart (or start) step, when it has one.
STEP_CARRIERS = ("kamailio.config-changed", "kamailio.not-running")
_STEP_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.WARN: 2}


class Report:
    """The judgement of one instance (or of the config that should run when none runs it):
    its findings, details and notes. With several judged, `label` names the instance in
    every message."""

    def __init__(self, host: Host, details: dict[str, Any], label: str | None = None) -> None:
        self.host = host
        self.details = details
        self.label = label
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.instance: Instance | None = None  # the judged one
        self.check_command = "kamailio -c -f /etc/kamailio/kamailio.cfg"  # with its -A defines
        # What a restart starts when it is not the running config (the init script or unit
        # starts CFGFILE's): the `kamailio -c` of that config, and a comment naming it.
        self.restart_check = ""
        self.restart_note = ""
        self.expected: list[Socket] = []  # the sockets it should hold
        self.best_effort = False  # the config was read without `kamailio -c`
        self.missing_addresses: set[str] = set()  # address-missing reported for these
        self.changed: list[str] = []  # files changed after the instance started
        # port-shared between two judged instances, reported once (by the first judged)
        self.shared_reported: set[tuple[frozenset[int], str]] = set()
        # What the operator must verify first when no command may be suggested: the config
        # or its start folder is another account's, or the instance runs in another mount
        # namespace (every finding's only step is this text); or only its command line is
        # another account's (no restart or start step repeats it: this text instead).
        self.gate: str | None = None
        self.restart_gate: str | None = None

    @cached_property
    def service(self) -> ServiceCommands:
        """Asked for only by findings that name a command: most runs never read the files."""
        return instance_commands(
            self.host,
            self.instance,
            self.details.get("config", ""),
            self.details.get("binary") or "kamailio",
        )

    def restart_steps(self) -> list[str]:
        """Check the config with the real `kamailio -c` before anything restarts it: the
        config the restart really starts."""
        if self.restart_gate:
            return [self.restart_gate]
        enable = [self.service.enable] if self.service.enable else []
        check = self.restart_check or self.check_command
        return [*enable, f"{check} && {self.service.restart}{self.restart_note}"]

    def start_steps(self) -> list[str]:
        if self.restart_gate:
            return [self.restart_gate]
        enable = [self.service.enable] if self.service.enable else []
        return [*enable, f"{self.check_command} && {self.service.start}"]

    def add(
        self, code: str, status: Status, message: str, remediation: list[str] | None = None
    ) -> None:
        if self.label:
            message = f"{self.label}: {message}"
        if self.gate is not None:
            remediation = [self.gate]
        self.findings.append(
            Finding(
                f"kamailio.{code}",
                status,
                mask_secrets(message),
                [mask_secrets(r) for r in remediation or []],
            )
        )

    def blocking(self) -> list[Finding]:
        """The findings that keep this config from starting (every failing TLS finding: the
        tls module refuses to start on each)."""
        return [
            f
            for f in self.findings
            if f.code in START_BLOCKING
            or (f.code.partition(".")[2].startswith("tls-") and f.status is Status.FAIL)
        ]

    def order_steps(self, blocked_by: str = "", own_restart: bool = True) -> None:
        """Steps that work when followed from the top: every finding loses its own restart
        (or start) step, and the instance gets one, last, after every step that clears what
        would keep it from starting (a missing address, a port another process holds, a
        broken config or TLS file). It goes on config-changed (or not-running) when that is
        reported, else on the last finding of the least severe status, which is listed
        last. `blocked_by`: why no restart may be offered at all (the config it would start
        cannot start); that reason is the step instead. Without `own_restart` (the config a
        restart of another judged instance switches to) no restart is added here: that
        instance's judgement carries it."""
        start = self.instance is None and any(
            f.code == "kamailio.not-running" for f in self.findings
        )
        final = self.start_steps() if start else self.restart_steps()
        diagnose = mask_secrets(self.service.diagnose) if self.service.diagnose else ""
        drop = {mask_secrets(step) for step in (*self.restart_steps(), *self.start_steps())}
        drop.add(diagnose)
        diagnosed = any(diagnose in f.remediation for f in self.findings) if diagnose else False
        needing: list[Finding] = []
        for finding in self.findings:
            kept = [step for step in finding.remediation if step not in drop]
            if len(kept) < len(finding.remediation):
                needing.append(finding)
                finding.remediation = kept
        if not needing or not own_restart:
            return
        last_rank = max(_STEP_ORDER.get(f.status, 3) for f in needing)
        candidates = [f for f in needing if _STEP_ORDER.get(f.status, 3) == last_rank]
        carrier = next((f for f in candidates if f.code in STEP_CARRIERS), candidates[-1])
        self.findings.remove(carrier)
        self.findings.append(carrier)
        steps = [blocked_by] if blocked_by else final
        carrier.remediation += [mask_secrets(step) for step in steps]
        if diagnosed and not blocked_by:
            carrier.remediation.append(diagnose)


# --- from kamailio_service.py
MTIME_SLACK = 1.0  # btime is whole seconds: a start time read from /proc can be ~1 s early


def report_not_running(
    report: Report,
    config: str,
    instances: list[Instance],
    check_out: CheckOutput | None,
    enabled_by: str = "",
) -> None:
    """not-running: no instance runs `config`. `enabled_by`: what enables the service that
    starts it (a failure even while other instances run: the service is down)."""
    message = f"Kamailio is not running with {config}"
    if enabled_by:
        message = (
            f"the Kamailio service is enabled ({enabled_by}) but not running: no Kamailio "
            f"it started runs {config}"
        )
    if instances:
        message += (
            " (other instances: "
            + ", ".join(
                f"pid {i.main.pid} with {report.host.display(i.config_rel)}" for i in instances[:3]
            )
            + ")"
        )
    steps = list(report.service.status)
    if check_out is not None and not check_out.ok:
        steps.append(
            f"fix the first error of `{report.check_command}`: "
            f"{check_out.first_error or 'see its output'}"
        )
    steps += report.start_steps()
    if report.service.diagnose:
        steps.append(report.service.diagnose)
    report.add("not-running", Status.FAIL, message, steps)


def check_changed(
    report: Report, instance: Instance, parsed: ParsedConfig | None, config: str
) -> None:
    """config-changed: the config, an included file, or a symlink on the way to one changed
    after the main process started. The change time (ctime) counts, not only the mtime: a
    deploy with `rsync -a`, `tar` or `cp -p` keeps old mtimes, and a symlink swap changes
    neither file."""
    host = report.host
    started = instance.main.start_time
    report.details["started_at"] = iso_utc(started)
    if started is None or parsed is None:
        return
    changed = []
    metadata_only = True  # every change seen is a change time alone (no newer mtime, no link)
    for rel in parsed.files:
        when, written = changed_at(host, rel, instance.fs_root)
        if when is not None and when > started + MTIME_SLACK:
            changed.append(host.display(rel))
            metadata_only = metadata_only and (written or 0.0) <= started + MTIME_SLACK
    if changed:
        report.changed = changed
        report.details["changed_files"] = changed
        # ctime moves for a content deploy that keeps old mtimes (rsync -a, cp -p, tar) and
        # for a chmod or chown alike; only the operator can tell them apart.
        maybe_same = (
            " (only the change time moved: a deploy that keeps modification times, such as "
            "rsync -a or cp -p, or only a chmod/chown; if the content is what runs, no "
            "restart is needed)"
            if metadata_only
            else ""
        )
        report.add(
            "config-changed",
            Status.WARN,
            f"{', '.join(changed[:5])} changed after Kamailio (pid {instance.main.pid}) "
            f"started at {iso_utc(started)}: the running process does not use it yet "
            f"(a restart is pending){maybe_same}",
            report.restart_steps(),
        )


def changed_at(host: Host, rel: str, below: str = "") -> tuple[float | None, float | None]:
    """(latest, written): the latest change (mtime or ctime) of a file and of every symlink
    on its path, the moment its content, its metadata or what the path names last changed;
    and the same without the file's ctime (its content written, or a link on the way
    replaced). `below`: where the instance's own names start (proc/PID/root of one in another
    mount namespace): only the path below it counts, not that link, whose change time is when
    the kernel first looked it up, nor proc/PID."""
    # A snapshot's change times are when it was unpacked: there, only mtimes say anything.
    live = host.is_live
    latest: float | None = None
    written: float | None = None
    st = host.stat(rel)
    if st is not None:
        written = st.st_mtime
        latest = max(st.st_mtime, st.st_ctime) if live else st.st_mtime
    parts = rel.strip("/").split("/")
    below = below.strip("/")
    skip = len(below.split("/")) if below and rel.strip("/").startswith(below + "/") else 0
    for depth in range(skip + 1, len(parts) + 1):
        link = host.lstat("/".join(parts[:depth]))
        if link is not None and (link.st_mode & 0o170000) == 0o120000:
            swapped = max(link.st_mtime, link.st_ctime if live else 0.0)
            latest = max(latest or 0.0, swapped)
            written = max(written or 0.0, swapped)
    return latest, written


# Debian's init script refuses to start a config that this test of its check_fork matches:
# `grep -q "^[[:space:]]*fork[[:space:]]*=[[:space:]]*no.*" $CFGFILE` (a plain grep: a line
# inside a /* */ comment counts too), then exits 0 after "Not starting ...: fork=no".
INIT_FORK_TEST = "^[[:space:]]*fork[[:space:]]*=[[:space:]]*no"
# The edit that makes those lines fail the test: fork=no becomes fork=yes (Kamailio's default).
INIT_FORK_EDIT = r"s/^\([[:space:]]*fork[[:space:]]*=[[:space:]]*\)no/\1yes/"
_POSIX_SPACE = b" \t\n\v\f\r"  # [[:space:]] in the C locale


def init_fork_lines(host: Host, rel: str) -> list[int]:
    """The numbers of the lines of ROOT/rel that the init script's fork=no test matches."""
    matched = []
    for number, line in enumerate((host.read_bytes(rel) or b"").split(b"\n"), 1):
        rest = line.lstrip(_POSIX_SPACE)
        if not rest.startswith(b"fork"):
            continue
        rest = rest[4:].lstrip(_POSIX_SPACE)
        if rest.startswith(b"=") and rest[1:].lstrip(_POSIX_SPACE).startswith(b"no"):
            matched.append(number)
    return matched


def check_init_fork(report: Report, config_rel: str) -> None:
    """init-script-fork-no: Debian's init script is what starts (or restarts) this config and
    its fork=no test matches it, so `service kamailio start` starts nothing and a restart
    stops Kamailio and starts nothing. The step edits exactly the lines the test matches."""
    script = report.host.read_text(INIT_SCRIPT_FILE) or ""
    if script and INIT_FORK_TEST not in script:
        return  # this host's script has no such test (a snapshot keeps only an empty marker)
    lines = init_fork_lines(report.host, config_rel)
    if not lines:
        return
    config = report.host.display(config_rel)
    where = ", ".join(str(n) for n in lines[:10])
    report.add(
        "init-script-fork-no",
        Status.FAIL,
        f"Debian's init script will not start Kamailio with {config}: line {where} matches "
        f"its fork=no test (grep '{INIT_FORK_TEST}', even inside a /* */ comment), so "
        '`service kamailio start` prints "Not starting Kamailio SIP Server: fork=no '
        'specified in config file" and starts nothing, and `service kamailio restart` '
        "stops Kamailio and starts nothing",
        [
            f"sed -i --follow-symlinks {shell_arg(INIT_FORK_EDIT)} {shell_arg(config)}  # "
            f"fork=no becomes fork=yes (Kamailio's default) on line {where}, the lines the "
            "init script's test matches; only then can it start this config"
        ],
    )


# --- from kamailio_listeners.py
def describe_holder(report: Report, proc: Process, instances: list[Instance]) -> tuple[str, str]:
    """Who holds a socket, and the step that frees it. A process of a trusted Kamailio
    instance is named as that instance and stopped the way it was started, never by a
    child's pid."""
    for instance in instances:
        if proc.pid in instance.pids:
            commands = instance_commands(report.host, instance)
            what = (
                f"Kamailio pid {instance.main.pid} "
                f"({report.host.display(instance.config_rel)}, {instance.manager})"
            )
            return what, f"{commands.stop}  # stops {what}; or move one of them to another port"
    uids = proc.uids
    user = f", {report.host.users.describe_user(uids[1])}" if uids else ""
    what = f"{printable(proc.name)} (pid {proc.pid}{user})"
    return what, f"kill {proc.pid}  # stops {what}; or move it to another port"


def report_held_ports(
    report: Report, expected: list[Socket], processes: list[Process], instances: list[Instance]
) -> None:
    """One listener-missing per expected socket another process holds (Kamailio not running)."""
    tables = report.host.sockets.bound
    for sock, holder in port_holders(report.host, expected, tables, set(), processes).items():
        who, stop = describe_holder(report, holder, instances)
        report.add(
            "listener-missing",
            Status.FAIL,
            f"{sock} is held by {who}, so Kamailio cannot bind it",
            [stop, *report.start_steps()],
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


@dataclass
class Listeners:
    """What the judged instance should hold: SIP sockets, and the non-SIP listeners its
    modules declare (ctl, evapi, ...), which are expected but not SIP."""

    expected: list[Socket]
    from_option: set[Socket]
    config_known: bool
    explicit_listen: bool
    declared: list[Socket]
    from_config: set[Socket]


def compare_listeners(
    report: Report,
    instance: Instance,
    want: Listeners,
    processes: list[Process],
    instances: list[Instance],
) -> None:
    host = report.host
    expected = want.expected
    tables, missing_tables = host.sockets.bound, host.sockets.missing
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
            # Not a warning: a non-root run (a Nagios or cron user) would warn on every run for
            # what it cannot see. The verdict rests on what it can see; the report says so.
            Status.PASS,
            "the socket owners of Kamailio's processes cannot be read (not root?): "
            "sockets were matched by address only, unexpected ones not reported",
            ["run preflight as root"],
        )
    report.details["actual"] = sorted({_fmt(b) for b in ours}) if visible else None
    unserved = [s for s in expected if not any(covers(b, s, bindv6only) for b in ours)]
    not_bound = [
        s
        for s in unserved
        if not want.explicit_listen
        and s not in want.from_option
        and s.addr != "*"
        and any(b.transport == s.transport and b.port == s.port for b in ours)
    ]
    missing = [s for s in unserved if s not in not_bound]
    holder_of: dict[Socket, Process] = {}
    others: list[Process] = []
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
                [*report.restart_steps(), "or list the addresses with listen= in the config"],
            )
            continue
        holder = holder_of.get(sock)
        if sock.addr in report.missing_addresses:
            # address-missing says why and how to fix it; a restart before that cannot help.
            message = (
                f"Kamailio (pid {instance.main.pid}) does not listen on {sock}: no interface "
                f"has {sock.addr} (kamailio.address-missing)"
            )
            steps = []
        elif holder:
            who, stop = describe_holder(report, holder, instances)
            message = (
                f"{sock} is not held by Kamailio (pid {instance.main.pid}): {who} holds the port"
            )
            steps = [stop, *report.restart_steps()]
        elif sock in want.from_option and sock not in want.from_config:
            # Only `expect` wants it: a restart with the same config cannot open it.
            message = (
                f"Kamailio (pid {instance.main.pid}) does not listen on {sock}, and its "
                "configuration does not resolve to it"
            )
            steps = [
                f"add listen={sock} to {report.details['config']} (or remove it from "
                "[checks.kamailio] expect)",
                *report.restart_steps(),
            ]
        elif report.changed:
            # Still a failure: the socket is not served until the restart happens.
            message = (
                f"Kamailio (pid {instance.main.pid}) does not listen on {sock}: the config "
                "changed after start: restart pending (kamailio.config-changed)"
            )
            steps = report.restart_steps()
        else:
            message = f"Kamailio (pid {instance.main.pid}) does not listen on {sock}"
            steps = [*report.service.status, *report.restart_steps()]
        report.add("listener-missing", Status.FAIL, message, steps)
    if not visible:
        return
    report_shared_ports(report, instance, expected, tables, inodes, others, instances)
    if not want.config_known:
        return
    declared = [s for s in want.declared if any(covers(b, s, bindv6only) for b in ours)]
    if want.declared:
        report.details["declared_listeners"] = [str(s) for s in want.declared]
    reported: set[tuple[str, str, int]] = set()
    for bound in ours:
        key = (bound.transport, bound.addr, bound.port)
        if key in reported or any(covers(bound, s, bindv6only) for s in [*expected, *declared]):
            continue
        reported.add(key)
        why = (
            "the config changed after start: restart pending (kamailio.config-changed)"
            if report.changed
            else "an older configuration is running?"
        )
        report.add(
            "listener-unexpected",
            Status.WARN,
            f"Kamailio (pid {instance.main.pid}) listens on {_fmt(bound)}, which neither its "
            f"listen= sockets nor a module's declared listener (ctl, evapi, ...) resolve to "
            f"({why})",
            report.restart_steps(),
        )


def report_shared_ports(
    report: Report,
    instance: Instance,
    expected: list[Socket],
    tables: list[BoundSocket],
    inodes: set[int],
    others: list[Process],
    instances: list[Instance],
) -> None:
    """port-shared: a SIP socket Kamailio holds that another process binds too (SO_REUSEPORT:
    the kernel splits the traffic between them; SO_REUSEADDR on unicast UDP: the socket bound
    last usually gets all of it)."""
    served = [s for s in expected if any(b.inode in inodes and conflicts(b, s) for b in tables)]
    for sock, holder in port_holders(report.host, served, tables, inodes, others).items():
        other = next((i for i in instances if holder.pid in i.pids), None)
        if other is not None:
            # Two judged instances sharing a port: one finding, from the first judged.
            pair = (frozenset({instance.main.pid, other.main.pid}), str(sock))
            if pair in report.shared_reported:
                continue
            report.shared_reported.add(pair)
        who, stop = describe_holder(report, holder, instances)
        report.add(
            "port-shared",
            Status.FAIL,
            f"{sock} is held by Kamailio (pid {instance.main.pid}) and also by {who}: "
            "the kernel gives some or all of its traffic to the other process",
            [stop],
        )


def _fmt(bound: BoundSocket) -> str:
    """`udp:[::1]:5060`: a bound socket written as Socket writes a configured one."""
    return str(Socket(bound.transport, bound.addr, bound.port))


# --- TLS as the tls module loads it
def check_tls(
    report: Report, parsed: ParsedConfig | None, check_out: CheckOutput | None, config: str
) -> None:
    if parsed is None or not (parsed.loads_tls or parsed.enable_tls or parsed.tls_listens()):
        return
    sockets = tls_sockets(parsed, check_out)
    if tls_active(parsed, check_out):
        check_tls_files(report, parsed, config, sockets)
        return
    # TLS is off: the certificate problems are not failures yet, but the step that turns TLS
    # on must not lead straight into them, so they become its first step.
    advice = Report(report.host, {})
    advice.instance, advice.check_command = report.instance, report.check_command
    check_tls_files(advice, parsed, config, sockets)
    check_tls_enabled(report, parsed, check_out, config, [f.message for f in advice.findings])


def tls_active(parsed: ParsedConfig, check_out: CheckOutput | None) -> bool:
    """Does Kamailio load TLS at start: tls.so loaded and enable_tls set. With TLS not
    enabled the tls module's init returns at once ("tls support is disabled"): no
    certificate is read, and a missing one stops nothing. kamailio -c listing a tls: socket
    says TLS is enabled where the reading cannot tell (a #!ifdef around enable_tls)."""
    if not parsed.loads_tls:
        return False
    if check_out is not None and check_out.ok and any(s.proto == "tls" for s in check_out.sockets):
        return True
    return parsed.enable_tls


def check_tls_enabled(
    report: Report,
    parsed: ParsedConfig,
    check_out: CheckOutput | None,
    config: str,
    first: list[str],
) -> None:
    """tls-disabled and tls-module-missing: a tls: listen Kamailio drops at start; `first`:
    what must be fixed before TLS is turned on."""
    tls_listens = parsed.tls_listens()
    where = ", ".join(str(e.where) for e in tls_listens[:3])
    before = [f"before that: {message}" for message in first]
    if tls_listens and not parsed.enable_tls:
        load_tls = "" if parsed.loads_tls else ' and loadmodule "tls.so"'
        report.add(
            "tls-disabled",
            Status.WARN,
            f"a tls: listen ({where}) is configured but enable_tls=yes is not set, so "
            "Kamailio ignores it",
            [f"add enable_tls=yes{load_tls} to {config}", *before, *report.restart_steps()],
        )
    elif not parsed.loads_tls:
        # `kamailio -c` lists the tls: socket; the start logs "tls support enabled, but no
        # tls engine available" and drops it. A restart alone cannot open it.
        report.add(
            "tls-module-missing",
            Status.WARN,
            "enable_tls=yes but tls.so is not loaded: Kamailio disables TLS at start"
            + (f" and drops the tls: listen ({where})" if where else ""),
            [f'add loadmodule "tls.so" to {config}', *before, *report.restart_steps()],
        )


def tls_file_sets(report: Report, parsed: ParsedConfig, config: str) -> list[TlsDomain] | None:
    """The certificate/key/CA/CRL files of each TLS domain, as the tls module resolves them:
    its `config` file's domains, else its modparams, else cert.pem next to the main config.
    None when the named tls config itself is unreadable (reported)."""
    host = report.host
    if parsed.tls_config:
        tls_rel = path_from_config(parsed.tls_config, posixpath.dirname(parsed.main))
        report.details["tls_config"] = host.display(tls_rel)
        tls = tls_config(host, tls_rel)
        if tls is None:
            report.add(
                "tls-files-missing",
                Status.FAIL,
                f"the TLS config {host.display(tls_rel)} named by "
                f'modparam("tls", "config") is {host.why_unreadable(tls_rel)}',
                [
                    f"create {host.display(tls_rel)} or fix the modparam in {config}",
                    *report.restart_steps(),
                ],
            )
            return None
        named = tls.domains
        domains = [{**parsed.tls_params, **files} for _name, files in named]
        if not any("".join(name.split()).lower() == "server:default" for name, _ in named):
            # Without a [server:default] the tls module builds it from its built-in defaults
            # (cert.pem next to the main config); the tls modparams do not count then.
            where = Location(host.display(tls_rel), 0)
            domains.append({k: (v, where) for k, v in TLS_DEFAULT_FILES.items()})
        return domains
    where = Location(config, 0)
    defaults = {k: (v, where) for k, v in TLS_DEFAULT_FILES.items()}
    return [{**defaults, **parsed.tls_params}]


def check_tls_files(
    report: Report, parsed: ParsedConfig, config: str, sockets: list[Socket] | None
) -> None:
    host = report.host
    config_dir = posixpath.dirname(parsed.main)
    domains = tls_file_sets(report, parsed, config)
    if domains is None:
        return
    check_tls_profiles(report, parsed, config, sockets)
    account = run_account(report)
    if account is not None:
        report.details["tls_run_user"] = account.name
    seen: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for files in domains:
        resolved = {k: (path_from_config(v, config_dir), w) for k, (v, w) in files.items()}
        broken = False
        for key, (rel, where) in resolved.items():
            if where.line:
                place, fix = str(where), f"fix {where}"
            elif where.file == config:
                place = f"{config}: no tls modparam names it"
                fix = f'point modparam("tls", "{key}", ...) in {config} at the right file'
            else:  # the tls module's own default for a tls.cfg without [server:default]
                place = f"{where.file} has no [server:default]"
                fix = f"add a [server:default] with certificate and private_key to {where.file}"
            if rel in seen:
                continue
            seen.add(rel)
            problem = file_problem(host, rel)
            if problem:
                broken = True
                report.add(
                    "tls-files-missing",
                    Status.FAIL,
                    f"TLS {key} {host.display(rel)} ({place}) is {problem}; "
                    "Kamailio will not start with it",
                    [f"create {host.display(rel)} (or {fix})", *report.restart_steps()],
                )
                continue
            if account is not None:
                # A combined cert.pem holds the key: reported as the key it is.
                holds_key = resolved.get("private_key", ("", where))[0] == rel
                kind = "private_key" if holds_key else key
                broken |= check_key_access(report, rel, account, kind)
            if key in TRUST_FILES:
                check_trust_file(report, key, rel, place)
        cert, private_key = resolved.get("certificate"), resolved.get("private_key")
        if not broken and cert and private_key and (cert[0], private_key[0]) not in pairs:
            pairs.add((cert[0], private_key[0]))
            check_key_pair(report, cert[0], private_key[0])


# The files the tls module loads with SSL_CTX_load_verify_locations: a file in which OpenSSL
# finds no PEM certificate or CRL fails the start, as an empty CRL does.
TRUST_FILES = {
    "crl": ("tls-crl-invalid", "certificate revocation list", "X509 CRL", "openssl crl -noout -in"),
    "ca_list": ("tls-ca-invalid", "CA list", "CERTIFICATE", "openssl x509 -noout -subject -in"),
}


def check_trust_file(report: Report, key: str, rel: str, place: str) -> None:
    """tls-crl-invalid and tls-ca-invalid: the file loaded as the tls module loads it (with
    the standard library's ssl, which calls the same OpenSSL function)."""
    import ssl

    host = report.host
    path = host.resolve(rel)
    if path is None or not host.is_file(rel) or host.is_readable(rel) is False:
        return
    code, what, pem_label, openssl = TRUST_FILES[key]
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        shown = host.display(rel)
        report.add(
            code,
            Status.FAIL,
            f"TLS {key} {shown} ({place}) holds no PEM {what} OpenSSL can load "
            f"({printable(exc.reason or 'unreadable')}): the start fails (Unable to load "
            f"{'certificate revocation list' if key == 'crl' else 'CA list file'})",
            [
                f"{openssl} {shell_arg(shown)}  # must succeed",
                f"install the current {what} from your CA as {shown}, in PEM "
                f"(-----BEGIN {pem_label}-----), or remove {key} at {place}",
                *report.restart_steps(),
            ],
        )
    except OSError:
        return


def tls_sockets(parsed: ParsedConfig, check_out: CheckOutput | None) -> list[Socket] | None:
    """The tls: sockets a start opens, by address: kamailio -c's list, else the listen= lines;
    None when unknown (no listen= binds every address present at start, a name)."""
    import ipaddress

    if check_out is not None and check_out.ok:
        found = check_out.sockets
    elif parsed.explicit_listen:
        found = parsed.expected_sockets()
    else:
        return None
    sockets = [s for s in found if s.proto == "tls"]
    for sock in sockets:
        try:
            ipaddress.ip_address(sock.addr)
        except ValueError:
            return None
    return sockets


def profile_socket(address: str) -> Socket | None:
    """The tls: socket a `[server:IP:PORT]` profile is for; None for anything else."""
    import ipaddress

    addr, _, port = address.rpartition(":")
    if not port.isdecimal() or not 0 < int(port) < 65536:
        return None
    try:
        ip = ipaddress.ip_address(addr.strip().strip("[]"))
    except ValueError:
        return None
    return Socket("tls", ip.compressed, int(port))


def check_tls_profiles(
    report: Report, parsed: ParsedConfig, config: str, sockets: list[Socket] | None
) -> None:
    """tls-profile-no-listen and tls-profile-no-server-name: tls.cfg server profiles the tls
    module refuses at start, though `kamailio -c` passes ("No listening socket found"; "tls
    domain for any address but no server name")."""
    import ipaddress

    host = report.host
    if not parsed.tls_config:
        return
    tls_rel = path_from_config(parsed.tls_config, posixpath.dirname(parsed.main))
    tls_cfg = host.display(tls_rel)
    tls = tls_config(host, tls_rel)
    profiles = tls.profiles if tls is not None else []
    has_default = any(p.kind == "server" and p.address.lower() == "default" for p in profiles)
    instance = report.instance
    if instance is not None and instance.options.get("l"):
        sockets = None  # -l on its command line: kamailio -c -f does not list those sockets
    listening = {(ipaddress.ip_address(s.addr).compressed, s.port) for s in sockets or []}
    for profile in profiles:
        if profile.kind != "server":
            continue
        header = printable(f"[{profile.kind}:{profile.address}]")
        if profile.address.lower() == "any" and not profile.server_name:
            fix = printable(
                f"add server_name = NAME (the host name clients ask for) to {header} at "
                f"{profile.where}"
            )
            if not has_default:
                fix = (
                    f"sed -i '{profile.where.line}s/.*/[server:default]/' {shell_arg(tls_cfg)}"
                    f"  # or {fix}"
                )
            report.add(
                "tls-profile-no-server-name",
                Status.FAIL,
                f"TLS profile {header} ({profile.where}) has no server_name: the tls module "
                "refuses it at start ("
                + (
                    "duplicate definition for a tls profile (same address) and no server name"
                    if has_default
                    else "tls domain for any address but no server name"
                )
                + ")",
                [fix, *report.restart_steps()],
            )
            continue
        sock = profile_socket(profile.address)
        if sock is None or sockets is None or (sock.addr, sock.port) in listening:
            continue
        where = ", ".join(str(s) for s in sockets[:5]) or "none"
        steps = [
            f"change {header} at {profile.where} to a tls: socket Kamailio listens on ({where}), "
            f"or add listen={sock} to {config}"
        ]
        if parsed.explicit_listen and local_addresses(host).can_bind(sock.addr) is not False:
            steps = [
                f"printf '%s\\n' {shell_arg(f'listen={sock}')} >> {shell_arg(config)}"
                + printable(f"  # or change {header} at {profile.where} to a socket it listens on")
            ]
        report.add(
            "tls-profile-no-listen",
            Status.FAIL,
            f"TLS profile {header} ({profile.where}) is for {sock}, which no listen= opens "
            f"(tls: sockets: {where}): the tls module refuses it at start (No listening "
            "socket found)",
            [*steps, *report.restart_steps()],
        )


def run_account(report: Report) -> Account | None:
    """The account Kamailio runs as (or will, when started the usual way): -u of the judged
    instance, the unit's User=, the init script's USER (default kamailio); None: root."""
    host = report.host
    instance = report.instance
    name: str | None = None
    if instance is not None:
        values = instance.options.get("u")
        if values:
            name = values[-1]
        elif instance.main.uids:
            uid = instance.main.uids[1]
            if not uid:
                return None
            # The account's name as the host (or snapshot) names it: it goes into chgrp and
            # usermod steps, and its groups decide who can already read a file.
            name = host.users.user_name(uid)
            if name is None:
                return Account(f"uid {uid}", uid, None, frozenset())
    else:
        service = report.service
        if service.init_script:
            # Unknown (set by shell code not executed here): no access is judged.
            name = init_defaults(host).get("USER") or None
        elif "systemctl" in service.start:
            users = service_users(host)
            name = users[-1] if len(users) > 1 else None
    if not name or name == "root":
        return None
    return host.users.account(name)


def check_key_access(report: Report, rel: str, account: Account, key: str = "private_key") -> bool:
    """tls-key-unreadable (the key) and tls-file-unreadable (certificate, CA list, CRL): the
    run user cannot open the file (mode bits of the file and every folder above it), and the
    tls module loads them after Kamailio switched to that user; True when reported. The steps
    open each folder that blocks and the file itself: a chmod of the file alone cannot help
    while a folder above it stays closed."""
    host = report.host
    name, uid, gids = account.name, account.uid, account.gids
    problem = access_problem(host, rel, uid, gids)
    if problem is None:
        return False
    group = (host.users.group_name(min(gids)) or str(min(gids))) if gids else name
    steps = [
        access_step(host, path, st, path == rel.strip("/"), name, group, gids)
        for path, st in access_blockers(host, rel, uid, gids) or []
    ]
    folder = posixpath.dirname("/" + rel.strip("/"))
    risk = path_risk(host, folder, run_owners(host), folder=True) if host.is_live else None
    if risk:
        # chgrp/chmod run by root follow a symbolic link another account could put in place
        # of the file between this check and the step: no command on such a path.
        steps = [
            f"not a command to run as root: {risk}; make that folder root's alone first, "
            "then run this check again for the exact steps"
        ]
    what = "private key" if key == "private_key" else key
    report.add(
        "tls-key-unreadable" if key == "private_key" else "tls-file-unreadable",
        Status.FAIL,
        f"TLS {what} {host.display(rel)} is not readable by {name}, the user Kamailio "
        f"runs as: {problem}; the start fails (Permission denied)",
        [*steps, *report.restart_steps()],
    )
    return True


def access_step(
    host: Host,
    rel: str,
    st: os.stat_result,
    is_file: bool,
    user: str,
    group: str,
    gids: frozenset[int],
) -> str:
    """The command that lets `user` (run group `group`) read a TLS file (`is_file`) or pass
    through a folder on its path. A group that already has the access (Debian's ssl-cert for
    /etc/ssl/private) gets the user as a member, so no other member loses it; else the run
    group is given it."""
    path = shell_arg(host.display(rel))
    bit, mode = ("r", "640") if is_file else ("x", "")
    if not plausible_name(group):
        return f"give {printable(user)} read access to {path} (its group is unknown here)"
    group_has_it = bool(st.st_mode & (0o040 if is_file else 0o010))
    if st.st_gid in gids:
        return f"chmod g+{bit} {path}"
    if st.st_gid != 0 and group_has_it:
        other = host.users.group_name(st.st_gid) or str(st.st_gid)
        if plausible_name(other):
            return f"usermod -a -G {shell_arg(other)} {shell_arg(user)}"
    return f"chgrp {shell_arg(group)} {path} && chmod {mode or 'g+' + bit} {path}"


def check_key_pair(report: Report, cert_rel: str, key_rel: str) -> None:
    """tls-cert-invalid, tls-key-invalid and tls-key-mismatch, in the order the tls module
    loads them: the certificate (from its content, so a snapshot is judged too), then the
    key with it (the standard library's ssl; live only, the key is read in memory and never
    reported)."""
    import ssl

    host = report.host
    cert, key = host.display(cert_rel), host.display(key_rel)
    cert_form = certificate_form(host.read_bytes(cert_rel, MAX_PEM))
    if cert_form in ("der", "invalid"):
        steps = [f"openssl x509 -noout -subject -in {shell_arg(cert)}  # must print a subject"]
        if cert_form == "der":
            steps.append(
                f"openssl x509 -inform der -in {shell_arg(cert)} -out {shell_arg(cert)}.pem  "
                f"# then point the tls config at {cert}.pem"
            )
        else:
            steps.append(f"install the PEM certificate (-----BEGIN CERTIFICATE-----) as {cert}")
        report.add(
            "tls-cert-invalid",
            Status.FAIL,
            f"TLS certificate {cert} is "
            + ("DER, not PEM" if cert_form == "der" else "not a PEM certificate")
            + ": the start fails (Unable to load certificate file)",
            [*steps, *report.restart_steps()],
        )
        return
    if cert_form is None or not host.is_live or host.is_readable(key_rel) is not True:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An empty password: an encrypted key fails here instead of prompting on a terminal.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        # Same key type, other key: KEY_VALUES_MISMATCH; another type (an EC certificate
        # with an RSA key): NO_CERTIFICATE_ASSIGNED. Kamailio says "does not match" for both.
        if exc.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            report.add(
                "tls-key-mismatch",
                Status.FAIL,
                f"TLS private key {key} does not belong to certificate {cert}: the start "
                "fails (Key ... does not match the public key of the certificate)",
                [
                    f"openssl x509 -noout -pubkey -in {shell_arg(cert)} | sha256sum; "
                    f"openssl pkey -pubout -in {shell_arg(key)} | sha256sum  # must match",
                    "install the key the certificate was issued for, or a certificate for this key",
                    *report.restart_steps(),
                ],
            )
        elif exc.reason == "BAD_DECRYPT" or "bad decrypt" in str(exc):
            report.notes.append(f"TLS private key {key} is encrypted: the pair was not checked")
        else:
            report.add(
                "tls-key-invalid",
                Status.FAIL,
                f"TLS private key {key} is not a PEM private key Kamailio can load: the start "
                "fails (Unable to load private key)",
                [
                    f"openssl pkey -noout -in {shell_arg(key)}  # must succeed",
                    f"install the PEM private key of {cert} as {key}",
                    *report.restart_steps(),
                ],
            )
    except OSError:
        return


MAX_PEM = 1 << 20  # certificates, chains, CRLs: far larger is not a certificate file


def certificate_form(data: bytes | None) -> str | None:
    """How the tls module would take a certificate file: "pem" (a PEM certificate it loads),
    "der" (a DER certificate, which it cannot load), "invalid"; None: unreadable here."""
    import ssl

    if data is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=data.decode("ascii"))
        if context.cert_store_stats()["x509"]:
            return "pem"
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        pass
    der = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        der.load_verify_locations(cadata=data)
    except (ssl.SSLError, ValueError):
        return "invalid"
    return "der" if der.cert_store_stats()["x509"] else "invalid"


def file_problem(host: Host, rel: str) -> str | None:
    """Why Kamailio could not load a certificate or key file: missing, or (live) unreadable."""
    if not host.is_file(rel):
        return host.why_unreadable(rel)
    # Under --root who could read it is unknown (None): only a live host says "unreadable".
    return "unreadable" if host.is_readable(rel) is False and host.is_root_user else None


# --- from kamailio_modules.py
# Where the module path is unknown and no folder exists: Debian amd64's, for the message.
FALLBACK_MODULE_DIR = "usr/lib/x86_64-linux-gnu/kamailio/modules"
# Modules Debian ships outside the `kamailio` package (src/Makefile.groups of Kamailio 5.6).
DEBIAN_MODULE_PACKAGES: dict[str, tuple[str, ...]] = {
    "kamailio-websocket-modules": ("websocket",),
    "kamailio-tls-modules": ("tls", "auth_identity", "crypto"),
    "kamailio-mysql-modules": ("db_mysql",),
    "kamailio-postgres-modules": ("db_postgres",),
    "kamailio-sqlite-modules": ("db_sqlite",),
    "kamailio-unixodbc-modules": ("db_unixodbc",),
    "kamailio-berkeley-modules": ("db_berkeley",),
    "kamailio-redis-modules": ("db_redis", "ndb_redis", "topos_redis"),
    "kamailio-mongodb-modules": ("db_mongodb", "ndb_mongodb"),
    "kamailio-ldap-modules": ("ldap", "db2_ldap", "h350"),
    "kamailio-radius-modules": ("acc_radius", "auth_radius", "misc_radius", "peering"),
    "kamailio-presence-modules": (
        "presence",
        "presence_conference",
        "presence_dialoginfo",
        "presence_mwi",
        "presence_profile",
        "presence_reginfo",
        "presence_xml",
        "presence_dfks",
        "pua",
        "pua_bla",
        "pua_dialoginfo",
        "pua_json",
        "pua_reginfo",
        "pua_rpc",
        "pua_usrloc",
        "pua_xmpp",
        "rls",
        "xcap_client",
        "xcap_server",
    ),
    "kamailio-xml-modules": ("xhttp_pi", "xmlops", "xmlrpc"),
    "kamailio-json-modules": ("json", "jsonrpcc", "jansson", "janssonrpcc"),
    "kamailio-lua-modules": ("app_lua", "app_lua_sr"),
    "kamailio-python3-modules": ("app_python3", "app_python3s"),
    "kamailio-perl-modules": ("app_perl", "db_perlvdb"),
    "kamailio-ruby-modules": ("app_ruby",),
    "kamailio-mono-modules": ("app_mono",),
    "kamailio-utils-modules": ("utils", "http_client", "lost"),
    "kamailio-memcached-modules": ("memcached",),
    "kamailio-snmpstats-modules": ("snmpstats",),
    "kamailio-xmpp-modules": ("xmpp",),
    "kamailio-cpl-modules": ("cplc",),
    "kamailio-geoip-modules": ("geoip",),
    "kamailio-geoip2-modules": ("geoip2",),
    "kamailio-ims-modules": (
        "cdp",
        "cdp_avp",
        "ims_auth",
        "ims_charging",
        "ims_dialog",
        "ims_diameter_server",
        "ims_icscf",
        "ims_ipsec_pcscf",
        "ims_isc",
        "ims_ocs",
        "ims_qos",
        "ims_registrar_pcscf",
        "ims_registrar_scscf",
        "ims_usrloc_pcscf",
        "ims_usrloc_scscf",
    ),
    "kamailio-sctp-modules": ("sctp",),
    "kamailio-outbound-modules": ("outbound",),
    "kamailio-autheph-modules": ("auth_ephemeral",),
    "kamailio-kazoo-modules": ("kazoo",),
    "kamailio-cnxcc-modules": ("cnxcc",),
    "kamailio-erlang-modules": ("erlang",),
    "kamailio-systemd-modules": ("log_systemd", "systemdops"),
    "kamailio-rabbitmq-modules": ("rabbitmq",),
    "kamailio-phonenum-modules": ("phonenum",),
    "kamailio-mqtt-modules": ("mqtt",),
    "kamailio-secsipid-modules": ("secsipid", "secsipid_proc"),
    "kamailio-lwsc-modules": ("lwsc",),
    "kamailio-nats-modules": ("nats",),
    "kamailio-extra-modules": (
        "evapi",
        "gzcompress",
        "uuid",
        "http_async_client",
        "jwt",
        "dlgs",
        "slack",
    ),
}
MODULE_PACKAGE = {
    module: package for package, modules in DEBIAN_MODULE_PACKAGES.items() for module in modules
}


def check_modules(
    report: Report,
    parsed: ParsedConfig | None,
    check_out: CheckOutput | None,
    argv_options: dict[str, list[str]],
) -> bool:
    """Report each loadmodule whose .so is missing; True if any is."""
    host = report.host
    dirs = [d.strip("/") for d in (parsed.mpaths if parsed and parsed.mpaths else [])]
    if not dirs:
        dirs = [d.strip("/") for v in argv_options.get("L", []) for d in v.split(":") if d]
    if not dirs:
        dirs = [d for p in MODULE_DIRS for d in host.glob(p) if host.is_dir(d)]
        dirs = dirs or [FALLBACK_MODULE_DIR]
    report.details["module_path"] = ["/" + d for d in dirs]
    missing: dict[str, tuple[str, Location | None]] = {}
    for name, loaded_at in parsed.modules if parsed else []:
        if not module_present(host, name, dirs):
            missing.setdefault(module_basename(name), (name, loaded_at))
    for name in check_out.missing_modules if check_out else []:
        missing.setdefault(module_basename(name), (name, None))
    for base, (name, where) in missing.items():
        package, reinstall = package_of(host, base, dirs)
        place = f" (loadmodule at {where})" if where else ""
        file = name if name.endswith(".so") else f"{name}.so"
        if package is None:
            steps = [f"apt-cache search kamailio  # find the package that ships {base}.so"]
        elif reinstall:  # installed, but its .so was deleted: a plain install does nothing
            steps = [f"apt-get install --reinstall {package}"]
        else:
            steps = [f"apt-get install {package}"]
        steps.append(report.check_command)
        report.add(
            "module-missing",
            Status.FAIL,
            f"module {file}{place} is not in the module path "
            f"{':'.join('/' + d for d in dirs)}"
            + (f"; it is shipped by {package}" if package else ""),
            steps,
        )
    return bool(missing)


def package_of(host: Host, module: str, dirs: list[str]) -> tuple[str | None, bool]:
    """The Debian package shipping `module`.so, and whether it is installed with that file
    gone (a reinstall brings it back): an installed package's file list, else the known split
    of Kamailio's modules into packages."""
    folders = [*dirs, *(d for p in MODULE_DIRS for d in host.glob(p) if d not in dirs)]
    paths = [f"{d}/{module}.so" for d in folders]
    known = MODULE_PACKAGE.get(module)
    packages = host.packages.find(names=[known]) if known else host.packages.find(prefix="kamailio")
    for package in packages:
        for path in paths:
            if host.packages.owns(package, "/" + path):
                return package.name, not host.exists(path)
    return known, False


def module_present(host: Host, name: str, dirs: list[str]) -> bool:
    """Kamailio's lookup: a path as given, else DIR/NAME.so or DIR/NAME/NAME.so on the path."""
    if "/" in name:
        file = name if name.endswith(".so") else name + ".so"
        if file.startswith("/"):
            return host.exists(file.lstrip("/"))
        return any(host.exists(f"{d}/{file}") for d in dirs)
    base = module_basename(name)
    return any(host.exists(f"{d}/{base}.so") or host.exists(f"{d}/{base}/{base}.so") for d in dirs)


# --- processes posing as Kamailio
def report_foreign(report: Report, foreign: list[Instance], expected: list[Socket]) -> None:
    """One finding per untrusted process tree named kamailio: never evidence that Kamailio
    runs, never a source of arguments; FAIL when it holds a socket Kamailio should hold."""
    from preflight.text import printable

    if not foreign:
        return
    host = report.host
    tables = host.sockets.bound
    for instance in foreign:
        proc = instance.main
        inodes: set[int] = set()
        for pid in instance.pids:
            inodes |= socket_inodes(host, pid) or set()
        held = sorted(
            {
                str(sock)
                for sock in expected
                for b in tables
                if b.inode in inodes and conflicts(b, sock)
            }
        )
        owner = host.users.describe_user(proc.uids[1]) if proc.uids else "unknown user"
        exe = printable(proc.exe) if proc.exe else "executable unknown"
        message = (
            f"pid {proc.pid} ({owner}, {exe}) runs as kamailio but is not a trusted Kamailio: "
            f"{printable(instance.untrusted or '')}; it is not taken as Kamailio"
        )
        if held:
            message += f", and it holds {', '.join(held[:5])}"
        report.add(
            "foreign-process",
            Status.FAIL if held else Status.WARN,
            message,
            [
                f"ps -o pid,user,args -p {proc.pid}",
                f"kill {proc.pid}  # if this is not a Kamailio of yours",
                "if that account runs your Kamailio: set [checks.kamailio] user to it and "
                "install the binary root-owned",
            ],
        )


# --- listen= addresses the host does not have
def check_addresses(report: Report, expected: list[Socket], parsed: ParsedConfig | None) -> None:
    """address-missing: a configured address no interface has. `kamailio -c` accepts it; the
    start fails with "Cannot assign requested address" (and a running instance keeps a socket
    on an address that is gone)."""
    host = report.host
    specific = [s for s in expected if _needs_lookup(s.addr)]
    if not specific:
        return  # wildcards and loopback: nothing to look up (fib_trie is large on routers)
    local = local_addresses(host)
    reported: set[str] = set()
    for sock in specific:
        if sock.addr in reported or local.can_bind(sock.addr) is not False:
            continue
        reported.add(sock.addr)
        report.missing_addresses.add(sock.addr)
        where = next(
            (
                str(entry.where)
                for entry in (parsed.listens if parsed else [])
                if any(s.addr == sock.addr for s in entry.sockets)
            ),
            report.details["config"],
        )
        report.add(
            "address-missing",
            Status.FAIL,
            f"{sock} ({where}): no interface has the address {sock.addr}, so Kamailio "
            "cannot bind it (Cannot assign requested address)",
            [
                f"add {sock.addr} to the interface that should carry it "
                f"(ip address add {shell_arg(sock.addr)} dev IFACE), or change the listen= "
                f"at {where} to an address of this host (ip -brief address)",
                *report.restart_steps(),
            ],
        )


def _needs_lookup(addr: str) -> bool:
    """A specific address that is not loopback (127/8 and ::1 are always local)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_loopback)
