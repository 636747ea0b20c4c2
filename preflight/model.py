"""Result types shared by the engine, the checks and the reporters."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    PASS = "pass"  # noqa: S105 - a status name, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


# Worst first: a check's status is its worst finding's (contract section 3).
FINDING_SEVERITY = {Status.FAIL: 4, Status.ERROR: 3, Status.WARN: 2, Status.PASS: 1, Status.SKIP: 0}


# The statuses an operator must act on, worst first: the order of "what to do" lists.
ATTENTION = (Status.FAIL, Status.ERROR, Status.WARN)


def worst(statuses: list[Status]) -> Status:
    """The worst status in the list; an empty list (nothing to report) is a skip."""
    if not statuses:
        return Status.SKIP
    return max(statuses, key=FINDING_SEVERITY.__getitem__)


@dataclass
class Waiver:
    code: str
    reason: str
    until: dt.date | None = None  # inclusive, UTC
    match: str = ""


@dataclass
class Finding:
    """One thing a check found. `code` is stable: `<check>.<reason>`.

    `summary` is the check's one-line summary when the check states one (an aggregate such as
    "3 services run replaced code", or a shorter line than the message): the first finding that
    carries one gives the result its summary; without one, the summary is the deciding
    finding's message. It is not part of the finding in a report."""

    code: str
    status: Status
    message: str
    remediation: list[str] = field(default_factory=list)
    waived: dict[str, Any] | None = None
    summary: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "status": self.status.value,
            "message": self.message,
            "remediation": list(self.remediation),
        }
        if self.waived is not None:
            data["waived"] = dict(self.waived)
        return data


@dataclass
class CheckResult:
    id: str
    title: str
    status: Status
    code: str
    summary: str
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0
    #: What a crashed check raised: for --debug only, never part of a report.
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def counted_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.waived is None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "code": self.code,
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
            "details": self.details,
            "duration_ms": round(self.duration_ms, 1),
        }


def summarize(
    check_id: str,
    title: str,
    findings: list[Finding],
    summary: str | None,
    details: dict[str, Any],
    duration_ms: float,
) -> CheckResult:
    """Build a result whose status and code follow its worst finding that is not waived."""
    counted = [f for f in findings if f.waived is None]
    status = (
        worst([f.status for f in counted])
        if counted
        else (Status.PASS if findings else Status.SKIP)
    )
    top = worst_finding(counted) or worst_finding(findings)
    code = top.code if top else f"{check_id}.no-findings"
    if not summary:
        summary = top.message if top else "the check reported nothing"
    return CheckResult(check_id, title, status, code, summary, findings, details, duration_ms)


def stated_summary(findings: list[Finding]) -> str | None:
    """The summary a check stated: the first one its findings carry (Finding.summary)."""
    return next((f.summary for f in findings if f.summary), None)


def worst_finding(findings: list[Finding]) -> Finding | None:
    """The finding that decides a status: the first of the worst."""
    if not findings:
        return None
    return max(findings, key=lambda f: FINDING_SEVERITY[f.status])


# The `error` findings the engine reports for any check (`<check>.<reason>`), with their fix;
# `preflight explain` lists them beside each check's own codes.
ENGINE_REASONS = {
    "load-error": (
        "the check could not be imported (a broken or incomplete plugin install)",
        "reinstall the distribution that provides it, or disable it",
    ),
    "crashed": (
        "the check raised an exception instead of reporting",
        "re-run with --debug for the traceback and report it to the check's author",
    ),
    "timeout": (
        "the check did not finish within --timeout (default 10 s)",
        "find what it waits for (a hung command, a slow mount), or raise --timeout",
    ),
}


def error_result(
    check_id: str,
    title: str,
    message: str,
    reason: str,
    duration_ms: float = 0.0,
    remediation: list[str] | None = None,
) -> CheckResult:
    if remediation is None:
        remediation = [ENGINE_REASONS[reason][1]] if reason in ENGINE_REASONS else []
    finding = Finding(f"{check_id}.{reason}", Status.ERROR, message, remediation)
    return CheckResult(
        check_id, title, Status.ERROR, finding.code, message, [finding], {}, duration_ms
    )
