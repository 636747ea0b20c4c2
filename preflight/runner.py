"""Runs checks concurrently, each in its own child process killed at its timeout (see
preflight.isolation); failures become `error` results."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from preflight.check import CheckContext
from preflight.host import Host
from preflight.isolation import CheckCrash, JobError, run_jobs
from preflight.model import (
    CheckResult,
    Finding,
    Status,
    Waiver,
    error_result,
    stated_summary,
    summarize,
)
from preflight.registry import OWN_DISTRIBUTION, LoadedCheck
from preflight.text import plausible_name, shell_arg


@dataclass
class Planned:
    """One check to run, with its validated options."""

    loaded: LoadedCheck
    options: dict[str, Any]


def run_one(planned: Planned, host: Host, timeout: float) -> CheckResult:
    """Run one check in this thread; any exception becomes an `error` result."""
    loaded = planned.loaded
    started = time.perf_counter()
    if loaded.check is None:
        return error_result(
            loaded.id,
            loaded.title,
            loaded.error or "could not load",
            "load-error",
            remediation=load_error_steps(loaded),
        )
    ctx = CheckContext(
        host=host, options=dict(planned.options), timeout=timeout, check_id=loaded.id
    )
    try:
        # A plugin is known here by its metadata; its own class is imported now, in the
        # check's child process.
        real_class = getattr(loaded.check, "real_class", None)
        check = (real_class() if real_class is not None else loaded.check)()
        absent = check.not_applicable(ctx)  # declared applicability (Check.applies)
        findings = [absent] if absent is not None else list(check.run(ctx))
        for finding in findings:
            _validate(finding)
    except Exception as exc:  # one broken check never stops the others
        elapsed = (time.perf_counter() - started) * 1000
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = error_result(
            loaded.id,
            loaded.title,
            f"the check crashed: {type(exc).__name__}" + (f": {text}" if text else ""),
            "crashed",
            elapsed,
        )
        result.exception = exc
        return result
    elapsed = (time.perf_counter() - started) * 1000
    return summarize(
        loaded.id, loaded.title, findings, stated_summary(findings), ctx.details, elapsed
    )


def load_error_steps(loaded: LoadedCheck) -> list[str]:
    """How to repair or drop a check that did not load. The distribution's name comes from its
    own metadata: quoted, and not suggested at all unless it is a plausible package name."""
    if loaded.builtin:
        return [f"reinstall preflight: {_reinstall(OWN_DISTRIBUTION)}"]
    steps = []
    if plausible_name(loaded.origin):
        steps.append(f"reinstall the plugin: {_reinstall(loaded.origin)}")
    steps.append(
        "or stop loading it: --no-plugins, or a [preflight] plugins list in the config "
        f"without {loaded.id}"
    )
    return steps


def _reinstall(distribution: str) -> str:
    python = shell_arg(sys.executable)
    return f"{python} -m pip install --force-reinstall {shell_arg(distribution)}"


def _validate(finding: object) -> None:
    """A plugin's findings must render in every format; plain strings become statuses."""
    if not isinstance(finding, Finding):
        raise TypeError(f"run() returned {type(finding).__name__}, not a Finding")
    if not isinstance(finding.status, Status):
        try:
            finding.status = Status(finding.status)
        except ValueError:
            raise TypeError(
                f"finding {finding.code!r} has no valid status: {finding.status!r}"
            ) from None
    if not isinstance(finding.code, str) or not isinstance(finding.message, str):
        raise TypeError(f"finding {finding.code!r}: code and message must be strings")
    if not all(isinstance(step, str) for step in finding.remediation):
        raise TypeError(f"finding {finding.code!r}: remediation must be a list of strings")


def _in_child(planned: Planned, host: Host, timeout: float) -> dict[str, Any]:
    """run_one, with the result as JSON data so that it crosses the pipe (see _from_child)."""
    result = run_one(planned, host, timeout)
    crash = None
    exc = result.exception
    if exc is not None:
        import traceback

        crash = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "status": result.status.value,
        "code": result.code,
        "summary": str(result.summary),
        "findings": [
            [f.code, f.status.value, f.message, list(f.remediation)] for f in result.findings
        ],
        "details": _plain(result.details),
        "duration_ms": result.duration_ms,
        "traceback": crash,
    }


def _from_child(loaded: LoadedCheck, data: Any) -> CheckResult:
    """The CheckResult a child sent (_in_child); ValueError, TypeError or KeyError when the data
    is not one."""
    findings = [
        Finding(str(code), Status(status), str(message), [str(step) for step in steps])
        for code, status, message, steps in data["findings"]
    ]
    details = data["details"]
    if not isinstance(details, dict):
        raise TypeError("details")
    result = CheckResult(
        loaded.id,
        loaded.title,
        Status(data["status"]),
        str(data["code"]),
        str(data["summary"]),
        findings,
        details,
        float(data["duration_ms"]),
    )
    if data["traceback"]:
        result.exception = CheckCrash(str(data["traceback"]))
    return result


def _plain(value: Any) -> Any:
    """Plain data only (what the JSON report can hold); anything else as its str()."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (int, float, bool)) else k: _plain(v)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=str)
    return str(value)


def run_all(plan: list[Planned], host: Host, timeout: float) -> list[CheckResult]:
    """Run every planned check at once, each in a child process killed at `timeout`; report
    order is the plan's order."""
    # The facts every check and the report header share are read once, before the children
    # are forked, so that each child inherits them instead of reading them again.
    host.summary()
    jobs = [(lambda planned=planned: _in_child(planned, host, timeout)) for planned in plan]
    try:
        outcomes = run_jobs(jobs, timeout)
    finally:
        host.kill_commands()  # commands this process started must not outlive the run
    results = []
    for planned, outcome in zip(plan, outcomes, strict=True):
        loaded = planned.loaded
        error = outcome.error
        if error is None:
            try:
                results.append(_from_child(loaded, outcome.value))
                continue
            except (ValueError, TypeError, KeyError):
                error = JobError("lost", "sent an unreadable result")
        results.append(_engine_error(loaded, error, timeout, outcome.seconds))
    return results


def _engine_error(
    loaded: LoadedCheck, error: JobError, timeout: float, seconds: float
) -> CheckResult:
    if error.kind == "timeout":
        return error_result(
            loaded.id,
            loaded.title,
            f"the check did not finish within its {timeout:g} s timeout (raise it with --timeout)",
            "timeout",
            timeout * 1000,
        )
    if error.kind == "raised":
        message = f"the check crashed: {error.message}"
    else:
        message = f"the check's process {error.message}"
    result = error_result(loaded.id, loaded.title, message, "crashed", seconds * 1000)
    if error.traceback:
        result.exception = CheckCrash(error.traceback)
    return result


def run_with_wait(
    plan: list[Planned], make_host: Callable[[], Host], timeout: float, wait: float
) -> tuple[list[CheckResult], Host]:
    """--wait: re-run what did not pass (with fresh facts) until it passes or time is up.
    Also returns the last Host used: its facts are the freshest, for the report's header."""
    deadline = time.monotonic() + wait
    host = make_host()
    results = run_all(plan, host, timeout)
    while True:
        pending = [i for i, r in enumerate(results) if r.status not in (Status.PASS, Status.SKIP)]
        remaining = deadline - time.monotonic()
        if not pending or remaining <= 0:
            return results, host
        time.sleep(min(2.0, remaining))
        host = make_host()
        again = run_all([plan[i] for i in pending], host, timeout)
        for index, result in zip(pending, again, strict=True):
            results[index] = result


def apply_waivers(
    results: list[CheckResult], waivers: list[Waiver], today: dt.date | None = None
) -> list[CheckResult]:
    """Mark findings that a current waiver covers; an expired waiver is named in the message."""
    if not waivers:
        return results
    today = today or dt.datetime.now(dt.timezone.utc).date()
    out = []
    for result in results:
        waived_any = expired_any = False
        for finding in result.findings:
            for waiver in waivers:
                if waiver.code != finding.code or waiver.match not in finding.message:
                    continue
                if waiver.until is None or today <= waiver.until:
                    until = waiver.until.isoformat() if waiver.until else None
                    finding.waived = {"reason": waiver.reason, "until": until}
                    waived_any = True
                else:
                    expired = waiver.until.isoformat()
                    finding.message += f" (waiver expired on {expired}: {waiver.reason})"
                    expired_any = True
                break
        if waived_any or expired_any:
            updated = summarize(
                result.id, result.title, result.findings, None, result.details, result.duration_ms
            )
            counted = updated.counted_findings
            if not counted:
                # Everything is waived: say so, rather than a bare PASS next to a failure's code.
                first = result.findings[0]
                reason = first.waived["reason"] if first.waived else ""
                updated.summary = f"waived: {first.message} ({reason})"
            elif updated.status == result.status and not expired_any:
                updated.summary = result.summary
            result = updated
        out.append(result)
    return out
