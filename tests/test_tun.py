"""The `tun` check: live on this machine (root and unprivileged) and on host snapshots."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hostdata import DEBIAN12_OS_RELEASE
from snapshots_kernel import BASE_FILES_STANZA, OPENVPN_STANZA, bookworm_proc_version
from support.cli import NOBODY, Run, check_of, codes, finding, report_of, run_preflight
from support.components import (
    live_machine,
    require,
    require_command,
    require_nobody_can_run,
    require_root,
)
from support.snapshot import Snapshot

from preflight.host import Host

MKNOD = "mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun"
RELEASE = "6.1.0-26-amd64"
PROC_VERSION = bookworm_proc_version("6.1.0-26") + "\n"
# /proc/misc of a Debian 12 VM (minor, name), with and without the tun driver registered.
PROC_MISC_WITHOUT_TUN = (
    "234 btrfs-control\n259 cpu_dma_latency\n258 vsock\n237 loop-control\n229 fuse\n"
    "235 autofs\n257 userfaultfd\n232 kvm\n183 hw_random\n256 vga_arbiter\n"
)
PROC_MISC_WITH_TUN = PROC_MISC_WITHOUT_TUN.replace("258 vsock\n", "258 vsock\n200 tun\n")
# From Debian's sample-config-files/server.conf (openvpn 2.6), the lines around `dev`.
SERVER_CONF = """port 1194
proto udp
# "dev tun" will create a routed IP tunnel,
# "dev tap" will create an ethernet tunnel.
;dev tap
dev tun
;dev-node MyTap
ca ca.crt
cert server.crt
key server.key  # This file should be kept secret
dh dh2048.pem
topology subnet
server 10.8.0.0 255.255.255.0
keepalive 10 120
persist-key
persist-tun
verb 3
"""
# The net-device section of Debian 12's /boot/config-6.1.0-*-amd64.
KERNEL_CONFIG_TUN_M = """#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.112 Kernel Configuration
#
CONFIG_MACVLAN=m
CONFIG_MACVTAP=m
CONFIG_NETCONSOLE=m
CONFIG_NETPOLL=y
CONFIG_TUN=m
CONFIG_TAP=m
# CONFIG_TUN_VNET_CROSS_LE is not set
CONFIG_VETH=m
CONFIG_VIRTIO_NET=m
"""
KERNEL_CONFIG_NO_TUN = KERNEL_CONFIG_TUN_M.replace(
    "CONFIG_TUN=m\nCONFIG_TAP=m\n", "# CONFIG_TUN is not set\n"
)


def tun_check(run: Run) -> dict[str, Any]:
    return check_of(report_of(run), "tun")


def make_tun_node(snapshot: Snapshot) -> None:
    """A real character device 10:200 in the snapshot (mknod needs root)."""
    require_root()
    path = snapshot.mkdir("dev/net") / "tun"
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(10, 200))


def openvpn_host(snapshot: Snapshot, misc: str | None = PROC_MISC_WITH_TUN) -> Snapshot:
    """A Debian 12 host with the openvpn package and one server config, enabled."""
    snapshot.write("proc/sys/kernel/osrelease", RELEASE + "\n")
    snapshot.write("proc/version", PROC_VERSION)
    if misc is not None:
        snapshot.write("proc/misc", misc)
    snapshot.write("etc/os-release", DEBIAN12_OS_RELEASE)
    snapshot.write("var/lib/dpkg/status", BASE_FILES_STANZA + "\n" + OPENVPN_STANZA)
    snapshot.write("etc/openvpn/server/server.conf", SERVER_CONF)
    snapshot.symlink(
        "etc/systemd/system/multi-user.target.wants/openvpn-server@server.service",
        "/lib/systemd/system/openvpn-server@.service",
    )
    snapshot.mkdir("dev/net")  # a /dev that was populated, so an absent node is a finding
    snapshot.write("dev/null", "")
    return snapshot


def check_snapshot(snapshot: Snapshot, *extra: str) -> tuple[Run, dict[str, Any]]:
    run = run_preflight("check", "tun", "--root", str(snapshot), "--format", "json", *extra)
    return run, tun_check(run)


# The live tests judge this machine, where OpenVPN is installed (else tun.not-needed skips).
LIVE_WITH_OPENVPN = live_machine("openvpn installed", lambda: Host("/").which("openvpn"))


# ------------------------------------------------------------------------------------ live
@LIVE_WITH_OPENVPN
def test_live_root_probe_passes_and_leaves_no_interface(tmp_path: Path) -> None:
    require_root()
    require("/dev/net/tun", os.path.exists("/dev/net/tun"))
    require_command("openvpn")
    before = sorted(os.listdir("/sys/class/net"))
    config = tmp_path / "preflight.toml"
    config.write_text("[checks.tun]\nprobe = true\n")
    run = run_preflight("check", "tun", "--format", "json", "--config", str(config))
    after = sorted(os.listdir("/sys/class/net"))
    check = tun_check(run)
    assert run.returncode == 0, run.stdout + run.stderr
    assert check["status"] == "pass" and check["code"] == "tun.ok"
    probe = check["details"]["probe"]
    assert probe["ran"] is True and probe["ok"] is True
    assert probe["interface"].startswith("pfprobe")
    assert probe["interface_removed"] is True
    assert f"created and removed {probe['interface']}" in check["summary"]
    assert before == after, "the probe left an interface behind"
    device = check["details"]["device"]
    assert (device["type"], device["major"], device["minor"]) == ("char", 10, 200)
    assert check["details"]["openvpn"]["binary"] == "/usr/sbin/openvpn"


@LIVE_WITH_OPENVPN
def test_live_probe_disabled_by_config(tmp_path: Path) -> None:
    require_root()
    require("/dev/net/tun", os.path.exists("/dev/net/tun"))
    config = tmp_path / "preflight.toml"
    config.write_text("[checks.tun]\nprobe = false\n")
    run = run_preflight("check", "tun", "--format", "json", "--config", str(config))
    check = tun_check(run)
    assert run.returncode == 0
    assert check["details"]["probe"]["ran"] is False
    assert "probe = false" in check["details"]["probe"]["reason"]


@LIVE_WITH_OPENVPN
def test_live_root_without_net_admin_is_a_permission_failure() -> None:
    # Root whose capability bounding set lacks CAP_NET_ADMIN (as in a container started without
    # --cap-add=NET_ADMIN): the node opens, the kernel refuses TUNSETIFF.
    require_root()
    setpriv = require_command("setpriv")
    require("/dev/net/tun", os.path.exists("/dev/net/tun"))
    run = run_preflight(
        "check",
        "tun",
        "--format",
        "json",
        prefix=(setpriv, "--inh-caps=-net_admin", "--bounding-set=-net_admin"),
    )
    check = tun_check(run)
    assert run.returncode == 2
    found = finding(check, "tun.permission")
    assert "TUNSETIFF" in found["message"] and "EPERM" in found["message"]
    assert "lacks CAP_NET_ADMIN" in found["message"]
    assert any("CapabilityBoundingSet" in step for step in found["remediation"])
    probe = check["details"]["probe"]
    assert (probe["ran"], probe["step"], probe["net_admin"]) == (True, "ioctl", False)


@LIVE_WITH_OPENVPN
def test_live_unprivileged_user_reports_probe_not_run() -> None:
    require_nobody_can_run("preflight_checks.tun")
    require("/dev/net/tun", os.path.exists("/dev/net/tun"))
    run = run_preflight("check", "tun", "--format", "json", user=NOBODY)
    check = tun_check(run)
    probe = check["details"]["probe"]
    assert probe["ran"] is False
    assert probe["reason"] == "probe not run: needs root / CAP_NET_ADMIN"
    # The static facts decide: here the node is 10:200 and the kernel lists tun in /proc/misc.
    assert check["details"]["kernel"]["supported"] is True
    assert check["status"] == "pass" and run.returncode == 0
    assert "probe not run: needs root / CAP_NET_ADMIN" in check["summary"]


# ------------------------------------------------------------------------------- snapshots
def test_snapshot_with_real_device_node_passes_without_probe(snapshot: Snapshot) -> None:
    openvpn_host(snapshot)
    make_tun_node(snapshot)
    run, check = check_snapshot(snapshot)
    assert run.returncode == 0, run.stdout
    assert check["code"] == "tun.ok"
    assert check["details"]["probe"]["reason"].startswith("probe not run: only on the live host")
    assert check["details"]["kernel"]["evidence"] == "/proc/misc lists tun"
    (config,) = check["details"]["openvpn"]["configs"]
    assert config == {
        "path": "/etc/openvpn/server/server.conf",
        "unit": "openvpn-server@server",
        "dev": "tun",
        "dev_type": None,
        "dev_node": None,
        "enabled": True,
    }
    assert check["details"]["openvpn"]["package"] == "2.6.14-0+deb12u2"


def test_snapshot_device_missing_gives_mknod(snapshot: Snapshot) -> None:
    openvpn_host(snapshot)
    run, check = check_snapshot(snapshot)
    assert run.returncode == 2
    assert check["status"] == "fail" and check["code"] == "tun.device-missing"
    # The enabled instance started without its interface: restarted once the node exists.
    restart = "systemctl restart openvpn-server@server"
    assert finding(check, "tun.device-missing")["remediation"] == [MKNOD, restart]


def test_snapshot_device_is_regular_file(snapshot: Snapshot) -> None:
    openvpn_host(snapshot)
    snapshot.write("dev/net/tun", "")
    run, check = check_snapshot(snapshot)
    assert run.returncode == 2
    found = finding(check, "tun.device-wrong")
    assert "regular file" in found["message"]
    assert found["remediation"] == [
        f"mv /dev/net/tun /dev/net/tun.wrong && {MKNOD}",
        "systemctl restart openvpn-server@server",
    ]
    assert check["details"]["device"]["type"] == "regular"


def test_snapshot_wrong_char_device_numbers(snapshot: Snapshot) -> None:
    openvpn_host(snapshot)
    require_root()
    os.mknod(snapshot.root / "dev/net/tun", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    run, check = check_snapshot(snapshot)
    assert run.returncode == 2
    assert "a character device 1:3" in finding(check, "tun.device-wrong")["message"]


def test_snapshot_no_kernel_support_points_to_kernel_check(snapshot: Snapshot) -> None:
    # The running kernel is 6.1.0-26 but only 6.1.0-56's modules are installed.
    openvpn_host(snapshot, misc=PROC_MISC_WITHOUT_TUN)
    make_tun_node(snapshot)
    snapshot.write("lib/modules/6.1.0-56-amd64/modules.builtin", "kernel/fs/ext4/ext4.ko\n")
    snapshot.write("lib/modules/6.1.0-56-amd64/kernel/drivers/net/tun.ko", b"\x7fELF")
    run, check = check_snapshot(snapshot)
    assert run.returncode == 2
    assert check["code"] == "tun.no-kernel-support"
    found = finding(check, "tun.no-kernel-support")
    assert f"/lib/modules/{RELEASE} is missing" in found["message"]
    assert "does not match the installed one" in found["message"]
    assert any("preflight check kernel" in step for step in found["remediation"])
    assert check["details"]["kernel"]["modules_dir"] is False


def test_snapshot_config_without_tun(snapshot: Snapshot) -> None:
    openvpn_host(snapshot, misc=PROC_MISC_WITHOUT_TUN)
    make_tun_node(snapshot)
    snapshot.write("proc/config.gz", gzip.compress(KERNEL_CONFIG_NO_TUN.encode()))
    run, check = check_snapshot(snapshot)
    assert run.returncode == 2
    found = finding(check, "tun.no-kernel-support")
    assert "CONFIG_TUN is not set in /proc/config.gz" in found["message"]


def test_snapshot_unloaded_module_is_not_a_finding(snapshot: Snapshot) -> None:
    # tun=m, not loaded yet (not in /proc/misc or /proc/modules): opening the node loads it.
    openvpn_host(snapshot, misc=PROC_MISC_WITHOUT_TUN)
    make_tun_node(snapshot)
    snapshot.write(f"boot/config-{RELEASE}", KERNEL_CONFIG_TUN_M)
    snapshot.write(f"lib/modules/{RELEASE}/modules.builtin", "kernel/fs/ext4/ext4.ko\n")
    snapshot.write(f"lib/modules/{RELEASE}/kernel/drivers/net/tun.ko.xz", b"\xfd7zXZ\x00")
    snapshot.write("proc/modules", "ext4 1007616 1 - Live 0x0000000000000000\n")
    run, check = check_snapshot(snapshot)
    assert run.returncode == 0, run.stdout
    kernel = check["details"]["kernel"]
    assert kernel["kind"] == "module"
    assert kernel["evidence"] == (
        f"CONFIG_TUN=m in /boot/config-{RELEASE}, "
        f"/lib/modules/{RELEASE}/kernel/drivers/net/tun.ko.xz exists"
    )
    assert check["details"]["module_loaded"] is False


def test_snapshot_lxc_container_without_device(snapshot: Snapshot) -> None:
    openvpn_host(snapshot)
    snapshot.write("run/systemd/container", "lxc\n")
    run, check = check_snapshot(snapshot)
    assert run.returncode == 2
    found = finding(check, "tun.device-missing")
    assert "lxc container" in found["message"]
    steps = "\n".join(found["remediation"])
    assert "lxc.cgroup2.devices.allow = c 10:200 rwm" in steps
    assert "lxc.mount.entry = /dev/net/tun dev/net/tun none bind,create=file" in steps
    assert "lxc config device add <name> tun unix-char path=/dev/net/tun" in steps
    assert MKNOD not in found["remediation"]


def test_snapshot_podman_container_gets_docker_flags(snapshot: Snapshot) -> None:
    openvpn_host(snapshot)
    snapshot.write("run/.containerenv", 'engine="podman-4.3.1"\n')
    _, check = check_snapshot(snapshot)
    steps = "\n".join(finding(check, "tun.device-missing")["remediation"])
    assert "--cap-add=NET_ADMIN --device /dev/net/tun" in steps


def test_snapshot_without_openvpn_skips(snapshot: Snapshot, tmp_path: Path) -> None:
    snapshot.write("proc/sys/kernel/osrelease", RELEASE + "\n")
    snapshot.write("proc/misc", PROC_MISC_WITHOUT_TUN)
    snapshot.write("var/lib/dpkg/status", BASE_FILES_STANZA)
    snapshot.mkdir("dev/net")
    run, check = check_snapshot(snapshot)
    assert run.returncode == 0
    assert check["status"] == "skip" and check["code"] == "tun.not-needed"
    assert "OpenVPN is not installed" in check["summary"]

    # required = true: the same host is checked, and the missing node is a failure.
    config = tmp_path / "required.toml"
    config.write_text("[checks.tun]\nrequired = true\n")
    run, check = check_snapshot(snapshot, "--config", str(config))
    assert run.returncode == 2
    assert "tun.device-missing" in codes(check)


def test_snapshot_config_alone_makes_it_apply(snapshot: Snapshot) -> None:
    snapshot.write("proc/misc", PROC_MISC_WITH_TUN)
    snapshot.write("etc/openvpn/client.conf", "client\ndev tap0\ndev-type tap\nremote vpn 1194\n")
    snapshot.mkdir("dev/net")
    _, check = check_snapshot(snapshot)
    assert check["code"] == "tun.device-missing"
    (config,) = check["details"]["openvpn"]["configs"]
    assert (config["unit"], config["dev"], config["dev_type"], config["enabled"]) == (
        "openvpn@client",
        "tap0",
        "tap",
        False,
    )


def test_snapshot_without_dev_is_unknown_not_missing(snapshot: Snapshot) -> None:
    openvpn_host(snapshot)
    for rel in ("dev/null", "dev/net"):
        path = snapshot.root / rel
        path.unlink() if path.is_file() else path.rmdir()
    (snapshot.root / "dev").rmdir()
    run, check = check_snapshot(snapshot)
    assert run.returncode == 0
    assert check["status"] == "skip" and check["code"] == "tun.device-unknown"
    assert check["details"]["device"]["exists"] is None


@pytest.mark.parametrize(
    "config_gz",
    [b"not gzip at all", gzip.compress(b"\xff\xfe" * 1000)[:40]],
    ids=["garbage", "cut"],
)
def test_snapshot_malformed_files_do_not_crash(snapshot: Snapshot, config_gz: bytes) -> None:
    openvpn_host(snapshot, misc="\x00\xff garbage\n200\n\n")
    snapshot.write("proc/config.gz", config_gz)
    snapshot.write("proc/sys/kernel/osrelease", "\n")
    snapshot.write("proc/version", b"\x00\xff not a banner\n")  # the release's fallback
    snapshot.write("etc/openvpn/bad.conf", b"\xff\xfe\x00dev\n")
    os.mkfifo(snapshot.root / "proc/modules")  # must not block the read
    run, check = check_snapshot(snapshot)
    assert run.returncode == 2  # the node is still missing
    assert check["code"] == "tun.device-missing"
    assert check["details"]["kernel"]["supported"] is None
