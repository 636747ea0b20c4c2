"""Every file in examples/ runs verbatim after the README's install, with the real programs:
cron's environment, systemd-analyze, facter, puppet apply, ansible-playbook, promtool and
node_exporter.

The README installs preflight at /opt/preflight. The tests give each example exactly that layout
without touching the machine: a private mount namespace where /opt, /etc and /var/lib are
overlays (writes land in the test's folder) and the venv under test is bind-mounted at
/opt/preflight.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.cli import REPO, SCHEMA
from support.components import require_command, require_root

EXAMPLES = REPO / "examples"
VENV = Path(sys.executable).parent.parent
INSTALLED = "/opt/preflight"
# Everything the examples (and puppet, facter, ansible) may write to.
OVERLAID = ("/opt", "/etc", "/var/lib", "/var/log", "/var/cache", "/run", "/root")


def _sandbox_script(work: Path, install: bool) -> str:
    """Shell that sets up the installed layout in a new mount namespace, then runs "$@"."""
    lines = ["set -e", "mount --make-rprivate /"]
    for folder in OVERLAID:
        name = folder.strip("/").replace("/", "_")
        up, scratch = work / "upper" / name, work / "scratch" / name
        up.mkdir(parents=True, exist_ok=True)  # a second command sees the first one's files
        scratch.mkdir(parents=True, exist_ok=True)
        lines.append(
            f"mount -t overlay overlay -o lowerdir={folder},upperdir={up},workdir={scratch} "
            f"{folder}"
        )
    if install:
        lines += [f"mkdir -p {INSTALLED}", f"mount --bind {shlex.quote(str(VENV))} {INSTALLED}"]
    lines.append('exec "$@"')
    return "\n".join(lines)


def in_sandbox(
    work: Path,
    argv: list[str],
    *,
    install: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`argv` as root on this machine as the README's install leaves it."""
    require_root()
    require_command("unshare")
    script = _sandbox_script(work, install)
    return subprocess.run(
        ["unshare", "-m", "/bin/sh", "-c", script, "sandbox", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env
        if env is not None
        else {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        cwd=cwd or work,
    )


def written(work: Path, path: str) -> Path:
    """Where a file the sandboxed command wrote under an overlaid folder landed."""
    for folder in OVERLAID:
        if path.startswith(folder + "/"):
            name = folder.strip("/").replace("/", "_")
            return work / "upper" / name / path[len(folder) + 1 :]
    raise AssertionError(f"{path} is not under an overlaid folder")


def cron_job(path: Path) -> tuple[dict[str, str], str, str]:
    """(environment, user, command) of the one job in a cron.d file, as cron reads it."""
    env: dict[str, str] = {}
    jobs = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assignment = re.match(r"([A-Z_]+)=(.*)$", line)
        if assignment:
            env[assignment.group(1)] = assignment.group(2)
            continue
        fields = line.split(None, 6)
        jobs.append((fields[5], fields[6]))
    assert len(jobs) == 1, jobs
    return env, *jobs[0]


def _report_files(work: Path) -> dict[str, Path]:
    return {
        "json": written(work, "/var/lib/preflight/report.json"),
        "prometheus": written(work, "/var/lib/prometheus/node-exporter/preflight.prom"),
        "facter": written(work, "/etc/facter/facts.d/preflight.json"),
    }


def _assert_one_verdict(files: dict[str, Path]) -> dict[str, object]:
    """The three reports exist, parse, and tell the same verdict of the same run."""
    report = json.loads(files["json"].read_text())
    jsonschema.validate(report, SCHEMA)
    fact = json.loads(files["facter"].read_text())["preflight"]
    assert fact["generated_at"] == report["generated_at"]
    assert fact["status"] == report["status"]
    metrics = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(files["prometheus"].read_text())
        for s in family.samples
    }
    assert metrics[("preflight_run_exit_code", ())] == report["exit_code"]
    for check in report["checks"]:
        key = ("preflight_check_status", (("check", check["id"]), ("status", check["status"])))
        assert metrics[key] == 1, check["id"]
    return report


def test_cron_example_runs_verbatim_with_crons_environment(tmp_path: Path) -> None:
    cron_file = EXAMPLES / "cron" / "preflight"
    env, user, command = cron_job(cron_file)
    assert user == "root"
    setup = re.search(r"^# Create the folders once: (.+)$", cron_file.read_text(), re.M)
    assert setup, "the cron example says which folders to create"
    # cron's own environment: only what the file sets plus HOME, LOGNAME and SHELL
    cron_env = {"HOME": "/root", "LOGNAME": "root", "SHELL": "/bin/sh", **env}
    argv = ["env", "-i", *(f"{k}={v}" for k, v in cron_env.items()), "/bin/sh", "-c"]
    prepared = in_sandbox(tmp_path, [*argv, f"{setup.group(1)} && {command}"])
    # a verdict, not an error; and nothing printed, so cron mails nothing
    assert prepared.returncode in (0, 1, 2, 3), prepared.stderr
    assert prepared.stdout == "" and prepared.stderr == ""
    _assert_one_verdict(_report_files(tmp_path))


def test_cron_example_mails_the_error_when_preflight_is_not_installed(tmp_path: Path) -> None:
    env, _, command = cron_job(EXAMPLES / "cron" / "preflight")
    argv = ["env", "-i", "HOME=/root", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c"]
    missing = in_sandbox(tmp_path, [*argv, command], install=False)
    assert missing.returncode == 127
    assert "/opt/preflight/bin/preflight" in missing.stderr  # cron mails this line


def _systemd_units() -> tuple[Path, Path]:
    return EXAMPLES / "systemd" / "preflight.service", EXAMPLES / "systemd" / "preflight.timer"


def test_systemd_units_verify_and_their_command_runs_verbatim(tmp_path: Path) -> None:
    analyze = require_command("systemd-analyze")
    service, timer = _systemd_units()
    verified = in_sandbox(tmp_path, [analyze, "verify", str(service), str(timer)])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    unit = service.read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", unit, re.M)
    success = {int(c) for c in re.search(r"^SuccessExitStatus=(.+)$", unit, re.M).group(1).split()}
    state_dir = re.search(r"^StateDirectory=(\S+)$", unit, re.M).group(1)
    # systemd creates StateDirectory; the other folders exist on a host with node_exporter/facter
    setup = f"mkdir -p /var/lib/{state_dir} /var/lib/prometheus/node-exporter /etc/facter/facts.d"
    ran = in_sandbox(tmp_path, ["/bin/sh", "-c", f"{setup} && exec {exec_start}"])
    assert ran.returncode == 0 or ran.returncode in success, ran.stderr
    assert ran.stdout == ""
    _assert_one_verdict(_report_files(tmp_path))


def test_systemd_verify_catches_a_missing_install(tmp_path: Path) -> None:
    """The verify above is a real check: without the README's install it fails."""
    analyze = require_command("systemd-analyze")
    service, timer = _systemd_units()
    missing = in_sandbox(tmp_path, [analyze, "verify", str(service), str(timer)], install=False)
    assert missing.returncode != 0
    assert "/opt/preflight/bin/preflight" in missing.stdout + missing.stderr


def _facter(tmp_path: Path, install: bool) -> dict[str, object]:
    facter = require_command("facter")
    ran = in_sandbox(
        tmp_path,
        [facter, "--json", "--external-dir", str(EXAMPLES / "facter"), "preflight"],
        install=install,
    )
    assert ran.returncode == 0, ran.stderr
    fact = json.loads(ran.stdout)["preflight"]
    assert isinstance(fact, dict)
    return fact


def test_facter_example_reports_the_verdict(tmp_path: Path) -> None:
    fact = _facter(tmp_path, install=True)
    assert fact["status"] in ("pass", "warn", "fail", "error", "skip")
    assert "error" not in fact
    assert set(fact["checks"]) >= {"kernel", "tun", "puppet", "kamailio"}  # type: ignore[arg-type]
    assert fact["exit_code"] in (0, 1, 2, 3)


def test_facter_example_says_when_preflight_is_missing(tmp_path: Path) -> None:
    fact = _facter(tmp_path, install=False)
    assert fact == {"status": "error", "error": "/opt/preflight/bin/preflight is not installed"}


def test_puppet_example_manifest_gates_the_deployment(tmp_path: Path) -> None:
    """`puppet apply` of examples/puppet/site.pp exactly as its comment says, with the class's
    default preflight path: on this machine the kernel check fails (its kernel comes from the
    hypervisor), so the gated package is not touched and the report is in Puppet's log."""
    require_command("puppet")
    site = (EXAMPLES / "puppet" / "site.pp").read_text()
    (apply_line,) = re.findall(r"^#\s+(puppet apply .+)$", site, re.M)
    ran = in_sandbox(
        tmp_path,
        ["/bin/sh", "-c", f"{apply_line} --detailed-exitcodes --color false"],
        cwd=REPO,
    )
    log = ran.stdout + ran.stderr
    # .ci/run installs linux-image-amd64, which this microVM never boots: the kernel check fails
    assert "returned 2 instead of one of [0]" in log, log
    assert ran.returncode in (4, 6), log
    assert "Package[kamailio]: Skipping because of failed dependencies" in log
    assert "Service[kamailio]: Skipping because of failed dependencies" in log
    assert "kernel.externally-managed" in log  # the report is in Puppet's log


def test_ansible_playbook_reports_each_hosts_verdict(tmp_path: Path) -> None:
    playbook = require_command("ansible-playbook")
    ran = in_sandbox(
        tmp_path,
        [playbook, "-i", "localhost,", "-c", "local", str(EXAMPLES / "ansible" / "preflight.yml")],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(tmp_path),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
            "ANSIBLE_NOCOLOR": "1",
        },
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert re.search(r"localhost\s*:\s*ok=3\s+changed=0\s+unreachable=0\s+failed=0", ran.stdout)
    verdict = re.search(r'"msg": "preflight (\w+) \(exit (\d)\): ([^"]*)"', ran.stdout)
    assert verdict, ran.stdout
    assert verdict.group(1) in ("pass", "warn", "fail", "error")
    if verdict.group(1) == "fail":
        assert verdict.group(2) == "2" and "kernel.externally-managed" in verdict.group(3)


def test_ansible_playbook_fails_only_on_a_usage_error(tmp_path: Path) -> None:
    playbook = require_command("ansible-playbook")
    broken = tmp_path / "preflight.yml"
    broken.write_text(
        (EXAMPLES / "ansible" / "preflight.yml")
        .read_text()
        .replace("check --format json", "check --format json --config /nonexistent.toml")
    )
    ran = in_sandbox(
        tmp_path,
        [playbook, "-i", "localhost,", "-c", "local", str(broken)],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(tmp_path),
            "ANSIBLE_NOCOLOR": "1",
        },
    )
    assert ran.returncode != 0
    assert re.search(r"failed=1", ran.stdout), ran.stdout
    assert "/nonexistent.toml" in ran.stdout


def test_prometheus_rules_pass_promtool() -> None:
    promtool = require_command("promtool")
    folder = EXAMPLES / "prometheus"
    checked = subprocess.run(
        [promtool, "check", "rules", "preflight.rules.yml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "preflight.rules.test.yml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_node_exporter_serves_the_textfile_report(tmp_path: Path) -> None:
    exporter = require_command("prometheus-node-exporter")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    report_json = tmp_path / "report.json"
    preflight = [str(VENV / "bin" / "preflight")]
    ran = subprocess.run(
        [
            *preflight,
            "check",
            "--report",
            f"json:{report_json}",
            "--report",
            f"prometheus:{textfiles / 'preflight.prom'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode in (0, 1, 2, 3), ran.stderr
    report = json.loads(report_json.read_text())
    port = _free_port()
    proc = subprocess.Popen(
        [
            exporter,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfiles}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        body = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body, "node_exporter did not answer"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    # node_exporter read the file without complaint and serves every series preflight wrote
    assert samples[("node_textfile_scrape_error", ())] == 0
    assert samples[("preflight_run_exit_code", ())] == report["exit_code"]
    for check in report["checks"]:
        for status in ("pass", "warn", "fail", "skip", "error"):
            key = ("preflight_check_status", (("check", check["id"]), ("status", status)))
            assert samples[key] == (1 if status == check["status"] else 0)


@pytest.mark.parametrize("fmt", ["json", "prometheus"])
def test_report_option_writes_each_report_of_one_run(fmt: str, tmp_path: Path) -> None:
    preflight = [str(VENV / "bin" / "preflight")]
    out = tmp_path / f"report.{fmt}"
    ran = subprocess.run(
        [*preflight, "check", "tun", "--report", f"{fmt}:{out}", "--report", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode in (0, 1, 2, 3), ran.stderr
    on_stdout = json.loads(ran.stdout)
    assert out.exists()
    if fmt == "json":
        assert json.loads(out.read_text())["generated_at"] == on_stdout["generated_at"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", "json", "--report", "human"], "at most one report goes to standard output"),
        (["--report", "yaml:/tmp/x"], "unknown format 'yaml'"),
        (["--report", "json:"], "empty PATH"),
        (["--report", "json", "-o", "/tmp/x.json"], "cannot be combined with --format/--output"),
        (["--report", "json:/nonexistent-dir/r.json"], "folder /nonexistent-dir does not exist"),
    ],
)
def test_report_option_usage_errors(args: list[str], message: str) -> None:
    ran = subprocess.run(
        [str(VENV / "bin" / "preflight"), "check", "tun", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 64
    assert ran.stdout == ""
    assert message in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
