"""Run the real CLI as an operator, cron or Puppet would, and read what it printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

REPO = Path(__file__).resolve().parent.parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The installed console script, exactly what an operator, cron or Puppet runs.
_SCRIPT = Path(sys.executable).with_name("preflight")
PREFLIGHT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "preflight"]
SCHEMA: dict[str, Any] = json.loads((REPO / "preflight/schema/report.schema.json").read_text())
# The unprivileged user the tests run preflight as (nobody on Debian).
NOBODY = 65534


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def preflight_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: the test runner's own, without a PREFLIGHT_CONFIG that would
    leak a developer's config into the run, and without colour; then `extra`."""
    env = dict(os.environ)
    env.pop("PREFLIGHT_CONFIG", None)
    env["NO_COLOR"] = "1"
    if extra:
        env.update(extra)
    return env


def default_stop_signals() -> None:
    """A Popen `preexec_fn`: SIGTERM, SIGINT and SIGHUP at their defaults in the run, as a
    terminal starts it. The test runner itself may have been started with some ignored (a
    shell's `&` ignores SIGINT, `nohup` SIGHUP), and a run keeps a signal its caller ignores."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def as_user(uid: int) -> list[str]:
    """The command prefix that runs the rest as `uid` (and its group), no supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def preflight_argv(*args: str, prefix: Sequence[str] = ()) -> list[str]:
    """The command line of the real CLI, after `prefix` (a wrapper such as setpriv or sh -c)."""
    return [*prefix, *PREFLIGHT, *args]


def run_preflight(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | Path | None = None,
    user: int | None = None,
    prefix: Sequence[str] = (),
) -> Run:
    """Run the real command line, as an operator or cron would, and capture everything."""
    if user is not None:
        prefix = [*as_user(user), *prefix]
    # An unprivileged user may not be able to enter the checkout: run from "/" then.
    workdir = cwd or ("/" if user is not None else REPO)
    proc = subprocess.run(
        preflight_argv(*args, prefix=prefix),
        capture_output=True,
        text=True,
        env=preflight_env(env),
        timeout=timeout,
        cwd=workdir,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


# ------------------------------------------------------------------ reports
def report_of(run: Run, *, crashed_ok: bool = False) -> dict[str, Any]:
    """The one JSON report a run printed: no traceback, valid against the schema, its exit
    code the process's, and (unless `crashed_ok`) no check that crashed."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode in (0, 1, 2, 3), run.stderr
    report = json.loads(run.stdout)  # raises on no document and on two
    jsonschema.validate(report, SCHEMA)
    assert report["exit_code"] == run.returncode
    if not crashed_ok:
        crashed = [c["id"] for c in report["checks"] if c["code"].endswith(".crashed")]
        assert crashed == [], [c["summary"] for c in report["checks"]]
    return report


def check_of(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    """The result of one check in a report."""
    found = [c for c in report["checks"] if c["id"] == check_id]
    assert len(found) == 1, f"{check_id!r} not once in {[c['id'] for c in report['checks']]}"
    return found[0]


def codes(result: dict[str, Any]) -> list[str]:
    """The finding codes of one check's result, in order."""
    return [f["code"] for f in result["findings"]]


def finding(result: dict[str, Any], code: str) -> dict[str, Any]:
    """The first finding with `code` in one check's result."""
    found = [f for f in result["findings"] if f["code"] == code]
    assert found, f"{code} not in {codes(result)}: {result.get('summary')}"
    return found[0]
