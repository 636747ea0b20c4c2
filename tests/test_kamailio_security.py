"""Issue 18: no local user can steer root's kamailio check, and its config reader is bounded.

The attacks are performed for real: an unprivileged user (uid NOBODY through setpriv) starts a
Kamailio of its own, with a real module built here by gcc whose constructor leaves a marker file
when it runs as root. Root's check must never load it, never pass because of it, and name it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import NOBODY, as_user, codes, finding
from support.components import world_readable_dir
from support.evil_module import build_evil_module
from support.kamailio import (
    Instance,
    check_kamailio,
    free_port,
    judged,
    kamailio_binary,
    new_instance,
    plain_config,
    preflight_config,
    recording_binary,
    runs_on,
    stop_pid,
    wait_listening,
    with_binary,
)

check = check_kamailio


@pytest.fixture
def attacker(nobody_home: Path) -> Path:
    """A folder owned by uid NOBODY (its home, say), inside a folder root owns."""
    return nobody_home


@pytest.fixture
def legit(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """The operator's config (root-owned, readable by all) binding a free SIP port; and a
    marker path only root can create."""
    with world_readable_dir("pf-kam-legit-") as folder:
        port = free_port()
        config = plain_config(folder, port)
        yield config, port


def start_as_nobody(argv: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*as_user(NOBODY), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd="/",
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while not wait_listening(port, "udp", timeout=0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"the attacker's kamailio did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the attacker's main process and its children by its pid, and reap it."""
    stop_pid(proc.pid)
    proc.wait(timeout=5)


@pytest.mark.parametrize("binary", ["own-copy", "system"])
def test_users_kamailio_with_loadmodule_never_runs_code_as_root(
    attacker: Path, legit: tuple[Path, int], tmp_path: Path, binary: str
) -> None:
    """An unprivileged user starts kamailio (a copy of its own, or the system binary) with
    `--loadmodule=$HOME/evil.so`, bound to the operator's SIP port, while the operator's
    Kamailio is down. Root's run neither loads the module, nor passes, and names the process."""
    config, port = legit
    marker = tmp_path / "root-ran-evil-module"
    module = build_evil_module(attacker, marker)
    exe = kamailio_binary() or "kamailio"
    if binary == "own-copy":
        copy = attacker / "kamailio"
        shutil.copy(exe, copy)
        os.chown(copy, NOBODY, NOBODY)
        exe = str(copy)
    run_dir = attacker / "run"
    run_dir.mkdir()
    os.chown(run_dir, NOBODY, NOBODY)
    argv = [exe, "-DD", "-E", "-f", str(config), f"--loadmodule={module}"]
    argv += ["-Y", str(run_dir), "-P", str(run_dir / "k.pid"), "-m", "16", "-M", "4"]
    proc = start_as_nobody(argv, port, attacker / "log")
    try:
        code, result = check("--config", str(preflight_config(tmp_path, config)))
    finally:
        stop(proc)
    assert not marker.exists(), "root loaded the user's module"
    assert code == 2, result
    assert "kamailio.not-running" in codes(result)
    assert result["details"]["pid"] is None
    foreign = finding(result, "kamailio.foreign-process")
    assert foreign["status"] == "fail"
    assert f"pid {proc.pid} (user nobody (uid {NOBODY}), {exe})" in foreign["message"]
    assert f"udp:127.0.0.1:{port}" in foreign["message"]
    # The check still judged the operator's config with the real kamailio -c.
    assert result["details"]["resolved_by"] == "kamailio -c"


def test_config_in_a_users_folder_is_never_run_by_root(attacker: Path, tmp_path: Path) -> None:
    """A config another account can change (it owns the folder): root does not hand it to
    `kamailio -c`, so the module it loads never runs as root."""
    marker = tmp_path / "root-ran-evil-module"
    module = build_evil_module(attacker, marker)
    config = attacker / "kamailio.cfg"
    config.write_text(f'loadmodule "{module}"\nlisten=udp:127.0.0.1:{free_port()}\n')
    os.chown(config, NOBODY, NOBODY)
    code, result = check("--config", str(preflight_config(tmp_path, config)))
    assert not marker.exists(), "root ran kamailio -c on a config the user controls"
    untrusted = finding(result, "kamailio.untrusted-file")
    assert f"folder {attacker} is owned by user nobody" in untrusted["message"]
    assert result["details"]["resolved_by"] == "best effort"


def test_module_in_a_users_folder_is_never_loaded_by_root(
    attacker: Path, legit: tuple[Path, int], tmp_path: Path
) -> None:
    """The operator's own root-owned config loads a module from a folder another account
    owns (found in a review): root's `kamailio -c` would dlopen that account's code."""
    config, _port = legit
    marker = tmp_path / "root-ran-evil-module"
    module = build_evil_module(attacker, marker)
    os.chown(module, NOBODY, NOBODY)
    text = config.read_text().replace(
        'loadmodule "sl.so"', f'loadmodule "sl.so"\nloadmodule "{module}"'
    )
    config.write_text(text)
    code, result = check("--config", str(preflight_config(tmp_path, config)))
    assert not marker.exists(), "root loaded a module another account controls"
    untrusted = finding(result, "kamailio.untrusted-file")
    assert str(attacker) in untrusted["message"]
    assert result["details"]["resolved_by"] == "best effort"


def test_binary_a_user_can_replace_is_never_run(
    attacker: Path, legit: tuple[Path, int], tmp_path: Path
) -> None:
    """[checks.kamailio] binary naming a file another account owns: never executed."""
    config, _port = legit
    marker = tmp_path / "root-ran-binary"
    fake = attacker / "kamailio"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    os.chown(fake, NOBODY, NOBODY)
    toml = preflight_config(tmp_path, config)
    toml.write_text(toml.read_text() + f'binary = "{fake}"\n')
    code, result = check("--config", str(toml))
    assert not marker.exists()
    assert "is owned by user nobody" in finding(result, "kamailio.untrusted-file")["message"]


# ------------------------------------------- REVIEW-14 item 1: files the config names but lacks
GATE = "verify before running anything for this Kamailio as root"


def test_missing_import_in_a_users_folder_is_never_run_by_root(
    attacker: Path, own_kamailio: list[Instance], tmp_path: Path
) -> None:
    """The operator's root-owned config imports a file that does not exist, in a folder uid
    NOBODY owns. Kamailio skips a missing import_file silently (the instance starts), so that
    account may create it at any moment, also between root's check and root's `kamailio -c`,
    with a loadmodule of its own: the check runs no `kamailio -c` at all, and names the
    folder and its owner."""
    missing = attacker / "local.cfg"
    with world_readable_dir("pf-kam-import-") as folder:
        instance = new_instance(folder, body=f'import_file "{missing}"')
        own_kamailio.append(instance)
        pid = instance.start()
        binary, runs = recording_binary(folder)
        code, result = check(
            "--config", str(with_binary(preflight_config(folder, instance.config), binary))
        )
        assert runs_on(runs, instance.config) == []
        untrusted = finding(result, "kamailio.untrusted-file")
        assert (
            f"`kamailio -c` is not run on {instance.config}: {missing} (import_file at "
            f"{instance.config}:"
        ) in untrusted["message"]
        assert (
            f"does not exist and folder {attacker} is owned by user nobody (uid {NOBODY})"
        ) in untrusted["message"]
        assert judged(result, pid)["resolved_by"] == "best effort"
        assert judged(result, pid)["findings"] == ["kamailio.untrusted-file"]
        assert untrusted["remediation"][0].startswith(GATE), untrusted
        # What that account could have done: the file it creates is read by root's
        # `kamailio -c` (run here by hand), and the module it names runs as root.
        marker = tmp_path / "root-ran-evil-module"
        missing.write_text(f'loadmodule "{build_evil_module(attacker, marker)}"\n')
        os.chown(missing, NOBODY, NOBODY)
        subprocess.run(
            [kamailio_binary() or "kamailio", "-c", "-f", str(instance.config)],
            capture_output=True,
            cwd="/",
            timeout=30,
        )
        assert marker.exists(), "the threat is not real: kamailio -c did not read the file"


def test_missing_import_in_a_root_only_folder_is_judged_by_kamailio(
    own_kamailio: list[Instance],
) -> None:
    """The same config with the missing file in a folder only root can write: nobody else
    can create it, so the real `kamailio -c` runs and judges it as the real program does
    (it skips a missing import_file: exit 0, and the instance starts and passes)."""
    with world_readable_dir("pf-kam-import-") as folder:
        private = folder / "local.d"
        private.mkdir()
        private.chmod(0o755)
        missing = private / "local.cfg"
        instance = new_instance(folder, body=f'import_file "{missing}"')
        real = subprocess.run(
            [kamailio_binary() or "kamailio", "-c", "-f", str(instance.config)],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=30,
        )
        assert real.returncode == 0, real.stderr
        own_kamailio.append(instance)
        pid = instance.start()
        binary, runs = recording_binary(folder)
        code, result = check(
            "--config", str(with_binary(preflight_config(folder, instance.config), binary))
        )
        assert runs_on(runs, instance.config) == [f"-c -f {instance.config}"]
    assert "kamailio.untrusted-file" not in codes(result), result
    assert judged(result, pid)["resolved_by"] == "kamailio -c"
    assert judged(result, pid)["findings"] == []


@pytest.mark.parametrize(
    "kind", ["relative include", "module", "sticky folder", "ifdef branch", "ifdef module"]
)
def test_missing_names_where_others_can_create_them_stop_kamailio_c(
    attacker: Path, tmp_path: Path, kind: str
) -> None:
    """A relative include_file whose fallback folder (next to the config) uid NOBODY owns, a
    loadmodule of a .so missing from that account's folder, an import_file missing from
    /tmp (anyone may create it there): no `kamailio -c`, and the folder is named."""
    with world_readable_dir("pf-kam-absent-") as folder:
        if kind == "relative include":
            sub = folder / "sub"
            sub.mkdir()
            os.chown(sub, NOBODY, NOBODY)
            line, where = 'include_file "sub/local.cfg"', f"folder {sub} is owned by user nobody"
        elif kind == "module":
            line = f'loadmodule "{attacker}/evil.so"'
            where = f"folder {attacker} is owned by user nobody"
        elif kind == "ifdef branch":
            # Kamailio predefines KAMAILIO_5 (it takes this branch): a reader that does not
            # know it must still check what the branch names.
            line = f'#!ifdef KAMAILIO_5\nimport_file "{attacker}/local.cfg"\n#!endif'
            where = f"folder {attacker} is owned by user nobody"
        elif kind == "ifdef module":
            (attacker / "evil.so").write_bytes(b"")
            line = f'#!ifdef KAMAILIO_5\nloadmodule "{attacker}/evil.so"\n#!endif'
            where = f"folder {attacker} is owned by user nobody"
        else:
            name = f"/tmp/{folder.name}-local.cfg"
            line, where = (
                f'import_file "{name}"',
                f"folder /tmp is writable by others, who could create {name}",
            )
        config = plain_config(folder, free_port(), line + "\n")
        binary, runs = recording_binary(folder)
        code, result = check("--config", str(with_binary(preflight_config(folder, config), binary)))
        assert runs_on(runs, config) == []
        if kind == "ifdef branch":
            # The real Kamailio takes the branch: it reads the file and rejects its content.
            (attacker / "local.cfg").write_text("this is not kamailio syntax;\n")
            real = subprocess.run(
                [kamailio_binary() or "kamailio", "-c", "-f", str(config)],
                capture_output=True,
                text=True,
                cwd="/",
                timeout=30,
            )
            assert f"{attacker}/local.cfg, line 1" in real.stderr, real.stderr
    untrusted = finding(result, "kamailio.untrusted-file")
    assert where in untrusted["message"], untrusted["message"]
    assert result["details"]["resolved_by"] == "best effort"
