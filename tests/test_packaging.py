"""Packaging as a user meets it: the distribution name, a wheel and an sdist built from a clean
clone without touching it, and `pipx install` of the clone giving a working `preflight`."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from support.cli import REPO
from support.components import require_command

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of the committed tree, as CI and a new user get it."""
    target = tmp_path_factory.mktemp("clone") / "preflight"
    subprocess.run(
        ["git", "clone", "-q", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=120
    )
    return target


def _untouched(clone: Path) -> None:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status == "", f"the build left files in the checkout:\n{status}"


def test_wheel_from_a_clean_clone(clone: Path, tmp_path: Path) -> None:
    built = subprocess.run(
        [str(VENV_BIN / "pip"), "wheel", "--no-deps", "-w", str(tmp_path), str(clone)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert "deprecat" not in (built.stdout + built.stderr).lower()
    _untouched(clone)
    (wheel,) = tmp_path.glob("host_preflight-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "preflight/collect.sh",
        "preflight/py.typed",
        "preflight/schema/report.schema.json",
        "preflight_checks/kernel/__init__.py",
        "preflight_checks/kamailio/config.py",
    ):
        assert required in names, required
    assert not any(n.startswith(("tests/", "examples/", "bench/")) for n in names)
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "\nName: host-preflight\n" in text
    assert "\nLicense-Expression: MIT\n" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    declared = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "preflight = preflight.cli:main" in declared
    for check in ("kernel", "tun", "puppet", "kamailio"):
        assert f"{check} = preflight_checks.{check}:" in declared


def test_sdist_from_a_clean_clone_holds_the_examples(clone: Path, tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(clone)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    _untouched(clone)
    (sdist,) = tmp_path.glob("host_preflight-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for required in (
        "LICENSE",
        "README.md",
        "examples/cron/preflight",
        "examples/facter/preflight.sh",
        "examples/prometheus/preflight.rules.yml",
        "preflight/collect.sh",
    ):
        assert required in names, required


def test_pipx_install_from_a_clean_clone(clone: Path, tmp_path: Path) -> None:
    pipx = require_command("pipx")
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "LANG": "C.UTF-8",
    }
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE"):
        if key in os.environ:
            env[key] = os.environ[key]
    installed = subprocess.run(
        [pipx, "install", "--python", "/usr/bin/python3", str(clone)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    _untouched(clone)
    version = subprocess.run(
        [str(tmp_path / "bin" / "preflight"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0 and version.stdout.startswith("preflight "), version.stderr
    listed = subprocess.run(
        [str(tmp_path / "bin" / "preflight"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"origin": "built-in"' in listed.stdout
