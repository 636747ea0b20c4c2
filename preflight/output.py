"""Report files (contract section 5): a reader sees the old complete file or the new one.

Every write goes through descriptors. The folder is opened once; the data goes into an unnamed
file made in it (O_TMPFILE), which is fchmod-ed and fsynced before it gets a name at all, then
linked under a random dot-name and renamed over the report. A folder another account can write
(a node_exporter textfile folder owned by its service account, a sticky /tmp) therefore never
sees a half-written temp name to swap, and a swap between link and rename is noticed by
comparing inodes and retried. Where O_TMPFILE is missing, a named temp file is created with
O_EXCL|O_NOFOLLOW and checked the same way.

Only a regular file (or nothing) is renamed over. A character device or a FIFO is written in
place (`-o /dev/null`, `-o /dev/stdout`); a symbolic link has its target replaced, in the
target's own folder, when every link on the way sits in a folder no other account can write;
anything else is refused with exit 64 before any check runs.

Several reports from one run are a loop over `write_atomically`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from preflight.errors import UsageError

TEMP_MARK = ".preflight-tmp-"
MAX_LINK_HOPS = 40
RENAME_TRIES = 5  # a competitor winning the link-rename window five times in a row gives up
_PID_DIGITS = 7  # pid_max is at most 2**22 = 4194304
_TOKEN_CHARS = 12
# `.NAME.preflight-tmp-PID-TOKEN.tmp`: what a temp name adds to the report's own name.
TEMP_OVERHEAD = 1 + len(TEMP_MARK) + _PID_DIGITS + 1 + _TOKEN_CHARS + len(".tmp")


@dataclass(frozen=True)
class Destination:
    """Where a report goes once links are followed: a folder and a name in it."""

    folder: str
    name: str
    direct: bool  # a character device or FIFO, written in place
    magic: bool = False  # a link such as /proc/self/fd/1 that only opening by path resolves

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.name)


def check_destination(path: str, flag: str = "--output") -> Destination:
    """Fail early (exit 64) when the report could not be written, before any check runs."""
    return _destination(path, flag)


def temp_name(name: str) -> str:
    token = secrets.token_hex(_TOKEN_CHARS // 2)
    return f".{name}{TEMP_MARK}{os.getpid()}-{token}.tmp"


def others_can_write(st: os.stat_result) -> bool:
    """Whether an account other than root and us can change the names in this folder: it owns
    it, or the group or world write bit is set."""
    return st.st_uid not in (0, os.geteuid()) or bool(st.st_mode & 0o022)


def _entry_is_trusted(folder_st: os.stat_result, entry_st: os.stat_result) -> bool:
    """As fs.protected_symlinks (and protected_fifos), stricter: a link is followed, or a FIFO
    or device written, only when it is root's or ours and sits in a folder no other account can
    write, or in a sticky folder of ours."""
    trusted = (0, os.geteuid())
    if entry_st.st_uid not in trusted:
        return False
    if not others_can_write(folder_st):
        return True
    sticky = bool(folder_st.st_mode & stat.S_ISVTX)
    return sticky and folder_st.st_uid in trusted


def _who_can_write(folder: str, folder_st: os.stat_result, entry_st: os.stat_result) -> str:
    """Why an entry is not trusted, in the operator's words."""
    if entry_st.st_uid not in (0, os.geteuid()):
        return f"it belongs to uid {entry_st.st_uid}"
    if folder_st.st_uid not in (0, os.geteuid()):
        return f"its folder {folder} belongs to uid {folder_st.st_uid}"
    return (
        f"its folder {folder} is writable by other accounts (mode {folder_st.st_mode & 0o7777:04o})"
    )


def _destination(path: str, flag: str) -> Destination:
    if not path:
        raise UsageError(f"{flag}: empty path")
    current = os.path.abspath(path)
    for _hop in range(MAX_LINK_HOPS):
        folder, name = os.path.split(current)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return _new_file(path, flag, folder, name)
        except OSError as exc:
            raise UsageError(f"{flag} {path}: {_reason(exc)}") from None
        if stat.S_ISLNK(st.st_mode):
            folder_st = _folder_stat(path, flag, folder)
            if not _entry_is_trusted(folder_st, st):
                raise UsageError(
                    f"{flag} {path}: {current} is a symbolic link another account could have "
                    f"planted ({_who_can_write(folder, folder_st, st)}): refusing to follow it"
                )
            try:
                target = os.readlink(current)
            except OSError as exc:
                raise UsageError(f"{flag} {path}: {_reason(exc)}") from None
            following = os.path.normpath(os.path.join(os.path.realpath(folder), target))
            if not os.path.lexists(following) and _opens_as_stream(current):
                # A magic link such as /proc/self/fd/1 -> "pipe:[123]" (`-o /dev/stdout`): its
                # target is not a path, but opening the link reaches the pipe.
                return Destination(folder, name, direct=True, magic=True)
            current = following
            continue
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            folder_st = _folder_stat(path, flag, folder)
            if not _entry_is_trusted(folder_st, st):
                kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device"
                raise UsageError(
                    f"{flag} {path}: {current} is {kind} another account could have planted "
                    f"({_who_can_write(folder, folder_st, st)}): refusing to write to it"
                )
            return Destination(folder, name, direct=True)
        if stat.S_ISREG(st.st_mode):
            return _new_file(path, flag, folder, name)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UsageError(f"{flag} {path}: {current} is {kind}; only a file is replaced")
    raise UsageError(f"{flag} {path}: too many levels of symbolic links")


def _opens_as_stream(link: str) -> bool:
    try:
        st = os.stat(link)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)


def _folder_stat(path: str, flag: str, folder: str) -> os.stat_result:
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: folder {folder} does not exist") from None
    except OSError as exc:
        raise UsageError(f"{flag} {path}: folder {folder}: {_reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{flag} {path}: {folder} is not a folder")
    return st


def _new_file(path: str, flag: str, folder: str, name: str) -> Destination:
    _folder_stat(path, flag, folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder {folder} is not writable")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(name)) + TEMP_OVERHEAD > name_max:
        raise UsageError(
            f"{flag} {path}: the name is too long: its temporary file would exceed the "
            f"{name_max}-byte limit (at most {name_max - TEMP_OVERHEAD} bytes)"
        )
    return Destination(folder, name, direct=False)


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


# ---------------------------------------------------------------------------- writing
def write_atomically(path: str, data: bytes, mode: int = 0o644, flag: str = "--output") -> None:
    """Replace the report at `path` with `data` (see the module docstring)."""
    with atomic_binary(path, mode, flag) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_binary(path: str, mode: int = 0o644, flag: str = "--output") -> Iterator[BinaryIO]:
    """A file object for the new report; on success it replaces the old one, on any failure
    the old one is untouched. A device or FIFO destination is written in place."""
    dest = _destination(path, flag)
    if dest.direct:
        with _open_stream(dest, path, flag) as handle:
            yield handle
        return
    dir_fd = open_folder(dest.folder, path, flag)
    try:
        _remove_stale_temps(dir_fd, dest.name)
        fd, temp = _create(dir_fd, dest)
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                yield handle
                handle.flush()
            os.fchmod(fd, mode)  # readers (node_exporter, facter) are not root
            os.fsync(fd)
            _publish(dir_fd, fd, temp, dest, path, flag)
        except BaseException:
            if temp is not None:
                _unlink_if_ours(dir_fd, temp, fd)
            raise
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def open_folder(folder: str, path: str, flag: str) -> int:
    """A descriptor for `folder`, opened one component at a time from / with O_NOFOLLOW. A link
    on the way is followed only where a link to the report itself would be (`_entry_is_trusted`),
    so an account that can change a parent folder cannot swap a component for a link to a
    folder of root's between the checks and the write."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    stack = [os.open("/", flags)]
    todo = [part for part in folder.split("/") if part]
    hops = 0
    try:
        while todo:
            name = todo.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                stack.append(os.open(name, flags, dir_fd=stack[-1]))
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise UsageError(f"{flag} {path}: folder {folder}: {_reason(exc)}") from None
            try:
                # The entry can change between the open and here (another account swapping it):
                # whatever it became, the write is refused with one line, never a traceback.
                link_st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
                target = (
                    os.readlink(name, dir_fd=stack[-1]) if stat.S_ISLNK(link_st.st_mode) else ""
                )
            except OSError as exc:
                raise UsageError(f"{flag} {path}: folder {folder}: {_reason(exc)}") from None
            hops += 1
            if not stat.S_ISLNK(link_st.st_mode) or hops > MAX_LINK_HOPS:
                raise UsageError(f"{flag} {path}: {folder} is not a folder")
            if not _entry_is_trusted(os.fstat(stack[-1]), link_st):
                raise UsageError(
                    f"{flag} {path}: folder {folder} is reached through a symbolic link ({name}) "
                    "in a folder other accounts can write: refusing to follow it"
                )
            if target.startswith("/"):
                while len(stack) > 1:
                    os.close(stack.pop())
            todo = [part for part in target.split("/") if part] + todo
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


@contextlib.contextmanager
def _open_stream(dest: Destination, path: str, flag: str) -> Iterator[BinaryIO]:
    # O_NONBLOCK: opening a FIFO nobody reads fails at once (ENXIO) instead of hanging the run.
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        if dest.magic:  # its folder (/proc/self/fd) was checked; only the kernel resolves it
            fd = os.open(dest.path, flags)
        else:
            dir_fd = open_folder(dest.folder, path, flag)
            try:
                fd = os.open(dest.name, flags | os.O_NOFOLLOW, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise UsageError(f"{flag} {path}: a FIFO that no process reads") from None
        raise UsageError(f"{flag} {path}: {_reason(exc)}") from None
    st = os.fstat(fd)
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        os.close(fd)  # replaced since it was checked: never write into a file in place
        raise UsageError(f"{flag} {path}: changed while preflight ran; nothing written")
    # The reader is there and trusted (root's or ours): write the report whole, blocking.
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as handle:
        yield handle


def _create(dir_fd: int, dest: Destination) -> tuple[int, str | None]:
    """An unnamed file in the folder (temp None), or where O_TMPFILE is unsupported a new
    dot-named one that no link or earlier file could stand in for."""
    name = dest.name
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        try:
            return _unnamed(dest.folder), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(RENAME_TRIES):
        temp = temp_name(name)
        try:
            return os.open(temp, flags, 0o600, dir_fd=dir_fd), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", name)


def _same_file(dir_fd: int, name: str, fd: int) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    ours = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino)


def _publish(
    dir_fd: int, fd: int, temp: str | None, dest: Destination, path: str, flag: str
) -> None:
    """Give the finished file its name. rename() never follows a link, so a temp name swapped
    for one moves only that link; the report's inode is checked after the rename. A competitor
    that removed the temp name orphaned that inode: an O_TMPFILE report is then copied into a
    fresh unnamed file and the step retried; a named one is refused."""
    clone = None
    try:
        for _ in range(RENAME_TRIES):
            current = fd if clone is None else clone
            if temp is None:
                temp = temp_name(dest.name)
                try:
                    os.link(
                        f"/proc/self/fd/{current}", temp, dst_dir_fd=dir_fd, follow_symlinks=True
                    )
                except FileExistsError:
                    temp = None
                    continue
                relinkable = True
            elif not _same_file(dir_fd, temp, current):
                break
            else:
                relinkable = False
            # After a lost race the name may hold the competitor's link, moved there by our own
            # rename: replacing that link again (rename never follows it) is the way back.
            if not _replaceable(dir_fd, dest.name, link_ok=clone is not None):
                raise UsageError(
                    f"{flag} {path}: {dest.path} became something other than a file while "
                    "preflight ran; nothing written"
                )
            with contextlib.suppress(FileNotFoundError):  # the competitor removed it first
                os.rename(temp, dest.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                if _same_file(dir_fd, dest.name, current):
                    return
            _unlink_if_ours(dir_fd, temp, current)
            if not relinkable:
                break
            temp = None
            new = _copy_to_unnamed(dest.folder, current)
            if clone is not None:
                os.close(clone)
            clone = new
    finally:
        if clone is not None:
            os.close(clone)
    raise UsageError(
        f"{flag} {path}: another account keeps replacing files in folder {dest.folder} "
        f"(owner uid {os.fstat(dir_fd).st_uid}); nothing written"
    )


def _unnamed(folder: str) -> int:
    """An O_TMPFILE file on the folder's filesystem. Opened by the folder's path (it creates
    no name, so a swapped path can do no harm: linking it into the folder we hold then fails)."""
    return os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)


def _copy_to_unnamed(folder: str, fd: int) -> int:
    """A new O_TMPFILE file in the folder with the content and mode of `fd`, synced."""
    new = _unnamed(folder)
    try:
        offset = 0
        while chunk := os.pread(fd, 1 << 20, offset):
            os.write(new, chunk)
            offset += len(chunk)
        os.fchmod(new, stat.S_IMODE(os.fstat(fd).st_mode))
        os.fsync(new)
    except BaseException:
        os.close(new)
        raise
    return new


def _replaceable(dir_fd: int, name: str, link_ok: bool = False) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return True
    return stat.S_ISREG(st.st_mode) or (link_ok and stat.S_ISLNK(st.st_mode))


def _unlink_if_ours(dir_fd: int, name: str, fd: int) -> None:
    if _same_file(dir_fd, name, fd):
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)


def _remove_stale_temps(dir_fd: int, name: str) -> None:
    """Temp files of runs that were killed; a temp of a run still alive is left alone.
    (unlink never follows a link, so a planted name removes nothing else.)"""
    pattern = re.compile(re.escape(f".{name}{TEMP_MARK}") + r"(\d+)-")
    try:
        entries = os.listdir(dir_fd)
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry, dir_fd=dir_fd)


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
