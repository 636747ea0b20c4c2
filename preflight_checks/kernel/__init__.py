"""Kernel drift: is the kernel that runs the one the packages installed, and would a reboot fix it?

`uname -r` names only the ABI (`3.2.0-4-amd64`); two different builds share it. The running build
comes from `/proc/version` (Debian: `Debian 3.2.54-2`), `/proc/version_signature` (Ubuntu) or the
release itself (RPM: version-release.arch). It is compared with the installed kernel packages, and
the install times (dpkg's `.list` mtime, rpm's INSTALLTIME) with the boot time, to tell a pending
reboot from a kernel that a provider or hypervisor loads from outside the machine, where a reboot
changes nothing (the DigitalOcean trap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from preflight.check import Check, CheckContext, Finding, FindingDoc, Status

if TYPE_CHECKING:
    from preflight.host import Host
    from preflight_checks.kernel.facts import Kernel, KernelFacts


class KernelCheck(Check):
    id = "kernel"
    title = "Kernel drift"
    description = (
        "Compares the kernel that is running (release from /proc/sys/kernel/osrelease, build from "
        "/proc/version or Ubuntu's /proc/version_signature) with the installed kernel packages, "
        "the build strings inside /boot/vmlinuz-* and the install times against the boot time. "
        "It tells a reboot that is merely pending from a kernel that is loaded from outside the "
        "machine (a provider's control-panel kernel, Xen PV, a hypervisor's direct kernel boot), "
        "where rebooting changes nothing, and names that provider with its own remedy. Kernel "
        "packages come from dpkg, RPM (on a snapshot its sqlite or Berkeley DB database, read "
        "in place), Arch's pacman and Alpine's apk; systemd-boot entries and unified kernel "
        "images count as a boot loader inside the machine. `uname -r` is the same for every "
        "build of one ABI, so "
        "only the build shows that an upgraded kernel is not the one running. Modules (tun, for "
        "one) load only from /lib/modules/<running release>."
    )
    findings = {
        "kernel.ok": FindingDoc(
            Status.PASS,
            "The running build is the installed package's and nothing newer is installed.",
        ),
        "kernel.reboot-required": FindingDoc(
            Status.WARN,
            "A newer kernel, or a newer build of the running release, was installed after the "
            "last boot and the boot loader will load it; the message names the one that boots.",
            "Reboot in a maintenance window; afterwards `uname -r` and /proc/version show it.",
        ),
        "kernel.externally-managed": FindingDoc(
            Status.FAIL,
            "The running kernel is not what the packages provide and a reboot will not change "
            "that: the package was installed before the last boot and still is not running, the "
            "running release has no package and no image, or the provider or hypervisor loads "
            "the kernel from outside. The provider is identified from DMI, its kernels' naming "
            "(-linode80, -xxxx-std-ipv6-64, -mainline-rev1, EC2's xen AKIs), the build host in "
            "/proc/version, cloud-init's datasource, /sys/hypervisor and the ACPI tables' OEM ID "
            "(Firecracker); details.provider_evidence lists what was found.",
            "Rebooting alone will not help; the remedy is the provider's own. DigitalOcean: "
            "Settings -> Kernel, or GrubLoader, then power off and on from the panel. Linode: "
            "the configuration profile's Kernel -> 'GRUB 2'. OVH: boot mode 'Boot to disk'. "
            "Scaleway: local boot instead of a bootscript. EC2 PV: stop, change the kernel ID "
            "to a PV-GRUB AKI or move to HVM. Proxmox/libvirt: remove the direct kernel boot. "
            "Firecracker: the host's boot-source kernel_image_path. Hetzner, Vultr: no "
            "provider kernel is documented (rescue system or ISO). When the machine boots "
            "itself: fix the boot loader's default entry (GRUB, grubby, systemd-boot).",
        ),
        "kernel.drift": FindingDoc(
            Status.WARN,
            "The running build differs from the installed one, but the evidence cannot tell a "
            "pending reboot from an external kernel (e.g. the boot time or the install time is "
            "unknown), or the running kernel was installed without a package.",
            "Compare `uptime -s` with the package's install time: installed after the boot means "
            "a reboot is pending; before it means the kernel comes from outside.",
        ),
        "kernel.modules-missing": FindingDoc(
            Status.WARN,
            "The kernel loads modules (/proc/modules exists) but /lib/modules/<running release> "
            "is absent, so no module (tun, for one) can be loaded until the kernel matches.",
            "Run a kernel whose modules are installed, or install the running release's modules.",
        ),
        "kernel.container": FindingDoc(
            Status.SKIP,
            "Inside a container the kernel belongs to the host (a failure under required = true).",
            "Run preflight on the container's host.",
        ),
        "kernel.no-packages": FindingDoc(
            Status.SKIP,
            "No kernel package is installed, so there is nothing to compare; the message says "
            "who supplies the kernel when that is known (a failure under required = true).",
        ),
        "kernel.unknown": FindingDoc(
            Status.SKIP,
            "The running kernel release is unknown (no /proc/sys/kernel/osrelease or "
            "/proc/version under the root); a failure under required = true.",
            "Include proc/ in the snapshot (`preflight collect` does).",
        ),
    }
    paths = (
        "var/lib/dpkg/info/linux-image*.list",
        "var/lib/dpkg/info/linux-signed-image*.list",
        "proc/version_signature",
        "sys/hypervisor/guest_type",
        "var/run/reboot-required",
        "var/run/reboot-required.pkgs",
        "boot/vmlinuz-*",
        "boot/bzImage-*",
        "boot/grub/grub.cfg",
        "boot/grub/grubenv",
        "boot/grub2/grub.cfg",
        "boot/grub2/grubenv",
        "lib/modules/*/modules.dep",
        # What providers.identify reads, then systemd-boot entries and UKIs, Arch and Alpine.
        "sys/firmware/acpi/tables/DSDT",
        "sys/firmware/acpi/tables/FACP",
        "run/cloud-init/cloud-id",
        "var/lib/cloud/instance/datasource",
        "sys/hypervisor/uuid",
        "boot/loader/entries/*.conf",
        "boot/efi/loader/entries/*.conf",
        "efi/loader/entries/*.conf",
        "boot/EFI/Linux/*.efi",
        "boot/efi/EFI/Linux/*.efi",
        "efi/EFI/Linux/*.efi",
        "usr/lib/modules/*/pkgbase",
        "lib/modules/*/pkgbase",
        # RPM databases (read in place under --root; files over collect's size bound stay out).
        "var/lib/rpm/rpmdb.sqlite",
        "var/lib/rpm/Packages",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/Packages",
        "var/lib/pacman/local/linux*/desc",
        "lib/apk/db/installed",
    )
    # Without a package database the kernels on disk count, dated by these files' mtimes.
    markers = ("boot/initramfs-*.img", "lib/modules/*/vmlinuz")

    @classmethod
    def host_facts(cls, host: Host) -> dict[str, Any]:
        """The installed kernel packages, for `preflight facts`."""
        from preflight_checks.kernel.facts import kernel_packages

        kernels = kernel_packages(host.packages)
        return {
            "packages": {
                "kernel": [
                    {"name": p.name, "version": p.version, "installed_at": p.installed_at}
                    for p in kernels
                ]
            }
        }

    def run(self, ctx: CheckContext) -> list[Finding]:
        # Imported here: the engine imports this module to validate a config section even
        # when the check is not selected.
        from preflight_checks.kernel.facts import (
            KernelFacts,
            read_installed,
            read_running,
        )
        from preflight_checks.kernel.findings import (
            container,
            modules_missing,
            no_packages,
            unknown,
        )

        host = ctx.host
        running = read_running(host)
        ctx.details.update(running.details(host))
        if host.container is not None:
            return [container(ctx, running)]
        if running.release is None:
            return [unknown(ctx)]

        installed = read_installed(host, running.release)
        ctx.details.update(installed.details())
        facts = KernelFacts(host, running, installed)
        ident = facts.provider
        ctx.details["provider"] = host.provider if ident is None else ident.provider.key
        ctx.details["provider_name"] = None if ident is None else ident.provider.name
        ctx.details["provider_evidence"] = [] if ident is None else ident.evidence
        ctx.details["provider_docs"] = [] if ident is None else list(ident.provider.checked_against)
        ctx.details["boot_entries"] = [
            {"path": "/" + entry.path, "release": entry.release, "kind": entry.kind}
            for entry in facts.boot_entries
        ]
        evidence: list[str] = []
        if not installed.kernels:
            findings = [no_packages(ctx, facts)]
        else:
            finding, evidence = _compare(ctx, facts)
            findings = [finding]
        ctx.details["evidence"] = evidence
        if installed.proc_modules and not installed.modules_dir:
            findings.append(modules_missing(facts, findings[0].code))
        return findings


def _compare(ctx: CheckContext, facts: KernelFacts) -> tuple[Finding, list[str]]:
    """The running kernel against the installed ones, and the evidence for the verdict."""
    from preflight.timefmt import iso_utc
    from preflight_checks.kernel.facts import next_boot
    from preflight_checks.kernel.findings import (
        drift,
        externally_managed,
        hand_installed,
        ok,
        reboot_required,
    )

    running, installed = facts.running, facts.installed
    running_pkg = installed.running_pkg
    newer = _newer_than_running(facts)
    next_kernel, next_boot_source = next_boot(
        facts.host,
        installed.kernels,
        running_pkg,
        running.release,
        newer,
        running.boot_image,
        facts.boot_entries,
    )
    ctx.details["next_boot"] = (
        None
        if next_kernel is None
        else {
            "package": next_kernel.package,
            "version": next_kernel.version,
            "release": next_kernel.release,
            "source": next_boot_source,
        }
    )
    build_matches = _build_matches(facts)

    if running_pkg is not None and build_matches is not False and not newer:
        return ok(facts, running_pkg, build_matches), []

    if running_pkg is None and installed.running_image_found:
        return hand_installed(facts, next_kernel), []

    # `target` is what the packages want running: a newer kernel, or the installed build of
    # the running release.
    target = next_kernel if newer or running_pkg is None else running_pkg
    assert target is not None
    evidence = list(facts.external_evidence)
    boot_time = facts.host.boot_time
    timing_known = boot_time is not None and target.installed_at is not None
    after_boot = timing_known and (target.installed_at or 0) > (boot_time or 0)
    if timing_known and not after_boot:
        evidence.append(
            f"{target.label} was installed {iso_utc(target.installed_at)}, before the last boot "
            f"({iso_utc(boot_time)}), and still is not running: a reboot already happened"
        )
    if evidence:
        return externally_managed(facts, target, evidence), evidence
    if after_boot:
        evidence.append(f"{target.label} installed after the last boot")
        if installed.reboot_pkgs:
            evidence.append(
                "/var/run/reboot-required.pkgs lists " + ", ".join(installed.reboot_pkgs)
            )
        return reboot_required(facts, target, next_boot_source), evidence
    return drift(facts, target), evidence


def _newer_than_running(facts: KernelFacts) -> list[Kernel]:
    running, installed = facts.running, facts.installed
    others = [k for k in installed.kernels if k.release != running.release and k.version]
    if not others:
        return []
    base = (
        installed.running_pkg.version
        if installed.running_pkg
        else (running.build if running.build else None)
    )
    if base is None:
        return others  # nothing runs from a package: every installed kernel is "the target"
    order = facts.host.packages.order
    return [k for k in others if order(k.version or "", base, k.rules) > 0]


def _build_matches(facts: KernelFacts) -> bool | None:
    """Whether the running build is the running release's installed package; None: unknown."""
    running = facts.running
    pkg = facts.installed.running_pkg
    if pkg is None:
        return None
    if pkg.manager in ("rpm", "files", "pacman", "apk"):
        return True  # the release names the version-release: one release, one build
    if running.build is not None and pkg.version:
        return running.build == pkg.version
    # No build string in /proc/version: the image's own `#N ...` string must equal uname -v.
    if pkg.image_uts and running.uts_version:
        return pkg.image_uts == running.uts_version.strip()
    return None
