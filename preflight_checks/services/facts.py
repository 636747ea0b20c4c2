"""The facts of the `services` check: which processes still map code that is no longer on disk,
and how each of them runs (a systemd unit, an init script's pid file, a container, a login
session, or a process someone started by hand).

Everything is read through the Host from /proc on the live machine: `/proc/PID/maps` for the
mapped files (device, inode, path, and the kernel's " (deleted)" mark), a stat of the same path
through `/proc/PID/root` (the process's own view of the file system, so a container's or a
chroot's files are compared with their own, not with ours), and, for the few processes that map
something stale, their status, cmdline, cgroup and parent chain. Nothing here starts a program
except `package_owners`, which asks dpkg/rpm once for the files that were found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.facts.processes import cgroup_owner, read_cgroup

if TYPE_CHECKING:
    from collections.abc import Iterable

    from preflight.host import Host

MAPS_READ_LIMIT = 32 << 20  # a JVM with thousands of mappings writes a few MiB
SMALL_READ_LIMIT = 64 << 10  # status, cgroup, cmdline, a pid file
PIDFILE_FOLDERS = ("run", "var/run")
MAX_PIDFILES = 2000  # a bound on what a hostile /run can make us read
MAX_ANCESTRY = 64  # parent chains are short; a loop or a fork bomb must not make this long
MAX_IGNORED_EXAMPLES = 5
DELETED = " (deleted)"

# Where package code lives. A stale mapping elsewhere (a home folder, /var/cache, /run) is a file
# the process made itself (JIT code, caches) or one a user built by hand: not a package's code.
CODE_FOLDERS = (
    "/usr/",
    "/lib/",
    "/lib32/",
    "/lib64/",
    "/libx32/",
    "/bin/",
    "/sbin/",
    "/opt/",
    "/snap/",
    "/var/lib/flatpak/",
)

# (path prefix, the reason in details["ignored"]) for mappings that are never package code. The
# kernel marks them deleted or gives them no file at all, so an inode comparison means nothing.
NOT_CODE = (
    ("/memfd:", "memfd: anonymous memory with a name (sealed code copies, JIT), never on disk"),
    ("/SYSV", "System V shared memory segment"),
    ("/dev/shm/", "POSIX shared memory in /dev/shm"),  # noqa: S108 - a prefix, not a file
    ("/dev/zero", "shared anonymous memory (shown as a deleted /dev/zero)"),
    ("/anon_hugepage", "anonymous huge pages"),
    ("/[", "kernel-made mapping (aio ring, ...)"),
    ("/tmp/", "a file in /tmp: temporary data, not installed code"),  # noqa: S108
    ("/var/tmp/", "a file in /var/tmp: temporary data, not installed code"),  # noqa: S108
    ("/dev/", "a device mapping"),
)
OUTSIDE_CODE = (
    "outside the folders packages install code into (/usr, /lib*, /bin, /sbin, /opt): made by "
    "the process itself (JIT code, caches) or by hand"
)

NOT_EXECUTABLE = (
    "data, not code: mapped without execute permission (the locale archive, caches, fonts, "
    "ICU data)"
)

# Processes whose restart would stop the containers they run: reported as `self`, like pid 1.
CONTAINER_RUNTIME = frozenset(
    {"containerd-shim", "containerd-shim-runc-v2", "containerd-shim-runc-v1", "conmon", "runc"}
)


@dataclass(frozen=True)
class StaleFile:
    """One file a process maps whose on-disk copy is gone or is another file now."""

    path: str
    inode: int
    state: str  # "deleted" or "replaced"
    is_executable: bool  # the process's own binary, not a library


@dataclass
class ProcessFacts:
    """What is known about one process that maps something stale."""

    pid: int
    stale: list[StaleFile]
    comm: str = ""
    ppid: int | None = None
    uid: int | None = None
    argv: list[str] = field(default_factory=list)
    cwd: str | None = None
    cgroup: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "comm": self.comm,
            "uid": self.uid,
            "argv": self.argv,
            "files": [
                {"path": f.path, "state": f.state, "inode": f.inode, "binary": f.is_executable}
                for f in self.stale
            ],
        }


@dataclass
class Scan:
    """The result of walking every process once."""

    scanned: int = 0  # processes whose maps were read (kernel threads count: they map nothing)
    unreadable: list[int] = field(default_factory=list)  # maps we may not read (other users')
    stale: dict[int, ProcessFacts] = field(default_factory=dict)
    # reason -> {"mappings": count, "examples": [paths]}: what was left out, and why
    ignored: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ignore(self, reason: str, path: str) -> None:
        entry = self.ignored.setdefault(reason, {"mappings": 0, "examples": []})
        entry["mappings"] += 1
        if len(entry["examples"]) < MAX_IGNORED_EXAMPLES and path not in entry["examples"]:
            entry["examples"].append(path)


def process_ids(host: Host) -> list[int]:
    """Every pid in /proc, in order."""
    return sorted(int(name) for name in host.listdir("proc") if name.isdigit())


def not_code_reason(path: str) -> str | None:
    """Why a mapped path is not package code, or None when it may be."""
    for prefix, reason in NOT_CODE:
        if path.startswith(prefix):
            return reason
    if not path.startswith(CODE_FOLDERS):
        return OUTSIDE_CODE
    return None


class _FileView:
    """Stats of paths as each process sees them, shared by processes that see the same tree
    (the same mount namespace and root): one stat per distinct library on the whole host."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.inodes: dict[tuple[Any, str], int | None] = {}
        # raw maps path -> (path, deleted, why it is not package code): the same few hundred
        # paths recur in every process, so each is decoded and classified once.
        self.paths: dict[bytes, tuple[str, bool, str | None]] = {}

    def classify(self, raw: bytes) -> tuple[str, bool, str | None]:
        known = self.paths.get(raw)
        if known is None:
            path = os.fsdecode(raw)
            deleted = path.endswith(DELETED)
            if deleted:
                path = path[: -len(DELETED)]
            known = self.paths[raw] = (path, deleted, not_code_reason(path))
        return known

    def view_of(self, pid: int) -> Any:
        namespace = self.host.readlink(f"proc/{pid}/ns/mnt")
        root = self.host.stat(f"proc/{pid}/root")
        return (namespace, None if root is None else (root.st_dev, root.st_ino))

    def inode(self, view: Any, pid: int, path: str) -> int | None:
        key = (view, path)
        if key not in self.inodes:
            st = self.host.stat(f"proc/{pid}/root{path}")
            self.inodes[key] = None if st is None else st.st_ino
        return self.inodes[key]


def scan(host: Host, pids: Iterable[int] | None = None) -> Scan:
    """Read the maps of every process (or of `pids`) and keep the stale package files."""
    result = Scan()
    files = _FileView(host)
    for pid in process_ids(host) if pids is None else pids:
        data = host.read_bytes(f"proc/{pid}/maps", MAPS_READ_LIMIT)
        if data is None:
            if host.exists(f"proc/{pid}"):  # not a process that just exited
                result.unreadable.append(pid)
            continue
        result.scanned += 1
        if not data:
            continue  # a kernel thread or a zombie: no memory of its own
        stale = _stale_mappings(host, pid, data, files, result)
        if stale:
            result.stale[pid] = ProcessFacts(pid, stale)
    return result


def _stale_mappings(
    host: Host, pid: int, data: bytes, files: _FileView, result: Scan
) -> list[StaleFile]:
    candidates: dict[str, tuple[int, bool, bytes]] = {}  # path -> (inode, deleted, key)
    executable: set[bytes] = set()  # keys of files mapped with execute permission
    view: Any = None
    seen: set[bytes] = set()
    for line in data.split(b"\n"):
        # start-end perms offset dev inode path: one file is several consecutive lines
        # (text, data, relro) that differ only before the device; compare the rest once.
        fields = line.split(None, 5)
        if len(fields) < 6 or fields[4] == b"0":
            continue  # anonymous memory, [heap], [stack], [vdso]
        key = fields[4] + b" " + fields[5]
        if b"x" in fields[1]:
            executable.add(key)
        if key in seen:
            continue
        seen.add(key)
        path, deleted, reason = files.classify(fields[5])
        if not path.startswith("/"):
            continue  # [vsyscall] and such
        inode = int(fields[4]) if fields[4].isdigit() else -1
        if not deleted:
            if reason is not None:
                continue  # not package code: whether it changed does not matter
            if view is None:
                view = files.view_of(pid)
            now = files.inode(view, pid, path)
            if now is None or now == inode:
                # Unchanged, or gone from view (another mount namespace we may not enter).
                continue
        if reason is not None:
            result.ignore(reason, path)
            continue
        candidates.setdefault(path, (inode, deleted, key))
    if not candidates:
        return []
    exe = (host.readlink(f"proc/{pid}/exe") or "").removesuffix(DELETED)
    stale = []
    for path, (inode, deleted, key) in candidates.items():
        if key not in executable and path != exe:
            result.ignore(NOT_EXECUTABLE, path)
            continue
        state = "deleted" if deleted else "replaced"
        stale.append(StaleFile(path, inode, state, path == exe))
    return stale


# ------------------------------------------------------------------ about a process
def describe(host: Host, process: ProcessFacts) -> ProcessFacts:
    """Fill in name, parent, owner, command line and cwd from the host's process table (read
    only now that something was found), and the cgroup."""
    pid = process.pid
    known = host.processes.get(pid)
    if known is not None:
        process.comm, process.ppid, process.uid = known.name, known.ppid, known.uid
        process.argv, process.cwd = known.argv, known.cwd
    process.cgroup = read_cgroup(host, pid) if known is None else known.cgroup
    return process


def ancestors(host: Host, process: ProcessFacts) -> list[int]:
    """The parent chain of a process, nearest first, up to (not including) pid 1."""
    chain: list[int] = []
    parent = process.ppid
    while parent and parent != 1 and parent not in chain and len(chain) < MAX_ANCESTRY:
        chain.append(parent)
        known = host.processes.get(parent)
        parent = None if known is None else known.ppid
    return chain


def pidfiles(host: Host) -> dict[int, str]:
    """pid -> the pid file under /run (or /var/run) that names it: how init scripts and
    daemons record their main process."""
    found: dict[int, str] = {}
    seen_dirs: set[str | None] = set()
    count = 0
    for folder in PIDFILE_FOLDERS:
        real = host.realpath(folder)
        if real in seen_dirs:
            continue  # /var/run -> /run
        seen_dirs.add(real)
        for rel in [*host.glob(f"{folder}/*.pid"), *host.glob(f"{folder}/*/*.pid")]:
            count += 1
            if count > MAX_PIDFILES:
                return found
            line = host.read_line(rel)
            if line and line.isdigit():
                found.setdefault(int(line), rel)
    return found


def login_uid_range(host: Host) -> tuple[int, int]:
    """UID_MIN and UID_MAX from /etc/login.defs (the accounts people log in with)."""
    bounds = {"UID_MIN": 1000, "UID_MAX": 60000}
    for line in (host.read_text("etc/login.defs", SMALL_READ_LIMIT) or "").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in bounds and words[1].isdigit():
            bounds[words[0]] = int(words[1])
    return bounds["UID_MIN"], bounds["UID_MAX"]


# ------------------------------------------------------------------ packages
def package_owners(host: Host, paths: Iterable[str]) -> dict[str, str]:
    """path -> the package that owns it now (one dpkg-query or rpm run for all paths). A
    merged-/usr host lists /lib/x86_64-linux-gnu/libc.so.6 where the process maps
    /usr/lib/x86_64-linux-gnu/libc.so.6, so both spellings are asked."""
    wanted = sorted(set(paths))
    if not wanted:
        return {}
    spellings: dict[str, str] = {}
    for path in wanted:
        spellings[path] = path
        for merged in ("/usr/lib", "/usr/bin", "/usr/sbin"):
            if path.startswith(merged + "/"):
                spellings[path[len("/usr") :]] = path
    manager = host.packages.manager
    owners: dict[str, str] = {}
    if manager == "dpkg":
        result = host.run(["dpkg-query", "-S", "--", *spellings])
        for line in (result.stdout if result is not None else "").splitlines():
            names, sep, path = line.rpartition(": ")
            original = spellings.get(path.strip())
            if sep and original and "diversion" not in names:
                # "libssl3:amd64" (or "a, b" when several share a folder): the first name.
                owners.setdefault(original, names.split(",")[0].strip().split(":")[0])
    elif manager == "rpm":
        for spelled, original in spellings.items():
            result = host.run(["rpm", "-qf", "--qf", "%{NAME}\n", "--", spelled])
            if result is not None and result.ok and result.stdout.strip():
                owners.setdefault(original, result.stdout.split()[0])
    return owners


def installed_at(host: Host, package: str) -> float | None:
    """When the package was last unpacked (dpkg .list mtime, rpm INSTALLTIME)."""
    found = host.packages.get(package)
    return None if found is None else found.installed_at


def replaced_at(host: Host, pid: int, path: str) -> float | None:
    """When the file now at `path` was put there (its ctime), as the process sees the tree."""
    st = host.stat(f"proc/{pid}/root{path}")
    return None if st is None else st.st_ctime


# ------------------------------------------------------------------ services
@dataclass
class Service:
    """Processes that one restart (or one logout, or one reboot) renews."""

    kind: str  # "systemd", "init", "container", "session", "self" or "process"
    name: str  # unit, init script, runtime:container, user, "init" or the tree's root pid
    processes: list[ProcessFacts] = field(default_factory=list)
    pidfile: str | None = None  # init: the pid file that named the main process
    session: str | None = None  # session: the logind session id, when the cgroup says

    @property
    def main(self) -> ProcessFacts:
        """The process at the top of the tree (the first one the service started)."""
        pids = {p.pid for p in self.processes}
        for process in self.processes:
            if process.ppid not in pids:
                return process
        return self.processes[0]

    @property
    def files(self) -> list[StaleFile]:
        seen: dict[str, StaleFile] = {}
        for process in self.processes:
            for stale in process.stale:
                seen.setdefault(stale.path, stale)
        return sorted(seen.values(), key=lambda f: (not f.is_executable, f.path))


def init_script_for(host: Host, pidfile: str, scripts: dict[str, str] | None = None) -> str | None:
    """The /etc/init.d script that manages the daemon whose pid file this is: the one named as
    the pid file's folder or file (run/kamailio/kamailio.pid), else the one that names the pid
    file (/etc/init.d/ssh names /run/sshd.pid)."""
    parts = pidfile.split("/")
    stem = parts[-1].removesuffix(".pid")
    candidates = [parts[-2], stem] if len(parts) > 2 else [stem]
    for name in candidates:
        if host.is_file(f"etc/init.d/{name}"):
            return name
    for name in host.listdir("etc/init.d")[:500]:
        text = host.read_text(f"etc/init.d/{name}", SMALL_READ_LIMIT) or ""
        if parts[-1] in text:
            return name
    return None


def group_services(host: Host, found: Scan) -> list[Service]:
    """One Service per unit, init script, container, user session, pid 1, or process tree."""
    processes = [describe(host, p) for p in found.stale.values()]
    by_pid = {p.pid: p for p in processes}
    login_uids = login_uid_range(host)
    daemons: dict[int, str] | None = None  # pid files, read when a process has no unit
    services: dict[tuple[str, str], Service] = {}
    for process in processes:
        owner = _owner_by_pid1_or_cgroup(process)
        pidfile = None
        if owner is None:
            if daemons is None:
                daemons = pidfiles(host)
            chain = [process.pid, *ancestors(host, process)]
            owner, pidfile = _owner_by_pidfile(host, chain, daemons)
            if owner is None:
                if process.uid is not None and login_uids[0] <= process.uid <= login_uids[1]:
                    owner = ("session", "", None)
                else:
                    # Hand-started: the tree is rooted at its oldest ancestor that is stale too.
                    top = next((pid for pid in reversed(chain) if pid in by_pid), process.pid)
                    owner = ("process", str(top), None)
        kind, name, session = owner
        if kind == "session":
            known = None if process.uid is None else host.users.user_name(process.uid)
            name = known or f"uid {process.uid}"
        service = services.setdefault((kind, name), Service(kind, name, pidfile=pidfile))
        service.session = service.session or session
        service.processes.append(process)
    return list(services.values())


def _owner_by_pid1_or_cgroup(process: ProcessFacts) -> tuple[str, str, str | None] | None:
    if process.pid == 1:
        return "self", "init", None
    if process.comm in CONTAINER_RUNTIME:
        return "self", process.comm, None
    return cgroup_owner(process.cgroup)


def _owner_by_pidfile(
    host: Host, chain: list[int], daemons: dict[int, str]
) -> tuple[tuple[str, str, str | None] | None, str | None]:
    for pid in chain:
        pidfile = daemons.get(pid)
        if pidfile is not None:
            script = init_script_for(host, pidfile)
            if script is not None:
                return ("init", script, None), pidfile
    return None, None
