"""REVIEW-13 items 1, 2, 6 and 8: `kamailio -c` runs where the real start resolves relative
includes, only when that folder is root-only; no runnable step is suggested for a config,
start folder or command line another account controls; an instance in another mount
namespace is read through /proc/PID/root; a non-root run that cannot see where an instance
was started reports its config unknown.

Real Kamailio for every state; the evil module is built here by gcc and leaves a marker when
its constructor runs as root (tests/test_kamailio_security.py).
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from support.cli import NOBODY, as_user, codes, finding, report_of, run_preflight
from support.components import require, require_command, require_nobody_can_run, world_readable_dir
from support.evil_module import build_evil_module
from support.kamailio import (
    MODULES,
    Instance,
    check_kamailio,
    free_port,
    judged,
    kamailio_binary,
    new_instance,
    plain_config,
    preflight_config,
    start_in_mount_namespace,
    stop_pid,
    wait_listening,
)
from support.snapshot import Snapshot

check = check_kamailio


def all_steps(result: dict) -> list[str]:
    return [step for f in result["findings"] for step in f["remediation"]]


def assert_no_runnable_step(result: dict, *words: str) -> None:
    """No step of any finding is a command that acts on Kamailio: no kamailio, kill, cd,
    service or systemctl word starts a step or follows `&&`."""
    for step in all_steps(result):
        for part in step.split("&&"):
            first = part.strip().split(" ", 1)[0]
            assert first not in ("kill", "cd", "service", "systemctl", "sed"), step
            assert not first.endswith("kamailio"), step
        for word in words:
            assert word not in step, step


@pytest.fixture
def nobody_folder(nobody_home: Path) -> Path:
    """A folder uid NOBODY owns (its home, say), inside a folder root owns."""
    return nobody_home


# ------------------------------------------------------------------------------- item 1
def test_relative_import_in_the_checkers_folder_is_never_loaded(
    nobody_folder: Path, tmp_path: Path
) -> None:
    """Debian's kamailio.cfg has `import_file "kamailio-local.cfg"`; Kamailio looks a relative
    include up in its working folder first. Root running preflight from a folder another
    account owns must not have `kamailio -c` load that account's file: with no instance
    running, `kamailio -c` runs in / (where the init script and systemd start it)."""
    require_command("gcc")
    marker = tmp_path / "root-ran-evil-module"
    module = build_evil_module(nobody_folder, marker)
    local = nobody_folder / "kamailio-local.cfg"
    local.write_text(f'loadmodule "{module}"\n')
    os.chown(local, NOBODY, NOBODY)
    with world_readable_dir("pf-kam-etc-") as etc:
        config = plain_config(etc, free_port(), 'import_file "kamailio-local.cfg"\n')
        # The attack is real: the real `kamailio -c`, as root in that folder, loads it.
        subprocess.run(
            [kamailio_binary() or "kamailio", "-c", "-f", str(config)],
            cwd=nobody_folder,
            capture_output=True,
            timeout=30,
        )
        assert marker.exists(), "kamailio -c did not look in its working folder first"
        marker.unlink()
        toml = preflight_config(etc, config)
        run = run_preflight(
            "check", "kamailio", "--format", "json", "--config", str(toml), cwd=nobody_folder
        )
        (result,) = report_of(run)["checks"]
    assert not marker.exists(), "root's check loaded the module of a file in its working folder"
    assert "kamailio.config-invalid" not in codes(result), result
    assert result["details"]["resolved_by"] == "kamailio -c"
    assert result["details"]["files"] == [str(config)]
    assert result["code"] == "kamailio.not-running"


def test_include_resolved_in_the_start_folder_of_a_running_instance(
    own_kamailio: list[Instance],
) -> None:
    """A healthy instance started in /srv/r/cwd with -f /srv/r/main.cfg and `include_file
    "inc.cfg"`: Kamailio loaded the start folder's inc.cfg (not the one next to main.cfg).
    `kamailio -c` runs there too: no false listener finding, the check passes."""
    with world_readable_dir("pf-kam-cwd-") as srv:
        start = srv / "cwd"
        start.mkdir()
        start.chmod(0o755)
        instance = new_instance(srv, body='include_file "inc.cfg"')
        in_start, beside = free_port(), free_port()
        (start / "inc.cfg").write_text(f"listen=udp:127.0.0.1:{in_start}\n")
        (srv / "inc.cfg").write_text(f"listen=udp:127.0.0.1:{beside}\n")
        own_kamailio.append(instance)
        pid = instance.start(cwd=start)
        assert wait_listening(in_start, "udp")
        assert not wait_listening(beside, "udp", timeout=0.2)
        code, result = check("--config", str(preflight_config(srv, instance.config)))
        assert code == 0, result
        assert result["code"] == "kamailio.ok"
        assert result["details"]["pid"] == pid
        assert result["details"]["resolved_by"] == "kamailio -c"
        assert f"udp:127.0.0.1:{in_start}" in result["details"]["expected"]
        assert f"udp:127.0.0.1:{beside}" not in result["details"]["expected"]
        assert str(start / "inc.cfg") in result["details"]["files"]


def test_best_effort_reader_looks_in_the_start_folder_first(snapshot: Snapshot) -> None:
    """Under --root the reader follows Kamailio's order: the instance's start folder
    (proc/PID/cwd), then next to the including file."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    pid = 4100
    stat = f"{pid} (kamailio) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"
    snapshot.write(f"proc/{pid}/stat", stat)
    snapshot.write(f"proc/{pid}/status", "Name:\tkamailio\nUid:\t0\t0\t0\t0\n")
    snapshot.write(f"proc/{pid}/cmdline", "/usr/sbin/kamailio\0-f\0/srv/r/main.cfg\0")
    snapshot.symlink(f"proc/{pid}/cwd", "/srv/r/cwd")
    snapshot.write("srv/r/main.cfg", 'listen=udp:127.0.0.1:5060\ninclude_file "inc.cfg"\n')
    snapshot.write("srv/r/cwd/inc.cfg", "listen=udp:127.0.0.1:5070\n")
    snapshot.write("srv/r/inc.cfg", "listen=udp:127.0.0.1:5080\n")
    code, result = check("--root", str(snapshot))
    assert result["details"]["expected"] == ["udp:127.0.0.1:5060", "udp:127.0.0.1:5070"]
    assert result["details"]["files"] == ["/srv/r/main.cfg", "/srv/r/cwd/inc.cfg"]


def test_a_snapshots_accounts_are_named_by_its_own_passwd(snapshot: Snapshot) -> None:
    """Under --root the accounts in messages are the snapshot's: a Kamailio running as uid 33,
    which the snapshot's etc/passwd calls `sipedge` (this machine calls it www-data), is named
    `user sipedge (uid 33)`, never by this machine's account database."""
    import pwd

    machine = {entry.pw_uid: entry.pw_name for entry in pwd.getpwall()}
    assert machine.get(0) != "toor" and machine.get(33) != "sipedge"
    snapshot.write(
        "etc/passwd",
        "toor:x:0:0:root:/root:/bin/bash\n"
        "sipedge:x:33:33:SIP edge:/var/lib/sip:/usr/sbin/nologin\n",
    )
    snapshot.write("etc/group", "wheel:x:0:\nsipedge:x:33:\n")
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    pid = 4300
    argv = ["/usr/sbin/kamailio", "-f", "/etc/kamailio/kamailio.cfg"]
    snapshot.process(pid, "kamailio", 33, argv)
    snapshot.symlink(f"proc/{pid}/exe", "/usr/sbin/kamailio")
    snapshot.write("etc/kamailio/kamailio.cfg", "listen=udp:127.0.0.1:5060\n")
    code, result = check("--root", str(snapshot))
    foreign = finding(result, "kamailio.foreign-process")
    assert foreign["message"].startswith(
        f"pid {pid} (user sipedge (uid 33), /usr/sbin/kamailio) runs as kamailio but is not a "
        "trusted Kamailio: it runs as user sipedge (uid 33)"
    ), foreign["message"]
    assert 33 not in machine or machine[33] not in foreign["message"]


def test_instance_started_in_a_folder_another_account_owns_is_not_checked_by_root(
    own_kamailio: list[Instance], nobody_folder: Path, tmp_path: Path
) -> None:
    """A root instance started in a folder uid NOBODY owns: Kamailio looked its relative
    includes up there, so that account steered what it loaded. Root neither runs `kamailio
    -c` there (the module never loads), nor suggests a command (item 2)."""
    require_command("gcc")
    marker = tmp_path / "root-ran-evil-module"
    with world_readable_dir("pf-kam-srv-") as srv:
        instance = new_instance(srv, body='import_file "local.cfg"')
        own_kamailio.append(instance)
        pid = instance.start(cwd=nobody_folder)
        # Since then the account added a module to load from the start folder.
        module = build_evil_module(nobody_folder, marker)
        (nobody_folder / "local.cfg").write_text(f'loadmodule "{module}"\n')
        code, result = check("--config", str(preflight_config(srv, instance.config)))
    assert not marker.exists(), "root ran kamailio -c in a folder another account owns"
    assert result["details"]["pid"] == pid
    untrusted = finding(result, "kamailio.untrusted-file")
    assert f"it starts in {nobody_folder}" in untrusted["message"]
    assert f"folder {nobody_folder} is owned by user nobody" in untrusted["message"]
    assert result["details"]["resolved_by"] == "best effort"
    assert_no_runnable_step(result, str(nobody_folder) + " &&")


# ------------------------------------------------------------------------------- item 2
def test_another_accounts_instance_gets_no_runnable_step(
    nobody_folder: Path, started_pids: list[int], tmp_path: Path
) -> None:
    """The reviewer's repro: the kamailio account starts `cd /tmp/kx && kamailio -f e.cfg
    ...` by hand in a folder it owns, then edits e.cfg. Root's check says the config is
    untrusted and suggests no command: neither `kamailio -c` on that config, nor a kill and
    a repeat of that account's command line."""
    import pwd

    require_command("gcc")
    try:
        account = pwd.getpwnam("kamailio")
    except KeyError:
        require("account kamailio (Debian package kamailio)", False)
        raise
    folder = nobody_folder.parent / "kx"
    folder.mkdir()
    port = free_port()
    config = plain_config(folder, port)
    for path in (folder, config):
        os.chown(path, account.pw_uid, account.pw_gid)
    argv = [kamailio_binary() or "kamailio", "-f", "e.cfg", "-P", f"{folder}/k.pid"]
    argv += ["-Y", str(folder), "-m", "16", "-M", "4"]
    config.rename(folder / "e.cfg")
    subprocess.run(
        [*as_user(account.pw_uid), *argv],
        cwd=folder,
        env={**os.environ, "PWD": str(folder)},
        check=True,
        # A file, not a pipe: the daemon keeps its stdout and stderr open.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
    )
    pid = int((folder / "k.pid").read_text())
    started_pids.append(pid)
    assert wait_listening(port, "udp")
    marker = tmp_path / "root-ran-evil-module"
    module = build_evil_module(nobody_folder, marker)
    edited = folder / "e.cfg"
    edited.write_text(edited.read_text() + f'loadmodule "{module}"\n')
    code, result = check()
    assert not marker.exists(), "root ran kamailio -c on the kamailio account's config"
    mine = [i for i in result["details"]["instances"] if i["pid"] == pid]
    assert mine, result
    assert "kamailio.untrusted-file" in mine[0]["findings"]
    untrusted = finding(result, "kamailio.untrusted-file")
    assert f"it starts in {folder}" in untrusted["message"]
    assert f"folder {folder} is owned by user kamailio" in untrusted["message"]
    (step,) = untrusted["remediation"]
    assert step.startswith("verify before running anything for this Kamailio as root: ")
    assert_no_runnable_step(result, "e.cfg", f"kill {pid}")


def test_root_config_run_by_another_account_gets_no_command_line_step(
    nobody_folder: Path, started_pids: list[int]
) -> None:
    """The kamailio account starts root's own config by hand from /; the config changes.
    The config is root's, so `kamailio -c` checks it; the command line is the account's:
    the restart step names no kill and repeats no argv, it says what to verify."""
    import pwd

    try:
        account = pwd.getpwnam("kamailio")
    except KeyError:
        require("account kamailio (Debian package kamailio)", False)
        raise
    run_dir = nobody_folder.parent / "run"
    run_dir.mkdir()
    os.chown(run_dir, account.pw_uid, account.pw_gid)
    with world_readable_dir("pf-kam-etc-") as etc:
        port = free_port()
        config = plain_config(etc, port)
        argv = [kamailio_binary() or "kamailio", "-f", str(config), "-P", f"{run_dir}/k.pid"]
        argv += ["-Y", str(run_dir), "-m", "16", "-M", "4"]
        subprocess.run(
            [*as_user(account.pw_uid), *argv],
            cwd="/",
            env={**os.environ, "PWD": "/"},
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        pid = int((run_dir / "k.pid").read_text())
        started_pids.append(pid)
        assert wait_listening(port, "udp")
        config.write_text(config.read_text() + "# edited\n")
        os.utime(config, (os.stat(config).st_atime, os.stat(config).st_mtime + 5))
        code, result = check("--config", str(preflight_config(etc, config)))
    assert result["details"]["pid"] == pid
    assert result["details"]["resolved_by"] == "kamailio -c"
    changed = finding(result, "kamailio.config-changed")
    (step,) = changed["remediation"]
    assert step.startswith(f"pid {pid} was started by hand and it runs as user kamailio")
    assert "not a command to run as root" in step
    assert_no_runnable_step(result, f"kill {pid}", "-P ")


# ------------------------------------------------------------------------------- item 6
def test_instance_in_another_mount_namespace_is_judged_on_its_own_files(tmp_path: Path) -> None:
    """A Kamailio in its own mount namespace (a container on the host's network): tmpfs over
    /etc/kamailio there, its kamailio.cfg on a free port. The host's check reads its config
    through /proc/PID/root, finds it healthy (no listener-missing for the host's config), and
    after a change inside suggests no host command: it says who must restart it."""
    port = free_port()
    config = textwrap.dedent(f"""\
        #!KAMAILIO
        children=1
        log_stderror=yes
        listen=udp:127.0.0.1:{port}
        mpath="{MODULES}/"
        loadmodule "sl.so"
        request_route {{ sl_send_reply("404", "Not here"); }}
        """)
    proc = start_in_mount_namespace(tmp_path, config)
    try:
        assert wait_listening(port, "udp"), (tmp_path / "log").read_text()
        inside = f"/proc/{proc.pid}/root/etc/kamailio/kamailio.cfg"
        assert os.readlink(f"/proc/{proc.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        code, result = check()
        # Other tests' instances may run too: this one is judged on its own.
        theirs = judged(result, proc.pid)
        assert theirs["findings"] == [], result
        assert theirs["config"] == inside
        assert theirs["expected"] == [f"udp:127.0.0.1:{port}"]
        assert codes(result) == ["kamailio.ok"], result
        # A change inside the namespace (written through the kernel's view of its files).
        with open(inside, "a") as edited:
            edited.write("# edited\n")
        stat = os.stat(inside)
        os.utime(inside, (stat.st_atime, stat.st_mtime + 5))
        code, result = check()
        (changed,) = [f for f in result["findings"] if inside in f["message"]]
        assert changed["code"] == "kamailio.config-changed"
        (step,) = changed["remediation"]
        assert step.startswith(f"pid {proc.pid} runs in another mount namespace")
        assert "with whatever manages it" in step
        assert_no_runnable_step(result, "/etc/kamailio/kamailio.cfg")
        # The host's own config on the same port is not running: the container's Kamailio
        # holds the port, and the step to free it is not a host kill.
        host_config = tmp_path / "host.cfg"
        host_config.write_text(config)
        code, result = check("--config", str(preflight_config(tmp_path, host_config)))
        held = [f for f in result["findings"] if f"held by Kamailio pid {proc.pid}" in f["message"]]
        assert held, result
        assert held[0]["remediation"][0].startswith(
            f"stop it with whatever manages the container pid {proc.pid} runs in"
        )
        assert f"kill {proc.pid}" not in " ".join(held[0]["remediation"])
    finally:
        stop_pid(proc.pid)
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------- item 8
def test_non_root_run_cannot_resolve_a_relative_config_it_is_unknown(
    own_kamailio: list[Instance],
) -> None:
    """A root instance started as `cd DIR && kamailio -f kamailio.cfg`: uid NOBODY may not
    read /proc/PID/cwd (nor its environ), so which config it runs is unknown: a warning that
    says so, never config-invalid "/kamailio.cfg is missing"; root resolves it and passes."""
    require_nobody_can_run()
    with world_readable_dir("pf-kam-rel-") as folder:
        instance = new_instance(folder)
        instance.config_arg = "kamailio.cfg"
        own_kamailio.append(instance)
        pid = instance.start(cwd=folder)
        for args in ((), ("--config", str(preflight_config(folder, instance.config)))):
            _code, result = check(*args, user=NOBODY)
            assert "kamailio.config-invalid" not in codes(result), result
            assert "kamailio.not-running" not in codes(result), result
            assert "kamailio.config-unreadable" in judged(result, pid)["findings"]
            (unknown,) = [f for f in result["findings"] if f"(pid {pid}) runs" in f["message"]]
            assert unknown["code"] == "kamailio.config-unreadable"
            assert (
                f"the configuration Kamailio (pid {pid}) runs is unknown: its -f kamailio.cfg "
                f"is relative and the folder it was started in (/proc/{pid}/cwd) cannot be read"
            ) in unknown["message"]
        code, result = check("--config", str(preflight_config(folder, instance.config)))
        assert judged(result, pid)["findings"] == []


def test_trust_check_follows_the_start_folder_include(own_kamailio: list[Instance]) -> None:
    """The include Kamailio really loaded is the start folder's: that file (owned by uid
    NOBODY in a root-only folder) is the one the trust check names, not the root-owned file
    of the same name next to the main config."""
    require_nobody_can_run()
    with world_readable_dir("pf-kam-cwd-") as srv:
        start = srv / "cwd"
        start.mkdir()
        start.chmod(0o755)
        instance = new_instance(srv, body='include_file "inc.cfg"')
        port = free_port()
        (start / "inc.cfg").write_text(f"listen=udp:127.0.0.1:{port}\n")
        os.chown(start / "inc.cfg", NOBODY, NOBODY)
        (srv / "inc.cfg").write_text(f"listen=udp:127.0.0.1:{free_port()}\n")
        own_kamailio.append(instance)
        pid = instance.start(cwd=start)
        code, result = check("--config", str(preflight_config(srv, instance.config)))
    assert result["details"]["pid"] == pid
    untrusted = finding(result, "kamailio.untrusted-file")
    assert f"file {start}/inc.cfg is owned by user nobody" in untrusted["message"]
    assert f"udp:127.0.0.1:{port}" in result["details"]["expected"]
    assert_no_runnable_step(result)


# ------------------------------------------------------------------ REVIEW-14 item 3
def test_instance_in_another_mount_namespace_is_not_changed_by_its_root_link(
    tmp_path: Path,
) -> None:
    """A Kamailio in its own mount namespace whose config was written before it started,
    checked from the host well after its start: the /proc/PID/root link the check reads it
    through gets its change time when the kernel first looks it up (during the check), which
    is no config change. An edit made after the start still is one."""
    import psutil

    port = free_port()
    config = plain_config(tmp_path, port).read_text()
    proc = start_in_mount_namespace(tmp_path, config)
    try:
        assert wait_listening(port, "udp"), (tmp_path / "log").read_text()
        # Past the start time's slack (1 s), so a change time of now would count as a change.
        started = psutil.Process(proc.pid).create_time()
        time.sleep(max(0.0, started + 2.5 - time.time()))
        inside = f"/proc/{proc.pid}/root/etc/kamailio/kamailio.cfg"
        _code, result = check()
        theirs = judged(result, proc.pid)
        assert theirs["config"] == inside
        assert theirs["findings"] == [], result
        assert os.lstat(f"/proc/{proc.pid}/root").st_ctime > started + 2, "the link is older"
        with open(inside, "a") as edited:
            edited.write("# edited after the start\n")
        _code, result = check()
        assert judged(result, proc.pid)["findings"] == ["kamailio.config-changed"], result
        (changed,) = [f for f in result["findings"] if f["code"] == "kamailio.config-changed"]
        assert f"{inside} changed after Kamailio (pid {proc.pid}) started" in changed["message"]
    finally:
        stop_pid(proc.pid)
        proc.wait(timeout=10)
