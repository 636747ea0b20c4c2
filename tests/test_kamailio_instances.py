"""Issue 13: the kamailio check judges the instances that really run, and its remediation acts
on them the way they were started. Real Kamailio 5.6 on loopback high ports for every state;
the remediation tests run the suggested steps verbatim and show the state fixed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from support.cli import NOBODY, codes, finding
from support.components import require, require_nobody_can_run, world_readable_dir
from support.kamailio import (
    MODULES,
    Instance,
    check_kamailio,
    free_port,
    judged,
    kamailio_binary,
    main_kamailio_with,
    new_instance,
    plain_config,
    preflight_config,
    restart_step_of,
    restarted_by,
    run_step,
    start_in_mount_namespace,
    stop_pid,
    wait_listening,
)
from support.snapshot import Snapshot

check = check_kamailio


# ------------------------------------------------------------------ how the config is named
def test_relative_config_in_the_foreground(own_kamailio: list[Instance], tmp_path: Path) -> None:
    """`cd /srv/sip && kamailio -f kamailio.cfg`: judged against that folder's config, and
    its children are its own, never 'another process'."""
    instance = new_instance(tmp_path)
    instance.config_arg = "kamailio.cfg"
    own_kamailio.append(instance)
    pid = instance.start(cwd=tmp_path)
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 0, result
    assert result["details"]["pid"] == pid
    assert result["details"]["started"]["start_dir"] == str(tmp_path)
    assert result["details"]["started"]["manager"] == "by hand"


def test_relative_config_daemonized(tmp_path: Path, started_pids: list[int]) -> None:
    """Daemonized, Kamailio moves to /: the config is found through the PWD its starting
    shell exported, and the instance is judged (not 'missing /kamailio.cfg')."""
    require("kamailio", kamailio_binary() is not None)
    instance = new_instance(tmp_path)
    pidfile = instance.rundir / "kamailio.pid"
    argv = [kamailio_binary() or "kamailio", "-f", "kamailio.cfg", "-P", str(pidfile)]
    argv += ["-Y", str(instance.rundir), "-m", "16", "-M", "4"]
    env = {**os.environ, "PWD": str(tmp_path)}
    subprocess.run(
        argv,
        cwd=tmp_path,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
    )
    assert wait_listening(instance.ws_port)
    pid = int(pidfile.read_text())
    started_pids.append(pid)
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    code, result = check()
    judged = result["details"]
    mine = [i for i in judged.get("instances", []) if i["pid"] == pid]
    assert judged["pid"] == pid or mine, result
    assert (judged["config"] if judged["pid"] == pid else mine[0]["config"]) == str(instance.config)
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 0, result
    assert result["details"]["pid"] == pid


def test_symlinked_config_and_a_symlink_swap_deploy(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """`-f /srv/sip/current/k.cfg` with current -> release1 is the instance of release1's
    config; swapping the link to a release copied with old mtimes (cp -p) is a change."""
    release1 = tmp_path / "release1"
    release1.mkdir()
    instance = new_instance(release1)
    current = tmp_path / "current"
    current.symlink_to("release1")
    instance.config_arg = str(current / "kamailio.cfg")
    own_kamailio.append(instance)
    old = time.time() - 3600
    os.utime(instance.config, (old, old))
    pid = instance.start()
    toml = preflight_config(tmp_path, instance.config)  # the real file, not the link
    code, result = check("--config", str(toml))
    assert code == 0, result
    assert result["details"]["pid"] == pid

    time.sleep(1.1)  # start times are whole clock ticks after a boot time in whole seconds
    release2 = tmp_path / "release2"
    shutil.copytree(release1, release2, symlinks=True, ignore=shutil.ignore_patterns("run"))
    os.utime(release2 / "kamailio.cfg", (old, old))  # as `cp -p`/`rsync -a` keep it
    swap = tmp_path / "current.new"
    swap.symlink_to("release2")
    os.replace(swap, current)
    toml = preflight_config(tmp_path, current / "kamailio.cfg")
    code, result = check("--config", str(toml))
    assert code == 1, result
    changed = finding(result, "kamailio.config-changed")
    assert f"pid {pid}" in changed["message"]


def test_rsync_deploy_with_old_mtime_is_a_change(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    instance = new_instance(tmp_path)
    own_kamailio.append(instance)
    pid = instance.start()
    time.sleep(1.1)
    old = time.time() - 3600
    instance.config.write_text(instance.config.read_text() + "\n# deployed\n")
    os.utime(instance.config, (old, old))  # the mtime is old, the ctime is now
    toml = str(preflight_config(tmp_path, instance.config))
    code, result = check("--config", toml)
    assert code == 1, result
    message = finding(result, "kamailio.config-changed")["message"]
    assert f"pid {pid}" in message
    # Only the change time moved: the operator is told it may be a chmod or an unchanged
    # deploy (a restart is then not needed) ...
    assert "only the change time moved" in message and "chmod/chown" in message
    # ... which a chmod alone also is; a real edit (a new mtime) is not said to be one.
    instance.config.chmod(0o640)
    code, result = check("--config", toml)
    assert "only the change time moved" in finding(result, "kamailio.config-changed")["message"]
    instance.config.write_text(instance.config.read_text() + "\n# edited\n")
    code, result = check("--config", toml)
    assert code == 1, result
    message = finding(result, "kamailio.config-changed")["message"]
    assert "only the change time moved" not in message, message


# ------------------------------------------------------------- several instances, each its own
def test_two_instances_only_the_drifted_one_is_named_and_restarted(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """Two Kamailio started by hand, each with its own config. One config gains a listen=
    after its instance started: every finding names that instance (pid and config), the
    healthy one gets none, and the restart step (its pid, its exact argv), run verbatim,
    restarts exactly that instance; the healthy one keeps running and the check passes. A
    `config` nobody runs is not-running for that config, and both instances are still
    judged."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    healthy, drifted = new_instance(tmp_path / "a"), new_instance(tmp_path / "b")
    own_kamailio.extend([healthy, drifted])
    healthy_pid, drifted_pid = healthy.start(), drifted.start()
    code, result = check()
    assert code == 0, result
    for pid, instance in ((healthy_pid, healthy), (drifted_pid, drifted)):
        assert judged(result, pid)["findings"] == []
        assert judged(result, pid)["config"] == str(instance.config)
        assert judged(result, pid)["resolved_by"] == "kamailio -c"

    time.sleep(1.1)  # start times are whole clock ticks after a boot time in whole seconds
    new_port = free_port()
    listen = "listen=udp:127.0.0.1:SIP_PORT\n"
    text = drifted.config.read_text()
    drifted.config.write_text(text.replace(listen, f"{listen}listen=udp:127.0.0.1:{new_port}\n"))
    code, result = check()
    assert code == 2, result
    assert judged(result, healthy_pid)["findings"] == []
    assert sorted(judged(result, drifted_pid)["findings"]) == [
        "kamailio.config-changed",
        "kamailio.listener-missing",
    ]
    for found in result["findings"]:
        assert found["message"].startswith(f"Kamailio pid {drifted_pid} ({drifted.config}): ")
        assert f"pid {healthy_pid}" not in str(found) and str(healthy.config) not in str(found)
    missing = finding(result, "kamailio.listener-missing")
    assert f"does not listen on udp:127.0.0.1:{new_port}" in missing["message"]
    # A pending restart, not an older configuration: the one restart step is on
    # config-changed, listed after the missing listener it clears.
    assert missing["message"].endswith(
        "the config changed after start: restart pending (kamailio.config-changed)"
    )
    assert missing["remediation"] == []
    restart = restart_step_of(drifted)
    assert finding(result, "kamailio.config-changed")["remediation"] == [restart]
    assert [f["code"] for f in result["findings"]][-1] == "kamailio.config-changed"

    (tmp_path / "c").mkdir()
    absent = new_instance(tmp_path / "c")  # configured, never started
    code, result = check("--config", str(preflight_config(tmp_path / "c", absent.config)))
    assert code == 2, result
    assert result["details"]["pid"] is None
    assert result["details"]["config"] == str(absent.config)
    assert finding(result, "kamailio.not-running")["message"].startswith(
        f"{absent.config} (no Kamailio runs it): Kamailio is not running with {absent.config}"
    )
    assert judged(result, healthy_pid)["findings"] == []
    assert "kamailio.config-changed" in judged(result, drifted_pid)["findings"]

    with restarted_by(restart, drifted.config, drifted_pid, drifted.ws_port) as new_pid:
        assert drifted.process is not None and drifted.process.wait(timeout=5) is not None
        assert wait_listening(new_port, "udp")
        code, result = check()
        assert code == 0, result
        assert healthy.process is not None and healthy.process.poll() is None
        assert judged(result, healthy_pid)["findings"] == []
        assert judged(result, new_pid)["findings"] == []
        assert f"udp:127.0.0.1:{new_port}" in judged(result, new_pid)["actual"]
        assert drifted_pid not in [i["pid"] for i in result["details"]["instances"]]


def test_relative_and_symlinked_instances_judged_side_by_side(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """A `cd DIR && kamailio -f kamailio.cfg` instance and one started through a symlinked
    folder (current -> release1) run together: each is judged against its own config, neither
    one's children nor sockets are the other's 'other process'; a change to the linked one's
    config names only that instance."""
    (tmp_path / "sip").mkdir()
    (tmp_path / "release1").mkdir()
    relative = new_instance(tmp_path / "sip")
    relative.config_arg = "kamailio.cfg"
    linked = new_instance(tmp_path / "release1")
    (tmp_path / "current").symlink_to("release1")
    linked.config_arg = str(tmp_path / "current" / "kamailio.cfg")
    own_kamailio.extend([relative, linked])
    relative_pid = relative.start(cwd=tmp_path / "sip")
    linked_pid = linked.start()
    code, result = check()
    assert code == 0, result
    assert judged(result, relative_pid)["config"] == str(relative.config)
    assert judged(result, relative_pid)["started"]["start_dir"] == str(tmp_path / "sip")
    assert judged(result, linked_pid)["config"] == linked.config_arg
    for pid in (relative_pid, linked_pid):
        entry = judged(result, pid)
        assert entry["findings"] == [] and entry["resolved_by"] == "kamailio -c"
        assert sorted(entry["expected"]) == sorted(entry["actual"])

    # `config` names the real file behind the link: that instance is the primary one, and
    # the relative one is judged all the same.
    toml = str(preflight_config(tmp_path, linked.config))
    code, result = check("--config", toml)
    assert code == 0, result
    assert result["details"]["pid"] == linked_pid
    assert judged(result, relative_pid)["findings"] == []

    time.sleep(1.1)
    linked.config.write_text(linked.config.read_text() + "\n# new routing\n")
    code, result = check("--config", toml)
    assert code == 1, result
    assert codes(result) == ["kamailio.config-changed"]
    changed = finding(result, "kamailio.config-changed")
    # Judged as the config `config` names (the same file): the message names that path.
    assert changed["message"].startswith(f"Kamailio pid {linked_pid} ({linked.config}): ")
    assert f"pid {relative_pid}" not in str(changed)
    assert judged(result, relative_pid)["findings"] == []


def test_second_instance_of_the_same_config_shares_the_port_and_is_stopped_alone(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """The same config started twice (tcp_reuse_port=yes lets the second bind every socket):
    port-shared once per socket (not once from each side), naming both instances; the step
    stops only the second one, and run verbatim it leaves the first serving alone."""
    first = new_instance(tmp_path, head="tcp_reuse_port=yes")
    (tmp_path / "run2").mkdir()
    second = Instance(first.config, tmp_path / "run2", first.sip_port, first.ws_port)
    own_kamailio.extend([first, second])
    first_pid, second_pid = first.start(), second.start()
    code, result = check()
    assert code == 2, result
    shared = [f for f in result["findings"] if f["code"] == "kamailio.port-shared"]
    ports = [f"udp:127.0.0.1:{first.sip_port}", f"tcp:127.0.0.1:{first.sip_port}"]
    assert sorted(f["message"].split(": ")[1].split(" ")[0] for f in shared) == sorted(
        [*ports, f"tcp:127.0.0.1:{first.ws_port}"]
    )
    for found in shared:
        assert (
            f"held by Kamailio (pid {first_pid}) and also by Kamailio pid {second_pid}"
            in (found["message"])
        )
        assert not any(f"pid {child}," in found["message"] for child in first.children)
    (step,) = shared[0]["remediation"]
    assert step.startswith(f"kill {second_pid} && ")
    returncode, output = run_step(step, tmp_path / "step.log")
    assert returncode == 0, output
    assert first.process is not None and first.process.poll() is None
    code, result = check()
    assert code == 0, result
    assert [
        i["pid"] for i in result["details"]["instances"] if i["config"] == str(first.config)
    ] == [first_pid]


# ------------------------------------------------------------------------------ processes
def test_zombie_is_never_an_instance(tmp_path: Path) -> None:
    """`[kamailio] <defunct>` left by a failed start holds nothing and is not judged."""
    require("kamailio", kamailio_binary() is not None)
    broken = tmp_path / "broken.cfg"
    broken.write_text("this is not kamailio syntax\n")
    proc = subprocess.Popen(
        [kamailio_binary() or "kamailio", "-DD", "-E", "-f", str(broken)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        code, result = check("--config", str(preflight_config(tmp_path, broken)))
    finally:
        proc.wait()
    details = result["details"]
    assert details["pid"] is None
    assert proc.pid not in [i["pid"] for i in details.get("instances", [])]
    assert "kamailio.not-running" in codes(result)


def test_sip_port_shared_with_another_process_fails_naming_both(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """A second socket on Kamailio's UDP port (SO_REUSEADDR, as Kamailio binds it) takes part
    of the traffic: a failure naming Kamailio and the other process."""
    instance = new_instance(tmp_path)
    own_kamailio.append(instance)
    pid = instance.start()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        other.bind(("127.0.0.1", instance.sip_port))
        code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    finally:
        other.close()
    assert code == 2, result
    shared = finding(result, "kamailio.port-shared")
    assert (
        f"udp:127.0.0.1:{instance.sip_port} is held by Kamailio (pid {pid})" in (shared["message"])
    )
    assert f"(pid {os.getpid()}, user root (uid 0))" in shared["message"]
    # Kamailio's own children are never named as the other process.
    assert not any(f"pid {child}," in shared["message"] for child in instance.children)


def test_declared_ctl_and_evapi_listeners_are_expected(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """ctl's binrpc over TCP and evapi's bind_addr are Kamailio's own declared listeners:
    not 'unexpected' (which would block a Puppet gate forever)."""
    require("kamailio-extra-modules (evapi)", os.path.exists(f"{MODULES}/evapi.so"))
    ctl_port, evapi_port = free_port(), free_port()
    instance = new_instance(tmp_path)
    text = instance.config.read_text().replace(
        f'modparam("ctl", "binrpc", "unix:{instance.rundir}/ctl")',
        f'modparam("ctl", "binrpc", "unix:{instance.rundir}/ctl")\n'
        f'modparam("ctl", "binrpc", "tcp:127.0.0.1:{ctl_port}")\n'
        'loadmodule "evapi.so"\n'
        f'modparam("evapi", "bind_addr", "127.0.0.1:{evapi_port}")',
    )
    instance.config.write_text(text)
    own_kamailio.append(instance)
    instance.start()
    assert wait_listening(ctl_port) and wait_listening(evapi_port)
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 0, result
    actual = result["details"]["actual"]
    assert f"tcp:127.0.0.1:{ctl_port}" in actual and f"tcp:127.0.0.1:{evapi_port}" in actual
    assert set(result["details"]["declared_listeners"]) == {
        f"tcp:127.0.0.1:{ctl_port}",
        f"tcp:127.0.0.1:{evapi_port}",
    }


def test_listen_address_not_on_any_interface(tmp_path: Path) -> None:
    """`kamailio -c` accepts a listen= address the host does not have; the start fails. The
    check names the address and the line, not just 'not running'."""
    require("kamailio", kamailio_binary() is not None)
    instance = new_instance(tmp_path, head=f"listen=udp:192.0.2.77:{free_port()}")
    assert instance.start(expect_failure=True) != 0
    assert "Cannot assign requested address" in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    missing = finding(result, "kamailio.address-missing")
    assert f"({instance.config}:3)" in missing["message"]
    assert "192.0.2.77" in missing["message"]
    assert result["details"]["resolved_by"] == "kamailio -c"


def test_non_root_unreadable_include_is_unknown_not_invalid(own_kamailio: list[Instance]) -> None:
    """As an unprivileged user, a root-only include_file is the checker's limit, not a broken
    config: reported as unreadable (a warning), never config-invalid."""
    require_nobody_can_run()
    with world_readable_dir("pf-kam-private-") as folder:
        secret = folder / "db.cfg"
        secret.write_text('#!define DBURL "mysql://k:pw@db/k"\n')
        secret.chmod(0o600)
        instance = new_instance(folder, body=f'include_file "{secret}"')
        own_kamailio.append(instance)
        instance.start()
        code, result = check(
            "--config", str(preflight_config(folder, instance.config)), user=NOBODY
        )
        assert code == 1, result
        assert "kamailio.config-invalid" not in codes(result)
        assert str(secret) in finding(result, "kamailio.config-unreadable")["message"]
        code, result = check("--config", str(preflight_config(folder, instance.config)))
        assert "kamailio.config-unreadable" not in codes(result)  # root reads it


def test_non_root_listeners_in_an_unreadable_include_are_unknown(
    own_kamailio: list[Instance],
) -> None:
    """Second review R2: root's Kamailio has every listen= line in a 0600 include. As an
    unprivileged user the reader used to assume Kamailio's defaults and FAILed
    listener-missing udp:*:5060/tcp:*:5060 with a kill+restart step. The sockets are unknown:
    no listener finding, no restart or stop step, a warning naming the file and to run as root;
    root itself judges the same instance healthy."""
    require_nobody_can_run()
    with world_readable_dir("pf-kam-listen-") as folder:
        instance = new_instance(folder)
        text = instance.config.read_text()
        listens = [line for line in text.splitlines() if line.startswith("listen=")]
        assert len(listens) == 3
        private = folder / "listen.cfg"
        private.write_text("\n".join(listens) + "\n")
        private.chmod(0o600)
        for line in listens[1:]:
            text = text.replace(line + "\n", "")
        instance.config.write_text(text.replace(listens[0], f'include_file "{private}"'))
        own_kamailio.append(instance)
        instance.start()
        toml = str(preflight_config(folder, instance.config))
        code, result = check("--config", toml)
        assert code == 0, result  # the truth: root reads the include, and all is well
        assert result["details"]["expected"] == [
            f"udp:127.0.0.1:{instance.sip_port}",
            f"tcp:127.0.0.1:{instance.sip_port}",
            f"tcp:127.0.0.1:{instance.ws_port}",
        ]

        code, result = check("--config", toml, user=NOBODY)
        assert code == 1, result  # a warning, not a failure
        assert result["status"] == "warn", result
        problems = [f["code"] for f in result["findings"] if f["status"] != "pass"]
        assert problems == ["kamailio.config-unreadable"], result
        steps = [step for f in result["findings"] for step in f["remediation"]]
        assert not [step for step in steps if "kill" in step or "kamailio -f" in step], steps
        unreadable = finding(result, "kamailio.config-unreadable")
        assert str(private) in unreadable["message"]
        assert unreadable["remediation"] == ["run preflight as root"]
        assert any(str(private) in note for note in result["details"]["notes"]), result
        assert result["details"]["expected"] == []


# ----------------------------------------------------------------- remediation, verbatim
def test_restart_step_applies_a_changed_config(
    own_kamailio: list[Instance], tmp_path: Path, started_pids: list[int]
) -> None:
    """config-changed on a hand-started instance: the step checks the config, stops that pid
    and starts the exact same command line again; afterwards the check passes."""
    instance = new_instance(tmp_path)
    own_kamailio.append(instance)
    pid = instance.start()
    time.sleep(1.1)
    instance.config.write_text(instance.config.read_text() + "\n# new routing\n")
    toml = str(preflight_config(tmp_path, instance.config))
    code, result = check("--config", toml)
    assert code == 1, result
    (step,) = finding(result, "kamailio.config-changed")["remediation"]
    with restarted_by(step, instance.config, pid, instance.ws_port) as new:
        assert instance.process is not None and instance.process.wait(timeout=5) is not None
        code, result = check("--config", toml)
        assert code == 0, result
        assert result["details"]["pid"] == new


def test_port_steps_free_the_port_and_start_kamailio(
    tmp_path: Path, started_pids: list[int]
) -> None:
    """Kamailio cannot start because another program holds its port: the steps name that
    program's pid, then check and start this config; run verbatim, Kamailio runs and the check
    passes."""
    require("kamailio", kamailio_binary() is not None)
    instance = new_instance(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time\n"
            "s = socket.socket()\n"
            f"s.bind(('127.0.0.1', {instance.ws_port}))\n"
            "s.listen()\n"
            "time.sleep(600)\n",
        ],
    )
    try:
        assert wait_listening(instance.ws_port)
        toml = str(preflight_config(tmp_path, instance.config))
        code, result = check("--config", toml)
        assert code == 2, result
        held = finding(result, "kamailio.listener-missing")
        assert f"(pid {holder.pid}, user root (uid 0))" in held["message"]
        # Followed from the top: the kill first, the one start last (on not-running), then a
        # foreground diagnostic that applies only if the start failed.
        assert held["remediation"] == [held["remediation"][0]]
        assert held["remediation"][0].startswith(f"kill {holder.pid}")
        steps = [s for f in result["findings"] for s in f["remediation"]]
        assert steps[-1].endswith("(Ctrl-C stops it)")
        for step in steps[:-1]:
            returncode, output = run_step(step, tmp_path / "step.log")
            assert returncode == 0, (step, output[-2000:])
        holder.wait(timeout=5)
        assert wait_listening(instance.ws_port)
        started_pids.extend(main_kamailio_with(instance.config))
        time.sleep(0.5)
        code, result = check("--config", toml)
        assert code == 0, result
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for p in main_kamailio_with(instance.config):
            stop_pid(p)


def test_cfgfile_of_etc_default_is_the_config_judged(snapshot: Snapshot) -> None:
    """Debian's init script and unit start CFGFILE from /etc/default/kamailio (`export` too):
    with nothing running, that is the config checked, and RUN_KAMAILIO=yes is recognised."""
    snap = snapshot
    snap.write("usr/sbin/kamailio", "", mode=0o755)
    snap.write("etc/init.d/kamailio", "#!/bin/sh\n", mode=0o755)
    snap.write("proc/1/comm", "init\n")
    snap.write("proc/1/stat", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n")
    snap.write("etc/default/kamailio", "export RUN_KAMAILIO=yes\nCFGFILE=/srv/sip/k.cfg\n")
    snap.write("etc/kamailio/kamailio.cfg", "listen=udp:127.0.0.1:5060\n")
    snap.write("srv/sip/k.cfg", 'listen=udp:127.0.0.1:5070\ninclude_file "gone.cfg"\n')
    code, result = check("--root", str(snap))
    assert result["details"]["config"] == "/srv/sip/k.cfg"
    assert "/srv/sip/gone.cfg" in finding(result, "kamailio.config-invalid")["message"]
    steps = finding(result, "kamailio.not-running")["remediation"]
    start = "/usr/sbin/kamailio -c -f /srv/sip/k.cfg && service kamailio start"
    assert start in steps and steps.index(start) >= len(steps) - 2
    assert not any("RUN_KAMAILIO" in step for step in steps)
    # No syslog file or journal in the snapshot: after the start, the foreground command
    # that would print the start's errors.
    assert shlex.split(steps[-1])[:5] == ["/usr/sbin/kamailio", "-DD", "-E", "-f", "/srv/sip/k.cfg"]


def test_snapshot_with_two_instances_judges_each_against_its_own_config(
    snapshot: Snapshot,
) -> None:
    """Under --root (no command runs) every instance of the snapshot's process list is read
    against its own config: the broken include is reported for the instance that runs it,
    named by pid and config, and not for the other."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    for pid, config in ((4100, "a.cfg"), (4200, "b.cfg")):
        stat = f"{pid} (kamailio) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"
        snapshot.write(f"proc/{pid}/stat", stat)
        snapshot.write(f"proc/{pid}/status", "Name:\tkamailio\nUid:\t0\t0\t0\t0\n")
        snapshot.write(f"proc/{pid}/cmdline", f"/usr/sbin/kamailio\0-f\0/etc/kamailio/{config}\0")
    snapshot.write("etc/kamailio/a.cfg", "listen=udp:127.0.0.1:5060\n")
    snapshot.write("etc/kamailio/b.cfg", 'listen=udp:127.0.0.1:5070\ninclude_file "gone.cfg"\n')
    code, result = check("--root", str(snapshot))
    assert code == 2, result
    assert judged(result, 4100)["findings"] == []
    assert judged(result, 4200)["findings"] == ["kamailio.config-invalid"]
    invalid = finding(result, "kamailio.config-invalid")
    assert invalid["message"].startswith("Kamailio pid 4200 (/etc/kamailio/b.cfg): ")
    assert "/etc/kamailio/gone.cfg" in invalid["message"]
    assert judged(result, 4200)["resolved_by"] == "best effort"
    assert judged(result, 4100)["expected"] == ["udp:127.0.0.1:5060"]


# ------------------------------------------------------------------ REVIEW-14 item 7
BEST_EFFORT = "(best effort"


def test_best_effort_note_belongs_to_the_judgement_read_best_effort(
    own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """Two instances: one judged by the real `kamailio -c` (started here by hand), one whose
    files this host's `kamailio -c` cannot see (in a mount namespace of its own: read best
    effort). The summary says "best effort" only when it speaks of the second: its finding,
    or the pass of all of them (naming it); never on the first one's finding."""
    with world_readable_dir("pf-kam-pair-") as folder:
        checked = new_instance(folder)
        own_kamailio.append(checked)
        checked.start()
        port = free_port()
        boxed = start_in_mount_namespace(tmp_path, plain_config(tmp_path, port).read_text())
        try:
            assert wait_listening(port, "udp"), (tmp_path / "log").read_text()
            inside = f"/proc/{boxed.pid}/root/etc/kamailio/kamailio.cfg"
            # Both pass: the pass names the one read best effort.
            _code, result = check("--config", str(preflight_config(folder, checked.config)))
            assert judged(result, checked.pid)["resolved_by"] == "kamailio -c"
            assert judged(result, boxed.pid)["resolved_by"] == "best effort"
            assert result["code"] == "kamailio.ok", result
            assert result["summary"].endswith(
                f"(best effort for pid {boxed.pid}: the configuration was read without "
                "Kamailio's preprocessor)"
            ), result["summary"]
            # The instance judged by kamailio -c misses a socket: its failure is the summary,
            # without the other instance's note.
            unheld = f"udp:127.0.0.1:{free_port()}"
            toml = preflight_config(folder, checked.config, expect=[unheld])
            _code, result = check("--config", str(toml))
            assert result["code"] == "kamailio.listener-missing", result
            assert f"pid {checked.pid}" in result["summary"]
            assert BEST_EFFORT not in result["summary"], result["summary"]
            # The best-effort instance's own finding decides: the note is on it.
            with open(inside, "a") as edited:
                edited.write("# edited after the start\n")
            _code, result = check("--config", str(preflight_config(folder, checked.config)))
            assert result["code"] == "kamailio.config-changed", result
            assert result["summary"].startswith(f"Kamailio pid {boxed.pid} ({inside}): ")
            assert result["summary"].endswith(
                "(best effort: the configuration was read without Kamailio's preprocessor)"
            )
        finally:
            stop_pid(boxed.pid)
            boxed.wait(timeout=10)
