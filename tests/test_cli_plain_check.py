"""A plain `check` command line runs without typer (preflight.check_run) and means exactly what
the typer app makes of it; every other line still gets typer's help and errors."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import preflight_env

from preflight import check_run, commands

PLAIN = [
    ["check"],
    ["check", "kernel", "--format", "json"],
    ["check", "-f", "nagios", "kernel", "tun", "--root", "/srv/snap"],
    ["check", "--report", "json:/tmp/a.json", "--report", "nagios", "-q", "--no-color"],
    ["check", "--timeout", "2.5", "--wait", "0", "--fail-on", "warn", "--no-plugins", "--debug"],
    ["check", "-c", "/etc/preflight.toml", "-o", "/tmp/r.json", "kamailio"],
]
NOT_PLAIN = [
    ["check", "--help"],
    ["check", "--format=json"],
    ["check", "-fjson"],
    ["check", "-f", "xml"],
    ["check", "--timeout", "0"],
    ["check", "--timeout", "nan"],
    ["check", "--wait", "-1"],
    ["check", "--fail-on", "never"],
    ["check", "--root"],
    ["check", "--root", "a", "--root", "b"],
    ["check", "--", "kernel"],
    ["check", "--bogus"],
    ["list"],
]


def _as_typer_runs(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """run_check's arguments when the typer app parses `args`."""
    import typer

    seen: list[inspect.BoundArguments] = []

    def capture(*a: Any, **kw: Any) -> int:
        seen.append(inspect.signature(check_run.run_check).bind(*a, **kw))
        return 0

    monkeypatch.setattr(commands, "run_check", capture)
    command = typer.main.get_command(commands.app)
    command.main(args=args, prog_name="preflight", standalone_mode=False)
    (bound,) = seen
    bound.apply_defaults()
    return dict(bound.arguments)


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_plain_check_line_means_what_typer_makes_of_it(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = check_run.plain_check_args(args)
    assert plain is not None
    bound = inspect.signature(check_run.run_check).bind(**plain)
    bound.apply_defaults()
    assert dict(bound.arguments) == _as_typer_runs(args, monkeypatch)


@pytest.mark.parametrize("args", NOT_PLAIN, ids=" ".join)
def test_other_lines_go_to_typer(args: list[str]) -> None:
    assert check_run.plain_check_args(args) is None


def _imported_by_kernel_run(root: Path, *args: str) -> set[str]:
    """The modules a `check kernel --root ROOT --format json ARGS` run imports (-X importtime)."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-X", "importtime", "-m", "preflight", "check", "kernel"]
    proc = subprocess.run(
        [*argv, "--root", str(root), "--format", "json", *args],
        capture_output=True,
        text=True,
        cwd="/",
        env=preflight_env(),
        check=False,
    )
    assert proc.returncode in (0, 1, 2, 3), proc.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}


def test_plain_json_run_imports_no_typer(tmp_path: Path) -> None:
    imported = _imported_by_kernel_run(tmp_path)
    assert "preflight.check_run" in imported
    assert not {m for m in imported if m.split(".")[0] in ("typer", "click", "rich", "psutil")}


def test_report_on_stdout_does_not_load_the_file_writer(tmp_path: Path) -> None:
    """The file writer (and `secrets`, ~5 ms) is loaded only when a report goes to a file."""
    on_stdout = _imported_by_kernel_run(tmp_path / "root")
    assert not {"preflight.output", "secrets", "shutil"} & on_stdout
    report = tmp_path / "report.json"
    to_file = _imported_by_kernel_run(tmp_path / "root", "--output", str(report))
    assert "preflight.output" in to_file
    assert report.read_text().startswith("{")


def test_help_and_usage_errors_still_come_from_typer(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "preflight", *args],
            capture_output=True,
            text=True,
            cwd="/",
            env=preflight_env(),
            check=False,
        )

    helped = run("check", "--help")
    assert helped.returncode == 0 and "Usage: preflight check [OPTIONS] [CHECK...]" in helped.stdout
    bad = run("check", "--timeout", "0")
    assert bad.returncode == 64
    assert bad.stderr.startswith("preflight: error: Invalid value for '--timeout'")
