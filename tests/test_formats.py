"""The machine formats of contract section 5, read back by the real consumers' parsers."""

from __future__ import annotations

import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.cli import Run, run_preflight
from support.components import require_command
from support.plugins import SCRIPTED_FINDINGS_B, script, scripted
from support.snapshot import Snapshot

STATUSES = {"pass", "warn", "fail", "skip", "error"}


def both(snapshot: Snapshot, fmt: str, *extra: str) -> Run:
    """Run the two scripted checks on the snapshot in one format."""
    return scripted("check", "scripted", "scripted-b", "--root", str(snapshot), "-f", fmt, *extra)


def test_prometheus_is_valid_exposition_with_one_hot_gauges(snapshot: Snapshot) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    script(snapshot, "fail broken the widget is broken\n", 'warn slow it is "slow" \\ odd\n')
    before = time.time()
    run = both(snapshot, "prometheus")
    assert run.returncode == 2, run.stderr
    families = {f.name: f for f in text_string_to_metric_families(run.stdout)}
    assert {f.type for f in families.values()} == {"gauge"}
    for name in (
        "preflight_check_status",
        "preflight_check_duration_seconds",
        "preflight_run_timestamp_seconds",
        "preflight_run_exit_code",
    ):
        assert name in families, name
        assert f"# HELP {name} " in run.stdout and f"# TYPE {name} gauge" in run.stdout
    status: dict[str, dict[str, float]] = {}
    for sample in families["preflight_check_status"].samples:
        status.setdefault(sample.labels["check"], {})[sample.labels["status"]] = sample.value
    assert set(status) == {"scripted", "scripted-b"}
    for check, series in status.items():
        assert set(series) == STATUSES, check  # all five series, so a change leaves none stale
        assert sum(series.values()) == 1
    assert status["scripted"]["fail"] == 1 and status["scripted-b"]["warn"] == 1
    durations = {
        s.labels["check"]: s.value for s in families["preflight_check_duration_seconds"].samples
    }
    assert set(durations) == {"scripted", "scripted-b"} and all(
        0 <= d < 10 for d in durations.values()
    )
    stamp = families["preflight_run_timestamp_seconds"].samples[0].value
    assert before - 2 <= stamp <= time.time() + 1
    assert families["preflight_run_exit_code"].samples[0].value == 2


def test_nagios_states_follow_the_exit_code(snapshot: Snapshot) -> None:
    script(snapshot, "fail broken the widget | is broken\n", "crash - the probe exploded\n")
    run = both(snapshot, "nagios")
    lines = run.stdout.splitlines()
    # a fail outranks an error: CRITICAL, not UNKNOWN
    assert run.returncode == 2
    assert re.fullmatch(r"PREFLIGHT CRITICAL - .+ \| .+", lines[0]), lines[0]
    assert lines[0].count("|") == 1  # a pipe in a message would start the perfdata early
    assert "scripted.broken" in lines[0]
    perfdata = dict(item.split("=", 1) for item in lines[0].split(" | ", 1)[1].split())
    assert perfdata["fail"].split(";")[0] == "1" and perfdata["error"].split(";")[0] == "1"
    assert len(lines) == 3  # one line per check after the first
    assert lines[1].startswith("scripted: FAIL scripted.broken - the widget / is broken")
    assert lines[2].startswith("scripted-b: ERROR scripted-b.crashed")

    script(snapshot, "pass fine all good\n")
    run = both(snapshot, "nagios")
    assert run.returncode == 3 and run.stdout.startswith("PREFLIGHT UNKNOWN - ")
    assert "probe exploded" in run.stdout

    script(snapshot, "warn meh somewhat off\n", "pass fine all good\n")
    run = both(snapshot, "nagios")
    assert run.returncode == 1 and run.stdout.startswith("PREFLIGHT WARNING - scripted warn")
    run = both(snapshot, "nagios", "--fail-on", "fail")
    assert run.returncode == 0 and run.stdout.startswith("PREFLIGHT OK - ")


def test_junit_parses_with_one_testcase_per_check(snapshot: Snapshot) -> None:
    script(
        snapshot,
        "fail broken the <widget> & co are broken\nwarn meh also odd\n",
        "crash - the probe exploded\n",
    )
    run = both(snapshot, "junit")
    assert run.returncode == 2
    suite = ET.fromstring(run.stdout)
    assert suite.tag == "testsuite" and suite.get("name") == "preflight"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"scripted", "scripted-b"}
    failure = cases["scripted"].find("failure")
    assert failure is not None and failure.get("type") == "scripted.broken"
    assert failure.get("message") == "the <widget> & co are broken"
    assert "fix broken: see /etc/preflight-scripted/findings" in (failure.text or "")  # remediation
    assert "WARN scripted.meh: also odd" in (failure.text or "")
    error = cases["scripted-b"].find("error")
    assert error is not None and "probe exploded" in (error.get("message") or "")

    script(snapshot, "pass fine all good\n")
    (snapshot.root / SCRIPTED_FINDINGS_B).unlink()
    run = both(snapshot, "junit")
    assert run.returncode == 0
    suite = ET.fromstring(run.stdout)
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert suite.get("skipped") == "1" and cases["scripted-b"].find("skipped") is not None
    assert {child.tag for child in cases["scripted"]} <= {"system-out"}  # a pass is a success


def test_facter_fact_is_read_back_by_real_facter(snapshot: Snapshot, tmp_path: Path) -> None:
    facter = require_command("facter")
    script(snapshot, "fail broken the widget is broken\n", "pass fine all good\n")
    facts_d = tmp_path / "facts.d"
    facts_d.mkdir()
    run = both(snapshot, "facter", "-o", str(facts_d / "preflight.json"))
    assert run.returncode == 2 and run.stdout == ""
    fact = json.loads((facts_d / "preflight.json").read_text())["preflight"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fact["generated_at"])
    out = subprocess.run(
        [facter, "--external-dir", str(facts_d), "preflight.status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "fail", out.stderr
    out = subprocess.run(
        [facter, "--external-dir", str(facts_d), "--json", "preflight"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    read_back = json.loads(out.stdout)["preflight"]
    assert read_back["checks"] == {
        "scripted": {"status": "fail", "code": "scripted.broken"},
        "scripted-b": {"status": "pass", "code": "scripted-b.fine"},
    }
    assert read_back["generated_at"] == fact["generated_at"]


@pytest.mark.parametrize("fmt", ["human", "json", "nagios", "prometheus", "junit", "facter"])
def test_every_format_writes_to_output(fmt: str, snapshot: Snapshot, tmp_path: Path) -> None:
    script(snapshot, "warn meh somewhat off\n")
    target = tmp_path / f"report.{fmt}"
    run = scripted("check", "scripted", "--root", str(snapshot), "-f", fmt, "-o", str(target))
    assert run.returncode == 1 and run.stdout == ""
    text = target.read_text()
    # prometheus names the check and its status, every other format the finding code too
    assert (
        'check="scripted",status="warn"} 1' in text
        if fmt == "prometheus"
        else "scripted.meh" in text
    )
    assert "\x1b[" not in text  # no colour codes in a file
    printed = scripted("check", "scripted", "--root", str(snapshot), "-f", fmt)
    assert len(printed.stdout.splitlines()) == len(text.splitlines())


def test_a_long_step_is_printed_on_one_line_and_runs_as_printed(tmp_path: Path) -> None:
    """A remediation step longer than the report's width stays one line: pasted into a shell
    as printed it does the whole job (a line break inside it would run half a command)."""
    from support.declared import spec, spec_id

    folder = tmp_path / ("a folder with a long name, " * 3).strip().replace(",", "")
    folder.mkdir()
    target = folder / "settings file with spaces and 'quotes'.conf"
    target.write_text("x\n")
    target.chmod(0o644)
    text = spec(
        "long-step",
        f'name = "mode"\nkind = "file"\npath = {json.dumps(str(target))}\nmode = "0600"',
    )
    config = tmp_path / "declared.toml"
    config.write_text(text)
    argv = ("check", spec_id(text), "--config", str(config), "--format", "human")
    run = run_preflight(*argv)
    assert run.returncode == 2, run.stdout + run.stderr
    steps = [line for line in run.stdout.splitlines() if re.match(r"\s+\d+\. ", line)]
    chmod = [line.split(". ", 1)[1] for line in steps if "chmod" in line]
    assert len(chmod) == 1 and len(chmod[0]) > 100, steps
    subprocess.run(["sh", "-c", chmod[0]], check=True, timeout=30)
    assert target.stat().st_mode & 0o777 == 0o600
    assert run_preflight(*argv).returncode == 0
