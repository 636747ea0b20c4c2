"""Debian's init script as it really decides: the /etc/default/kamailio it sources (shell
expressions included) and its fork=no test, against the real script in private mount and pid
namespaces (tests/test_kamailio_steps.py), plus snapshots and an untrusted defaults file,
which are never executed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from support.cli import codes, finding, run_preflight
from support.kamailio import check_kamailio, free_port
from support.snapshot import Snapshot
from test_kamailio_steps import (
    DIAGNOSE,
    config,
    init_script_namespace,
    listening,
    service_pid,
    steps_from_the_top,
    wait_for,
)

SMALL = "SHM_MEMORY=16\nPKG_MEMORY=4\n"
TEST_CFG = "/etc/kamailio/test.cfg"


def follow(ns, steps: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Every step from the top as an operator pastes it; the foreground diagnostic only if
    the start failed (it did not: asserted). `service kamailio status` fails while nothing
    runs, so a step's own exit code is not the verdict: the state afterwards is."""
    for step in steps:
        if DIAGNOSE in step:
            assert service_pid(ns) is not None
            continue
        ns.run("sh", "-c", step, check=False)


def test_fork_no_in_a_comment_gets_the_edit_before_the_start_and_restart(tmp_path: Path) -> None:
    """The reviewer's repro: a `fork=no` line inside a /* */ comment. The real init script
    refuses to start it (exit 0, "fork=no specified"); the check says so with the exact line
    and puts the edit before the start. Followed verbatim, Kamailio starts and the check
    passes. Then the config changes and gains the line again: the edit comes before the one
    restart, and followed verbatim Kamailio runs the new config."""
    port, new_port = free_port(), free_port()
    ns, etc, _default = init_script_namespace(tmp_path, "RUN_KAMAILIO=yes\n" + SMALL)
    comment = "/* for a debugging run:\nfork=no\n*/\n"
    try:
        text = config(port).replace("debug=2\n", "debug=2\n" + comment)
        (etc / "kamailio.cfg").write_text(text)
        line = text.split("\n").index("fork=no") + 1
        refused = ns.run("service", "kamailio", "start", check=False)
        assert refused.returncode == 0
        assert "fork=no specified" in refused.stdout + refused.stderr
        assert service_pid(ns) is None

        code, result = ns.check("kamailio")
        assert code == 2, result
        fork = finding(result, "kamailio.init-script-fork-no")
        assert f"with /etc/kamailio/kamailio.cfg: line {line} matches" in fork["message"]
        steps = steps_from_the_top(result)
        edit = next(i for i, s in enumerate(steps) if s.startswith("sed -i --follow-symlinks"))
        start = next(i for i, s in enumerate(steps) if s.endswith("service kamailio start"))
        assert edit < start, steps
        follow(ns, steps)
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", port))
        first = service_pid(ns)
        assert first is not None
        assert comment.replace("fork=no", "fork=yes") in (etc / "kamailio.cfg").read_text()
        time.sleep(0.5)
        code, result = ns.check("kamailio")
        assert code == 0, result

        time.sleep(1.1)  # start times are whole clock ticks
        changed = config(port, f"listen=udp:127.0.0.1:{new_port}") + comment
        (etc / "kamailio.cfg").write_text(changed)
        code, result = ns.check("kamailio")
        assert code == 2, result
        assert codes(result)[0] == "kamailio.init-script-fork-no"
        steps = steps_from_the_top(result)
        restarts = [i for i, s in enumerate(steps) if s.endswith("service kamailio restart")]
        edit = next(i for i, s in enumerate(steps) if s.startswith("sed -i --follow-symlinks"))
        assert len(restarts) == 1 and edit < restarts[0] == len(steps) - 1, steps
        follow(ns, steps)
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", new_port))
        second = service_pid(ns)
        assert second is not None and second != first
        time.sleep(0.5)
        code, result = ns.check("kamailio")
        assert code == 0, result
    finally:
        ns.stop()


# The reviewer's three forms: the init script sources the file, so each sets CFGFILE.
DEFAULTS_FORMS = {
    "variable": f"D=/etc/kamailio\nRUN_KAMAILIO=yes\nCFGFILE=$D/test.cfg\n{SMALL}",
    "semicolon": f"RUN_KAMAILIO=yes ; CFGFILE={TEST_CFG}\n{SMALL}",
    "conditional": f"RUN_KAMAILIO=yes\n[ -f {TEST_CFG} ] && CFGFILE={TEST_CFG}\n{SMALL}",
}


@pytest.mark.parametrize("form", sorted(DEFAULTS_FORMS))
def test_the_config_cfgfile_sets_is_the_one_judged_and_started(tmp_path: Path, form: str) -> None:
    """/etc/default/kamailio sets CFGFILE with a shell expression. The config judged (with
    the real `kamailio -c`) is the one the real init script starts: test.cfg, whose missing
    module the init script refuses; fixed, the steps followed verbatim start test.cfg (not
    kamailio.cfg) and the check passes."""
    port, default_port = free_port(), free_port()
    ns, etc, _default = init_script_namespace(tmp_path, DEFAULTS_FORMS[form])
    try:
        (etc / "kamailio.cfg").write_text(config(default_port))
        (etc / "test.cfg").write_text(config(port) + 'loadmodule "no_such_module.so"\n')
        refused = ns.run("service", "kamailio", "start", check=False)
        assert "invalid configuration" in refused.stdout + refused.stderr
        assert service_pid(ns) is None

        code, result = ns.check("kamailio")
        assert code == 2, result
        details = result["details"]
        assert details["config"] == TEST_CFG, details
        assert details["kamailio_c"]["ok"] is False
        assert "kamailio.module-missing" in codes(result)

        (etc / "test.cfg").write_text(config(port))
        code, result = ns.check("kamailio")
        assert code == 2, result
        assert result["details"]["config"] == TEST_CFG
        assert result["details"]["kamailio_c"]["ok"] is True
        assert codes(result) == ["kamailio.not-running"]
        steps = steps_from_the_top(result)
        assert f"/usr/sbin/kamailio -c -f {TEST_CFG} && service kamailio start" in steps
        follow(ns, steps)
        assert wait_for(lambda: listening(ns, "udp", "127.0.0.1", port))
        assert not listening(ns, "udp", "127.0.0.1", default_port)
        time.sleep(0.5)
        code, result = ns.check("kamailio")
        assert code == 0, result
        assert result["details"]["config"] == TEST_CFG
        assert result["details"]["started"]["manager"] == "init-script"
    finally:
        ns.stop()


def test_an_untrusted_defaults_file_is_never_executed(tmp_path: Path) -> None:
    """/etc/default/kamailio owned by another account, with a shell expression for CFGFILE
    and a command: preflight (root) does not source it; the note says why and CFGFILE is
    unknown, not guessed as /etc/kamailio/kamailio.cfg."""
    ran = tmp_path / "ran"
    text = f"D=/etc/kamailio\nRUN_KAMAILIO=yes\nCFGFILE=$D/test.cfg\ntouch {ran}\n"
    ns, etc, default = init_script_namespace(tmp_path, text)
    try:
        os.chown(default, 65534, 65534)
        (etc / "kamailio.cfg").write_text(config(free_port()))
        (etc / "test.cfg").write_text(config(free_port()))
        code, result = ns.check("kamailio")
        assert not ran.exists()
        assert code == 0, result
        assert codes(result) == ["kamailio.config-unknown"]
        notes = " ".join(result["details"]["notes"])
        assert "/etc/default/kamailio was not executed: file /etc/default/kamailio is owned by" in (
            notes
        )
        assert "CFGFILE may be set by shell code in /etc/default/kamailio (line 3, 4)" in notes
        assert "kamailio.cfg" not in json.dumps(result) and "test.cfg" not in json.dumps(result)
    finally:
        ns.stop()


def kamailio_snapshot(snapshot: Snapshot, defaults: str) -> None:
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/init.d/kamailio", "")
    snapshot.write("etc/default/kamailio", defaults)
    snapshot.write("etc/kamailio/kamailio.cfg", "listen=udp:127.0.0.1:5060\n")
    snapshot.write("etc/kamailio/test.cfg", "listen=udp:127.0.0.1:5070\n")


def test_a_snapshot_with_a_shell_expression_notes_it_and_guesses_nothing(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """Under --root nothing is executed: CFGFILE=$D/test.cfg is unknown (a note names the
    line), neither /etc/kamailio/kamailio.cfg nor test.cfg is judged as its config, and the
    command in the file never runs. Plain assignments (`;`-separated too) are read."""
    ran = tmp_path / "ran"
    kamailio_snapshot(snapshot, f"D=/etc/kamailio\nCFGFILE=$D/test.cfg\ntouch {ran}\n")
    code, result = check_kamailio("--root", str(snapshot))
    assert not ran.exists()
    assert code == 0, result
    assert codes(result) == ["kamailio.config-unknown"]
    unknown = finding(result, "kamailio.config-unknown")
    assert "line 2, 3" in unknown["message"] and "not executed in a snapshot" in unknown["message"]
    assert "kamailio.cfg" not in json.dumps(result) and "test.cfg" not in json.dumps(result)

    snapshot.write("etc/default/kamailio", f"RUN_KAMAILIO=yes ; CFGFILE='{TEST_CFG}'\n")
    code, result = check_kamailio("--root", str(snapshot))
    assert result["details"]["config"] == TEST_CFG, result
    assert result["details"]["config_source"] == "CFGFILE"


def test_a_relative_config_option_is_a_configuration_error(tmp_path: Path) -> None:
    """`[checks.kamailio] config = "relative.cfg"` names no file Kamailio starts with: one
    line naming the file and the key, exit 64, no report."""
    toml = tmp_path / "pf.toml"
    toml.write_text('[checks.kamailio]\nconfig = "relative.cfg"\n')
    run = run_preflight("check", "kamailio", "-c", str(toml), "--format", "json")
    assert run.returncode == 64, run
    assert run.stdout == ""
    (line,) = run.stderr.strip().splitlines()
    assert str(toml) in line and "[checks.kamailio] config" in line
    assert "'relative.cfg' is not an absolute path" in line
