"""The provider or hypervisor that loads the kernel, named from real traces, with its own remedy.

Each snapshot is a Debian 12 host whose kernel packages are real bookworm ones and whose running
kernel is what that provider really boots (its banner, release naming, command line, DMI,
cloud-init files or ACPI tables), so the verdict and the remedy are the ones an operator there
would get.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hostdata import DEBIAN7_OS_RELEASE
from snapshots_kernel import (
    BEFORE_BOOT,
    DEBIAN7_IMAGE_STANZA,
    DEBIAN7_IMAGE_VERSION,
    Kernel,
    bookworm_kernel,
    bookworm_meta,
    bzimage,
    write_host,
)
from snapshots_providers import (
    AWS_AKI_PROC_VERSION,
    AWS_HYPERVISOR_UUID,
    FIRECRACKER_CMDLINE,
    FIRECRACKER_DSDT_HEADER,
    FIRECRACKER_FACP_HEADER,
    FIRECRACKER_PROC_VERSION,
    HETZNER_DMI,
    LINODE_CMDLINE,
    LINODE_PROC_VERSION,
    OVH_CMDLINE,
    OVH_PROC_VERSION,
    QEMU_DMI,
    SCALEWAY_RELEASE,
    SCALEWAY_UNAME_V,
    VULTR_DMI,
    cloud_init,
)
from support.cli import codes, finding, report_of, run_preflight
from support.snapshot import Snapshot


def kernel_result(root: Snapshot | str) -> tuple[int, dict[str, Any]]:
    run = run_preflight("check", "kernel", "--root", str(root), "--format", "json")
    (check,) = report_of(run)["checks"]
    return run.returncode, check


def bookworm_host(snap: Snapshot, proc_version: str, cmdline: str, **kwargs: Any) -> Snapshot:
    """Debian 12 with linux-image-6.1.0-26-amd64 installed before the last boot."""
    return write_host(
        snap,
        proc_version=proc_version,
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT)],
        extra_stanzas=(bookworm_meta("6.1.0-26"),),
        cmdline=cmdline,
        **kwargs,
    )


def external(check: dict[str, Any]) -> tuple[str, list[str]]:
    found = finding(check, "kernel.externally-managed")
    return found["message"], found["remediation"]


def test_linode_kernel_is_named_by_release_and_builder_over_qemu_dmi(snapshot: Snapshot) -> None:
    """Linode's KVM guests show QEMU's DMI; the kernel's own name and build host say Linode."""
    bookworm_host(snapshot, LINODE_PROC_VERSION, LINODE_CMDLINE, dmi=QEMU_DMI)
    code, check = kernel_result(snapshot)
    assert code == 2 and check["code"] == "kernel.externally-managed"
    details = check["details"]
    assert details["provider"] == "linode" and details["provider_name"] == "Linode"
    evidence = " ".join(details["provider_evidence"])
    assert "4.9.7-x86_64-linode80" in evidence and "maker@build" in evidence
    message, remediation = external(check)
    assert "the running kernel is Linode's and its image is not in /boot" in message
    assert remediation[0].startswith("Rebooting alone will not help: this machine runs on Linode")
    assert any(
        "Configuration Profiles -> Edit -> Boot Settings" in step
        and "'GRUB 2' from the Kernel drop-down" in step
        and "6.1.0-26-amd64" in step
        for step in remediation
    )
    assert any("Reboot the Linode from its dashboard" in step for step in remediation)
    assert details["provider_docs"]


def test_linode_without_kernel_packages_names_linode(snapshot: Snapshot) -> None:
    write_host(snapshot, proc_version=LINODE_PROC_VERSION, kernels=[], cmdline=LINODE_CMDLINE)
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.no-packages", "kernel.modules-missing"]
    assert "the kernel is supplied by Linode (" in check["findings"][0]["message"]


def test_ovh_netboot_kernel_points_to_boot_to_disk(snapshot: Snapshot) -> None:
    """iPXE passes BOOT_IMAGE=/bzImage-..., yet no such image is on the disk."""
    bookworm_host(snapshot, OVH_PROC_VERSION, OVH_CMDLINE)
    code, check = kernel_result(snapshot)
    assert code == 2 and check["code"] == "kernel.externally-managed"
    assert check["details"]["provider"] == "ovh"
    assert "kernel@kernel.ovh.net" in " ".join(check["details"]["provider_evidence"])
    message, remediation = external(check)
    assert "OVHcloud's and its image is not in /boot" in message
    assert any("'Boot to disk'" in step and "6.1.0-26-amd64" in step for step in remediation)
    assert any("PXE first" in step for step in remediation)
    assert not any("maintenance window" in step for step in remediation)


def test_ovh_kernel_installed_on_disk_is_not_netboot(snapshot: Snapshot) -> None:
    """OVH's older templates install OVH's kernel in /boot and boot it with GRUB: the disk's
    own boot loader chose it, so the netboot remedy must not be given."""
    bookworm_host(snapshot, OVH_PROC_VERSION, OVH_CMDLINE)
    snapshot.write(
        "boot/bzImage-4.9.87-xxxx-std-ipv6-64",
        bzimage(
            "4.9.87-xxxx-std-ipv6-64 (kernel@kernel.ovh.net) #1 SMP Tue Mar 13 18:41:47 CET 2018"
        ),
    )
    code, check = kernel_result(snapshot)
    assert check["details"]["provider"] == "ovh"
    assert code == 1 and codes(check)[0] == "kernel.drift"
    assert "has an image (/boot/bzImage-4.9.87-xxxx-std-ipv6-64)" in check["findings"][0]["message"]
    assert not any("Boot to disk" in " ".join(f["remediation"]) for f in check["findings"])


def test_scaleway_bootscript_kernel(snapshot: Snapshot) -> None:
    """A bootscript kernel; the snapshot holds uname -r/-v but no /proc/version."""
    bookworm_host(snapshot, f"Linux version {SCALEWAY_RELEASE} {SCALEWAY_UNAME_V}", "")
    (snapshot.root / "proc/version").unlink()
    cloud_init(snapshot, "scaleway", "DataSourceScaleway")
    code, check = kernel_result(snapshot)
    assert code == 2 and check["code"] == "kernel.externally-managed"
    details = check["details"]
    assert details["provider"] == "scaleway"
    assert "cloud-init's cloud-id is 'scaleway'" in details["provider_evidence"]
    _, remediation = external(check)
    assert any("boot_type: local" in step for step in remediation)
    assert any("could not be confirmed" in step for step in remediation)


def test_scaleway_std_kernel_needs_other_scaleway_evidence(snapshot: Snapshot) -> None:
    bookworm_host(snapshot, "Linux version 4.5.7-std-3 #1 SMP Mon Jun 20 14:05:46 UTC 2016", "")
    (snapshot.root / "proc/version").unlink()
    _, check = kernel_result(snapshot)
    assert check["details"]["provider"] is None  # "-std-3" alone names nobody
    cloud_init(snapshot, "scaleway", "DataSourceScaleway")
    _, check = kernel_result(snapshot)
    assert check["details"]["provider"] == "scaleway"
    assert any("4.5.7-std-3" in e for e in check["details"]["provider_evidence"])
    assert check["code"] == "kernel.externally-managed"


def test_aws_pv_instance_on_an_aki_kernel(snapshot: Snapshot) -> None:
    """A Debian 7 AMI on EC2 PV, started with Amazon's Fedora 8 AKI instead of PV-GRUB."""
    kernel = Kernel(
        "linux-image-3.2.0-4-amd64",
        DEBIAN7_IMAGE_STANZA,
        "3.2.0-4-amd64",
        BEFORE_BOOT,
        bzimage(DEBIAN7_IMAGE_VERSION, 0x3780),
    )
    write_host(
        snapshot,
        proc_version=AWS_AKI_PROC_VERSION,
        kernels=[kernel],
        os_release=DEBIAN7_OS_RELEASE,
        cmdline="root=/dev/sda1 ro 4",
        proc_modules=True,
        modules_dirs=True,
    )
    snapshot.write("sys/hypervisor/type", "xen\n")
    snapshot.write("sys/hypervisor/uuid", AWS_HYPERVISOR_UUID + "\n")
    code, check = kernel_result(snapshot)
    assert code == 2 and check["code"] == "kernel.externally-managed"
    details = check["details"]
    assert details["provider"] == "aws"
    assert any("starts with 'ec2'" in e for e in details["provider_evidence"])
    assert any("2.6.21.7-2.fc8xen is a Xen kernel" in e for e in details["provider_evidence"])
    _, remediation = external(check)
    assert any("Stop the instance" in step and "pv-grub" in step for step in remediation)
    assert any("modify-instance-attribute" in step for step in remediation)
    assert any("HVM" in step for step in remediation)


def hypervisor_kernel(snap: Snapshot, cmdline: str, **kwargs: Any) -> Snapshot:
    """The running 6.1.0-23-amd64 build has no package, no image and no modules here."""
    return bookworm_host(
        snap,
        "Linux version 6.1.0-23-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
        "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
        "Debian 6.1.98-1 (2024-07-14)",
        cmdline,
        **kwargs,
    )


def test_proxmox_or_libvirt_direct_kernel_boot(snapshot: Snapshot) -> None:
    hypervisor_kernel(snapshot, "root=/dev/vda1 ro console=ttyS0", dmi=QEMU_DMI)
    code, check = kernel_result(snapshot)
    assert code == 2 and check["code"] == "kernel.externally-managed"
    assert check["details"]["provider"] == "qemu"
    _, remediation = external(check)
    assert any("virsh edit" in step and "<kernel>" in step for step in remediation)
    assert any("/etc/pve/qemu-server/VMID.conf" in step for step in remediation)


def test_an_oracle_cloud_guest_is_not_told_to_edit_a_libvirt_domain(snapshot: Snapshot) -> None:
    """An OCI instance shows QEMU's DMI names; its chassis asset tag (OracleCloud.com) says
    Oracle runs it, so the QEMU direct-boot steps (virsh edit, Proxmox's VMID.conf), which
    an Oracle customer cannot take, are not suggested; the report names the provider."""
    hypervisor_kernel(snapshot, "root=/dev/sda1 ro console=ttyS0", dmi=QEMU_DMI)
    snapshot.write("sys/class/dmi/id/bios_vendor", "SeaBIOS\n")
    snapshot.write("sys/class/dmi/id/chassis_asset_tag", "OracleCloud.com\n")
    code, check = kernel_result(snapshot)
    assert code == 2 and check["code"] == "kernel.externally-managed"
    assert check["details"]["provider"] == "oracle"
    _, remediation = external(check)
    assert not any("virsh" in step or "qemu-server" in step for step in remediation), remediation


def test_hetzner_and_vultr_say_their_steps_are_unconfirmed(snapshot: Snapshot) -> None:
    hypervisor_kernel(snapshot, "root=/dev/sda1 ro", dmi=HETZNER_DMI)
    cloud_init(snapshot, "hetzner", "DataSourceHetzner")
    _, check = kernel_result(snapshot)
    assert check["details"]["provider"] == "hetzner"
    assert len(check["details"]["provider_evidence"]) == 3  # DMI, cloud-id, datasource
    _, remediation = external(check)
    assert any("No documented menu path could be confirmed" in s for s in remediation)
    (snapshot.root / "sys/class/dmi/id/sys_vendor").write_text(VULTR_DMI[0] + "\n")
    (snapshot.root / "sys/class/dmi/id/product_name").write_text(VULTR_DMI[1] + "\n")
    cloud_init(snapshot, "vultr", "DataSourceVultr")
    _, check = kernel_result(snapshot)
    assert check["details"]["provider"] == "vultr"
    assert any("custom ISO" in s for s in external(check)[1])


def test_hetzner_host_that_boots_itself_is_ok(snapshot: Snapshot) -> None:
    """Provider traces alone never make a kernel external: GRUB chose this one."""
    write_host(
        snapshot,
        proc_version=(
            "Linux version 6.1.0-26-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
            "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
            "Debian 6.1.112-1 (2024-09-30)"
        ),
        kernels=[bookworm_kernel("6.1.0-26", BEFORE_BOOT)],
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 root=UUID=0b6a1c9e ro consoleblank=0",
        dmi=HETZNER_DMI,
    )
    cloud_init(snapshot, "hetzner", "DataSourceHetzner")
    code, check = kernel_result(snapshot)
    assert code == 0 and check["code"] == "kernel.ok"
    assert check["details"]["provider"] == "hetzner"


def test_firecracker_is_named_from_its_acpi_tables(snapshot: Snapshot) -> None:
    hypervisor_kernel(snapshot, FIRECRACKER_CMDLINE)
    (snapshot.root / "proc/version").write_text(FIRECRACKER_PROC_VERSION + "\n")
    (snapshot.root / "proc/sys/kernel/osrelease").write_text("6.18.44-fc-v657\n")
    (snapshot.root / "proc/sys/kernel/version").write_text("#1 SMP PREEMPT_DYNAMIC @0\n")
    snapshot.write("sys/firmware/acpi/tables/DSDT", FIRECRACKER_DSDT_HEADER + b"\0" * 64)
    snapshot.write("sys/firmware/acpi/tables/FACP", FIRECRACKER_FACP_HEADER)
    code, check = kernel_result(snapshot)
    assert code == 2 and check["code"] == "kernel.externally-managed"
    assert check["details"]["provider"] == "firecracker"
    message, remediation = external(check)
    assert "Firecracker loads the kernel itself" in message and "FIRECK" in message
    assert any("kernel_image_path" in s and "6.1.0-26-amd64" in s for s in remediation)
    assert remediation[-1].endswith("apt-get purge linux-image-6.1.0-26-amd64 linux-image-amd64")


def test_live_firecracker_microvm_is_named() -> None:
    """This machine is a Firecracker microVM: its ACPI tables carry Firecracker's OEM ID."""
    if os.geteuid() != 0:
        # The tables are readable by root only; CI runs as root.
        assert not os.access("/sys/firmware/acpi/tables/DSDT", os.R_OK)
        return
    header = Path("/sys/firmware/acpi/tables/DSDT").read_bytes()[:36]
    assert header[10:16] == b"FIRECK", header
    run = run_preflight("check", "kernel", "--format", "json")
    (check,) = report_of(run)["checks"]
    assert check["details"]["provider"] == "firecracker"
    assert check["code"] == "kernel.externally-managed"
    assert any("kernel_image_path" in s for s in finding(check, check["code"])["remediation"])


def test_shell_quoting_of_hostile_package_names(snapshot: Snapshot) -> None:
    """A package name that is not a plausible name never reaches a suggested command."""
    hostile = bookworm_kernel("6.1.0-26", BEFORE_BOOT)
    bad = "linux-image-6.1.0-26-amd64$(touch${IFS}/root/PWN);reboot"
    stanza = hostile.stanza.replace("Package: linux-image-6.1.0-26-amd64", f"Package: {bad}", 1)
    write_host(
        snapshot,
        proc_version=FIRECRACKER_PROC_VERSION,
        kernels=[Kernel(bad, stanza, bad[len("linux-image-") :], BEFORE_BOOT, hostile.image)],
        cmdline=FIRECRACKER_CMDLINE,
    )
    snapshot.write("sys/firmware/acpi/tables/DSDT", FIRECRACKER_DSDT_HEADER)
    _, check = kernel_result(snapshot)
    steps = " ".join(s for f in check["findings"] for s in f["remediation"])
    assert check["code"] == "kernel.externally-managed"
    assert "apt-get purge" not in steps
    assert "remove them." in steps
