"""`preflight collect`: host snapshots with secrets redacted, the POSIX sh collector, and the
round trip `collect` -> extract -> `check --root`."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from hostdata import DEBIAN7_OS_RELEASE
from snapshots_kernel import DEBIAN7_PROC_VERSION
from support.cli import NOBODY, as_user, check_of, preflight_argv, report_of, run_preflight
from support.components import (
    require_command,
    require_nobody_can_run,
    require_root,
    world_readable_dir,
)
from support.kamailio import free_port
from support.plugins import script, scripted
from support.snapshot import Snapshot

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
    # withheld: the two keys and data.bin (a NUL byte: not text, so treated as a secret)
    assert re.match(
        r"preflight: wrote .*host\.tar\.gz: \d+ files, \d+ redacted, 3 withheld",
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
        assert secret not in blob, secret

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
    assert files["srv/preflight-scripted/data.bin"] == b""
    # dpkg .list mtimes are install dates for the kernel check
    listing = tmp_path / "x/var/lib/dpkg/info/linux-image-3.2.0-4-amd64.list"
    assert listing.stat().st_mtime == 1388534400
    manifest = json.loads((tmp_path / "x" / MANIFEST).read_text())
    assert "etc/preflight-scripted/*" in manifest["patterns"]
    assert "srv/preflight-scripted/tls/key.pem" in manifest["withheld"]
    assert "proc/1/environ" in manifest["redacted"]
    assert "srv/preflight-scripted/data.bin" in manifest["withheld"]

    # the snapshot is a valid --root: same host facts as the original
    snap = scripted("facts", "--root", str(tmp_path / "x"))
    orig = scripted("facts", "--root", str(secret_host))
    assert json.loads(snap.stdout)["os"] == json.loads(orig.stdout)["os"]
    assert json.loads(snap.stdout)["container"] == "lxc"


def test_sh_script_collects_the_same_snapshot(secret_host: Snapshot, tmp_path: Path) -> None:
    """One collector (issue 12): `preflight collect` runs the very script `--print-script`
    prints, so the script run by dash on its own gives the same snapshot byte for byte, and
    the Python module holds no redaction or path logic of its own."""
    import preflight.collect as collect_module

    source = Path(collect_module.__file__).read_text()
    assert "REDACTED" not in source and "def redact" not in source
    assert "os.walk" not in source and "readlink" not in source and "listdir" not in source
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
    manifests = [json.loads((tmp_path / d / MANIFEST).read_text()) for d in ("sh", "py")]
    for manifest in manifests:
        manifest.pop("generated_at")
    assert manifests[0] == manifests[1]
    assert "srv/preflight-scripted/tls/key.pem" in manifests[0]["withheld"]


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


# ------------------------------------------------- attacks (issue 18, items 4, 9, 13, 14)
def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as archive:
        return {m.name.removeprefix("./"): m for m in archive.getmembers()}


def content(tarball: Path, name: str) -> bytes:
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(name)
        assert handle is not None, name
        return handle.read()


def both_collectors(root: Snapshot, tmp_path: Path) -> list[Path]:
    """The snapshot made by `preflight collect` and by the printed script run with dash."""
    dash = require_command("dash")
    py = tmp_path / "py.tar.gz"
    run = scripted("collect", str(py), "--root", str(root))
    assert run.returncode == 0, run.stderr
    script = tmp_path / "collect.sh"
    script.write_text(scripted("collect", "--print-script").stdout)
    sh = tmp_path / "sh.tar.gz"
    proc = subprocess.run(
        [dash, str(script), str(sh), str(root)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return [py, sh]


def test_absolute_links_under_root_never_reach_this_machines_files(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """A snapshot's `etc/kamailio/tls.cfg -> /etc/shadow` once put this machine's shadow file in
    the tarball. Links resolve inside ROOT, for files and for the folders a pattern lists."""
    require_root()
    live_shadow = Path("/etc/shadow").read_bytes()
    script(snapshot, "pass fine all good\n")
    snapshot.write("etc/shadow", "root:*:19000:0:99999:7:::\n")
    snapshot.symlink("etc/preflight-scripted/tls.cfg", "/etc/shadow")
    snapshot.symlink("etc/preflight-scripted/gone.cfg", "/etc/nosuch-in-root")
    snapshot.symlink("etc/preflight-scripted/loop.cfg", "/etc/preflight-scripted/loop.cfg")
    # A folder link: the pattern srv/preflight-scripted/** must list ROOT/etc, not /etc.
    snapshot.write("etc/only-in-root.conf", "x = 1\n")
    snapshot.symlink("srv/preflight-scripted", "/etc")
    for tarball in both_collectors(snapshot, tmp_path):
        names = members(tarball)
        assert content(tarball, "etc/preflight-scripted/tls.cfg") == b"root:*:19000:0:99999:7:::\n"
        assert "etc/preflight-scripted/gone.cfg" not in names
        assert "etc/preflight-scripted/loop.cfg" not in names
        assert "srv/preflight-scripted/only-in-root.conf" in names
        assert "srv/preflight-scripted/ld.so.conf" not in names  # a file of this machine's /etc
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                assert handle is None or live_shadow not in handle.read(), member.name
        manifest = json.loads(content(tarball, MANIFEST))
        assert manifest["skipped"]["etc/preflight-scripted/loop.cfg"] == "symbolic link loop"


def test_only_the_tun_character_device_is_stored_anything_else_is_metadata(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """Extracting a snapshot as root creates its device nodes: a world-writable block device
    7:0 at dev/net/tun would hand every user the loop disk."""
    require_root()
    script(snapshot, "pass fine all good\n")
    snapshot.mkdir("dev/net")
    tun = snapshot.root / "dev/net/tun"
    cases = [
        (stat.S_IFBLK, (7, 0), "block device 7:0"),
        (stat.S_IFCHR, (1, 3), "character device 1:3"),
        (stat.S_IFCHR, (10, 200), None),
    ]
    for kind, numbers, described in cases:
        tun.unlink(missing_ok=True)
        os.mknod(tun, 0o666 | kind, os.makedev(*numbers))
        os.chmod(tun, 0o666)
        folder = tmp_path / f"{numbers[0]}-{numbers[1]}"
        folder.mkdir()
        for tarball in both_collectors(snapshot, folder):
            member = members(tarball).get("dev/net/tun")
            skipped = json.loads(content(tarball, MANIFEST))["skipped"]
            if described is None:  # the real tun device: stored, judged by its numbers
                assert member is not None and member.ischr()
                assert (member.devmajor, member.devminor) == (10, 200)
                assert "dev/net/tun" not in skipped
            else:
                assert member is None, (numbers, member)
                assert described in skipped["dev/net/tun"] and "metadata" in skipped["dev/net/tun"]


def test_redaction_is_linear_on_hostile_lines(snapshot: Snapshot, tmp_path: Path) -> None:
    """`password` x 32768 on one line took 113 s. Long runs of every token the redactor looks
    for: each collector must finish in seconds and still mask what follows a key."""
    script(snapshot, "pass fine all good\n")
    runs = 32768
    lines = [
        "password" * runs,
        "password" * runs + "=hunter2",
        "pat " * runs,
        "://" * runs + "u:hunter2@h",
        "@" * runs,
        '"' * runs,
        "'," * runs,
        " " * runs + "token: hunter2",
        "#!define " + "a" * runs,
        "#!substdef " + '"/' * runs,
    ]
    snapshot.write("etc/preflight-scripted/hostile.cfg", "\n".join(lines) + "\n")
    started = time.monotonic()
    tarballs = both_collectors(snapshot, tmp_path)
    assert time.monotonic() - started < 30
    for tarball in tarballs:
        data = content(tarball, "etc/preflight-scripted/hostile.cfg")
        assert b"hunter2" not in data
        assert data.count(b"\n") == len(lines)  # line structure kept


def test_sh_collector_temp_file_is_unpredictable_under_planted_symlinks(tmp_path: Path) -> None:
    """With fs.protected_symlinks=0 (this VM; kernels before 3.6 such as Debian 7's) another
    user pre-plants symlinks at every name `$$` could give the temp file, pointing at a file of
    root's. The script makes its temp file with mktemp in the target folder: nothing followed."""
    require_nobody_can_run()
    dash = require_command("dash")
    sysctl = Path("/proc/sys/fs/protected_symlinks")
    previous = sysctl.read_text().strip()
    victim = tmp_path / "victim"
    victim.write_text("root only\n")
    victim.chmod(0o600)
    script_path = tmp_path / "collect.sh"
    script_path.write_text(scripted("collect", "--print-script", "--no-plugins").stdout)
    script_path.chmod(0o644)
    planter = (
        "import os, sys\n"
        "folder, victim, first = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "for pid in range(first, first + 3000):\n"
        "    for name in (f'.host.tar.gz.preflight-tmp-{pid}-sh.tmp',"
        " f'.host.tar.gz.preflight-tmp-{pid}-XXXXXXXXXX'):\n"
        "        os.symlink(victim, os.path.join(folder, name))\n"
    )
    try:
        sysctl.write_text("0\n")
        with world_readable_dir("preflight-sticky-", mode=0o1777) as shared:
            last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
            subprocess.run(
                [
                    *as_user(NOBODY),
                    sys.executable,
                    "-c",
                    planter,
                    str(shared),
                    str(victim),
                    str(last + 1),
                ],
                check=True,
                cwd="/",
            )
            proc = subprocess.run(
                [dash, str(script_path), str(shared / "host.tar.gz")],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr
            tarball = shared / "host.tar.gz"
            assert tarball.is_file() and not tarball.is_symlink()
            assert tarball.stat().st_uid == 0 and tarball.stat().st_mode & 0o777 == 0o600
            assert MANIFEST in members(tarball)
            planted = [e for e in os.listdir(shared) if e != "host.tar.gz"]
            assert len(planted) == 6000 and all(os.path.islink(shared / e) for e in planted)
    finally:
        sysctl.write_text(previous + "\n")
    assert victim.read_text() == "root only\n" and victim.stat().st_mode & 0o777 == 0o600


def test_sh_collector_refuses_folders_other_accounts_control(tmp_path: Path) -> None:
    """The shell cannot write through a descriptor it checked, so a folder whose names another
    account can change is refused with one line naming it; `preflight collect` (descriptors)
    writes there safely."""
    require_nobody_can_run()
    dash = require_command("dash")
    script_path = tmp_path / "collect.sh"
    script_path.write_text(scripted("collect", "--print-script", "--no-plugins").stdout)
    with world_readable_dir("preflight-shared-", mode=0o777) as shared:
        owned = shared / "service"
        owned.mkdir()
        os.chown(owned, NOBODY, NOBODY)
        for folder, words in ((shared, "world-writable"), (owned, "another account")):
            proc = subprocess.run(
                [dash, str(script_path), str(folder / "host.tar.gz")],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 64, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and str(folder) in lines[0] and words in lines[0], lines
        assert os.listdir(owned) == []
        run = run_preflight("collect", str(owned / "host.tar.gz"), "--no-plugins")
        assert run.returncode == 0, run.stderr
        assert (owned / "host.tar.gz").stat().st_uid == 0


# -------------------------------------------------- what the kamailio check reads, anywhere
def openssl_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A real self-signed certificate and its private key (PEM), made by openssl."""
    openssl = require_command("openssl")
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
         f"/CN={name}.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def key_body(key: Path) -> list[bytes]:
    """The base64 lines of a PEM key: none of them may reach a snapshot."""
    return [line for line in key.read_bytes().splitlines() if line and b"-----" not in line]


def certificate_subject(path: Path) -> str:
    """What `openssl x509` reads from a PEM file (its first certificate)."""
    run = subprocess.run(
        [require_command("openssl"), "x509", "-noout", "-subject", "-in", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def in_private_mounts(stage: Path) -> list[str]:
    """A prefix running the rest in private mount and pid namespaces where /etc/kamailio and
    /srv are fresh tmpfs folders holding `stage`'s etc-kamailio and srv trees (and, when
    `stage` has a file default-kamailio, /etc/default/kamailio is that file): the machine's
    own files are never touched, and no Kamailio of the machine is visible."""
    defaults = stage / "default-kamailio"
    setup = (
        "set -e; mount --make-rprivate /; "
        "mount -t tmpfs -o mode=755 tmpfs /etc/kamailio; mount -t tmpfs -o mode=755 tmpfs /srv; "
        f"cp -a {stage}/etc-kamailio/. /etc/kamailio/; cp -a {stage}/srv/. /srv/; "
        + (f"mount --bind {defaults} /etc/default/kamailio; " if defaults.exists() else "")
        + 'exec "$@"'
    )
    return ["unshare", "-m", "-p", "-f", "--mount-proc", "sh", "-c", setup, "sh"]


def test_collect_copies_includes_tls_config_and_certificates_outside_etc_kamailio(
    tmp_path: Path,
) -> None:
    """Issue 13 item 9: a config in /etc/kamailio includes a file in /srv and names a tls.cfg
    there, whose certificates, CA and key live under /srv too. `collect` copies them (the key as
    metadata only), and `check --root` on the snapshot reaches the live verdict, which here
    includes a real failure (a CRL that does not exist) so the comparison is not vacuous."""
    require_root()
    require_command("unshare")
    kamailio = require_command("kamailio")
    stage = tmp_path / "stage"
    etc, srv = stage / "etc-kamailio", stage / "srv"
    (srv / "sip/tls").mkdir(parents=True)
    (srv / "sip/private").mkdir()
    etc.mkdir()
    cert, key = openssl_pair(srv / "sip/tls", "server")
    key = key.rename(srv / "sip/private/server-key.pem")  # a key without a .key name
    ca, ca_key = openssl_pair(tmp_path, "ca")
    (srv / "sip/tls/ca.pem").write_bytes(ca.read_bytes())
    # Readable by the kamailio account through its folder, as the Debian package sets it up.
    subprocess.run(["chgrp", "kamailio", str(key), str(key.parent)], check=True)
    key.chmod(0o640)
    key.parent.chmod(0o750)
    (etc / "kamailio.cfg").write_text(
        "#!KAMAILIO\n"
        "listen=udp:127.0.0.1:5090\n"
        "enable_tls=yes\n"  # without it the tls module reads no certificate (nor the CRL)
        'loadmodule "sl.so"\n'
        '# include_file "/srv/sip/commented-out.cfg"\n'
        'include_file "/srv/sip/routes.cfg"\n'
        'loadmodule "tls.so"\n'
        'modparam("tls", "config", "/srv/sip/tls.cfg")\n'
    )
    (srv / "sip/routes.cfg").write_text(
        'import_file "local/extra.cfg"\nrequest_route {\n    sl_send_reply("404", "x");\n}\n'
    )
    (srv / "sip/local").mkdir()
    (srv / "sip/local/extra.cfg").write_text("listen=tcp:127.0.0.1:5091\n")
    (srv / "sip/tls.cfg").write_text(
        "[server:default]\n"
        "method = TLSv1.2+\n"
        "certificate = /srv/sip/tls/server.pem\n"
        "private_key = /srv/sip/private/server-key.pem\n"
        "ca_list = /srv/sip/tls/ca.pem\n"
        "crl = /srv/sip/tls/revoked.pem\n"
    )
    tarball = tmp_path / "host.tar.gz"
    prefix = in_private_mounts(stage)
    live = run_preflight("check", "kamailio", "-f", "json", "--no-plugins", prefix=prefix)
    collected = run_preflight("collect", str(tarball), "--no-plugins", prefix=prefix)
    assert collected.returncode == 0, collected.stderr
    snap = extract(tarball, tmp_path / "snap")
    (live_result,) = report_of(live)["checks"]
    from_snapshot = run_preflight("check", "kamailio", "-f", "json", "--root", str(snap))
    (snap_result,) = report_of(from_snapshot)["checks"]

    # The live run really judged this config with Kamailio, and found the missing CRL.
    assert live_result["details"]["resolved_by"] == "kamailio -c", live_result
    assert live_result["details"]["binary"] == kamailio
    missing = [
        f["message"] for f in live_result["findings"] if f["code"].startswith("kamailio.tls")
    ]
    assert len(missing) == 1 and "/srv/sip/tls/revoked.pem" in missing[0], live_result
    # The same verdict on the configuration from the snapshot: the same files read, the same
    # sockets, the same findings. (Whether Kamailio runs is not part of it: a snapshot holds
    # no process list, and nothing runs in the private pid namespace.)
    for key_name in ("files", "expected", "tls_config", "config"):
        assert snap_result["details"][key_name] == live_result["details"][key_name], key_name
    running = {"kamailio.not-running", "kamailio.running-unknown"}
    assert [(f["code"], f["message"]) for f in snap_result["findings"]] == [
        (f["code"], f["message"]) for f in live_result["findings"] if f["code"] not in running
    ]
    assert snap_result["status"] == live_result["status"]

    # What went in: the followed files, public certificates byte for byte, the key as an
    # empty file with its mode and owner (its size in the manifest), never its content.
    assert (snap / "srv/sip/local/extra.cfg").read_text() == "listen=tcp:127.0.0.1:5091\n"
    assert (snap / "srv/sip/tls/server.pem").read_bytes() == cert.read_bytes()
    assert (snap / "srv/sip/tls/ca.pem").read_bytes() == ca.read_bytes()
    assert not (snap / "srv/sip/commented-out.cfg").exists()
    stored_key = snap / "srv/sip/private/server-key.pem"
    assert stored_key.read_bytes() == b""
    assert stat.S_IMODE(stored_key.stat().st_mode) == 0o640
    assert stored_key.stat().st_gid == key.stat().st_gid
    assert stat.S_IMODE(stored_key.parent.stat().st_mode) == 0o750
    manifest = json.loads((snap / MANIFEST).read_text())
    assert "srv/sip/private/server-key.pem" in manifest["withheld"]
    assert (
        f"{key.stat().st_size} bytes"
        in manifest["withheld_metadata"]["srv/sip/private/server-key.pem"]
    )
    everything = b"".join(v for v in tree(snap).values() if v)
    assert not [line for line in [*key_body(key), *key_body(ca_key)] if line in everything]


def test_combined_certificate_and_key_keeps_the_certificates_only(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """Issue 13: Kamailio's default cert.pem holds the certificate and the key in one file.
    The snapshot keeps every certificate block (a chain: leaf, key, intermediate) and drops
    the key block: the key bytes are absent, the certificate still parses."""
    leaf, leaf_key = openssl_pair(tmp_path, "leaf")
    chain, chain_key = openssl_pair(tmp_path, "intermediate")
    combined = leaf.read_bytes() + leaf_key.read_bytes() + chain.read_bytes()
    snapshot.write("etc/kamailio/kamailio.cfg", 'loadmodule "tls.so"\n')
    snapshot.write("etc/kamailio/cert.pem", combined)
    snapshot.write("etc/kamailio/key-only.pem", chain_key.read_bytes())
    tarball = tmp_path / "host.tar.gz"
    for run in (
        run_preflight("collect", str(tarball), "--root", str(snapshot), "--no-plugins"),
        # the same script, printed, run by sh as an old host would
        subprocess.run(
            [
                "sh",
                "-c",
                run_preflight("collect", "--print-script", "--no-plugins").stdout,
                "collect",
                str(tmp_path / "sh.tar.gz"),
                str(snapshot),
            ],
            capture_output=True,
            text=True,
        ),  # fmt: skip
    ):
        assert run.returncode == 0, run.stderr
    for name in ("host.tar.gz", "sh.tar.gz"):
        snap = extract(tmp_path / name, tmp_path / f"out-{name.split('.')[0]}")
        stored = (snap / "etc/kamailio/cert.pem").read_bytes()
        assert stored == leaf.read_bytes() + chain.read_bytes()
        assert certificate_subject(snap / "etc/kamailio/cert.pem") == "subject=CN = leaf.test"
        assert not [line for line in key_body(leaf_key) if line in stored]
        # a key without a certificate is withheld whole, as before
        assert (snap / "etc/kamailio/key-only.pem").read_bytes() == b""
        manifest = json.loads((snap / MANIFEST).read_text())
        assert "etc/kamailio/cert.pem" in manifest["redacted"]
        assert "etc/kamailio/key-only.pem" in manifest["withheld"]


def test_following_is_bounded_and_trusts_root_owned_files_only(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """An include cycle ends, `..` never climbs above ROOT, and a file another account can
    write is copied but what it names is not followed: it cannot point root's collector at
    /etc/shadow."""
    require_root()
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        'include_file "/srv/sip/loop.cfg"\ninclude_file "/srv/sip/user.cfg"\n',
    )
    fan_out = "".join(f'include_file "/srv/sip/n{i}.cfg"\n' for i in range(3000))
    snapshot.write(
        "srv/sip/loop.cfg",
        'include_file "loop.cfg"\ninclude_file "../../../../../../srv/sip/deep/a.cfg"\n'
        + 'include_file "loop.cfg"\n' * 3000
        + fan_out,
    )
    snapshot.write("srv/sip/deep/a.cfg", "listen=udp:127.0.0.1:5060\n")
    snapshot.write("srv/sip/user.cfg", 'include_file "/etc/shadow"\n')
    os.chown(snapshot.root / "srv/sip/user.cfg", NOBODY, NOBODY)
    snapshot.write("etc/shadow", "root:$y$j9T$secrethash:19000:0:99999:7:::\n")
    tarball = tmp_path / "host.tar.gz"
    started = time.monotonic()
    run = run_preflight("collect", str(tarball), "--root", str(snapshot), "--no-plugins")
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 30
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "srv/sip/deep/a.cfg" in names and "srv/sip/user.cfg" in names
    assert "etc/shadow" not in names
    assert not [n for n in names if ".." in n.split("/") or n.startswith("/")]


def test_following_is_linear_on_hostile_lines(snapshot: Snapshot, tmp_path: Path) -> None:
    """The follower reads every line of a config: long runs of the tokens it looks for finish
    in seconds, and the reference after them is still followed."""
    runs = 32768
    lines = [
        "modparam(" * runs,
        'modparam("tls", "config", ' * runs,
        "include_file " * runs,
        '"' * runs,
        "/*" * runs,
        "*/",
        'include_file "/srv/sip/after.cfg"',
    ]
    snapshot.write("etc/kamailio/kamailio.cfg", "\n".join(lines) + "\n")
    snapshot.write("srv/sip/after.cfg", "listen=udp:127.0.0.1:5060\n")
    snapshot.write("etc/kamailio/tls.cfg", "certificate = " + "/x" * runs + "\n")
    started = time.monotonic()
    tarballs = both_collectors(snapshot, tmp_path)
    assert time.monotonic() - started < 30
    for tarball in tarballs:
        assert content(tarball, "srv/sip/after.cfg") == b"listen=udp:127.0.0.1:5060\n"


def test_include_named_through_substdef_is_followed(snapshot: Snapshot, tmp_path: Path) -> None:
    """Kamailio applies `#!substdef`/`#!subst` to an include_file name; so does the follower,
    and the snapshot reads as the host does."""
    kamailio = require_command("kamailio")
    (tmp_path / "routes.cfg").write_text("listen=udp:127.0.0.1:5090\n")
    real = tmp_path / "real.cfg"
    real.write_text(
        f'#!substdef "!SIPDIR!{tmp_path}!g"\n#!subst "/ROUTES/routes/"\n'
        'include_file "SIPDIR/ROUTES.cfg"\n'
    )
    resolved = subprocess.run([kamailio, "-c", "-f", str(real)], capture_output=True, text=True)
    assert "udp: 127.0.0.1:5090" in resolved.stdout, resolved.stderr  # the truth
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        '#!substdef "!SIPDIR!/srv/sip!g"\n#!subst "/ROUTES/routes/"\n'
        'include_file "SIPDIR/ROUTES.cfg"\n',
    )
    snapshot.write("srv/sip/routes.cfg", "listen=udp:127.0.0.1:5090\n")
    tarball = tmp_path / "host.tar.gz"
    run = run_preflight("collect", str(tarball), "--root", str(snapshot), "--no-plugins")
    assert run.returncode == 0, run.stderr
    snap = extract(tarball, tmp_path / "snap")
    assert (snap / "srv/sip/routes.cfg").read_text() == "listen=udp:127.0.0.1:5090\n"
    (result,) = report_of(run_preflight("check", "kamailio", "-f", "json", "--root", str(snap)))[
        "checks"
    ]
    assert result["details"]["files"] == ["/etc/kamailio/kamailio.cfg", "/srv/sip/routes.cfg"]
    assert result["details"]["expected"] == ["udp:127.0.0.1:5090"]


def test_the_init_scripts_cfgfile_is_collected_with_its_includes(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """/etc/default/kamailio's CFGFILE= is the config Debian's init script starts (and the one
    the check judges when nothing runs): it and what it includes are collected, wherever they
    are, and its tls config is found next to it."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/init.d/kamailio", "#!/bin/sh\n", mode=0o755)
    snapshot.write("etc/default/kamailio", 'RUN_KAMAILIO=yes\nexport CFGFILE="/srv/sip/main.cfg"\n')
    snapshot.write(
        "srv/sip/main.cfg",
        'include_file "part.cfg"\nloadmodule "tls.so"\nmodparam("tls", "config", "tls.cfg")\n',
    )
    snapshot.write("srv/sip/part.cfg", "listen=udp:127.0.0.1:5092\n")
    snapshot.write("srv/sip/tls.cfg", "[server:default]\ncertificate = certs/c.pem\n")
    snapshot.write("srv/sip/certs/c.pem", CERTIFICATE)
    tarball = tmp_path / "host.tar.gz"
    run = run_preflight("collect", str(tarball), "--root", str(snapshot), "--no-plugins")
    assert run.returncode == 0, run.stderr
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"srv/sip/main.cfg", "srv/sip/part.cfg", "srv/sip/tls.cfg"} <= names
    assert content(tarball, "srv/sip/certs/c.pem") == CERTIFICATE.encode()


# ------------------------------------- whose path it is (review 13, items 4, 17, 18 and 12)
def swapped_host(tmp_path: Path) -> Path:
    """Review 13 item 4, as the reviewer set it up: root's config (a root-only /etc/kamailio)
    includes /srv/c/userdir/inc.cfg and its tls.cfg names /srv/c/userdir/user.crt; userdir is
    owned by nobody, who replaced both with links to /etc/shadow and /etc/gshadow. Besides: a
    sticky world-writable root folder holding a root-owned include (trustworthy: others cannot
    rename it), nobody's link and nobody's file (not trustworthy), and a second hard link to a
    root-only file (a kernel without protected_hardlinks lets anyone make one there); and a
    root-only certificate (copied, so the test sees that following still works)."""
    stage = tmp_path / "stage"
    etc, c = stage / "etc-kamailio", stage / "srv/c"
    for folder in (etc, c / "userdir", c / "drop", c / "certs", c / "private"):
        folder.mkdir(parents=True)
    (etc / "kamailio.cfg").write_text(
        "#!KAMAILIO\n"
        'include_file "/srv/c/userdir/inc.cfg"\n'
        'include_file "/srv/c/drop/root.cfg"\n'
        'include_file "/srv/c/drop/evil.cfg"\n'
        'include_file "/srv/c/drop/mine.cfg"\n'
        'include_file "/srv/c/drop/hard.cfg"\n'
        'loadmodule "tls.so"\n'
        'modparam("tls", "config", "/srv/c/tls.cfg")\n'
    )
    (c / "tls.cfg").write_text(
        "[server:default]\ncertificate = /srv/c/userdir/user.crt\nca_list = /srv/c/certs/ca.pem\n"
    )
    (c / "certs/ca.pem").write_text(CERTIFICATE)
    (c / "userdir/x").write_text("listen=udp:127.0.0.1:5060\n")
    (c / "userdir/inc.cfg").symlink_to("/etc/shadow")
    (c / "userdir/user.crt").symlink_to("/etc/gshadow")
    (c / "drop/root.cfg").write_text("listen=udp:127.0.0.1:5062\n")
    (c / "drop/evil.cfg").symlink_to("/etc/shadow")
    (c / "drop/mine.cfg").write_text("listen=udp:127.0.0.1:5063\n")
    (c / "private/secret").write_text("root-only: hunter2\n")
    (c / "private").chmod(0o700)
    os.link(c / "private/secret", c / "drop/hard.cfg")
    for entry in (c / "userdir", c / "userdir/x", c / "userdir/inc.cfg", c / "userdir/user.crt",
                  c / "drop/evil.cfg", c / "drop/mine.cfg"):  # fmt: skip
        os.lchown(entry, NOBODY, NOBODY)
    (c / "drop").chmod(0o1777)
    return stage


def secret_lines() -> list[bytes]:
    """Every entry of this machine's shadow and gshadow files (their real content)."""
    lines = [
        line
        for name in ("/etc/shadow", "/etc/gshadow")
        for line in Path(name).read_bytes().splitlines()
        if line.strip()
    ]
    assert lines
    return [*lines, b"hunter2"]


def leaked(tarball: Path, secrets: list[bytes]) -> list[str]:
    """Members of the tarball holding any of `secrets`."""
    found = []
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            data = handle.read() if handle else b""
            found += [f"{member.name}: {s[:12]!r}" for s in secrets if s in data]
    return found


def test_a_followed_name_another_account_can_swap_is_never_read(tmp_path: Path) -> None:
    """Review 13 item 4: `collect` copied /etc/shadow through a folder nobody owns. Now the
    content of a file is copied only when root alone controls every entry of its path; the
    others are stored empty, listed as withheld with the entry that made them untrusted."""
    require_root()
    require_command("unshare")
    stage = swapped_host(tmp_path)
    tarball = tmp_path / "host.tar.gz"
    run = run_preflight("collect", str(tarball), "--no-plugins", prefix=in_private_mounts(stage))
    assert run.returncode == 0, run.stderr
    assert leaked(tarball, secret_lines()) == []
    manifest = json.loads(content(tarball, MANIFEST))
    reasons = manifest["withheld_reasons"]
    # nobody's folder (whatever it holds), nobody's entries in a sticky folder, a hard link
    assert "/srv/c/userdir " in reasons["srv/c/userdir/inc.cfg"]
    assert "/srv/c/userdir " in reasons["srv/c/userdir/user.crt"]
    assert "/srv/c/drop/evil.cfg " in reasons["srv/c/drop/evil.cfg"]
    assert "owner 65534:65534" in reasons["srv/c/drop/mine.cfg"]
    assert "/srv/c/drop/hard.cfg (" in reasons["srv/c/drop/hard.cfg"]
    for name in reasons:
        assert content(tarball, name) == b"", name
    # What root alone controls is still copied and followed, a sticky root folder included.
    assert content(tarball, "srv/c/tls.cfg").startswith(b"[server:default]")
    assert content(tarball, "srv/c/certs/ca.pem") == CERTIFICATE.encode()
    assert content(tarball, "srv/c/drop/root.cfg") == b"listen=udp:127.0.0.1:5062\n"
    assert set(manifest["withheld"]) == set(reasons)


def test_swapping_links_while_collect_runs_never_leaks(tmp_path: Path) -> None:
    """Item 4, the race: nobody keeps swapping inc.cfg between its own file and a link to
    /etc/shadow (and user.crt to /etc/gshadow) while root collects, several times."""
    require_root()
    require_command("unshare")
    require_command("setpriv")
    stage = swapped_host(tmp_path)
    swapper = (
        "cd /srv/c/userdir || exit 1; while :; do "
        "ln -s /etc/shadow n.tmp; mv -f n.tmp inc.cfg; cp x n.tmp; mv -f n.tmp inc.cfg; "
        "ln -s /etc/gshadow n.tmp; mv -f n.tmp user.crt; cp x n.tmp; mv -f n.tmp user.crt; "
        "done"
    )
    rounds = 3
    race = (
        f'{" ".join(as_user(NOBODY))} sh -c "$0" & swapper=$!; '
        f"for i in $(seq {rounds}); do "
        f'"$@" collect {tmp_path}/race-$i.tar.gz --no-plugins || {{ kill $swapper; exit 1; }}; '
        "done; kill $swapper"
    )
    run = subprocess.run(
        [*in_private_mounts(stage), "sh", "-c", race, swapper, *preflight_argv()],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    secrets = secret_lines()
    for i in range(1, rounds + 1):
        tarball = tmp_path / f"race-{i}.tar.gz"
        assert leaked(tarball, secrets) == [], i
        # withheld (stored empty), or skipped when it was swapped in the middle of a readlink
        if "srv/c/userdir/inc.cfg" in members(tarball):
            assert content(tarball, "srv/c/userdir/inc.cfg") == b""
        assert content(tarball, "srv/c/drop/root.cfg") == b"listen=udp:127.0.0.1:5062\n"


def kamailio_sockets(config: Path, cwd: Path) -> str:
    """What real `kamailio -c` lists for `config` when started in `cwd`."""
    run = subprocess.run(
        [require_command("kamailio"), "-c", "-f", str(config)],
        capture_output=True, text=True, cwd=cwd, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_relative_include_is_looked_up_in_the_working_folder_first(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """Review 13 item 18: Kamailio opens a relative include in its working folder first, then
    next to the including file. A service starts in /, so the collector looks in ROOT first."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/default/kamailio", 'CFGFILE="/srv/sip/main.cfg"\n')
    snapshot.write("srv/sip/main.cfg", 'include_file "inc.cfg"\ninclude_file "only-here.cfg"\n')
    snapshot.write("inc.cfg", "listen=udp:127.0.0.1:25311\n")
    snapshot.write("srv/sip/inc.cfg", "listen=udp:127.0.0.1:25312\n")
    snapshot.write("srv/sip/only-here.cfg", "listen=udp:127.0.0.1:25313\n")
    # The truth: Kamailio started in the root folder reads root's inc.cfg and the other one
    # next to main.cfg.
    listed = kamailio_sockets(snapshot.root / "srv/sip/main.cfg", cwd=snapshot.root)
    assert "127.0.0.1:25311" in listed and "127.0.0.1:25313" in listed, listed
    assert "127.0.0.1:25312" not in listed, listed
    for tarball in both_collectors(snapshot, tmp_path):
        names = members(tarball)
        assert content(tarball, "inc.cfg") == b"listen=udp:127.0.0.1:25311\n"
        assert content(tarball, "srv/sip/only-here.cfg") == b"listen=udp:127.0.0.1:25313\n"
        assert "srv/sip/inc.cfg" not in names
    # The check reading the snapshot looks the includes up in the same order: the sockets the
    # real Kamailio listed.
    snap = extract(tmp_path / "sh.tar.gz", tmp_path / "snap")
    judged = run_preflight("check", "kamailio", "-f", "json", "--root", str(snap))
    result = check_of(report_of(judged), "kamailio")
    assert result["details"]["expected"] == ["udp:127.0.0.1:25311", "udp:127.0.0.1:25313"]


def test_dotdot_after_a_linked_folder_is_not_read_by_name(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """Review 13 item 17: `current/../shared.cfg` with current -> releases/7 is, for the kernel
    (and Kamailio), releases/shared.cfg, not srv/sip/shared.cfg. Such a name is not followed
    (the manifest says why); `..` that follows no link is followed as before."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        'include_file "/srv/sip/current/../shared.cfg"\n'
        'include_file "/srv/sip/releases/7/../common.cfg"\n',
    )
    snapshot.write("srv/sip/releases/7/routes.cfg", "")
    snapshot.symlink("srv/sip/current", "releases/7")
    snapshot.write("srv/sip/shared.cfg", "listen=udp:127.0.0.1:25321\n")
    snapshot.write("srv/sip/releases/shared.cfg", "listen=udp:127.0.0.1:25322\n")
    snapshot.write("srv/sip/releases/common.cfg", "listen=udp:127.0.0.1:25323\n")
    # The truth, with the same tree at its real place: the kernel's reading.
    real = tmp_path / "real.cfg"
    real.write_text(
        f'include_file "{snapshot.root}/srv/sip/current/../shared.cfg"\n'
        f'include_file "{snapshot.root}/srv/sip/releases/7/../common.cfg"\n'
    )
    listed = kamailio_sockets(real, cwd=tmp_path)
    assert "127.0.0.1:25322" in listed and "127.0.0.1:25321" not in listed, listed
    for tarball in both_collectors(snapshot, tmp_path):
        names = members(tarball)
        assert "srv/sip/shared.cfg" not in names
        assert content(tarball, "srv/sip/releases/common.cfg") == b"listen=udp:127.0.0.1:25323\n"
        skipped = json.loads(content(tarball, MANIFEST))["skipped"]
        assert "`..` after a symbolic link" in skipped["srv/sip/shared.cfg"]


def test_collect_with_a_config_copies_the_kamailio_config_it_names(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """Review 13 item 12: `collect -c pf.toml` copies `[checks.kamailio] config` (a name with
    wildcard characters taken literally) and what it includes, so `check --root` on the
    snapshot with the same pf.toml reads the configuration the host has, not "missing"."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("srv/r/sip[1].cfg", 'include_file "inc.cfg"\n')
    snapshot.write("srv/r/inc.cfg", "listen=udp:127.0.0.1:25331\n")
    snapshot.write("srv/r/sip1.cfg", "listen=udp:127.0.0.1:25332\n")  # what [1] would match
    pf_toml = tmp_path / "pf.toml"
    pf_toml.write_text('[checks.kamailio]\nconfig = "/srv/r/sip[1].cfg"\n')
    results = {}
    for name, extra in (("with", ["-c", str(pf_toml)]), ("without", [])):
        tarball = tmp_path / f"{name}.tar.gz"
        run = run_preflight("collect", str(tarball), "--root", str(snapshot), *extra)
        assert run.returncode == 0, run.stderr
        snap = extract(tarball, tmp_path / name)
        results[name] = snap
    snap = results["with"]
    assert (snap / "srv/r/sip[1].cfg").read_text() == 'include_file "inc.cfg"\n'
    assert (snap / "srv/r/inc.cfg").read_text() == "listen=udp:127.0.0.1:25331\n"
    assert not (snap / "srv/r/sip1.cfg").exists()
    live, from_snapshot = (
        check_of(
            report_of(
                run_preflight(
                    "check", "kamailio", "-f", "json", "--root", str(r), "-c", str(pf_toml)
                )
            ),
            "kamailio",
        )
        for r in (snapshot.root, snap)
    )
    assert live["details"]["files"] == ["/srv/r/sip[1].cfg", "/srv/r/inc.cfg"], live
    assert from_snapshot["details"]["files"] == live["details"]["files"]
    assert from_snapshot["details"]["expected"] == ["udp:127.0.0.1:25331"]
    assert [f["code"] for f in from_snapshot["findings"]] == [f["code"] for f in live["findings"]]
    assert "kamailio.config-invalid" not in [f["code"] for f in live["findings"]]
    # Without -c the collector does not know that config: the snapshot lacks it.
    assert not (results["without"] / "srv/r/sip[1].cfg").exists()


def test_a_running_instances_config_is_collected_only_when_it_is_trusted(tmp_path: Path) -> None:
    """Review 13 item 12: a Kamailio started by hand (`cd /srv/r && kamailio -f conf/main.cfg`)
    on a config outside /etc/kamailio: the live collector copies that config and its relative
    include, looked up in that instance's working folder first, as Kamailio does. The same
    start by nobody is not trusted: its config is not followed."""
    require_root()
    require_command("unshare")
    require_command("setpriv")
    kamailio = require_command("kamailio")
    port, in_cwd, beside = free_port(), free_port(), free_port()
    stage = tmp_path / "stage"
    (stage / "etc-kamailio").mkdir(parents=True)
    (stage / "srv/r/conf").mkdir(parents=True)
    (stage / "srv/r/conf/main.cfg").write_text(
        f'listen=udp:127.0.0.1:{port}\ninclude_file "routes.cfg"\nrequest_route {{\n    drop;\n}}\n'
    )
    (stage / "srv/r/routes.cfg").write_text(f"listen=udp:127.0.0.1:{in_cwd}\n")
    (stage / "srv/r/conf/routes.cfg").write_text(f"listen=udp:127.0.0.1:{beside}\n")
    listed = kamailio_sockets(stage / "srv/r/conf/main.cfg", cwd=stage / "srv/r")
    assert f"127.0.0.1:{in_cwd}" in listed and f"127.0.0.1:{beside}" not in listed, listed
    (stage / "srv/u").mkdir()
    (stage / "srv/u/conf").mkdir()
    (stage / "srv/u/conf/main.cfg").write_text(
        f"listen=udp:127.0.0.1:{free_port()}\nrequest_route {{\n    drop;\n}}\n"
    )
    for entry in ("srv/u", "srv/u/conf", "srv/u/conf/main.cfg"):
        os.chown(stage / entry, NOBODY, NOBODY)
    start = f"{kamailio} -DD -E -m 16 -M 4 -f conf/main.cfg"
    scenario = (
        f"mkdir /srv/run-a /srv/run-b && chown {NOBODY} /srv/run-b; "
        f"(cd /srv/r && exec {start} -P /srv/run-a/pid -Y /srv/run-a) >/dev/null 2>&1 & a=$!; "
        f"(cd /srv/u && exec {' '.join(as_user(NOBODY))} {start} -P /srv/run-b/pid "
        "-Y /srv/run-b) >/dev/null 2>&1 & b=$!; "
        "for i in $(seq 100); do [ -s /srv/run-a/pid ] && [ -s /srv/run-b/pid ] && break; "
        "sleep 0.1; done; kill -0 $a && kill -0 $b || { kill $a $b; exit 3; }; "
        '"$@"; rc=$?; kill $a $b; wait; exit $rc'
    )
    tarball = tmp_path / "host.tar.gz"
    run = subprocess.run(
        [*in_private_mounts(stage), "sh", "-c", scenario, "scenario",
         *preflight_argv("collect", str(tarball), "--no-plugins")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    names = members(tarball)
    assert content(tarball, "srv/r/conf/main.cfg").startswith(b"listen=udp:127.0.0.1:")
    assert content(tarball, "srv/r/routes.cfg") == f"listen=udp:127.0.0.1:{in_cwd}\n".encode()
    assert "srv/r/conf/routes.cfg" not in names
    assert "srv/u/conf/main.cfg" not in names


# ------------------------------------------ secrets named by structure (second review, R3)
SECRET_DEFAULTS = (
    "RUN_KAMAILIO=yes\n"
    "CFGFILE=/etc/kamailio/kamailio.cfg\n"
    "DBRWPW=S3cretDefaultPW\n"  # kamctlrc's names, as operators copy them here
    'DBROPW="S3cretReadOnly"\n'
    "export DBROOTPW='S3cretRootPW'\n"
)
SECRET_CONFIG = """#!KAMAILIO
#!define WITH_AUTH
#!define DBURL "mysql://kamailio:S3cretDBURL@localhost/kamailio"
#!define DBPW "S3cretDBPW"
#!define DBPASS "S3cretDefinePass"
#!define RADIUS_SHARED "S3cretShared"
#!define SIP_TOKEN S3cretBareToken
#!substdef "/SUBSTPW/S3cretSubst/"
#!subst "/apiSecret/S3cretCamel/"
listen=udp:127.0.0.1:{port}
listen=tls:127.0.0.1:{tls_port}
include_file "/srv/sip/listen.cfg"
loadmodule "sl.so"
#!ifdef WITH_RADIUS
loadmodule "auth_radius.so"
modparam("auth_radius", "radius_config", "/etc/radiusclient-ng/radiusclient.conf")
modparam("auth_db", "password_column", DBPW)
modparam("auth", "secret", "S3cretNonceSecret");
#!endif
request_route {{
    sl_send_reply("404", "x");
}}
"""
SECRET_VALUES = [
    b"S3cretDefaultPW", b"S3cretReadOnly", b"S3cretRootPW", b"S3cretDBURL", b"S3cretDBPW",
    b"S3cretDefinePass", b"S3cretShared", b"S3cretBareToken", b"S3cretSubst", b"S3cretCamel",
    b"S3cretNonceSecret",
]  # fmt: skip


def test_secret_names_are_redacted_by_structure_and_the_verdict_stays(tmp_path: Path) -> None:
    """Second review R3: `collect` copied kamctlrc's DBRWPW= from /etc/default/kamailio and
    `#!define DBPW`/`RADIUS_SHARED` values verbatim. A variable, #!define/#!subst name,
    modparam parameter or key whose name has a secret component (PW, PASS, SHARED, TOKEN,
    SECRET, ... or a suffix as in DBRWPW) has its value masked; names, flags without a value
    and file paths stay, so the real Kamailio's verdict (live, `kamailio -c`) and the one
    `check --root` reaches from the snapshot are the same."""
    require_root()
    require_command("unshare")
    require_command("kamailio")
    port = free_port()
    stage = tmp_path / "stage"
    (stage / "etc-kamailio").mkdir(parents=True)
    (stage / "srv/sip").mkdir(parents=True)
    (stage / "default-kamailio").write_text(SECRET_DEFAULTS)
    config = SECRET_CONFIG.format(port=port, tls_port=free_port())
    (stage / "etc-kamailio/kamailio.cfg").write_text(config)
    (stage / "srv/sip/listen.cfg").write_text(
        f'listen=tcp:127.0.0.1:{port}\n#!define LISTEN_AUTH_KEY "S3cretDefinePass"\n'
    )
    prefix = in_private_mounts(stage)
    tarball = tmp_path / "host.tar.gz"
    live = run_preflight("check", "kamailio", "-f", "json", "--no-plugins", prefix=prefix)
    collected = run_preflight("collect", str(tarball), "--no-plugins", prefix=prefix)
    assert collected.returncode == 0, collected.stderr
    assert leaked(tarball, SECRET_VALUES) == []

    snap = extract(tarball, tmp_path / "snap")
    cfg = (snap / "etc/kamailio/kamailio.cfg").read_text()
    for kept in (
        "#!define WITH_AUTH\n",  # a flag without a value
        '#!define DBPW "REDACTED"\n',  # the name and the quotes stay
        "#!define SIP_TOKEN REDACTED\n",
        '#!substdef "/SUBSTPW/REDACTED/"\n',
        'modparam("auth_radius", "radius_config", "/etc/radiusclient-ng/radiusclient.conf")\n',
        'modparam("auth_db", "password_column", REDACTED)\n',  # its `)` stays
        'modparam("auth", "secret", "REDACTED");\n',
        f"listen=udp:127.0.0.1:{port}\n",
    ):
        assert kept in cfg, kept
    defaults = (snap / "etc/default/kamailio").read_text()
    assert "DBRWPW=REDACTED\n" in defaults and "CFGFILE=/etc/kamailio/kamailio.cfg\n" in defaults
    assert (snap / "srv/sip/listen.cfg").read_text().startswith(f"listen=tcp:127.0.0.1:{port}\n")

    (live_result,) = report_of(live)["checks"]
    (snap_result,) = report_of(
        run_preflight("check", "kamailio", "-f", "json", "--root", str(snap))
    )["checks"]
    assert live_result["details"]["resolved_by"] == "kamailio -c", live_result
    assert live_result["details"]["expected"] == [f"udp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}"]
    for key_name in ("files", "expected", "config"):
        assert snap_result["details"][key_name] == live_result["details"][key_name], key_name
    # The same findings about the configuration (a tls: listen without enable_tls, so the
    # comparison is not vacuous); whether it runs is not in a snapshot, nor in this namespace.
    running = {"kamailio.not-running", "kamailio.running-unknown"}
    found = [
        [(f["code"], f["message"]) for f in result["findings"] if f["code"] not in running]
        for result in (live_result, snap_result)
    ]
    assert found[0] == found[1]
    assert [code for code, _ in found[0]] == ["kamailio.tls-disabled"]


def test_path_values_of_key_names_stay_and_the_sh_collector_agrees(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """The same rule in both ways of running the one script: a certificate, CA or private key
    *path* under a key-ish name stays (the check reads it; the key file itself is withheld),
    a camelCase or dashed secret name is masked, `auth_radius` as a module name masks nothing."""
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        'modparam("tls", "private_key", "/etc/kamailio/kamailio-selfsigned.key")\n'
        'modparam("auth_radius", "radius_config", "/etc/radiusclient.conf")\n'
        '#!define TLS_KEY "/etc/kamailio/tls/key.pem"\n'
        "apiToken: S3cretCamelToken\n"
        "radius-shared-key = S3cretDashed\n",
    )
    snapshot.write(
        "etc/kamailio/tls.cfg",
        "[server:default]\nprivate_key = /etc/kamailio/kamailio-selfsigned.key\n"
        "certificate = /etc/kamailio/kamailio-selfsigned.pem\nca_list = ca.pem\n",
    )
    for tarball in both_collectors(snapshot, tmp_path):
        assert leaked(tarball, [b"S3cretCamelToken", b"S3cretDashed"]) == []
        cfg = content(tarball, "etc/kamailio/kamailio.cfg").decode()
        original = (snapshot.root / "etc/kamailio/kamailio.cfg").read_text()
        assert cfg.splitlines()[:3] == original.splitlines()[:3]
        assert "apiToken: REDACTED\n" in cfg and "radius-shared-key = REDACTED\n" in cfg
        tls = (snapshot.root / "etc/kamailio/tls.cfg").read_bytes()
        assert content(tarball, "etc/kamailio/tls.cfg") == tls
