"""Issue 13 item 3: TLS as Kamailio's tls module really loads it, proved with real starts of
Kamailio 5.6 (the start fails exactly where the check says), and the key-permission fix
followed verbatim."""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

from support.cli import codes, finding
from support.components import require, require_root, world_readable_dir
from support.kamailio import (
    Instance,
    check_kamailio,
    free_port,
    make_pair,
    new_instance,
    preflight_config,
    tls_instance,
    wait_listening,
)
from support.snapshot import Snapshot

check = check_kamailio


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_no_tls_modparam_means_cert_pem_next_to_the_config(
    tls_kamailio: list[Instance], tmp_path: Path
) -> None:
    """Without a tls modparam Kamailio loads DIR/cert.pem (not Debian's selfsigned files)."""
    instance = tls_instance(tmp_path, free_port())
    assert instance.start(expect_failure=True) != 0
    assert f"Unable to load certificate file '{tmp_path}/cert.pem'" in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    missing = finding(result, "kamailio.tls-files-missing")
    assert f"TLS certificate {tmp_path}/cert.pem" in missing["message"]
    assert "no tls modparam names it" in missing["message"]
    assert "selfsigned" not in str(result["findings"])


def test_mismatched_key_and_certificate(tls_kamailio: list[Instance], tmp_path: Path) -> None:
    cert, _key = make_pair(tmp_path, "a")
    _cert, other_key = make_pair(tmp_path, "b")
    instance = tls_instance(
        tmp_path,
        free_port(),
        f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{other_key}")',
    )
    assert instance.start(expect_failure=True) != 0  # the real start fails on it
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    mismatch = finding(result, "kamailio.tls-key-mismatch")
    assert str(other_key) in mismatch["message"] and str(cert) in mismatch["message"]
    assert "PRIVATE KEY" not in str(result)  # key content never reported


def test_missing_crl_in_tls_cfg(snapshot: Snapshot) -> None:
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        'enable_tls=yes\nlisten=tls:0.0.0.0:5061\nloadmodule "tls.so"\n'
        'modparam("tls", "config", "/etc/kamailio/tls.cfg")\n',
    )
    snapshot.write("etc/kamailio/k.pem", "x")
    snapshot.write(
        "etc/kamailio/tls.cfg",
        "[server:default]\ncertificate = /etc/kamailio/k.pem\n"
        "private_key = /etc/kamailio/k.pem\ncrl = /etc/kamailio/revoked.pem\n",
    )
    code, result = check("--root", str(snapshot))
    missing = finding(result, "kamailio.tls-files-missing")
    assert "TLS crl /etc/kamailio/revoked.pem (/etc/kamailio/tls.cfg:4)" in missing["message"]


def test_enable_tls_without_tls_module(tls_kamailio: list[Instance], tmp_path: Path) -> None:
    """Kamailio runs but drops the tls: listener: the fix is loading tls.so, not a restart,
    and the dropped socket is not a 'missing listener' to restart for."""
    tls_port = free_port()
    instance = new_instance(tmp_path, head=f"enable_tls=yes\nlisten=tls:127.0.0.1:{tls_port}")
    tls_kamailio.append(instance)
    instance.start()
    assert "tls support enabled, but no tls engine" in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 1, result
    assert codes(result) == ["kamailio.tls-module-missing"]
    steps = finding(result, "kamailio.tls-module-missing")["remediation"]
    assert steps[0] == f'add loadmodule "tls.so" to {instance.config}'
    # Loading tls.so would load DIR/cert.pem, which is missing: said before the restart.
    assert f"before that: TLS certificate {tmp_path}/cert.pem" in steps[1]


def test_key_unreadable_by_the_run_user_then_fixed_verbatim(tls_kamailio: list[Instance]) -> None:
    """Kamailio runs as `-u kamailio`; the key becomes root-only (a renewal hook): the next
    start would fail with Permission denied. The chgrp/chmod step, followed verbatim, fixes
    it: after a restart the check passes. The restart step repeats no command line: the
    process runs as kamailio, so its command line is that account's data."""
    require_root()
    require("account kamailio (Debian package kamailio)", _account_exists("kamailio"))
    with world_readable_dir("pf-kam-tls-") as folder:
        cert, key = make_pair(folder, "server")
        key.chmod(0o644)
        tls_port = free_port()
        instance = tls_instance(
            folder,
            tls_port,
            f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{key}")',
        )
        subprocess.run(["chown", "-R", "kamailio:kamailio", str(instance.rundir)], check=True)
        instance.extra = ["-u", "kamailio", "-g", "kamailio"]
        tls_kamailio.append(instance)
        pid = instance.start()
        assert wait_listening(tls_port)
        toml = str(preflight_config(folder, instance.config))
        code, result = check("--config", toml)
        assert code == 0, result

        key.chmod(0o600)
        code, result = check("--config", toml)
        assert code == 2, result
        unreadable = finding(result, "kamailio.tls-key-unreadable")
        assert f"{key} is not readable by kamailio" in unreadable["message"]
        chmod_step, restart_step = unreadable["remediation"]
        assert chmod_step == f"chgrp kamailio {key} && chmod 640 {key}"
        assert subprocess.run(["sh", "-c", chmod_step], check=False).returncode == 0
        # It runs as kamailio (-u): nothing shows root started it, so its command line is
        # data, never a step (REVIEW-13 item 2); the operator restarts it the way they know.
        assert restart_step.startswith(f"pid {pid} was started by hand and it runs as user kam")
        assert "not a command to run as root" in restart_step
        instance.stop()
        new = instance.start()
        code, result = check("--config", toml)
        assert code == 0, result
        assert result["details"]["pid"] == new
