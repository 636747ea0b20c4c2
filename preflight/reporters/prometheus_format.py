"""`--format prometheus`: text exposition format for node_exporter's textfile collector.

Gauges only, and the status as one series per possible status (one-hot), so an alert is a plain
`preflight_check_status{status="fail"} == 1` and a status change never leaves a stale series."""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight.model import Status

if TYPE_CHECKING:
    from preflight.report import Report

STATUSES = (Status.PASS, Status.WARN, Status.FAIL, Status.SKIP, Status.ERROR)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def _family(lines: list[str], name: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} gauge")


def render(report: Report, color: bool = False) -> str:
    lines: list[str] = []
    _family(
        lines,
        "preflight_check_status",
        "Status of each preflight check: 1 for its current status, 0 for the others.",
    )
    for result in report.results:
        check = _label(result.id)
        for status in STATUSES:
            value = 1 if result.status is status else 0
            lines.append(
                f'preflight_check_status{{check="{check}",status="{status.value}"}} {value}'
            )
    _family(
        lines,
        "preflight_check_waived_findings",
        "Findings of each check that a waiver currently covers.",
    )
    for result in report.results:
        waived = sum(1 for f in result.findings if f.waived)
        lines.append(f'preflight_check_waived_findings{{check="{_label(result.id)}"}} {waived}')
    _family(lines, "preflight_check_duration_seconds", "How long each check took, in seconds.")
    for result in report.results:
        lines.append(
            f'preflight_check_duration_seconds{{check="{_label(result.id)}"}} '
            f"{_number(round(result.duration_ms / 1000, 6))}"
        )
    _family(
        lines,
        "preflight_run_timestamp_seconds",
        "When the report was generated, in seconds since the Unix epoch.",
    )
    lines.append(f"preflight_run_timestamp_seconds {int(report.generated_at.timestamp())}")
    _family(lines, "preflight_run_duration_seconds", "How long the whole run took, in seconds.")
    lines.append(f"preflight_run_duration_seconds {_number(round(report.duration_ms / 1000, 6))}")
    _family(
        lines,
        "preflight_run_exit_code",
        "Exit code of the run: 0 ok, 1 warning, 2 failure, 3 a check errored.",
    )
    lines.append(f"preflight_run_exit_code {report.exit_code}")
    return "\n".join(lines) + "\n"
