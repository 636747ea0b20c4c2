"""The one place that touches the host: file reads under --root and command execution.

Every path is relative to the root (``proc/version``, not ``/proc/version``) and symbolic links are
resolved inside the root, so a host snapshot or a mounted image is read the way the host itself
would read it. Nothing here raises for a missing, unreadable or strange file: reads return ``None``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
import stat
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from preflight.facts import HostFacts
from preflight.facts.shared import shared_fact
from preflight.lifetime import dying_with_this_process

__all__ = ["CommandResult", "Host", "NotRegularFile", "read_regular", "shared_fact"]

DEFAULT_READ_LIMIT = 1 << 20  # 1 MiB: every file a check reads is far smaller
COMMAND_OUTPUT_LIMIT = 4 << 20  # per stream: `kamailio -c` or `puppet --version` print far less
MAX_SYMLINK_HOPS = 40  # as the kernel's own limit: a loop reads as missing, not as a hang
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NotRegularFile(OSError):
    """A FIFO, a device or a directory where a file was expected."""


def read_regular(path: str, limit: int) -> bytes:
    """At most `limit` bytes of the regular file at `path`. Opened non-blocking and checked
    before reading, so a FIFO or a device in its place neither blocks nor streams forever.
    Raises OSError (NotRegularFile for anything but a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
        chunks: list[bytes] = []
        remaining = limit
        # A file whose size is known is read in one call, into one buffer (plus a byte to
        # notice growth): joining 64 KiB pieces of an 8 MiB dpkg status file costs a second
        # copy, ~20 ms of fresh memory here. /proc and /sys files say size 0: read in pieces.
        step = st.st_size + 1 if st.st_size > 0 else 1 << 16
        while remaining > 0:
            chunk = os.read(fd, min(remaining, step))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
            step = 1 << 16
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int | None  # None when the command timed out or could not start
    stdout: str
    stderr: str
    timed_out: bool = False
    error: str | None = None  # why it could not start, e.g. "No such file or directory"

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Host(HostFacts):
    """Read-only access to one host, live (root ``/``) or a snapshot directory: the one door to
    the host. The facts derived from what it reads (HostFacts) live in preflight/facts/."""

    def __init__(
        self, root: str = "/", timeout: float = 10.0, env: dict[str, str] | None = None
    ) -> None:
        self.root = os.path.abspath(root)
        self.timeout = timeout
        self._env = dict(os.environ if env is None else env)
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- paths
    @property
    def is_live(self) -> bool:
        """True on the machine itself: only then are commands run and processes inspected."""
        return self.root == "/"

    def resolve(self, rel: str) -> str | None:
        """The real path of ROOT/rel, with every symlink resolved inside ROOT; None on a loop."""
        rel = rel.lstrip("/")
        if self.is_live:
            return "/" + rel
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.root, *resolved, name)
            try:
                st = os.lstat(candidate)
            except (OSError, ValueError):  # ValueError: a NUL byte in a name read from a file
                # Missing: the rest cannot exist either, but keep the path for the error message.
                # Without the ".." that follow: "missing/../../x" must not name a path above ROOT.
                return os.path.join(self.root, *resolved, name, *[p for p in parts if p != ".."])
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    return None
                try:
                    target = os.readlink(candidate)
                except (OSError, ValueError):
                    return None
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            resolved.append(name)
        return os.path.join(self.root, *resolved)

    def realpath(self, rel: str) -> str | None:
        """Root-relative path that `rel` names once every symlink is resolved inside ROOT (to
        tell what a link such as usr/bin/puppet -> /opt/... really is); None on a loop."""
        path = self.resolve(rel)
        if path is None:
            return None
        if self.is_live:
            path = os.path.realpath(path)
        rel_path = os.path.relpath(path, self.root)
        return "" if rel_path == "." else rel_path

    def display(self, rel: str) -> str:
        """How a path is named in messages: as the host itself would name it."""
        return "/" + rel.lstrip("/")

    # ----------------------------------------------------------------- reads
    def stat(self, rel: str) -> os.stat_result | None:
        path = self.resolve(rel)
        if path is None:
            return None
        try:
            return os.stat(path)
        except (OSError, ValueError):
            return None

    def exists(self, rel: str) -> bool:
        return self.stat(rel) is not None

    def is_file(self, rel: str) -> bool:
        st = self.stat(rel)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_dir(self, rel: str) -> bool:
        st = self.stat(rel)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def mtime(self, rel: str) -> float | None:
        st = self.stat(rel)
        return st.st_mtime if st is not None else None

    def _unresolved_last(self, rel: str) -> str | None:
        """ROOT/rel with the folders resolved inside ROOT but the last name left as it is."""
        parent, _, name = rel.strip("/").rpartition("/")
        folder = self.resolve(parent) if parent else self.root
        return None if folder is None or not name else os.path.join(folder, name)

    def lstat(self, rel: str) -> os.stat_result | None:
        """Like stat, but a symbolic link is described itself, not followed."""
        path = self._unresolved_last(rel)
        try:
            return None if path is None else os.lstat(path)
        except (OSError, ValueError):
            return None

    def is_link(self, rel: str) -> bool:
        st = self.lstat(rel)
        return st is not None and stat.S_ISLNK(st.st_mode)

    def readlink(self, rel: str) -> str | None:
        """The target a symbolic link names (as written, not resolved); None if not a link."""
        path = self._unresolved_last(rel)
        try:
            return None if path is None else os.readlink(path)
        except (OSError, ValueError):
            return None

    def is_readable(self, rel: str) -> bool | None:
        """Whether this process may read the file; None under another root, where the answer
        depends on who runs there, not on us."""
        if not self.is_live:
            return None
        path = self.resolve(rel)
        return path is not None and os.access(path, os.R_OK)

    def read_bytes(self, rel: str, limit: int = DEFAULT_READ_LIMIT) -> bytes | None:
        """At most `limit` bytes of a regular file; None if it is missing, unreadable or not a
        regular file (a FIFO, a device, a directory are refused before anything blocks)."""
        path = self.resolve(rel)
        if path is None:
            return None
        try:
            return read_regular(path, limit)
        except (OSError, ValueError):
            return None

    def read_text(self, rel: str, limit: int = DEFAULT_READ_LIMIT) -> str | None:
        data = self.read_bytes(rel, limit)
        return None if data is None else data.decode("utf-8", errors="replace")

    def read_line(self, rel: str) -> str | None:
        """The first line of a small file, stripped; None if absent, empty or binary."""
        text = self.read_text(rel, limit=64 * 1024)
        if text is None:
            return None
        line = text.strip().split("\n", 1)[0].strip()
        if "\x00" in line:
            # Not text: a file zero-filled by a crash or a sparse file. Unknown, not a value.
            return None
        return line or None

    def why_unreadable(self, rel: str) -> str:
        """A short reason for a failed read, for messages: 'missing', 'permission denied', ..."""
        path = self.resolve(rel)
        if path is None:
            return "symbolic link loop"
        try:
            st = os.stat(path)
        except ValueError:
            return "not a valid file name"
        except OSError as exc:
            return "missing" if exc.errno == errno.ENOENT else (exc.strerror or str(exc)).lower()
        if stat.S_ISDIR(st.st_mode):
            return "a directory, not a file"
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return (exc.strerror or str(exc)).lower()
        return "unreadable"

    def listdir(self, rel: str) -> list[str]:
        path = self.resolve(rel)
        if path is None:
            return []
        try:
            return sorted(os.listdir(path))
        except (OSError, ValueError):
            return []

    def glob(self, pattern: str) -> list[str]:
        """Relative paths under ROOT that match a shell pattern, component by component."""
        matches = [""]
        for component in [p for p in pattern.strip("/").split("/") if p]:
            expanded: list[str] = []
            for base in matches:
                if any(ch in component for ch in "*?["):
                    expanded.extend(
                        f"{base}/{name}".lstrip("/")
                        for name in self.listdir(base)
                        if fnmatch.fnmatchcase(name, component)
                        and not (name.startswith(".") and not component.startswith("."))
                    )
                else:
                    candidate = f"{base}/{component}".lstrip("/")
                    if self.lstat(candidate) is not None:  # a dangling link matches too
                        expanded.append(candidate)
            matches = expanded
        return sorted(m for m in matches if m)

    # -------------------------------------------------------------- commands
    def search_path(self) -> list[str]:
        """The folders `which` searches: PATH on the live host, the standard PATH in ROOT."""
        search = self._env.get("PATH", SYSTEM_PATH) if self.is_live else SYSTEM_PATH
        return [folder for folder in search.split(os.pathsep) if folder]

    def which_all(self, name: str, search: Iterable[str] | None = None) -> list[str]:
        """Every executable `name` in the folders of `search` (default: search_path()), in
        that order: what the first one shadows."""
        found: list[str] = []
        for folder in self.search_path() if search is None else search:
            rel = f"{folder.strip('/')}/{name}"
            st = self.stat(rel)
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                path = "/" + rel
                if path not in found:
                    found.append(path)
        return found

    def which(self, name: str) -> str | None:
        """Where the program `name` is: on PATH, else in the standard folders (cron's PATH
        lacks /usr/sbin, where openvpn and kamailio live)."""
        extra = [f for f in SYSTEM_PATH.split(os.pathsep) if f not in self.search_path()]
        found = self.which_all(name, [*self.search_path(), *extra])
        return found[0] if found else None

    def run(
        self, argv: list[str], timeout: float | None = None, cwd: str | None = None
    ) -> CommandResult | None:
        """Run a command without a shell (in `cwd`, else this process's working folder); None
        when the root is not `/` (nothing is executed for a snapshot). The whole process group
        is killed at the timeout."""
        if not self.is_live:
            return None
        limit = self.timeout if timeout is None else timeout
        env = dict(self._env)
        env["LC_ALL"] = "C"
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
                # Its own session escapes the kill of the check's process group; this
                # ends it with the check, even one killed with SIGKILL.
                preexec_fn=dying_with_this_process(),  # noqa: PLW1509 - one C call, no import
            )
        except OSError as exc:
            return CommandResult(list(argv), None, "", "", error=exc.strerror or str(exc))
        with self._lock:
            self._running.add(proc)
        # Not communicate(): it keeps everything a command prints, so one that prints without
        # end (a broken or hostile binary on PATH) would fill memory before the timeout.
        out: list[bytes] = []
        err: list[bytes] = []
        readers = [
            threading.Thread(target=_drain, args=(stream, sink), daemon=True)
            for stream, sink in ((proc.stdout, out), (proc.stderr, err))
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)
        for reader in readers:
            # A child that left the process group may still hold the pipe: do not wait for it.
            reader.join(1.0)
        stdout, stderr = _decode(b"".join(out)), _decode(b"".join(err))
        if timed_out:
            return CommandResult(list(argv), None, stdout, stderr, timed_out=True)
        return CommandResult(list(argv), proc.returncode, stdout, stderr)

    def kill_commands(self) -> None:
        """Kill what is still running (the commands of checks that timed out)."""
        with self._lock:
            running = list(self._running)
        for proc in running:
            _kill_group(proc)

    @property
    def is_root_user(self) -> bool:
        return self.is_live and os.geteuid() == 0


def _drain(stream: Any, sink: list[bytes], limit: int = COMMAND_OUTPUT_LIMIT) -> None:
    """Read a pipe to its end, keeping the first `limit` bytes (the child never blocks)."""
    kept = 0
    try:
        while True:
            chunk = stream.read1(1 << 16)
            if not chunk:
                break
            if kept < limit:
                sink.append(chunk[: limit - kept])
                kept += len(sink[-1])
    except (OSError, ValueError):
        pass
    finally:
        try:
            stream.close()
        except OSError:
            pass


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
