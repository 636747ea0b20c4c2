"""ARCHITECTURE.md's worked example is a real check: built from the file, installed as a plugin,
run against snapshots."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from hostdata import DEBIAN12_OS_RELEASE
from support.cli import REPO, check_of, codes, finding, report_of, run_preflight
from support.components import require_command
from support.plugins import distribution
from support.snapshot import Snapshot

OPENSSH_STANZA = (
    "Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\n"
    "Version: 1:9.2p1-2+deb12u3\n"
)
# Debian 12's shipped sshd_config, the lines around PermitRootLogin.
DEBIAN12_SSHD_CONFIG = """Include /etc/ssh/sshd_config.d/*.conf

# Authentication:

#LoginGraceTime 2m
#PermitRootLogin prohibit-password
#StrictModes yes
#MaxAuthTries 6
#MaxSessions 10
"""


def example_files() -> dict[str, str]:
    """The `# file: PATH` code blocks of ARCHITECTURE.md."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", text, re.S)
    return {path: body for path, body in blocks}


def install_example(site: Path) -> dict[str, str]:
    for rel, body in example_files().items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(body)
    distribution(
        site,
        "sshd_root-0.1.dist-info",
        "sshd-root",
        "[preflight.checks]\nsshd-root = sshd_root:SshdRootCheck\n",
    )
    return {"PYTHONPATH": str(site)}


def sshd_root(snapshot: Snapshot, env: dict[str, str]) -> dict:
    run = run_preflight("check", "sshd-root", "--root", str(snapshot), "--format", "json", env=env)
    return check_of(report_of(run), "sshd-root")


def test_the_example_is_three_files_under_100_lines() -> None:
    files = example_files()
    assert sorted(files) == ["sshd_root/__init__.py", "sshd_root/facts.py", "sshd_root/findings.py"]
    assert sum(len(body.splitlines()) for body in files.values()) < 100


def test_the_worked_example_runs_as_written(snapshot: Snapshot, tmp_path: Path) -> None:
    env = install_example(tmp_path / "site")
    # A Debian 12 host without OpenSSH: the engine's skip from the declared applicability.
    snapshot.write("etc/os-release", DEBIAN12_OS_RELEASE)
    result = sshd_root(snapshot, env)
    assert (result["status"], codes(result)) == ("skip", ["sshd-root.not-installed"])

    # Debian 12 as shipped: the default refuses password logins for root.
    snapshot.write("var/lib/dpkg/status", OPENSSH_STANZA)
    snapshot.write("etc/ssh/sshd_config", DEBIAN12_SSHD_CONFIG)
    assert codes(sshd_root(snapshot, env)) == ["sshd-root.ok"]

    # An operator's override: a warning whose first step, run on the snapshot's file, fixes it.
    config = snapshot.write("etc/ssh/sshd_config", DEBIAN12_SSHD_CONFIG + "PermitRootLogin yes\n")
    result = sshd_root(snapshot, env)
    warned = finding(result, "sshd-root.password")
    assert result["status"] == "warn" and "PermitRootLogin yes" in warned["message"]
    require_command("sed")
    step = warned["remediation"][0].replace("/etc/ssh/sshd_config", str(config))
    subprocess.run(["sh", "-c", step], check=True)
    assert codes(sshd_root(snapshot, env)) == ["sshd-root.ok"]

    explained = run_preflight("explain", "sshd-root", env=env)
    assert explained.returncode == 0 and "sshd-root.password" in explained.stdout
