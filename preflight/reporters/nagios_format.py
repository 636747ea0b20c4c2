"""`--format nagios`: a Nagios/Icinga plugin's output. The exit code already is the plugin's state
(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so the label is derived from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight.model import ATTENTION

if TYPE_CHECKING:
    from preflight.report import Report

LABELS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
# Nagios has no state for "you called me wrong": a usage error is UNKNOWN, and 64 would be read
# as "out of bounds" with the message lost.
UNKNOWN_EXIT = 3


def usage_error(message: str) -> str:
    """What a usage or configuration error looks like to Nagios (exit UNKNOWN_EXIT)."""
    return f"PREFLIGHT UNKNOWN - {_clean(message)}\n"


def _clean(text: str) -> str:
    """One line, no `|` (Nagios reads everything after a pipe as performance data) and no `;`
    (Nagios rewrites it in plugin output)."""
    return " ".join(text.replace("|", "/").replace(";", ",").split())


def render(report: Report, color: bool = False) -> str:
    label = LABELS.get(report.exit_code, "UNKNOWN")
    lines = [f"PREFLIGHT {label} - {_summary(report)} | {_perfdata(report)}"]
    for result in report.results:
        line = (
            f"{result.id}: {result.status.value.upper()} {result.code} - {_clean(result.summary)}"
        )
        waived = [f for f in result.findings if f.waived]
        if waived:
            line += f" ({len(waived)} waived)"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _summary(report: Report) -> str:
    tally = report.tally()
    attention = [r for r in report.results if r.status in ATTENTION]
    attention.sort(key=lambda r: ATTENTION.index(r.status))
    if not attention:
        return tally
    named = ", ".join(f"{r.id} {r.status.value} ({r.code})" for r in attention)
    return _clean(f"{named} - {tally}")


def _perfdata(report: Report) -> str:
    counts = report.counts
    parts = [
        f"{name}={counts[name]};;;0" for name in ("pass", "warn", "fail", "error", "skip", "waived")
    ]
    parts.append(f"duration={report.duration_ms / 1000:.3f}s;;;0")
    return " ".join(parts)
