"""Issue 18 items 8, 10, 11, 17 and 19, each attack performed for real through the CLI: checks
and plugin imports that spin, exit, hang or print; stop signals; a fake `preflight` on
PYTHONPATH; absurd --timeout values; a closed stdout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from support.cli import (
    REPO,
    check_of,
    default_stop_signals,
    preflight_argv,
    preflight_env,
    report_of,
    run_preflight,
)
from support.plugins import demo, distribution
from support.snapshot import Snapshot

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# A backtracking regex: minutes of one C call that holds the interpreter lock.
SPIN = 're.match(r"(a+)+$", "a" * 32 + "b")'

PLUGINS = {
    # name: (module source, where the hostile part is)
    "spinner": f"""
        import re
        from preflight.check import Check, Finding, Status

        class SpinnerCheck(Check):
            title = "Spins in a regex"

            def run(self, ctx):
                {SPIN}
                return [Finding("spinner.done", Status.PASS, "never reached")]
    """,
    "spawner": f"""
        import os, re, subprocess, threading
        from preflight.check import Check

        class SpawnerCheck(Check):
            title = "Starts commands, then spins"

            def run(self, ctx):
                sleep = os.environ["PF_TEST_SLEEPER"]
                # One command through Host.run (its own session), one plain child.
                threading.Thread(target=ctx.host.run, args=([sleep, "301"], 600)).start()
                subprocess.Popen([sleep, "302"])
                {SPIN}
                return []
    """,
    "waiter": """
        import os
        from preflight.check import Check

        class WaiterCheck(Check):
            title = "Waits for a command"

            def run(self, ctx):
                ctx.host.run([os.environ["PF_TEST_SLEEPER"], "303"], 600)
                return []
    """,
    "exiter": """
        import sys
        sys.exit(0)
    """,
    "hanger": """
        import time
        time.sleep(600)
    """,
    "printer": """
        print("printed at import")
        from preflight.check import Check, Finding, Status

        class PrinterCheck(Check):
            title = "Prints to stdout"

            def run(self, ctx):
                print("printed by run()")
                import sys
                sys.stdout.write("{not json\\n")
                sys.stdout.flush()
                return [Finding("printer.ok", Status.PASS, "printed twice")]
    """,
    "runexit": """
        import os
        from preflight.check import Check

        class RunexitCheck(Check):
            title = "Exits from run()"

            def run(self, ctx):
                os._exit(0)
    """,
    "sleeper": """
        import os
        from preflight.check import Check

        class SleeperCheck(Check):
            title = "Waits on a command"

            def run(self, ctx):
                ctx.host.run([os.environ["PF_TEST_SLEEPER"], "303"], 600)
                return []
    """,
}


def _install(site: Path) -> None:
    """Installs every plugin of PLUGINS into `site` as an installed distribution looks on disk
    (its package and a dist-info with the entry point; pip itself is tried in test_packaging)."""
    for name, code in PLUGINS.items():
        (site / f"pf_{name}").mkdir(parents=True)
        (site / f"pf_{name}" / "__init__.py").write_text(textwrap.dedent(code))
        entry_point = f"[preflight.checks]\n{name} = pf_{name}:{name.capitalize()}Check\n"
        distribution(site, f"pf_{name}-1.0.dist-info", f"pf-{name}", entry_point, version="1.0")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a run with the hostile plugins installed, and a unique sleep(1)."""
    base = tmp_path_factory.mktemp("hostile")
    _install(base / "site")
    sleep = base / f"pf-sleeper-{uuid.uuid4().hex}"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", sleep)
    return {"PYTHONPATH": str(base / "site"), "PF_TEST_SLEEPER": str(sleep)}


def processes_running(path: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0] == path and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def forks(marker: str, parent: int) -> list[psutil.Process]:
    """Live forks of the preflight run whose command line holds `marker` (a check's or a plugin
    import's process has its parent's command line)."""
    return [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if p.info["cmdline"] and marker in p.info["cmdline"] and p.pid != parent
        and p.info["status"] != psutil.STATUS_ZOMBIE
    ]  # fmt: skip


@pytest.fixture
def no_leftovers(hostile: dict[str, str]) -> Iterator[str]:
    """The sleeper's path; after the test, none of its processes may be alive (and none is)."""
    sleep = hostile["PF_TEST_SLEEPER"]
    yield sleep
    left = processes_running(sleep)
    for proc in left:
        proc.kill()
    assert left == [], "commands a check started outlived the run"


def timed(*args: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    proc = subprocess.run(
        preflight_argv(*args), env=preflight_env(env), capture_output=True, text=True, timeout=120
    )
    return time.monotonic() - started, proc


# ------------------------------------------------------------------ 8: the timeout holds
def test_a_check_spinning_in_a_regex_is_killed_at_its_timeout_and_others_are_not_harmed(
    snapshot: Snapshot, hostile: dict[str, str]
) -> None:
    args = [*demo(snapshot, demo="pass"), "kernel", "spinner", "--timeout", "2", "-f", "json"]
    seconds, proc = timed(*args, env=hostile)
    assert seconds < 6, f"the run took {seconds:.1f} s with --timeout 2"
    report = json.loads(proc.stdout)
    assert proc.returncode == 3, proc.stderr
    spinner = check_of(report, "spinner")
    assert spinner["code"] == "spinner.timeout" and "2 s timeout" in spinner["summary"]
    # The others ran alongside and finished: no false timeouts.
    assert check_of(report, "demo")["status"] == "pass"
    assert check_of(report, "kernel")["code"] != "kernel.timeout"


def test_commands_of_a_check_killed_at_its_timeout_die_with_it(
    hostile: dict[str, str], no_leftovers: str
) -> None:
    seconds, proc = timed("check", "spawner", "--timeout", "2", "-f", "json", env=hostile)
    assert seconds < 6
    assert check_of(json.loads(proc.stdout), "spawner")["code"] == "spawner.timeout"
    time.sleep(0.3)
    # no_leftovers: neither the Host.run command (own session) nor the plain child survives.


def test_a_command_a_check_started_dies_with_a_run_killed_with_sigkill(
    hostile: dict[str, str], no_leftovers: str
) -> None:
    """kill -9 of the run (cron's or Puppet's timeout) can clean nothing up: the check's
    process dies with the run, and the command it waits for (started through Host.run, in a
    session of its own) with the check, long before either's 60 s deadline."""
    proc = subprocess.Popen(
        preflight_argv("check", "waiter", "--timeout", "60", "-f", "json"),
        env=preflight_env(hostile),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not processes_running(no_leftovers):
            assert time.monotonic() < deadline and proc.poll() is None, "no command started"
            time.sleep(0.05)
        checks = psutil.Process(proc.pid).children()
        (command,) = processes_running(no_leftovers)
    finally:
        proc.kill()
        proc.wait()
    _gone, alive = psutil.wait_procs([*checks, command], timeout=5)
    assert alive == [], f"outlived the killed run: {alive}"


def test_a_check_that_exits_from_run_is_an_error_not_a_success(
    snapshot: Snapshot, hostile: dict[str, str]
) -> None:
    seconds, proc = timed(*demo(snapshot, demo="pass"), "runexit", "-f", "json", env=hostile)
    assert proc.returncode == 3
    runexit = check_of(json.loads(proc.stdout), "runexit")
    assert runexit["code"] == "runexit.crashed" and "without a result" in runexit["summary"]


# ------------------------------------------------------------------ 10: plugins
def test_a_plugin_exiting_at_import_is_an_error_never_a_silent_success(
    snapshot: Snapshot, hostile: dict[str, str]
) -> None:
    for fmt in ("json", "human", "nagios"):
        _, proc = timed(*demo(snapshot, demo="pass"), "exiter", "-f", fmt, env=hostile)
        assert proc.returncode == 3, (fmt, proc.stdout, proc.stderr)
        assert "exiter" in proc.stdout and "SystemExit" in proc.stdout
    report = json.loads(timed("check", "exiter", "-f", "json", env=hostile)[1].stdout)
    assert check_of(report, "exiter")["code"] == "exiter.load-error"
    # (--timeout: the hanging plugin next to it would hold `list` for the default 10 s)
    listed = run_preflight("list", "--timeout", "1", env=hostile)
    assert listed.returncode == 0 and "failed to load" in listed.stdout
    assert "kernel" in listed.stdout  # the rest of the list is there


def test_a_plugin_hanging_at_import_hangs_neither_check_nor_list(
    snapshot: Snapshot, hostile: dict[str, str]
) -> None:
    args = [*demo(snapshot, demo="pass"), "hanger", "--timeout", "2", "-f", "json"]
    seconds, proc = timed(*args, env=hostile)
    assert seconds < 6 and proc.returncode == 3
    report = json.loads(proc.stdout)
    hanger = check_of(report, "hanger")
    assert (
        hanger["code"] == "hanger.load-error" and "did not import within 2 s" in hanger["summary"]
    )
    assert check_of(report, "demo")["status"] == "pass"
    seconds, listed = timed("list", "--timeout", "2", "--format", "json", env=hostile)
    assert seconds < 6 and listed.returncode == 0
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert "did not import" in rows["hanger"]["error"] and "error" not in rows["kernel"]


def test_a_plugin_printing_to_stdout_does_not_corrupt_the_report(
    snapshot: Snapshot, hostile: dict[str, str]
) -> None:
    _, proc = timed(*demo(snapshot, demo="warn"), "printer", "-f", "json", env=hostile)
    report = json.loads(proc.stdout)  # one JSON document, nothing else
    assert proc.returncode == 1
    assert check_of(report, "printer")["status"] == "pass"
    assert "printed at import" in proc.stderr and "printed by run()" in proc.stderr
    _, listed = timed("list", "--timeout", "1", "--format", "json", env=hostile)
    assert {row["id"] for row in json.loads(listed.stdout)} >= {"printer", "kernel"}


# ------------------------------------------------------------------ 11: stop signals
def sleeper_run(
    out: Path, hostile: dict[str, str], sleeper: str, preexec: Callable[[], None]
) -> subprocess.Popen[str]:
    """`check sleeper -o OUT` started with `preexec` (its signal dispositions), returned once
    the check's command sleeps."""
    proc = subprocess.Popen(
        preflight_argv("check", "sleeper", "--timeout", "60", "-f", "json", "-o", str(out)),
        env=preflight_env(hostile),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,  # noqa: PLW1509 - before exec, signals only
    )
    deadline = time.monotonic() + 20
    while not processes_running(sleeper):
        assert time.monotonic() < deadline and proc.poll() is None, "the command never started"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_stop_signal_kills_started_commands_and_writes_no_report(
    tmp_path: Path, hostile: dict[str, str], no_leftovers: str, signum: int, code: int
) -> None:
    out = tmp_path / "report.json"
    out.write_text("previous report\n")
    proc = sleeper_run(out, hostile, no_leftovers, default_stop_signals)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == code
    lines = stderr.splitlines()
    assert len(lines) == 1 and signal.Signals(signum).name in lines[0], stderr
    assert stdout == ""
    assert out.read_text() == "previous report\n"  # never a partial or a new report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    time.sleep(0.3)
    assert forks(str(out), proc.pid) == [], "the check's process outlived the run"


def test_a_signal_the_caller_ignores_stays_ignored(
    tmp_path: Path, hostile: dict[str, str], no_leftovers: str
) -> None:
    """Under `nohup` (SIGHUP ignored) a hang-up does not end the run; a SIGTERM still does."""
    out = tmp_path / "report.json"

    def nohup() -> None:
        default_stop_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = sleeper_run(out, hostile, no_leftovers, nohup)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert proc.poll() is None, "a SIGHUP under nohup ended the run"
    proc.terminate()
    _stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 143 and "interrupted by SIGTERM" in stderr


def test_a_stop_signal_during_a_human_run_prints_nothing(
    hostile: dict[str, str], no_leftovers: str
) -> None:
    proc = subprocess.Popen(
        preflight_argv("check", "sleeper", "kernel", "--timeout", "60"),
        env=preflight_env(hostile),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not processes_running(no_leftovers):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.terminate()
    stdout, stderr = proc.communicate(timeout=10)
    assert (proc.returncode, stdout) == (143, "")
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr


# ------------------------------------------------------------------ 17: built-ins are our own
@pytest.mark.parametrize("fake_name", ["preflight", "host-preflight"])
def test_a_fake_preflight_distribution_on_pythonpath_cannot_replace_the_builtins(
    tmp_path: Path, snapshot: Snapshot, fake_name: str
) -> None:
    snapshot.write("etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
    site = tmp_path / "site"
    marker = tmp_path / "hijacked"
    hijack = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    # A distribution calling itself preflight, whose entry points name its own modules ...
    distribution(
        site,
        f"{fake_name.replace('-', '_')}-99.0.dist-info",
        fake_name,
        "[preflight.checks]\nkernel = fake_kernel:Check\nextra = fake_kernel:Check\n",
        version="99.0",
    )
    (site / "fake_kernel.py").write_text(hijack + "from preflight.check import Check\n")
    # ... and a preflight_checks package that shadows the real one on sys.path.
    (site / "preflight_checks" / "kernel").mkdir(parents=True)
    (site / "preflight_checks" / "__init__.py").write_text(hijack)
    (site / "preflight_checks" / "kernel" / "__init__.py").write_text(hijack)
    env = {"PYTHONPATH": str(site)}
    for args in (
        ["check", "kernel", "--no-plugins", "--root", str(snapshot), "-f", "json"],
        ["check", "--root", str(snapshot), "-f", "json"],
        ["list", "--format", "json"],
        ["explain", "kernel"],
    ):
        run = run_preflight(*args, env=env)
        assert not marker.exists(), f"{args}: the fake distribution's code ran"
        assert run.returncode in (0, 1, 2), (args, run.stdout, run.stderr)
        if args[0] == "check":
            kernel = check_of(report_of(run), "kernel")
            assert kernel["title"] == "Kernel drift" and kernel["status"] != "error"
    listed = json.loads(run_preflight("list", "--format", "json", env=env).stdout)
    origins = {row["id"]: row["origin"] for row in listed}
    assert origins["kernel"] == "built-in" and "extra" not in origins


def test_builtin_table_is_the_entry_points_of_pyproject() -> None:
    from preflight import registry

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["preflight.checks"] == registry.BUILTIN_CHECKS


# ------------------------------------------------------------------ 19: flags and stdout
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "0", "-1"])
@pytest.mark.parametrize("flag", ["--timeout", "--wait"])
def test_absurd_seconds_are_a_usage_error_naming_the_flag(flag: str, value: str) -> None:
    if flag == "--wait" and value == "0":
        return  # --wait 0 is the default: no waiting
    run = run_preflight("check", "kernel", f"{flag}={value}")
    assert run.returncode == 64, (flag, value, run.stdout)
    assert run.stderr.count("\n") == 1 and flag in run.stderr and run.stdout == ""


def _with_stdout(stdout: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        preflight_argv(*args),
        env=preflight_env(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def test_a_reader_that_went_away_keeps_the_verdicts_exit_code(snapshot: Snapshot) -> None:
    args = [*demo(snapshot, demo="fail"), "-f", "json"]
    expected = run_preflight(*args).returncode
    assert expected == 2
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -c0`: the reader is gone before the report is written
    try:
        proc = _with_stdout(write_end, *args)
    finally:
        os.close(write_end)
    assert proc.returncode == expected
    assert proc.stderr.count("\n") == 1 and "stdout" in proc.stderr, proc.stderr


def test_a_closed_stdout_keeps_the_verdicts_exit_code(snapshot: Snapshot) -> None:
    args = [*demo(snapshot, demo="warn"), "-f", "json"]
    proc = subprocess.run(
        [*preflight_argv(*args)],
        env=preflight_env(),
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(1),  # noqa: PLW1509 - `preflight >&-`
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "stdout" in proc.stderr, proc.stderr


def test_a_stop_signal_while_a_plugin_hangs_at_import_ends_list_and_its_children(
    hostile: dict[str, str],
) -> None:
    marker = f"--timeout={30 + uuid.uuid4().int % 1000}"  # a command line no other run has
    argv = preflight_argv("list", marker)
    proc = subprocess.Popen(
        argv,
        env=preflight_env(hostile),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_stop_signals,  # noqa: PLW1509 - before exec, signals only
    )

    def forked() -> list[psutil.Process]:
        return forks(marker, proc.pid)

    deadline = time.monotonic() + 20
    while len(forked()) < 1:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # the quick plugins have answered; the hanging one still sleeps
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - started < 3
    assert proc.returncode == 130 and stdout == b""
    # (the printing plugin's own line may come first: it went to stderr, not into stdout)
    assert stderr.decode().splitlines()[-1].startswith("preflight: error: interrupted by SIGINT")
    assert b"Traceback" not in stderr
    time.sleep(0.2)
    assert forked() == [], "a plugin import outlived the interrupted run"
