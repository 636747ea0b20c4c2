"""The host's process table: who runs, under whom, since when, started by which parent.

The table itself (pid, ppid, name, start time, zombie state) is read once per run from
ROOT/proc/<pid>/stat through Host, live and under ``--root`` alike: one small file per process,
~2 ms for 130 processes, where psutil.process_iter() takes 11-23 ms for the same table (bench/
RESULTS.md), which every Kamailio check would pay. A process's uids (real and effective), user,
argv, exe and cwd are read on first use, because a check asks for them of a handful of processes
while a host runs hundreds: from the same files live and under ``--root`` (the exe link as the
kernel names it, " (deleted)" included), a live read confirmed by the process's start time so a
reused pid never lends its details to the process the table read.

Everything here is what another user's process says about itself: data, never a command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preflight.host import Host

CMDLINE_LIMIT = 64 * 1024  # the kernel shows at most a page of argv per read; plenty for a match
STATUS_LIMIT = 64 * 1024
CGROUP_LIMIT = 64 * 1024
_UNREAD: Any = object()


class Process:
    """One process of the table. `argv`, `exe`, `cwd` and `user` are read on first use (and
    None or [] when the process is gone or belongs to another user we may not inspect)."""

    __slots__ = ("pid", "ppid", "name", "start_time", "zombie", "_table", "_lazy")

    def __init__(
        self,
        table: ProcessTable,
        pid: int,
        ppid: int,
        name: str,
        start_time: float | None,
        zombie: bool,
    ) -> None:
        self._table = table
        self.pid = pid
        self.ppid = ppid
        self.name = name  # the kernel's comm: at most 15 characters
        self.start_time = start_time  # epoch seconds
        self.zombie = zombie
        self._lazy: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, ppid={self.ppid}, name={self.name!r})"

    def _get(self, what: str) -> Any:
        value = self._lazy.get(what, _UNREAD)
        if value is _UNREAD:
            # Two threads may both read it: the answer is the same, the last one kept.
            value = self._lazy[what] = getattr(self._table, f"_read_{what}")(self)
        return value

    @property
    def argv(self) -> list[str]:
        """The command line; [] for a kernel thread, a zombie or a process that is gone."""
        return list(self._get("argv"))

    @property
    def exe(self) -> str | None:
        """The program's path as the kernel names it (may end in " (deleted)")."""
        return self._get("exe")

    @property
    def cwd(self) -> str | None:
        return self._get("cwd")

    @property
    def uid(self) -> int | None:
        """The real uid."""
        uids = self._get("uids")
        return None if uids is None else uids[0]

    @property
    def uids(self) -> tuple[int, int] | None:
        """The real and the effective uid (a setuid program's differ)."""
        return self._get("uids")

    @property
    def user(self) -> str | None:
        """The name of the real uid, by the host's own passwd file (the root's, under --root)."""
        return self._get("user")

    @property
    def cgroup(self) -> str | None:
        """The cgroup that says where the process belongs (read_cgroup); None: unknown."""
        return self._get("cgroup")


class ProcessTable:
    """Every process of the host, in pid order, with parent/child links."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._start_ticks: dict[int, int | None] = {}  # pid -> start, in clock ticks after boot
        self.processes: list[Process] = self._read_stat_files()
        self._by_pid = {p.pid: p for p in self.processes}
        self._children: dict[int, list[Process]] = {}
        for proc in self.processes:
            self._children.setdefault(proc.ppid, []).append(proc)

    # ------------------------------------------------------------------- queries
    def __iter__(self) -> Iterator[Process]:
        return iter(self.processes)

    def __len__(self) -> int:
        return len(self.processes)

    @property
    def visible(self) -> bool:
        """Whether the table says anything: live, or a snapshot that holds ROOT/proc/<pid> files
        (a snapshot may hold proc/1/environ alone, without a process list)."""
        return self.host.is_live or bool(self.processes)

    def get(self, pid: int) -> Process | None:
        return self._by_pid.get(pid)

    def children(self, pid: int) -> list[Process]:
        return list(self._children.get(pid, ()))

    def descendants(self, pid: int) -> list[Process]:
        """Children, their children, ...: breadth first."""
        found: list[Process] = []
        seen = {pid}
        queue = [pid]
        while queue:
            for child in self._children.get(queue.pop(0), ()):
                if child.pid not in seen:  # a snapshot may hold a parent loop
                    seen.add(child.pid)
                    found.append(child)
                    queue.append(child.pid)
        return found

    def named(self, name: str) -> list[Process]:
        return [p for p in self.processes if p.name == name]

    # ------------------------------------------------------------ the live host
    def _same_process(self, proc: Process) -> bool:
        """Whether ROOT/proc/<pid> still is the process the table read: a pid is reused when a
        process ends and another starts. Checked after a detail was read, so the detail is the
        process's own (a snapshot does not change)."""
        if not self.host.is_live:
            return True
        fields = parse_stat(self.host.read_text(f"proc/{proc.pid}/stat", limit=4096))
        return fields is not None and fields[3] == self._start_ticks.get(proc.pid)

    # --------------------------------------------------------------- the table
    def _read_stat_files(self) -> list[Process]:
        processes = []
        boot = self.host.boot_time
        ticks = os.sysconf("SC_CLK_TCK")
        for name in self.host.listdir("proc"):
            if not name.isdecimal():
                continue
            fields = parse_stat(self.host.read_text(f"proc/{name}/stat", limit=4096))
            if fields is None:
                continue
            ppid, comm, state, starttime = fields
            self._start_ticks[int(name)] = starttime
            start = None if boot is None or starttime is None else boot + starttime / ticks
            processes.append(Process(self, int(name), ppid, comm, start, state == "Z"))
        return sorted(processes, key=lambda p: p.pid)

    # ------------------------------------------------------------ the lazy parts
    # Read from ROOT/proc/<pid> through Host, live and under --root alike (psutil reads the same
    # files; importing it costs 15-25 ms, more than every read a check asks for). A process gone,
    # a zombie, or another user's that this run may not inspect gives [] or None.
    def _read_argv(self, proc: Process) -> list[str]:
        raw = self.host.read_bytes(f"proc/{proc.pid}/cmdline", limit=CMDLINE_LIMIT) or b""
        argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        return argv if self._same_process(proc) else []

    def _read_exe(self, proc: Process) -> str | None:
        # The link as the kernel names it: " (deleted)" for an executable removed or replaced
        # since the start, which trust rules must see.
        exe = self.host.readlink(f"proc/{proc.pid}/exe")
        return exe if self._same_process(proc) else None

    def _read_cwd(self, proc: Process) -> str | None:
        cwd = self.host.readlink(f"proc/{proc.pid}/cwd")
        return cwd if self._same_process(proc) else None

    def _read_uids(self, proc: Process) -> tuple[int, int] | None:
        uids = parse_status_uids(self.host.read_text(f"proc/{proc.pid}/status", STATUS_LIMIT))
        return uids if self._same_process(proc) else None

    def _read_user(self, proc: Process) -> str | None:
        return None if proc.uid is None else self.host.users.user_name(proc.uid)

    def _read_cgroup(self, proc: Process) -> str | None:
        cgroup = read_cgroup(self.host, proc.pid)
        return cgroup if self._same_process(proc) else None


# ------------------------------------------------------------------------------ cgroups
def read_cgroup(host: Host, pid: int) -> str | None:
    """The cgroup of ROOT/proc/<pid>/cgroup that says where the process belongs (parse_cgroup);
    for a pid the table may not hold (a process that started since it was read)."""
    return parse_cgroup(host.read_text(f"proc/{pid}/cgroup", CGROUP_LIMIT) or "")


def parse_cgroup(text: str) -> str | None:
    """The cgroup that says where a process belongs: the unified (v2) one, else the systemd
    named hierarchy (v1); None when unknown."""
    named = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            return path or None
        if controllers == "name=systemd":
            named = path or None
    return named


def cgroup_owner(path: str | None) -> tuple[str, str, str | None] | None:
    """(kind, name, session) that a cgroup path names: a container, a login session, pid 1's
    own scope, or a systemd unit; None when the cgroup says nothing (no systemd, or "/")."""
    if not path:
        return None
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        for prefix, runtime in (
            ("docker-", "docker"),
            ("libpod-", "podman"),
            ("cri-containerd-", "kubernetes"),
            ("crio-", "kubernetes"),
        ):
            if part.startswith(prefix) and part.endswith(".scope") and "conmon" not in part:
                return "container", f"{runtime}:{part[len(prefix) : -len('.scope')]}", None
        if part in ("docker", "lxc") and i + 1 < len(parts):
            return "container", f"{part}:{parts[i + 1]}", None
        if part.startswith("lxc.payload."):
            return "container", f"lxc:{part[len('lxc.payload.') :]}", None
        if part.startswith("machine-") and part.endswith(".scope"):
            return "container", f"machine:{part[len('machine-') : -len('.scope')]}", None
    if "kubepods" in path or "kubepods.slice" in parts:
        return "container", f"kubernetes:{parts[-1]}", None
    if "user.slice" in parts:
        session = next(
            (p[len("session-") : -len(".scope")] for p in parts if p.startswith("session-")),
            None,
        )
        return "session", "", session
    if parts == ["init.scope"]:
        return "self", "init", None
    units = [p for p in parts if p.endswith(".service")]
    if units:
        return "systemd", units[-1], None
    return None


def parse_stat(text: str | None) -> tuple[int, str, str, int | None] | None:
    """(ppid, comm, state, starttime in clock ticks after boot) of a proc/<pid>/stat line."""
    if not text:
        return None
    # comm may hold spaces and parentheses: it ends at the last ")".
    open_paren, close_paren = text.find("("), text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        return None
    comm = text[open_paren + 1 : close_paren]
    fields = text[close_paren + 2 :].split()
    try:
        ppid = int(fields[1])
    except (IndexError, ValueError):
        return None
    try:
        starttime: int | None = int(fields[19])
    except (IndexError, ValueError):
        starttime = None
    return ppid, comm, fields[0], starttime


def parse_status_uids(text: str | None) -> tuple[int, int] | None:
    """The real and effective uid on the `Uid:` line of proc/<pid>/status."""
    for line in (text or "").splitlines():
        if line.startswith("Uid:"):
            values = line.split()[1:3]
            if len(values) == 2 and all(v.isdecimal() for v in values):
                return int(values[0]), int(values[1])
            return None
    return None
