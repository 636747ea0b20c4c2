"""The `kamailio` check: is every Kamailio running, and listening exactly where its own
configuration says?

Each trusted instance (a main process and its descendants) is judged on its own (`judge`).
Expected sockets come from Kamailio itself (`kamailio -c -f FILE` prints the resolved `Listening
on` block after every preprocessor directive) plus `[checks.kamailio] expect`; under `--root`, where
nothing is executed, from a best-effort reading of the configuration. Actual sockets are the TCP
listening and UDP bound sockets held by any process of that instance's tree, read from the
kernel's socket tables. Configuration content is never quoted: configs hold database passwords,
so reports name a file and line and Kamailio's own message, with URL credentials masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from preflight.check import AppliesWhen, Check, CheckContext, Finding, FindingDoc, Option, Status
from preflight.text import printable, shell_arg
from preflight_checks.kamailio.config import DEFAULT_CONFIG, MODULE_DIRS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from preflight.facts.processes import Process
    from preflight.host import Host
    from preflight_checks.kamailio.config import CheckOutput, ParsedConfig, Socket
    from preflight_checks.kamailio.facts import Instance
    from preflight_checks.kamailio.findings import Report, Service


def config_path_problem(value: str) -> str | None:
    """Why `[checks.kamailio] config` names no file a Kamailio could be started with: a
    relative path would be looked up in whatever folder preflight runs in, never in the one
    Kamailio starts in."""
    if not value.startswith("/"):
        return f"{printable(value)!r} is not an absolute path (name the file from /)"
    if printable(value) != value:
        return f"{printable(value)!r} holds control characters"
    return None


class KamailioCheck(Check):
    id = "kamailio"
    title = "Kamailio listeners and configuration drift"
    description = (
        "Is every Kamailio that runs listening exactly where its own configuration says, and "
        "does the configuration that should run run? Each trusted Kamailio main process (not "
        "a zombie) is judged against its own config: its -f resolved where it was started, "
        "its -A defines, its -u user. The expected sockets are those `kamailio -c -f FILE` "
        "resolves for that config, plus `expect` for the instance running `config`; under "
        "--root, where no command runs, a best-effort reading of listen=/port= lines through "
        "include_file/import_file and #!define. They are compared with the TCP listening and "
        "UDP bound sockets of that instance's process tree. When `config` (else "
        "/etc/default/kamailio's CFGFILE, else /etc/kamailio/kamailio.cfg, when nothing runs) "
        "is run by no instance, it is not running. With several instances, every message "
        "names the instance (pid and config) and its remediation acts on that instance as it "
        "was started (its unit, the init script, or its pid and exact command line), and "
        "details.decided_by names the judgement that decided the status. A restart through "
        "the init script or the unit checks and judges the config it really starts (CFGFILE), "
        "and steps come in an order that works from the top: one restart, last. The "
        "check also finds modules whose .so is missing, TLS listeners that enable_tls=yes is "
        "missing for, certificate files tls.cfg names that do not exist (kamailio -c does not "
        "notice them; the start fails), and a config edited after its instance started (a "
        "restart is pending). Reports never quote configuration content, only file, line and "
        "Kamailio's own message, credentials in URLs masked."
    )
    findings = {
        "kamailio.ok": FindingDoc(
            Status.PASS, "Kamailio runs and listens on every expected socket"
        ),
        "kamailio.running-unknown": FindingDoc(
            Status.SKIP,
            "a snapshot without a process list (ROOT/proc/<pid>): the configuration was "
            "checked, whether Kamailio runs cannot be told",
            "judge it live, or from a snapshot that holds proc/<pid> of the Kamailio processes",
        ),
        "kamailio.not-installed": FindingDoc(
            Status.SKIP,
            "no kamailio binary, package or process (a failure with required = true)",
            "apt-get install kamailio",
        ),
        "kamailio.not-running": FindingDoc(
            Status.FAIL,
            "no Kamailio process runs with the configuration; or the service is enabled "
            "(RUN_KAMAILIO=yes in /etc/default/kamailio, or an enabled unit where systemd "
            "runs) and its Kamailio is down, even while other instances run",
            "systemctl status kamailio; journalctl -u kamailio; fix the first error of "
            "`kamailio -c -f FILE`; systemctl start kamailio (without systemd: "
            "service kamailio status/start, turning RUN_KAMAILIO=yes on first as a step of "
            "its own when the init script would refuse; with no syslog file or journal, "
            "`kamailio -DD -E -f FILE` in the foreground prints why a start failed)",
        ),
        "kamailio.config-invalid": FindingDoc(
            Status.FAIL,
            "Kamailio rejects its configuration (a restart would fail)",
            "fix the file and line `kamailio -c -f FILE` names",
        ),
        "kamailio.listener-missing": FindingDoc(
            Status.FAIL,
            "an expected socket is not held by Kamailio (one finding per socket; "
            "another process holding the port is named with its pid; a missing address "
            "points to address-missing). After a config change it says 'restart pending' "
            "and stays a failure: until the restart nothing serves that socket, so clients "
            "sent to it fail now",
            "free the port or fix listen=, then the one restart step, last",
        ),
        "kamailio.listener-unexpected": FindingDoc(
            Status.WARN,
            "Kamailio holds a socket its configuration does not resolve to: the config "
            "changed after start (restart pending), or an older configuration runs",
            "the restart step (on config-changed when reported)",
        ),
        "kamailio.tls-disabled": FindingDoc(
            Status.WARN,
            "a tls: listen is configured but enable_tls=yes is missing, so "
            "Kamailio silently drops it",
            "set enable_tls=yes and load tls.so",
        ),
        "kamailio.tls-files-missing": FindingDoc(
            Status.FAIL,
            "a certificate, key, CA or CRL file the tls module loads is missing or unreadable "
            "(named in its config file or modparams, else cert.pem next to the main config); "
            "kamailio -c passes but the start fails",
            "create the file or fix the path in tls.cfg / the tls modparam",
        ),
        "kamailio.tls-module-missing": FindingDoc(
            Status.WARN,
            'enable_tls=yes without loadmodule "tls.so": Kamailio disables TLS at start and '
            "drops every tls: listen (a restart alone cannot open it)",
            'add loadmodule "tls.so", check with kamailio -c, then restart',
        ),
        "kamailio.tls-key-unreadable": FindingDoc(
            Status.FAIL,
            "the TLS private key is not readable by the user Kamailio runs as (-u, the unit's "
            "User=, the init script's USER): the start fails with Permission denied",
            "let the user through: chgrp GROUP KEY && chmod 640 KEY, and for a folder on the "
            "way that blocks it chmod g+x (after chgrp GROUP, or usermod -a -G for a group "
            "that already has access), then restart",
        ),
        "kamailio.tls-file-unreadable": FindingDoc(
            Status.FAIL,
            "a TLS certificate, CA list or CRL file (or a folder above it) the user Kamailio "
            "runs as cannot read: the tls module loads it after the switch to that user, so "
            "the start fails with Permission denied",
            "let the user through as for tls-key-unreadable, then restart",
        ),
        "kamailio.tls-key-mismatch": FindingDoc(
            Status.FAIL,
            "the TLS private key does not belong to its certificate (checked by loading the "
            "pair with Python's ssl): the start fails",
            "install the matching key or certificate, then restart",
        ),
        "kamailio.tls-cert-invalid": FindingDoc(
            Status.FAIL,
            "the TLS certificate holds no PEM certificate the tls module can load (a DER "
            "file is named as such): the start fails",
            "install the PEM certificate (convert a DER one with openssl x509 -inform der), "
            "then restart",
        ),
        "kamailio.tls-key-invalid": FindingDoc(
            Status.FAIL,
            "the TLS private key is not a PEM key the tls module can load (checked with "
            "Python's ssl): the start fails (Unable to load private key)",
            "install the PEM private key of the certificate, then restart",
        ),
        "kamailio.tls-crl-invalid": FindingDoc(
            Status.FAIL,
            "the TLS crl file holds no CRL OpenSSL can load (empty, not PEM): the start "
            "fails (Unable to load certificate revocation list); kamailio -c passes",
            "install the CA's current CRL in PEM, or remove the crl setting, then restart",
        ),
        "kamailio.tls-ca-invalid": FindingDoc(
            Status.FAIL,
            "the TLS ca_list file holds no certificate OpenSSL can load (empty, not PEM): "
            "the start fails (Unable to load CA list file); kamailio -c passes",
            "install the CA certificates in PEM, or remove the ca_list setting, then restart",
        ),
        "kamailio.tls-profile-no-listen": FindingDoc(
            Status.FAIL,
            "a tls.cfg [server:IP:PORT] profile for a socket no listen= opens (a wildcard "
            "listen does not count): the start fails (No listening socket found); "
            "kamailio -c passes",
            "add the listen=tls:IP:PORT (a command is given when the config lists its "
            "sockets) or change the profile to a tls: socket Kamailio opens, then restart",
        ),
        "kamailio.tls-profile-no-server-name": FindingDoc(
            Status.FAIL,
            "a tls.cfg [server:any] profile without server_name: the start fails (tls domain "
            "for any address but no server name, or a duplicate of [server:default]); "
            "kamailio -c passes",
            "add server_name = NAME to it, or make it [server:default] where none exists, "
            "then restart",
        ),
        "kamailio.module-missing": FindingDoc(
            Status.FAIL,
            "a loadmodule whose .so is not in the module path",
            "apt-get install the package named in the message",
        ),
        "kamailio.config-changed": FindingDoc(
            Status.WARN,
            "the config or an included file changed after the running main "
            "process started: the change is not applied (a restart is pending)",
            "kamailio -c -f FILE, then restart Kamailio: this finding carries the instance's "
            "one restart step, checking the config the restart really starts (CFGFILE for "
            "the init script and the unit); none while that config cannot start",
        ),
        "kamailio.address-not-bound": FindingDoc(
            Status.WARN,
            "without listen= Kamailio binds the addresses present at start; this "
            "one appeared later and is not served",
            "restart Kamailio, or add listen=",
        ),
        "kamailio.owners-unknown": FindingDoc(
            Status.PASS,
            "not root (or a snapshot without fd links): which process holds a socket cannot "
            "be seen, so sockets are matched by address only and unexpected ones are not "
            "reported; the status rests on what can be seen",
            "run preflight as root",
        ),
        "kamailio.foreign-process": FindingDoc(
            Status.FAIL,
            "a process named kamailio that is not trusted (not run by root, the kamailio "
            "account or [checks.kamailio] user, or its executable is not a root-owned file in "
            "root-only folders): never taken as Kamailio, its arguments never used; a failure "
            "when it holds a socket Kamailio should hold, else a warning",
            "ps -o pid,user,args -p PID; kill PID if it is not yours",
        ),
        "kamailio.untrusted-file": FindingDoc(
            Status.WARN,
            "the Kamailio binary, the config or an included file could be changed by an "
            "account other than root (its owner, or a folder on its path, is writable by "
            "others), or an include or module it names is missing where such an account "
            "could create it: `kamailio -c` is not run on it and the config is read best "
            "effort",
            "chown root and chmod go-w the file and every folder above it",
        ),
        "kamailio.config-too-complex": FindingDoc(
            Status.WARN,
            "#!subst/#!define expansions or directives pass the reader's bounds (a line "
            "growing past 64 KiB, more than 64 #!subst or 4096 #!define): those lines are "
            "not expanded; Kamailio's own `kamailio -c` still judges the file",
            "simplify the named #!subst/#!define lines",
        ),
        "kamailio.config-unreadable": FindingDoc(
            Status.WARN,
            "the config or an included file exists but this run may not read it (not "
            "root): its validity is unknown, never reported as invalid",
            "run preflight as root",
        ),
        "kamailio.address-missing": FindingDoc(
            Status.FAIL,
            "a listen= address no interface of the host has: `kamailio -c` accepts it, the "
            "start fails (Cannot assign requested address); running or not",
            "add the address to its interface, or change listen= to an address of the host",
        ),
        "kamailio.module-address-invalid": FindingDoc(
            Status.FAIL,
            "a module socket whose address the module refuses when Kamailio starts: ctl's "
            "binrpc with a host name (localhost included; an IP, * or a port alone work), "
            "jsonrpcs' dgram_socket with anything but an IPv4 address. `kamailio -c` does not "
            "initialize modules, so it passes; the start fails (ctl: init_tcpudp_sock: bad "
            "address NAME; jsonrpcs: failed to resolve NAME). The message names the modparam, "
            "file:line and that error",
            "the edit to an IP address (a sed on that line for localhost, which becomes "
            "127.0.0.1), before the one restart or start step",
        ),
        "kamailio.config-env-unknown": FindingDoc(
            Status.WARN,
            "the config defines names from environment variables (#!defenv, #!defenvs, "
            "#!trydefenv, #!trydefenvs) and the environment Kamailio starts with is unknown "
            "(no instance runs it, not root, another user's process, or a value that is not "
            "plain): `kamailio -c` is not run, since it would judge another environment; "
            "validity is unknown, never reported as invalid. With the instance's environment "
            "readable, `kamailio -c` gets exactly the variables those lines name from it",
            "run preflight as root while Kamailio runs, or `kamailio -c` with the variables set",
        ),
        "kamailio.port-shared": FindingDoc(
            Status.FAIL,
            "a SIP socket Kamailio holds is also bound by another process (SO_REUSEADDR/"
            "SO_REUSEPORT: another program, or a second Kamailio with the same config), which "
            "takes some or all of the traffic; both are named",
            "stop the other process the way it was started, or move it to another port",
        ),
        "kamailio.init-script-fork-no": FindingDoc(
            Status.FAIL,
            "Debian's init script is what starts (or restarts) this config, and a line of it "
            "matches the script's fork=no test (a plain grep for "
            "^[[:space:]]*fork[[:space:]]*=[[:space:]]*no, so a line inside a /* */ comment "
            "counts too): `service kamailio start` starts nothing and exits 0, a restart "
            "stops Kamailio and starts nothing",
            "the sed step that turns fork=no into fork=yes on exactly the lines the test "
            "matches, before the one start or restart step",
        ),
        "kamailio.config-unknown": FindingDoc(
            Status.SKIP,
            "no Kamailio runs and the config the service starts is unknown: CFGFILE in "
            "/etc/default/kamailio is set by shell code this run does not execute (a "
            "snapshot, or a file not root's); the note names the line",
            "write CFGFILE=/path/to/config as a plain assignment, or set [checks.kamailio] config",
        ),
        "kamailio.option-invalid": FindingDoc(
            Status.ERROR,
            "an `expect` entry is not proto:addr:port",
            "write entries such as udp:0.0.0.0:5060 or tcp:[::]:8080",
        ),
    }
    options = {
        "config": Option(
            str,
            None,
            "the Kamailio config that must run, an absolute path (not-running when no "
            "instance runs it; every other instance is judged against its own config all the "
            "same); default: the instances that run, else CFGFILE of /etc/default/kamailio, "
            "else /etc/kamailio/kamailio.cfg",
            problem=config_path_problem,
        ),
        "expect": Option(
            list,
            [],
            "sockets the instance running `config` must hold, e.g. "
            '["udp:0.0.0.0:5060", "tcp:[::]:8080"]',
        ),
        "binary": Option(
            str,
            None,
            "the kamailio binary to run `kamailio -c` with (default: the running instance's, "
            "else kamailio on PATH); it must be root-owned in root-only folders",
        ),
        "user": Option(
            str,
            None,
            "an account whose kamailio processes count as instances, besides root, "
            "kamailio and the User=/USER= of the unit and /etc/default/kamailio",
        ),
    }
    paths = (
        # The config, its includes and tls.cfg, certificates (collect keeps only the metadata
        # of private keys).
        "etc/kamailio/*.cfg",
        "etc/kamailio/*.pem",
        "etc/kamailio/*.crt",
        "etc/kamailio/*.key",
        "etc/default/kamailio",  # RUN_KAMAILIO, CFGFILE, USER: how the init script starts it
        # collect also copies every file these name, wherever it is: includes, the tls config
        # and its certificate, CA, CRL and key files, cdp's config_file; and CFGFILE's config.
        "kamailio-config:etc/kamailio/*.cfg",
        "kamailio-defaults:etc/default/kamailio",
        "kamailio-config:{config}",  # `[checks.kamailio] config` of `collect -c`, followed too
        "etc/default/kamailio.d/*",
        "etc/systemd/system/kamailio.service",  # User=: who Kamailio runs as
        "lib/systemd/system/kamailio.service",
        "usr/lib/systemd/system/kamailio.service",
        "etc/passwd",  # the run user's uid and groups (key permissions)
        "etc/group",
        "var/lib/dpkg/info/kamailio*.list",
        "proc/net/tcp",
        "proc/net/tcp6",
        "proc/net/udp",
        "proc/net/udp6",
        "proc/sys/net/ipv6/bindv6only",
        "proc/net/fib_trie",  # local addresses: can a listen= address be bound?
        "proc/net/if_inet6",
        "proc/sys/net/ipv4/ip_nonlocal_bind",
        "proc/sys/net/ipv6/ip_nonlocal_bind",
    )
    # Only the presence of each matters: collect stores them as empty files (the init script
    # says `service kamailio` is how Kamailio starts where systemd does not run).
    markers = (
        "etc/init.d/kamailio",
        "usr/sbin/kamailio",
        "usr/local/sbin/kamailio",
        *(f"{folder}/*.so" for folder in MODULE_DIRS),
    )

    applies = AppliesWhen(
        "Kamailio is not installed (no kamailio binary, package or process)",
        packages=("kamailio",),
        commands=("kamailio",),
        processes=("kamailio",),
        remediation=("apt-get install kamailio",),
    )

    def not_applicable(self, ctx: CheckContext) -> Finding | None:
        # A configured `binary` is Kamailio installed where PATH does not look.
        return None if ctx.options.get("binary") else super().not_applicable(ctx)

    def run(self, ctx: CheckContext) -> Iterable[Finding]:
        return run_check(ctx)


# Instances judged in one run (each may run `kamailio -c` once); more are listed, not judged.
MAX_JUDGED = 16


@dataclass
class Judging:
    """What every judgement of one run shares."""

    ctx: CheckContext
    binary: str | None
    instances: list[Instance]  # every trusted instance
    processes: list[Process]  # the host's, untrusted Kamailio trees left out
    proc_visible: bool
    labelled: bool  # several judged: each message names its instance
    # `kamailio -c` output by (binary, config, defines): instances of one config run it once
    kamailio_c: dict[tuple[str, ...], CheckOutput | None] = field(default_factory=dict)
    shared_reported: set[tuple[frozenset[int], str]] = field(default_factory=set)


def run_check(ctx: CheckContext) -> list[Finding]:
    # The helpers are imported here, not above: the engine imports this module to validate
    # [checks.kamailio] even when the check does not run, and they cost ~15 ms.
    from preflight.model import worst_finding
    from preflight_checks.kamailio.facts import (
        choose_instance,
        expected_from_option,
        find_instances,
        init_defaults,
        trust_processes,
    )
    from preflight_checks.kamailio.findings import Report, host_service, report_foreign

    host = ctx.host
    report = Report(host, ctx.details)
    expect = expected_from_option(report, ctx.options.get("expect") or [])
    found = find_instances(host)
    trust_processes(host, found, ctx.options.get("user"))
    instances = [i for i in found if i.untrusted is None]
    foreign = [i for i in found if i.untrusted is not None]
    binary = ctx.options.get("binary") or host.which("kamailio")
    package = host.packages.get("kamailio")
    report.details.update({"binary": binary, "package": package.version if package else None})
    # Nothing of Kamailio here is the engine's `kamailio.not-installed` (KamailioCheck.applies).
    # The primary judgement: the instance running the config that should run, or that config
    # when no instance runs it. Every other trusted instance is judged against its own config.
    primary, config_rel, source = choose_instance(host, instances, ctx.options.get("config"))
    defaults = init_defaults(host)
    if defaults.untrusted:
        report.notes.append(
            f"/etc/default/kamailio was not executed: {defaults.untrusted} (the init script "
            "sources it as root)"
        )
    report.notes += sorted(set(defaults.unknown.values()))
    if primary is None and not config_rel:
        report.add(
            "config-unknown",
            Status.SKIP,
            "no Kamailio runs and the config the Kamailio service starts is unknown: "
            + defaults.unknown.get("CFGFILE", "CFGFILE of /etc/default/kamailio is empty"),
            [
                "write CFGFILE=/path/to/config as a plain assignment in "
                "/etc/default/kamailio, or set [checks.kamailio] config",
            ],
        )
        report.details["notes"] = report.notes
        return report.findings
    others = [i for i in instances if i is not primary]
    if len(others) >= MAX_JUDGED:
        report.notes.append(
            f"{len(instances)} Kamailio instances run: only {MAX_JUDGED} of them are judged"
        )
        others = others[: MAX_JUDGED - 1]
    # A snapshot may hold a few proc/<pid> files (proc/1/environ) without a process list.
    proc_visible = host.processes.visible
    foreign_pids = {pid for i in foreign for pid in i.pids}
    # The service (init script or unit) starts its own config: judged too when its instance
    # runs another config (a restart switches to it) or, enabled, runs not at all.
    service = host_service(host) if proc_visible else None
    service_instance = next((i for i in instances if service and service.runs(i)), None)
    service_config_rel = service_judged(host, service, service_instance, primary, config_rel)
    by_hand = next(
        (
            i
            for i in instances
            if service_config_rel and same_config(host, i.config_rel, service_config_rel)
        ),
        None,
    )
    if by_hand is not None and service is not None and service_instance is None:
        # The enabled service is down but its config runs, started another way. Stopping that
        # healthy instance so the service can take its ports is an outage, not a fix: say it.
        report.notes.append(
            f"the Kamailio service is enabled ({service.enabled_by}) but not running; its config "
            f"{host.display(service_config_rel)} runs as pid {by_hand.main.pid}, started "
            "another way: `service kamailio restart` would not restart that instance"
        )
        service_config_rel = ""
    judging = Judging(
        ctx,
        binary,
        instances,
        [p for p in host.processes if p.pid not in foreign_pids],
        proc_visible,
        labelled=bool(others) or bool(service_config_rel),
    )
    restart_into = service_config_rel if service_instance is not None else ""
    judgements = [
        judge(judging, i, c, src, exp, restart_into if i is service_instance else "")
        for i, c, src, exp in [
            (primary, config_rel, source, expect),
            *((i, i.config_rel, "running process", []) for i in others),
        ]
    ]
    service_judgement = None
    if service_config_rel and service is not None:
        service_judgement = judge(
            judging,
            None,
            service_config_rel,
            "CFGFILE" if service_config_rel != DEFAULT_CONFIG else "default",
            [],
            pending_for=service_instance,
            enabled_by=service.enabled_by,
        )
    for judgement in judgements:
        blocked = ""
        if (
            service is not None
            and service.config_rel is None
            and service_instance is not None
            and judgement.instance is service_instance
        ):
            blocked = (
                "no restart step: a restart through the service starts CFGFILE of "
                "/etc/default/kamailio, which is unknown here (see the notes); check that "
                "config with `kamailio -c -f CFGFILE` before restarting the service"
            )
        elif (
            service_judgement is not None
            and judgement.instance is service_instance
            and service_judgement.blocking()
        ):
            blocked = (
                f"no restart yet: a restart through the service starts "
                f"{host.display(service_config_rel)} (CFGFILE of /etc/default/kamailio), "
                "which cannot start: fix the findings about it first, then run this "
                "check again"
            )
        judgement.order_steps(blocked)
    if service_judgement is not None:
        service_judgement.order_steps(own_restart=service_instance is None)
        # What the service starts comes first: its findings decide whether a restart works.
        judgements.insert(0, service_judgement)
    first = next(j for j in judgements if j is not service_judgement)
    for judgement in judgements:
        report.findings += judgement.findings
        prefix = f"{judgement.label}: " if judgement.label else ""
        report.notes += [prefix + note for note in judgement.notes]
    all_expected = [s for j in judgements for s in j.expected]
    report_foreign(report, foreign, all_expected)
    best_effort = any(j.best_effort for j in judgements)
    # The top-level details describe the judgement that decided the status (its worst
    # finding), so `code` and `pid`/`config`/`expected` never speak of two instances;
    # every judged instance is in `instances`, the deciding one named in `decided_by`.
    worst = worst_finding(report.findings)
    deciding = next((j for j in judgements if any(f is worst for f in j.findings)), first)
    report.details.update(deciding.details)
    report.details.pop("notes", None)
    report.details["decided_by"] = {
        "pid": deciding.details.get("pid"),
        "config": deciding.details.get("config"),
    }
    report.details["instances"] = [
        {**j.details, "findings": [f.code for f in j.findings]}
        for j in judgements
        if j.instance is not None
    ]

    if report.notes:
        report.details["notes"] = report.notes
    if not report.findings and not proc_visible:
        # Contract section 6: what it needs is missing, so it skips and says which file.
        report.add(
            "running-unknown",
            Status.SKIP,
            f"{host.display('proc')} holds no process list: whether Kamailio runs is unknown "
            "(its configuration is consistent)",
        )
    elif not report.findings:
        judged = [j for j in judgements if j.instance is not None]
        if len(judged) > 1:
            pids = ", ".join(f"pid {j.instance.main.pid}" for j in judged if j.instance)
            what = f"{len(judged)} Kamailio instances ({pids}) each listen where their configs say"
        elif primary is not None:
            what = (
                f"Kamailio (pid {primary.main.pid}) listens on all "
                f"{len(first.expected)} expected sockets"
            )
        else:
            what = "Kamailio's configuration is consistent"
        report.add("ok", Status.PASS, what)
    if best_effort:
        note_best_effort(report.findings, judgements)
    return report.findings


def note_best_effort(findings: list[Finding], judgements: list[Report]) -> None:
    """Say in the summary that a configuration was read best effort, only where that
    reading is what the summary speaks of: the worst finding of a best-effort judgement,
    or `ok` (every judgement), naming the best-effort ones when others were judged by the
    real `kamailio -c`."""
    from preflight.model import worst_finding

    worst = worst_finding(findings)
    if worst is None:
        return
    owner = next((j for j in judgements if any(f is worst for f in j.findings)), None)
    how = "the configuration was read without Kamailio's preprocessor"
    if owner is not None:
        if owner.best_effort:
            worst.summary = f"{worst.message} (best effort: {how})"
        return
    if worst.code != "kamailio.ok":
        return  # another process's finding (foreign-process): no judgement's reading
    loose = [j for j in judgements if j.best_effort]
    if len(loose) == len(judgements):
        worst.summary = f"{worst.message} (best effort: {how})"
        return
    names = ", ".join(
        f"pid {j.instance.main.pid}" if j.instance else str(j.details.get("config")) for j in loose
    )
    worst.summary = f"{worst.message} (best effort for {names}: {how})"


def instance_label(instance: Instance | None, config: str) -> str:
    """How a message names the judged instance when several are judged."""
    if instance is None:
        return f"{config} (no Kamailio runs it)"
    if instance.config_unknown:
        return f"Kamailio pid {instance.main.pid} (config unknown)"
    return f"Kamailio pid {instance.main.pid} ({config})"


def service_judged(
    host: Host,
    service: Service | None,
    service_instance: Instance | None,
    primary: Instance | None,
    config_rel: str,
) -> str:
    """The service's config when it needs a judgement of its own (else ""): its instance
    runs another config (a restart through the service switches to this one), or it is
    enabled and none of its instances runs (not judged already as the primary config)."""
    if service is None or service.config_rel is None:
        return ""  # unknown: a restart through the service is not offered (run_check)
    if service_instance is not None:
        return (
            ""
            if same_config(host, service.config_rel, service_instance.config_rel)
            else (service.config_rel)
        )
    if not service.enabled:
        return ""
    if primary is None and same_config(host, config_rel, service.config_rel):
        return ""
    return service.config_rel


def same_config(host: Host, one: str, other: str) -> bool:
    """Do two root-relative config paths name the same file (symlinks resolved)?"""
    if one == other:
        return True
    real = host.realpath(one)
    return real is not None and real == host.realpath(other)


def judge(
    judging: Judging,
    instance: Instance | None,
    config_rel: str,
    source: str,
    expect: list[Socket],
    restart_into: str = "",
    pending_for: Instance | None = None,
    enabled_by: str = "",
) -> Report:
    """One instance judged against its own config (its -f as it resolves, its -A defines, its
    user), with remediation that acts on it as it was started; or, with `instance` None, the
    config that should run when no instance runs it. `expect`: the option's sockets (the
    primary judgement only). `restart_into`: the config a restart of this instance starts
    when it is not the running one (the service's CFGFILE). `pending_for`: the service's
    running instance, when this is the config its restart would switch to (not-running is
    not reported then); `enabled_by`: what enables the service whose config this is."""
    from preflight_checks.kamailio.config import declared_listeners, parse_config
    from preflight_checks.kamailio.facts import expected_from_config, instance_environ
    from preflight_checks.kamailio.findings import (
        Listeners,
        Report,
        check_addresses,
        check_changed,
        check_init_fork,
        check_module_addresses,
        check_tls,
        compare_listeners,
        report_held_ports,
        report_not_running,
    )

    ctx, host = judging.ctx, judging.ctx.host
    config = host.display(config_rel)
    label = instance_label(instance, config) if judging.labelled else None
    if pending_for is not None:
        label = f"{config} (what a restart of Kamailio pid {pending_for.main.pid} starts)"
    report = Report(host, {}, label)
    report.shared_reported = judging.shared_reported
    report.instance = instance
    report.check_command = check_command(judging.binary or "kamailio", config, instance)
    if restart_into and instance is not None:
        into = host.display(restart_into)
        report.restart_check = check_command(judging.binary or "kamailio", into, None)
        report.restart_note = (
            f"  # starts {into} (CFGFILE of /etc/default/kamailio), not the running {config}"
        )
    report.details.update(
        {
            "config": config,
            "config_source": source,
            "binary": judging.binary,
            "pid": instance.main.pid if instance else None,
            "pids": instance.pids if instance else [],
        }
    )
    if instance is not None:
        uids = instance.main.uids
        report.details["started"] = {
            "manager": instance.manager,
            "unit": instance.unit,
            "argv": [printable(a) for a in instance.argv[:64]],
            "start_dir": instance.start_dir,
            "user": uids[1] if uids else None,
        }
    argv_options = instance.options if instance else {}
    defines: dict[str, str | None] = {}
    for value in argv_options.get("A", []):
        name, _, val = value.partition("=")
        defines[name] = val
    gate_commands(report, instance)
    parsed: ParsedConfig | None = None
    if instance is not None and instance.config_unknown:
        report.add(
            "config-unreadable",
            Status.WARN,
            f"the configuration Kamailio (pid {instance.main.pid}) runs is unknown: "
            f"{instance.config_unknown}",
            ["run preflight as root"],
        )
        check_out = None
    else:
        # Kamailio looks a relative include up in the folder it starts in first: the
        # instance's start folder; with none running, / (the init script's and systemd's).
        cwd_rel = instance.cwd_rel if instance else ""
        fs_root = instance.fs_root if instance else ""
        if cwd_rel is None and not host.is_live:
            cwd_rel = fs_root  # a snapshot without proc/PID/cwd: / (init script, systemd)
        environ = instance_environ(host, instance)
        parsed = parse_config(host, config_rel, defines, cwd_rel, fs_root, environ)
        check_out = check_with_kamailio(report, ctx, instance, parsed, judging.kamailio_c, environ)
        check_config(
            report, config_rel, without_host_paths(report, parsed, fs_root), check_out, argv_options
        )
        if init_script_starts(report, instance, config_rel):
            check_init_fork(report, config_rel)
        check_module_addresses(report, parsed)
    report.best_effort = check_out is None
    report.details["resolved_by"] = "best effort" if report.best_effort else "kamailio -c"

    expected = expected_from_config(report, parsed, check_out)
    unread = unread_includes(host, parsed) if check_out is None else []
    if expected is not None and unread:
        # A file this run may not read can hold the listen= lines: without them the reader
        # would assume Kamailio's defaults (udp/tcp *:5060) and report them missing.
        report.notes.append(
            "the sockets the configuration listens on are unknown: this run could not read "
            + ", ".join(unread[:5])
            + "; only `expect` is compared"
        )
        expected = None
    if expected is not None and parsed is not None and not parsed.loads_tls:
        # Without tls.so Kamailio drops tls: sockets at start (tls-module-missing says so).
        expected = [s for s in expected if s.proto != "tls"]
    if not (instance and instance.fs_root):
        check_tls(report, parsed, check_out, config)
    all_expected = list(expected or [])
    for sock in expect:
        if sock not in all_expected:
            all_expected.append(sock)
    report.expected = all_expected
    report.details["expected"] = [str(s) for s in all_expected]
    check_addresses(report, all_expected, parsed)

    explicit_listen = bool(argv_options.get("l")) or (parsed is not None and parsed.explicit_listen)
    if pending_for is not None:
        report.notes.append(
            f"Kamailio pid {pending_for.main.pid} runs {host.display(pending_for.config_rel)}; "
            f"a restart through its service starts {config} instead"
        )
    elif instance is None:
        if judging.proc_visible:
            report_not_running(report, config, judging.instances, check_out, enabled_by)
            # A port already held elsewhere is the usual reason a start fails: name the holder.
            report_held_ports(report, all_expected, judging.processes, judging.instances)
        else:
            report.notes.append(
                "the snapshot has no process list (ROOT/proc/<pid>): whether "
                "Kamailio runs is unknown"
            )
    else:
        # First: a pending restart explains missing and unexpected listeners.
        check_changed(report, instance, parsed, config)
        compare_listeners(
            report,
            instance,
            Listeners(
                all_expected,
                set(expect),
                expected is not None,
                explicit_listen,
                declared_listeners(parsed) if parsed else [],
                set(expected or []),
            ),
            judging.processes,
            judging.instances,
        )
    if report.notes:
        report.details["notes"] = report.notes
    return report


def unread_includes(host: Host, parsed: ParsedConfig | None) -> list[str]:
    """The files the reader knows Kamailio reads but could not: present but unreadable to
    this run, and relative includes of an unknown start folder found nowhere it could look."""
    import posixpath

    if parsed is None:
        return []
    unread = [host.display(f) for f in parsed.unreadable]
    for name in dict.fromkeys(parsed.cwd_unknown):
        beside = (posixpath.join(posixpath.dirname(f), name) for f in parsed.files)
        if not any(host.exists(posixpath.normpath(path)) for path in beside):
            unread.append(f"{name} (relative to the folder Kamailio was started in)")
    return unread


def init_script_starts(report: Report, instance: Instance | None, config_rel: str) -> bool:
    """Is Debian's init script what starts (or restarts) `config_rel` for this judgement?
    An init-script instance's restart starts CFGFILE, judged here when it is its own config
    (else the service's own judgement checks CFGFILE)."""
    from preflight_checks.kamailio.facts import service_config

    if not report.service.init_script or (instance is not None and instance.fs_root):
        return False
    service_config_rel = service_config(report.host)
    return service_config_rel is not None and same_config(
        report.host, config_rel, service_config_rel
    )


def without_host_paths(
    report: Report, parsed: ParsedConfig | None, fs_root: str
) -> ParsedConfig | None:
    """For an instance in another mount namespace, its config without what names files by
    absolute paths of its own (modules; TLS files are skipped by the caller): this host's
    files at those paths are not its files."""
    import dataclasses

    if not fs_root or parsed is None:
        return parsed
    report.notes.append(
        "its modules and TLS files were not checked: it runs in another mount namespace"
    )
    return dataclasses.replace(parsed, modules=[])


def gate_commands(report: Report, instance: Instance | None) -> None:
    """No runnable step for an instance whose command line is another account's (a
    hand-started one run by a non-root user, or started in a folder others can write) or
    that runs in another mount namespace: its command line is data, not a command for root."""
    import os

    from preflight_checks.kamailio.facts import start_folder_risk

    if instance is None:
        return
    pid = instance.main.pid
    if instance.fs_root:
        report.gate = (
            f"pid {pid} runs in another mount namespace (a container on this host's network): "
            "restart it with whatever manages it (its container runtime or orchestrator), "
            "not with this host's service or config"
        )
        return
    if instance.manager != "by hand":
        return  # the unit or init script is root's own configuration
    own = {0, os.geteuid()} if report.host.is_live else {0}
    others = [uid for uid in instance.main.uids or () if uid not in own]
    why = f"it runs as {report.host.users.describe_user(others[0])}" if others else None
    if why is None and instance.cwd_rel is not None:
        why = start_folder_risk(report.host, instance.cwd_rel)
    if why is None:
        return
    report.restart_gate = (
        f"pid {pid} was started by hand and {why}: its command line (ps -o user,args -p "
        f"{pid}; details: started) is data another account controls, not a command to run "
        "as root; verify it, its config and every file it names, or ask the account that "
        "runs it to restart it"
    )


def check_command(binary: str, config: str, instance: Instance | None) -> str:
    """The `kamailio -c` an operator runs before a restart: the instance's own -A defines,
    every value shell-quoted."""
    from preflight.text import shell_join
    from preflight_checks.kamailio.facts import valid_defines

    words = [binary, "-c", "-f", config]
    for value in valid_defines(instance):
        words += ["-A", value]
    return shell_join(words)


def check_with_kamailio(
    report: Report,
    ctx: CheckContext,
    instance: Instance | None,
    parsed: ParsedConfig | None,
    done: dict[tuple[str, ...], CheckOutput | None],
    environ: dict[str, str] | None = None,
) -> CheckOutput | None:
    """`kamailio -c` on the config, on a live host, when the binary and every config file
    are safe for this run to execute and read (issue 18: nothing another user controls).
    `done`: the outputs of this run so far (two instances of one config run it once);
    `environ`: the instance's environment (the variables #!defenv reads come from it)."""
    from preflight_checks.kamailio.facts import (
        choose_binary,
        config_environment,
        config_risk,
        instance_defines,
        module_files,
        run_kamailio_c,
        start_folder_risk,
    )
    from preflight_checks.kamailio.findings import env_prefix

    host = report.host
    if not host.is_live or parsed is None:
        return None
    cwd_rel = instance.cwd_rel if instance else ""
    if instance is not None and instance.fs_root:
        report.notes.append(
            f"pid {instance.main.pid} runs in another mount namespace (a container): its "
            f"files were read through /{instance.fs_root}, best effort (`kamailio -c` of "
            "this host cannot see its files)"
        )
        return None
    binary, problem = choose_binary(report, ctx.options.get("binary"), instance)
    what = "`kamailio -c` is not run"
    if binary is not None:
        what = f"`kamailio -c` is not run on {host.display(parsed.main)}"
        # Where the real start looked up relative includes first: an account that may
        # write there could add one (and a module it loads).
        modules, absent_modules = module_files(host, parsed, cwd_rel)
        problem = (start_folder_risk(host, cwd_rel) if cwd_rel is not None else None) or (
            config_risk(
                host,
                [*parsed.files, *parsed.skipped_files, *modules],
                [*parsed.absent, *absent_modules],
            )
        )
    if problem is not None:
        report.gate = (
            f"verify before running anything for this Kamailio as root: {problem}, so an "
            "account other than root may have changed the configuration, the files it "
            "includes or the folder it starts in; make them owned by root and writable by "
            "root only, then run preflight again (no command is suggested until then)"
        )
        report.add(
            "untrusted-file",
            Status.WARN,
            f"{what}: {problem}, so an account other than root could change what root "
            "executes; the configuration was read best effort",
            [
                "make the file and every folder above it owned by root and writable by "
                "root only, or set [checks.kamailio] binary/config to such a file"
            ],
        )
        return None
    if binary is None or parsed.unreadable:
        return None  # a file it may not read would make kamailio -c fail for our reasons
    if cwd_rel is None:
        report.notes.append(
            "the folder Kamailio was started in cannot be read (not root?): relative includes "
            "are unknown, `kamailio -c` is not run"
        )
        return None
    report.details["binary"] = binary
    environment, why = config_environment(instance, parsed, environ)
    if environment is None:
        variables = sorted({name for name, _, _ in parsed.env_uses})
        _, where, _ = parsed.env_uses[0]
        report.add(
            "config-env-unknown",
            Status.WARN,
            f"{host.display(parsed.main)} takes {', '.join(variables[:5])} from the environment "
            f"Kamailio starts with (#!defenv at {where}), and {why}: `kamailio -c` was not run, "
            "whether the configuration is valid is unknown",
            [
                "run preflight as root while the Kamailio that uses this config runs, or check "
                "it in the environment it starts with: "
                f"{' '.join(f'{v}=VALUE' for v in variables[:5])} {report.check_command}"
            ],
        )
        return None
    if environment:
        report.start_env = environment
        report.check_command = f"{env_prefix(environment)}{report.check_command}"
    defines, note = instance_defines(host, instance)
    if note:
        report.notes.append(note)
    cwd = host.display(cwd_rel)
    key = (binary, host.display(parsed.main), cwd, *defines, *environment)
    if key not in done:
        done[key] = run_kamailio_c(report, binary, key[1], defines, ctx.timeout, cwd, environment)
    return done[key]


def check_config(
    report: Report,
    config_rel: str,
    parsed: ParsedConfig | None,
    check_out: CheckOutput | None,
    argv_options: dict[str, list[str]],
) -> None:
    """config-invalid (unreadable, rejected by `kamailio -c`, a missing include) and
    module-missing; a missing module is the rejection's cause, so it is reported alone."""
    from preflight_checks.kamailio.config import mask_secrets
    from preflight_checks.kamailio.findings import check_modules

    host = report.host
    config = host.display(config_rel)
    unreadable = [config_rel] if parsed is None else parsed.unreadable
    if unreadable and host.exists(unreadable[0]) and host.is_readable(unreadable[0]) is False:
        names = ", ".join(host.display(f) for f in unreadable[:5])
        report.add(
            "config-unreadable",
            Status.WARN,
            f"this run may not read {names} (not root?): whether the configuration is valid, "
            "and which sockets it listens on, is unknown",
            ["run preflight as root"],
        )
    elif parsed is None:
        reason = host.why_unreadable(config_rel)
        report.add(
            "config-invalid",
            Status.FAIL,
            f"Kamailio config {config} is {reason}",
            [
                f"ls -l {shell_arg(config)}",
                "set [checks.kamailio] config to the file Kamailio uses",
            ],
        )
    else:
        report.details["files"] = [host.display(f) for f in parsed.files]
        if parsed.problems:
            report.details["config_problems"] = [mask_secrets(p) for p in parsed.problems]
        if parsed.oversized or parsed.limits:
            places = [f"{p}: expansion passes 64 KiB" for p in parsed.oversized] + parsed.limits
            report.add(
                "config-too-complex",
                Status.WARN,
                f"{len(places)} #!subst/#!define line(s) pass the reader's bounds and were "
                f"not expanded: {'; '.join(places[:3])}",
                [f"simplify the #!subst/#!define lines named in {config}"],
            )

    modules_missing = check_modules(report, parsed, check_out, argv_options)
    if check_out is not None:
        report.details["kamailio_c"] = {"ok": check_out.ok, "errors": check_out.errors[:10]}
        if not check_out.ok and not modules_missing:
            report.add(
                "config-invalid",
                Status.FAIL,
                f"Kamailio rejects {config}: {check_out.first_error or 'no message'}",
                [
                    report.check_command,
                    f"fix {check_out.first_error_location or config}, then run "
                    f"`{report.check_command}` again",
                ],
            )
    elif parsed is not None and parsed.missing_includes:
        target, where = parsed.missing_includes[0]
        report.add(
            "config-invalid",
            Status.FAIL,
            f"{where}: included file {target} is missing (best effort reading); "
            "Kamailio refuses to start",
            [f"create {target} or fix {where}"],
        )
