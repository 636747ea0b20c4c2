"""Real Puppet layouts in a private mount namespace, and what the real Puppet says about them.

A scenario replaces folders of this machine (/etc/puppet, /usr/local/bin, /var/lib/gems, ...)
inside `unshare -m` only: the machine itself and every other process keep the real ones. Inside,
the steps run in order (the commands of one step at the same time, since each Puppet start costs
1-2 s of Ruby) and their exit codes and output come back as JSON. So one namespace run gives both
the check's report and the truth it is compared with: `puppet config print modulepath`,
`puppet module list`, `puppet apply -e 'include X'`.

Run as a script (by `run_scenario`), this module is the driver inside the namespace.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOGIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian root
CRON_PATH = "/usr/bin:/bin"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Scenario:
    """Folders to replace, and the steps to run once they are in place."""

    work: Path
    binds: list[tuple[str, str]] = field(default_factory=list)  # (source, target folder)
    views: list[dict[str, Any]] = field(default_factory=list)
    steps: list[list[dict[str, Any]]] = field(default_factory=list)

    def bind(self, source: Path, target: str) -> None:
        """Mount `source` over the existing folder `target`."""
        self.binds.append((str(source), target))

    def view(self, target: str, drop: tuple[str, ...] = (), add: dict[str, str] | None = None):
        """Replace the folder `target` by a copy of its entries (hard links, so every file keeps
        its own path and inode) without `drop`, plus `add` (name -> folder to show there)."""
        self.views.append({"target": target, "drop": list(drop), "add": add or {}})

    def step(self, **commands: list[str] | tuple[list[str], dict[str, str]]) -> None:
        """Commands that run together; a value is argv, or (argv, extra environment)."""
        entries = []
        for name, spec in commands.items():
            argv, env = (spec, {}) if isinstance(spec, list) else spec
            entries.append({"name": name, "argv": argv, "env": env})
        self.steps.append(entries)


def run_scenario(scenario: Scenario, timeout: float = 300) -> dict[str, dict[str, Any]]:
    """Run the scenario in a private mount namespace; each command's rc, stdout and stderr."""
    spec = scenario.work / "scenario.json"
    spec.write_text(
        json.dumps(
            {
                "work": str(scenario.work),
                "binds": scenario.binds,
                "views": scenario.views,
                "steps": scenario.steps,
            }
        )
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, __file__, str(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"scenario driver failed: {proc.stderr[-3000:]}")
    results: dict[str, dict[str, Any]] = json.loads(proc.stdout)
    return results


def puppet_env(work: Path, path: str = LOGIN_PATH) -> dict[str, str]:
    return {"PATH": path, "HOME": str(work), "LANG": "C.UTF-8"}


def puppet_apply(work: Path, manifest: str, name: str = "apply") -> list[str]:
    """`puppet apply -e` with its state folders in `work`: the machine's are never written.
    confdir and codedir stay the default ones: they are what the scenario is about."""
    argv = ["puppet", "apply", "--color", "false", "--noop", "-e", manifest]
    for setting in ("vardir", "logdir", "rundir"):
        argv += [f"--{setting}", str(work / "state" / name / setting)]
    return argv


def module_list(output: str) -> dict[str, str]:
    """`puppet module list` as {folder name: version shown} (`???` for a folder without
    metadata.json), from its tree output."""
    modules = {}
    for line in ANSI_RE.sub("", output).splitlines():
        stripped = line.lstrip("├└─│ ")
        if stripped != line and " (" in stripped:
            name, _, version = stripped.partition(" (")
            modules[name.split("-", 1)[-1]] = version.rstrip(")")
    return modules


def config_print(output: str) -> list[str]:
    """The folders `puppet config print modulepath` printed, in order."""
    lines = [ln for ln in ANSI_RE.sub("", output).splitlines() if ln.strip()]
    value = lines[-1].split(" = ", 1)[-1] if lines else ""
    return [p for p in value.strip().split(":") if p]


# ------------------------------------------------------------------ driver (in the namespace)
def _mount_bind(source: str, target: str, recursive: bool = False) -> None:
    flag = "--rbind" if recursive else "--bind"
    subprocess.run(["mount", flag, source, target], check=True)


def _build_view(work: Path, index: int, view: dict[str, Any]) -> None:
    target = view["target"]
    original = work / f"view{index}-original"
    copy = work / f"view{index}"
    original.mkdir()
    copy.mkdir()
    _mount_bind(target, str(original))  # the real folder stays reachable here
    for name in os.listdir(original):
        if name in view["drop"]:
            continue
        # Hard links are made from the folder's own path: across two mounts (even of one file
        # system) link() fails with EXDEV.
        source = Path(target) / name
        entry = copy / name
        if source.is_symlink():
            entry.symlink_to(os.readlink(source))
        elif source.is_dir():
            entry.mkdir()
            _mount_bind(str(original / name), str(entry), recursive=True)
        else:
            try:
                os.link(source, entry)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM):
                    raise
                entry.touch()
                _mount_bind(str(original / name), str(entry))
    for name, folder in view["add"].items():
        (copy / name).mkdir()
        _mount_bind(folder, str(copy / name))
    _mount_bind(str(copy), target, recursive=True)


def _run(command: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    env = {"PATH": LOGIN_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    env.update(command["env"])
    try:
        proc = subprocess.run(command["argv"], capture_output=True, text=True, env=env, timeout=120)
    except OSError as exc:
        return command["name"], {"rc": None, "stdout": "", "stderr": str(exc)}
    return command["name"], {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def _drive(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work"])
    for source, target in spec["binds"]:
        _mount_bind(source, target)
    for index, view in enumerate(spec["views"]):
        _build_view(work, index, view)
    results: dict[str, Any] = {}
    for step in spec["steps"]:
        with ThreadPoolExecutor(max_workers=max(1, len(step))) as pool:
            results.update(pool.map(_run, step))
    json.dump(results, sys.stdout)


def build_gem(source_lib: Path, version: str, work: Path) -> Path:
    """A real `puppet` gem of `version`, built by RubyGems from Debian's own Puppet library
    (with its version changed): installed with `gem install --local` it is the layout and
    binstub `gem install puppet` makes, and it runs."""
    src = work / "gem-src"
    shutil.copytree(source_lib / "puppet", src / "lib" / "puppet", symlinks=True)
    shutil.copy(source_lib / "puppet.rb", src / "lib" / "puppet.rb")
    (src / "bin").mkdir()
    shutil.copy("/usr/bin/puppet", src / "bin" / "puppet")
    version_rb = src / "lib" / "puppet" / "version.rb"
    text, count = re.subn(
        r"PUPPETVERSION = '[^']+'", f"PUPPETVERSION = '{version}'", version_rb.read_text()
    )
    assert count == 1
    version_rb.write_text(text)
    (src / "puppet.gemspec").write_text(
        f"""Gem::Specification.new do |s|
  s.name = "puppet"
  s.version = "{version}"
  s.summary = "Puppet, an automated configuration management tool"
  s.authors = ["Puppet Labs"]
  s.license = "Apache-2.0"
  s.files = Dir["lib/**/*"] + ["bin/puppet"]
  s.bindir = "bin"
  s.executables = ["puppet"]
end
"""
    )
    subprocess.run(
        ["gem", "build", "puppet.gemspec"], cwd=src, check=True, capture_output=True, timeout=120
    )
    return src / f"puppet-{version}.gem"


if __name__ == "__main__":
    _drive(sys.argv[1])
