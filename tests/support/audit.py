"""The real CLI under audit hooks: every file it writes and every process it starts."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support.cli import REPO, Run, preflight_env

# Runs the CLI in-process with audit hooks that log every file opened for writing or changed
# (`write\t<path>`) and every process started (`exec\t<event>\t<argv joined by NUL>`).
_AUDIT_WRAPPER = r"""
import os, sys
log = open(os.environ["PF_AUDIT_LOG"], "a", buffering=1)
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link",
           "os.chmod", "os.chown", "os.truncate", "os.utime", "os.mknod", "os.mkfifo",
           "shutil.rmtree", "shutil.move", "shutil.copyfile"}
# Every way Python starts another program raises one of these. Not os.fork: preflight forks to
# run each check in its own process (no other program); the child inherits this hook, so what a
# check starts is recorded all the same.
STARTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
          "os.forkpty"}
def words(args):
    for arg in args:
        if isinstance(arg, (list, tuple)):
            return [os.fsdecode(a) if isinstance(a, (str, bytes)) else repr(a) for a in arg]
    return [os.fsdecode(a) if isinstance(a, (str, bytes)) else repr(a) for a in args]
def at(path, dir_fd=None):  # a name relative to an open folder (dir_fd), made absolute
    path = os.fsdecode(path)
    if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(path):
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    return os.path.abspath(path)
def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & WRITE)
        if writing and isinstance(path, (str, bytes)):
            tmpfile = getattr(os, "O_TMPFILE", 0)
            unnamed = tmpfile and isinstance(flags, int) and flags & tmpfile == tmpfile
            # O_TMPFILE names a folder: the file is created in it, without a name.
            log.write(f"write\t{os.path.join(at(path), '(unnamed)') if unnamed else at(path)}\n")
    elif event in ("os.rename", "os.link") and isinstance(args[1], (str, bytes)):
        src, dst, src_dir_fd, dst_dir_fd = args
        if event == "os.rename":
            log.write(f"write\t{at(src, src_dir_fd)}\n")
        log.write(f"write\t{at(dst, dst_dir_fd)}\n")
    elif event in CHANGES and args and isinstance(args[0], (str, bytes)):
        dir_fd = args[-1] if len(args) > 1 and isinstance(args[-1], int) else None
        log.write(f"write\t{at(args[0], dir_fd)}\n")
    elif event in STARTS:
        log.write(f"exec\t{event}\t" + "\0".join(words(args)) + "\n")
sys.addaudithook(hook)
sys.argv = ["preflight", *sys.argv[1:]]
from preflight.cli import main
main()
"""


@dataclass
class Audit:
    """What one audited run did: its output, the files it wrote, the processes it started."""

    run: Run
    writes: list[str] = field(default_factory=list)
    starts: list[tuple[str, list[str]]] = field(default_factory=list)


def run_audited(
    *args: str,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: str | Path = REPO,
    timeout: float = 120,
) -> Audit:
    """The real CLI under audit hooks (see _AUDIT_WRAPPER); `log` is the hooks' log file."""
    log.write_text("")
    proc = subprocess.run(
        [sys.executable, "-c", _AUDIT_WRAPPER, *args],
        capture_output=True,
        text=True,
        env=preflight_env({**(env or {}), "PF_AUDIT_LOG": str(log)}),
        timeout=timeout,
        cwd=cwd,
    )
    audit = Audit(Run(proc.returncode, proc.stdout, proc.stderr))
    for line in log.read_text().splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "write":
            audit.writes.append(rest)
        else:
            event, _, argv = rest.partition("\t")
            audit.starts.append((event, argv.split("\0")))
    return audit
