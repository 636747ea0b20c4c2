"""Output formats. Each lives in its own module and is imported only when asked for, so the
machine formats never pay for rich.

Every string in a report may come from the host (hostnames, os-release, package and file names,
plugin output): `render` hands each reporter a copy in which every string went through
`preflight.text.printable` (control characters and terminal escapes shown as `\\xNN`, bytes that
were not UTF-8 shown as escapes), so no format can carry raw terminal codes or fail to encode.
Reporters still escape what their own syntax needs (rich markup, XML, label quoting).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from preflight.text import printable

if TYPE_CHECKING:
    from preflight.model import CheckResult, Finding
    from preflight.report import Report

FORMATS = ("human", "json", "nagios", "prometheus", "junit", "facter")


def render(fmt: str, report: Report, color: bool = False, width: int = 100) -> str:
    """The whole report as text in format `fmt`; `width` matters to the human format only."""
    module = importlib.import_module(f"preflight.reporters.{fmt}_format")
    report = safe_report(report)
    if fmt == "human":
        return str(module.render(report, color=color, width=width))
    return str(module.render(report, color=color))


def safe_report(report: Report) -> Report:
    """A copy of `report` whose every string is printable (see the module's docstring)."""
    return dataclasses.replace(
        report, results=[_safe_result(r) for r in report.results], host=_safe(report.host)
    )


def _text(value: str) -> str:
    return printable(value, keep_newlines=True)


def _safe_result(result: CheckResult) -> CheckResult:
    return dataclasses.replace(
        result,
        id=_text(result.id),
        title=_text(result.title),
        code=_text(result.code),
        summary=_text(str(result.summary)),
        findings=[_safe_finding(f) for f in result.findings],
        details=_safe(result.details),
    )


def _safe_finding(finding: Finding) -> Finding:
    return dataclasses.replace(
        finding,
        code=_text(finding.code),
        message=_text(finding.message),
        remediation=[_text(step) for step in finding.remediation],
        waived=_safe(finding.waived),
    )


def _safe(value: Any) -> Any:
    """Strings (keys too) made printable through dicts, lists, tuples and sets."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_safe(v) for v in value), key=str)
    return value
