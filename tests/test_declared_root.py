"""Declared checks under --root: file-backed kinds judge the snapshot (built from real Debian
data), live-only kinds skip saying why, and `collect` copies what the assertions read so a
snapshot of this machine gets the live verdict."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from support.cli import check_of, codes, finding, report_of, run_preflight
from support.declared import check_on_snapshot, results, rows, spec
from support.snapshot import Snapshot

from tests.snapshots_kernel import BASE_FILES_STANZA, OPENVPN_STANZA

# Debian 12's /etc/passwd and /etc/group lines for these accounts, verbatim (kamailio's as
# its package's postinst creates it).
PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
kamailio:x:102:109:Kamailio SIP Server,,,:/var/run/kamailio:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
ssl-cert:x:108:kamailio
kamailio:x:109:
nogroup:x:65534:
"""
# /proc/self/mounts of a Debian 12 droplet (first lines), verbatim.
MOUNTS = """/dev/vda1 / ext4 rw,relatime,discard,errors=remount-ro 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=201388k,mode=755,inode64 0 0
/dev/vda15 /boot/efi vfat rw,relatime,fmask=0022,dmask=0022,codepage=437 0 0
"""
RELEASE = "6.1.0-26-amd64"
# /proc/modules lines of that kernel, and the first lines of its modules.builtin.
PROC_MODULES = """nf_conntrack 176128 1 xt_conntrack, Live 0x0000000000000000
tun 61440 2 - Live 0x0000000000000000
"""
MODULES_BUILTIN = """kernel/arch/x86/crypto/crc32c-intel.ko
kernel/fs/ext4/ext4.ko
kernel/drivers/char/tpm/tpm.ko
"""


def droplet(snapshot: Snapshot) -> Snapshot:
    snapshot.write("etc/passwd", PASSWD)
    snapshot.write("etc/group", GROUP)
    snapshot.write("proc/mounts", MOUNTS)
    snapshot.write("proc/sys/kernel/osrelease", RELEASE + "\n")
    snapshot.write("proc/modules", PROC_MODULES)
    snapshot.write(f"lib/modules/{RELEASE}/modules.builtin", MODULES_BUILTIN)
    snapshot.write("proc/sys/net/core/rmem_max", "212992\n")
    snapshot.write("proc/sys/net/ipv4/ip_local_port_range", "32768\t60999\n")
    snapshot.write("var/lib/dpkg/status", BASE_FILES_STANZA + "\n" + OPENVPN_STANZA)
    # The TLS files live elsewhere and /etc/kamailio is an absolute symlink to them: it must
    # resolve inside the snapshot, not on this machine.
    snapshot.write("opt/kamailio-etc/tls/server.pem", "-----BEGIN CERTIFICATE-----\n", mode=0o640)
    os.chown(snapshot.root / "opt/kamailio-etc/tls/server.pem", 0, 109)
    snapshot.symlink("etc/kamailio", "/opt/kamailio-etc")
    return snapshot


FILE_KINDS = [
    """
    name = "cert"
    kind = "file"
    path = "/etc/kamailio/tls/server.pem"
    mode = "0640"
    owner = "root"
    group = "kamailio"
    contains = "BEGIN CERTIFICATE"
    """,
    """
    name = "cert-mode"
    kind = "file"
    path = "/etc/kamailio/tls/server.pem"
    mode = "0600"
    group = "ssl-cert"
    """,
    """
    name = "openvpn"
    kind = "package"
    package = "openvpn"
    version = ">= 2.6.3"
    """,
    """
    name = "openvpn-old"
    kind = "package"
    package = "openvpn"
    version = "<< 2.6.3"
    """,
    """
    name = "rmem"
    kind = "sysctl"
    key = "net.core.rmem_max"
    min = 8388608
    """,
    """
    name = "ports"
    kind = "sysctl"
    key = "net.ipv4.ip_local_port_range"
    value = "32768 60999"
    """,
    """
    name = "tun"
    kind = "kernel_module"
    module = "tun"
    """,
    """
    name = "ext4"
    kind = "kernel_module"
    module = "ext4"
    """,
    """
    name = "sctp"
    kind = "kernel_module"
    module = "sctp"
    """,
    """
    name = "root-fs"
    kind = "mount"
    path = "/"
    fstype = "ext4"
    options = ["rw", "discard"]
    """,
    """
    name = "run-exec"
    kind = "mount"
    path = "/run"
    options = ["exec"]
    """,
    """
    name = "kamailio-user"
    kind = "user"
    user = "kamailio"
    uid = 102
    shell = "/bin/false"
    groups = ["kamailio", "ssl-cert"]
    """,
    """
    name = "kamailio-shell"
    kind = "user"
    user = "kamailio"
    shell = "/usr/sbin/nologin"
    """,
    """
    name = "ssl-cert"
    kind = "group"
    group = "ssl-cert"
    members = ["kamailio"]
    """,
    """
    name = "rtpengine-user"
    kind = "user"
    user = "rtpengine"
    """,
]


def test_file_backed_kinds_judge_the_snapshot(snapshot: Snapshot, tmp_path: Path) -> None:
    droplet(snapshot)
    result = check_on_snapshot(snapshot, tmp_path, spec("droplet", *FILE_KINDS))
    assert results(result) == {
        "cert": "pass",
        "cert-mode": "fail",
        "openvpn": "pass",  # dpkg order: 2.6.14 is newer than 2.6.3
        "openvpn-old": "fail",
        "rmem": "fail",
        "ports": "pass",
        "tun": "pass",
        "ext4": "pass",
        "sctp": "fail",
        "root-fs": "pass",
        "run-exec": "fail",
        "kamailio-user": "pass",
        "kamailio-shell": "fail",
        "ssl-cert": "pass",
        "rtpengine-user": "fail",
    }
    # Owner and group names come from the snapshot's /etc/passwd and /etc/group.
    assert rows(result)["cert-mode"]["observed"]["group"] == "kamailio"
    assert rows(result)["rmem"]["observed"] == {"min": 212992}
    assert rows(result)["ext4"]["observed"] == {"loaded": "built in"}
    assert "lacks option exec" in finding(result, "droplet.run-exec")["message"]


def test_live_only_kinds_skip_under_root_saying_so(snapshot: Snapshot, tmp_path: Path) -> None:
    droplet(snapshot)
    live_only = [
        'name = "sip"\nkind = "port"\nproto = "udp"\nport = 5060',
        'name = "sock"\nkind = "socket"\nport = 5061',
        'name = "rtp"\nkind = "process"\nprocess = "rtpengine"',
        'name = "svc"\nkind = "service"\nservice = "kamailio"',
        'name = "name"\nkind = "dns"\nhost = "localhost"',
        'name = "web"\nkind = "http"\nurl = "http://127.0.0.1:1/"',
        'name = "cmd"\nkind = "command"\nargv = ["touch", "/tmp/never-run-by-preflight"]',
    ]
    result = check_on_snapshot(snapshot, tmp_path, spec("live", *live_only))
    assert result["status"] == "skip"
    assert "need the live host" in result["summary"]
    for item in result["findings"]:
        assert item["status"] == "skip"
        assert "need the live host: not run under --root" in item["message"]
    assert not Path("/tmp/never-run-by-preflight").exists()
    # Mixed with file-backed kinds: those decide, the skipped ones are named.
    mixed = check_on_snapshot(
        snapshot, tmp_path, spec("mixed", FILE_KINDS[0], 'name = "sip"\nkind = "port"\nport = 5060')
    )
    assert mixed["status"] == "pass"
    assert codes(mixed) == ["mixed.sip", "mixed.ok"]
    assert finding(mixed, "mixed.ok")["message"] == "all 1 assertions hold (1 skipped under --root)"


def test_a_snapshot_without_the_files_skips_naming_them(snapshot: Snapshot, tmp_path: Path) -> None:
    snapshot.write("etc/os-release", "ID=debian\n")
    text = spec(
        "bare",
        'name = "s"\nkind = "sysctl"\nkey = "net.core.rmem_max"\nmin = 1',
        'name = "u"\nkind = "user"\nuser = "root"',
        'name = "m"\nkind = "mount"\npath = "/"',
        'name = "k"\nkind = "kernel_module"\nmodule = "tun"',
        'name = "p"\nkind = "package"\npackage = "openvpn"',
    )
    result = check_on_snapshot(snapshot, tmp_path, text)
    assert result["status"] == "skip"
    messages = {f["code"]: f["message"] for f in result["findings"]}
    assert "/proc/sys/net/core/rmem_max is not in the snapshot" in messages["bare.s"]
    assert "/etc/passwd is not in the snapshot" in messages["bare.u"]
    assert "/proc/self/mounts is not in the snapshot" in messages["bare.m"]
    assert "package database" in messages["bare.p"]


def test_an_rpm_snapshot_without_a_readable_database_skips_package_assertions(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    snapshot.mkdir("var/lib/rpm")
    result = check_on_snapshot(
        snapshot, tmp_path, spec("rpm", 'name = "p"\nkind = "package"\npackage = "kernel"')
    )
    assert result["status"] == "skip"
    assert "no readable RPM database" in finding(result, "rpm.p")["message"]


def test_collect_copies_what_declared_assertions_read(tmp_path: Path) -> None:
    """collect here with the spec, extract, check --root: the verdict of the file-backed
    assertions is the live one."""
    target = tmp_path / "app.conf"
    target.write_text("listen = 127.0.0.1\n")
    target.chmod(0o600)
    text = spec(
        "roundtrip",
        f'name = "conf"\nkind = "file"\npath = "{target}"\nmode = "0600"\ncontains = "^listen"',
        f'name = "conf-bad"\nkind = "file"\npath = "{target}"\nmode = "0644"',
        'name = "rmem"\nkind = "sysctl"\nkey = "net.core.rmem_max"\nmin = 1',
        'name = "root"\nkind = "user"\nuser = "root"\nuid = 0',
        'name = "proc"\nkind = "mount"\npath = "/proc"\nfstype = "proc"',
    )
    config = tmp_path / "spec.toml"
    config.write_text(text)
    tarball = tmp_path / "snap.tar.gz"
    collected = run_preflight("collect", str(tarball), "-c", str(config), "-q")
    assert collected.returncode == 0, collected.stderr
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(tarball) as archive:
        archive.extractall(root)  # noqa: S202 - our own tarball, in a test
    live = check_of(
        report_of(run_preflight("check", "roundtrip", "-c", str(config), "-f", "json")), "roundtrip"
    )
    snap = check_of(
        report_of(
            run_preflight(
                "check", "roundtrip", "-c", str(config), "--root", str(root), "-f", "json"
            )
        ),
        "roundtrip",
    )
    assert results(live) == {
        "conf": "pass",
        "conf-bad": "fail",
        "rmem": "pass",
        "root": "pass",
        "proc": "pass",
    }
    assert results(snap) == results(live)


def test_package_versions_of_an_rpm_snapshot_follow_rpm_rules(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """A Rocky 9 snapshot whose database the real rpm wrote: versions are ordered by rpm's
    rules (5.7.10 is newer than 5.7.4; the release counts), not as strings."""
    from hostdata import ROCKY9_OS_RELEASE
    from rpm_support import build_rpm, install

    work = tmp_path / "rpmbuild"
    work.mkdir()
    install(
        snapshot.root,
        [
            build_rpm(work, "kamailio", "5.7.4", "1.el9", "x86_64"),
            build_rpm(work, "puppet-agent", "7.28.0", "1.el9", "x86_64"),
        ],
    )
    snapshot.write("etc/os-release", ROCKY9_OS_RELEASE)
    text = spec(
        "rocky",
        'name = "kamailio"\nkind = "package"\npackage = "kamailio"\nversion = ">= 5.7.4-1.el9"',
        'name = "kamailio-old"\nkind = "package"\npackage = "kamailio"\nversion = ">= 5.7.10"',
        'name = "puppet"\nkind = "package"\npackage = ["puppet", "puppet-agent"]\n'
        'version = ">= 7, < 8"',
        'name = "absent"\nkind = "package"\npackage = "rtpengine"',
    )
    result = check_on_snapshot(snapshot, tmp_path, text)
    assert results(result) == {
        "kamailio": "pass",
        "kamailio-old": "fail",
        "puppet": "pass",
        "absent": "fail",
    }
    assert rows(result)["kamailio"]["observed"]["version"] == "5.7.4-1.el9"
    assert finding(result, "rocky.absent")["remediation"] == ["dnf install rtpengine"]
