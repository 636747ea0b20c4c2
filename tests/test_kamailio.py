"""The kamailio check against real Kamailio 5.6 processes on loopback high ports."""

from __future__ import annotations

import importlib.util
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostdata import DEBIAN12_OS_RELEASE
from hostdata import KAMAILIO_CHECK_STDERR as REAL_CHECK_STDERR
from hostdata import KAMAILIO_CHECK_STDOUT as REAL_CHECK_STDOUT
from support.cli import NOBODY, codes, finding, report_of, run_preflight
from support.components import (
    require,
    require_command,
    require_nobody_can_run,
    require_root,
    world_readable_dir,
)
from support.kamailio import (
    MODULES,
    Instance,
    check_kamailio,
    free_port,
    judged,
    new_instance,
    preflight_config,
    require_kamailio,
    restart_step_of,
    run_step,
)
from support.snapshot import Snapshot

from preflight.reporters import FORMATS
from preflight_checks.kamailio.config import mask_secrets, parse_check_output

SECRET_URL = "mysql://user:secret@db/kamailio"

# sd_booted(): the remediation must name the commands that work on the machine it runs on.
SYSTEMD_RUNS = os.path.isdir("/run/systemd/system")


check = check_kamailio


@pytest.fixture(scope="session")
def shared() -> Iterator[Instance]:
    """One running instance for the tests that only read it."""
    require_kamailio()
    with world_readable_dir("pf-kam-shared-") as folder:
        instance = new_instance(folder, head=f'#!define DBURL "{SECRET_URL}"')
        try:
            instance.start()
            yield instance
        finally:
            instance.stop()


# ------------------------------------------------------------------------ a running instance
def test_all_listening_is_ok(shared: Instance, tmp_path: Path) -> None:
    code, result = check("--config", str(preflight_config(tmp_path, shared.config)))
    assert code == 0, result
    assert result["status"] == "pass" and result["code"] == "kamailio.ok"
    details = result["details"]
    assert details["pid"] == shared.pid
    assert details["resolved_by"] == "kamailio -c"
    wanted = {
        f"udp:127.0.0.1:{shared.sip_port}",
        f"tcp:127.0.0.1:{shared.sip_port}",
        f"tcp:127.0.0.1:{shared.ws_port}",
    }
    assert set(details["expected"]) == wanted
    assert set(details["actual"]) == wanted


def test_expected_socket_missing(shared: Instance, tmp_path: Path) -> None:
    extra = free_port()
    config = preflight_config(
        tmp_path,
        shared.config,
        expect=[f"tcp:127.0.0.1:{shared.ws_port}", f"udp:127.0.0.1:{extra}"],
    )
    code, result = check("--config", str(config))
    assert code == 2
    missing = [f for f in result["findings"] if f["code"] == "kamailio.listener-missing"]
    assert len(missing) == 1
    assert f"udp:127.0.0.1:{extra}" in missing[0]["message"]
    # Only a config change can add the socket: the step says so before the restart.
    assert missing[0]["remediation"][0].startswith(f"add listen=udp:127.0.0.1:{extra} to ")
    assert missing[0]["remediation"][1] == restart_step_of(shared)


def test_expected_port_held_by_another_process_while_kamailio_runs(
    shared: Instance, tmp_path: Path
) -> None:
    """Kamailio runs, but an expected port is held by someone else: the finding names them."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        holder.bind(("127.0.0.1", 0))
        taken = holder.getsockname()[1]
        config = preflight_config(tmp_path, shared.config, expect=[f"udp:127.0.0.1:{taken}"])
        code, result = check("--config", str(config))
    finally:
        holder.close()
    assert code == 2, result
    assert codes(result) == ["kamailio.listener-missing"]
    missing = finding(result, "kamailio.listener-missing")
    me = Path("/proc/self/comm").read_text().strip()
    assert missing["message"] == (
        f"udp:127.0.0.1:{taken} is not held by Kamailio (pid {shared.pid}): "
        f"{me} (pid {os.getpid()}, user root (uid 0)) holds the port"
    )
    assert missing["remediation"][0] == (
        f"kill {os.getpid()}  # stops {me} (pid {os.getpid()}, user root (uid 0)); "
        "or move it to another port"
    )


def test_not_root_falls_back_to_socket_tables(shared: Instance, tmp_path: Path) -> None:
    require_nobody_can_run()
    with world_readable_dir("pf-kam-user-") as folder:
        config = preflight_config(folder, shared.config)
        code, result = check("--config", str(config), user=NOBODY)
    # Issue 19: a non-root run does not warn on every run for what it cannot see; it says so.
    assert code == 0, result
    assert codes(result) == ["kamailio.owners-unknown"]
    assert result["status"] == "pass" and "not root" in result["summary"]


@pytest.mark.parametrize(
    "fmt", [f for f in FORMATS if importlib.util.find_spec(f"preflight.reporters.{f}_format")]
)
def test_credentials_never_reported(shared: Instance, tmp_path: Path, fmt: str) -> None:
    """A password in the config shows in no format: not from the running instance's config,
    not from a broken config whose module name and error carry the URL."""
    broken = tmp_path / "broken.cfg"
    broken.write_text(
        f'#!define DBURL "{SECRET_URL}"\n'
        f"listen=udp:127.0.0.1:{free_port()}\n"
        f'loadmodule "{SECRET_URL}"\n'
        f'modparam("sl", "db_url", "{SECRET_URL}")\n'
        "request_route { drop; }\n"
    )
    for config_file in (shared.config, broken):
        folder = tmp_path / config_file.stem
        folder.mkdir()
        config = preflight_config(folder, config_file, expect=[f"udp:127.0.0.1:{free_port()}"])
        run = run_preflight("check", "kamailio", "--format", fmt, "--config", str(config))
        assert run.returncode == 2, run.stderr
        assert run.stdout.strip()
        assert "secret" not in run.stdout and "secret" not in run.stderr
        if fmt == "json" and config_file == broken:
            found = codes(report_of(run)["checks"][0])
            assert "kamailio.module-missing" in found
            assert "mysql://user:***@db/kamailio" in run.stdout


# ---------------------------------------------------------------------- instances of their own
def test_port_taken_by_another_process(own_kamailio: list[Instance], tmp_path: Path) -> None:
    instance = new_instance(tmp_path)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", instance.ws_port))
        holder.listen()
        own_kamailio.append(instance)
        assert instance.start(expect_failure=True) != 0
        code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    finally:
        holder.close()
    assert code == 2
    assert "kamailio.not-running" in codes(result)
    missing = finding(result, "kamailio.listener-missing")
    me = Path("/proc/self/comm").read_text().strip()
    assert f"tcp:127.0.0.1:{instance.ws_port}" in missing["message"]
    assert f"pid {os.getpid()}" in missing["message"] and me in missing["message"]


def test_config_edited_after_start_then_stopped(
    own_kamailio: list[Instance], tmp_path: Path, shared: Instance
) -> None:
    include = tmp_path / "routing.cfg"
    include.write_text("# routing helpers\n")
    instance = new_instance(tmp_path, body=f'include_file "{include.name}"')
    own_kamailio.append(instance)
    pid = instance.start()
    config = str(preflight_config(tmp_path, instance.config))

    code, result = check("--config", config)
    assert code == 0, result
    # Two instances run (this one and the shared one): the check judges the configured one.
    assert result["details"]["pid"] == pid
    assert f"tcp:127.0.0.1:{instance.ws_port}" in result["details"]["actual"]
    assert f"tcp:127.0.0.1:{shared.ws_port}" not in result["details"]["actual"]

    future = time.time() + 120
    os.utime(include, (future, future))
    code, result = check("--config", config)
    assert code == 1
    changed = finding(result, "kamailio.config-changed")
    assert str(include) in changed["message"] and f"pid {pid}" in changed["message"]
    assert changed["remediation"] == [restart_step_of(instance)]

    instance.stop()
    code, result = check("--config", config)
    assert code == 2
    assert codes(result) == ["kamailio.not-running"]
    steps = finding(result, "kamailio.not-running")["remediation"]
    # The service starts /etc/kamailio/kamailio.cfg, not this config: the step starts
    # Kamailio on this config itself, after checking it.
    cfg = shlex.quote(str(instance.config))
    start = f"/usr/sbin/kamailio -c -f {cfg} && /usr/sbin/kamailio -f {cfg}"
    assert not any("service kamailio" in step or "systemctl" in step for step in steps)
    # Only a log that exists on this host is named; with none, the step after the start is
    # the exact foreground command (its config, shell-quoted) that prints the start's errors.
    if os.path.exists("/var/log/syslog") or os.path.exists("/run/systemd/journal/socket"):
        assert steps[-1] == start
    else:
        assert not any("/var/log/syslog" in step for step in steps)
        assert steps[-2:] == [
            start,
            f"/usr/sbin/kamailio -DD -E -f {cfg}  # only if it did not start: no syslog file "
            "or journal here, so this prints its errors (Ctrl-C stops it)",
        ]
        assert not any("run it in the foreground" in step for step in steps)


def test_address_added_after_start_is_not_bound(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """Without listen= Kamailio binds each address present at start; one added later is not
    served until a restart."""
    require_root()
    ip = require_command("ip")
    instance = new_instance(tmp_path)
    text = instance.config.read_text()
    for line in (
        "listen=udp:127.0.0.1:SIP_PORT",
        "listen=tcp:127.0.0.1:SIP_PORT",
        f"listen=tcp:127.0.0.1:{instance.ws_port}",
    ):
        text = text.replace(line + "\n", "")
    instance.config.write_text(text.replace("debug=2", "debug=2\nport=SIP_PORT"))
    instance.ws_port = instance.sip_port  # xhttp serves on the SIP TCP port now
    own_kamailio.append(instance)
    instance.start()
    added = "127.0.0.77/32"
    subprocess.run([ip, "addr", "add", added, "dev", "lo"], check=True)
    try:
        code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    finally:
        subprocess.run([ip, "addr", "del", added, "dev", "lo"], check=False)
    assert code == 1, result
    assert codes(result) == ["kamailio.address-not-bound"] * 2
    messages = " ".join(f["message"] for f in result["findings"])
    assert f"udp:127.0.0.77:{instance.sip_port}" in messages
    assert f"tcp:127.0.0.77:{instance.sip_port}" in messages
    assert f"udp:127.0.0.1:{instance.sip_port}" in result["details"]["actual"]


# ----------------------------------------------------------------- configurations not started
def test_tls_listen_without_enable_tls(tmp_path: Path) -> None:
    require_kamailio()
    instance = new_instance(tmp_path, head=f"listen=tls:127.0.0.1:{free_port()}")
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    tls = finding(result, "kamailio.tls-disabled")
    assert tls["status"] == "warn"
    assert f"{instance.config}:3" in tls["message"]
    assert any("enable_tls=yes" in step for step in tls["remediation"])
    # Enabling TLS would load DIR/cert.pem, which does not exist: said before the restart.
    assert any(
        step.startswith(f"before that: TLS certificate {tmp_path}/cert.pem")
        for step in tls["remediation"]
    )
    assert "kamailio.config-invalid" not in codes(result)


def test_tls_cfg_names_missing_certificate(tmp_path: Path) -> None:
    require_kamailio()
    require("kamailio-tls-modules", os.path.exists(f"{MODULES}/tls.so"))
    (tmp_path / "present.key").write_text("not a real key\n")
    tls_cfg = tmp_path / "tls.cfg"
    tls_cfg.write_text(
        "[server:default]\nmethod = TLSv1.2+\n"
        f"private_key = {tmp_path}/present.key\n"
        f"certificate = {tmp_path}/missing-cert.pem\n"
    )
    instance = new_instance(
        tmp_path,
        head=f"enable_tls=yes\nlisten=tls:127.0.0.1:{free_port()}",
        body=f'loadmodule "tls.so"\nmodparam("tls", "config", "{tls_cfg}")',
    )
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    assert "kamailio.config-invalid" not in codes(result)  # kamailio -c passes
    missing = [f for f in result["findings"] if f["code"] == "kamailio.tls-files-missing"]
    assert len(missing) == 1
    assert f"{tmp_path}/missing-cert.pem" in missing[0]["message"]
    assert f"{tls_cfg}:4" in missing[0]["message"]
    assert "not a real key" not in str(result)


def test_missing_module_names_the_package(tmp_path: Path) -> None:
    require_kamailio()
    if os.path.exists(f"{MODULES}/db_mysql.so"):
        pytest.skip("db_mysql.so is installed here; the test needs it absent")
    instance = new_instance(tmp_path, body='loadmodule "db_mysql.so"')
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    missing = finding(result, "kamailio.module-missing")
    assert "db_mysql.so" in missing["message"] and "kamailio-mysql-modules" in missing["message"]
    assert "apt-get install kamailio-mysql-modules" in missing["remediation"]
    assert "kamailio.config-invalid" not in codes(result)  # the specific code wins


def test_module_deleted_from_an_installed_package_suggests_reinstall(snapshot: Snapshot) -> None:
    """The package is installed but its .so is gone: `apt-get install` alone would do nothing."""
    listing = Path("/var/lib/dpkg/info/kamailio-tls-modules:amd64.list")
    require("kamailio-tls-modules (Debian, amd64)", listing.exists())
    status = Path("/var/lib/dpkg/status").read_text()
    stanza = next(
        s for s in status.split("\n\n") if s.startswith("Package: kamailio-tls-modules\n")
    )
    snapshot.write("var/lib/dpkg/status", stanza + "\n")
    snapshot.write(f"var/lib/dpkg/info/{listing.name}", listing.read_text())
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(f"{MODULES.lstrip('/')}/sl.so", "")
    snapshot.write("etc/kamailio/kamailio.cfg", 'loadmodule "sl.so"\nloadmodule "tls.so"\n')
    code, result = check("--root", str(snapshot))
    assert code == 2, result
    missing = finding(result, "kamailio.module-missing")
    assert "tls.so" in missing["message"] and "kamailio-tls-modules" in missing["message"]
    assert missing["remediation"][0] == "apt-get install --reinstall kamailio-tls-modules"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    require_kamailio()
    include = tmp_path / "extra.cfg"
    include.write_text("debug=2\nthis is not kamailio syntax;\n")
    instance = new_instance(tmp_path, body=f'include_file "{include}"')
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    invalid = finding(result, "kamailio.config-invalid")
    assert f"{include}:2" in invalid["message"]
    not_running = finding(result, "kamailio.not-running")
    assert any(f"{include}:2" in step for step in not_running["remediation"])


# ------------------------------------------------------------------------- --root: best effort
def test_root_best_effort_reading(snapshot: Snapshot, shared: Instance) -> None:
    """A snapshot holding real socket tables and the shared instance's stat and cmdline."""
    pid = shared.pid
    snapshot.write(
        "etc/kamailio/kamailio.cfg", shared.config.read_text(), mtime=shared.config.stat().st_mtime
    )
    snapshot.write(f"proc/{pid}/stat", Path(f"/proc/{pid}/stat").read_text())
    snapshot.write(
        f"proc/{pid}/cmdline",
        Path(f"/proc/{pid}/cmdline")
        .read_bytes()
        .replace(str(shared.config).encode(), b"/etc/kamailio/kamailio.cfg"),
    )
    for name in ("tcp", "tcp6", "udp", "udp6"):
        snapshot.write(f"proc/net/{name}", Path(f"/proc/net/{name}").read_text())
    snapshot.write("proc/stat", Path("/proc/stat").read_text())
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    for module in ("pv", "sl", "xhttp", "websocket", "ctl"):
        snapshot.write(f"{MODULES.lstrip('/')}/{module}.so", "")
    code, result = check("--root", str(snapshot))
    assert code == 0, result
    assert result["details"]["resolved_by"] == "best effort"
    assert "best effort" in result["summary"]
    assert codes(result) == ["kamailio.owners-unknown"]
    assert set(result["details"]["expected"]) == {
        f"udp:127.0.0.1:{shared.sip_port}",
        f"tcp:127.0.0.1:{shared.sip_port}",
        f"tcp:127.0.0.1:{shared.ws_port}",
    }


def test_root_includes_cycles_and_missing_files(snapshot: Snapshot) -> None:
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        "#!define WSPORT 8080\n"
        "#!ifdef WITH_TLS\nenable_tls=yes\n#!endif\n"
        "listen=tls:0.0.0.0:5061\n"
        'import_file "kamailio-local.cfg"\n'
        'include_file "listen.cfg"\n'
        'include_file "gone.cfg"\n',
    )
    snapshot.write(
        "etc/kamailio/listen.cfg",
        "port=5070\nlisten=udp:10.0.0.10\nlisten=tcp:[::]:WSPORT\n"
        'include_file "/etc/kamailio/kamailio.cfg"\n',
    )
    code, result = check("--root", str(snapshot))
    assert code == 2
    details = result["details"]
    assert set(details["expected"]) == {"udp:10.0.0.10:5070", "tcp:[::]:8080"}
    assert any("include cycle" in p for p in details["config_problems"])
    invalid = finding(result, "kamailio.config-invalid")
    assert "/etc/kamailio/gone.cfg" in invalid["message"]
    assert "/etc/kamailio/kamailio.cfg:8" in invalid["message"]
    assert finding(result, "kamailio.tls-disabled")["status"] == "warn"
    # No process list in the snapshot: running or not is unknown, never guessed.
    assert "kamailio.not-running" not in codes(result)


ENABLE_STEP = (
    "sed -i 's/^#*RUN_KAMAILIO=.*/RUN_KAMAILIO=yes/' /etc/default/kamailio  # turns "
    "RUN_KAMAILIO=yes on in /etc/default/kamailio: without it the init script refuses to "
    "start Kamailio; it also starts Kamailio at every boot"
)


@pytest.mark.parametrize(
    ("init", "restart"),
    [
        ("systemd", ["systemctl restart kamailio"]),
        ("sysvinit", ["service kamailio restart"]),
        # Debian's /etc/default/kamailio as shipped: the init script refuses to start, so
        # turning RUN_KAMAILIO on is a step of its own that says so (and that it means boot).
        ("sysvinit-unconfigured", [ENABLE_STEP, "service kamailio restart"]),
        # Configured as the init script reads it, quoted: no sed step.
        ("sysvinit-quoted", ["service kamailio restart"]),
    ],
)
def test_remediation_names_the_hosts_service_manager(
    snapshot: Snapshot, init: str, restart: list[str]
) -> None:
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/init.d/kamailio", "#!/bin/sh\n", mode=0o755)  # shipped by Debian's package
    snapshot.write("etc/kamailio/kamailio.cfg", "listen=tls:0.0.0.0:5061\n")
    if init == "systemd":
        snapshot.mkdir("run/systemd/system")
    else:
        snapshot.write("proc/1/comm", "init\n")
    if init == "sysvinit-unconfigured":
        snapshot.write(
            "etc/default/kamailio",
            "# Set to yes to enable kamailio, once configured properly.\n#RUN_KAMAILIO=yes\n",
        )
    if init == "sysvinit-quoted":
        snapshot.write("etc/default/kamailio", 'RUN_KAMAILIO="yes"\n')
    code, result = check("--root", str(snapshot))
    steps = finding(result, "kamailio.tls-disabled")["remediation"]
    *enable, command = restart
    assert steps[-1 - len(enable) :] == [
        *enable,
        f"/usr/sbin/kamailio -c -f /etc/kamailio/kamailio.cfg && {command}",
    ]
    # Never folded into the restart: the step that turns autostart on is its own.
    assert "RUN_KAMAILIO" not in steps[-1]
    if init != "systemd":
        assert not any("systemctl" in step for step in steps)


def test_not_installed_skips(snapshot: Snapshot) -> None:
    snapshot.write("etc/os-release", DEBIAN12_OS_RELEASE)
    code, result = check("--root", str(snapshot))
    assert code == 0
    assert result["status"] == "skip" and result["code"] == "kamailio.not-installed"
    config = snapshot.root.parent / "required.toml"
    config.write_text("[checks.kamailio]\nrequired = true\n")
    code, result = check("--root", str(snapshot), "--config", str(config))
    assert code == 2 and result["status"] == "fail"
    not_installed = finding(result, "kamailio.not-installed")
    assert not_installed["remediation"] == ["apt-get install kamailio"]


# --------------------------------------------------------------- Kamailio's own output, parsed
def test_parse_real_kamailio_c_output() -> None:
    out = parse_check_output(0, REAL_CHECK_STDOUT, "config file ok, exiting...\n")
    assert [str(s) for s in out.sockets] == [
        "udp:127.0.0.1:35062",
        "udp:0.0.0.0:35063",
        "udp:[::]:35065",
        "udp:127.0.0.1:35066",
        "tcp:[::1]:35064",
    ]
    bad = parse_check_output(255, "", REAL_CHECK_STDERR)
    assert not bad.ok and bad.missing_modules == ["db_mysql"]
    assert bad.errors[0] == (
        "could not find module <db_mysql> in </usr/lib/x86_64-linux-gnu/kamailio/modules>"
    )
    # The first error with a file and line is the one reported.
    assert bad.first_error == "/tmp/kamlearn/e.cfg:3: failed to load module"


def test_mask_secrets() -> None:
    assert mask_secrets(f"db_url {SECRET_URL} x") == "db_url mysql://user:***@db/kamailio x"
    assert mask_secrets("sip:alice@example.com") == "sip:alice@example.com"


# ------------------------------------------------------------------ REVIEW-14 item 8
def test_error_in_a_relative_include_names_the_absolute_file(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """`cd FOLDER && kamailio -f kamailio.cfg` with `include_file "inc.cfg"`: once inc.cfg is
    made invalid, Kamailio reports `inc.cfg:2` (relative to the folder it runs in); the
    finding names FOLDER/inc.cfg:2, a path the operator can open from anywhere, and fixing
    that file makes the step's `kamailio -c` pass."""
    with world_readable_dir("pf-kam-relinc-") as folder:
        include = folder / "inc.cfg"
        include.write_text("# local settings\ndebug=2\n")
        include.chmod(0o644)
        instance = new_instance(folder, body='include_file "inc.cfg"')
        instance.config_arg = "kamailio.cfg"
        own_kamailio.append(instance)
        pid = instance.start(cwd=folder)
        include.write_text("# local settings\nchildren= (((\n")
        code, result = check("--config", str(preflight_config(folder, instance.config)))
        assert "kamailio.config-invalid" in judged(result, pid)["findings"], result
        invalid = finding(result, "kamailio.config-invalid")
        assert f"Kamailio rejects {instance.config}: {include}:2: " in invalid["message"]
        assert " inc.cfg:2" not in invalid["message"]
        check_step, fix_step = invalid["remediation"][:2]
        assert fix_step.startswith(f"fix {include}:2, then run `{check_step}` again")
        include.write_text("# local settings\ndebug=2\n")
        ran, output = run_step(check_step, tmp_path / "step.log")
        assert ran == 0, output
