"""The engine through the real CLI: exit codes, errors, plugins, config, schema, --root."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import jsonschema
import pytest
from hostdata import DEBIAN7_OS_RELEASE
from snapshots_kernel import DEBIAN7_PROC_VERSION
from support.cli import SCHEMA, preflight_argv, preflight_env, report_of, run_preflight
from support.plugins import demo, plugin_site
from support.snapshot import Snapshot


def run_json(*args: str, **kw: object) -> tuple[int, dict]:
    """Exit code and report of a JSON run; a check may crash (some tests make one)."""
    run = run_preflight(*args, "--format", "json", **kw)  # type: ignore[arg-type]
    return run.returncode, report_of(run, crashed_ok=True)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("fail", "error", 2),
        ("error", "warn", 3),
        ("warn", "pass", 1),
        ("pass", "skip", 0),
        ("skip", "skip", 0),
        ("fail", "warn", 2),
        ("error", "pass", 3),
    ],
)
def test_exit_code_precedence_fail_error_warn_pass(
    snapshot: Snapshot, a: str, b: str, expected: int
) -> None:
    code, report = run_json(*demo(snapshot, demo=a, demo_b=b))
    assert code == expected
    assert [c["status"] for c in report["checks"]] == [a, b]
    worst = next(s for s in ("fail", "error", "warn", "pass", "skip") if s in (a, b))
    assert report["status"] == worst
    assert report["counts"][a] >= 1 and report["counts"][b] >= 1


def test_fail_on_fail_lets_warnings_pass_but_not_failures(snapshot: Snapshot) -> None:
    args = demo(snapshot, demo="warn", demo_b="pass")
    assert run_preflight(*args, "--fail-on", "fail").returncode == 0
    assert run_preflight(*args).returncode == 1
    snapshot.write("etc/preflight-demo/demo-b", "fail")
    assert run_preflight(*args, "--fail-on", "fail").returncode == 2


def test_config_fail_on_is_overridden_by_the_flag(snapshot: Snapshot, tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('[preflight]\nfail_on = "fail"\n')
    args = demo(snapshot, demo="warn")
    assert run_preflight(*args, "--config", str(cfg)).returncode == 0
    assert run_preflight(*args, "--config", str(cfg), "--fail-on", "warn").returncode == 1


def test_crashing_check_is_an_error_result_and_others_still_run(snapshot: Snapshot) -> None:
    run = run_preflight(*demo(snapshot, demo="raise", demo_b="pass"))
    assert run.returncode == 3
    assert "Traceback" not in run.stdout + run.stderr
    assert "the check crashed: RuntimeError: demo check asked to crash" in run.stdout
    assert "PASS" in run.stdout  # demo-b still ran
    debug = run_preflight(*demo(snapshot, demo="raise"), "--debug")
    assert "Traceback" in debug.stderr and "demo check asked to crash" in debug.stderr


def test_hanging_check_times_out_without_holding_up_the_run(snapshot: Snapshot) -> None:
    started = time.monotonic()
    code, report = run_json(*demo(snapshot, demo="hang", demo_b="pass"), "--timeout", "1")
    elapsed = time.monotonic() - started
    assert code == 3
    hung, other = report["checks"]
    assert hung["status"] == "error" and hung["code"] == "demo.timeout"
    assert "1 s timeout" in hung["summary"]
    assert other["status"] == "pass"
    assert elapsed < 15, "the run must end soon after the timeout, not when the check ends"


def test_unknown_check_id_exits_64_with_one_line() -> None:
    run = run_preflight("check", "nosuch")
    assert run.returncode == 64
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and "unknown check 'nosuch'" in run.stderr
    explain = run_preflight("explain", "nosuch")
    assert explain.returncode == 64 and "nosuch" in explain.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "xml"], "--format"),
        (["--bogus"], "--bogus"),
        (["--timeout", "soon"], "--timeout"),
        (["--root", "/nonexistent/dir"], "--root"),
        (["--output", "/nonexistent/dir/report.json"], "/nonexistent/dir"),
    ],
)
def test_usage_errors_exit_64_not_2(args: list[str], needle: str) -> None:
    run = run_preflight("check", *args)
    assert run.returncode == 64, run.stderr
    assert needle in run.stderr and run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[preflight]\nfail_on = 'sometimes'\n", "fail_on"),
        ("[preflight]\ncolour = true\n", "'colour'"),
        ("[preflight\n", "invalid TOML"),
        ("[preflight]\nchecks = 'kernel'\n", "[preflight] checks"),
        ("[preflight]\nchecks = ['nosuch']\n", "nosuch"),
        ("[checks.demo]\nhang_seconds = 'long'\n", "[checks.demo] hang_seconds"),
        ("[checks.demo]\nrequired = 'yes'\n", "[checks.demo] required"),
        ("[checks.demo]\nprobe = true\n", "'probe'"),
        ("[[waivers]]\ncode = 'demo.state'\n", "reason"),
        ("[[waivers]]\ncode = 'demo.state'\nreason = 'x'\nuntil = 'soon'\n", "until"),
    ],
)
def test_invalid_config_exits_64_naming_file_and_key(
    snapshot: Snapshot, tmp_path: Path, body: str, needle: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    run = run_preflight(*demo(snapshot, demo="pass"), "--config", str(cfg))
    assert run.returncode == 64, run.stdout
    assert str(cfg) in run.stderr and needle in run.stderr
    assert run.stderr.count("\n") == 1 and run.stdout == ""


def test_missing_config_file_exits_64(tmp_path: Path) -> None:
    run = run_preflight("check", "--config", str(tmp_path / "none.toml"))
    assert run.returncode == 64 and "none.toml" in run.stderr and "cannot read" in run.stderr


def test_config_from_environment_and_section_for_unloaded_check(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text("[checks.notinstalled]\nrequired = true\n[checks.demo]\nhang_seconds = 0.1\n")
    run = run_preflight(
        *demo(snapshot, demo="hang"), "--timeout", "5", env={"PREFLIGHT_CONFIG": str(cfg)}
    )
    assert run.returncode == 0, run.stderr  # hang_seconds from the config reached the check
    assert "[checks.notinstalled] ignored" in run.stderr and run.stderr.count("\n") == 1


def test_plugin_is_listed_run_and_excluded_by_no_plugins(snapshot: Snapshot) -> None:
    listed = json.loads(run_preflight("list", "--format", "json").stdout)
    by_id = {row["id"]: row for row in listed}
    assert by_id["demo"]["origin"] == "preflight-demo-plugin"
    assert by_id["demo"]["title"] == "Demo plugin check"
    assert {"kernel", "tun", "puppet", "kamailio"} <= set(by_id)
    assert all(by_id[c]["origin"] == "built-in" for c in ("kernel", "tun", "puppet", "kamailio"))
    code, report = run_json(*demo(snapshot, demo="fail"))
    assert code == 2 and report["checks"][0]["id"] == "demo"
    no_plugins = json.loads(run_preflight("list", "--format", "json", "--no-plugins").stdout)
    assert "demo" not in {row["id"] for row in no_plugins}
    run = run_preflight(*demo(snapshot, demo="fail"), "--no-plugins")
    assert run.returncode == 64 and "not enabled" in run.stderr


def test_plugin_allow_list_in_config(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('[preflight]\nplugins = ["demo-b"]\n')
    listed = json.loads(run_preflight("list", "--format", "json", "--config", str(cfg)).stdout)
    ids = {row["id"] for row in listed}
    assert "demo-b" in ids and "demo" not in ids and "kernel" in ids


def _plugin_site(tmp_path: Path, code: str) -> dict[str, str]:
    """The third-party check `odd` (distribution odd-plugin) running `code`."""
    return plugin_site(tmp_path / "site", "odd", textwrap.dedent(code))


def test_plugin_that_fails_to_import_is_an_error_result(snapshot: Snapshot, tmp_path: Path) -> None:
    env = _plugin_site(tmp_path, "raise ImportError('needs libfoo')\n")
    listed = run_preflight("list", env=env)
    assert listed.returncode == 0 and "odd" in listed.stdout and "needs libfoo" in listed.stdout
    code, report = run_json(*demo(snapshot, demo="pass"), "odd", env=env)
    assert code == 3
    broken = report["checks"][1]
    assert broken["status"] == "error" and "needs libfoo" in broken["summary"]
    assert report["checks"][0]["status"] == "pass"


PLUGIN_RETURNING = """
    from preflight.check import Check
    from preflight.model import Finding

    class OddCheck(Check):
        title = "Odd"

        def run(self, ctx):
            return [Finding("odd.thing", {status!r}, "an odd finding", ["fix it"])]
"""


def test_plugin_status_as_plain_string_is_accepted(snapshot: Snapshot, tmp_path: Path) -> None:
    env = _plugin_site(tmp_path, PLUGIN_RETURNING.format(status="warn"))
    snapshot.mkdir("etc")  # a host, if an almost empty one (an empty --root is refused)
    for fmt in ("json", "human", "nagios", "prometheus", "junit", "facter"):
        run = run_preflight("check", "odd", "--root", str(snapshot), "--format", fmt, env=env)
        assert run.returncode == 1, (fmt, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr


def test_plugin_finding_with_invalid_status_is_an_error_not_a_crash(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    env = _plugin_site(tmp_path, PLUGIN_RETURNING.format(status="bogus"))
    code, report = run_json(*demo(snapshot, demo="warn"), "odd", env=env)
    assert code == 3
    odd = report["checks"][1]
    assert odd["status"] == "error" and "no valid status: 'bogus'" in odd["summary"]
    assert report["checks"][0]["status"] == "warn"


def test_engine_failure_still_gives_one_valid_report() -> None:
    import time as _time

    from preflight import session
    from preflight.reporters import render

    report = session.failure_report("/", "warn", KeyError("boom"), _time.perf_counter())
    data = json.loads(render("json", report))
    jsonschema.validate(data, SCHEMA)
    assert data["exit_code"] == 3 and data["status"] == "error"
    assert "preflight itself failed: KeyError" in data["checks"][0]["summary"]


def test_json_report_is_one_valid_document_for_mixed_results(snapshot: Snapshot) -> None:
    code, report = run_json(*demo(snapshot, demo="raise", demo_b="warn"))
    assert code == 3
    assert report["schema_version"] == 1
    assert report["counts"] == {"pass": 0, "warn": 1, "fail": 0, "skip": 0, "error": 1, "waived": 0}
    finding = report["checks"][1]["findings"][0]
    assert finding["code"] == "demo-b.state" and finding["remediation"]


def test_default_command_is_check(snapshot: Snapshot) -> None:
    args = demo(snapshot, demo="warn")[1:]  # without the word "check"
    run = run_preflight(*args, "--format", "json")
    assert run.returncode == 1 and run.json()["checks"][0]["status"] == "warn"


def test_quiet_prints_nothing_and_keeps_the_exit_code(snapshot: Snapshot) -> None:
    run = run_preflight(*demo(snapshot, demo="fail"), "--quiet")
    assert run.returncode == 2 and run.stdout == ""


def test_human_report_has_table_steps_and_tally_without_colour(snapshot: Snapshot) -> None:
    run = run_preflight(*demo(snapshot, demo="fail", demo_b="pass"))
    assert "\x1b[" not in run.stdout
    lines = run.stdout.splitlines()
    assert any(line.startswith("demo ") and "FAIL" in line for line in lines)
    assert "  1. echo pass > /etc/preflight-demo/demo" in run.stdout
    assert lines[-1].startswith("FAIL: 1 passed") and lines[-1].endswith("exit code 2")
    assert all(line == line.rstrip() for line in lines), "no trailing blanks"


def test_version_and_explain() -> None:
    from preflight import __version__

    run = run_preflight("--version")
    assert run.returncode == 0 and run.stdout == f"preflight {__version__}\n"
    explain = run_preflight("explain", "demo")
    assert explain.returncode == 0
    assert "demo.state" in explain.stdout and "hang_seconds" in explain.stdout


def _debian_snapshot(snapshot: Snapshot) -> None:
    snapshot.write("usr/lib/os-release", DEBIAN7_OS_RELEASE)
    snapshot.symlink("etc/os-release", "../usr/lib/os-release")
    snapshot.write("proc/sys/kernel/osrelease", "3.2.0-4-amd64\n")
    snapshot.write("proc/version", DEBIAN7_PROC_VERSION + "\n")
    snapshot.write("proc/sys/kernel/hostname", "droplet-1\n")
    snapshot.write("sys/class/dmi/id/sys_vendor", "DigitalOcean\n")
    snapshot.write("sys/class/dmi/id/product_name", "Droplet\n")
    snapshot.write("proc/stat", "cpu  1 2 3 4\nbtime 1414281600\nprocesses 100\n")


def test_facts_read_os_and_kernel_from_a_snapshot(snapshot: Snapshot) -> None:
    _debian_snapshot(snapshot)
    run = run_preflight("facts", "--root", str(snapshot))
    assert run.returncode == 0, run.stderr
    facts = run.json()
    assert facts["root"] == str(snapshot)
    assert facts["hostname"] == "droplet-1"
    assert facts["os"] == {
        "id": "debian",
        "version": "7",
        "codename": "wheezy",  # Debian 7's os-release names it only in VERSION
        "pretty_name": "Debian GNU/Linux 7 (wheezy)",
    }
    assert facts["kernel"]["release"] == "3.2.0-4-amd64"
    assert facts["kernel"]["version"] == "#1 SMP Debian 3.2.54-2"
    assert facts["kernel"]["boot_time"] == 1414281600
    assert facts["provider"] == "digitalocean" and facts["virtualization"] == "kvm"
    assert facts["container"] is None  # nothing in the snapshot says so: not guessed


def test_absolute_symlink_in_snapshot_resolves_inside_it(snapshot: Snapshot) -> None:
    _debian_snapshot(snapshot)
    # On the real host /run/systemd/container does not exist; inside the snapshot it does.
    snapshot.write("run/systemd/container", "lxc\n")
    snapshot.symlink("var/run", "/run")
    snapshot.write("var/lib/dpkg/status", "")
    from preflight.host import Host

    host = Host(str(snapshot))
    assert host.read_line("var/run/systemd/container") == "lxc"
    assert host.resolve("var/run/systemd/container") == str(snapshot.root / "run/systemd/container")
    snapshot.symlink("etc/escape", "/../../../../etc/passwd")
    assert host.read_text("etc/escape") is None, "a link may not climb out of the root"
    assert run_preflight("facts", "--root", str(snapshot)).json()["container"] == "lxc"


def test_unreadable_special_files_in_a_snapshot_give_null_facts(snapshot: Snapshot) -> None:
    os.mkfifo(snapshot.root / "proc_version_fifo")
    snapshot.mkdir("proc")
    os.rename(snapshot.root / "proc_version_fifo", snapshot.root / "proc/version")
    snapshot.symlink("proc/sys/kernel/osrelease", "osrelease")  # a loop
    snapshot.mkdir("etc/os-release")  # a directory where a file should be
    started = time.monotonic()
    run = run_preflight("facts", "--root", str(snapshot), timeout=20)
    assert time.monotonic() - started < 10, "a FIFO must not block the read"
    assert run.returncode == 0, run.stderr
    facts = run.json()
    assert facts["os"] is None and facts["kernel"]["release"] is None
    assert facts["kernel"]["version"] is None


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({"run/systemd/system/": None}, "systemd"),  # sd_booted(): systemd is pid 1
        ({"proc/1/comm": "init\n"}, "sysvinit"),
        ({"proc/1/comm": "process_api\n"}, "none"),  # this microVM's pid 1
        ({"sbin/init": "/lib/systemd/systemd", "lib/systemd/systemd": ""}, "systemd"),  # image
        ({}, None),  # nothing says: unknown, not guessed
    ],
)
def test_service_manager_fact(snapshot: Snapshot, layout: dict, expected: str | None) -> None:
    snapshot.mkdir("etc")  # a host, if an almost empty one (an empty --root is refused)
    for rel, content in layout.items():
        if rel.endswith("/"):
            snapshot.mkdir(rel)
        elif rel == "sbin/init":
            snapshot.symlink(rel, content)
        else:
            snapshot.write(rel, content)
    assert run_preflight("facts", "--root", str(snapshot)).json()["service_manager"] == expected


def _run_on_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdout on a pseudo-terminal, as an operator at a console does."""
    import pty
    import subprocess

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        preflight_argv(*args), stdout=follower, stderr=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(snapshot: Snapshot) -> None:
    args = demo(snapshot, demo="fail")
    env = preflight_env({"TERM": "xterm"})
    del env["NO_COLOR"]
    assert "\x1b[" in _run_on_terminal(args, env)
    assert "\x1b[" not in _run_on_terminal([*args, "--no-color"], env)
    assert "\x1b[" not in _run_on_terminal(args, {**env, "NO_COLOR": "1"})


def test_config_errors_in_sections_of_checks_not_run_are_still_errors(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text("[checks.demo-b]\nhang_secs = 1\n")
    run = run_preflight(*demo(snapshot, demo="pass"), "--config", str(cfg))
    assert run.returncode == 64 and "[checks.demo-b] unknown key 'hang_secs'" in run.stderr


# ------------------------------------------------------------ issue 18 item 18: config bounds
@pytest.mark.parametrize(
    "body",
    [
        "x = " + "[" * 100_000 + "]" * 100_000,
        "x = " + "{ a = " * 20_000 + "1" + " }" * 20_000,
    ],
    ids=["arrays", "inline-tables"],
)
@pytest.mark.parametrize("command", ["check", "facts", "list"])
def test_deeply_nested_config_is_a_usage_error_naming_the_file(
    tmp_path: Path, body: str, command: str
) -> None:
    cfg = tmp_path / "deep.toml"
    cfg.write_text(body + "\n")
    run = run_preflight(command, "--config", str(cfg))
    assert run.returncode == 64, run.stderr
    assert run.stderr.count("\n") == 1 and str(cfg) in run.stderr and "nested" in run.stderr
    assert "Recursion" not in run.stderr and run.stdout == ""


def test_config_over_the_size_limit_is_refused_not_truncated(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    from preflight.config import MAX_CONFIG_BYTES

    args = demo(snapshot, demo="warn")
    setting = '[preflight]\nfail_on = "fail"\n'
    cfg = tmp_path / "big.toml"
    # Exactly at the limit, the setting at the very end applies: a warning no longer fails.
    padding = "#" * 99 + "\n"
    fill = MAX_CONFIG_BYTES - len(setting)
    rest = fill % len(padding)
    cfg.write_text(padding * (fill // len(padding)) + ("#" * (rest - 1) + "\n")[:rest] + setting)
    assert cfg.stat().st_size == MAX_CONFIG_BYTES
    assert run_preflight(*args, "--config", str(cfg)).returncode == 0
    # One byte more: refused (exit 64, naming the file), never read up to a cut.
    cfg.write_text("#" + cfg.read_text())
    run = run_preflight(*args, "--config", str(cfg))
    assert run.returncode == 64 and str(cfg) in run.stderr and "4 MiB" in run.stderr
    assert run.stderr.count("\n") == 1 and run.stdout == ""
