"""The `kamailio` check: is Kamailio running, and listening exactly where its configuration says?

Expected sockets come from Kamailio itself (`kamailio -c -f FILE` prints the resolved `Listening
on` block after every preprocessor directive) plus `[checks.kamailio] expect`; under `--root`, where
nothing is executed, from a best-effort reading of the configuration. Actual sockets are the TCP
listening and UDP bound sockets held by any process of the Kamailio tree, read from the kernel's
socket tables. Configuration content is never quoted: configs hold database passwords, so reports
name a file and line and Kamailio's own message, with URL credentials masked.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
from typing import TYPE_CHECKING, Any

from preflight_checks.kamailio_config import (
    DEFAULT_CONFIG,
    DEFAULT_TLS_CONFIG,
    CheckOutput,
    Location,
    ParsedConfig,
    Socket,
    mask_secrets,
    module_basename,
    parse_check_output,
    parse_config,
    parse_socket,
    tls_files,
)
from preflight_checks.kamailio_sockets import (
    BoundSocket,
    Instance,
    conflicts,
    covers,
    find_holder,
    find_instances,
    list_processes,
    parse_argv,
    read_socket_tables,
    socket_inodes,
    start_time,
)

from preflight.check import Check, CheckContext, Finding, FindingDoc, Option, Status

if TYPE_CHECKING:
    from collections.abc import Iterable

    from preflight.host import Host

BINARY_CANDIDATES = ("usr/sbin/kamailio", "usr/local/sbin/kamailio")
MODULE_DIRS = (
    "usr/lib/x86_64-linux-gnu/kamailio/modules",
    "usr/lib/aarch64-linux-gnu/kamailio/modules",
    "usr/lib64/kamailio/modules",
    "usr/lib/kamailio/modules",
    "usr/local/lib64/kamailio/modules",
    "usr/local/lib/kamailio/modules",
)
MTIME_SLACK = 1.0  # btime is whole seconds: a start time read from /proc can be ~1 s early
SERVICE_STEPS = ["systemctl status kamailio", "journalctl -u kamailio -n 50 --no-pager"]
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


class KamailioCheck(Check):
    id = "kamailio"
    title = "Kamailio listeners and configuration drift"
    description = (
        "Is Kamailio running, and listening exactly where its configuration says? The expected "
        "sockets are those `kamailio -c -f FILE` resolves for the running main process's config "
        "(its -f argument, else `config`, else /etc/kamailio/kamailio.cfg) plus `expect`; under "
        "--root, where no command runs, a best-effort reading of listen=/port= lines through "
        "include_file/import_file and #!define. They are compared with the TCP listening and UDP "
        "bound sockets of the Kamailio process tree. The check also finds modules whose .so is "
        "missing, TLS listeners that enable_tls=yes is missing for, certificate files tls.cfg "
        "names that do not exist (kamailio -c does not notice them; the start fails), and a "
        "config edited after the running process started (a restart is pending). Reports never "
        "quote configuration content, only file, line and Kamailio's own message, credentials "
        "in URLs masked."
    )
    findings = {
        "kamailio.ok": FindingDoc(
            Status.PASS, "Kamailio runs and listens on every expected socket"
        ),
        "kamailio.not-installed": FindingDoc(
            Status.SKIP,
            "no kamailio binary, package or process (a failure with required = true)",
            "apt-get install kamailio",
        ),
        "kamailio.not-running": FindingDoc(
            Status.FAIL,
            "no Kamailio process runs with the configuration",
            "systemctl status kamailio; journalctl -u kamailio; fix the first error of "
            "`kamailio -c -f FILE`; systemctl start kamailio",
        ),
        "kamailio.config-invalid": FindingDoc(
            Status.FAIL,
            "Kamailio rejects its configuration (a restart would fail)",
            "fix the file and line `kamailio -c -f FILE` names",
        ),
        "kamailio.listener-missing": FindingDoc(
            Status.FAIL,
            "an expected socket is not held by Kamailio (one finding per socket; "
            "another process holding the port is named with its pid)",
            "free the port or fix listen=, then systemctl restart kamailio",
        ),
        "kamailio.listener-unexpected": FindingDoc(
            Status.WARN,
            "Kamailio holds a socket its configuration does not resolve to (it "
            "runs an older configuration)",
            "systemctl restart kamailio",
        ),
        "kamailio.tls-disabled": FindingDoc(
            Status.WARN,
            "a tls: listen is configured but enable_tls=yes is missing, so "
            "Kamailio silently drops it",
            "set enable_tls=yes and load tls.so",
        ),
        "kamailio.tls-files-missing": FindingDoc(
            Status.FAIL,
            "a certificate, key or CA file named in tls.cfg is missing or "
            "unreadable; kamailio -c passes but the start fails",
            "create the file or fix the path in tls.cfg",
        ),
        "kamailio.module-missing": FindingDoc(
            Status.FAIL,
            "a loadmodule whose .so is not in the module path",
            "apt-get install the package named in the message",
        ),
        "kamailio.config-changed": FindingDoc(
            Status.WARN,
            "the config or an included file changed after the running main "
            "process started: the change is not applied",
            "kamailio -c -f FILE && systemctl restart kamailio",
        ),
        "kamailio.address-not-bound": FindingDoc(
            Status.WARN,
            "without listen= Kamailio binds the addresses present at start; this "
            "one appeared later and is not served",
            "systemctl restart kamailio, or add listen=",
        ),
        "kamailio.owners-unknown": FindingDoc(
            Status.WARN,
            "not root: which process holds a socket cannot be seen, so sockets are "
            "matched without owners and unexpected ones are not reported",
            "run preflight as root",
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
            "Kamailio config file (default: the running main process's "
            "-f, else /etc/kamailio/kamailio.cfg)",
        ),
        "expect": Option(
            list, [], 'sockets that must be listening, e.g. ["udp:0.0.0.0:5060", "tcp:[::]:8080"]'
        ),
    }
    paths = (
        "etc/kamailio/*.cfg",
        "etc/kamailio/tls.cfg",
        "var/lib/dpkg/status",
        "var/lib/dpkg/info/kamailio*.list",
        "proc/net/tcp",
        "proc/net/tcp6",
        "proc/net/udp",
        "proc/net/udp6",
        "proc/sys/net/ipv6/bindv6only",
        "proc/stat",
    )
    # Only the presence of each module matters: collect stores them as empty files.
    markers = (
        "usr/sbin/kamailio",
        "usr/local/sbin/kamailio",
        "usr/lib/*/kamailio/modules/*.so",
        "usr/lib/kamailio/modules/*.so",
    )

    def run(self, ctx: CheckContext) -> Iterable[Finding]:
        return _Run(ctx).run()


class _Run:
    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.host: Host = ctx.host
        self.findings: list[Finding] = []
        self.details: dict[str, Any] = ctx.details
        self.notes: list[str] = []

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

    # ------------------------------------------------------------------------------ main flow
    def run(self) -> list[Finding]:
        host = self.host
        expect = self.expected_from_option()
        processes = list_processes(host)
        instances = find_instances(host, processes)
        binary = host.which("kamailio") or next(
            ("/" + c for c in BINARY_CANDIDATES if host.is_file(c)), None
        )
        package = host.packages.get("kamailio")
        self.details.update({"binary": binary, "package": package.version if package else None})
        if not (binary or package or instances):
            if self.ctx.required:
                self.add(
                    "not-installed",
                    Status.FAIL,
                    "Kamailio is required but not installed (no kamailio binary, package or "
                    "process)",
                    ["apt-get install kamailio"],
                )
            else:
                self.add("not-installed", Status.SKIP, "Kamailio is not installed")
            return self.findings

        instance, config_rel, source = self.choose(instances)
        config = host.display(config_rel)
        self.details.update(
            {
                "config": config,
                "config_source": source,
                "pid": instance.main.pid if instance else None,
                "pids": instance.pids if instance else [],
            }
        )
        argv_options = parse_argv(instance.main.argv) if instance else {}
        defines: dict[str, str | None] = {}
        for value in argv_options.get("A", []):
            name, _, val = value.partition("=")
            defines[name] = val
        parsed = parse_config(host, config_rel, defines)
        check_out = self.run_kamailio_c(binary, config, argv_options)
        best_effort = check_out is None
        self.details["resolved_by"] = "best effort" if best_effort else "kamailio -c"

        if parsed is None:
            reason = host.why_unreadable(config_rel)
            self.add(
                "config-invalid",
                Status.FAIL,
                f"Kamailio config {config} is {reason}",
                [f"ls -l {config}", "set [checks.kamailio] config to the file Kamailio uses"],
            )
        else:
            self.details["files"] = [host.display(f) for f in parsed.files]
            if parsed.problems:
                self.details["config_problems"] = [mask_secrets(p) for p in parsed.problems]

        modules_missing = self.check_modules(parsed, check_out, argv_options)
        if check_out is not None:
            self.details["kamailio_c"] = {"ok": check_out.ok, "errors": check_out.errors[:10]}
            if not check_out.ok and not modules_missing:
                self.add(
                    "config-invalid",
                    Status.FAIL,
                    f"Kamailio rejects {config}: {check_out.first_error or 'no message'}",
                    [
                        f"kamailio -c -f {config}",
                        f"fix {check_out.first_error_location or config}, then run "
                        f"`kamailio -c -f {config}` again",
                    ],
                )
        elif parsed is not None and parsed.missing_includes:
            target, where = parsed.missing_includes[0]
            self.add(
                "config-invalid",
                Status.FAIL,
                f"{where}: included file {target} is missing (best effort reading); "
                "Kamailio refuses to start",
                [f"create {target} or fix {where}"],
            )

        expected = self.expected_from_config(parsed, check_out)
        self.check_tls(parsed, check_out, config)
        all_expected = list(expected or [])
        for sock in expect:
            if sock not in all_expected:
                all_expected.append(sock)
        self.details["expected"] = [str(s) for s in all_expected]

        # A snapshot may hold a few proc/<pid> files (proc/1/environ) without a process list.
        proc_visible = host.is_live or any(
            n.isdecimal() and host.is_file(f"proc/{n}/stat") for n in host.listdir("proc")
        )
        explicit_listen = bool(argv_options.get("l")) or (
            parsed is not None and parsed.explicit_listen
        )
        if instance is None:
            if proc_visible:
                self.not_running(config, instances, check_out, all_expected)
            else:
                self.notes.append(
                    "the snapshot has no process list (ROOT/proc/<pid>): whether "
                    "Kamailio runs is unknown"
                )
        else:
            self.compare(instance, all_expected, set(expect), expected is not None, explicit_listen)
            self.check_changed(instance, parsed, config)

        if self.notes:
            self.details["notes"] = self.notes
        if not self.findings:
            what = (
                (
                    f"Kamailio (pid {instance.main.pid}) listens on all "
                    f"{len(all_expected)} expected sockets"
                )
                if instance
                else "Kamailio's configuration is consistent"
                + ("" if proc_visible else "; whether it runs is unknown (no process list)")
            )
            self.add("ok", Status.PASS, what)
        if best_effort:
            worst = max(self.findings, key=lambda f: _SEVERITY[f.status])
            self.ctx.summary = (
                worst.message + " (best effort: the configuration was read "
                "without Kamailio's preprocessor)"
            )
        return self.findings

    # -------------------------------------------------------------------------------- pieces
    def expected_from_option(self) -> list[Socket]:
        sockets = []
        raw = self.ctx.options.get("expect") or []
        for entry in raw:
            sock = parse_socket(str(entry))
            if sock is None:
                self.add(
                    "option-invalid",
                    Status.ERROR,
                    f"[checks.kamailio] expect: {str(entry)!r} is not proto:addr:port",
                    ['write entries such as "udp:0.0.0.0:5060" or "tcp:[::]:8080"'],
                )
            elif sock not in sockets:
                sockets.append(sock)
        return sockets

    def choose(self, instances: list[Instance]) -> tuple[Instance | None, str, str]:
        """The instance to judge, its config (root-relative) and where the config came from."""
        option = self.ctx.options.get("config")
        wanted = _normalize(option) if option else None

        def config_of(inst: Instance) -> str:
            return _normalize(inst.config) if inst.config else DEFAULT_CONFIG

        others = [{"pid": i.main.pid, "config": self.host.display(config_of(i))} for i in instances]
        if len(instances) > 1:
            self.details["instances"] = others
        if wanted is not None:
            match = next((i for i in instances if config_of(i) == wanted), None)
            return match, wanted, "option"
        if instances:
            chosen = next((i for i in instances if config_of(i) == DEFAULT_CONFIG), instances[0])
            return chosen, config_of(chosen), "running process"
        return None, DEFAULT_CONFIG, "default"

    def run_kamailio_c(
        self, binary: str | None, config: str, argv_options: dict[str, list[str]]
    ) -> CheckOutput | None:
        if not self.host.is_live or binary is None:
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
        result = self.host.run(argv, timeout=max(1.0, self.ctx.timeout / 2))
        if result is None:
            return None
        if result.returncode is None:
            why = "timed out" if result.timed_out else (result.error or "could not start")
            self.notes.append(f"`kamailio -c` {why}; the configuration was read best effort")
            return None
        return parse_check_output(result.returncode, result.stdout, result.stderr)

    def expected_from_config(
        self, parsed: ParsedConfig | None, check_out: CheckOutput | None
    ) -> list[Socket] | None:
        if check_out is not None:
            if not check_out.ok:
                self.notes.append(
                    "kamailio -c failed: the configured sockets are unknown; only "
                    "`expect` is compared"
                )
                return None
            sockets = [s for s in check_out.sockets if s.proto != "sctp"]
        elif parsed is not None:
            sockets = [s for s in parsed.expected_sockets() if s.proto != "sctp"]
            unresolved = [u for e in parsed.listens for u in e.unresolved]
            if unresolved:
                self.details["unresolved"] = unresolved
                self.notes.append(
                    "listen= names that need a lookup or an interface are not compared under --root"
                )
        else:
            return None
        return sockets

    def check_modules(
        self,
        parsed: ParsedConfig | None,
        check_out: CheckOutput | None,
        argv_options: dict[str, list[str]],
    ) -> bool:
        host = self.host
        dirs = [d.strip("/") for d in (parsed.mpaths if parsed and parsed.mpaths else [])]
        if not dirs:
            dirs = [d.strip("/") for v in argv_options.get("L", []) for d in v.split(":") if d]
        if not dirs:
            dirs = [d for d in MODULE_DIRS if host.is_dir(d)] or [MODULE_DIRS[0]]
        self.details["module_path"] = ["/" + d for d in dirs]
        missing: dict[str, tuple[str, Location | None]] = {}
        for name, where in parsed.modules if parsed else []:
            if not _module_present(host, name, dirs):
                missing.setdefault(module_basename(name), (name, where))
        for name in check_out.missing_modules if check_out else []:
            missing.setdefault(module_basename(name), (name, None))
        for base, (name, where) in missing.items():
            package = self.package_of(base)
            place = f" (loadmodule at {where})" if where else ""
            file = name if name.endswith(".so") else f"{name}.so"
            steps = (
                [f"apt-get install {package}"]
                if package
                else [f"apt-cache search kamailio  # find the package that ships {base}.so"]
            )
            steps.append("kamailio -c -f " + self.details["config"])
            self.add(
                "module-missing",
                Status.FAIL,
                f"module {file}{place} is not in the module path "
                f"{':'.join('/' + d for d in dirs)}"
                + (f"; it is shipped by {package}" if package else ""),
                steps,
            )
        return bool(missing)

    def package_of(self, module: str) -> str | None:
        """The Debian package shipping `module`.so: an installed package's file list, else the
        known split of Kamailio's modules into packages."""
        if module in MODULE_PACKAGE:
            return MODULE_PACKAGE[module]
        for listing in self.host.glob("var/lib/dpkg/info/kamailio*.list"):
            text = self.host.read_text(listing) or ""
            if f"/{module}.so\n" in text:
                return posixpath.basename(listing)[: -len(".list")].split(":")[0]
        return None

    def check_tls(
        self, parsed: ParsedConfig | None, check_out: CheckOutput | None, config: str
    ) -> None:
        if parsed is None:
            return
        tls_listens = parsed.tls_listens()
        if check_out is not None and check_out.ok:
            dropped = bool(tls_listens) and not any(s.proto == "tls" for s in check_out.sockets)
        else:
            dropped = bool(tls_listens) and not parsed.enable_tls
        if dropped:
            where = ", ".join(str(e.where) for e in tls_listens[:3])
            self.add(
                "tls-disabled",
                Status.WARN,
                f"a tls: listen ({where}) is configured but enable_tls=yes is not set, so "
                "Kamailio ignores it",
                [
                    f'add enable_tls=yes and loadmodule "tls.so" to {config}',
                    f"kamailio -c -f {config}",
                    "systemctl restart kamailio",
                ],
            )
        if not parsed.loads_tls:
            return
        config_dir = posixpath.dirname(parsed.main)
        files: list[tuple[str, str, Location]] = []
        tls_cfg = parsed.tls_config or DEFAULT_TLS_CONFIG
        tls_rel = _relative_to(tls_cfg, config_dir)
        text = self.host.read_text(tls_rel)
        self.details["tls_config"] = self.host.display(tls_rel)
        if text is None:
            if parsed.tls_config:
                self.add(
                    "tls-files-missing",
                    Status.FAIL,
                    f"the TLS config {self.host.display(tls_rel)} named by "
                    f'modparam("tls", "config") is {self.host.why_unreadable(tls_rel)}',
                    [
                        f"create {self.host.display(tls_rel)} or fix the modparam in {config}",
                        "systemctl restart kamailio",
                    ],
                )
        else:
            files = tls_files(text, self.host.display(tls_rel))
        files += [(key, value, where) for key, (value, where) in parsed.tls_params.items()]
        for key, path, where in files:
            rel = _relative_to(path, config_dir)
            problem = self.file_problem(rel)
            if problem:
                self.add(
                    "tls-files-missing",
                    Status.FAIL,
                    f"TLS {key} {self.host.display(rel)} ({where}) is {problem}; "
                    "Kamailio will not start with it",
                    [
                        f"create {self.host.display(rel)} (or fix {where})",
                        "systemctl restart kamailio",
                    ],
                )

    def file_problem(self, rel: str) -> str | None:
        """Why Kamailio could not load a certificate or key; never opens it (no key content
        is ever read)."""
        if not self.host.is_file(rel):
            return self.host.why_unreadable(rel)
        if self.host.is_live:
            path = self.host.resolve(rel)
            if path is None or not os.access(path, os.R_OK):
                return "unreadable"
        return None

    def not_running(
        self,
        config: str,
        instances: list[Instance],
        check_out: CheckOutput | None,
        expected: list[Socket],
    ) -> None:
        message = f"Kamailio is not running with {config}"
        if instances:
            message += (
                " (other instances: "
                + ", ".join(
                    f"pid {i.main.pid} with {i.config or '/etc/kamailio/kamailio.cfg'}"
                    for i in instances[:3]
                )
                + ")"
            )
        steps = list(SERVICE_STEPS)
        if check_out is not None and not check_out.ok:
            steps.append(
                f"fix the first error of `kamailio -c -f {config}`: "
                f"{check_out.first_error or 'see its output'}"
            )
        steps.append("systemctl start kamailio")
        self.add("not-running", Status.FAIL, message, steps)
        # A port already held elsewhere is the usual reason a start fails: name the holder.
        tables, _missing = read_socket_tables(self.host)
        for sock in expected:
            holder = self.holder(sock, tables, set())
            if holder:
                self.add(
                    "listener-missing",
                    Status.FAIL,
                    f"{sock} is held by {holder[1]} (pid {holder[0]}), so Kamailio cannot bind it",
                    [
                        f"stop {holder[1]} (pid {holder[0]}) or move it to another port",
                        "systemctl start kamailio",
                    ],
                )

    def holder(
        self, sock: Socket, tables: list[BoundSocket], ours: set[int]
    ) -> tuple[int, str] | None:
        inodes = {b.inode for b in tables if conflicts(b, sock) and b.inode not in ours}
        inodes.discard(0)
        if not inodes:
            return None
        return find_holder(self.host, inodes, set())

    def compare(
        self,
        instance: Instance,
        expected: list[Socket],
        from_option: set[Socket],
        config_known: bool,
        explicit_listen: bool,
    ) -> None:
        host = self.host
        tables, missing_tables = read_socket_tables(host)
        if len(missing_tables) == 4:
            self.notes.append(
                "no socket tables (ROOT/proc/net/{tcp,tcp6,udp,udp6}): listeners not compared"
            )
            return
        if missing_tables:
            self.notes.append("missing socket tables: " + ", ".join(missing_tables))
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
            self.add(
                "owners-unknown",
                Status.WARN,
                "the socket owners of Kamailio's processes cannot be read (not root?): "
                "sockets were matched by address only, unexpected ones not reported",
                ["run preflight as root"],
            )
        self.details["actual"] = (
            sorted({f"{b.transport}:{_fmt(b.addr)}:{b.port}" for b in ours}) if visible else None
        )
        for sock in expected:
            if any(covers(b, sock, bindv6only) for b in ours):
                continue
            serving_port = any(b.transport == sock.transport and b.port == sock.port for b in ours)
            if (
                not explicit_listen
                and sock not in from_option
                and serving_port
                and sock.addr != "*"
            ):
                self.add(
                    "address-not-bound",
                    Status.WARN,
                    f"{sock} is not served: the address appeared after Kamailio (pid "
                    f"{instance.main.pid}) started and the config has no listen=, so it "
                    "binds only the addresses present at start",
                    [
                        "systemctl restart kamailio",
                        "or list the addresses with listen= in the config",
                    ],
                )
                continue
            holder = self.holder(sock, tables, inodes) if visible else None
            if holder:
                message = (
                    f"{sock} is not held by Kamailio (pid {instance.main.pid}): "
                    f"{holder[1]} (pid {holder[0]}) holds the port"
                )
                steps = [
                    f"stop {holder[1]} (pid {holder[0]}) or move it to another port",
                    "systemctl restart kamailio",
                ]
            else:
                message = f"Kamailio (pid {instance.main.pid}) does not listen on {sock}"
                steps = ["systemctl restart kamailio", *SERVICE_STEPS]
            self.add("listener-missing", Status.FAIL, message, steps)
        if not (visible and config_known):
            return
        reported: set[tuple[str, str, int]] = set()
        for bound in ours:
            key = (bound.transport, bound.addr, bound.port)
            if key in reported or any(covers(bound, s, bindv6only) for s in expected):
                continue
            reported.add(key)
            self.add(
                "listener-unexpected",
                Status.WARN,
                f"Kamailio (pid {instance.main.pid}) listens on {bound.transport}:"
                f"{_fmt(bound.addr)}:{bound.port}, which its configuration does not "
                "resolve to (an older configuration is running?)",
                ["kamailio -c -f " + self.details["config"], "systemctl restart kamailio"],
            )

    def check_changed(self, instance: Instance, parsed: ParsedConfig | None, config: str) -> None:
        started = start_time(self.host, instance.main)
        self.details["started_at"] = _iso(started)
        if started is None or parsed is None:
            return
        changed = []
        for rel in parsed.files:
            mtime = self.host.mtime(rel)
            if mtime is not None and mtime > started + MTIME_SLACK:
                changed.append(self.host.display(rel))
        if changed:
            self.details["changed_files"] = changed
            self.add(
                "config-changed",
                Status.WARN,
                f"{', '.join(changed[:5])} changed after Kamailio (pid {instance.main.pid}) "
                f"started at {_iso(started)}: the running process does not use it yet",
                [f"kamailio -c -f {config}", "systemctl restart kamailio"],
            )


_SEVERITY = {Status.FAIL: 4, Status.ERROR: 3, Status.WARN: 2, Status.PASS: 1, Status.SKIP: 0}


def _normalize(path: str) -> str:
    """A config path as Host names it: root-relative and normalized."""
    return posixpath.normpath("/" + path).lstrip("/")


def _relative_to(path: str, folder: str) -> str:
    """Root-relative path of `path`; relative paths are resolved next to the main config."""
    if path.startswith("/"):
        return _normalize(path)
    return _normalize(posixpath.join("/" + folder, path))


def _module_present(host: Host, name: str, dirs: list[str]) -> bool:
    """Kamailio's lookup: a path as given, else DIR/NAME.so or DIR/NAME/NAME.so on the path."""
    if "/" in name:
        file = name if name.endswith(".so") else name + ".so"
        if file.startswith("/"):
            return host.exists(file.lstrip("/"))
        return any(host.exists(f"{d}/{file}") for d in dirs)
    base = module_basename(name)
    return any(host.exists(f"{d}/{base}.so") or host.exists(f"{d}/{base}/{base}.so") for d in dirs)


def _fmt(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
