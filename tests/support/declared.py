"""Declared checks in tests: write a `[[check]]` spec, run it through the real CLI, read the
per-assertion rows of its report."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from support.cli import check_of, report_of, run_preflight


def spec(check_id: str, *assertions: str, title: str = "Declared test") -> str:
    """A TOML file body: one [[check]] with the given [[check.assert]] bodies."""
    body = f'[[check]]\nid = "{check_id}"\ntitle = "{title}"\n'
    for text in assertions:
        body += "\n[[check.assert]]\n" + textwrap.dedent(text).strip() + "\n"
    return body


def spec_id(text: str) -> str:
    """The id of the first check in a spec's text."""
    return text.split('id = "', 1)[1].split('"', 1)[0]


def run_spec(tmp_path: Path, text: str, *args: str) -> dict[str, Any]:
    """The report of the declared check in `text` alone, as `preflight check ID --config FILE
    --format json ARGS` prints it (without `--root`, the built-ins judge this machine)."""
    path = tmp_path / "declared.toml"
    path.write_text(text)
    run = run_preflight("check", spec_id(text), "--config", str(path), "--format", "json", *args)
    return report_of(run)


def check_on_snapshot(snapshot: Any, tmp_path: Path, text: str) -> dict[str, Any]:
    """The result of the declared check in `text`, judging `snapshot` (`--root`)."""
    return check_of(run_spec(tmp_path, text, "--root", str(snapshot)), spec_id(text))


def drop_in_config(tmp_path: Path, files: dict[str, str], main: str = "") -> tuple[Path, Path]:
    """A `checks.d` folder holding `files` (name -> text) and a preflight.toml whose
    `checks_dir` names it, followed by `main`: (the folder, the config file)."""
    folder = tmp_path / "checks.d"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    config = tmp_path / "preflight.toml"
    config.write_text(f'[preflight]\nchecks_dir = "{folder}"\n' + main)
    return folder, config


def rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The check's details.assertions, by assertion name."""
    return {row["name"]: row for row in result["details"]["assertions"]}


def results(result: dict[str, Any]) -> dict[str, str]:
    """Each assertion's result word (pass, fail, warn, error, skip), by assertion name."""
    return {name: row["result"] for name, row in rows(result).items()}
