"""A deployment gated on preflight with the real `puppet apply` and the example class in
examples/puppet: the gated resource exists only when preflight passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.cli import REPO
from support.components import require_command
from support.plugins import AUTOMATION_PLUGINS as PLUGINS
from support.plugins import SCRIPTED_FINDINGS

MODULES = REPO / "examples" / "puppet" / "modules"


def _manifest(root: Path, gated: Path) -> str:
    preflight = Path(sys.executable).parent / "preflight"  # the venv's console script
    return f"""
class {{ 'preflight_gate':
  preflight   => '{preflight}',
  checks      => ['scripted'],
  options     => ['--root', '{root}'],
  environment => ['PYTHONPATH={PLUGINS}'],
}}
file {{ '{gated}':
  ensure  => file,
  content => "deployed\\n",
  require => Class['preflight_gate'],
}}
"""


def _start(puppet: str, work: Path, findings: str) -> tuple[subprocess.Popen[str], Path]:
    """`puppet apply` with every Puppet folder inside `work`: nothing on the host is touched."""
    root = work / "host"
    (root / SCRIPTED_FINDINGS).parent.mkdir(parents=True)
    (root / SCRIPTED_FINDINGS).write_text(findings)
    gated = work / "deployed.txt"
    manifest = work / "site.pp"
    manifest.write_text(_manifest(root, gated))
    argv = [
        puppet,
        "apply",
        "--detailed-exitcodes",
        "--color",
        "false",
        "--modulepath",
        str(MODULES),
    ]
    for name in ("vardir", "confdir", "codedir", "logdir", "rundir"):
        argv += [f"--{name}", str(work / name)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        [*argv, str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=work,
    )
    return proc, gated


def test_puppet_deploys_only_when_preflight_passes(tmp_path: Path) -> None:
    puppet = require_command("puppet")
    (tmp_path / "ok").mkdir()
    (tmp_path / "bad").mkdir()
    # both runs at once: puppet apply spends most of its ~3 s starting Ruby and Facter
    ok, ok_file = _start(puppet, tmp_path / "ok", "pass ready the host is ready\n")
    bad, bad_file = _start(puppet, tmp_path / "bad", "fail broken the widget is broken\n")
    try:
        ok_out, _ = ok.communicate(timeout=120)
        bad_out, _ = bad.communicate(timeout=120)
    finally:
        for proc in (ok, bad):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # --detailed-exitcodes: 2 = changes applied, no failures
    assert ok.returncode == 2, ok_out
    assert ok_file.read_text() == "deployed\n"
    assert "Exec[preflight check]/returns: executed successfully" in ok_out

    # 4 = failures: the exec failed, the gated file was skipped, and the report is in the log
    assert bad.returncode in (4, 6), bad_out
    assert not bad_file.exists()
    assert "returned 2 instead of one of [0]" in bad_out
    assert f"File[{bad_file}]: Skipping because of failed dependencies" in bad_out
    assert "scripted.broken" in bad_out and "the widget is broken" in bad_out
    assert "fix broken: see /etc/preflight-scripted/findings" in bad_out  # the remediation
