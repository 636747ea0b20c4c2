"""Shared test helpers: run the real CLI, build host snapshots, require real components."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The installed console script, exactly what an operator, cron or Puppet runs.
_SCRIPT = Path(sys.executable).with_name("preflight")
PREFLIGHT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "preflight"]
SCHEMA: dict[str, Any] = json.loads((REPO / "preflight/schema/report.schema.json").read_text())
# The unprivileged user the tests run preflight as (nobody on Debian).
NOBODY = 65534
# Test-only check plugins driven by files in the snapshot (tests/plugins_automation).
AUTOMATION_PLUGINS = REPO / "tests" / "plugins_automation"
SCRIPTED_FINDINGS = "etc/preflight-scripted/findings"
SCRIPTED_FINDINGS_B = "etc/preflight-scripted/findings-b"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def preflight_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: the test runner's own, without a PREFLIGHT_CONFIG that would
    leak a developer's config into the run, and without colour; then `extra`."""
    env = dict(os.environ)
    env.pop("PREFLIGHT_CONFIG", None)
    env["NO_COLOR"] = "1"
    if extra:
        env.update(extra)
    return env


def as_user(uid: int) -> list[str]:
    """The command prefix that runs the rest as `uid` (and its group), no supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def preflight_argv(*args: str, prefix: Sequence[str] = ()) -> list[str]:
    """The command line of the real CLI, after `prefix` (a wrapper such as setpriv or sh -c)."""
    return [*prefix, *PREFLIGHT, *args]


def run_preflight(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | Path | None = None,
    user: int | None = None,
    prefix: Sequence[str] = (),
) -> Run:
    """Run the real command line, as an operator or cron would, and capture everything."""
    if user is not None:
        prefix = [*as_user(user), *prefix]
    # An unprivileged user may not be able to enter the checkout: run from "/" then.
    workdir = cwd or ("/" if user is not None else REPO)
    proc = subprocess.run(
        preflight_argv(*args, prefix=prefix),
        capture_output=True,
        text=True,
        env=preflight_env(env),
        timeout=timeout,
        cwd=workdir,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


# ------------------------------------------------------------------ reports
def report_of(run: Run, *, crashed_ok: bool = False) -> dict[str, Any]:
    """The one JSON report a run printed: no traceback, valid against the schema, its exit
    code the process's, and (unless `crashed_ok`) no check that crashed."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode in (0, 1, 2, 3), run.stderr
    report = json.loads(run.stdout)  # raises on no document and on two
    jsonschema.validate(report, SCHEMA)
    assert report["exit_code"] == run.returncode
    if not crashed_ok:
        crashed = [c["id"] for c in report["checks"] if c["code"].endswith(".crashed")]
        assert crashed == [], [c["summary"] for c in report["checks"]]
    return report


def check_of(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    """The result of one check in a report."""
    found = [c for c in report["checks"] if c["id"] == check_id]
    assert len(found) == 1, f"{check_id!r} not once in {[c['id'] for c in report['checks']]}"
    return found[0]


def codes(result: dict[str, Any]) -> list[str]:
    """The finding codes of one check's result, in order."""
    return [f["code"] for f in result["findings"]]


def finding(result: dict[str, Any], code: str) -> dict[str, Any]:
    """The first finding with `code` in one check's result."""
    found = [f for f in result["findings"] if f["code"] == code]
    assert found, f"{code} not in {codes(result)}: {result.get('summary')}"
    return found[0]


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


# Runs the CLI in-process with audit hooks that log every file opened for writing or changed
# (`write\t<path>`) and every process started (`exec\t<event>\t<argv joined by NUL>`).
_AUDIT_WRAPPER = r"""
import os, sys
log = open(os.environ["PF_AUDIT_LOG"], "a", buffering=1)
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link",
           "os.chmod", "os.chown", "os.truncate", "os.utime", "os.mknod", "os.mkfifo",
           "shutil.rmtree", "shutil.move", "shutil.copyfile"}
# Every way Python starts another program raises one of these. Not os.fork: preflight forks to
# run each check in its own process (no other program); the child inherits this hook, so what a
# check starts is recorded all the same.
STARTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
          "os.forkpty"}
def words(args):
    for arg in args:
        if isinstance(arg, (list, tuple)):
            return [os.fsdecode(a) if isinstance(a, (str, bytes)) else repr(a) for a in arg]
    return [os.fsdecode(a) if isinstance(a, (str, bytes)) else repr(a) for a in args]
def at(path, dir_fd=None):  # a name relative to an open folder (dir_fd), made absolute
    path = os.fsdecode(path)
    if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(path):
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    return os.path.abspath(path)
def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & WRITE)
        if writing and isinstance(path, (str, bytes)):
            tmpfile = getattr(os, "O_TMPFILE", 0)
            unnamed = tmpfile and isinstance(flags, int) and flags & tmpfile == tmpfile
            # O_TMPFILE names a folder: the file is created in it, without a name.
            log.write(f"write\t{os.path.join(at(path), '(unnamed)') if unnamed else at(path)}\n")
    elif event in ("os.rename", "os.link") and isinstance(args[1], (str, bytes)):
        src, dst, src_dir_fd, dst_dir_fd = args
        if event == "os.rename":
            log.write(f"write\t{at(src, src_dir_fd)}\n")
        log.write(f"write\t{at(dst, dst_dir_fd)}\n")
    elif event in CHANGES and args and isinstance(args[0], (str, bytes)):
        dir_fd = args[-1] if len(args) > 1 and isinstance(args[-1], int) else None
        log.write(f"write\t{at(args[0], dir_fd)}\n")
    elif event in STARTS:
        log.write(f"exec\t{event}\t" + "\0".join(words(args)) + "\n")
sys.addaudithook(hook)
sys.argv = ["preflight", *sys.argv[1:]]
from preflight.cli import main
main()
"""


@dataclass
class Audit:
    """What one audited run did: its output, the files it wrote, the processes it started."""

    run: Run
    writes: list[str] = field(default_factory=list)
    starts: list[tuple[str, list[str]]] = field(default_factory=list)


def run_audited(
    *args: str,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: str | Path = REPO,
    timeout: float = 120,
) -> Audit:
    """The real CLI under audit hooks (see _AUDIT_WRAPPER); `log` is the hooks' log file."""
    log.write_text("")
    proc = subprocess.run(
        [sys.executable, "-c", _AUDIT_WRAPPER, *args],
        capture_output=True,
        text=True,
        env=preflight_env({**(env or {}), "PF_AUDIT_LOG": str(log)}),
        timeout=timeout,
        cwd=cwd,
    )
    audit = Audit(Run(proc.returncode, proc.stdout, proc.stderr))
    for line in log.read_text().splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "write":
            audit.writes.append(rest)
        else:
            event, _, argv = rest.partition("\t")
            audit.starts.append((event, argv.split("\0")))
    return audit


# ------------------------------------------------------------------ real components
def require(what: str, available: bool) -> None:
    """Skip when a real component is missing, except in CI, where that is a failure."""
    if available:
        return
    message = f"{what} is not available on this machine"
    if IN_CI:
        pytest.fail(f"{message}; .ci/run must install it")
    pytest.skip(message)


def require_command(name: str) -> str:
    path = shutil.which(name) or next(
        (
            p
            for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}")
            if os.access(p, os.X_OK)
        ),
        None,
    )
    require(f"command {name!r}", path is not None)
    assert path is not None
    return path


def require_root() -> None:
    require("root privileges", os.geteuid() == 0)


def require_nobody_can_run(module: str | None = None) -> None:
    """Root (to switch users), setpriv, and an install uid NOBODY can run (the interpreter and,
    for an editable install, the checkout must be readable by all); with `module`, that it can
    import that module too."""
    require_root()
    require_command("setpriv")
    probe = run_preflight("--version", user=NOBODY)
    require(f"preflight runnable by uid {NOBODY} (venv readable by all)", probe.returncode == 0)
    if module is not None:
        importable = subprocess.run(
            [*as_user(NOBODY), sys.executable, "-c", f"import {module}"],
            capture_output=True,
            cwd="/",
            timeout=60,
        )
        require(f"{module} importable by uid {NOBODY}", importable.returncode == 0)


@contextmanager
def world_readable_dir(prefix: str = "preflight-", mode: int = 0o755) -> Iterator[Path]:
    """A temp folder other users can enter (pytest's tmp_path is private to root), removed
    afterwards even where a test took permissions away inside it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(mode)
    try:
        yield folder
    finally:
        for dirpath, dirnames, _ in os.walk(folder):
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | stat.S_IRWXU)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder uid NOBODY can enter and read (not write)."""
    with world_readable_dir() as folder:
        yield folder


# ------------------------------------------------------------------ snapshots
class Snapshot:
    """A host snapshot directory: files a real host exposes, for `--root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(
        self, rel: str, content: str | bytes, mtime: float | None = None, mode: int | None = None
    ) -> Path:
        path = self.root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        if mode is not None:
            path.chmod(mode)
        return path

    def mkdir(self, rel: str) -> Path:
        path = self.root / rel.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def symlink(self, rel: str, target: str) -> Path:
        path = self.root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        return path

    def __str__(self) -> str:
        return str(self.root)


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    root = tmp_path / "host"
    root.mkdir()
    return Snapshot(root)


@pytest.fixture
def open_snapshot(open_dir: Path) -> Snapshot:
    """A snapshot that uid NOBODY can traverse and read."""
    root = open_dir / "host"
    root.mkdir()
    root.chmod(0o755)
    return Snapshot(root)
