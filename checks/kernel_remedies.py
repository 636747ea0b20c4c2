"""What to do when the kernel is loaded from outside the machine: the steps differ by who loads
it (DigitalOcean, Linode, OVH, the Xen toolstack, a hypervisor), and rebooting never helps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight_checks.kernel_facts import KernelFacts
    from preflight_checks.kernel_inventory import Kernel


def external_remediation(facts: KernelFacts, target: Kernel) -> list[str]:
    want = f"{target.release} ({target.label})"
    running = facts.running
    provider = facts.host.provider if running.boot_image is None else None
    if provider == "digitalocean":
        return [
            "Rebooting alone will not help: this droplet boots the kernel selected in the "
            "DigitalOcean control panel, not the one apt installed.",
            f"DigitalOcean control panel -> Droplets -> this droplet -> Settings -> Kernel: "
            f"select {want} and click Change.",
            "Power the droplet off and on from the control panel (`poweroff` inside, then "
            "Power On); a reboot from inside keeps the old kernel.",
            "Or select the 'GrubLoader' kernel there, so the kernel installed by apt boots "
            "from now on.",
        ]
    if provider == "linode":
        return [
            "Rebooting alone will not help: the Linode's configuration profile boots a "
            "Linode-supplied kernel, not the one the package manager installed.",
            "Cloud Manager -> this Linode -> Configurations -> Edit -> Boot Settings -> "
            f"Kernel: select 'GRUB 2' (boots {want}) and save.",
            "Reboot from the Cloud Manager so the new profile takes effect.",
        ]
    if provider == "ovh":
        return [
            "Rebooting alone will not help: the server boots an OVH netboot kernel.",
            "OVHcloud Control Panel, this server, Netboot: choose 'Hard disk' so "
            + want
            + " boots, then restart from the panel.",
        ]
    if running.xen_pv:
        return [
            "Rebooting alone will not help: the Xen toolstack loads this PV guest's kernel "
            "from dom0.",
            f"On dom0, point the domain at {want} (kernel= in its config) or boot it with "
            "pygrub/PVH GRUB, then shut the domain down and start it again.",
        ]
    if facts.loaded_from_outside:
        packages = _package_names(facts)
        return [
            f"Rebooting alone will not help: the running {running.release} is supplied by the "
            "hypervisor or platform (direct kernel boot), not by this machine's /boot.",
            f"Change the kernel in the VM's configuration (the hypervisor's kernel setting, "
            f"e.g. libvirt <kernel>, Firecracker boot-source) to {want}, or let the VM boot "
            "through its own boot loader.",
            "If this machine does not need its own kernel packages, remove them so other "
            "tools stop reporting an upgrade that cannot happen: "
            f"apt-get purge {' '.join(packages)}"
            if facts.host.packages.manager == "dpkg" and packages
            else "If this machine does not need its own kernel packages, remove them.",
        ]
    # The machine boots itself (BOOT_IMAGE= names an image) yet came up on the old kernel.
    return [
        f"Rebooting alone will not help: the last boot already skipped {want}.",
        "Check which entry the boot loader starts: grep -E '^GRUB_DEFAULT' /etc/default/grub; "
        "grep -E '^\\s*linux' /boot/grub/grub.cfg | head -n 3 (grub2 on RPM hosts: "
        "grubby --default-kernel).",
        "Check that /boot is the partition the boot loader reads (findmnt /boot) and "
        "regenerate its menu (update-grub, or grub2-mkconfig -o /boot/grub2/grub.cfg).",
        f"Then reboot and confirm that /proc/version shows {target.version}.",
    ]


def _package_names(facts: KernelFacts) -> list[str]:
    """Every installed kernel package, meta packages included: what `apt-get purge` needs."""
    installed = facts.installed
    return [k.package for k in installed.kernels if k.package] + [
        m.package for m in installed.metas if m.package
    ]
