"""`preflight check`'s run, and its plain command lines read without typer.

A plain `check` command line (check ids and the options below, each value valid) is what hosts
and monitoring run every few minutes: importing typer and building its app costs more than the
kernel check itself. `plain_check_args` reads such a line; anything else (help, `--opt=value`,
bundled short options, a repeated option, a value typer would reject) goes to the typer app,
which gives the same result for every line read here and the usual help and errors for the rest.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from preflight.reporters import FORMATS

# Longer than any sensible check or wait, short enough that deadlines stay ordinary numbers.
MAX_SECONDS = 86400.0
FAIL_ON = ("warn", "fail")
DEFAULT_TIMEOUT = 10.0

# option -> keyword of run_check; the same names and defaults as the typer command's.
_VALUE_OPTIONS = {
    "--format": "fmt",
    "-f": "fmt",
    "--output": "output",
    "-o": "output",
    "--report": "reports",
    "--config": "config",
    "-c": "config",
    "--root": "root",
    "--fail-on": "fail_on",
    "--timeout": "timeout",
    "--wait": "wait",
}
_FLAGS = {
    "--no-plugins": "no_plugins",
    "--quiet": "quiet",
    "-q": "quiet",
    "--no-color": "no_color",
    "--debug": "debug",
}


def seconds_problem(value: float, minimum: float) -> str | None:
    """Why `value` is not a finite number of seconds in [minimum, MAX_SECONDS] (None: it is)."""
    if not math.isfinite(value) or not minimum <= value <= MAX_SECONDS:
        return f"{value!r} is not a number of seconds from {minimum:g} to {MAX_SECONDS:g}"
    return None


def _seconds(text: str, minimum: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if seconds_problem(value, minimum) else value


def plain_check_args(args: list[str]) -> dict[str, Any] | None:
    """run_check's arguments for a plain `check ...` line; None for any other line."""
    if not args or args[0] != "check":
        return None
    parsed: dict[str, Any] = {"checks": [], "reports": []}
    seen: set[str] = set()
    tokens = iter(args[1:])
    for token in tokens:
        if not token.startswith("-"):
            parsed["checks"].append(token)
        elif token in _FLAGS:
            parsed[_FLAGS[token]] = True
        elif token in _VALUE_OPTIONS:
            key = _VALUE_OPTIONS[token]
            value = next(tokens, None)
            if value is None or value.startswith("-") or (key in seen and key != "reports"):
                return None
            seen.add(key)
            if key == "reports":
                parsed["reports"].append(value)
            elif key in ("timeout", "wait"):
                seconds = _seconds(value, 0.1 if key == "timeout" else 0.0)
                if seconds is None:
                    return None
                parsed[key] = seconds
            elif (key == "fmt" and value not in FORMATS) or (
                key == "fail_on" and value not in FAIL_ON
            ):
                return None
            else:
                parsed[key] = value
        else:
            return None
    return parsed


def run_check(
    checks: list[str],
    fmt: str | None = None,
    output: str | None = None,
    reports: list[str] | None = None,
    config: str | None = None,
    root: str = "/",
    fail_on: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    wait: float = 0.0,
    no_plugins: bool = False,
    quiet: bool = False,
    no_color: bool = False,
    debug: bool = False,
) -> int:
    """Run checks, deliver the reports; the exit code."""
    import signal

    from preflight import reports as reports_mod
    from preflight import session
    from preflight.isolation import STOP_SIGNALS

    targets = reports_mod.plan_reports(reports or [], fmt, output)
    reports_mod.check_destinations(targets)
    started = time.perf_counter()
    plan, cfg = session.plan(checks, config, no_plugins, root, timeout)
    effective_fail_on = fail_on if fail_on is not None else cfg.fail_on
    try:
        report = session.execute(plan, cfg, root, timeout, wait, effective_fail_on, started)
    except Exception as exc:  # a bug in preflight itself: still one report, exit 3
        if debug:
            raise
        report = session.failure_report(root, effective_fail_on, exc, started)
    if debug:
        _print_tracebacks(report)
    try:
        texts = reports_mod.render_all(report, targets, no_color, quiet)
    except Exception as exc:  # a reporter bug: report that instead of printing nothing
        if debug:
            raise
        report = session.failure_report(root, effective_fail_on, exc, started)
        texts = reports_mod.render_all(report, targets, no_color, quiet)
    # From here on a stop signal waits: the reports are delivered whole, with their exit code,
    # or (signal before this point) not at all.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    reports_mod.write_all(targets, texts)
    return int(report.exit_code)


def _print_tracebacks(report: Any) -> None:
    import traceback

    from preflight.isolation import CheckCrash

    for result in report.results:
        exc = result.exception
        if exc is not None:
            print(f"--- traceback of check {result.id}:", file=sys.stderr)
            if isinstance(exc, CheckCrash):  # formatted in the check's process
                sys.stderr.write(str(exc))
            else:
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
