"""`--format junit`: one <testsuite name="preflight">, one <testcase> per check, for CI servers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from preflight.model import Status

if TYPE_CHECKING:
    from preflight.model import CheckResult
    from preflight.report import Report

ELEMENT = {Status.FAIL: "failure", Status.ERROR: "error", Status.SKIP: "skipped"}
# XML 1.0 cannot carry most control characters or lone surrogates, even escaped; render() already
# showed control characters as `\xNN`, and a message must not break the file all the same.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("?", value)


def render(report: Report, color: bool = False) -> str:
    counts = report.counts
    suite = ET.Element(
        "testsuite",
        {
            "name": "preflight",
            "tests": str(len(report.results)),
            "failures": str(counts["fail"]),
            "errors": str(counts["error"]),
            "skipped": str(counts["skip"]),
            "time": f"{report.duration_ms / 1000:.3f}",
            "timestamp": report.generated_at_text,
            "hostname": _text(report.host.get("hostname") or "unknown"),
        },
    )
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"preflight.{_text(result.id)}",
                "name": _text(result.id),
                "time": f"{result.duration_ms / 1000:.3f}",
            },
        )
        body = _body(result)
        element = ELEMENT.get(result.status)
        if element is not None:
            child = ET.SubElement(
                case, element, {"message": _text(result.summary), "type": _text(result.code)}
            )
            child.text = body
        elif body:
            # pass and warn are successes for a CI server; a warning still deserves to be read.
            ET.SubElement(case, "system-out").text = body
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def _body(result: CheckResult) -> str:
    lines = []
    for finding in result.findings:
        line = f"{finding.status.value.upper()} {finding.code}: {finding.message}"
        if finding.waived:
            until = finding.waived.get("until")
            line += f" [waived: {finding.waived.get('reason')}" + (
                f", until {until}]" if until else "]"
            )
        lines.append(line)
        lines.extend(f"  - {step}" for step in finding.remediation)
    return _text("\n".join(lines))
