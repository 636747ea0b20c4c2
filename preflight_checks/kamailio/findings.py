"""What the kamailio check reports: its findings, details and notes, credentials masked.

Every finding passes through `Report.add`, so no message or remediation step can echo a
password from a database URL Kamailio or its configuration printed.

Whether Kamailio runs the configuration: not-running, and config-changed (a file edited after
the main process started, so a restart is pending).

Comparing the sockets Kamailio should hold with the ones it holds: listener-missing,
listener-unexpected and address-not-bound, naming whichever other process holds a port.

Kamailio's TLS: a tls: listen that enable_tls=yes is missing for, and certificate, key and CA
files that tls.cfg or modparam("tls", ...) names but that do not exist.

`kamailio -c` notices neither: the first silently drops the listener, the second fails the
start. Certificate and key files are only looked at, never opened.

Kamailio's modules: is every loadmodule's .so on the module path, and which Debian package
ships a missing one?

Debian splits Kamailio's modules over kamailio-*-modules packages, so a missing .so usually means
a package is not installed; the remediation names it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from preflight.check import Finding, Status
from preflight.timefmt import iso_utc
from preflight_checks.kamailio.config import (
    DEFAULT_CONFIG,
    DEFAULT_TLS_CONFIG,
    MODULE_DIRS,
    CheckOutput,
    Location,
    ParsedConfig,
    Socket,
    mask_secrets,
    module_basename,
    path_from_config,
    tls_files,
)
from preflight_checks.kamailio.facts import (
    conflicts,
    covers,
    holders,
    read_socket_tables,
    shell_vars,
    socket_inodes,
    start_time,
    user_name,
)

if TYPE_CHECKING:
    from preflight.host import Host
    from preflight_checks.kamailio.config import CheckOutput, ParsedConfig
    from preflight_checks.kamailio.facts import BoundSocket, Instance, Process


# --- from kamailio_report.py
@dataclass(frozen=True)
class ServiceCommands:
    """How this host starts Kamailio: remediation must name commands that exist here."""

    start: str
    restart: str
    status: tuple[str, ...]


SYSTEMD = ServiceCommands(
    "systemctl start kamailio",
    "systemctl restart kamailio",
    ("systemctl status kamailio", "journalctl -u kamailio -n 50 --no-pager"),
)
DEFAULTS = "etc/default/kamailio"  # Debian's: the init script sources it
INIT_SCRIPT_FILE = "etc/init.d/kamailio"
INIT_SCRIPT = ServiceCommands(
    "service kamailio start",
    "service kamailio restart",
    ("service kamailio status", "grep kamailio /var/log/syslog | tail -n 50"),
)


def service_commands(host: Host) -> ServiceCommands:
    """systemctl where systemd runs (or nothing says otherwise); Debian's init script through
    `service` where something else is pid 1 (sysvinit, a container, a microVM)."""
    manager = host.service_manager
    if manager in (None, "systemd") or not host.is_file(INIT_SCRIPT_FILE):
        return SYSTEMD
    defaults = host.read_text(DEFAULTS, 64 * 1024)
    if defaults is not None and shell_vars(defaults).get("RUN_KAMAILIO") != "yes":
        # Debian's init script refuses to start ("Kamailio not yet configured") until this is set.
        enable = f"sed -i 's/^#*RUN_KAMAILIO=.*/RUN_KAMAILIO=yes/' {host.display(DEFAULTS)}"
        return ServiceCommands(
            f"{enable} && {INIT_SCRIPT.start}",
            f"{enable} && {INIT_SCRIPT.restart}",
            INIT_SCRIPT.status,
        )
    return INIT_SCRIPT


class Report:
    def __init__(self, host: Host, details: dict[str, Any]) -> None:
        self.host = host
        self.details = details
        self.findings: list[Finding] = []
        self.notes: list[str] = []

    @cached_property
    def service(self) -> ServiceCommands:
        """Asked for only by findings that name a command: most runs never read the files."""
        return service_commands(self.host)

    def add(
        self, code: str, status: Status, message: str, remediation: list[str] | None = None
    ) -> None:
        self.findings.append(
            Finding(
                f"kamailio.{code}",
                status,
                mask_secrets(message),
                [mask_secrets(r) for r in remediation or []],
            )
        )


# --- from kamailio_service.py
MTIME_SLACK = 1.0  # btime is whole seconds: a start time read from /proc can be ~1 s early


def report_not_running(
    report: Report, config: str, instances: list[Instance], check_out: CheckOutput | None
) -> None:
    message = f"Kamailio is not running with {config}"
    if instances:
        message += (
            " (other instances: "
            + ", ".join(
                f"pid {i.main.pid} with {i.config or report.host.display(DEFAULT_CONFIG)}"
                for i in instances[:3]
            )
            + ")"
        )
    steps = list(report.service.status)
    if check_out is not None and not check_out.ok:
        steps.append(
            f"fix the first error of `kamailio -c -f {config}`: "
            f"{check_out.first_error or 'see its output'}"
        )
    steps.append(report.service.start)
    report.add("not-running", Status.FAIL, message, steps)


def check_changed(
    report: Report, instance: Instance, parsed: ParsedConfig | None, config: str
) -> None:
    host = report.host
    started = start_time(host, instance.main)
    report.details["started_at"] = iso_utc(started)
    if started is None or parsed is None:
        return
    changed = []
    for rel in parsed.files:
        mtime = host.mtime(rel)
        if mtime is not None and mtime > started + MTIME_SLACK:
            changed.append(host.display(rel))
    if changed:
        report.details["changed_files"] = changed
        report.add(
            "config-changed",
            Status.WARN,
            f"{', '.join(changed[:5])} changed after Kamailio (pid {instance.main.pid}) "
            f"started at {iso_utc(started)}: the running process does not use it yet",
            [f"kamailio -c -f {config}", report.service.restart],
        )


# --- from kamailio_listeners.py
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


# --- from kamailio_tls.py
def check_tls(
    report: Report, parsed: ParsedConfig | None, check_out: CheckOutput | None, config: str
) -> None:
    if parsed is None:
        return
    check_tls_enabled(report, parsed, check_out, config)
    if parsed.loads_tls:
        check_tls_files(report, parsed, config)


def check_tls_enabled(
    report: Report, parsed: ParsedConfig, check_out: CheckOutput | None, config: str
) -> None:
    tls_listens = parsed.tls_listens()
    if check_out is not None and check_out.ok:
        dropped = bool(tls_listens) and not any(s.proto == "tls" for s in check_out.sockets)
    else:
        dropped = bool(tls_listens) and not parsed.enable_tls
    if dropped:
        where = ", ".join(str(e.where) for e in tls_listens[:3])
        report.add(
            "tls-disabled",
            Status.WARN,
            f"a tls: listen ({where}) is configured but enable_tls=yes is not set, so "
            "Kamailio ignores it",
            [
                f'add enable_tls=yes and loadmodule "tls.so" to {config}',
                f"kamailio -c -f {config}",
                report.service.restart,
            ],
        )


def check_tls_files(report: Report, parsed: ParsedConfig, config: str) -> None:
    host = report.host
    config_dir = posixpath.dirname(parsed.main)
    files: list[tuple[str, str, Location]] = []
    tls_cfg = parsed.tls_config or DEFAULT_TLS_CONFIG
    tls_rel = path_from_config(tls_cfg, config_dir)
    text = host.read_text(tls_rel)
    report.details["tls_config"] = host.display(tls_rel)
    if text is None:
        if parsed.tls_config:
            report.add(
                "tls-files-missing",
                Status.FAIL,
                f"the TLS config {host.display(tls_rel)} named by "
                f'modparam("tls", "config") is {host.why_unreadable(tls_rel)}',
                [
                    f"create {host.display(tls_rel)} or fix the modparam in {config}",
                    report.service.restart,
                ],
            )
    else:
        files = tls_files(text, host.display(tls_rel))
    files += [(key, value, where) for key, (value, where) in parsed.tls_params.items()]
    for key, path, where in files:
        rel = path_from_config(path, config_dir)
        problem = file_problem(host, rel)
        if problem:
            report.add(
                "tls-files-missing",
                Status.FAIL,
                f"TLS {key} {host.display(rel)} ({where}) is {problem}; "
                "Kamailio will not start with it",
                [
                    f"create {host.display(rel)} (or fix {where})",
                    report.service.restart,
                ],
            )


def file_problem(host: Host, rel: str) -> str | None:
    """Why Kamailio could not load a certificate or key; never opens it (no key content
    is ever read)."""
    if not host.is_file(rel):
        return host.why_unreadable(rel)
    # Under --root who could read it is unknown (None): only a live host says "unreadable".
    return "unreadable" if host.is_readable(rel) is False else None


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
        steps.append("kamailio -c -f " + report.details["config"])
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
    tables, _missing = read_socket_tables(host)
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
        owner = user_name(proc.uids[1]) if proc.uids else "unknown user"
        exe = printable(proc.exe) if proc.exe else "executable unknown"
        message = (
            f"pid {proc.pid} ({owner}, {exe}) runs as kamailio but is not a trusted Kamailio: "
            f"{printable(proc.untrusted or '')}; it is not taken as Kamailio"
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
