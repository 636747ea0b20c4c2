"""--output PATH (contract section 5): atomic replacement, mode 0644, usage errors, leftovers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import (
    NOBODY,
    REPO,
    Snapshot,
    preflight_argv,
    preflight_env,
    require_nobody_can_run,
    script,
    scripted,
    scripted_env,
)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A folder for reports only (the snapshot lives beside it in tmp_path)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def failing_root(snapshot: Snapshot) -> Snapshot:
    script(snapshot, "fail broken the widget is broken\n")
    return snapshot


def test_output_replaces_the_file_with_mode_0644_under_a_strict_umask(
    failing_root: Snapshot, out: Path
) -> None:
    report = out / "report.json"
    report.write_text("old report\n")
    report.chmod(0o600)
    argv = preflight_argv(
        *("check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)),
        prefix=("sh", "-c", 'umask 077; exec "$@"', "sh"),
    )
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=preflight_env(scripted_env()),
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert json.loads(report.read_text())["checks"][0]["code"] == "scripted.broken"
    # node_exporter and facter do not run as root: the report must be readable by them
    assert report.stat().st_mode & 0o777 == 0o644
    assert os.listdir(out) == ["report.json"]  # no temporary file left behind


def test_missing_folder_is_a_usage_error(failing_root: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "nosuch" / "report.prom"
    run = scripted(
        "check", "scripted", "--root", str(failing_root), "-f", "prometheus", "-o", str(target)
    )
    assert run.returncode == 64
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output" in lines[0] and str(tmp_path / "nosuch") in lines[0]
    assert "does not exist" in lines[0]


def test_unwritable_folder_is_a_usage_error(open_snapshot: Snapshot, open_dir: Path) -> None:
    # The CLI runs as an unprivileged user, who cannot write a folder of root's.
    require_nobody_can_run()
    folder = open_dir / "reports"
    folder.mkdir(mode=0o755)
    run = scripted(
        "check",
        "--no-plugins",
        "--root",
        str(open_snapshot),
        "-f",
        "json",
        "-o",
        str(folder / "report.json"),
        user=NOBODY,
    )
    assert run.returncode == 64, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output" in lines[0] and "not writable" in lines[0]
    assert os.listdir(folder) == []


def test_temp_file_is_dot_named_and_not_collected(tmp_path: Path) -> None:
    from preflight.output import atomic_binary

    for name in ("report.json", "preflight.prom"):
        with atomic_binary(str(tmp_path / name)) as handle:
            handle.write(b"x")
            (temp,) = [
                e for e in os.listdir(tmp_path) if e not in ("report.json", "preflight.prom")
            ]
            # node_exporter reads *.prom, facter and log shippers *.json: never a partial file
            assert temp.startswith(".") and not temp.endswith((".prom", ".json"))
    assert sorted(os.listdir(tmp_path)) == ["preflight.prom", "report.json"]


def test_kill_9_mid_write_keeps_the_previous_report_and_the_next_run_cleans_up(
    failing_root: Snapshot, out: Path
) -> None:
    report = out / "report.json"
    first = scripted(
        "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
    )
    assert first.returncode == 2
    previous = report.read_bytes()
    # A run killed with SIGKILL halfway through writing its temporary file.
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from preflight.output import atomic_binary\n"
            "with atomic_binary(sys.argv[1]) as handle:\n"
            '    handle.write(b\'{"schema_version": 1, "chec\')\n'
            "    handle.flush()\n"
            "    os.kill(os.getpid(), 9)\n",
            str(report),
        ],
        cwd=REPO,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    leftovers = [e for e in os.listdir(out) if e != "report.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".report.json")
    assert report.read_bytes() == previous  # readers still see the old complete report

    # A temp file of a run that is still going (its pid is alive and a preflight) is kept.
    busy = subprocess.Popen(["sh", "-c", "sleep 30", "preflight-busy"])
    try:
        busy_temp = out / f".report.json.preflight-tmp-{busy.pid}-abc.tmp"
        busy_temp.write_text("in progress")
        script(failing_root, "pass fine all good\n")
        second = scripted(
            "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
        )
        assert second.returncode == 0
        assert json.loads(report.read_text())["status"] == "pass"
        assert sorted(os.listdir(out)) == sorted(["report.json", busy_temp.name])
    finally:
        busy.kill()
        busy.wait()


def test_readers_never_see_a_partial_report_while_runs_are_killed(
    failing_root: Snapshot, out: Path
) -> None:
    report = out / "preflight.json"
    assert (
        scripted(
            "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
        ).returncode
        == 2
    )
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = report.read_bytes()
            reads += 1
            try:
                json.loads(data)
            except ValueError:
                bad.append(data[:80].decode("utf-8", "replace"))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    rng = random.Random(7)
    argv = preflight_argv(
        "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
    )
    try:
        for _ in range(6):
            proc = subprocess.Popen(
                argv,
                env=preflight_env(scripted_env()),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.05, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        stop.set()
        thread.join(5)
    assert reads > 0 and bad == []
    final = scripted(
        "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
    )
    assert final.returncode == 2 and json.loads(report.read_text())["exit_code"] == 2
    assert os.listdir(out) == ["preflight.json"]  # the killed runs' temps are gone
