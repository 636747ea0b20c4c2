"""Standard output carries the report: what happens when it is closed or its reader goes away.

A reader that went away (`preflight -f json | head -c1`) or a stdout closed by the caller
(`preflight >&-`) must not turn the run into a silent exit 1 or a traceback: the command keeps its
exit code (the verdict, for `check`) and says in one line on stderr that the output was not
delivered.
"""

from __future__ import annotations

import os
import sys

_closed = False


def guard_standard_fds() -> None:
    """A closed stdin, stdout or stderr is reopened on /dev/null: otherwise the next file or pipe
    preflight opens would take its number, and the report would be written into it."""
    global _closed
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
            if fd == 1:
                _closed = True
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the run
            elif fd == 2:
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def emit(text: str) -> None:
    """Write `text` to stdout; when it cannot be delivered, say so once on stderr."""
    try:
        if _closed:
            raise BrokenPipeError("stdout is closed")
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        why = "it is closed" if _closed else f"{exc.strerror or exc}"
        sys.stderr.write(f"preflight: warning: stdout: the output was not delivered: {why}\n")
        sys.stderr.flush()
        # Nothing more goes there, not even the flush at exit (it would fail again).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
