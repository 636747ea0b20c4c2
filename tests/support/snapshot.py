"""A host snapshot directory: files a real host exposes, for `--root`."""

from __future__ import annotations

import os
from pathlib import Path


class Snapshot:
    """A host snapshot directory: files a real host exposes, for `--root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(
        self, rel: str, content: str | bytes, mtime: float | None = None, mode: int | None = None
    ) -> Path:
        path = self.root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        if mode is not None:
            path.chmod(mode)
        return path

    def mkdir(self, rel: str) -> Path:
        path = self.root / rel.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def symlink(self, rel: str, target: str) -> Path:
        path = self.root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        return path

    def process(self, pid: int, comm: str, uid: int, argv: list[str], ppid: int = 1) -> None:
        """A process as ROOT/proc shows it: stat (as Linux 6.1 writes it), status, cmdline."""
        stat = f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"
        self.write(f"proc/{pid}/stat", stat)
        self.write(f"proc/{pid}/status", f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
        self.write(f"proc/{pid}/cmdline", "".join(arg + "\0" for arg in argv))

    def __str__(self) -> str:
        return str(self.root)
