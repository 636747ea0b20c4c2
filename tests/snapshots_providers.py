# ruff: noqa: E501 - kernel banners are real data, their long lines included
"""Real traces that providers and hypervisors leave in a guest, for kernel snapshots.

Every string is copied from a real host: the /proc/version banners and kernel command lines of
Linode, OVH, EC2 and Firecracker guests, Scaleway's `uname -v`, cloud-init's cloud-id and
datasource files, and the first 36 bytes (the ACPI table header) of a Firecracker microVM's
DSDT, read on the machine these tests were written on.
"""

from __future__ import annotations

from support.snapshot import Snapshot

# Linode's own kernels, booted by the configuration profile ("Latest 64 bit").
LINODE_PROC_VERSION = (
    "Linux version 4.9.7-x86_64-linode80 (maker@build) (gcc version 4.7.2 (Debian 4.7.2-5) ) "
    "#2 SMP Thu Feb 2 15:43:55 EST 2017"
)
LINODE_CMDLINE = "root=/dev/sda console=tty1 console=ttyS0 ro  devtmpfs.mount=1"

# An OVH dedicated server netbooting OVH's kernel: iPXE passes BOOT_IMAGE=/bzImage-<release>.
OVH_PROC_VERSION = (
    "Linux version 4.9.87-xxxx-std-ipv6-64 (kernel@kernel.ovh.net) (gcc version 7.3.0 (GCC) ) "
    "#1 SMP Tue Mar 13 18:41:47 CET 2018"
)
OVH_CMDLINE = "BOOT_IMAGE=/bzImage-4.9.87-xxxx-std-ipv6-64 root=/dev/sda2 ro noquiet nosplash"

# A Scaleway instance booted by a bootscript (uname -r and uname -v of a real instance).
SCALEWAY_RELEASE = "4.4.127-mainline-rev1"
SCALEWAY_UNAME_V = "#1 SMP Sun Apr 8 10:38:32 UTC 2018"

# EC2 PV instance booted from Amazon's Fedora 8 AKI (aki-b51cf9dc, ec2-vmlinuz-2.6.21.7-2.fc8xen).
AWS_AKI_PROC_VERSION = (
    "Linux version 2.6.21.7-2.fc8xen (mockbuild@xenbuilder4.fedora.phx.redhat.com) "
    "(gcc version 4.1.2 20070925 (Red Hat 4.1.2-33)) #1 SMP Fri Feb 15 12:34:28 EST 2008"
)
AWS_HYPERVISOR_UUID = "ec2e1916-9099-7caf-fd21-01234abcdef5"

# This Firecracker microVM: its banner, kernel command line and ACPI table headers.
FIRECRACKER_PROC_VERSION = (
    "Linux version 6.18.44-fc-v657 (builder@sandboxing) (gcc (GCC) 15.3.0, GNU ld (GNU "
    "Binutils) 2.46) #1 SMP PREEMPT_DYNAMIC @0"
)
FIRECRACKER_CMDLINE = (
    "console=ttyS0 quiet reboot=k panic=1 nomodule random.trust_cpu=1 swiotlb=noforce psi=1"
)
FIRECRACKER_DSDT_HEADER = bytes.fromhex(
    "44534454530f0000027746495245434b4643564d44534454000000004643415419012420"
)
FIRECRACKER_FACP_HEADER = bytes.fromhex(
    "4641435014010000066646495245434b4643564d46414454000000004643415419012420"
)

# DMI of a Proxmox VE / libvirt guest (QEMU's defaults), Hetzner Cloud and Vultr.
QEMU_DMI = ("QEMU", "Standard PC (i440FX + PIIX, 1996)")
HETZNER_DMI = ("Hetzner", "vServer")
VULTR_DMI = ("Vultr", "VC2")


def cloud_init(snap: Snapshot, cloud_id: str, datasource: str) -> None:
    """cloud-init's record of the platform: /run/cloud-init/cloud-id and the datasource line
    ("DataSourceHetzner: DataSourceHetzner") it keeps in /var/lib/cloud/instance."""
    snap.write("run/cloud-init/cloud-id", cloud_id + "\n")
    snap.write("var/lib/cloud/instance/datasource", f"{datasource}: {datasource}\n")
