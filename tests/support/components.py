"""Real components a test needs: a missing one skips, except in CI, where it fails."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.cli import IN_CI, NOBODY, as_user, run_preflight


# ------------------------------------------------------------------ real components
def require(what: str, available: bool) -> None:
    """Skip when a real component is missing, except in CI, where that is a failure."""
    if available:
        return
    message = f"{what} is not available on this machine"
    if IN_CI:
        pytest.fail(f"{message}; .ci/run must install it")
    pytest.skip(message)


def require_command(name: str) -> str:
    path = shutil.which(name) or next(
        (
            p
            for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}")
            if os.access(p, os.X_OK)
        ),
        None,
    )
    require(f"command {name!r}", path is not None)
    assert path is not None
    return path


def require_root() -> None:
    require("root privileges", os.geteuid() == 0)


def require_nobody_can_run(module: str | None = None) -> None:
    """Root (to switch users), setpriv, and an install uid NOBODY can run (the interpreter and,
    for an editable install, the checkout must be readable by all); with `module`, that it can
    import that module too."""
    require_root()
    require_command("setpriv")
    probe = run_preflight("--version", user=NOBODY)
    require(f"preflight runnable by uid {NOBODY} (venv readable by all)", probe.returncode == 0)
    if module is not None:
        importable = subprocess.run(
            [*as_user(NOBODY), sys.executable, "-c", f"import {module}"],
            capture_output=True,
            cwd="/",
            timeout=60,
        )
        require(f"{module} importable by uid {NOBODY}", importable.returncode == 0)


@contextmanager
def world_readable_dir(prefix: str = "preflight-", mode: int = 0o755) -> Iterator[Path]:
    """A temp folder other users can enter (pytest's tmp_path is private to root), removed
    afterwards even where a test took permissions away inside it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(mode)
    try:
        yield folder
    finally:
        for dirpath, dirnames, _ in os.walk(folder):
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | stat.S_IRWXU)
        shutil.rmtree(folder, ignore_errors=True)


def live_machine(what: str, available: Callable[[], object]) -> pytest.MarkDecorator:
    """Mark a test that judges this very machine: it runs only where `available()` is true
    (checked at setup), is a failure in CI where it is not, and `-m 'not live_machine'`
    leaves it out."""
    return pytest.mark.live_machine(what, available)
