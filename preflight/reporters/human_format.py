"""`--format human`: a table of checks, numbered remediation steps, then a tally line."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from preflight.model import ATTENTION, Status

if TYPE_CHECKING:
    from preflight.report import Report

STYLE = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIP: "dim",
}


def render(report: Report, color: bool = False, width: int = 100) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=max(width, 60),
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
        highlight=False,
        emoji=False,
    )
    console.print(Text(_headline(report), style="bold"), soft_wrap=True)
    table = Table(
        show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 2, 0, 0)
    )
    table.add_column("CHECK", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("CODE", no_wrap=True)
    table.add_column("SUMMARY", overflow="fold")
    for result in report.results:
        # Text, never a plain str: rich would read `[...]` in host text as markup.
        table.add_row(
            Text(result.id),
            Text(result.status.value.upper(), style=STYLE[result.status]),
            Text(result.code),
            Text(result.summary),
        )
    console.print(table)
    _remediation(console, report)
    _waived(console, report)
    console.print(Text(_tally(report), style=STYLE.get(report.status, "")))
    # Tables pad every cell; trailing blanks only get in the way of copy and grep.
    return "\n".join(line.rstrip() for line in buffer.getvalue().split("\n"))


def _headline(report: Report) -> str:
    host = report.host
    os_name = (host.get("os") or {}).get("pretty_name") or "unknown OS"
    kernel = (host.get("kernel") or {}).get("release") or "unknown kernel"
    root = "" if host.get("root") == "/" else f", root {host.get('root')}"
    return (
        f"preflight on {host.get('hostname') or 'unknown host'}: {os_name}, kernel {kernel}{root}"
    )


def _remediation(console: Console, report: Report) -> None:
    entries = [
        (result, finding)
        for result in report.results
        for finding in result.findings
        if finding.status in ATTENTION and finding.waived is None
    ]
    if not entries:
        return
    entries.sort(key=lambda e: ATTENTION.index(e[1].status))
    console.print()
    console.print(Text("What to do", style="bold"))
    step = 0
    for index, (result, finding) in enumerate(entries):
        if index:
            console.print()  # one block per finding: easier to find your place at 3 a.m.
        console.print(
            Text.assemble(
                (f"{finding.status.value.upper()} ", STYLE[finding.status]),
                (f"{result.id}: ", "bold"),
                finding.message,
                (f"  [{finding.code}]", "dim"),
            )
        )
        for text in finding.remediation:
            step += 1
            # One line per step, never broken by the reporter: a step is pasted into a shell as
            # printed, and a line break inside it runs half a command (a `kill` without the
            # start that follows it). The terminal wraps it for the eye only.
            console.print(Text.assemble(f"  {step}. ", text), soft_wrap=True)
    console.print()


def _waived(console: Console, report: Report) -> None:
    waived = [(r, f) for r in report.results for f in r.findings if f.waived]
    for result, finding in waived:
        until = finding.waived.get("until") if finding.waived else None
        reason = finding.waived.get("reason") if finding.waived else ""
        console.print(
            Text.assemble(
                ("WAIVED ", "cyan"),
                f"{result.id}: {finding.message} ",
                (f"[{finding.code}] {reason}" + (f" (until {until})" if until else ""), "dim"),
            )
        )


def _tally(report: Report) -> str:
    return f"{report.status.value.upper()}: {report.tally()}; exit code {report.exit_code}"
