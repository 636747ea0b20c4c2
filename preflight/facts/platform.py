"""What the host runs on and under: virtualization, container, cloud provider, service manager."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.host import Host

PATHS = (
    "etc/hostname",
    "proc/sys/kernel/hostname",
    "proc/cpuinfo",
    "proc/xen",
    "proc/vz",
    "proc/bc",
    "proc/1/environ",
    "proc/1/cgroup",
    "proc/1/mountinfo",
    "proc/1/comm",
    "sys/hypervisor/type",
    "sys/class/dmi/id/sys_vendor",
    "sys/class/dmi/id/product_name",
    "sys/class/dmi/id/bios_vendor",
    "sys/class/dmi/id/chassis_asset_tag",
    "run/systemd/container",
    "run/systemd/system",
    "run/container_type",
    "run/.containerenv",
    ".dockerenv",
)


def hostname(host: Host) -> str | None:
    return host.read_line("proc/sys/kernel/hostname") or host.read_line("etc/hostname")


DMI_FIELDS = ("sys_vendor", "product_name", "bios_vendor", "chassis_asset_tag")


def dmi(host: Host) -> dict[str, str | None]:
    """The DMI names that say who made the (virtual) machine: read once, used by
    virtualization() and provider()."""
    return {name: host.read_line(f"sys/class/dmi/id/{name}") for name in DMI_FIELDS}


def _dmi_text(host: Host, *names: str) -> str:
    return " ".join(value for name in names if (value := host.dmi[name]))


# DMI sys_vendor / product_name words -> systemd-detect-virt's names.
_VIRT_BY_DMI = (
    ("KVM", "kvm"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VirtualBox", "oracle"),
    ("innotek", "oracle"),
    ("Xen", "xen"),
    ("Bochs", "bochs"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Amazon EC2", "amazon"),
    ("Google Compute Engine", "google"),
    ("DigitalOcean", "kvm"),
    ("Linode", "kvm"),
    ("Hetzner", "kvm"),
    ("OpenStack", "kvm"),
)


def virtualization(host: Host) -> str | None:
    if host.read_line("sys/hypervisor/type") == "xen" or host.is_dir("proc/xen"):
        return "xen"
    dmi = _dmi_text(host, "sys_vendor", "product_name", "bios_vendor")
    if dmi:
        for word, name in _VIRT_BY_DMI:
            if word.lower() in dmi.lower():
                return name
        if "Microsoft Corporation" in dmi and "Virtual Machine" in dmi:
            return "microsoft"
    # The first processor's block holds the flags line: no need to read every CPU's.
    cpuinfo = host.read_text("proc/cpuinfo", 64 * 1024)
    if cpuinfo is None:
        return None
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    if flags is None:
        return None
    # The CPU says it runs under a hypervisor but nothing names which one (a microVM has no DMI).
    return "vm" if "hypervisor" in flags.group(1).split() else "none"


def container(host: Host) -> str | None:
    """The container technology, from evidence that only containers produce. `/.dockerenv`
    alone is weak (image builders leave it behind, and microVMs booted from Docker images carry
    it), so it counts only when the cgroup or the root filesystem agree."""
    for rel in ("run/systemd/container", "run/container_type"):
        name = host.read_line(rel)
        if name:
            return name
    environ = host.read_bytes("proc/1/environ", 64 * 1024)
    if environ:
        for item in environ.split(b"\0"):
            if item.startswith(b"container="):
                return item[len(b"container=") :].decode("utf-8", "replace") or None
    if host.exists("run/.containerenv"):
        return "podman"
    if host.is_dir("proc/vz") and not host.exists("proc/bc"):
        return "openvz"
    cgroup = host.read_text("proc/1/cgroup", 64 * 1024) or ""
    for marker, name in (
        ("docker", "docker"),
        ("kubepods", "kubernetes"),
        ("lxc", "lxc"),
        ("containerd", "containerd"),
        ("libpod", "podman"),
    ):
        if marker in cgroup:
            return name
    if host.exists(".dockerenv") and _root_is_overlay(host):
        return "docker"
    return None


def _root_is_overlay(host: Host) -> bool:
    mountinfo = (
        host.read_text("proc/1/mountinfo", 512 * 1024)
        or host.read_text("proc/self/mountinfo", 512 * 1024)
        or ""
    )
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 8 and fields[4] == "/" and "-" in fields:
            fstype = fields[fields.index("-") + 1]
            return fstype in ("overlay", "aufs", "fuse-overlayfs")
    return False


# Who runs the machine, by a word of its DMI names (case-insensitive), first match wins: what
# the platforms write (sys_vendor / product_name / bios_vendor / chassis_asset_tag):
#   DigitalOcean    DigitalOcean / Droplet / DigitalOcean
#   Linode, Akamai  Linode or Akamai (older Linodes: QEMU / Standard PC ...)
#   AWS (Nitro)     Amazon EC2 / m5.large / Amazon EC2 (Xen instances: Xen / HVM domU: no name)
#   GCE             Google / Google Compute Engine / Google
#   Hetzner Cloud   Hetzner / vServer;  Vultr / VC2;  Scaleway / SCW-...
#   Oracle (OCI)    QEMU / Standard PC (i440FX + PIIX, 1996) / SeaBIOS / OracleCloud.com
#   Azure           Microsoft Corporation / Virtual Machine / ... / 7783-7084-3265-9085-8269-3286-77
#                   (Hyper-V outside Azure: the same names without that asset tag)
# Cloud words come before QEMU's: an Oracle or old Linode guest also says QEMU. The last
# entries name no provider but the hypervisor that loads the kernel itself (QEMU direct kernel
# boot under libvirt or Proxmox VE), which the kernel check asks for.
DMI_VENDORS = (
    ("digitalocean", "digitalocean"),
    ("linode", "linode"),
    ("akamai", "linode"),
    ("amazon ec2", "aws"),
    ("google", "gcp"),
    ("hetzner", "hetzner"),
    ("vultr", "vultr"),
    ("scaleway", "scaleway"),
    ("ovh", "ovh"),
    ("alibaba", "alibaba"),
    ("oraclecloud.com", "oracle"),
    ("openstack", "openstack"),
    ("7783-7084-3265-9085-8269-3286-77", "azure"),
    ("proxmox", "qemu"),
    ("qemu", "qemu"),
)
HYPERVISOR_VENDORS = frozenset({"qemu"})  # DMI_VENDORS keys that are no provider


def dmi_vendor(host: Host) -> str | None:
    """The DMI_VENDORS key of the first word the host's DMI names hold; None: none of them."""
    text = _dmi_text(host, *DMI_FIELDS).lower()
    return next((key for word, key in DMI_VENDORS if word in text), None)


def provider(host: Host) -> str | None:
    """The cloud provider named by DMI; None when DMI says nothing we recognise."""
    vendor = host.dmi_vendor
    return None if vendor in HYPERVISOR_VENDORS else vendor


# proc/1/comm of the service managers whose commands a remediation can name.
_INIT_BY_COMM = {
    "systemd": "systemd",
    "init": "sysvinit",
    "openrc-init": "openrc",
    "runit": "runit",
    "s6-svscan": "s6",
}


def service_manager(host: Host) -> str | None:
    """What starts services: "systemd", "sysvinit", "openrc", "runit", "s6", "none" (pid 1 is
    something else, as in a container or a microVM), or None when the files do not say."""
    # sd_booted(): /run/systemd/system exists only while systemd runs as pid 1.
    if host.is_dir("run/systemd/system"):
        return "systemd"
    comm = host.read_line("proc/1/comm")
    if comm:
        return _INIT_BY_COMM.get(comm, "none")
    if not host.is_live and host.exists("sbin/init"):
        # A disk image: /run is empty, but the init it would boot is named by /sbin/init.
        init = host.realpath("sbin/init")
        if init:
            name = init.rstrip("/").rsplit("/", 1)[-1]
            return _INIT_BY_COMM.get(name, "sysvinit" if name == "init" else None)
    return None
