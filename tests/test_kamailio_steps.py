"""The kamailio check's remediation followed as an operator would, from the top, against the
real programs: Debian's init script (in private mount and pid namespaces, with /etc/kamailio,
/etc/default/kamailio and /run replaced) and a hand-started Kamailio whose new config needs an
address and a port another process holds (in a private network namespace too, so the address
can really be added)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from kamailio_support import free_port, kamailio_binary
from support.cli import codes
from support.components import require, require_command, require_root
from support.kamailio import Instance, check_kamailio, new_instance
from support.namespace import Namespace
from support.snapshot import Snapshot

CONFIG = """#!KAMAILIO
debug=2
log_stderror=no
children=1
tcp_children=1
{listen}
loadmodule "pv.so"
loadmodule "sl.so"
request_route {{
    sl_send_reply("404", "Not here");
}}
"""
PIDFILE = "/run/kamailio/kamailio.pid"
# The last step of not-running where no log exists: Kamailio in the foreground, only if the
# start failed (the operator looks first).
DIAGNOSE = "# only if it did not start"


def config(port: int, *extra: str) -> str:
    listen = [f"listen=udp:127.0.0.1:{port}", f"listen=tcp:127.0.0.1:{port}", *extra]
    return CONFIG.format(listen="\n".join(listen))


def finding(result: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [f for f in result["findings"] if f["code"] == code]
    return found


def steps_from_the_top(result: dict[str, Any]) -> list[str]:
    """Every step in the order the human report numbers them: failures first, then errors,
    then warnings, each in the check's order."""
    rank = {"fail": 0, "error": 1, "warn": 2}
    findings = [f for f in result["findings"] if f["status"] in rank]
    findings.sort(key=lambda f: rank[f["status"]])
    return [step for f in findings for step in f["remediation"]]


def listening(ns: Namespace, transport: str, address: str, port: int) -> bool:
    option = "-lnu" if transport == "udp" else "-lnt"
    run = ns.run("ss", "-H", option, f"src {address}:{port}", check=False)
    return bool(run.stdout.strip())


def wait_for(what: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.1)
    return bool(what())


def init_script_namespace(tmp_path: Path, defaults: str) -> tuple[Namespace, Path, Path]:
    """Private /etc/kamailio, /etc/default/kamailio and /run for Debian's real init script."""
    require_root()
    require("kamailio", kamailio_binary() is not None and Path("/etc/init.d/kamailio").is_file())
    require_command("service")
    require_command("ss")
    etc = tmp_path / "etc"
    etc.mkdir()
    etc.chmod(0o755)
    default = tmp_path / "default"
    default.write_text(defaults)
    tmp_path.chmod(0o755)
    ns = Namespace()
    ns.run("mount", "-t", "tmpfs", "tmpfs", "/run")
    ns.run("mount", "--bind", str(etc), "/etc/kamailio")
    ns.run("mount", "--bind", str(default), "/etc/default/kamailio")
    return ns, etc, default


def service_pid(ns: Namespace) -> int | None:
    run = ns.run("cat", PIDFILE, check=False)
    return int(run.stdout) if run.returncode == 0 and run.stdout.strip().isdigit() else None


def test_init_script_restart_checks_and_starts_the_config_cfgfile_names(tmp_path: Path) -> None:
    """The init script runs ini.cfg; CFGFILE now names new.cfg; ini.cfg is edited. The one
    restart step checks new.cfg (what `service kamailio restart` really starts) and says it
    is not the running config; followed verbatim, Kamailio runs new.cfg and the check
    passes. With CFGFILE naming a config that cannot start (an address the host lacks), its
    finding comes first and no restart is offered."""
    ini_port, new_port, bad_port = free_port(), free_port(), free_port()
    defaults = "RUN_KAMAILIO=yes\nSHM_MEMORY=16\nPKG_MEMORY=4\nCFGFILE=/etc/kamailio/ini.cfg\n"
    ns, etc, default = init_script_namespace(tmp_path, defaults)
    try:
        (etc / "ini.cfg").write_text(config(ini_port))
        (etc / "new.cfg").write_text(config(new_port))
        (etc / "bad.cfg").write_text(config(bad_port, f"listen=udp:192.0.2.99:{bad_port}"))
        ns.run("service", "kamailio", "start")
        first = service_pid(ns)
        assert first is not None
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", ini_port))
        code, result = ns.check("kamailio")
        assert code == 0, result

        # The reviewer's repro: CFGFILE names a config with an address the host lacks.
        default.write_text(defaults.replace("ini.cfg", "bad.cfg"))
        time.sleep(1.1)  # start times are whole clock ticks
        (etc / "ini.cfg").write_text(config(ini_port) + "# new routing\n")
        code, result = ns.check("kamailio")
        assert code == 2, result
        assert result["findings"][0]["code"] == "kamailio.address-missing"
        assert result["findings"][0]["message"].startswith(
            f"/etc/kamailio/bad.cfg (what a restart of Kamailio pid {first} starts): "
        )
        changed = finding(result, "kamailio.config-changed")
        assert changed["remediation"] == [
            "no restart yet: a restart through the service starts /etc/kamailio/bad.cfg "
            "(CFGFILE of /etc/default/kamailio), which cannot start: fix the findings about "
            "it first, then run this check again"
        ]
        assert not any("service kamailio restart" in s for s in steps_from_the_top(result))
        assert result["details"]["decided_by"] == {"pid": None, "config": "/etc/kamailio/bad.cfg"}

        # CFGFILE names a config Kamailio rejects: its config-invalid first, no restart.
        (etc / "broken.cfg").write_text(config(bad_port) + "no_such_core_parameter=1\n")
        default.write_text(defaults.replace("ini.cfg", "broken.cfg"))
        code, result = ns.check("kamailio")
        assert code == 2, result
        assert result["findings"][0]["code"] == "kamailio.config-invalid"
        assert "/etc/kamailio/broken.cfg" in result["findings"][0]["message"]
        assert not any("service kamailio restart" in s for s in steps_from_the_top(result))

        # CFGFILE names a config that can start: the restart checks and names it.
        default.write_text(defaults.replace("ini.cfg", "new.cfg"))
        code, result = ns.check("kamailio")
        assert code == 1, result
        assert codes(result) == ["kamailio.config-changed"]
        (step,) = finding(result, "kamailio.config-changed")["remediation"]
        assert step == (
            "/usr/sbin/kamailio -c -f /etc/kamailio/new.cfg && service kamailio restart  "
            "# starts /etc/kamailio/new.cfg (CFGFILE of /etc/default/kamailio), not the "
            "running /etc/kamailio/ini.cfg"
        )
        ns.run("sh", "-c", step)
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", new_port))
        second = service_pid(ns)
        assert second is not None and second != first
        time.sleep(0.5)  # the children take the sockets over
        code, result = ns.check("kamailio")
        assert code == 0, result
        assert result["details"]["pid"] == second
        assert result["details"]["config"] == "/etc/kamailio/new.cfg"
        assert not listening(ns, "udp", "127.0.0.1", ini_port)
    finally:
        ns.stop()


def test_enabled_init_script_down_fails_while_a_hand_started_instance_runs(
    tmp_path: Path,
) -> None:
    """RUN_KAMAILIO=yes but the init script's Kamailio is not running, while another
    Kamailio started by hand runs: a failure, not a pass. The steps, followed from the top
    (the foreground diagnostic only if the start failed), start the service; then it passes
    and the hand-started instance still runs."""
    service_port, hand_port = free_port(), free_port()
    defaults = "RUN_KAMAILIO=yes\nSHM_MEMORY=16\nPKG_MEMORY=4\n"
    ns, etc, _default = init_script_namespace(tmp_path, defaults)
    try:
        (etc / "kamailio.cfg").write_text(config(service_port))
        (etc / "hand.cfg").write_text(config(hand_port))
        ns.run("mkdir", "/run/hand")
        hand = ["/usr/sbin/kamailio", "-f", "/etc/kamailio/hand.cfg", "-P", "/run/hand/k.pid"]
        ns.run(*hand, "-Y", "/run/hand", "-m", "16", "-M", "4")
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", hand_port))
        hand_pid = int(ns.run("cat", "/run/hand/k.pid").stdout)
        time.sleep(0.5)

        code, result = ns.check("kamailio")
        assert code == 2, result
        down = finding(result, "kamailio.not-running")
        assert (
            "the Kamailio service is enabled (RUN_KAMAILIO=yes in /etc/default/kamailio) but "
            "not running: no Kamailio it started runs /etc/kamailio/kamailio.cfg"
        ) in down["message"]
        assert f"pid {hand_pid}" in down["message"]
        steps = steps_from_the_top(result)
        assert "/usr/sbin/kamailio -c -f /etc/kamailio/kamailio.cfg && service kamailio start" in (
            steps
        )
        assert not any(str(hand_pid) in step and "kill" in step for step in steps)
        for step in steps:
            if DIAGNOSE in step:
                assert service_pid(ns) is not None  # it started: the diagnostic is not needed
                continue
            ns.run("sh", "-c", step, check=False)
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", service_port))
        time.sleep(0.5)
        code, result = ns.check("kamailio")
        assert code == 0, result
        assert sorted(i["pid"] for i in result["details"]["instances"]) == sorted(
            [hand_pid, service_pid(ns)]
        )
    finally:
        ns.stop()


def test_enabled_service_down_while_its_config_runs_by_hand_stops_nothing(
    tmp_path: Path,
) -> None:
    """RUN_KAMAILIO=yes, the init script's Kamailio is not running, and the service's own
    config runs, started by hand: no step stops that healthy instance to let the service
    take its ports (an outage, not a fix); the note says the service would not restart it."""
    port = free_port()
    ns, etc, _default = init_script_namespace(tmp_path, "RUN_KAMAILIO=yes\n")
    try:
        (etc / "kamailio.cfg").write_text(config(port))
        ns.run("mkdir", "/run/hand")
        hand = ["/usr/sbin/kamailio", "-f", "/etc/kamailio/kamailio.cfg", "-P", "/run/hand/k.pid"]
        ns.run(*hand, "-Y", "/run/hand", "-m", "16", "-M", "4")
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", port))
        hand_pid = int(ns.run("cat", "/run/hand/k.pid").stdout)
        time.sleep(0.5)

        code, result = ns.check("kamailio")
        steps = [s for f in result["findings"] for s in f["remediation"]]
        assert not any(str(hand_pid) in step for step in steps), steps
        assert code == 0, result
        notes = " ".join(result["details"].get("notes", []))
        assert f"runs as pid {hand_pid}, started another way" in notes
        assert listening(ns, "udp", "127.0.0.1", port)
    finally:
        ns.stop()


def test_steps_from_the_top_fix_an_address_and_a_held_port_before_the_one_restart(
    tmp_path: Path,
) -> None:
    """The reviewer's repro: a hand-started Kamailio whose config gains a listen= on an
    address the host lacks and one on a port another process holds. No restart for the
    listener the missing address explains, the kill before the restart, one restart, last
    (on config-changed, which says a restart is pending). Followed from the top (the
    address added to lo as the step says), Kamailio runs and listens on both."""
    require_root()
    require("kamailio", kamailio_binary() is not None)
    require_command("ip")
    require_command("ss")
    port, held_port = free_port(), free_port()
    cfg = tmp_path / "k.cfg"
    cfg.write_text(config(port))
    tmp_path.chmod(0o755)
    ns = Namespace(net=True)
    try:
        ns.run("ip", "link", "set", "lo", "up")
        ns.run("mount", "-t", "tmpfs", "tmpfs", "/run")
        ns.run("mkdir", "/run/k")
        argv = ["/usr/sbin/kamailio", "-f", str(cfg), "-P", "/run/k/k.pid", "-Y", "/run/k"]
        ns.run(*argv, "-m", "16", "-M", "4")
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", port))
        pid = int(ns.run("cat", "/run/k/k.pid").stdout)
        holder_code = (
            "import socket, sys, time\n"
            "s = socket.socket()\n"
            f"s.bind(('127.0.0.1', {held_port}))\n"
            "s.listen()\n"
            "time.sleep(600)\n"
        )
        ns.run("sh", "-c", f'/usr/bin/python3 -c "{holder_code}" >/dev/null 2>&1 &')
        assert wait_for(lambda: listening(ns, "tcp", "127.0.0.1", held_port))
        time.sleep(1.1)  # start times are whole clock ticks
        cfg.write_text(
            config(port, f"listen=udp:192.0.2.99:{port}", f"listen=tcp:127.0.0.1:{held_port}")
        )

        code, result = ns.check("kamailio")
        assert code == 2, result
        assert codes(result) == [
            "kamailio.address-missing",
            "kamailio.listener-missing",
            "kamailio.listener-missing",
            "kamailio.config-changed",
        ]
        explained, held = (
            f for f in result["findings"] if f["code"] == "kamailio.listener-missing"
        )
        if "192.0.2.99" not in explained["message"]:
            explained, held = held, explained
        assert explained["message"].endswith(
            "no interface has 192.0.2.99 (kamailio.address-missing)"
        )
        assert explained["remediation"] == []
        assert len(held["remediation"]) == 1 and held["remediation"][0].startswith("kill ")
        changed = finding(result, "kamailio.config-changed")
        assert "(a restart is pending)" in changed["message"]
        steps = steps_from_the_top(result)
        restarts = [s for s in steps if f"kill {pid} " in s]
        assert restarts == [steps[-1]]  # one restart of the instance, last

        for step in steps:
            command = re.search(r"\((ip address add \S+ dev) IFACE\)", step)
            if command:  # the address step names the command; the interface is the operator's
                ns.run("sh", "-c", f"{command.group(1)} lo")
                continue
            ns.run("sh", "-c", step)
        assert wait_for(lambda: listening(ns, "udp", "192.0.2.99", port))
        assert wait_for(lambda: listening(ns, "tcp", "127.0.0.1", held_port))
        time.sleep(0.5)
        code, result = ns.check("kamailio")
        assert code == 0, result
        assert result["details"]["pid"] != pid
    finally:
        ns.stop()


def test_top_level_details_are_the_instance_that_decided_the_status(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """Two Kamailio started by hand; the second one's config gains a listen=. The top-level
    code is its finding, so the top-level details (pid, config, expected) are its own, never
    the healthy first instance's, and `decided_by` names it; `instances` lists both."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    healthy, drifted = new_instance(tmp_path / "a"), new_instance(tmp_path / "b")
    own_kamailio.extend([healthy, drifted])
    healthy_pid, drifted_pid = healthy.start(), drifted.start()
    time.sleep(1.1)  # start times are whole clock ticks
    new_port = free_port()
    listen = "listen=udp:127.0.0.1:SIP_PORT\n"
    text = drifted.config.read_text()
    drifted.config.write_text(text.replace(listen, f"{listen}listen=udp:127.0.0.1:{new_port}\n"))
    code, result = check_kamailio()
    assert code == 2, result
    assert result["code"] == "kamailio.listener-missing"
    details = result["details"]
    assert details["decided_by"] == {"pid": drifted_pid, "config": str(drifted.config)}
    assert details["pid"] == drifted_pid and details["config"] == str(drifted.config)
    assert f"udp:127.0.0.1:{new_port}" in details["expected"]
    assert {healthy_pid, drifted_pid} <= {i["pid"] for i in details["instances"]}

    drifted.config.write_text(text)
    drifted.stop()
    code, result = check_kamailio()
    assert code == 0, result
    # All pass: the instance running `config` (here: the first judged) is described.
    instances = result["details"]["instances"]
    assert result["details"]["decided_by"]["pid"] == instances[0]["pid"]
    assert drifted_pid not in [i["pid"] for i in instances]


def test_enabled_unit_down_fails_while_a_hand_started_instance_runs(snapshot: Snapshot) -> None:
    """Where systemd runs, an enabled kamailio unit whose Kamailio is not running fails even
    though a hand-started instance runs (a snapshot: the unit cannot run here); the step
    checks and starts the unit's config. Not enabled: the hand-started one alone passes."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.mkdir("run/systemd/system")
    snapshot.write("lib/systemd/system/kamailio.service", "[Service]\nUser=kamailio\n")
    pid = 4100
    stat = f"{pid} (kamailio) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"
    snapshot.write(f"proc/{pid}/stat", stat)
    snapshot.write(f"proc/{pid}/status", "Name:\tkamailio\nUid:\t0\t0\t0\t0\n")
    snapshot.write(f"proc/{pid}/cmdline", "/usr/sbin/kamailio\0-f\0/srv/hand.cfg\0")
    snapshot.write(f"proc/{pid}/cgroup", "0::/user.slice/user-0.slice/session-1.scope\n")
    snapshot.write("srv/hand.cfg", "listen=udp:127.0.0.1:5070\n")
    snapshot.write("etc/kamailio/kamailio.cfg", "listen=udp:127.0.0.1:5060\n")
    code, result = check_kamailio("--root", str(snapshot))
    assert "kamailio.not-running" not in codes(result), result

    snapshot.write("etc/systemd/system/multi-user.target.wants/kamailio.service", "")
    code, result = check_kamailio("--root", str(snapshot))
    assert code == 2, result
    down = finding(result, "kamailio.not-running")
    assert down["message"].startswith(
        "/etc/kamailio/kamailio.cfg (no Kamailio runs it): the Kamailio service is enabled "
        "(/etc/systemd/system/multi-user.target.wants/kamailio.service exists) but not running"
    )
    assert f"pid {pid} with /srv/hand.cfg" in down["message"]
    assert down["remediation"][-1] == (
        "/usr/sbin/kamailio -c -f /etc/kamailio/kamailio.cfg && systemctl start kamailio"
    )
    assert result["details"]["decided_by"] == {"pid": None, "config": "/etc/kamailio/kamailio.cfg"}


@pytest.mark.parametrize(
    ("cgroup", "manager", "unit"),
    [
        # proc/PID/cgroup as Debian 12 (cgroup v2) and a cgroup v1 host write them
        ("0::/system.slice/kamailio.service\n", "systemd", "kamailio.service"),
        (
            "12:pids:/system.slice/sip.service\n1:name=systemd:/system.slice/sip.service\n",
            "systemd",
            "sip.service",
        ),
        # a user's own service manager, a login session, a container: not root's unit
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/k.service\n", "by hand", None),
        ("0::/user.slice/user-0.slice/session-3.scope\n", "by hand", None),
        ("0::/system.slice/docker-3f2a9c1b7e5d.scope\n", "by hand", None),
    ],
)
def test_the_cgroup_says_which_unit_started_an_instance(
    snapshot: Snapshot, cgroup: str, manager: str, unit: str | None
) -> None:
    """An instance's systemd unit is the one its cgroup names (read by the engine's process
    facts, as the services check reads it): its restart goes through that unit."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    pid = 4100
    snapshot.process(pid, "kamailio", 0, ["/usr/sbin/kamailio", "-f", "/etc/kamailio/kamailio.cfg"])
    snapshot.write(f"proc/{pid}/cgroup", cgroup)
    snapshot.write("etc/kamailio/kamailio.cfg", "listen=udp:127.0.0.1:5060\n")
    code, result = check_kamailio("--root", str(snapshot))
    started = result["details"]["started"]
    assert (result["details"]["pid"], started["manager"], started["unit"]) == (pid, manager, unit)
