"""Kernel naming beyond Debian and Red Hat: Arch (linux, linux-lts, pkgbase), Alpine (linux-lts,
linux-virt), SUSE (kernel-default, in test_kernel_rpmdb), and systemd-boot hosts whose boot loader
sets no BOOT_IMAGE= (Boot Loader Specification entries, unified kernel images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snapshots_kernel import (
    AFTER_BOOT,
    BEFORE_BOOT,
    BOOT,
    bookworm_kernel,
    bookworm_proc_version,
    write_host,
)
from snapshots_naming import (
    ALPINE_OS_RELEASE,
    ALPINE_PROC_VERSION,
    ARCH_OS_RELEASE,
    apk_installed,
    arch_kernel,
    arch_proc_version,
    debian_boot_entry,
    proc_files,
    unified_kernel_image,
)
from support.cli import codes, report_of, run_preflight
from support.snapshot import Snapshot

ARCH_RUNNING = "6.6.8-arch1-1"
ARCH_RUNNING_DATE = "Thu, 21 Dec 2023 19:01:01 +0000"
MACHINE_ID = "4a6f1c2e8b3d4f5a9c7e0d1b2a3c4d5e"


def kernel_result(root: Snapshot) -> tuple[int, dict[str, Any]]:
    run = run_preflight("check", "kernel", "--root", str(root), "--format", "json")
    (check,) = report_of(run)["checks"]
    return run.returncode, check


def arch_host(
    snap: Snapshot,
    cmdline: str = "BOOT_IMAGE=/boot/vmlinuz-linux root=UUID=2d0c rw loglevel=3 quiet",
    **kwargs: Any,
) -> Snapshot:
    proc_files(
        snap,
        arch_proc_version(ARCH_RUNNING, ARCH_RUNNING_DATE),
        cmdline,
        ARCH_OS_RELEASE,
        BOOT,
        **kwargs,
    )
    snap.symlink("lib", "usr/lib")
    arch_kernel(
        snap,
        "linux-lts",
        "6.1.69-1",
        "6.1.69-1-lts",
        "Wed, 20 Dec 2023 16:00:39 +0000",
        BEFORE_BOOT,
    )
    return snap


def test_arch_linux_and_linux_lts_are_named_from_pkgbase_and_pacman(snapshot: Snapshot) -> None:
    arch_host(snapshot)
    arch_kernel(snapshot, "linux", "6.6.8.arch1-1", ARCH_RUNNING, ARCH_RUNNING_DATE, BEFORE_BOOT)
    code, check = kernel_result(snapshot)
    assert code == 0 and codes(check) == ["kernel.ok"]
    installed = {k["package"]: k for k in check["details"]["installed"]}
    assert installed["linux"]["version"] == "6.6.8.arch1-1"
    assert (
        installed["linux"]["release"] == ARCH_RUNNING and installed["linux"]["source"] == "pacman"
    )
    assert installed["linux-lts"]["version"] == "6.1.69-1"
    assert installed["linux-lts"]["release"] == "6.1.69-1-lts"
    assert installed["linux"]["installed_at"] == "2024-11-05T07:06:40Z"  # pacman's INSTALLDATE
    assert installed["linux"]["build"] is None or installed["linux"]["image"].endswith("/vmlinuz")
    assert "running 6.6.8-arch1-1" in check["findings"][0]["message"]
    assert "linux 6.6.8.arch1-1" in check["findings"][0]["message"]


def test_arch_upgrade_removed_the_running_modules(snapshot: Snapshot) -> None:
    """pacman -Syu replaced linux: the running release's modules are gone until a reboot."""
    arch_host(snapshot)
    arch_kernel(
        snapshot,
        "linux",
        "6.6.9.arch1-1",
        "6.6.9-arch1-1",
        "Fri, 05 Jan 2024 17:20:39 +0000",
        AFTER_BOOT,
    )
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.reboot-required", "kernel.modules-missing"]
    message = check["findings"][0]["message"]
    assert "linux 6.6.9.arch1-1" in message and "rebooting will load 6.6.9-arch1-1" in message


def alpine_host(
    snap: Snapshot,
    running: str,
    kernels: dict[str, str],
    flavours: dict[str, str],
    installed: float,
) -> Snapshot:
    flavour = running.rpartition("-")[2]
    proc_files(
        snap,
        ALPINE_PROC_VERSION.format(release=running),
        f"BOOT_IMAGE=vmlinuz-{flavour} root=UUID=9e2b7c1d-3a4f-4b6e-8d0c-5f1a2b3c4d5e "
        "modules=sd-mod,usb-storage,ext4 quiet rootfstype=ext4",
        ALPINE_OS_RELEASE,
        BOOT,
    )
    snap.write("lib/apk/db/installed", apk_installed(kernels))
    for release, image_flavour in flavours.items():
        snap.write(
            f"lib/modules/{release}/modules.dep", "kernel/drivers/net/tun.ko.gz:\n", mtime=installed
        )
        snap.write(f"boot/config-{release}", "CONFIG_TUN=m\n", mtime=installed)
        snap.write(f"boot/vmlinuz-{image_flavour}", b"MZ" + b"\0" * 4094, mtime=installed)
    return snap


def test_alpine_linux_lts_is_named_from_apk(snapshot: Snapshot) -> None:
    alpine_host(
        snapshot, "6.6.31-0-lts", {"linux-lts": "6.6.31-r0"}, {"6.6.31-0-lts": "lts"}, BEFORE_BOOT
    )
    code, check = kernel_result(snapshot)
    assert code == 0 and codes(check) == ["kernel.ok"]
    (kernel,) = check["details"]["installed"]
    assert (kernel["package"], kernel["version"], kernel["release"], kernel["source"]) == (
        "linux-lts",
        "6.6.31-r0",
        "6.6.31-0-lts",
        "apk",
    )


def test_alpine_linux_virt_upgrade_requires_reboot(snapshot: Snapshot) -> None:
    alpine_host(
        snapshot,
        "6.6.31-0-virt",
        {"linux-virt": "6.6.32-r0"},
        {"6.6.32-0-virt": "virt"},
        AFTER_BOOT,
    )
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.reboot-required", "kernel.modules-missing"]
    assert "linux-virt 6.6.32-r0" in check["findings"][0]["message"]


def test_uki_without_boot_image_boots_itself(snapshot: Snapshot, tmp_path: Path) -> None:
    """systemd-stub sets no BOOT_IMAGE=: on a DigitalOcean droplet that alone would mean the
    control panel's kernel, unless a UKI on the ESP boots an installed kernel. After pacman -Syu
    the regenerated UKI names the new release, which the next boot loads."""
    cmdline = "root=UUID=2d0c rw quiet"
    arch_host(snapshot, cmdline=cmdline, dmi=("DigitalOcean", "Droplet"))
    new = "6.6.9-arch1-1"
    arch_kernel(
        snapshot, "linux", "6.6.9.arch1-1", new, "Fri, 05 Jan 2024 17:20:39 +0000", AFTER_BOOT
    )
    code, check = kernel_result(snapshot)
    assert check["details"]["provider"] == "digitalocean"
    assert code == 2 and check["code"] == "kernel.externally-managed"
    uki = unified_kernel_image(tmp_path, new, ARCH_OS_RELEASE, cmdline)
    snapshot.write("boot/efi/EFI/Linux/arch-linux.efi", uki)
    code, check = kernel_result(snapshot)
    assert code == 1, check
    assert codes(check) == ["kernel.reboot-required", "kernel.modules-missing"]
    assert check["details"]["boot_entries"] == [
        {"path": "/boot/efi/EFI/Linux/arch-linux.efi", "release": new, "kind": "uki"}
    ]
    assert check["details"]["next_boot"]["source"] == (
        "the unified kernel image /boot/efi/EFI/Linux/arch-linux.efi"
    )


def test_debian_systemd_boot_entries_and_pending_reboot(snapshot: Snapshot) -> None:
    """Debian 12 booted by systemd-boot (kernel-install's entries), on a Linode: no
    BOOT_IMAGE=, yet the machine boots itself, so a newer kernel means a reboot is pending."""
    write_host(
        snapshot,
        proc_version=bookworm_proc_version("6.1.0-26"),
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT), bookworm_kernel("6.1.0-27", AFTER_BOOT)],
        cmdline=f"root=UUID=6e1f5a6c-0b77-4c5b-9d8e-1f7c2f3e4a5b ro "
        f"systemd.machine_id={MACHINE_ID}",
        dmi=("Linode", "Compute Instance"),
    )
    code, check = kernel_result(snapshot)  # without the entries: Linode's kernel, seemingly
    assert code == 2 and check["code"] == "kernel.externally-managed"
    for release in ("6.1.0-26-amd64", "6.1.0-27-amd64"):
        snapshot.write(
            f"boot/efi/loader/entries/{MACHINE_ID}-{release}.conf",
            debian_boot_entry(MACHINE_ID, release),
        )
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.reboot-required"], check
    assert check["details"]["next_boot"]["source"].startswith("the systemd-boot entry /boot/efi")
    releases = sorted(e["release"] for e in check["details"]["boot_entries"])
    assert releases == ["6.1.0-26-amd64", "6.1.0-27-amd64"]


def test_a_run_reads_each_boot_entry_and_kernel_image_once(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """A UKI is read up to 4 MiB to find its release, and a kernel image is scanned for its
    build: one run of the kernel check reads each of them once, however many of its verdicts
    (does the machine boot itself, which kernel boots next, the report's boot entries) ask."""
    from support.reads import run_counting

    from preflight_checks.kernel import KernelCheck

    arch_host(snapshot, cmdline="root=UUID=2d0c rw quiet", dmi=("DigitalOcean", "Droplet"))
    new = "6.6.9-arch1-1"
    arch_kernel(
        snapshot, "linux", "6.6.9.arch1-1", new, "Fri, 05 Jan 2024 17:20:39 +0000", AFTER_BOOT
    )
    uki = unified_kernel_image(tmp_path, new, ARCH_OS_RELEASE, "root=UUID=2d0c rw quiet")
    snapshot.write("boot/efi/EFI/Linux/arch-linux.efi", uki)
    findings, details, reads = run_counting(KernelCheck(), snapshot)
    assert [f.code for f in findings] == ["kernel.reboot-required", "kernel.modules-missing"]
    assert details["next_boot"]["source"].endswith("/boot/efi/EFI/Linux/arch-linux.efi")
    assert reads["boot/efi/EFI/Linux/arch-linux.efi"] == 1, reads
    images = {rel: n for rel, n in reads.items() if "vmlinuz" in rel}
    assert images and set(images.values()) == {1}, reads
