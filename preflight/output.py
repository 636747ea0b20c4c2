"""Atomic report files: a reader sees the old complete file or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from preflight.errors import UsageError

TEMP_MARK = ".preflight-tmp-"


def check_destination(path: str, flag: str = "--output") -> None:
    """Fail early (exit 64) when the file could not be written, before any check runs."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder {folder} is not writable")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a directory")


@contextlib.contextmanager
def atomic_binary(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file object for a dot-named temporary file beside `path` (its name does not end in
    .prom or .json, so collectors skip it); on success it is fsynced and renamed over `path`,
    on any failure it is removed and `path` is untouched."""
    path = os.path.abspath(path)
    folder, name = os.path.split(path)
    _remove_stale_temps(folder, name)
    fd, temp = tempfile.mkstemp(
        prefix=f".{name}{TEMP_MARK}{os.getpid()}-", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 whatever the umask; readers (node_exporter, facter) are not root.
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` atomically (see atomic_binary)."""
    with atomic_binary(path, mode) as handle:
        handle.write(text.encode("utf-8"))


def _remove_stale_temps(folder: str, name: str) -> None:
    """Temp files of runs that were killed; a temp of a run still alive is left alone."""
    pattern = re.compile(re.escape(f".{name}{TEMP_MARK}") + r"(\d+)-")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, entry))


def _pid_alive(pid: int) -> bool:
    """Whether the preflight run that made a temp file may still be writing it. A pid that was
    reused by another program (its command line does not mention preflight) counts as gone."""
    if pid == os.getpid():
        return False  # our own leftovers cannot be in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"preflight" in handle.read(64 * 1024)
    except OSError:
        return True  # cannot tell: leave the file alone
