"""Test plugins: the scripted checks, the demo plugin, third-party distributions on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from support.cli import REPO, Run, run_preflight
from support.snapshot import Snapshot

# Test-only check plugins driven by files in the snapshot (tests/plugins_automation).
AUTOMATION_PLUGINS = REPO / "tests" / "plugins_automation"
SCRIPTED_FINDINGS = "etc/preflight-scripted/findings"
SCRIPTED_FINDINGS_B = "etc/preflight-scripted/findings-b"


# ------------------------------------------------------------------ the scripted plugins
def scripted_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """PYTHONPATH with tests/plugins_automation first, so its checks are installed."""
    path = os.pathsep.join(
        p for p in (str(AUTOMATION_PLUGINS), os.environ.get("PYTHONPATH", "")) if p
    )
    return {"PYTHONPATH": path, **(extra or {})}


def scripted(*args: str, **kw: Any) -> Run:
    """The CLI with the scripted test checks installed (tests/plugins_automation)."""
    return run_preflight(*args, env=scripted_env(kw.pop("env", None)), **kw)


def script(snapshot: Snapshot, a: str | None = None, b: str | None = None) -> None:
    """What the `scripted` (a) and `scripted-b` (b) checks report: one finding a line,
    `<status> <reason> <message>`."""
    if a is not None:
        snapshot.write(SCRIPTED_FINDINGS, a)
    if b is not None:
        snapshot.write(SCRIPTED_FINDINGS_B, b)


# ------------------------------------------------------------------ the demo plugin
def demo(snapshot: Snapshot, **states: str) -> list[str]:
    """Set the demo plugin's outcomes (check id -> state: pass, warn, fail, skip, error, raise,
    hang) in the snapshot and return the args that run those checks on it."""
    for check_id, state in states.items():
        snapshot.write(f"etc/preflight-demo/{check_id.replace('_', '-')}", state + "\n")
    return ["check", *[c.replace("_", "-") for c in states], "--root", str(snapshot)]


# ------------------------------------------------------------------ plugins and audits
def distribution(
    site: Path,
    folder: str,
    name: str,
    entry_points: str,
    *,
    version: str = "0.1",
    meta: str = "METADATA",
    body: str = "",
) -> Path:
    """The metadata folder of an installed distribution (`<name>-<version>.dist-info`, or an
    .egg-info with meta="PKG-INFO") in `site`, with `entry_points` as entry_points.txt."""
    path = site / folder
    path.mkdir(parents=True)
    (path / meta).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{body}")
    (path / "entry_points.txt").write_text(entry_points)
    return path


def plugin_site(
    site: Path, name: str, code: str, entry_points: str | None = None
) -> dict[str, str]:
    """An installed third-party distribution `<name>-plugin` as importlib.metadata sees it
    (dist-info plus the module `<name>_plugin`), and the env that puts it on PYTHONPATH for the
    preflight subprocess only. `entry_points` (lines of [preflight.checks]) defaults to one
    check `<name>`."""
    module = f"{name}_plugin"
    if entry_points is None:
        entry_points = f"{name} = {module}:{name.capitalize()}Check\n"
    distribution(
        site, f"{module}-0.1.dist-info", f"{name}-plugin", "[preflight.checks]\n" + entry_points
    )
    (site / f"{module}.py").write_text(code)
    return {"PYTHONPATH": str(site)}
