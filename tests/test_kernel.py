"""The kernel drift check: live on this microVM, and on host snapshots built from real data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hostdata import DEBIAN7_OS_RELEASE
from hostdata import ROCKY9_OS_RELEASE as ROCKY_OS_RELEASE
from hostdata import UBUNTU2204_OS_RELEASE as UBUNTU_OS_RELEASE
from snapshots_kernel import (
    AFTER_BOOT,
    BEFORE_BOOT,
    BOOT,
    DEBIAN7_IMAGE_STANZA,
    DEBIAN7_IMAGE_VERSION,
    DEBIAN7_META_STANZA,
    DEBIAN7_PROC_VERSION,
    FILLER_STANZAS,
    PROC_MODULES,
    ROCKY_MACHINE_ID,
    ROCKY_PROC_VERSION,
    ROCKY_RUNNING,
    ROCKY_UPDATE,
    UBUNTU_META_STANZA,
    UBUNTU_PROC_VERSION,
    UBUNTU_SIGNATURE,
    Kernel,
    bookworm_kernel,
    bookworm_meta,
    bookworm_proc_version,
    bzimage,
    gzip_image,
    proc_stat,
    ubuntu_kernel,
    write_host,
)
from support.cli import REPO, codes, finding, preflight_env, report_of, run_preflight
from support.components import live_machine, require
from support.snapshot import Snapshot


def kernel_result(root: Snapshot | str, *extra: str) -> tuple[int, dict[str, Any]]:
    run = run_preflight("check", "kernel", "--root", str(root), "--format", "json", *extra)
    (check,) = report_of(run)["checks"]
    return run.returncode, check


# ------------------------------------------------------------------------------ live
@live_machine(
    "this Firecracker microVM (a hypervisor-supplied kernel, linux-image-amd64 installed)",
    lambda: "BOOT_IMAGE=" not in Path("/proc/cmdline").read_text(),
)
def test_live_microvm_with_packaged_kernel_is_externally_managed() -> None:
    """This Firecracker VM runs the hypervisor's kernel; linux-image-amd64 is installed but
    nothing on the boot path would load it, so a reboot must not be advised."""
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "linux-image-amd64"], capture_output=True, text=True
    )
    require("the linux-image-amd64 package", status.stdout.endswith("installed"))
    cmdline = Path("/proc/cmdline").read_text()
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    require(
        "a hypervisor-supplied kernel (no BOOT_IMAGE=, no /boot image)",
        "BOOT_IMAGE=" not in cmdline and not Path(f"/boot/vmlinuz-{release}").exists(),
    )

    run = run_preflight("check", "kernel", "--format", "json")
    (check,) = report_of(run)["checks"]
    assert check["status"] == "fail", check
    assert check["code"] == "kernel.externally-managed"
    assert "kernel.reboot-required" not in codes(check) and "kernel.ok" not in codes(check)
    assert run.returncode == 2
    details = check["details"]
    assert details["running_release"] == release
    assert details["boot_image"] is None
    installed = {k["package"]: k for k in details["installed"]}
    assert "linux-image-amd64" in installed and installed["linux-image-amd64"]["meta"] is True
    real = installed[f"linux-image-{installed['linux-image-amd64']['release']}"]
    assert real["build"] == real["version"]  # read from the real /boot image's x86 header
    message = finding(check, "kernel.externally-managed")["message"]
    assert release in message and real["version"] in message
    assert "no BOOT_IMAGE=" in message
    remediation = " ".join(finding(check, "kernel.externally-managed")["remediation"])
    assert "Rebooting alone will not help" in remediation


# ------------------------------------------------------------------ DigitalOcean trap
def digitalocean_trap(snap: Snapshot, installed_at: float) -> Snapshot:
    kernel = Kernel(
        "linux-image-3.2.0-4-amd64",
        DEBIAN7_IMAGE_STANZA,
        "3.2.0-4-amd64",
        installed_at,
        bzimage(DEBIAN7_IMAGE_VERSION, 0x3780),
    )
    write_host(
        snap,
        proc_version=DEBIAN7_PROC_VERSION,
        kernels=[kernel],
        extra_stanzas=(DEBIAN7_META_STANZA,),
        os_release=DEBIAN7_OS_RELEASE,
        cmdline="root=/dev/vda ro console=ttyS0",
        dmi=("DigitalOcean", "Droplet"),
    )
    # /proc/sys/kernel/version is left out: the build must come from /proc/version, past the
    # compiler's own "(Debian 4.6.3-14)".
    (snap.root / "proc/sys/kernel/version").unlink()
    return snap


def test_digitalocean_trap_is_externally_managed(snapshot: Snapshot) -> None:
    code, check = kernel_result(digitalocean_trap(snapshot, BEFORE_BOOT))
    assert code == 2 and check["status"] == "fail"
    assert check["code"] == "kernel.externally-managed"
    found = finding(check, "kernel.externally-managed")
    # Both builds side by side, and the image's own build string as read from its boot header.
    assert (
        "running 3.2.0-4-amd64 build 3.2.54-2 vs installed linux-image-3.2.0-4-amd64 "
        "3.2.63-2+deb7u1" in found["message"]
    )
    assert "/boot/vmlinuz-3.2.0-4-amd64 contains build 3.2.63-2+deb7u1" in found["message"]
    assert "DigitalOcean" in found["message"]
    assert "before the last boot" in found["message"]
    remediation = found["remediation"]
    assert remediation[0].startswith("Rebooting alone will not help")
    assert any("Settings -> Kernel" in step and "3.2.63-2+deb7u1" in step for step in remediation)
    assert any("Power" in step and "control panel" in step for step in remediation)
    assert any("GrubLoader" in step for step in remediation)
    assert check["summary"] == (
        "running build 3.2.54-2 is not the installed 3.2.63-2+deb7u1; "
        "the kernel is loaded from outside the machine"
    )
    details = check["details"]
    assert details["running_release"] == "3.2.0-4-amd64"
    assert details["running_build"] == "3.2.54-2"
    assert details["provider"] == "digitalocean"
    assert details["boot_image"] is None
    (image, meta) = details["installed"]
    assert image["package"] == "linux-image-3.2.0-4-amd64"
    assert image["version"] == "3.2.63-2+deb7u1" and image["build"] == "3.2.63-2+deb7u1"
    assert image["image_version"] == DEBIAN7_IMAGE_VERSION
    assert image["installed_at"] == "2024-11-05T07:06:40Z"  # the .list mtime, not the image's
    assert meta["package"] == "linux-image-amd64" and meta["meta"] is True
    assert meta["release"] == "3.2.0-4-amd64"


def test_digitalocean_trap_installed_after_boot_still_never_advises_reboot(
    snapshot: Snapshot,
) -> None:
    """The provider loads the kernel from outside: even a package installed after the last
    boot will not boot, so reboot-required would be the wrong remedy."""
    code, check = kernel_result(digitalocean_trap(snapshot, AFTER_BOOT))
    assert code == 2 and codes(check) == ["kernel.externally-managed"]
    found = finding(check, "kernel.externally-managed")
    assert "no BOOT_IMAGE=" in found["message"]
    assert found["remediation"][0].startswith("Rebooting alone will not help")
    assert not any("maintenance window" in step for step in found["remediation"])


# --------------------------------------------------------------------------- Debian 12
def test_healthy_debian12_is_ok(snapshot: Snapshot) -> None:
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT)],
        extra_stanzas=(bookworm_meta("6.1.0-26"),),
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 root=UUID=0b6e1b8a-5b8e-4d2c-9f27-"
        "3c1f0c9a4d11 ro quiet",
        dmi=("QEMU", "Standard PC (i440FX + PIIX, 1996)"),
    )
    code, check = kernel_result(snapshot)
    assert code == 0
    assert check["status"] == "pass" and codes(check) == ["kernel.ok"]
    assert (
        "6.1.0-26-amd64 build 6.1.112-1 is the installed linux-image-6.1.0-26-amd64 "
        "6.1.112-1" in check["findings"][0]["message"]
    )
    details = check["details"]
    assert details["running_build"] == "6.1.112-1"
    assert details["boot_image"] == "/boot/vmlinuz-6.1.0-26-amd64"
    assert details["running_image"] == "/boot/vmlinuz-6.1.0-26-amd64"
    assert details["boot_time"] == "2024-11-19T07:06:40Z"


def test_debian12_new_abi_installed_after_boot_requires_reboot(snapshot: Snapshot) -> None:
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT), bookworm_kernel("6.1.0-27", AFTER_BOOT)],
        extra_stanzas=(bookworm_meta("6.1.0-27"),),
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 root=/dev/vda1 ro",
    )
    snapshot.write("run/reboot-required", "*** System restart required ***\n")
    snapshot.write("run/reboot-required.pkgs", "linux-image-6.1.0-27-amd64\n")
    code, check = kernel_result(snapshot)
    assert code == 1 and check["status"] == "warn"
    assert codes(check) == ["kernel.reboot-required"]
    message = check["findings"][0]["message"]
    assert "linux-image-6.1.0-27-amd64 6.1.115-1" in message
    assert "rebooting will load 6.1.0-27-amd64 build 6.1.115-1" in message
    assert "running 6.1.0-26-amd64 build 6.1.112-1" in message
    details = check["details"]
    assert details["next_boot"]["release"] == "6.1.0-27-amd64"
    assert details["reboot_required_flag"] is True  # var/run -> /run resolved inside the root
    assert details["reboot_required_pkgs"] == ["linux-image-6.1.0-27-amd64"]
    assert any(
        "reboot-required.pkgs lists linux-image-6.1.0-27-amd64" in e for e in details["evidence"]
    )


def same_abi_newer_build(snap: Snapshot, installed_at: float) -> Snapshot:
    """Running 6.1.0-23-amd64 build 6.1.98-1; the package was upgraded in place to 6.1.99-1."""
    return write_host(
        snap,
        proc_version=bookworm_proc_version("6.1.0-23", "6.1.98-1"),
        kernels=[bookworm_kernel("6.1.0-23", installed_at, "6.1.99-1")],
        extra_stanzas=(bookworm_meta("6.1.0-23", "6.1.99-1"),),
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-23-amd64 root=/dev/sda1 ro quiet",
    )


def test_same_abi_newer_build_after_boot_requires_reboot(snapshot: Snapshot) -> None:
    code, check = kernel_result(same_abi_newer_build(snapshot, AFTER_BOOT))
    assert code == 1 and codes(check) == ["kernel.reboot-required"]
    message = check["findings"][0]["message"]
    assert message.startswith(
        "a newer build of the running release, linux-image-6.1.0-23-amd64 6.1.99-1, was installed"
    )
    assert "rebooting will load 6.1.0-23-amd64 build 6.1.99-1" in message
    assert "running 6.1.0-23-amd64 build 6.1.98-1" in message


def test_same_abi_newer_build_before_boot_is_externally_managed(snapshot: Snapshot) -> None:
    code, check = kernel_result(same_abi_newer_build(snapshot, BEFORE_BOOT))
    assert code == 2 and codes(check) == ["kernel.externally-managed"]
    found = check["findings"][0]
    assert (
        "running 6.1.0-23-amd64 build 6.1.98-1 vs installed linux-image-6.1.0-23-amd64 "
        "6.1.99-1" in found["message"]
    )
    assert "a reboot already happened" in found["message"]
    # The machine boots itself (BOOT_IMAGE=), so the fix is in its boot path, not a panel.
    remediation = " ".join(found["remediation"])
    assert found["remediation"][0].startswith("Rebooting alone will not help")
    assert "findmnt /boot" in remediation and "GRUB_DEFAULT" in remediation


def test_unknown_boot_time_is_drift_naming_both_possibilities(snapshot: Snapshot) -> None:
    same_abi_newer_build(snapshot, AFTER_BOOT)
    (snapshot.root / "proc/stat").unlink()
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.drift"]
    found = check["findings"][0]
    assert "either a reboot is pending or the kernel is loaded from outside" in found["message"]
    assert "/proc/stat is missing" in found["message"]
    assert "uptime -s" in found["remediation"][0]
    assert "/var/lib/dpkg/info/linux-image-6.1.0-23-amd64.list" in found["remediation"][0]


def test_modules_missing_after_running_kernel_was_removed(snapshot: Snapshot) -> None:
    """The running 6.1.0-26 package was purged after upgrading to 6.1.0-27: modprobe tun fails
    until the reboot."""
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=[bookworm_kernel("6.1.0-27", AFTER_BOOT)],
        extra_stanzas=(bookworm_meta("6.1.0-27"),),
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 root=/dev/vda1 ro",
    )
    code, check = kernel_result(snapshot)
    assert code == 1
    assert codes(check) == ["kernel.reboot-required", "kernel.modules-missing"]
    missing = finding(check, "kernel.modules-missing")
    assert missing["status"] == "warn"
    assert "/lib/modules/6.1.0-26-amd64 is missing" in missing["message"]
    assert "tun" in missing["message"]
    assert check["details"]["proc_modules"] is True and check["details"]["modules_dir"] is False


def test_kernel_without_module_support_is_not_modules_missing(snapshot: Snapshot) -> None:
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT)],
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 ro",
        proc_modules=False,
        modules_dirs=False,
    )
    code, check = kernel_result(snapshot)
    assert code == 0 and codes(check) == ["kernel.ok"]


# ------------------------------------------------------------------------ Ubuntu, RPM
def test_ubuntu_2204_version_signature_and_reboot_required(snapshot: Snapshot) -> None:
    write_host(
        snapshot,
        proc_version=UBUNTU_PROC_VERSION,
        os_release=UBUNTU_OS_RELEASE,
        kernels=[
            ubuntu_kernel("5.15.0-91", "5.15.0-91.101", BEFORE_BOOT),
            ubuntu_kernel("5.15.0-94", "5.15.0-94.104", AFTER_BOOT),
        ],
        extra_stanzas=(UBUNTU_META_STANZA,),
        cmdline="BOOT_IMAGE=/boot/vmlinuz-5.15.0-91-generic root=UUID=5d0a7b5e-2c6b-4d8e-"
        "a7f3-0e4d9c1b2a33 ro console=tty1 console=ttyS0",
        dmi=("Amazon EC2", "t3.micro"),
    )
    snapshot.write("proc/version_signature", UBUNTU_SIGNATURE + "\n")
    snapshot.write("run/reboot-required", "*** System restart required ***\n")
    snapshot.write("run/reboot-required.pkgs", "linux-image-5.15.0-94-generic\nlinux-base\n")
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.reboot-required"]
    details = check["details"]
    assert details["running_build"] == "5.15.0-91.101"
    assert details["version_signature"] == UBUNTU_SIGNATURE
    builds = {k["package"]: k["build"] for k in details["installed"]}
    assert builds["linux-image-5.15.0-94-generic"] == "5.15.0-94.104"  # from #104-Ubuntu
    message = check["findings"][0]["message"]
    assert "rebooting will load 5.15.0-94-generic build 5.15.0-94.104" in message
    assert details["reboot_required_pkgs"] == ["linux-image-5.15.0-94-generic", "linux-base"]


def rocky_host(snap: Snapshot, update_installed_at: float) -> Snapshot:
    snap.write("proc/version", ROCKY_PROC_VERSION + "\n")
    snap.write("proc/sys/kernel/osrelease", ROCKY_RUNNING + "\n")
    snap.write(
        "proc/cmdline",
        f"BOOT_IMAGE=(hd0,gpt2)/vmlinuz-{ROCKY_RUNNING} "
        "root=/dev/mapper/rl-root ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M "
        "resume=/dev/mapper/rl-swap rd.lvm.lv=rl/root rd.lvm.lv=rl/swap\n",
    )
    snap.write("proc/stat", proc_stat(BOOT))
    snap.write("proc/modules", PROC_MODULES)
    snap.write("etc/os-release", ROCKY_OS_RELEASE)
    snap.mkdir("var/lib/rpm")
    for release, installed in ((ROCKY_RUNNING, BEFORE_BOOT), (ROCKY_UPDATE, update_installed_at)):
        image = bzimage(
            f"{release} (mockbuild@iad1-prod-build001.bld.equ.rockylinux.org) "
            "#1 SMP PREEMPT_DYNAMIC Wed Nov 8 17:36:32 UTC 2023",
            0x3E40,
        )
        snap.write(f"boot/vmlinuz-{release}", image, mtime=BEFORE_BOOT - 86_400 * 30)
        snap.write(f"lib/modules/{release}/vmlinuz", image, mtime=BEFORE_BOOT - 86_400 * 30)
        snap.write(
            f"lib/modules/{release}/modules.dep", "kernel/drivers/net/tun.ko.xz:\n", mtime=installed
        )
    snap.write(f"boot/vmlinuz-0-rescue-{ROCKY_MACHINE_ID}", b"\0" * 1024)
    snap.write(
        "boot/grub2/grubenv",
        "# GRUB Environment Block\n"
        f"saved_entry={ROCKY_MACHINE_ID}-{ROCKY_UPDATE}\nmenu_auto_hide=1\n" + "#" * 600,
    )
    return snap


def test_rocky9_from_boot_and_lib_modules_requires_reboot(snapshot: Snapshot) -> None:
    code, check = kernel_result(rocky_host(snapshot, AFTER_BOOT))
    assert code == 1 and codes(check) == ["kernel.reboot-required"]
    details = check["details"]
    assert details["running_build"] == "5.14.0-362.8.1.el9_3"
    releases = [k["release"] for k in details["installed"]]
    assert releases == [ROCKY_RUNNING, ROCKY_UPDATE]  # the rescue image is not a kernel
    assert details["next_boot"]["release"] == ROCKY_UPDATE
    assert "saved entry" in details["next_boot"]["source"]
    assert (
        f"rebooting will load {ROCKY_UPDATE} build 5.14.0-362.13.1.el9_3"
        in check["findings"][0]["message"]
    )


def test_rocky9_running_the_newest_is_ok(snapshot: Snapshot) -> None:
    rocky_host(snapshot, AFTER_BOOT)
    shutil.rmtree(snapshot.root / "lib/modules" / ROCKY_UPDATE)
    (snapshot.root / f"boot/vmlinuz-{ROCKY_UPDATE}").unlink()
    code, check = kernel_result(snapshot)
    assert code == 0 and codes(check) == ["kernel.ok"]


# ------------------------------------------------------------------- skips: container, none
def test_lxc_container_skips(snapshot: Snapshot, tmp_path: Path) -> None:
    write_host(snapshot, proc_version=bookworm_proc_version("6.1.0-26"), kernels=[])
    snapshot.write("run/systemd/container", "lxc\n")
    code, check = kernel_result(snapshot)
    assert code == 0 and check["status"] == "skip"
    assert codes(check) == ["kernel.container"]
    assert "inside a lxc container" in check["findings"][0]["message"]
    assert "belongs to the host" in check["findings"][0]["message"]

    config = tmp_path / "preflight.toml"
    config.write_text("[checks.kernel]\nrequired = true\n")
    code, check = kernel_result(snapshot, "--config", str(config))
    assert code == 2 and check["status"] == "fail" and codes(check) == ["kernel.container"]


def test_no_packages_from_this_machines_own_proc(snapshot: Snapshot) -> None:
    """This machine's real /proc files, with a dpkg status that holds no kernel package."""
    for rel in (
        "proc/version",
        "proc/sys/kernel/osrelease",
        "proc/sys/kernel/version",
        "proc/cmdline",
        "proc/stat",
        "proc/cpuinfo",
    ):
        try:
            snapshot.write(rel, Path("/" + rel).read_bytes())
        except OSError:
            continue
    if Path("/proc/modules").exists():
        snapshot.write("proc/modules", Path("/proc/modules").read_bytes())
    snapshot.write("etc/os-release", Path("/etc/os-release").read_text())
    snapshot.write("var/lib/dpkg/status", "\n".join(FILLER_STANZAS))
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()

    code, check = kernel_result(snapshot)
    assert code == 0 and check["status"] == "skip"
    assert codes(check) == ["kernel.no-packages"]
    message = check["findings"][0]["message"]
    assert f"nothing to compare with the running {release}" in message
    assert "no linux-image-* package" in message
    hypervisor = " hypervisor " in f" {Path('/proc/cpuinfo').read_text()} ".replace("\n", " ")
    if hypervisor and "BOOT_IMAGE=" not in Path("/proc/cmdline").read_text():
        assert "supplied by the hypervisor" in message
    assert check["details"]["installed"] == []


def test_missing_proc_skips_naming_the_file(snapshot: Snapshot) -> None:
    snapshot.write("var/lib/dpkg/status", "\n".join(FILLER_STANZAS))
    code, check = kernel_result(snapshot)
    assert code == 0 and codes(check) == ["kernel.unknown"]
    assert "/proc/sys/kernel/osrelease is missing" in check["findings"][0]["message"]


# ------------------------------------------------------------------------------ images
def test_x86_boot_header_and_gzip_scan(snapshot: Snapshot) -> None:
    from preflight.host import Host
    from preflight_checks.kernel.image import image_version

    header = bookworm_kernel("6.1.0-26", BEFORE_BOOT).image
    assert header is not None
    snapshot.write("boot/vmlinuz-6.1.0-26-amd64", header)
    banner = (
        "6.1.0-26-arm64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
        "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP Debian 6.1.112-1 (2024-09-30)"
    )
    compressed = gzip_image(banner)
    assert compressed[:2] == b"\x1f\x8b" and b"Linux version" not in compressed
    snapshot.write("boot/vmlinuz-6.1.0-26-arm64", compressed)
    snapshot.write("boot/vmlinuz-garbage", os.urandom(300_000))
    snapshot.write("boot/vmlinuz-truncated", gzip_image(banner)[:300])
    os.mkfifo(snapshot.root / "boot/vmlinuz-fifo")
    host = Host(str(snapshot.root))
    assert image_version(host, "boot/vmlinuz-6.1.0-26-amd64") == (
        "6.1.0-26-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian "
        "6.1.112-1 (2024-09-30)"
    )
    assert image_version(host, "boot/vmlinuz-6.1.0-26-arm64") == banner
    assert image_version(host, "boot/vmlinuz-6.1.0-26-arm64", scan=False) is None
    assert image_version(host, "boot/vmlinuz-garbage") is None
    assert image_version(host, "boot/vmlinuz-truncated") is None
    assert image_version(host, "boot/vmlinuz-fifo") is None
    assert image_version(host, "boot/vmlinuz-missing") is None


def test_gzip_image_of_running_arm64_kernel_is_reported(snapshot: Snapshot) -> None:
    banner = (
        "6.1.0-26-arm64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
        "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP Debian 6.1.112-1 (2024-09-30)"
    )
    kernel = bookworm_kernel("6.1.0-26", BEFORE_BOOT, with_image=False)
    kernel = Kernel(
        "linux-image-6.1.0-26-arm64",
        kernel.stanza.replace("-amd64", "-arm64").replace("amd64", "arm64"),
        "6.1.0-26-arm64",
        BEFORE_BOOT,
        gzip_image(banner),
    )
    write_host(
        snapshot,
        proc_version="Linux version " + banner,
        kernels=[kernel],
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-arm64 root=/dev/vda2 ro",
    )
    code, check = kernel_result(snapshot)
    assert code == 0 and codes(check) == ["kernel.ok"]
    assert check["details"]["running_image_version"] == banner
    assert check["details"]["installed"][0]["build"] == "6.1.112-1"


def test_hostile_files_never_crash(snapshot: Snapshot) -> None:
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT)],
    )
    (snapshot.root / "proc/cmdline").unlink()
    os.mkfifo(snapshot.root / "proc/cmdline")
    (snapshot.root / "boot/vmlinuz-6.1.0-26-amd64").write_bytes(
        b"\0" * 0x202 + b"HdrS" + b"\xff" * 20
    )
    snapshot.write(
        "var/lib/dpkg/status",
        "Package: linux-image-\nStatus: install ok installed\n"
        "Version: \n\n"
        + (snapshot.root / "var/lib/dpkg/status").read_text()
        + "\nPackage: linux-image-9.9-broken\nStatus: install ok installed\nVersion: !!!\n",
    )
    snapshot.write("proc/version_signature", "Ubuntu\n")
    code, check = kernel_result(snapshot)
    assert code == 0 and check["status"] == "pass", check


# --------------------------------------------------------------------------- performance
def test_ten_thousand_packages_is_fast_and_json_path_skips_rich(snapshot: Snapshot) -> None:
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT)],
        extra_stanzas=(bookworm_meta("6.1.0-26"),),
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 ro",
        filler=10_000,
    )
    status = (snapshot.root / "var/lib/dpkg/status").read_text()
    assert status.count("\nPackage: ") >= 10_000
    probe = (
        "import sys, json\n"
        "from preflight.cli import main\n"
        "try:\n"
        f"    main(['check', 'kernel', '--root', {str(snapshot.root)!r}, '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'debian'))), file=sys.stderr)\n"
    )
    best = None
    for _ in range(3):  # the best of three: a busy CI machine must not make this flaky
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=preflight_env(),
            timeout=60,
        )
        (check,) = json.loads(proc.stdout)["checks"]
        assert check["code"] == "kernel.ok"
        best = check["duration_ms"] if best is None else min(best, check["duration_ms"])
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []
    print(f"kernel check on 10,000 packages: {best} ms")
    assert best is not None and best < 100, best


def test_linode_provider_kernel_points_to_grub2(snapshot: Snapshot) -> None:
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-23", "6.1.98-1"),
        kernels=[bookworm_kernel("6.1.0-26", AFTER_BOOT)],
        extra_stanzas=(bookworm_meta("6.1.0-26"),),
        cmdline="root=/dev/sda console=ttyS0,19200n8 net.ifnames=0",
        dmi=("Linode", "Compute Instance"),
        modules_dirs=False,
    )
    code, check = kernel_result(snapshot)
    assert code == 2
    assert codes(check) == ["kernel.externally-managed", "kernel.modules-missing"]
    remediation = finding(check, "kernel.externally-managed")["remediation"]
    assert remediation[0].startswith("Rebooting alone will not help")
    assert any("'GRUB 2'" in step for step in remediation)
    missing = finding(check, "kernel.modules-missing")["remediation"]
    assert "rebooting alone will not help" in missing[0]


def xen_pv_guest(snap: Snapshot, kernels: list[Kernel]) -> Snapshot:
    """A Debian 12 Xen PV domU: the toolstack loads the kernel from dom0 (no BOOT_IMAGE=, no
    DMI tables in a PV guest)."""
    write_host(
        snap,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=kernels,
        extra_stanzas=(bookworm_meta("6.1.0-27"),) if kernels else (),
        cmdline="root=/dev/xvda1 ro console=hvc0",
    )
    snap.write("sys/hypervisor/type", "xen\n")
    snap.write("sys/hypervisor/guest_type", "PV\n")
    return snap


def test_xen_pv_guest_kernel_from_dom0_is_externally_managed(snapshot: Snapshot) -> None:
    """Installed after the boot, yet the toolstack loads the kernel: no reboot advice."""
    xen_pv_guest(
        snapshot,
        [bookworm_kernel("6.1.0-26", BEFORE_BOOT), bookworm_kernel("6.1.0-27", AFTER_BOOT)],
    )
    code, check = kernel_result(snapshot)
    assert code == 2 and codes(check) == ["kernel.externally-managed"]
    found = finding(check, "kernel.externally-managed")
    assert "Xen PV guest whose kernel the toolstack loads" in found["message"]
    remediation = found["remediation"]
    assert remediation[0].startswith("Rebooting alone will not help: the Xen toolstack")
    assert any("pygrub" in step and "6.1.0-27-amd64" in step for step in remediation)
    assert check["summary"].endswith("the kernel is loaded from outside the machine")
    assert check["details"]["virtualization"] == "xen"


def test_xen_pv_guest_without_kernel_packages_names_the_toolstack(snapshot: Snapshot) -> None:
    xen_pv_guest(snapshot, [])
    code, check = kernel_result(snapshot)
    # dom0 supplied the kernel but not its modules: /lib/modules/6.1.0-26-amd64 is absent.
    assert code == 1 and codes(check) == ["kernel.no-packages", "kernel.modules-missing"]
    assert "supplied by the Xen toolstack (a PV guest)" in check["findings"][0]["message"]


def test_hand_installed_running_kernel_is_drift_not_reboot(snapshot: Snapshot) -> None:
    """A kernel built with `make install` has an image and modules but no package."""
    write_host(
        snapshot,
        proc_version="Linux version 6.6.63-custom (root@build) (gcc-12 (Debian 12.2.0-14) "
        "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #3 SMP PREEMPT_DYNAMIC "
        "Thu Nov 28 10:12:01 UTC 2024",
        kernels=[bookworm_kernel("6.1.0-26", AFTER_BOOT)],
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.6.63-custom root=/dev/nvme0n1p2 ro",
    )
    snapshot.write(
        "boot/vmlinuz-6.6.63-custom",
        bzimage("6.6.63-custom (root@build) #3 SMP PREEMPT_DYNAMIC Thu Nov 28 10:12:01 UTC 2024"),
    )
    snapshot.write("lib/modules/6.6.63-custom/modules.dep", "kernel/drivers/net/tun.ko:\n")
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.drift"]
    assert (
        "has an image (/boot/vmlinuz-6.6.63-custom) but no package"
        in check["findings"][0]["message"]
    )
    assert check["details"]["running_image_version"].startswith("6.6.63-custom (root@build) #3")
