"""Issue 13 item 3: TLS as Kamailio's tls module really loads it, proved with real starts of
Kamailio 5.6 (the start fails exactly where the check says), and the key-permission fix
followed verbatim."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from pathlib import Path

import psutil
import pytest
from support.cli import codes, finding
from support.components import require, require_root, world_readable_dir
from support.kamailio import (
    Instance,
    check_kamailio,
    free_port,
    make_pair,
    new_instance,
    preflight_config,
    restarted_by,
    tls_instance,
    wait_listening,
)
from support.snapshot import Snapshot

from preflight.host import Host
from preflight_checks.kamailio.findings import access_step

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


@pytest.mark.parametrize("written", ["", "udp:"])
def test_a_listen_without_protocol_and_tls_so_without_enable_tls_ask_for_no_tls(
    tls_kamailio: list[Instance], tmp_path: Path, written: str
) -> None:
    """A listen= written without a protocol opens TLS only where TLS is enabled, and tls.so
    loaded without enable_tls reads no certificate ("tls support is disabled"): the real
    start succeeds with no cert.pem, so no TLS finding (no tls-disabled whose steps would
    turn TLS on, no missing certificate) and the check passes."""
    port = free_port()
    instance = new_instance(
        tmp_path, head=f"listen={written}127.0.0.1:{port}", body='loadmodule "tls.so"'
    )
    tls_kamailio.append(instance)
    instance.start()
    assert wait_listening(port, "udp")
    assert "tls support is disabled" in instance.log()
    assert not (tmp_path / "cert.pem").exists()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 0, result
    assert not [c for c in codes(result) if c.startswith("kamailio.tls-")], result


@pytest.mark.parametrize(
    ("cert_kind", "key_kind", "kamailio_says"),
    [
        ("ec", "rsa", "does not match the public key of the certificate"),
        ("rsa", "ec", "does not match the public key of the certificate"),
        ("rsa", "rsa", "key values mismatch"),
    ],
)
def test_mismatched_key_and_certificate(
    tls_kamailio: list[Instance], tmp_path: Path, cert_kind: str, key_kind: str, kamailio_says: str
) -> None:
    """A key of another pair (another type: OpenSSL says NO_CERTIFICATE_ASSIGNED) is a
    mismatch, never an invalid certificate with a DER conversion step."""
    cert, _key = make_pair(tmp_path, "a", cert_kind)
    _cert, other_key = make_pair(tmp_path, "b", key_kind)
    instance = tls_instance(
        tmp_path,
        free_port(),
        f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{other_key}")',
    )
    assert instance.start(expect_failure=True) != 0  # the real start fails on it
    assert kamailio_says in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    mismatch = finding(result, "kamailio.tls-key-mismatch")
    assert str(other_key) in mismatch["message"] and str(cert) in mismatch["message"]
    assert "kamailio.tls-cert-invalid" not in codes(result)
    assert "-inform der" not in str(result)
    assert "PRIVATE KEY" not in str(result)  # key content never reported


def test_der_certificate_gets_the_conversion_step(
    tls_kamailio: list[Instance], tmp_path: Path
) -> None:
    """A certificate that really is DER: the start fails, and the step converts it; followed
    verbatim (and the tls modparam pointed at the .pem), Kamailio starts."""
    pem, key = make_pair(tmp_path, "server")
    der = tmp_path / "server.der"
    subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-outform", "der", "-out", str(der)], check=True
    )
    pem.unlink()
    port = free_port()
    instance = tls_instance(
        tmp_path,
        port,
        f'modparam("tls", "certificate", "{der}")\nmodparam("tls", "private_key", "{key}")',
    )
    assert instance.start(expect_failure=True) != 0
    assert f"Unable to load certificate file '{der}'" in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    invalid = finding(result, "kamailio.tls-cert-invalid")
    assert f"TLS certificate {der} is DER, not PEM" in invalid["message"]
    convert = invalid["remediation"][1]
    assert convert.startswith(f"openssl x509 -inform der -in {der} -out {der}.pem")
    assert subprocess.run(["sh", "-c", convert], check=False).returncode == 0
    instance.config.write_text(instance.config.read_text().replace(f'{der}"', f'{der}.pem"'))
    tls_kamailio.append(instance)
    instance.start()
    assert wait_listening(port)
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 0, result


@pytest.mark.parametrize(
    ("content", "form"),
    [(b"", "not a PEM certificate"), (b"not a certificate\n", "not a PEM certificate")],
)
def test_a_certificate_that_is_not_der_gets_no_conversion_step(
    snapshot: Snapshot, content: bytes, form: str
) -> None:
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        'enable_tls=yes\nlisten=tls:0.0.0.0:5061\nloadmodule "tls.so"\n'
        'modparam("tls", "certificate", "/etc/kamailio/c.pem")\n'
        'modparam("tls", "private_key", "/etc/kamailio/k.pem")\n',
    )
    snapshot.write("etc/kamailio/c.pem", content.decode())
    snapshot.write("etc/kamailio/k.pem", "x")
    _code, result = check("--root", str(snapshot))
    invalid = finding(result, "kamailio.tls-cert-invalid")
    assert f"TLS certificate /etc/kamailio/c.pem is {form}" in invalid["message"]
    assert "-inform der" not in str(invalid["remediation"])


def test_key_that_is_not_a_key(tls_kamailio: list[Instance], tmp_path: Path) -> None:
    cert, key = make_pair(tmp_path, "server")
    key.write_text("not a key\n")
    instance = tls_instance(
        tmp_path,
        free_port(),
        f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{key}")',
    )
    assert instance.start(expect_failure=True) != 0
    assert f"Unable to load private key '{key}'" in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    assert (
        f"TLS private key {key} is not a PEM private key"
        in (finding(result, "kamailio.tls-key-invalid")["message"])
    )
    assert "kamailio.tls-cert-invalid" not in codes(result)


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


def assert_restart_is_data(step: str, pid: int) -> None:
    """A hand-started instance running as kamailio (-u): nothing shows root started it, so
    its command line is that account's data, never a step (REVIEW-13 item 2); the operator
    restarts it the way they know."""
    assert step.startswith(f"pid {pid} was started by hand and it runs as user kamailio")
    assert "not a command to run as root" in step


def _start_as_kamailio(
    tls_kamailio: list[Instance], folder: Path, cert: Path, key: Path
) -> tuple[Instance, int, str]:
    """A TLS instance on a free port running as `-u kamailio` with `cert` and `key`, judged
    healthy first: (the instance, its pid, the preflight config naming its config)."""
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
    return instance, pid, toml


def _fix_verbatim_and_restart(
    instance: Instance, toml: str, fix_step: str, restart_step: str, pid: int
) -> int:
    """Run the fix step as printed; the restart step is data (the process runs as kamailio),
    so the test restarts the instance itself; then the check passes: the new pid."""
    assert subprocess.run(["sh", "-c", fix_step], check=False).returncode == 0
    assert_restart_is_data(restart_step, pid)
    instance.stop()
    new = instance.start()
    code, result = check("--config", toml)
    assert code == 0, result
    assert result["details"]["pid"] == new
    return new


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
        instance, pid, toml = _start_as_kamailio(tls_kamailio, folder, cert, key)

        key.chmod(0o600)
        code, result = check("--config", toml)
        assert code == 2, result
        unreadable = finding(result, "kamailio.tls-key-unreadable")
        assert f"{key} is not readable by kamailio" in unreadable["message"]
        chmod_step, restart_step = unreadable["remediation"]
        assert chmod_step == f"chgrp kamailio {key} && chmod 640 {key}"
        _fix_verbatim_and_restart(instance, toml, chmod_step, restart_step, pid)


def test_key_behind_a_closed_folder_then_fixed_verbatim(tls_kamailio: list[Instance]) -> None:
    """The key itself is readable by the kamailio group, but its folder is root-only (mode
    700, as /etc/kamailio/private often is): the step opens that folder for the run group
    (a chmod of the key alone cannot help); followed verbatim, and the instance restarted,
    it runs again as -u kamailio and the check passes (the restart step is data: it runs as
    kamailio)."""
    require_root()
    require("account kamailio (Debian package kamailio)", _account_exists("kamailio"))
    with world_readable_dir("pf-kam-tls-") as folder:
        private = folder / "private"
        private.mkdir()
        cert, key = make_pair(private, "server")
        subprocess.run(["chgrp", "kamailio", str(key)], check=True)
        key.chmod(0o640)
        cert.chmod(0o644)
        private.chmod(0o755)
        instance, pid, toml = _start_as_kamailio(tls_kamailio, folder, cert, key)

        private.chmod(0o700)
        code, result = check("--config", toml)
        assert code == 2, result
        unreadable = finding(result, "kamailio.tls-key-unreadable")
        assert f"folder {private} is mode 700" in unreadable["message"]
        folder_step, restart_step = unreadable["remediation"]
        assert folder_step == f"chgrp kamailio {private} && chmod g+x {private}"
        new = _fix_verbatim_and_restart(instance, toml, folder_step, restart_step, pid)
        main = psutil.Process(new)
        assert {p.username() for p in [main, *main.children()]} == {"kamailio"}


def test_key_unreadable_by_an_instance_started_as_its_account_names_that_account(
    tls_kamailio: list[Instance],
) -> None:
    """Kamailio started directly as the kamailio account (no -u): the run user comes from the
    process, and the step names the account as the host does (chgrp kamailio), not a label;
    followed verbatim, and the instance restarted, the check passes."""
    require_root()
    require("account kamailio (Debian package kamailio)", _account_exists("kamailio"))
    with world_readable_dir("pf-kam-tls-") as folder:
        cert, key = make_pair(folder, "server")
        key.chmod(0o644)
        instance = tls_instance(
            folder,
            tls_port := free_port(),
            f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{key}")',
        )
        subprocess.run(["chown", "-R", "kamailio:kamailio", str(instance.rundir)], check=True)
        instance.prefix = ["setpriv", "--reuid=kamailio", "--regid=kamailio", "--init-groups"]
        tls_kamailio.append(instance)
        pid = instance.start()
        assert pid is not None and wait_listening(tls_port)
        toml = str(preflight_config(folder, instance.config))

        key.chmod(0o600)
        code, result = check("--config", toml)
        assert code == 2, result
        unreadable = finding(result, "kamailio.tls-key-unreadable")
        assert f"{key} is not readable by kamailio," in unreadable["message"]
        chmod_step, restart_step = unreadable["remediation"]
        assert chmod_step == f"chgrp kamailio {key} && chmod 640 {key}"
        _fix_verbatim_and_restart(instance, toml, chmod_step, restart_step, pid)


def test_key_in_a_folder_the_run_account_owns_gets_no_root_command(
    tls_kamailio: list[Instance],
) -> None:
    """The key sits in a folder the kamailio account owns: that account could swap the key for
    a link to /etc/shadow between the check and the step, and root's chgrp/chmod would follow
    it. No command is given for it, only what must change first."""
    require_root()
    require("account kamailio (Debian package kamailio)", _account_exists("kamailio"))
    with world_readable_dir("pf-kam-tls-") as folder:
        owned = folder / "owned"
        owned.mkdir()
        cert, key = make_pair(owned, "server")
        key.chmod(0o644)
        cert.chmod(0o644)
        subprocess.run(["chown", "kamailio:kamailio", str(owned)], check=True)
        instance, pid, toml = _start_as_kamailio(tls_kamailio, folder, cert, key)

        key.chmod(0o600)
        code, result = check("--config", toml)
        assert code == 2, result
        unreadable = finding(result, "kamailio.tls-key-unreadable")
        steps = unreadable["remediation"]
        assert steps[0].startswith("not a command to run as root: "), steps
        assert str(owned) in steps[0], steps
        assert not any(step.startswith(("chgrp", "chmod", "usermod")) for step in steps), steps


def test_key_in_a_group_folder_the_run_user_is_not_in() -> None:
    """Debian's /etc/ssl/private is root:ssl-cert 710: the step adds the run user to that
    group (Kamailio calls initgroups for -u, systemd for User=) instead of a chgrp that would
    lock the group's other members out; a folder of the run group only gets g+x."""
    require_root()
    with world_readable_dir("pf-kam-tls-") as folder:
        private = folder / "private"
        private.mkdir(mode=0o700)
        shared = grp.getgrnam("nogroup")
        os.chown(private, 0, shared.gr_gid)
        private.chmod(0o710)
        host = Host("/")
        rel = str(private).lstrip("/")
        step = access_step(host, rel, private.stat(), False, "kamailio", "kamailio", {109})
        assert step == "usermod -a -G nogroup kamailio"
        private.chmod(0o700)
        step = access_step(host, rel, private.stat(), False, "kamailio", "kamailio", {109})
        assert step == f"chgrp kamailio {private} && chmod g+x {private}"
        os.chown(private, 0, 109)
        step = access_step(host, rel, private.stat(), False, "kamailio", "kamailio", {109})
        assert step == f"chmod g+x {private}"


def test_tls_cfg_without_server_default_loads_cert_pem(
    tls_kamailio: list[Instance], tmp_path: Path
) -> None:
    """A tls.cfg with no [server:default]: the tls module builds that profile from its own
    defaults (cert.pem next to the config), ignoring the certificate modparams."""
    cert, key = make_pair(tmp_path, "server")
    (tmp_path / "tls.cfg").write_text("[client:default]\nverify_certificate = no\n")
    instance = tls_instance(
        tmp_path,
        free_port(),
        f'modparam("tls", "config", "{tmp_path}/tls.cfg")\n'
        f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{key}")',
    )
    assert instance.start(expect_failure=True) != 0
    assert f"Unable to load certificate file '{tmp_path}/cert.pem'" in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    missing = finding(result, "kamailio.tls-files-missing")
    assert (
        f"TLS certificate {tmp_path}/cert.pem ({tmp_path}/tls.cfg has no [server:default])"
        in missing["message"]
    )


def test_certificate_the_run_user_cannot_read(tls_kamailio: list[Instance]) -> None:
    """The tls module loads every file after Kamailio switched to -u: a certificate behind a
    root-only folder fails the start as a key does (Permission denied)."""
    require_root()
    require("account kamailio (Debian package kamailio)", _account_exists("kamailio"))
    with world_readable_dir("pf-kam-tls-") as folder:
        closed = folder / "closed"
        closed.mkdir(mode=0o700)
        cert, key = make_pair(closed, "server")
        key = key.rename(folder / "server.key")
        key.chmod(0o644)
        cert.chmod(0o644)
        instance = tls_instance(
            folder,
            free_port(),
            f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{key}")',
        )
        subprocess.run(["chown", "-R", "kamailio:kamailio", str(instance.rundir)], check=True)
        instance.extra = ["-u", "kamailio", "-g", "kamailio"]
        assert instance.start(expect_failure=True) != 0
        assert f"Unable to load certificate file '{cert}'" in instance.log()
        assert "Permission denied" in instance.log()
        # The check learns the run user from a running instance's -u: start it with the
        # folder open, then close the folder again (a permissions "hardening" run).
        closed.chmod(0o755)
        tls_kamailio.append(instance)
        instance.start()
        closed.chmod(0o700)
        code, result = check("--config", str(preflight_config(folder, instance.config)))
        assert code == 2, result
        unreadable = finding(result, "kamailio.tls-file-unreadable")
        assert f"TLS certificate {cert} is not readable by kamailio" in unreadable["message"]
        assert unreadable["remediation"][0] == f"chgrp kamailio {closed} && chmod g+x {closed}"
        assert "kamailio.tls-key-unreadable" not in codes(result)


def _tls_cfg(folder: Path, cert: Path, key: Path, profiles: str) -> str:
    """modparam naming a tls.cfg in `folder` with a valid [server:default] and `profiles`."""
    tls_cfg = folder / "tls.cfg"
    tls_cfg.write_text(f"{profiles}\n[server:default]\ncertificate = {cert}\nprivate_key = {key}\n")
    return f'modparam("tls", "config", "{tls_cfg}")'


START_FAILURES = {
    # case: (what the tls modparams / tls.cfg say, Kamailio's error, the check's code)
    "empty crl": ("crl=empty", "Unable to load certificate revocation list", "tls-crl-invalid"),
    "crl not pem": ("crl=garbage", "Unable to load certificate revocation list", "tls-crl-invalid"),
    "ca_list not pem": ("ca_list=garbage", "Unable to load CA list file", "tls-ca-invalid"),
    "profile without listen": (
        "[server:127.0.0.1:OTHER]",
        "No listening socket found",
        "tls-profile-no-listen",
    ),
    "any without server_name, with default": (
        "[server:any]",
        "duplicate definition for a tls profile (same address) and no server name",
        "tls-profile-no-server-name",
    ),
    "any without server_name, alone": (
        "[server:any] alone",
        "tls domain for any address but no server name",
        "tls-profile-no-server-name",
    ),
}


@pytest.mark.parametrize("case", list(START_FAILURES))
def test_tls_start_failures_kamailio_c_misses(
    tls_kamailio: list[Instance], tmp_path: Path, case: str
) -> None:
    """Each state passes `kamailio -c` and fails the real start with the tls module's error;
    the check names it with its own code."""
    setting, kamailio_says, code_name = START_FAILURES[case]
    cert, key = make_pair(tmp_path, "server")
    pair = f'modparam("tls", "certificate", "{cert}")\nmodparam("tls", "private_key", "{key}")'
    port = free_port()
    files = f"certificate = {cert}\nprivate_key = {key}\n"
    if setting.startswith(("crl=", "ca_list=")):
        name, _, content = setting.partition("=")
        bad = tmp_path / f"{name}.pem"
        bad.write_text("" if content == "empty" else "-----BEGIN X509 CRL-----\nnope\n")
        params = f'{pair}\nmodparam("tls", "{name}", "{bad}")'
    elif setting == "[server:any] alone":
        (tmp_path / "cert.pem").write_text(cert.read_text() + key.read_text())
        (tmp_path / "tls.cfg").write_text(f"[server:any]\n{files}")
        params = f'modparam("tls", "config", "{tmp_path}/tls.cfg")'
    else:
        profile = setting.replace("OTHER", str(free_port()))
        params = _tls_cfg(tmp_path, cert, key, f"{profile}\n{files}")
    instance = tls_instance(tmp_path, port, params)
    checked = subprocess.run(
        ["kamailio", "-c", "-f", str(instance.config)], capture_output=True, check=False
    )
    assert checked.returncode == 0  # kamailio -c does not see it
    assert instance.start(expect_failure=True) != 0
    assert kamailio_says in instance.log()
    code, result = check("--config", str(preflight_config(tmp_path, instance.config)))
    assert code == 2
    assert f"kamailio.{code_name}" in codes(result), result


BROKEN_PROFILES = {
    # case: how tls.cfg is broken from a healthy [server:default]
    "profile without listen": "append a profile for another port",
    "any without server_name": "[server:default] becomes [server:any]",
}


@pytest.mark.parametrize("case", list(BROKEN_PROFILES))
def test_tls_profile_fix_followed_verbatim(
    tls_kamailio: list[Instance], tmp_path: Path, case: str
) -> None:
    """A running instance; tls.cfg gets a profile the next start refuses. The first step and
    the restart step, pasted as given, bring Kamailio back with the profile, and the check
    passes."""
    cert, key = make_pair(tmp_path, "server")
    files = f"certificate = {cert}\nprivate_key = {key}\n"
    tls_port = free_port()
    instance = tls_instance(tmp_path, tls_port, _tls_cfg(tmp_path, cert, key, ""))
    tls_kamailio.append(instance)
    pid = instance.start()
    assert wait_listening(tls_port)
    toml = str(preflight_config(tmp_path, instance.config))
    code, result = check("--config", toml)
    assert code == 0, result

    tls_cfg = tmp_path / "tls.cfg"
    ports = [tls_port, instance.ws_port]
    if case == "profile without listen":
        other = free_port()
        ports.append(other)
        tls_cfg.write_text(tls_cfg.read_text() + f"\n[server:127.0.0.1:{other}]\n{files}")
        code_name = "kamailio.tls-profile-no-listen"
    else:
        tls_cfg.write_text(tls_cfg.read_text().replace("[server:default]", "[server:any]"))
        code_name = "kamailio.tls-profile-no-server-name"
    code, result = check("--config", toml)
    assert code == 2, result
    # The fix first; the instance's one restart step last (on config-changed when tls.cfg
    # changed after the start).
    fix_step = finding(result, code_name)["remediation"][0]
    steps = [step for found in result["findings"] for step in found["remediation"]]
    restarts = [step for step in steps if f"kill {pid} " in step]
    assert restarts == [steps[-1]], steps
    restart_step = steps[-1]
    assert subprocess.run(["sh", "-c", fix_step], check=False).returncode == 0
    with restarted_by(restart_step, instance.config, pid, *ports) as new:
        code, result = check("--config", toml)
        assert code == 0, result
        assert result["details"]["pid"] == new


def test_a_run_reads_etc_default_and_tls_cfg_once(snapshot: Snapshot) -> None:
    """/etc/default/kamailio (which config the service starts, whether RUN_KAMAILIO is on, the
    USER it runs as) and tls.cfg (its files, its profiles) are each read and parsed once per
    run, however many of the judgement's questions ask them."""
    from support.reads import run_counting

    from preflight_checks.kamailio import KamailioCheck

    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/init.d/kamailio", "#!/bin/sh\n", mode=0o755)
    snapshot.write("proc/1/comm", "init\n")
    snapshot.write("proc/1/stat", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n")
    snapshot.write("etc/passwd", "root:x:0:0::/root:/bin/sh\nsip:x:120:130::/:/bin/false\n")
    snapshot.write(
        "etc/default/kamailio", "RUN_KAMAILIO=yes\nUSER=sip\nCFGFILE=/srv/sip/kamailio.cfg\n"
    )
    snapshot.write(
        "srv/sip/kamailio.cfg",
        'enable_tls=yes\nlisten=tls:0.0.0.0:5061\nloadmodule "tls.so"\n'
        'modparam("tls", "config", "/srv/sip/tls.cfg")\n',
    )
    snapshot.write("srv/sip/k.pem", "x")
    snapshot.write(
        "srv/sip/tls.cfg",
        "[server:default]\ncertificate = /srv/sip/k.pem\nprivate_key = /srv/sip/k.pem\n"
        "crl = /srv/sip/revoked.pem\n[server:any]\ncertificate = /srv/sip/k.pem\n",
    )
    findings, details, reads = run_counting(KamailioCheck(), snapshot)
    found = {f.code for f in findings}
    assert {"kamailio.tls-files-missing", "kamailio.tls-profile-no-server-name"} <= found, found
    assert details["config"] == "/srv/sip/kamailio.cfg"
    assert details["tls_run_user"] == "sip"
    assert (reads["etc/default/kamailio"], reads["srv/sip/tls.cfg"]) == (1, 1), reads
