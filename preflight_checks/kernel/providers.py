"""Who loads the kernel from outside the machine, and that provider's own remedy.

Each provider is identified from every trace it leaves in the guest: DMI names, the naming of
the kernels it builds (`4.9.7-x86_64-linode80`, `4.9.87-xxxx-std-ipv6-64`, `4.4.127-mainline-rev1`),
the build host in /proc/version (`maker@build`, `kernel@kernel.ovh.net`), cloud-init's datasource,
/sys/hypervisor, and the OEM ID of the ACPI tables a hypervisor writes (Firecracker: `FIRECK`).
The evidence is kept, so the report says why a provider was named.

Each remedy was checked against the provider's public documentation (the `checked_against`
pages); where a step could not be confirmed there, the remedy says so instead of naming menus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.host import Host


@dataclass(frozen=True)
class Provider:
    key: str
    name: str
    # Steps after "Rebooting alone will not help"; `{want}` is the kernel that should run.
    steps: tuple[str, ...]
    checked_against: tuple[str, ...] = ()
    # True when the platform always loads the kernel itself (no boot loader in the guest).
    always_external: bool = False


PROVIDERS: dict[str, Provider] = {
    p.key: p
    for p in (
        Provider(
            "digitalocean",
            "DigitalOcean",
            (
                "DigitalOcean control panel -> Droplets -> this droplet -> Settings -> Kernel: "
                "select {want} and click Change.",
                "Power the droplet off and on from the control panel (`poweroff` inside, then "
                "Power On); a reboot from inside keeps the old kernel.",
                "Or select the 'GrubLoader' kernel there, so the kernel installed by the package "
                "manager boots from now on.",
            ),
        ),
        Provider(
            "linode",
            "Linode",
            (
                "In the Linode's dashboard, Configuration Profiles -> Edit -> Boot Settings: "
                "select 'GRUB 2' from the Kernel drop-down menu (it boots {want} through the "
                "distribution's GRUB) and click Save Changes.",
                "Reboot the Linode from its dashboard so the profile takes effect; afterwards "
                "`uname -r` shows the distribution's kernel.",
            ),
            ("linode/docs: 'Run a Distribution-Supplied Kernel on KVM Hosts' (docs@linode.com)",),
        ),
        Provider(
            "ovh",
            "OVHcloud",
            (
                "In the OVHcloud Control Panel (or the OVHcloud API), set this dedicated "
                "server's boot mode from the OVH netboot kernel to 'Boot to disk', so the "
                "boot loader on the disk starts {want}.",
                "Restart the server from the Control Panel; leave PXE first in the BIOS boot "
                "order, as OVHcloud requires.",
            ),
            (
                "help.ovhcloud.com KB0074811 'Understanding the dedicated server boot process' "
                "(boot modes: Boot to disk, Customer rescue, Custom boot script)",
            ),
        ),
        Provider(
            "scaleway",
            "Scaleway",
            (
                "Switch the instance's boot type from 'bootscript' to local boot (the Instance "
                "API's `boot_type: local`), so the image's own boot loader starts {want}. "
                "Scaleway's console wording for this could not be confirmed from its public "
                "documentation, and bootscripts are deprecated.",
                "Then power the instance off and on from Scaleway (a reboot inside keeps the "
                "bootscript kernel).",
            ),
            ("Scaleway Instance API (server boot_type 'local' | 'bootscript' | 'rescue')",),
        ),
        Provider(
            "aws",
            "AWS EC2 (Xen PV)",
            (
                "Stop the instance, then change its kernel ID to a PV-GRUB AKI "
                "(`aws ec2 modify-instance-attribute --instance-id ID --kernel Value=aki-...`; "
                "its name starts with pv-grub), so PV-GRUB boots {want} from the instance's "
                "/boot/grub/menu.lst; start it again.",
                "Better: move the workload to an HVM instance, whose own GRUB boots the "
                "installed kernel.",
            ),
            (
                "docs.aws.amazon.com AWSEC2 UserGuide UserProvidedKernels.html (PV-GRUB AKIs, "
                "menu.lst)",
                "EC2 API ModifyInstanceAttribute: kernel (AWS recommends PV-GRUB over "
                "kernels and RAM disks)",
            ),
        ),
        Provider(
            "hetzner",
            "Hetzner",
            (
                "Hetzner documents no Hetzner-supplied kernel for normal boots (servers boot "
                "their own disk); check whether the rescue system or an ISO is still active "
                "for this server in the Hetzner console and deactivate it, then restart so the "
                "disk's boot loader starts {want}. No documented menu path could be confirmed.",
            ),
        ),
        Provider(
            "vultr",
            "Vultr",
            (
                "Vultr documents no Vultr-supplied kernel for normal boots (instances boot "
                "their own disk); check whether a custom ISO is still attached to this "
                "instance in the Vultr portal and detach it, then restart so the disk's boot "
                "loader starts {want}. No documented menu path could be confirmed.",
            ),
        ),
        Provider(
            "firecracker",
            "Firecracker",
            (
                "A Firecracker microVM has no boot loader: the kernel is the host's "
                "`kernel_image_path` in the boot source (PUT /boot-source, settable before "
                "boot only), never this machine's /boot.",
                "On the host that runs this microVM, point kernel_image_path at an "
                "uncompressed vmlinux of {want} (extract it from the image, e.g. with the "
                "kernel tree's scripts/extract-vmlinux), then stop and start the microVM.",
            ),
            (
                "firecracker-microvm/firecracker swagger: PUT /boot-source 'Creates or updates "
                "the boot source. Pre-boot only.', BootSource.kernel_image_path",
            ),
            always_external=True,
        ),
        Provider(
            "qemu",
            "QEMU/KVM direct kernel boot (libvirt or Proxmox VE)",
            (
                "libvirt: `virsh edit DOMAIN`, then point <os><kernel> (and <initrd>) at "
                "{want}, or remove <kernel>, <initrd> and <cmdline> so the VM boots its own "
                "disk; shut the domain down and start it again.",
                "Proxmox VE: remove the `-kernel ...` part of the VM's `args:` line in "
                "/etc/pve/qemu-server/VMID.conf (or point it at {want}), then stop and start "
                "the VM.",
            ),
            (
                "libvirt domain XML <os>: <kernel>, <initrd>, <cmdline> (direct kernel boot)",
                "Proxmox VE qm.conf `args`: arbitrary arguments passed to kvm (experts only)",
            ),
        ),
    )
}


@dataclass
class Identification:
    provider: Provider
    evidence: list[str] = field(default_factory=list)
    # The evidence itself shows the provider's kernel runs (its naming, its build host).
    kernel_named: bool = False


# Kernel release suffixes of provider-built kernels, matched with string methods (no regex).
def _release_provider(release: str) -> str | None:
    _, linode, number = release.rpartition("-linode")
    if linode and number.isdigit():
        return "linode"  # 4.9.7-x86_64-linode80, 3.9.3-x86-linode52, 2.6.18.8-linode22
    if "-xxxx-" in release and release.endswith(("-ipv6-64", "-ipv6-32")):
        return "ovh"  # 4.9.87-xxxx-std-ipv6-64, 3.14.32-xxxx-grs-ipv6-64
    _, rev, number = release.rpartition("-mainline-rev")
    if rev and number.isdigit():
        return "scaleway"  # 4.4.127-mainline-rev1 (a bootscript kernel)
    return None


# The build host in /proc/version ("Linux version R (user@host) (gcc ...) ...").
_BUILDERS = {"maker@build": "linode", "kernel@kernel.ovh.net": "ovh"}

# cloud-init: /run/cloud-init/cloud-id and the datasource class in /var/lib/cloud.
_CLOUD_IDS = {
    "aws": "aws",
    "hetzner": "hetzner",
    "vultr": "vultr",
    "scaleway": "scaleway",
    "digitalocean": "digitalocean",
    "akamai": "linode",
}
_DATASOURCES = {
    "DataSourceEc2": "aws",
    "DataSourceEc2Local": "aws",
    "DataSourceHetzner": "hetzner",
    "DataSourceVultr": "vultr",
    "DataSourceScaleway": "scaleway",
    "DataSourceDigitalOcean": "digitalocean",
    "DataSourceAkamai": "linode",
    "DataSourceAkamaiLocal": "linode",
}

ACPI_TABLES = ("sys/firmware/acpi/tables/DSDT", "sys/firmware/acpi/tables/FACP")
CLOUD_INIT_FILES = ("run/cloud-init/cloud-id", "var/lib/cloud/instance/datasource")


def identify(host: Host) -> Identification | None:
    """The provider or hypervisor whose traces this host carries, with the evidence; None
    when there are none. The provider with the most evidence wins; a kernel named by its
    provider outranks everything."""
    found: dict[str, Identification] = {}

    def note(key: str, evidence: str, kernel_named: bool = False) -> None:
        item = found.setdefault(key, Identification(PROVIDERS[key]))
        item.evidence.append(evidence)
        item.kernel_named = item.kernel_named or kernel_named

    release = host.kernel_release or ""
    named = _release_provider(release)
    if named:
        note(
            named,
            f"the running release {release} is named as {PROVIDERS[named].name} "
            "names its own kernels",
            kernel_named=True,
        )
    builder = _build_host(host.proc_version)
    if builder in _BUILDERS:
        key = _BUILDERS[builder]
        note(
            key,
            f"/proc/version says the kernel was built by {builder}, "
            f"{PROVIDERS[key].name}'s kernel builder",
            kernel_named=True,
        )

    # The engine's reading of DMI (preflight.facts.platform.DMI_VENDORS): a vendor this check
    # has no remedy for (GCE, Azure, Oracle) is no evidence here.
    vendor = host.dmi_vendor
    if vendor in PROVIDERS:
        dmi = {name: value for name, value in host.dmi.items() if value}
        shown = ", ".join(f"{name}={value!r}" for name, value in dmi.items())
        note(vendor, f"DMI names {PROVIDERS[vendor].name} ({shown})")

    cloud_id = host.read_line("run/cloud-init/cloud-id")
    if cloud_id in _CLOUD_IDS:
        note(_CLOUD_IDS[cloud_id], f"cloud-init's cloud-id is {cloud_id!r}")
    datasource = (host.read_line("var/lib/cloud/instance/datasource") or "").split(":", 1)[0]
    if datasource in _DATASOURCES:
        note(_DATASOURCES[datasource], f"cloud-init's datasource is {datasource}")

    uuid = (host.read_line("sys/hypervisor/uuid") or "").lower()
    if uuid.startswith("ec2"):
        note("aws", "/sys/hypervisor/uuid starts with 'ec2' (a Xen instance on EC2)")

    for table in ACPI_TABLES:
        header = host.read_bytes(table, 36)
        if header is not None and len(header) >= 16:
            if header[10:16] == b"FIRECK":
                note("firecracker", f"the ACPI table /{table} has Firecracker's OEM ID FIRECK")
            break

    # "4.5.7-std-3" is a Scaleway bootscript kernel only where other evidence names Scaleway.
    if "scaleway" in found and not found["scaleway"].kernel_named:
        _, std, number = release.rpartition("-std-")
        if std and number.isdigit():
            note(
                "scaleway",
                f"the running release {release} is a Scaleway bootscript kernel's name",
                kernel_named=True,
            )

    # An EC2 Xen guest running a "xen" kernel (2.6.21.7-2.fc8xen, 2.6.18-xenU-ec2-v1.0) runs
    # an Amazon Kernel Image.
    if "aws" in found and "xen" in release.lower():
        note("aws", f"the running release {release} is a Xen kernel, as EC2's AKIs are")

    if not found:
        return None
    return max(found.values(), key=lambda item: (item.kernel_named, len(item.evidence)))


def _build_host(banner: str | None) -> str | None:
    """`user@host` from "Linux version R (user@host) ...", or None."""
    words = (banner or "").split(None, 4)
    if len(words) >= 4 and words[0] == "Linux" and words[1] == "version":
        who = words[3]
        if who.startswith("(") and who.endswith(")") and "@" in who:
            return who[1:-1]
    return None
