"""Waivers (contract sections 3 and 7) and --wait, through the real command line."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from support.plugins import SCRIPTED_FINDINGS as FINDINGS
from support.plugins import SCRIPTED_FINDINGS_B as FINDINGS_B
from support.plugins import scripted
from support.snapshot import Snapshot

# The waiver most tests use: a pending reboot, waived until `until`.
REBOOT_WAIVER = (
    '[[waivers]]\ncode = "scripted.reboot-required"\n'
    'reason = "reboot in the maintenance window"\nuntil = {until}\n'
)


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "preflight.toml"
    path.write_text(text)
    return str(path)


def test_a_current_waiver_takes_the_failure_out_of_the_exit_code(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    snapshot.write(FINDINGS, "fail reboot-required a reboot is pending for 6.1.0-26\n")
    cfg = config(tmp_path, REBOOT_WAIVER.format(until="2099-12-31"))
    run = scripted("check", "scripted", "--root", str(snapshot), "-c", cfg, "-f", "json")
    assert run.returncode == 0, run.stdout
    report = run.json()
    assert report["exit_code"] == 0 and report["counts"]["waived"] == 1
    assert report["counts"]["fail"] == 0
    finding = report["checks"][0]["findings"][0]
    assert finding["status"] == "fail"  # a waived finding keeps its status
    assert finding["waived"] == {
        "reason": "reboot in the maintenance window",
        "until": "2099-12-31",
    }
    human = scripted("check", "scripted", "--root", str(snapshot), "-c", cfg)
    assert human.returncode == 0
    assert "WAIVED scripted: a reboot is pending" in human.stdout
    assert "1 waived" in human.stdout


def test_a_waiver_covers_only_its_code_and_match(snapshot: Snapshot, tmp_path: Path) -> None:
    snapshot.write(
        FINDINGS, "fail broken sda is broken\nfail broken sdb is broken\nwarn slow disks are slow\n"
    )
    cfg = config(
        tmp_path,
        '[[waivers]]\ncode = "scripted.broken"\nmatch = "sda"\nreason = "replacement ordered"\n',
    )
    run = scripted("check", "scripted", "--root", str(snapshot), "-c", cfg, "-f", "json")
    assert run.returncode == 2  # sdb still fails
    report = run.json()
    waived = [f["message"] for f in report["checks"][0]["findings"] if "waived" in f]
    assert waived == ["sda is broken"] and report["counts"]["waived"] == 1

    snapshot.write(FINDINGS, "fail broken sda is broken\nwarn slow disks are slow\n")
    run = scripted("check", "scripted", "--root", str(snapshot), "-c", cfg, "-f", "json")
    assert run.returncode == 1  # the waived failure is gone; the warning remains
    assert run.json()["checks"][0]["code"] == "scripted.slow"


def test_an_expired_waiver_counts_again_and_says_so(snapshot: Snapshot, tmp_path: Path) -> None:
    snapshot.write(FINDINGS, "fail reboot-required a reboot is pending\n")
    cfg = config(tmp_path, REBOOT_WAIVER.format(until='"2020-01-31"'))
    run = scripted("check", "scripted", "--root", str(snapshot), "-c", cfg, "-f", "json")
    assert run.returncode == 2
    report = run.json()
    assert report["counts"]["waived"] == 0 and report["counts"]["fail"] == 1
    finding = report["checks"][0]["findings"][0]
    assert "waived" not in finding
    assert "waiver expired on 2020-01-31" in finding["message"]
    human = scripted("check", "scripted", "--root", str(snapshot), "-c", cfg)
    assert human.returncode == 2 and "waiver expired on 2020-01-31" in human.stdout


def test_wait_reruns_until_the_check_passes(snapshot: Snapshot) -> None:
    snapshot.write(FINDINGS, "fail not-ready the service is not ready yet\n")
    target = snapshot.root / FINDINGS

    def become_ready() -> None:
        temp = target.with_name(".findings.tmp")
        temp.write_text("pass ready the service is ready\n")
        os.replace(temp, target)  # the check never reads half a file

    timer = threading.Timer(1.5, become_ready)
    started = time.monotonic()
    timer.start()
    try:
        run = scripted("check", "scripted", "--root", str(snapshot), "-f", "json", "--wait", "20")
    finally:
        timer.cancel()
        timer.join()
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout
    report = json.loads(run.stdout)  # exactly one JSON document, not one per attempt
    assert report["checks"][0]["code"] == "scripted.ready"
    assert 1.5 <= elapsed < 15


def test_wait_gives_up_after_its_time_and_reports_once(snapshot: Snapshot) -> None:
    snapshot.write(FINDINGS, "fail not-ready the service is not ready yet\n")
    snapshot.write(FINDINGS_B, "pass fine all good\n")
    started = time.monotonic()
    run = scripted(
        "check", "scripted", "scripted-b", "--root", str(snapshot), "-f", "json", "--wait", "2"
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 2
    report = json.loads(run.stdout)
    assert [c["status"] for c in report["checks"]] == ["fail", "pass"]
    assert 2 <= elapsed < 10
