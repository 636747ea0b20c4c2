"""Shared test helpers: run the real CLI, build host snapshots, require real components."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The installed console script, exactly what an operator, cron or Puppet runs.
_SCRIPT = Path(sys.executable).with_name("preflight")
PREFLIGHT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "preflight"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_preflight(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | None = None,
    user: int | None = None,
) -> Run:
    """Run the real command line, as an operator or cron would, and capture everything."""
    full_env = dict(os.environ)
    full_env.pop("PREFLIGHT_CONFIG", None)
    full_env["NO_COLOR"] = "1"
    if env:
        full_env.update(env)
    argv = [*PREFLIGHT, *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    # An unprivileged user may not be able to enter the checkout: run from "/" then.
    workdir = cwd or ("/" if user is not None else str(REPO))
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=workdir
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


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

    def __str__(self) -> str:
        return str(self.root)


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    root = tmp_path / "host"
    root.mkdir()
    return Snapshot(root)
