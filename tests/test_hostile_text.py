"""Issue 18 items 15 and 16: text from the host is data in every format, and a value that is put
into a suggested command is quoted, or the command is not suggested.

The attacks are real files in a snapshot: a hostname and os-release with terminal escape
sequences, file names with rich markup, escapes and bytes that are not UTF-8, and a unit named
like a shell injection; the report is printed and written with -o in every format."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.cli import check_of, preflight_argv, preflight_env, report_of, run_preflight
from support.plugins import plugin_site
from support.snapshot import Snapshot

from preflight.reporters import FORMATS

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m"
# A file name a package or an unprivileged user could leave behind (a name holds no "/", so
# the closing markup tag `[/x]` comes with the hostname).
HOSTILE_NAME = b"pkg[bold]\xff\xfe" + ESCAPES.encode() + b"\r"

LISTER = """
    from preflight.check import Check, Finding, Status
    from preflight.text import plausible_name, shell_arg

    class OddCheck(Check):
        title = "Reports the files it finds"

        def run(self, ctx):
            found = []
            for name in sorted(ctx.host.listdir("etc/odd")):
                steps = [f"rm -- /etc/odd/{shell_arg(name)}"] if plausible_name(name) else []
                message = f"stray file {name} on {ctx.host.hostname}"
                found.append(Finding("odd.stray", Status.FAIL, message, steps))
            return found
"""


@pytest.fixture
def hostile_snapshot(snapshot: Snapshot, tmp_path: Path) -> tuple[Snapshot, dict[str, str]]:
    snapshot.write("etc/hostname", f"web-1{ESCAPES}[/x]\n")
    snapshot.write(
        "etc/os-release",
        f'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian {ESCAPES} [/red] 12"\n',
    )
    folder = snapshot.root / "etc" / "odd"
    folder.mkdir(parents=True)
    with open(os.path.join(os.fsencode(folder), HOSTILE_NAME), "wb"):
        pass
    (folder / "plain.conf").write_text("")
    env = plugin_site(tmp_path / "site", "odd", textwrap.dedent(LISTER))
    return snapshot, env


def _run_bytes(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        preflight_argv(*args), env=preflight_env(env), capture_output=True, timeout=60
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_host_text_is_data_in_every_format_on_stdout_and_in_files(
    hostile_snapshot: tuple[Snapshot, dict[str, str]], tmp_path: Path, fmt: str
) -> None:
    snapshot, env = hostile_snapshot
    out = tmp_path / f"report.{fmt}"
    base = ["check", "odd", "--root", str(snapshot.root), "--format", fmt]
    to_stdout = _run_bytes(base, env)
    to_file = _run_bytes([*base, "-o", str(out)], env)
    for run in (to_stdout, to_file):
        assert run.returncode == 2, (fmt, run.stdout, run.stderr)
        assert b"Traceback" not in run.stderr and b"internal" not in run.stderr
    for written in (out.read_bytes(), to_stdout.stdout):
        _assert_data_only(fmt, written)


def _assert_data_only(fmt: str, written: bytes) -> None:
    text = written.decode("utf-8")  # always valid UTF-8
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    if fmt == "human":
        # The markup is printed as the text it is, the escapes as visible codes.
        assert "pkg[bold]" in text and "\\x1b]0;owned" in text and "[/x]" in text
        assert "web-1\\x1b" in text and "[/red]" in text
    elif fmt == "junit":
        suite = ET.fromstring(written)  # well-formed XML
        assert suite.get("failures") == "1"
        assert "pkg[bold]" in (suite.find("testcase/failure").text or "")
    elif fmt in ("json", "facter"):
        data = json.loads(text)
        if fmt == "json":
            assert "\x1b" not in json.dumps(data, ensure_ascii=False)
    elif fmt == "nagios":
        assert text.startswith("PREFLIGHT CRITICAL - ")


def test_human_report_on_a_terminal_carries_no_raw_escapes(
    hostile_snapshot: tuple[Snapshot, dict[str, str]],
) -> None:
    """With colour on (a terminal), preflight's own codes are the only escapes printed."""
    import pty

    snapshot, env = hostile_snapshot
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        preflight_argv("check", "odd", "--root", str(snapshot.root)),
        env={**preflight_env(env), "TERM": "xterm"} | {"NO_COLOR": ""},
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(main)
    screen = b"".join(chunks)
    assert proc.returncode == 2, screen
    assert b"\x1b]" not in screen and b"\x1b[2J" not in screen and b"\x07" not in screen
    assert b"pkg[bold]" in screen


def test_list_and_explain_show_plugin_text_as_data(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from preflight.check import Check

        class OddCheck(Check):
            title = "Odd {ESCAPES} [/x]"
            description = "clears the screen: {ESCAPES}"

            def run(self, ctx):
                return []
        """
    )
    env = plugin_site(tmp_path / "site", "odd", code)
    for args in (["list"], ["explain", "odd"]):
        run = run_preflight(*args, env=env)
        assert run.returncode == 0, run.stderr
        assert "\x1b" not in run.stdout and "\\x1b]0;owned" in run.stdout and "[/x]" in run.stdout


def test_a_stray_file_named_like_markup_is_one_fail_with_a_quoted_command(
    hostile_snapshot: tuple[Snapshot, dict[str, str]],
) -> None:
    snapshot, env = hostile_snapshot
    run = run_preflight("check", "odd", "--root", str(snapshot.root), "-f", "json", env=env)
    report = report_of(run)
    steps = [step for f in check_of(report, "odd")["findings"] for step in f["remediation"]]
    # The plausible name gets a command, the hostile one none.
    assert steps == ["rm -- /etc/odd/plain.conf"]


# ------------------------------------------------------------------ 16: suggested commands
INJECTION = "x$(touch${IFS}$HOME.PWN);reboot"  # a file name holds no "/"
INJECTION_WITH_SLASH = "x$(touch${IFS}/root/PWN);reboot"


def test_tun_restarts_enabled_instances_by_quoted_name_and_never_a_hostile_one(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    snapshot.write("usr/sbin/openvpn", "", mode=0o755)
    snapshot.write("dev/null", "")  # a /dev without net/tun: the device is missing
    wants = "etc/systemd/system/multi-user.target.wants"
    for folder, template, name in (
        ("server", "openvpn-server@", "good"),
        ("server", "openvpn-server@", INJECTION),
        ("client", "openvpn-client@", "office~2"),
    ):
        snapshot.write(f"etc/openvpn/{folder}/{name}.conf", "dev tun\n")
        snapshot.write(f"{wants}/{template}{name}.service", "")
    human = run_preflight("check", "tun", "--root", str(snapshot.root))
    assert human.returncode == 2 and "systemctl restart" in human.stdout, human.stderr
    assert "touch" not in human.stdout and "reboot" not in human.stdout
    report = report_of(run_preflight("check", "tun", "--root", str(snapshot.root), "-f", "json"))
    steps = check_of(report, "tun")["findings"][0]["remediation"]
    assert "touch" not in json.dumps(steps)
    restart = [step for step in steps if step.startswith("systemctl restart")]
    assert restart == ["systemctl restart 'openvpn-client@office~2' openvpn-server@good"]
    # Pasted into a shell, the command names exactly those units.
    words = subprocess.run(
        ["sh", "-c", 'printf "%s\\n" ' + restart[0].removeprefix("systemctl restart ")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert words == ["openvpn-client@office~2", "openvpn-server@good"]


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("odd-plugin", True), (INJECTION_WITH_SLASH, False), ("odd plugin", False)],
)
def test_load_error_suggests_reinstalling_only_a_plausible_distribution(
    tmp_path: Path, name: str, suggested: bool
) -> None:
    from support.plugins import distribution

    site = tmp_path / "site"
    distribution(site, "odd_plugin-0.1.dist-info", name, "[preflight.checks]\nodd = odd_plugin:X\n")
    (site / "odd_plugin.py").write_text("raise ImportError('needs libodd')\n")
    run = run_preflight("check", "odd", "-f", "json", env={"PYTHONPATH": str(site)})
    odd = check_of(report_of(run, crashed_ok=True), "odd")
    assert odd["code"] == "odd.load-error" and "needs libodd" in odd["summary"]
    steps = odd["findings"][0]["remediation"]
    reinstall = [s for s in steps if "pip install" in s]
    assert "touch" not in json.dumps(steps) and steps[-1].startswith("or stop loading it")
    if suggested:
        (command,) = reinstall
        argv = shlex.split(command.removeprefix("reinstall the plugin: "))
        assert argv[1:] == ["-m", "pip", "install", "--force-reinstall", name]
    else:
        assert reinstall == []


@pytest.mark.parametrize(
    "words",
    [
        ["kamailio", "-c", "-f", "/etc/kamailio/k.cfg"],
        ["/srv/my sip/kamailio", "-A", "WITH_TLS=1; rm -rf /", "-f", "$(id).cfg"],
        ["echo", "it's", "", "a\nb", "`x`", "*"],
    ],
)
def test_a_suggested_command_line_runs_exactly_its_words(words: list[str], tmp_path: Path) -> None:
    """shell_join, which every check builds its suggested command lines with: a shell given the
    line passes exactly these words (none expanded, split or run), as shlex.join would."""
    from preflight.text import shell_join

    assert shell_join(words) == shlex.join(words)
    line = shell_join(["printf", "%s\\0", *words])
    printed = subprocess.run(["sh", "-c", line], capture_output=True, cwd=tmp_path, check=True)
    assert printed.stdout.decode().split("\0")[:-1] == words
