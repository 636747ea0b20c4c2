"""Kamailio processes and the sockets they hold (the host's process and socket tables are
engine facts: preflight.facts.processes and preflight.facts.sockets).

What Kamailio should be doing: which running instance and config to judge, what
`kamailio -c` resolves that config to, and so which sockets it should hold.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight.check import Status
from preflight.facts.processes import cgroup_owner
from preflight.facts.sockets import IPV4_ANY, IPV6_ANY, BoundSocket

# The host's socket tables are an engine fact now; these names stay importable from here.
from preflight.facts.sockets import SOCKET_TABLE_LIMIT as SOCKET_TABLE_LIMIT
from preflight.facts.sockets import holders as holders
from preflight.facts.sockets import read_socket_tables as read_socket_tables
from preflight.facts.sockets import socket_inodes as socket_inodes
from preflight.text import printable
from preflight_checks.kamailio.config import (
    DEFAULT_CONFIG,
    MAX_ABSENT,
    CheckOutput,
    ParsedConfig,
    Socket,
    TlsConfig,
    normalize_path,
    parse_check_output,
    parse_socket,
    parse_tls_config,
)

if TYPE_CHECKING:
    from preflight.facts.processes import Process
    from preflight.facts.users import Accounts
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


@dataclass
class Instance:
    main: Process  # from the host's process table (preflight.facts.processes)
    members: list[Process]  # the main process and every descendant
    options: dict[str, list[str]]  # the main process's command line, parsed once (parse_argv)
    config_rel: str = DEFAULT_CONFIG  # the config it runs, root-relative (config_path)
    start_dir: str | None = None  # where it was started (a relative -f is resolved there)
    manager: str = "by hand"  # "systemd", "init-script" or "by hand" (instance_manager)
    unit: str | None = None  # its systemd unit
    untrusted: str | None = None  # why its main process is not a trusted Kamailio
    # proc/PID/root when it runs in another mount namespace (a container on the host's
    # network): its files as the kernel shows them to it; "" in this run's namespace.
    fs_root: str = ""
    config_unknown: str | None = None  # why the config it runs cannot be told

    @property
    def cwd_rel(self) -> str | None:
        """The root-relative folder it was started in (relative includes are looked up
        there first); None: unknown."""
        if self.start_dir is None:
            return None
        return normalize_path(posixpath.join(self.fs_root, self.start_dir.lstrip("/")))

    @property
    def argv(self) -> list[str]:
        return self.main.argv

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.members]

    @property
    def config(self) -> str | None:
        """The -f argument as given; None: the default config."""
        values = self.options.get("f")
        return values[-1] if values else None


def config_path(
    host: Host, proc: Process, given: str | None, fs_root: str = ""
) -> tuple[str | None, str | None]:
    """The config a process runs, root-relative (None: unknown), and the folder it was
    started in (as the process names it; None: unknown): -f as given, a relative one resolved
    there. Kamailio reads it before it daemonizes and moves to /, so the start folder is the
    process's cwd while in the foreground, else the PWD its starting shell exported.
    `fs_root`: where the process's absolute names start (Instance.fs_root)."""
    cwd = proc.cwd
    bases = [cwd] if cwd and cwd != "/" else []
    environ = host.read_bytes(f"proc/{proc.pid}/environ", limit=256 * 1024) or b""
    for entry in environ.split(b"\0"):
        if entry.startswith(b"PWD=/"):
            bases.append(entry[4:].decode("utf-8", "replace"))
    start_dir = bases[0] if bases else cwd

    def inside(path: str) -> str:
        return normalize_path(posixpath.join(fs_root, path.lstrip("/")))

    if given is None:
        return inside(DEFAULT_CONFIG), start_dir
    if given.startswith("/"):
        return inside(given), start_dir
    for base in bases:
        rel = inside(posixpath.join(base, given))
        if host.is_file(rel):
            return rel, base
    if start_dir is None and host.is_live:
        return None, None  # the folder a relative -f names a file in cannot be read
    # A snapshot without proc/PID/cwd: / (where the init script and systemd start it).
    return inside(posixpath.join(start_dir or "/", given)), start_dir


def mount_namespace_root(host: Host, pid: int) -> str:
    """proc/PID/root when the process runs in another mount namespace than this run (a
    container): its files are read through it. "" when it is this run's, or unknown."""
    if not host.is_live:
        return ""
    theirs = host.readlink(f"proc/{pid}/ns/mnt")
    ours = host.readlink("proc/self/ns/mnt")
    return f"proc/{pid}/root" if theirs and ours and theirs != ours else ""


INIT_PIDFILES = ("run/kamailio/kamailio.pid", "var/run/kamailio/kamailio.pid")


def instance_manager(host: Host, proc: Process) -> tuple[str, str | None]:
    """How an instance was started: its systemd unit (its cgroup names a system unit, not a
    login session's or a container's), Debian's init script (its pid file names it), else by
    hand."""
    owner = cgroup_owner(proc.cgroup)
    if owner is not None and owner[0] == "systemd":
        return "systemd", owner[1]
    for pidfile in INIT_PIDFILES:
        if host.read_line(pidfile) == str(proc.pid):
            return "init-script", None
    return "by hand", None


def find_instances(host: Host) -> list[Instance]:
    """Kamailio trees of the host's process table: a main process (its parent is not a live
    Kamailio) and its descendants. A zombie (a failed start's leftover, `[kamailio]
    <defunct>`) holds nothing and is never an instance."""
    table = host.processes
    instances = []
    for proc in table.named(PROC_NAME):
        if proc.zombie:
            continue
        parent = table.get(proc.ppid)
        if parent is not None and parent.name == PROC_NAME and not parent.zombie:
            continue
        members = [proc, *table.descendants(proc.pid)]
        options = parse_argv(proc.argv)
        given = options["f"][-1] if options.get("f") else None
        fs_root = mount_namespace_root(host, proc.pid)
        config, start_dir = config_path(host, proc, given, fs_root)
        manager, unit = instance_manager(host, proc)
        instance = Instance(proc, members, options, config or DEFAULT_CONFIG, start_dir)
        instance.manager, instance.unit, instance.fs_root = manager, unit, fs_root
        if config is None:
            instance.config_rel = normalize_path(given or DEFAULT_CONFIG)
            instance.config_unknown = (
                f"its -f {printable(given or '')} is relative and the folder it was started "
                f"in (/proc/{proc.pid}/cwd) cannot be read (not root?)"
            )
        instances.append(instance)
    return instances


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
    host: Host, instances: list[Instance], option: str | None
) -> tuple[Instance | None, str, str]:
    """The primary judgement: the trusted instance running the config that should run (the
    `config` option, else the default config, else the lowest pid), that config
    (root-relative), and where it came from; (None, config, source) when no instance runs
    it; config "" when it is unknown (service_config). A config is matched by the file it
    really is (symlinks resolved)."""
    wanted = normalize_path(option) if option else None
    if wanted is not None:
        real = host.realpath(wanted)
        match = next(
            (
                i
                for i in instances
                if i.config_rel == wanted or (real and host.realpath(i.config_rel) == real)
            ),
            None,
        )
        if match is None:
            # Not root: an instance whose relative -f cannot be resolved may run it; its
            # config is unknown (config-unreadable), not "not running".
            match = next(
                (
                    i
                    for i in instances
                    if i.config_unknown
                    and posixpath.basename(i.config_rel) == posixpath.basename(wanted)
                ),
                None,
            )
        return match, wanted, "option"
    if instances:
        chosen = next((i for i in instances if i.config_rel == DEFAULT_CONFIG), instances[0])
        return chosen, chosen.config_rel, "running process"
    config = service_config(host)
    if config is None:
        return None, "", "unknown"  # CFGFILE is set by shell code not executed here
    return None, config, "default" if config == DEFAULT_CONFIG else "CFGFILE"


def tls_config(host: Host, rel: str) -> TlsConfig | None:
    """The tls.cfg at `rel` (root-relative), parsed once per run: the judgement of its files
    and of its profiles both ask. None when it cannot be read."""

    def read(host: Host) -> TlsConfig | None:
        text = host.read_text(rel)
        return None if text is None else parse_tls_config(text, host.display(rel))

    return host.check_fact(f"kamailio/tls-config:{rel}", read)


def service_config(host: Host) -> str | None:
    """The config the init script and the unit (its EnvironmentFile=) start Kamailio with:
    CFGFILE as the init script sees it after sourcing /etc/default/kamailio (a relative one
    from /, where `service` runs it); None when it is unknown or empty."""
    cfgfile = init_defaults(host).get("CFGFILE")
    return normalize_path(cfgfile) if cfgfile else None


def run_owners(host: Host) -> frozenset[int]:
    """Who may own what this run executes or feeds to `kamailio -c`: root, and this run's own
    user when it is not root (a user may run what is already in their power)."""
    return frozenset({0, os.geteuid()}) if host.is_live else frozenset({0})


def choose_binary(
    report: Report, option: str | None, instance: Instance | None
) -> tuple[str | None, str | None]:
    """The Kamailio binary this run may execute, and why none may (an untrusted file)."""
    host = report.host
    if option:
        candidates = [option]
    else:
        candidates = []
        exe = instance.main.exe if instance else None
        if exe and not exe.endswith(DELETED):
            candidates.append(exe)
        found = host.which("kamailio")  # PATH, then /usr/sbin and /usr/local/sbin (cron's PATH)
        if found and found not in candidates:
            candidates.append(found)
    if not host.is_live:
        return (candidates[0] if candidates else None), None
    problem = None
    for candidate in candidates:
        problem = path_risk(host, candidate, run_owners(host))
        if problem is None:
            return candidate, None
    return None, problem


# -A NAME or NAME=VALUE as Kamailio's preprocessor takes it; nothing else is ever passed on.
_DEFINE_ARG = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:=[^\x00-\x1f]{0,256})?")


def valid_defines(instance: Instance | None) -> list[str]:
    """The instance's -A values that are a plain NAME[=VALUE]."""
    if instance is None:
        return []
    return [v for v in instance.options.get("A", []) if _DEFINE_ARG.fullmatch(v)]


def instance_defines(host: Host, instance: Instance | None) -> tuple[list[str], str | None]:
    """The -A defines of `instance` that `kamailio -c` may be given: only from a trusted
    process of this run's own user (root: a root process), each a plain NAME[=VALUE]; and why
    the others were left out."""
    if instance is None or not instance.options.get("A"):
        return [], None
    proc = instance.main
    if instance.untrusted or proc.uids is None or set(proc.uids) != {os.geteuid()}:
        return [], (
            f"the -A defines of pid {proc.pid} were not passed to `kamailio -c`: its "
            "process belongs to another user"
        )
    values = valid_defines(instance)
    dropped = len(instance.options["A"]) - len(values)
    return values, (
        f"{dropped} malformed -A value(s) of pid {proc.pid} ignored" if dropped else None
    )


def module_files(
    host: Host, parsed: ParsedConfig, cwd_rel: str | None
) -> tuple[list[str], list[tuple[str, str]]]:
    """What `kamailio -c` looks up for its modules, root-relative: the module folders and the
    .so files `loadmodule` names (it dlopens them as root, so they are held to the same rule
    as the config: a module in a folder another account can write is that account's code run
    as root); and, with what names each, the names it tries that do not exist (another
    account able to create one there could have it loaded). Lookup as ksr_locate_module does
    it (strace of kamailio 5.6): an absolute name as is; a relative one with a `/` from the
    working folder `cwd_rel`, then below each module folder; a plain NAME (or NAME.so)
    as DIR/NAME.so, then DIR/NAME/NAME.so. The loadmodule lines of #!ifdef branches the
    reading skipped count too (Kamailio may take them)."""
    from preflight_checks.kamailio.config import MODULE_DIRS

    dirs = [d.strip("/") for d in parsed.mpaths] or [
        d for pattern in MODULE_DIRS for d in host.glob(pattern) if host.is_dir(d)
    ]
    found = list(dirs)
    absent: list[tuple[str, str]] = []
    for name, where in [*parsed.modules, *parsed.skipped_modules]:
        if name.startswith("/"):
            candidates = [normalize_path(name)]
        elif "/" in name:
            first = [] if cwd_rel is None else [normalize_path(posixpath.join(cwd_rel, name))]
            candidates = first + [normalize_path(f"{folder}/{name}") for folder in dirs]
        else:
            base = name if name.endswith(".so") else f"{name}.so"
            stem = base[: -len(".so")]
            candidates = [
                normalize_path(rel) for d in dirs for rel in (f"{d}/{base}", f"{d}/{stem}/{base}")
            ]
        for rel in candidates:
            if host.exists(rel):
                found.append(rel)
                break
            if len(absent) <= MAX_ABSENT:
                absent.append((rel, f"loadmodule at {where}"))
    return found, absent


def config_risk(
    host: Host, files: list[str], absent: list[tuple[str, str]] | None = None
) -> str | None:
    """Why this run must not hand the config (or a file it includes) to `kamailio -c`.
    `absent`: names Kamailio looks up that do not exist, with what names each: the folder
    one would be created in must be as safe as that of an existing file."""
    if not host.is_live:
        return None
    for rel in files:
        problem = path_risk(host, host.display(rel), run_owners(host), folder=host.is_dir(rel))
        if problem:
            return problem
    absent = absent or []
    if len(absent) > MAX_ABSENT:
        return f"it names more than {MAX_ABSENT} files that do not exist (not all checked)"
    for rel, named_by in absent:
        problem = path_risk(host, host.display(rel), run_owners(host), missing_ok=True)
        if problem:
            return f"{host.display(rel)} ({named_by}) does not exist and {problem}"
    return None


def start_folder_risk(host: Host, cwd_rel: str) -> str | None:
    """Why the folder Kamailio starts in (where it looks a relative include up first) could
    hold a file another account put there; None when it is root-only (or not live)."""
    if not host.is_live:
        return None
    problem = path_risk(host, host.display(cwd_rel), run_owners(host), folder=True)
    if problem is None:
        return None
    folder = host.display(cwd_rel)
    return f"it starts in {folder}, where relative includes are looked up first: {problem}"


def run_kamailio_c(
    report: Report, binary: str, config: str, defines: list[str], timeout: float, cwd: str
) -> CheckOutput | None:
    """`kamailio -c -f CONFIG` with only arguments built here (no module, path or substitution
    taken from a process), in `cwd`: the folder the real start runs in, where Kamailio looks
    up a relative include first; None where it cannot run (then: best effort)."""
    host = report.host
    argv = [binary, "-c", "-f", config]
    for value in defines:
        argv += ["-A", value]
    result = host.run(argv, timeout=max(1.0, timeout / 2), cwd=cwd)
    if result is None:
        return None
    if result.returncode is None:
        why = "timed out" if result.timed_out else (result.error or "could not start")
        report.notes.append(f"`kamailio -c` {why}; the configuration was read best effort")
        return None
    return parse_check_output(
        result.returncode,
        result.stdout,
        result.stderr,
        lambda name: error_file(host, name, cwd, config),
    )


def error_file(host: Host, name: str, cwd: str, config: str) -> str:
    """The file `kamailio -c` (run in `cwd` on the absolute `config`) means by a file name
    in an error: it names a file as it opened it, a relative include relative to its working
    folder. Resolved as Kamailio resolves it: in that folder first, then next to the main
    config (the name as given when neither holds it)."""
    if name.startswith("/"):
        return name
    for folder in (cwd, posixpath.dirname(config)):
        path = posixpath.normpath(posixpath.join(folder, name))
        if host.exists(path.lstrip("/")):
            return path
    return posixpath.normpath(posixpath.join(cwd, name))


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


# ------------------------------------------------------------------------------------ trust
# Root runs `kamailio -c` on what it finds; a local user must not be able to steer that. Trust
# follows who could have put a file there: a file owned by a trusted account, in folders
# (every one from /, symlinks followed) that only trusted accounts can write.
MAX_PATH_HOPS = 40
DELETED = " (deleted)"  # how /proc names the executable of a process whose file was replaced


def path_risk(
    host: Host, path: str, owners: frozenset[int], folder: bool = False, missing_ok: bool = False
) -> str | None:
    """Why `path` (absolute, on the live host) could have been written by an account outside
    `owners`; None when it, and every folder and symlink on the way to it, is safe. Accounts
    are named by the host's passwd and group files.

    A folder others may write is accepted only with the sticky bit and an entry owned by a
    trusted account (/tmp/x owned by root): the sticky bit keeps others from replacing it.
    `missing_ok`: a path that does not exist is safe when its nearest existing folder (and
    every one above it) is, and no other account may add entries to it: else that account
    could create it."""
    import stat

    if not path.startswith("/"):
        return f"{path} is not an absolute path"
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = "/"
    try:
        st = os.lstat(current)
    except OSError as exc:
        return f"/ cannot be examined ({exc.strerror})"
    accounts = host.users
    problem = _folder_risk(accounts, current, st, owners)
    if problem:
        return problem
    sticky_open = False
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            current = os.path.dirname(current) or "/"
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if not missing_ok:
                return f"{candidate} cannot be examined (no such file or directory)"
            if sticky_open:
                return f"folder {current} is writable by others, who could create {candidate}"
            return None
        except PermissionError:
            # What this run may not look into, the `kamailio -c` it runs cannot open either.
            return None if missing_ok else f"{candidate} cannot be examined (permission denied)"
        except OSError as exc:
            return f"{candidate} cannot be examined ({(exc.strerror or str(exc)).lower()})"
        except ValueError:
            return f"{candidate!r} is not a valid file name"
        if sticky_open and st.st_uid not in owners:
            owner = accounts.describe_user(st.st_uid)
            return f"{candidate} is owned by {owner} in a folder others can write"
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_PATH_HOPS:
                return f"{candidate}: too many symbolic links"
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        if parts or folder:
            if not stat.S_ISDIR(st.st_mode):
                # Missing below a file: nothing can be created there without replacing it.
                return None if missing_ok and parts else f"{candidate} is not a folder"
            problem = _folder_risk(accounts, candidate, st, owners)
            if problem:
                return problem
            sticky_open = bool(st.st_mode & 0o022)
            current = candidate
            if not parts:
                return None
            continue
        if not stat.S_ISREG(st.st_mode):
            return f"{candidate} is not a regular file"
        return _owner_risk(accounts, candidate, st, owners, "file")
    return None


def _folder_risk(
    accounts: Accounts, path: str, st: os.stat_result, owners: frozenset[int]
) -> str | None:
    if st.st_mode & 0o1000:  # sticky: others may add entries but not replace trusted ones
        if st.st_uid in owners:
            return None
        return f"folder {path} is owned by {accounts.describe_user(st.st_uid)}"
    return _owner_risk(accounts, path, st, owners, "folder")


def _owner_risk(
    accounts: Accounts, path: str, st: os.stat_result, owners: frozenset[int], what: str
) -> str | None:
    if st.st_uid not in owners:
        return f"{what} {path} is owned by {accounts.describe_user(st.st_uid)}"
    if st.st_mode & 0o002:
        return f"{what} {path} is writable by every user"
    if st.st_mode & 0o020 and st.st_gid != 0:
        return f"{what} {path} is writable by group {accounts.describe_group(st.st_gid)}"
    return None


def service_users(host: Host) -> list[str]:
    """The accounts root's own configuration runs Kamailio as: the package's `kamailio`,
    USER= of /etc/default/kamailio (Debian's init script), User= of a kamailio unit (read
    once per run)."""

    def read(host: Host) -> tuple[str, ...]:
        names = ["kamailio"]
        user = init_defaults(host).get("USER")
        if user and user != "kamailio":
            names.append(user)
        for unit in UNIT_FILES:
            for line in (host.read_text(unit, 256 * 1024) or "").splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and key.strip() == "User" and value.strip():
                    names.append(value.strip())
        return tuple(names)

    return list(host.check_fact("kamailio/service-users", read))


UNIT_FILES = (
    "etc/systemd/system/kamailio.service",
    "run/systemd/system/kamailio.service",
    "lib/systemd/system/kamailio.service",
    "usr/lib/systemd/system/kamailio.service",
)


# --------------------------------------------------------------- /etc/default/kamailio
DEFAULTS_FILE = "etc/default/kamailio"
# What Debian's init script sets before it sources /etc/default/kamailio: its own defaults,
# which stand for every variable the file does not set.
INIT_SCRIPT_VARIABLES = {
    "PATH": "/sbin:/bin:/usr/sbin:/usr/bin",
    "DAEMON": "/usr/sbin/kamailio",
    "NAME": "kamailio",
    "DESC": "Kamailio SIP Server",
    "HOMEDIR": "/var/run/kamailio",
    "PIDFILE": "/var/run/kamailio/kamailio.pid",
    "DEFAULTS": "/etc/default/kamailio",
    "CFGFILE": "/" + DEFAULT_CONFIG,
    "RUN_KAMAILIO": "no",
    "USER": "kamailio",
    "GROUP": "kamailio",
    "SHM_MEMORY": "64",
    "PKG_MEMORY": "8",
    "DUMP_CORE": "no",
}
DEFAULTS_READ = ("RUN_KAMAILIO", "CFGFILE", "USER", "GROUP")  # what this check needs
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_EVALUATION_LIMIT = 64 * 1024
DEFAULTS_READ_LIMIT = 64 * 1024  # Debian's file is under 1 KiB


@dataclass(frozen=True)
class InitDefaults:
    """What Debian's init script sees once it sourced /etc/default/kamailio: RUN_KAMAILIO,
    CFGFILE, USER, GROUP (its own default for each the file does not set). `unknown`: the
    variables whose value cannot be told, each with why (set by shell code this run does not
    execute); `untrusted`: why the file is not root's (live host), so never executed."""

    values: dict[str, str]
    unknown: dict[str, str]
    untrusted: str | None = None

    def get(self, name: str) -> str | None:
        """The value the init script sees; None when it is unknown."""
        return None if name in self.unknown else self.values.get(name)


def init_defaults(host: Host) -> InitDefaults:
    """/etc/default/kamailio as the init script sees it, read (or evaluated) once per run.

    A file of plain literal assignments is parsed. Anything else is shell code: on a live
    host, a file that is root's (root-owned, in root-only folders) is sourced by `sh` in a
    clean environment exactly as the init script does (it runs it as root at every start
    anyway); a snapshot's, or a file another account could change, is never executed, and
    the variables that code could set are unknown."""
    return host.check_fact("kamailio/init-defaults", _read_init_defaults)


def _read_init_defaults(host: Host) -> InitDefaults:
    values = {name: INIT_SCRIPT_VARIABLES[name] for name in DEFAULTS_READ}
    display = host.display(DEFAULTS_FILE)
    untrusted = (
        path_risk(host, display, frozenset({0}))
        if host.is_live and host.exists(DEFAULTS_FILE)
        else None
    )
    data = host.read_bytes(DEFAULTS_FILE, DEFAULTS_READ_LIMIT + 1)
    if data is None:
        if not host.exists(DEFAULTS_FILE):
            return InitDefaults(values, {})  # the init script's own defaults
        why = f"{display} cannot be read ({host.why_unreadable(DEFAULTS_FILE)})"
        return InitDefaults(values, dict.fromkeys(DEFAULTS_READ, why), untrusted)
    oversized = len(data) > DEFAULTS_READ_LIMIT
    text = data.decode("utf-8", "replace")
    plain: dict[str, str] = {}
    if oversized:
        # Not read in full: the shell reads it all, so only the shell can tell.
        code_lines = [text.count("\n") + 1]
    else:
        plain, code_lines = plain_assignments(text)
    values.update({k: v for k, v in plain.items() if k in values})
    if not code_lines:
        return InitDefaults(values, {}, untrusted)
    lines = ", ".join(str(n) for n in code_lines[:5])
    if host.is_live and untrusted is None:
        evaluated = evaluate_defaults(host, display)
        if evaluated is not None:
            return InitDefaults(evaluated, {})
        why = (
            f"{display} is shell code (line {lines}) that could not be evaluated (sourcing it "
            "failed, exited or timed out)"
        )
        return InitDefaults(values, dict.fromkeys(DEFAULTS_READ, why))
    reason = f"{untrusted}, so it is not executed" if untrusted else "not executed in a snapshot"
    may_set = list(DEFAULTS_READ) if oversized else names_code_may_set(text, code_lines)
    unknown = {
        name: f"{name} may be set by shell code in {display} (line {lines}), {reason}"
        for name in may_set
    }
    return InitDefaults(values, unknown, untrusted)


def plain_assignments(text: str) -> tuple[dict[str, str], list[int]]:
    """The values of the plain literal assignments of a shell file (`NAME=value`, quoted or
    not, several on a line separated by `;`, `export` before them), in order; and the
    numbers of the lines that are anything else (shell code), comments and blank lines
    left out."""
    values: dict[str, str] = {}
    code: list[int] = []
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        hash_at = stripped.find("#")
        if (
            hash_at > 0
            and stripped[hash_at - 1] in " \t"
            and not any(q in stripped[:hash_at] for q in "'\"")
        ):
            stripped = stripped[:hash_at]  # a trailing comment
        words = assignment_words(stripped)
        if words is None or any(c in stripped for c in "$`\\~#"):
            code.append(number)
            continue
        for word in words:
            name, _, value = word.partition("=")
            values[name] = value
    return values, code


def assignment_words(line: str) -> list[str] | None:
    """The NAME=value words of a line made only of assignments (`;`-separated, optionally
    after `export`), quotes removed; None when it holds anything else (a command, `&&`, a
    redirection, an unclosed quote)."""
    import shlex

    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""  # `#` starts a comment only as a word of its own: plain_assignments
    try:
        tokens = list(lexer)
    except ValueError:  # an unclosed quote: the value goes on past this line
        return None
    words: list[str] = []
    command: list[str] = []
    for token in [*tokens, ";"]:
        if token != ";":  # noqa: S105 - a shell token, not a password
            if all(c in ";&|()<>" for c in token):  # `&&`, `|`, `(`, a redirection
                return None
            command.append(token)
            continue
        exported = command[:1] == ["export"]
        for word in command[1:] if exported else command:
            name, eq, _value = word.partition("=")
            if not _SHELL_NAME.fullmatch(name) or not (eq or exported):
                return None
            if eq:
                words.append(word)
        command = []
    return words


def names_code_may_set(text: str, code_lines: list[int]) -> list[str]:
    """The variables of DEFAULTS_READ that the shell code lines may set: those they name; all
    of them when a line is more than assignments (a command can source or eval anything,
    `if ... then` makes the next lines conditional)."""
    lines = text.split("\n")
    named: list[str] = []
    for number in code_lines:
        line = lines[number - 1]
        if assignment_words(line.strip()) is None:
            return list(DEFAULTS_READ)
        named += [n for n in DEFAULTS_READ if _mentions(line, n) and n not in named]
    return named


def _mentions(line: str, name: str) -> bool:
    """Does `line` use `name` as a whole word?"""
    start = line.find(name)
    while start >= 0:
        end = start + len(name)
        before = line[start - 1] if start else " "
        after = line[end] if end < len(line) else " "
        if not (before.isalnum() or before == "_" or after.isalnum() or after == "_"):
            return True
        start = line.find(name, end)
    return False


def evaluate_defaults(host: Host, path: str) -> dict[str, str] | None:
    """The init script's view of a root-owned defaults file: `sh` sets what the script sets,
    sources the file as it does (no stdin, its output discarded), and prints the variables
    NUL-separated; None when sourcing it fails, exits or times out."""
    from preflight.text import shell_arg

    presets = "".join(f"{k}={shell_arg(v)}\n" for k, v in INIT_SCRIPT_VARIABLES.items())
    script = (
        f"{presets}. {shell_arg(path)} </dev/null >/dev/null 2>&1 || true\n"
        "command printf 'preflight-defaults\\0'\n"
        + "".join(f"command printf '%s\\0' \"{n}=${n}\"\n" for n in DEFAULTS_READ)
    )
    # env -i: a clean environment, as the init script has under `service` or at boot.
    argv = ["/usr/bin/env", "-i", f"PATH={INIT_SCRIPT_VARIABLES['PATH']}", "/bin/sh", "-c"]
    result = host.run([*argv, script, "/etc/init.d/kamailio"], timeout=5.0)
    if result is None or result.returncode != 0 or len(result.stdout) > _EVALUATION_LIMIT:
        return None
    _, marker, printed = result.stdout.rpartition("preflight-defaults\0")
    values = {}
    for entry in printed.split("\0"):
        name, eq, value = entry.partition("=")
        if eq and name in DEFAULTS_READ:
            values[name] = value
    return values if marker and len(values) == len(DEFAULTS_READ) else None


def trusted_owners(host: Host, option_user: str | None) -> frozenset[int]:
    """Accounts whose Kamailio processes count as instances: root, this run's own user, and
    the accounts root configured Kamailio to run as (plus `[checks.kamailio] user`)."""
    names = service_users(host)
    if option_user:
        names.append(option_user)
    found = (host.users.uid_of(name) for name in names)
    uids = {0, *(uid for uid in found if uid is not None)}
    if host.is_live:
        uids.add(os.geteuid())
    return frozenset(uids)


def untrusted_reason(host: Host, proc: Process, owners: frozenset[int]) -> str | None:
    """Why `proc` is not a trusted Kamailio main process; None when it is."""
    if proc.uids is not None:
        outside = [uid for uid in proc.uids if uid not in owners]
        if outside:
            return f"it runs as {host.users.describe_user(outside[0])}"
    elif host.is_live:
        return "its owner cannot be read"
    if not host.is_live:
        return None  # a snapshot's file owners are whoever unpacked it: only the uid counts
    if proc.exe is None:
        # Not root: the executable of another account's process is hidden; its owner is trusted.
        return "its executable cannot be read" if host.is_root_user else None
    path = proc.exe[: -len(DELETED)] if proc.exe.endswith(DELETED) else proc.exe
    try:
        # The file the process really runs, even when its name was replaced since.
        st = os.stat(f"/proc/{proc.pid}/exe")
    except OSError:
        return "its executable cannot be examined"
    problem = _owner_risk(host.users, path, st, frozenset({0}), "executable")
    if problem is None:
        folder_owner = frozenset({0})
        problem = (
            path_risk(host, os.path.dirname(path), folder_owner, folder=True)
            if proc.exe.endswith(DELETED)
            else path_risk(host, path, folder_owner)
        )
    return problem


def trust_processes(host: Host, instances: list[Instance], option_user: str | None) -> None:
    """Mark every instance trusted or not (Instance.untrusted: why not)."""
    owners = trusted_owners(host, option_user)
    for instance in instances:
        instance.untrusted = untrusted_reason(host, instance.main, owners)


# ------------------------------------------------------------------------ local addresses
@dataclass
class LocalAddresses:
    """The addresses this host can bind: the kernel's local routes (IPv4, /proc/net/fib_trie)
    and interface addresses (IPv6, /proc/net/if_inet6)."""

    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    nonlocal_bind: dict[int, bool]  # per IP version: net.ipv*.ip_nonlocal_bind

    def can_bind(self, addr: str) -> bool | None:
        """Whether `addr` can be bound here; None when it is not an IP or the table is
        missing."""
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return None
        if ip.is_unspecified or self.nonlocal_bind.get(ip.version):
            return True
        tables = [n for n in self.networks if n.version == ip.version]
        if not tables:
            return None
        return any(ip in n for n in tables)


def local_addresses(host: Host) -> LocalAddresses:
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    last: str | None = None
    for line in (host.read_text("proc/net/fib_trie", limit=16 << 20) or "").splitlines():
        text = line.strip()
        if text.startswith("|-- "):
            last = text[4:].strip()
        elif last and text.startswith("/") and text.endswith("host LOCAL"):
            prefix = text[1:].split(" ", 1)[0]
            try:
                networks.append(ipaddress.ip_network(f"{last}/{prefix}", strict=False))
            except ValueError:
                pass
    for line in (host.read_text("proc/net/if_inet6", limit=4 << 20) or "").splitlines():
        word = line.split(" ", 1)[0]
        if len(word) == 32:
            try:
                networks.append(ipaddress.ip_network(int(word, 16).to_bytes(16, "big")))
            except ValueError:
                pass
    nonlocal_bind = {
        4: host.read_line("proc/sys/net/ipv4/ip_nonlocal_bind") == "1",
        6: host.read_line("proc/sys/net/ipv6/ip_nonlocal_bind") == "1",
    }
    return LocalAddresses(networks, nonlocal_bind)


# ------------------------------------------------------------------------------ accounts
def access_blockers(
    host: Host, rel: str, uid: int, gids: frozenset[int]
) -> list[tuple[str, os.stat_result]] | None:
    """Every folder above ROOT/rel the account (uid, gids) cannot enter and, last, the file
    itself when it cannot read it, with their stat. Where this run cannot look further (a
    folder it may not enter), the ones found so far; None when nothing blocks that far and
    the path is missing or hidden."""
    if uid == 0:
        return []
    blockers: list[tuple[str, os.stat_result]] = []
    parts = rel.strip("/").split("/")
    for depth in range(len(parts) + 1):
        path = "/".join(parts[:depth])
        st = host.stat(path)
        if st is None:
            return blockers or None  # missing: reported elsewhere
        need = 0o4 if depth == len(parts) else 0o1
        if st.st_uid == uid:
            bits = (st.st_mode >> 6) & 0o7
        elif st.st_gid in gids:
            bits = (st.st_mode >> 3) & 0o7
        else:
            bits = st.st_mode & 0o7
        if not bits & need:
            blockers.append((path, st))
    return blockers


def access_problem(host: Host, rel: str, uid: int, gids: frozenset[int]) -> str | None:
    """Why the account (uid, gids) cannot read ROOT/rel, from the mode bits of the file and
    of every folder above it (the first that blocks); None when it can (or root)."""
    blockers = access_blockers(host, rel, uid, gids)
    if not blockers:
        return None
    path, st = blockers[0]
    what = "the file" if path == rel.strip("/") else f"folder {host.display(path)}"
    return f"{what} is mode {st.st_mode & 0o7777:o}, owner uid {st.st_uid} gid {st.st_gid}"
