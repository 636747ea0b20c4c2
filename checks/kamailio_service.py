"""Whether Kamailio runs the configuration: not-running, and config-changed (a file edited after
the main process started, so a restart is pending).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight_checks.kamailio_config import DEFAULT_CONFIG
from preflight_checks.kamailio_sockets import start_time

from preflight.check import Status
from preflight.timefmt import iso_utc

if TYPE_CHECKING:
    from preflight_checks.kamailio_config import CheckOutput, ParsedConfig
    from preflight_checks.kamailio_report import Report
    from preflight_checks.kamailio_sockets import Instance

MTIME_SLACK = 1.0  # btime is whole seconds: a start time read from /proc can be ~1 s early


def report_not_running(
    report: Report, config: str, instances: list[Instance], check_out: CheckOutput | None
) -> None:
    message = f"Kamailio is not running with {config}"
    if instances:
        message += (
            " (other instances: "
            + ", ".join(
                f"pid {i.main.pid} with {i.config or report.host.display(DEFAULT_CONFIG)}"
                for i in instances[:3]
            )
            + ")"
        )
    steps = list(report.service.status)
    if check_out is not None and not check_out.ok:
        steps.append(
            f"fix the first error of `kamailio -c -f {config}`: "
            f"{check_out.first_error or 'see its output'}"
        )
    steps.append(report.service.start)
    report.add("not-running", Status.FAIL, message, steps)


def check_changed(
    report: Report, instance: Instance, parsed: ParsedConfig | None, config: str
) -> None:
    host = report.host
    started = start_time(host, instance.main)
    report.details["started_at"] = iso_utc(started)
    if started is None or parsed is None:
        return
    changed = []
    for rel in parsed.files:
        mtime = host.mtime(rel)
        if mtime is not None and mtime > started + MTIME_SLACK:
            changed.append(host.display(rel))
    if changed:
        report.details["changed_files"] = changed
        report.add(
            "config-changed",
            Status.WARN,
            f"{', '.join(changed[:5])} changed after Kamailio (pid {instance.main.pid}) "
            f"started at {iso_utc(started)}: the running process does not use it yet",
            [f"kamailio -c -f {config}", report.service.restart],
        )
