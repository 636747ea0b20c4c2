"""The processes a run starts die with it: Linux's PR_SET_PDEATHSIG, asked for in each new
process before it runs anything. A run killed with SIGKILL (cron's or Puppet's timeout, the
OOM killer) can clean nothing up itself; the kernel then kills its check processes, and they
the commands they started.

The signal comes when the *thread* that forked the process ends: `run_jobs` and `Host.run`
both wait for their process in the thread that started it, so that is when the run ends."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.cache
def _prctl() -> Any | None:
    """libc's prctl, loaded once, only where a process is started (ctypes costs about 2 ms)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):  # not glibc/musl on Linux: no such call
        return None


def die_with_parent(parent: int) -> None:
    """In a new process, first thing: be killed with SIGKILL when `parent` ends; exit at once
    if it ended before the request took effect (the process was already re-parented)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(70)


def dying_with_this_process() -> Callable[[], None]:
    """A Popen `preexec_fn` that makes the command die with this process. Everything it needs
    is looked up here, before the fork: in the child it makes one C call and imports nothing
    (an import there could wait for a lock another thread held at the fork)."""
    _prctl()
    return functools.partial(die_with_parent, os.getpid())
