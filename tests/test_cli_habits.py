"""The command line behaves as operators expect from other tools: mistakes are named with a
suggestion, Nagios always gets Nagios, terminals get the terminal's width and colour rules,
`explain` prints TOML that pastes into the config, and an empty --root is refused."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest
import tomllib
from support.cli import PREFLIGHT, preflight_env, run_preflight
from support.plugins import plugin_site, script, scripted
from support.snapshot import Snapshot

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line_error(run: object, *needles: str) -> None:
    assert run.returncode == 64, (run.stdout, run.stderr)  # type: ignore[attr-defined]
    lines = run.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_mistyped_command_is_named_with_a_suggestion() -> None:
    run = run_preflight("chek")
    one_line_error(run, "unknown command 'chek'", "did you mean 'check'?")
    assert run.stdout == ""


def test_a_mistyped_check_id_and_option_get_suggestions() -> None:
    one_line_error(run_preflight("check", "kernal"), "unknown check 'kernal'", "'kernel'")
    one_line_error(run_preflight("check", "--formt", "json"), "--formt", "--format")


def test_a_waiver_for_a_code_its_check_never_reports_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "preflight.toml"
    config.write_text(
        '[[waivers]]\ncode = "kernel.reboot-requried"\nreason = "maintenance window"\n'
    )
    run = run_preflight("check", "tun", "--config", str(config))
    one_line_error(
        run, str(config), "kernel.reboot-requried", "did you mean 'kernel.reboot-required'"
    )


def test_a_waiver_for_a_check_that_is_not_loaded_is_ignored_with_a_note(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    script(snapshot, "pass fine all good\n")
    config = tmp_path / "preflight.toml"
    config.write_text('[[waivers]]\ncode = "nosuch.thing"\nreason = "a removed plugin"\n')
    run = scripted("check", "scripted", "--root", str(snapshot), "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert "[[waivers]] #1 'nosuch.thing' ignored: no check 'nosuch' is loaded" in run.stderr


def test_version_short_flag() -> None:
    short, long = run_preflight("-V"), run_preflight("--version")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout and re.fullmatch(r"preflight \S+\n", short.stdout)


def test_nagios_usage_errors_speak_nagios(snapshot: Snapshot) -> None:
    for args in (
        ["check", "kernal", "-f", "nagios"],
        ["--format=nagios", "--timeout", "soon"],
        ["check", "--report", "nagios", "--root", "/nonexistent"],
    ):
        run = run_preflight(*args)
        assert run.returncode == 3, (args, run.stdout, run.stderr)
        assert run.stdout.startswith("PREFLIGHT UNKNOWN - "), run.stdout
        assert len(run.stdout.splitlines()) == 1 and ";" not in run.stdout
    # other formats keep the usage exit code
    assert run_preflight("check", "kernal", "-f", "json").returncode == 64


def test_nagios_plugin_output_has_no_semicolons(snapshot: Snapshot) -> None:
    script(snapshot, "fail broken disk sda; replace it; then re-run\n")
    run = scripted("check", "scripted", "--root", str(snapshot), "-f", "nagios")
    assert run.returncode == 2
    text, _, perfdata = run.stdout.partition("|")
    assert ";" not in text and "disk sda, replace it, then re-run" in run.stdout
    assert "fail=1;;;0" in perfdata  # perfdata keeps Nagios' own separators


def test_root_without_any_host_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a host\n")
    run = run_preflight("check", "--root", str(tmp_path))
    one_line_error(run, f"--root {tmp_path}", "no etc/os-release, no proc/, no package database")
    assert run_preflight("facts", "--root", str(tmp_path)).returncode == 64


def test_explain_prints_option_defaults_as_toml_that_the_config_accepts(tmp_path: Path) -> None:
    for check in ("kernel", "tun", "puppet", "kamailio"):
        run = run_preflight("explain", check)
        assert run.returncode == 0, run.stderr
        block = run.stdout.split(f"Options ([checks.{check}] in the config file):\n", 1)[1]
        toml_lines = [line.strip() for line in block.splitlines() if re.match(r"  \S+ = ", line)]
        assert toml_lines and any(line.startswith("required = false") for line in toml_lines)
        parsed = tomllib.loads("\n".join(toml_lines))
        doc = run_preflight("explain", check, "--format", "json").json()
        defaults = {o["name"]: "" if o["default"] is None else o["default"] for o in doc["options"]}
        assert parsed == defaults
        # pasted verbatim into a config section, the defaults are accepted
        config = tmp_path / f"{check}.toml"
        pasted = [line for line in toml_lines if '""' not in line]  # "no default" stays unset
        config.write_text(f"[checks.{check}]\n" + "\n".join(pasted) + "\n")
        listed = run_preflight("list", "--config", str(config))
        assert listed.returncode == 0, listed.stderr


def test_explain_json_lists_every_finding() -> None:
    doc = run_preflight("explain", "kernel", "--format", "json").json()
    codes = [f["code"] for f in doc["findings"]]
    assert "kernel.externally-managed" in codes and "kernel.ok" in codes
    assert {f["code"] for f in doc["engine_findings"]} >= {"kernel.timeout", "kernel.crashed"}


def test_explain_honours_no_plugins_and_the_allow_list(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    env = plugin_site(
        tmp_path / "site",
        "loud",
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "from preflight.check import Check\n"
        "class LoudCheck(Check):\n    title = 'loud'\n    def run(self, ctx):\n        return []\n",
    )
    env = preflight_env(env)
    blocked = run_preflight("explain", "loud", "--no-plugins", env=env)
    one_line_error(blocked, "'loud' is a plugin that is not enabled")
    config = tmp_path / "allow.toml"
    config.write_text('[preflight]\nplugins = ["other"]\n')
    not_allowed = run_preflight("explain", "loud", "--config", str(config), env=env)
    one_line_error(not_allowed, "'loud' is a plugin that is not enabled")
    assert not marker.exists(), "explain imported a plugin a run would not load"
    allowed = run_preflight("explain", "loud", env=env)
    assert allowed.returncode == 0 and marker.exists()


def _in_pty(args: list[str], env: dict[str, str], stdout_tty: bool = True) -> tuple[str, str]:
    """Run the CLI with stderr (and stdout, if asked) on a pseudo-terminal; (stdout, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*PREFLIGHT, *args],
        stdout=slave if stdout_tty else subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    proc.wait(timeout=60)
    os.close(master)
    return out, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def _env(**extra: str) -> dict[str, str]:
    env = preflight_env()
    for key in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS"):
        env.pop(key, None)
    env.update(extra)
    return env


def _widest(text: str) -> int:
    return max(len(ANSI.sub("", line).rstrip()) for line in text.splitlines())


def test_no_color_keeps_the_terminals_width() -> None:
    _, coloured = _in_pty(["check", "kernel", "tun"], _env(COLUMNS="160", TERM="xterm"))
    _, plain = _in_pty(["check", "kernel", "tun"], _env(COLUMNS="160", TERM="xterm", NO_COLOR="1"))
    assert ANSI.search(coloured) and not ANSI.search(plain)
    # the kernel summary is longer than 100 columns: both use the 160 the terminal has
    assert _widest(coloured) > 100 and _widest(plain) == _widest(coloured)


def test_term_dumb_and_force_color() -> None:
    _, dumb = _in_pty(["check", "tun"], _env(TERM="dumb"))
    assert "tun" in dumb and not ANSI.search(dumb)
    forced = _piped(["check", "tun"], _env(FORCE_COLOR="1"))
    assert ANSI.search(forced), "FORCE_COLOR colours a pipe"
    assert not ANSI.search(_piped(["check", "tun"], _env(FORCE_COLOR="1", NO_COLOR="1")))
    assert not ANSI.search(_piped(["check", "tun", "--no-color"], _env(FORCE_COLOR="1")))
    assert not ANSI.search(_piped(["check", "tun"], _env()))


def _piped(args: list[str], env: dict[str, str]) -> str:
    """stdout of the CLI into a pipe, with exactly `env` (no NO_COLOR added)."""
    run = subprocess.run([*PREFLIGHT, *args], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_progress_line_on_a_terminal_only_while_a_run_is_slow(snapshot: Snapshot) -> None:
    script(snapshot, "fail broken still broken\n")
    env = _env(PYTHONPATH=scripted_path(), TERM="xterm")
    args = ["check", "scripted", "--root", str(snapshot), "--wait", "2", "-f", "json"]
    started = time.monotonic()
    out, err = _in_pty(args, env, stdout_tty=False)
    assert time.monotonic() - started >= 2
    assert json.loads(out)["status"] == "fail"
    assert "preflight: running scripted; re-running what does not pass for up to 2 s" in err
    assert err.endswith("\r"), "the progress line is erased before the report"
    piped = scripted(*args)
    assert piped.stderr == "", "no progress line when stderr is not a terminal"


def scripted_path() -> str:
    from support.plugins import AUTOMATION_PLUGINS

    return str(AUTOMATION_PLUGINS)


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_does_not_import_rich(quiet: bool) -> None:
    args = ["check", "tun", *(["-q"] if quiet else [])]
    run = run_preflight(*args, env=_env(PYTHONPROFILEIMPORTTIME="1"))
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert ("rich" in imported) is not quiet
    assert (run.stdout == "") is quiet


def test_completion_is_not_offered() -> None:
    run = run_preflight("--install-completion")
    assert run.returncode == 64 and "--install-completion" in run.stderr
    assert "completion" not in run_preflight("--help").stdout
