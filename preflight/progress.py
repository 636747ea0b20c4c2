"""A one-line progress note on a terminal's stderr while a run takes longer than a second.

Only when stderr is a terminal: cron, Puppet and pipes get nothing extra. The line is rewritten in
place with a carriage return (no escape sequences, so TERM=dumb terminals show it too) and erased
before the report is printed.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType

DELAY = 1.0
INTERVAL = 0.5


class Progress:
    def __init__(self, what: str, enabled: bool | None = None) -> None:
        self.what = what
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = 0

    def __enter__(self) -> Progress:
        if self.enabled:
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self._write("\r" + " " * self._shown + "\r")

    def _loop(self) -> None:
        if self._stop.wait(DELAY):
            return
        while not self._stop.is_set():
            elapsed = time.monotonic() - self._started
            line = f"preflight: {self.what} ({elapsed:.0f} s)"
            self._write("\r" + line.ljust(self._shown))
            self._shown = max(self._shown, len(line))
            self._stop.wait(INTERVAL)

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # a closed terminal never breaks the run
