"""Which reports one run writes: `--report FORMAT[:PATH]` (repeatable) or the `-f`/`-o` shorthand.

Cron and systemd want the JSON file, the node_exporter textfile and the Facter fact from one run,
so the three never disagree; each file is written atomically, at most one report goes to stdout.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight.errors import UsageError
from preflight.reporters import FORMATS

if TYPE_CHECKING:
    from preflight.report import Report

STDOUT = "-"


@dataclass(frozen=True)
class ReportTarget:
    fmt: str
    path: str | None  # None: standard output

    @property
    def label(self) -> str:
        return f"--report {self.fmt}:{self.path or STDOUT}"


def parse_report(spec: str) -> ReportTarget:
    """`json`, `json:-`, `json:/var/lib/preflight/report.json` -> a target (exit 64 when wrong)."""
    fmt, sep, path = spec.partition(":")
    if fmt not in FORMATS:
        raise UsageError(
            f"--report {spec}: unknown format {fmt!r} (one of {', '.join(FORMATS)}; "
            "FORMAT or FORMAT:PATH)"
        )
    if sep and not path:
        raise UsageError(f"--report {spec}: empty PATH (use FORMAT, FORMAT:- or FORMAT:PATH)")
    return ReportTarget(fmt, None if path in ("", STDOUT) else path)


def plan_reports(reports: list[str], fmt: str | None, output: str | None) -> list[ReportTarget]:
    """The reports of this run, checked before any check runs."""
    if reports and (fmt is not None or output is not None):
        raise UsageError(
            "--report cannot be combined with --format/--output: they are the one-report "
            "shorthand; name every report with --report FORMAT[:PATH]"
        )
    if not reports:
        path = None if output in (None, STDOUT) else output
        return [ReportTarget(fmt or "human", path)]
    targets = [parse_report(spec) for spec in reports]
    to_stdout = [t for t in targets if t.path is None]
    if len(to_stdout) > 1:
        raise UsageError(
            f"{to_stdout[1].label}: at most one report goes to standard output "
            f"({to_stdout[0].label} already does)"
        )
    seen: dict[str, ReportTarget] = {}
    for target in targets:
        if target.path is None:
            continue
        key = os.path.realpath(target.path)
        if key in seen:
            raise UsageError(f"{target.label}: {seen[key].label} writes the same file")
        seen[key] = target
    return targets


def check_destinations(targets: list[ReportTarget]) -> None:
    files = [target for target in targets if target.path is not None]
    if not files:
        return  # preflight.output (and `secrets`, ~5 ms) only when a report goes to a file
    from preflight.output import check_destination

    for target in files:
        assert target.path is not None
        check_destination(target.path, target.label if len(targets) > 1 else "--output")


def stdout_colour(no_color: bool) -> bool:
    """Colour on standard output: never with --no-color or NO_COLOR (no-color.org), always with
    FORCE_COLOR (unless it is 0), else only on a terminal that is not TERM=dumb."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def stdout_width() -> int:
    """The terminal's width on a terminal (colour or not), else a fixed 100 columns so files
    and pipes get the same report wherever they are made."""
    if not sys.stdout.isatty():
        return 100
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def render_all(
    report: Report, targets: list[ReportTarget], no_color: bool, quiet: bool = False
) -> list[str | None]:
    """Every report's text (None for the stdout report under --quiet: it is never rendered, so
    -q does not even import the human reporter's rich)."""
    from preflight.reporters import render

    texts: list[str | None] = []
    for target in targets:
        if target.path is None and quiet:
            texts.append(None)
            continue
        on_stdout = target.path is None
        color = target.fmt == "human" and on_stdout and stdout_colour(no_color)
        width = stdout_width() if on_stdout else 100
        texts.append(render(target.fmt, report, color=color, width=width))
    return texts


def write_all(targets: list[ReportTarget], texts: list[str | None]) -> None:
    """Files first (each atomically, an error naming the option that asked for it), then
    standard output."""
    for target, text in zip(targets, texts, strict=True):
        if target.path is not None and text is not None:
            from preflight.output import write_atomically  # only for a file: see above

            flag = target.label if len(targets) > 1 else "--output"
            write_atomically(target.path, text.encode("utf-8"), flag=flag)
    from preflight.stdout import emit

    for target, text in zip(targets, texts, strict=True):
        if target.path is None and text is not None:
            emit(text)
