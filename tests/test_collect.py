"""`preflight collect`: host snapshots with secrets redacted, the POSIX sh collector, and the
round trip `collect` -> extract -> `check --root`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import (
    Snapshot,
    check_of,
    report_of,
    require_command,
    run_preflight,
    script,
    scripted,
)
from hostdata import DEBIAN7_OS_RELEASE
from snapshots_kernel import DEBIAN7_PROC_VERSION

MANIFEST = ".preflight-collect.json"
# Real file formats: a Kamailio DB URL define, an OpenVPN-ish key=value file, a dpkg .list.
KAMAILIO_CFG = """#!KAMAILIO
#!define DBURL "mysql://kamailio:kamailiorw@localhost/kamailio"
listen=udp:0.0.0.0:5060
modparam("auth_db", "password_column", "password")
"""
APP_CONF = """[database]
host = db.example.com
password = hunter2
API_KEY: sk-live-abcdef
# a comment stays
"""
PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7
-----END PRIVATE KEY-----
"""
CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ
-----END CERTIFICATE-----
"""
SECRETS = (
    b"hunter2",
    b"kamailiorw",
    b"sk-live-abcdef",
    b"MIIEvQIBADANBgkq",
    b"s3cr3t",
    b"HOME=/root",
)


def extract(tarball: Path, into: Path) -> Path:
    into.mkdir()
    with tarfile.open(tarball) as archive:
        archive.extractall(into)  # noqa: S202 - our own tarball, in a test
    return into


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry below root: file content, or None for a folder; the manifest left out."""
    found: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = Path(folder, name)
            # a device node (dev/net/tun) is recorded, not read
            found[os.path.relpath(path, root)] = path.read_bytes() if path.is_file() else b"?"
    found.pop(MANIFEST, None)
    return found


@pytest.fixture
def secret_host(snapshot: Snapshot) -> Snapshot:
    """A host whose files hold every kind of secret the collectors must not copy."""
    snapshot.write("etc/os-release", DEBIAN7_OS_RELEASE)
    snapshot.write("proc/version", DEBIAN7_PROC_VERSION + "\n")
    snapshot.write("proc/1/environ", b"HOME=/root\0container=lxc\0DB_PASSWORD=s3cr3t\0")
    snapshot.write(
        "proc/4242/cmdline",
        b"mysqld\0--password\0s3cr3t\0--user=mysql\0--db=postgres://app:s3cr3t@db/app\0",
    )
    snapshot.write(
        "var/lib/dpkg/info/linux-image-3.2.0-4-amd64.list",
        "/boot/vmlinuz-3.2.0-4-amd64\n",
        mtime=1388534400,
    )
    script(snapshot, "pass fine all good\n")
    snapshot.write("etc/preflight-scripted/kamailio.cfg", KAMAILIO_CFG)
    snapshot.write("etc/preflight-scripted/app.conf", APP_CONF)
    snapshot.write("etc/preflight-scripted/server.key", "not even PEM, still a key\n")
    snapshot.write("srv/preflight-scripted/tls/key.pem", PRIVATE_KEY)
    snapshot.write("srv/preflight-scripted/tls/cert.pem", CERTIFICATE)
    snapshot.write("srv/preflight-scripted/data.bin", b"\x7fELF\0\0password=hunter2\0\x01")
    # relative: the sh script, given a ROOT other than /, resolves links on the machine it runs on
    snapshot.symlink("srv/preflight-scripted/current", "tls")
    snapshot.symlink("etc/preflight-scripted/app-link.conf", "app.conf")
    return snapshot


def test_collect_redacts_secrets_and_never_copies_private_keys(
    secret_host: Snapshot, tmp_path: Path
) -> None:
    tarball = tmp_path / "host.tar.gz"
    run = scripted("collect", str(tarball), "--root", str(secret_host))
    assert run.returncode == 0, run.stderr
    assert re.match(
        r"preflight: wrote .*host\.tar\.gz: \d+ files, \d+ redacted, 2 private keys "
        r"withheld",
        run.stdout,
    )
    assert tarball.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == [
        "host",
        "host.tar.gz",
    ]  # written atomically, no leftovers
    files = tree(extract(tarball, tmp_path / "x"))
    blob = b"\n".join(v for v in files.values() if v)
    for secret in (*SECRETS, b"BEGIN PRIVATE KEY"):
        assert secret not in blob.replace(b"password=hunter2", b""), secret

    assert files["proc/1/environ"] == b"container=lxc\0"
    assert files["proc/4242/cmdline"] == (
        b"mysqld\0--password\0REDACTED\0--user=mysql\0--db=postgres://app:REDACTED@db/app\0"
    )
    app = files["etc/preflight-scripted/app.conf"].decode()
    assert "password = REDACTED\n" in app and "API_KEY: REDACTED\n" in app
    assert "host = db.example.com\n" in app and "# a comment stays\n" in app
    cfg = files["etc/preflight-scripted/kamailio.cfg"].decode()
    assert '"mysql://kamailio:REDACTED@localhost/kamailio"' in cfg
    assert "listen=udp:0.0.0.0:5060\n" in cfg  # what the checks parse is untouched
    # keys exist (a check may look for them) but are empty
    assert files["etc/preflight-scripted/server.key"] == b""
    assert files["srv/preflight-scripted/tls/key.pem"] == b""
    assert files["srv/preflight-scripted/current"] is None  # a linked folder is not descended
    assert files["etc/preflight-scripted/app-link.conf"] == files["etc/preflight-scripted/app.conf"]
    assert files["srv/preflight-scripted/tls/cert.pem"] == CERTIFICATE.encode()
    assert files["srv/preflight-scripted/data.bin"] == b"\x7fELF\0\0password=hunter2\0\x01"
    # dpkg .list mtimes are install dates for the kernel check
    listing = tmp_path / "x/var/lib/dpkg/info/linux-image-3.2.0-4-amd64.list"
    assert listing.stat().st_mtime == 1388534400
    manifest = json.loads((tmp_path / "x" / MANIFEST).read_text())
    assert "etc/preflight-scripted/*" in manifest["patterns"]
    assert "srv/preflight-scripted/tls/key.pem" in manifest["withheld"]
    assert "proc/1/environ" in manifest["redacted"]

    # the snapshot is a valid --root: same host facts as the original
    snap = scripted("facts", "--root", str(tmp_path / "x"))
    orig = scripted("facts", "--root", str(secret_host))
    assert json.loads(snap.stdout)["os"] == json.loads(orig.stdout)["os"]
    assert json.loads(snap.stdout)["container"] == "lxc"


def test_sh_script_collects_the_same_snapshot(secret_host: Snapshot, tmp_path: Path) -> None:
    dash = require_command("dash")
    run = scripted("collect", "--print-script")
    assert run.returncode == 0 and run.stdout.startswith("#!/bin/sh\n")
    assert "srv/preflight-scripted/**" in run.stdout  # the loaded checks' paths, plugins too
    script = tmp_path / "preflight-collect.sh"
    script.write_text(run.stdout)
    assert subprocess.run([dash, "-n", str(script)]).returncode == 0
    sh = subprocess.run(
        [dash, str(script), str(tmp_path / "sh.tar.gz"), str(secret_host)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert sh.returncode == 0, sh.stderr
    assert sh.stderr == ""
    assert (tmp_path / "sh.tar.gz").stat().st_mode & 0o777 == 0o600
    assert (
        scripted("collect", str(tmp_path / "py.tar.gz"), "--root", str(secret_host)).returncode == 0
    )
    by_sh = tree(extract(tmp_path / "sh.tar.gz", tmp_path / "sh"))
    by_py = tree(extract(tmp_path / "py.tar.gz", tmp_path / "py"))
    assert sorted(by_sh) == sorted(by_py)
    assert by_sh == by_py  # byte for byte: the same redaction
    listing = "var/lib/dpkg/info/linux-image-3.2.0-4-amd64.list"
    assert (tmp_path / "sh" / listing).stat().st_mtime == 1388534400
    withheld = json.loads((tmp_path / "sh" / MANIFEST).read_text())["withheld"]
    assert "srv/preflight-scripted/tls/key.pem" in withheld


def test_live_round_trip_gives_the_same_diagnosis(tmp_path: Path) -> None:
    """collect here, extract, `check --root`: the same result for what needs no live process."""
    dash = require_command("dash")
    busy = subprocess.Popen(["sh", "-c", "sleep 60", "mysqld", "--password", "hunter2"])
    try:
        script = tmp_path / "collect.sh"
        script.write_text(scripted("collect", "--print-script").stdout)
        # both collectors at once: the sh one forks for every file and takes longest
        sh = subprocess.Popen(
            [dash, str(script), str(tmp_path / "sh.tar.gz")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        collected = scripted("collect", str(tmp_path / "live.tar.gz"))
        live = run_preflight("check", "-f", "json")
        _, sh_errors = sh.communicate(timeout=120)
    finally:
        busy.kill()
        busy.wait()
    assert collected.returncode == 0, collected.stderr
    assert sh.returncode == 0, sh_errors
    live_root = extract(tmp_path / "live.tar.gz", tmp_path / "py")
    sh_root = extract(tmp_path / "sh.tar.gz", tmp_path / "sh")
    cmdline = (live_root / f"proc/{busy.pid}/cmdline").read_bytes()
    assert cmdline == b"sh\0-c\0sleep 60\0mysqld\0--password\0REDACTED\0"

    def stable(root: Path) -> set[str]:  # processes come and go between the two collectors
        return {p for p in tree(root) if not re.match(r"proc/\d+(/|$)", p)}

    assert stable(live_root) == stable(sh_root)
    assert "proc/version" in stable(live_root) and "var/lib/dpkg/status" in stable(live_root)

    from_py = run_preflight("check", "-f", "json", "--root", str(live_root))
    from_sh = run_preflight("check", "-f", "json", "--root", str(sh_root))
    live_report, py_report, sh_report = report_of(live), report_of(from_py), report_of(from_sh)
    live_kernel = check_of(live_report, "kernel")
    for report in (py_report, sh_report):
        assert dict(report["host"], root="/") == live_report["host"]
        # the kernel check reads only files: it must reach the same verdict from the snapshot
        kernel = check_of(report, "kernel")
        assert (kernel["status"], kernel["code"]) == (live_kernel["status"], live_kernel["code"])
        assert kernel["details"] == live_kernel["details"]


def test_collect_usage_errors_exit_64(tmp_path: Path) -> None:
    for args, words in (
        (["collect"], "collect"),
        (["collect", str(tmp_path / "nosuch" / "x.tar.gz")], "does not exist"),
        (["collect", str(tmp_path / "x.tar.gz"), "--root", str(tmp_path / "nosuch")], "--root"),
        (["collect", "x.tar.gz", "--print-script"], "--print-script"),
    ):
        run = run_preflight(*args)
        assert run.returncode == 64, args
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, run.stderr)
    assert os.listdir(tmp_path) == []
