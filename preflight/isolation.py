"""Run untrusted or unbounded work (checks, plugin imports) in forked child processes that are
killed at their deadline, whatever they do.

A thread cannot be stopped: a check stuck in a C call that holds the interpreter lock (a
backtracking regex) starves every other thread and outlives any timeout. A forked child can be
killed. Each job runs in its own child and process group; its stdout is sent to stderr (stdout
carries the report only). What a job returns must be JSON data: it comes back over a pipe,
length-prefixed, and the parent rebuilds its own objects from it (a child can send data only,
never make the parent import or call anything; json is loaded already, pickle would cost an
import on every run). At the deadline the child is frozen, every process it started is killed by
process group, then the child itself. A child also dies with its parent (`PR_SET_PDEATHSIG`):
a run killed with SIGKILL, which can clean nothing up, leaves no check behind running until its
deadline.

Signals: `Interrupted` is raised in the main thread on SIGTERM, SIGINT or SIGHUP once
`handle_signals` is installed; `run_jobs` then kills every child it started before the exception
leaves it, so nothing a run started outlives it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from preflight.lifetime import die_with_parent

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# A result bigger than this is not a report but a runaway (a check filling its details).
MAX_RESULT_BYTES = 64 << 20
_HEADER = struct.Struct("!Q")


class Interrupted(BaseException):
    """A stop signal arrived (BaseException: no `except Exception` in the run swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention for "killed by signal N"


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def handle_signals() -> None:
    """SIGTERM, SIGINT and SIGHUP raise `Interrupted` in the main thread; a signal the caller
    ignores (`nohup` ignores SIGHUP, a shell's `&` SIGINT) stays ignored."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise_interrupted)


class CheckCrash(Exception):
    """A traceback formatted in a child process (the exception itself stays there)."""


class JobError:
    """Why a job gave no value: it raised (`kind` "raised", with the exception's type, message and
    traceback), ran out of time ("timeout"), or died or sent garbage ("lost")."""

    __slots__ = ("kind", "message", "traceback")

    def __init__(self, kind: str, message: str, traceback: str = "") -> None:
        self.kind = kind
        self.message = message
        self.traceback = traceback


class Outcome:
    """A job's value (JSON data), or why there is none."""

    __slots__ = ("value", "error", "seconds")

    def __init__(self, value: Any = None, error: JobError | None = None, seconds: float = 0.0):
        self.value = value
        self.error = error
        self.seconds = seconds


class _Child:
    __slots__ = ("pid", "fd", "started", "buffer", "done", "outcome")

    def __init__(self, pid: int, fd: int, started: float) -> None:
        self.pid = pid
        self.fd = fd
        self.started = started
        self.buffer = bytearray()
        self.done = False  # the whole message arrived, or the pipe closed
        self.outcome: Outcome | None = None


def run_jobs(jobs: Sequence[Callable[[], Any]], timeout: float) -> list[Outcome]:
    """Run each job in its own child process, all at once; each gets `timeout` seconds from its
    start. The outcomes are in the order of `jobs`."""
    children: list[_Child] = []
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for job in jobs:
            children.append(_start(job))
        _collect(children, timeout)
    finally:
        # A second signal must not cut this cleanup short: it waits until every child is gone.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for child in children:
                if child.outcome is None:  # interrupted, or a bug here: nothing may outlive us
                    kill_tree(child.pid)
                    _reap(child.pid)
                    child.outcome = Outcome(error=JobError("lost", "interrupted"))
                with contextlib.suppress(OSError):
                    os.close(child.fd)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return [child.outcome or Outcome(error=JobError("lost", "no outcome")) for child in children]


def _start(job: Callable[[], Any]) -> _Child:
    read_fd, write_fd = os.pipe()
    # A stop signal between fork and bookkeeping would leave a child nobody kills.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    parent = os.getpid()
    # The child's collector then leaves the inherited objects alone instead of touching (and so
    # copying) every page they live on.
    gc.freeze()
    try:
        try:
            pid = os.fork()
            if pid == 0:  # the child: never returns
                os.close(read_fd)
                _child_main(job, write_fd, old_mask, parent)
        finally:
            gc.unfreeze()
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done in the child: whichever runs first
        os.close(write_fd)
        return _Child(pid, read_fd, time.monotonic())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _child_main(job: Callable[[], Any], write_fd: int, old_mask: Any, parent: int) -> None:
    status = 0
    try:
        die_with_parent(parent)
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is _raise_interrupted:
                signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        # stdout is the report's: whatever a check or plugin prints goes to stderr. A new file
        # object, not the inherited one: another thread of the parent (the progress line) may
        # have held its lock at the fork, and would hold it in this copy for ever.
        os.dup2(2, 1)
        sys.stdout = sys.stderr = open(  # noqa: SIM115 - lives as long as the child
            2, "w", buffering=1, errors="backslashreplace", closefd=False
        )
        try:
            message: Any = {"ok": job()}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from plugin code too
            message = {"error": _raised(exc)}
        try:
            data = json.dumps(message).encode()
        except Exception as exc:  # a value that is not JSON data
            data = json.dumps({"error": _raised(exc)}).encode()
        with contextlib.suppress(BaseException):
            sys.stderr.flush()  # before the result: the parent kills the child once it has it
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        status = 70
    finally:
        os._exit(status)


def _raised(exc: BaseException) -> dict[str, str]:
    import traceback

    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return {
        "message": f"{type(exc).__name__}: {first}" if first else type(exc).__name__,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _collect(children: list[_Child], timeout: float) -> None:
    poller = select.poll()
    by_fd = {}
    for child in children:
        poller.register(child.fd, select.POLLIN)
        by_fd[child.fd] = child
    pending = list(children)
    while pending:
        now = time.monotonic()
        for child in pending:
            if child.done:
                # The result is complete (or the pipe closed): the child has nothing more to
                # do; whatever is left in its process group goes with it.
                with contextlib.suppress(OSError):
                    os.killpg(child.pid, signal.SIGKILL)
                _reap(child.pid)
                child.outcome = child.outcome or _decode(child)
            elif now - child.started >= timeout:
                _give_up(child, JobError("timeout", f"did not finish within {timeout:g} s"), poller)
        pending = [c for c in pending if c.outcome is None]
        if not pending:
            break
        wait = min(c.started + timeout for c in pending) - time.monotonic()
        for fd, _event in poller.poll(max(0.0, wait) * 1000):
            _read(by_fd[fd], poller)


def _read(child: _Child, poller: select.poll) -> None:
    try:
        chunk = os.read(child.fd, 1 << 16)
    except OSError:
        chunk = b""
    child.buffer += chunk
    size = _HEADER.unpack_from(child.buffer)[0] if len(child.buffer) >= _HEADER.size else None
    if size is not None and size > MAX_RESULT_BYTES:
        _give_up(child, JobError("lost", f"sent more than {MAX_RESULT_BYTES >> 20} MiB"), poller)
        return
    complete = size is not None and len(child.buffer) >= _HEADER.size + size
    if not chunk or complete:
        # Complete, or the child closed its end: do not wait for a process it left behind.
        poller.unregister(child.fd)
        child.done = True


def _give_up(child: _Child, error: JobError, poller: select.poll) -> None:
    kill_tree(child.pid)
    _reap(child.pid)
    if not child.done:
        poller.unregister(child.fd)
        child.done = True
    child.outcome = Outcome(error=error, seconds=time.monotonic() - child.started)


def _decode(child: _Child) -> Outcome:
    seconds = time.monotonic() - child.started
    data = bytes(child.buffer)
    if len(data) < _HEADER.size or len(data) < _HEADER.size + _HEADER.unpack_from(data)[0]:
        return Outcome(error=JobError("lost", "exited without a result"), seconds=seconds)
    try:
        message = json.loads(data[_HEADER.size :])
        if "ok" in message:
            return Outcome(value=message["ok"], seconds=seconds)
        error = message["error"]
        raised = JobError("raised", str(error["message"]), str(error["traceback"]))
        return Outcome(error=raised, seconds=seconds)
    except (ValueError, TypeError, KeyError):
        return Outcome(error=JobError("lost", "sent an unreadable result"), seconds=seconds)


def _reap(pid: int, block: bool = True) -> bool:
    """Collect the exit status of `pid`; False while it still runs (block=False)."""
    try:
        done, _status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return True
    except InterruptedError:  # pragma: no cover - PEP 475 retries
        return False
    return done != 0


def kill_tree(pid: int) -> None:
    """Kill child `pid` (a process group leader) and everything it started, including commands
    in their own sessions: freeze the group first, so nothing new starts while the tree is read."""
    own_group = os.getpgrp()
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGSTOP)
    import psutil  # only on this rare path: never on a normal run's

    groups: set[int] = set()
    pids: set[int] = set()
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    for proc in descendants:
        with contextlib.suppress(psutil.Error):
            proc.suspend()
        pids.add(proc.pid)
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(proc.pid))
    groups.add(pid)
    for group in groups - {own_group, 0, 1}:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for other in pids:
        with contextlib.suppress(OSError):
            os.kill(other, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
