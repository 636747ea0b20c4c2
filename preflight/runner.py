"""Runs checks concurrently, each under its own timeout; failures become `error` results."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from preflight.check import CheckContext
from preflight.host import Host
from preflight.model import CheckResult, Finding, Status, Waiver, error_result, summarize
from preflight.registry import LoadedCheck


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
        return error_result(loaded.id, loaded.title, loaded.error or "could not load", "load-error")
    ctx = CheckContext(
        host=host, options=dict(planned.options), timeout=timeout, check_id=loaded.id
    )
    try:
        check = loaded.check()
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
    return summarize(loaded.id, loaded.title, findings, ctx.summary, ctx.details, elapsed)


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


def run_all(plan: list[Planned], host: Host, timeout: float) -> list[CheckResult]:
    """Run every planned check at once; report order is the plan's order."""
    results: dict[int, CheckResult] = {}
    threads: list[tuple[int, threading.Thread]] = []

    def target(index: int, planned: Planned) -> None:
        results[index] = run_one(planned, host, timeout)

    started = time.monotonic()
    for index, planned in enumerate(plan):
        thread = threading.Thread(
            target=target, args=(index, planned), daemon=True, name=f"check-{planned.loaded.id}"
        )
        thread.start()
        threads.append((index, thread))
    deadline = started + timeout
    for index, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive() or index not in results:
            loaded = plan[index].loaded
            results[index] = error_result(
                loaded.id,
                loaded.title,
                f"the check did not finish within its {timeout:g} s timeout "
                f"(raise it with --timeout)",
                "timeout",
                timeout * 1000,
            )
    host.kill_commands()  # commands of timed-out checks must not outlive the run
    return [results[i] for i in range(len(plan))]


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
