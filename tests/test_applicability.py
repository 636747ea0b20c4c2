"""Declared applicability (Check.applies): the engine, not the check, says "not installed"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.snapshot import Snapshot

from preflight.check import AppliesWhen, Check, CheckContext, Finding, Status
from preflight.collect import check_markers, check_paths
from preflight.host import Host
from preflight.registry import LoadedCheck
from preflight.runner import Planned, run_one

WIDGET_STANZA = "Package: widget\nStatus: install ok installed\nVersion: 1.2-1\n"


class WidgetCheck(Check):
    id = "widget"
    title = "Widget"
    applies = AppliesWhen(
        "Widget is not installed (no widget program, package, config, service or process)",
        packages=("widget",),
        commands=("widgetd",),
        files=("etc/widget/*.conf",),
        services=("widget",),
        processes=("widgetd",),
        remediation=("apt-get install widget",),
    )

    def run(self, ctx: CheckContext) -> list[Finding]:
        return [Finding("widget.ok", Status.PASS, "the widget is here")]


def run_widget(root: str, required: bool = False) -> list[tuple[str, str, list[str]]]:
    planned = Planned(LoadedCheck("widget", "built-in", WidgetCheck), {"required": required})
    result = run_one(planned, Host(root), 10)
    return [(f.code, f.status.value, f.remediation) for f in result.findings]


ABSENT = [("widget.not-installed", "skip", ["apt-get install widget"])]


def test_nothing_declared_is_there_skips_and_fails_when_required(snapshot: Snapshot) -> None:
    snapshot.write("etc/widget/README", "not a config\n")
    snapshot.mkdir("etc/widget/old.conf")  # a folder is not a config file
    assert run_widget(str(snapshot)) == ABSENT
    assert run_widget(str(snapshot), required=True) == [
        ("widget.not-installed", "fail", ["apt-get install widget"])
    ]


@pytest.mark.parametrize(
    ("rel", "content"),
    [
        ("var/lib/dpkg/status", WIDGET_STANZA),
        ("usr/sbin/widgetd", "#!/bin/sh\n"),
        ("etc/widget/main.conf", "port = 1\n"),
        ("lib/systemd/system/widget.service", "[Service]\nExecStart=/usr/sbin/widgetd\n"),
        ("etc/init.d/widget", "#!/bin/sh\n"),
    ],
)
def test_any_one_declared_thing_makes_the_check_run(
    snapshot: Snapshot, rel: str, content: str
) -> None:
    snapshot.write(rel, content, mode=0o755)
    assert run_widget(str(snapshot)) == [("widget.ok", "pass", [])]


def test_a_running_process_makes_the_check_run(tmp_path: Path) -> None:
    # A real process whose name (comm) is widgetd: a copy of the interpreter under that name.
    assert run_widget("/") == ABSENT
    program = tmp_path / "widgetd"
    os.symlink(sys.executable, program)
    proc = subprocess.Popen([str(program), "-c", "import time; time.sleep(30)"])
    try:
        assert run_widget("/") == [("widget.ok", "pass", [])]
    finally:
        proc.kill()
        proc.wait()


def test_collect_copies_what_decides_applicability() -> None:
    plan = [Planned(LoadedCheck("widget", "built-in", WidgetCheck), {})]
    paths = check_paths(plan)
    assert "etc/widget/*.conf" in paths
    assert {"lib/systemd/system/widget.service", "etc/init.d/widget"} <= set(paths)
    assert "var/lib/dpkg/status" in paths  # packages: the database is a fact path already
    assert {"usr/sbin/widgetd", "usr/bin/widgetd"} <= set(check_markers(plan))


def test_collect_copies_what_decides_every_builtin_checks_applicability() -> None:
    """A snapshot made by `collect` decides applicability as the live host does."""
    from preflight import session

    plan, _config = session.plan([], None, True, "/")
    declaring = {p.loaded.id: p.loaded.check.applies for p in plan if p.loaded.check is not None}
    declaring = {check_id: a for check_id, a in declaring.items() if a is not None}
    assert {"kamailio", "puppet", "tun"} <= set(declaring)
    paths, markers = set(check_paths(plan)), set(check_markers(plan))
    for check_id, applies in declaring.items():
        assert set(applies.files) | set(applies.service_paths()) <= paths, check_id
        assert set(applies.command_paths()) <= paths | markers, check_id
    assert {"usr/bin/puppet", "opt/puppetlabs/bin/puppet", "usr/local/bin/puppet"} <= paths


class TwoThingsCheck(Check):
    """States its own summary on a finding that does not decide the status."""

    id = "two"
    title = "Two things"

    def run(self, ctx: CheckContext) -> list[Finding]:
        return [
            Finding("two.a", Status.PASS, "a is fine", summary="2 things looked at; b is off"),
            Finding("two.b", Status.WARN, "b is off"),
        ]


def test_a_summary_a_finding_carries_is_the_results_summary(snapshot: Snapshot) -> None:
    from preflight.model import Waiver
    from preflight.runner import apply_waivers

    planned = Planned(LoadedCheck("two", "built-in", TwoThingsCheck), {})
    result = run_one(planned, Host(str(snapshot)), 10)
    assert (result.status, result.code) == (Status.WARN, "two.b")
    assert result.summary == "2 things looked at; b is off"
    assert [sorted(f) for f in result.to_dict()["findings"]] == [
        ["code", "message", "remediation", "status"]
    ] * 2  # the summary is the result's, not part of a finding in the report
    # Waived, the result is judged again from what is left: the stated line no longer fits.
    (waived,) = apply_waivers([result], [Waiver("two.b", "known")])
    assert (waived.status, waived.summary) == (Status.PASS, "a is fine")
