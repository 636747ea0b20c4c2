"""Fault injection: a host in a bad state, hostile commands, killed and concurrent runs.

Each fault goes through the real CLI where a user would meet it (`--root` snapshots, fake
commands first on PATH, a report file that is being written) and asserts what the user sees:
the run ends in bounded time with exactly one valid report, a finding or fact that says
"unknown" instead of a guess, no traceback, and nothing left running.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import jsonschema
import psutil
import pytest
from hostdata import DEBIAN12_OS_RELEASE
from snapshots_kernel import bookworm_proc_version
from support.audit import run_audited
from support.cli import (
    NOBODY,
    REPO,
    SCHEMA,
    check_of,
    preflight_argv,
    preflight_env,
    report_of,
    run_preflight,
)
from support.components import require_command, require_nobody_can_run, require_root
from support.plugins import demo, plugin_site
from support.snapshot import Snapshot

# Files every run reads (the engine's facts) and the first file of each built-in check.
CORE_FILES = (
    "proc/version",
    "proc/sys/kernel/osrelease",
    "proc/sys/kernel/version",
    "proc/stat",
    "proc/cmdline",
    "proc/1/environ",
    "etc/os-release",
    "var/lib/dpkg/status",
    "sys/class/dmi/id/sys_vendor",
)


def check_paths() -> list[str]:
    """One concrete file for every `paths` pattern of every built-in check."""
    from preflight import registry

    found: list[str] = []
    for entry in registry.select(registry.discover(), no_plugins=True, allow=None):
        loaded = registry.load(entry)
        for pattern in getattr(loaded.check, "paths", ()) or ():
            rel = pattern.replace("**", "x").replace("*", "x").replace("?", "x")
            if "[" not in rel and rel not in found:
                found.append(rel.strip("/"))
    return found


def debian_host(snap: Snapshot) -> None:
    """A plausible Debian 12 host, so the checks get past "nothing here"."""
    snap.write("etc/os-release", DEBIAN12_OS_RELEASE)
    snap.write("proc/sys/kernel/osrelease", "6.1.0-26-amd64\n")
    snap.write("proc/version", bookworm_proc_version("6.1.0-26") + "\n")
    snap.write("proc/stat", "cpu  1 2 3 4\nbtime 1727700000\n")
    snap.write(
        "var/lib/dpkg/status",
        "Package: linux-image-6.1.0-26-amd64\nStatus: install ok installed\n"
        "Architecture: amd64\nSource: linux-signed-amd64 (6.1.112+1)\nVersion: 6.1.112-1\n\n"
        "Package: openvpn\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 2.6.3-1+deb12u2\n\n",
    )
    snap.mkdir("dev/net")


def place(snap: Snapshot, rel: str, kind: str) -> None:
    """Put a hostile object where a file should be."""
    path = snap.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "zero-device":
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # the real /dev/zero
    elif kind == "huge-sparse":
        with open(path, "wb") as handle:
            handle.truncate(1 << 30)  # 1 GiB of NULs that costs no disk
    elif kind == "non-utf8":
        path.write_bytes(b"\xff\xfe\x80 Linux version \xc3\x28 #1 \xed\xa0\x80\n\x00\x01")
    elif kind == "symlink-loop":
        path.symlink_to(path.name)
    elif kind == "dangling-escape":
        path.symlink_to("/../../../../etc/shadow")
    else:  # pragma: no cover
        raise AssertionError(kind)


FAULTS = (
    "fifo",
    "directory",
    "zero-device",
    "huge-sparse",
    "non-utf8",
    "symlink-loop",
    "dangling-escape",
)


@pytest.mark.parametrize("kind", FAULTS)
def test_hostile_object_in_place_of_every_file_still_gives_one_report(
    snapshot: Snapshot, kind: str
) -> None:
    if kind == "zero-device":
        require_root()
    debian_host(snapshot)
    targets = list(dict.fromkeys([*CORE_FILES, *check_paths()]))
    for rel in targets:
        place(snapshot, rel, kind)
    started = time.monotonic()
    run = run_preflight(
        "check", "--root", str(snapshot), "--format", "json", "--no-plugins", timeout=60
    )
    elapsed = time.monotonic() - started
    report = report_of(run)
    assert elapsed < 15, f"{kind}: bounded reads, no blocking ({elapsed:.1f} s)"
    assert {c["id"] for c in report["checks"]} >= {"kernel", "tun", "puppet", "kamailio"}
    host = report["host"]
    if kind != "non-utf8":
        # Nothing readable was there: unknown, never a guess.
        assert host["os"] is None and host["kernel"] == {"release": None, "version": None}
    facts = run_preflight("facts", "--root", str(snapshot), timeout=60)
    assert facts.returncode == 0 and "Traceback" not in facts.stderr
    assert json.loads(facts.stdout)["kernel"]["release"] == host["kernel"]["release"]


def test_unreadable_files_as_an_unprivileged_user(open_snapshot: Snapshot) -> None:
    require_nobody_can_run()
    snap = open_snapshot
    debian_host(snap)
    for rel in CORE_FILES:
        if (snap.root / rel).exists():
            (snap.root / rel).chmod(0)
    # A folder the user cannot enter, where the tun and kamailio checks look.
    snap.write("etc/openvpn/server/office.conf", "dev tun\n")
    (snap.root / "etc/openvpn").chmod(0)
    run = run_preflight(
        "check", "--root", str(snap), "--format", "json", "--no-plugins", user=NOBODY
    )
    report = report_of(run)
    assert report["host"]["os"] is None
    assert report["host"]["kernel"]["release"] is None
    kernel = check_of(report, "kernel")
    # The kernel check cannot see the running kernel: it must not pass.
    assert kernel["status"] != "pass", kernel
    facts = run_preflight("facts", "--root", str(snap), user=NOBODY)
    assert facts.returncode == 0 and json.loads(facts.stdout)["os"] is None


def test_config_file_that_is_a_fifo_or_device_is_a_usage_error(tmp_path: Path) -> None:
    fifo = tmp_path / "preflight.toml"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero", str(tmp_path)):
        started = time.monotonic()
        run = run_preflight("check", "--config", path, "--no-plugins", timeout=30)
        assert time.monotonic() - started < 10, f"--config {path} must not block"
        assert run.returncode == 64 and path in run.stderr and run.stdout == ""
        assert run.stderr.count("\n") == 1


def test_non_utf8_config_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_bytes(b'[preflight]\nfail_on = "\xff\xfe"\n')
    run = run_preflight("check", "--config", str(cfg), "--no-plugins")
    assert run.returncode == 64 and "not UTF-8" in run.stderr


# ------------------------------------------------------------------ commands on PATH
def live_processes_with(marker: str) -> list[int]:
    return [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if any(marker in arg for arg in proc.info["cmdline"] or [])
    ]


def fake_bin(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def sleeper(folder: Path) -> str:
    """A copy of sleep(1) whose path is unique, to find every process that runs it."""
    folder.mkdir(exist_ok=True)
    path = folder / f"pf-sleeper-{uuid.uuid4().hex}"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", path)
    return str(path)


def test_host_run_kills_the_whole_process_group_at_the_timeout(tmp_path: Path) -> None:
    from preflight.host import Host

    sleep = sleeper(tmp_path / "bin")
    # A command that ignores SIGTERM, with a child and a grandchild that sleep.
    fake_bin(tmp_path / "bin", "hang", f"trap '' TERM\n{sleep} 300 &\nsh -c '{sleep} 300'\n")
    host = Host("/", timeout=1)
    started = time.monotonic()
    result = host.run([str(tmp_path / "bin" / "hang")], timeout=1)
    assert result is not None and result.timed_out and result.returncode is None
    assert time.monotonic() - started < 4
    time.sleep(0.2)
    assert live_processes_with(sleep) == [], "no sleeping process is left behind"


def test_host_run_bounds_endless_output_and_reports_failures() -> None:
    from preflight.host import COMMAND_OUTPUT_LIMIT, Host

    host = Host("/", timeout=2)
    started = time.monotonic()
    endless = host.run(["yes", "garbage"], timeout=1)
    assert time.monotonic() - started < 4
    assert endless is not None and endless.timed_out
    assert len(endless.stdout) <= COMMAND_OUTPUT_LIMIT
    failed = host.run(["sh", "-c", "printf '\\377\\376 nonsense'; echo boom >&2; exit 7"])
    assert failed is not None and failed.returncode == 7 and not failed.ok
    assert "\ufffd" in failed.stdout and failed.stderr == "boom\n"
    missing = host.run(["/nonexistent/kamailio", "-c"])
    assert missing is not None and missing.returncode is None and missing.error
    assert Host("/tmp").run(["true"]) is None, "no command runs for a snapshot"


def test_a_check_stuck_in_a_command_ends_at_the_timeout(tmp_path: Path) -> None:
    """Through the CLI: `puppet` and `kamailio` first on PATH hang; the run ends at
    --timeout plus a margin, the checks report `error`, and no sleeper survives."""
    bin_dir = tmp_path / "bin"
    sleep = sleeper(bin_dir)
    for name in ("puppet", "kamailio", "openvpn", "facter"):
        fake_bin(bin_dir, name, f"{sleep} 300\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    started = time.monotonic()
    run = run_preflight(
        "check", "--format", "json", "--no-plugins", "--timeout", "2", env=env, timeout=60
    )
    elapsed = time.monotonic() - started
    report = report_of(run)
    assert elapsed < 2 + 5, f"the run must end soon after the timeout ({elapsed:.1f} s)"
    by_id = {c["id"]: c for c in report["checks"]}
    ran_command = [i for i in ("puppet", "kamailio") if by_id[i]["status"] == "error"]
    assert "puppet" in ran_command, by_id["puppet"]
    for check_id in ran_command:
        assert "timeout" in by_id[check_id]["summary"] or "timed out" in by_id[check_id]["summary"]
    time.sleep(0.3)
    assert live_processes_with(sleep) == [], "no sleeping process is left behind"


@pytest.mark.parametrize(
    "body",
    [
        "head -c 3000 /dev/urandom; exit 0\n",
        "echo 'Segmentation fault' >&2; exit 139\n",
        "exec yes 'puppet 99.99.99'\n",
        "printf '\\033[31m%s\\000' 'v7.23.0'; exit 1\n",
    ],
    ids=["random-bytes", "segfault", "endless", "escapes-and-nul"],
)
def test_a_command_printing_garbage_or_failing_is_not_trusted(tmp_path: Path, body: str) -> None:
    require_command("puppet")
    bin_dir = tmp_path / "bin"
    for name in ("puppet", "kamailio"):
        fake_bin(bin_dir, name, body)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    started = time.monotonic()
    run = run_preflight(
        "check", "puppet", "kamailio", "--format", "json", "--timeout", "3", env=env, timeout=60
    )
    assert time.monotonic() - started < 3 + 5
    report = report_of(run)
    puppet = check_of(report, "puppet")
    # A version that did not come from a working puppet is never reported as a pass.
    assert puppet["status"] in ("error", "fail"), puppet
    assert "version unknown" in puppet["summary"] or "timed out" in puppet["summary"]
    # Whatever the command printed stays out of the terminal: no escape sequence, no NUL.
    human = run_preflight("check", "puppet", "kamailio", "--timeout", "3", env=env, timeout=60)
    assert "\x1b" not in human.stdout and "\x00" not in human.stdout


# ------------------------------------------------------------------ report files
def demo_args(snapshot: Snapshot, state: str) -> list[str]:
    return [*demo(snapshot, demo=state), "--format", "json"]


def test_kill_9_of_a_slow_run_leaves_the_previous_report(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    report = out / "report.json"
    first = run_preflight(*demo_args(snapshot, "fail"), "-o", str(report))
    assert first.returncode == 2
    previous = report.read_bytes()
    assert json.loads(previous)["status"] == "fail"
    proc = subprocess.Popen(
        preflight_argv(*demo_args(snapshot, "hang"), "-o", str(report), "--timeout", "60"),
        cwd=REPO,
        env=preflight_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # the run is inside the hanging check now
        assert proc.poll() is None
        checks = psutil.Process(proc.pid).children()
        assert checks, "the run forked no check child"
    finally:
        proc.kill()
        proc.wait()
    assert report.read_bytes() == previous
    assert os.listdir(out) == ["report.json"]
    # The checks die with the run: none keeps running (orphaned) until its 60 s deadline.
    _gone, alive = psutil.wait_procs(checks, timeout=5)
    for child in alive:
        child.kill()
    assert alive == [], f"check children outlived the killed run: {alive}"


def test_concurrent_runs_writing_one_path_leave_one_complete_report(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    other = Snapshot(tmp_path / "other")
    other.root.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    report = out / "report.json"
    argv_fail = preflight_argv(*demo_args(snapshot, "fail"), "-o", str(report))
    argv_pass = preflight_argv(*demo_args(other, "pass"), "-o", str(report))
    procs = [
        subprocess.Popen(
            argv, cwd=REPO, env=preflight_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for argv in (argv_fail, argv_pass, argv_fail, argv_pass)
    ]
    codes = sorted(p.wait(timeout=60) for p in procs)
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.read() == b""
        assert proc.stderr is not None and proc.stderr.read() == b""
        proc.stdout.close()
        proc.stderr.close()
    assert codes == [0, 0, 2, 2]
    final = json.loads(report.read_text())
    jsonschema.validate(final, SCHEMA)
    assert final["status"] in ("pass", "fail") and final["exit_code"] in (0, 2)
    assert os.listdir(out) == ["report.json"], "no temporary file is left behind"


# ------------------------------------------------------------------ writes nothing else
def tree(folder: Path) -> dict[str, tuple[int, float]]:
    listing = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            listing[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime)
    return listing


def test_a_live_run_writes_nothing_but_the_requested_report(tmp_path: Path) -> None:
    """Every file write and every command of a full live run, seen from inside Python (audit
    hooks), plus the HOME, working and temp folders the commands it runs could write to."""
    home, cwd, tmp, out = (tmp_path / n for n in ("home", "cwd", "tmp", "out"))
    for folder in (home, cwd, tmp, out):
        folder.mkdir()
    (home / ".profile").write_text("# untouched\n")
    log = tmp_path / "audit.log"
    before = {f: tree(f) for f in (home, cwd, tmp)}
    report = out / "preflight.prom"
    audit = run_audited(
        "check",
        "-f",
        "prometheus",
        "-o",
        str(report),
        log=log,
        env={"HOME": str(home), "TMPDIR": str(tmp)},
        cwd=cwd,
    )
    assert audit.run.returncode in (0, 1, 2, 3), audit.run.stderr
    assert "preflight_run_exit_code" in report.read_text()
    writes = sorted(set(audit.writes))
    # Python's own bytecode cache is not preflight's doing; a packaged install has it already.
    writes = [w for w in writes if "/__pycache__/" not in w]
    # Devices opened read-write are not files: /dev/null for commands' stdin, and the tun
    # check's probe opens /dev/net/tun as OpenVPN does.
    files = [w for w in writes if not (os.path.exists(w) and stat.S_ISCHR(os.stat(w).st_mode))]
    assert files and all(os.path.dirname(w) == str(out) for w in files), writes
    assert audit.starts, "the live run asks commands (a control for the check below)"
    for _event, words in audit.starts:
        assert not (
            words and os.path.basename(words[0]) in ("sh", "bash", "dash") and "-c" in words
        )
    assert {f: tree(f) for f in (home, cwd, tmp)} == before
    assert sorted(os.listdir(out)) == ["preflight.prom"]


# ------------------------------------------------------------------ hardening
SHELL_RULES = "S102,S307,S602,S604,S605,S606,S609"  # exec/eval, shell=True, os.system, popen...


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("ruff")
    if not binary.exists():
        pytest.fail("ruff is not installed in the test environment (the test extra has it)")
    return subprocess.run(
        [str(binary), "check", "--no-cache", *args], capture_output=True, text=True, cwd=REPO
    )


def test_no_shell_and_one_place_that_starts_processes(tmp_path: Path) -> None:
    # The rules fire: a sample with shell=True and os.system is caught.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, subprocess\n"
        "subprocess.run('kamailio -c', shell=True)\n"
        "os.system('puppet --version')\n"
    )
    caught = ruff("--isolated", "--select", SHELL_RULES, str(sample))
    assert caught.returncode == 1 and "S602" in caught.stdout and "S605" in caught.stdout
    # The project config selects every S rule and keeps S603 to the file that runs commands.
    config = (REPO / "pyproject.toml").read_text()
    assert '"S"' in config.split("[tool.ruff.lint]", 1)[1].split("\n\n", 1)[0]
    clean = ruff("preflight", "preflight_checks")
    assert clean.returncode == 0, clean.stdout
    strict = ruff("--isolated", "--select", f"{SHELL_RULES},S603", "preflight", "preflight_checks")
    # Exactly one place in preflight and the checks starts a process: Host.run.
    assert strict.stdout.count("S603") == 1 and "preflight/host.py" in strict.stdout, strict.stdout
    assert not any(rule in strict.stdout for rule in SHELL_RULES.split(","))


def evil_plugin(site: Path, marker: Path) -> dict[str, str]:
    """An installed distribution whose import alone leaves a mark, as hostile code would."""
    code = (
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "from preflight.check import Check\n"
        "class EvilCheck(Check):\n"
        "    id = 'evil'\n"
        "    title = 'Evil'\n"
        "    def run(self, ctx):\n"
        "        return []\n"
    )
    entry_points = "evil = evil_plugin:EvilCheck\nkernel = evil_plugin:EvilCheck\n"
    return plugin_site(site, "evil", code, entry_points)


def test_plugins_outside_the_allow_list_are_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    env = evil_plugin(tmp_path / "site", marker)
    allow = tmp_path / "allow.toml"
    allow.write_text('[preflight]\nplugins = ["demo"]\n')
    for args in (
        ["check", "--no-plugins", "-f", "json"],
        ["check", "--config", str(allow), "-f", "json"],
        ["list", "--no-plugins"],
        ["list", "--config", str(allow)],
        ["collect", "--print-script", "--no-plugins"],
        ["explain", "kernel"],
    ):
        run = run_preflight(*args, env=env)
        assert run.returncode in (0, 1, 2, 3), (args, run.stderr)
        assert not marker.exists(), f"{args}: the plugin's code ran"
        assert "evil" not in run.stdout.lower() or args[0] == "explain"
    # A plugin cannot take over a built-in's id, even when it is allowed.
    listed = json.loads(run_preflight("list", "--format", "json", env=env).stdout)
    assert {r["id"]: r["origin"] for r in listed}["kernel"] == "built-in"
    # Control: allowed, the same plugin is imported (so the checks above can fail).
    run = run_preflight("check", "evil", "-f", "json", env=env)
    assert run.returncode == 0 and marker.exists()


def test_kamailio_include_cycles_fifos_and_link_loops_do_not_hang(snapshot: Snapshot) -> None:
    debian_host(snapshot)
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        'listen=udp:192.0.2.1:5060\ninclude_file "a.cfg"\ninclude_file "kamailio.cfg"\n'
        'import_file "fifo.cfg"\ninclude_file "loop.cfg"\ninclude_file "/etc/kamailio/dir"\n',
    )
    snapshot.write("etc/kamailio/a.cfg", 'listen=tcp:192.0.2.1:5060\ninclude_file "b.cfg"\n')
    snapshot.write("etc/kamailio/b.cfg", 'include_file "a.cfg"\n#!include_file "kamailio.cfg"\n')
    os.mkfifo(snapshot.root / "etc/kamailio/fifo.cfg")
    snapshot.symlink("etc/kamailio/loop.cfg", "loop.cfg")
    snapshot.mkdir("etc/kamailio/dir")
    started = time.monotonic()
    run = run_preflight("check", "kamailio", "--root", str(snapshot), "-f", "json", timeout=30)
    assert time.monotonic() - started < 10
    report = report_of(run)
    (kamailio,) = report["checks"]
    text = json.dumps(kamailio)
    assert "cycle" in text, text
    assert "udp:192.0.2.1:5060" in text and "tcp:192.0.2.1:5060" in text
