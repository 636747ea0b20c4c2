"""What to do when the kernel is loaded from outside the machine: the steps differ by who loads
it (DigitalOcean, Linode, OVH, the Xen toolstack, a hypervisor), and rebooting never helps.

The kernel check's findings: one builder per outcome, with its message, remediation and, for
the outcomes an operator acts on, the report's one-line summary.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from preflight.check import Finding, Status
from preflight.text import plausible_name, shell_arg, shell_join
from preflight.timefmt import iso_utc

if TYPE_CHECKING:
    from preflight.check import CheckContext
    from preflight_checks.kernel.facts import Kernel, KernelFacts, Running


# --- from kernel_remedies.py
def external_remediation(facts: KernelFacts, target: Kernel) -> list[str]:
    want = f"{target.release} ({target.label})"
    running = facts.running
    supplier = facts.remedy_provider
    if supplier is not None and not (running.xen_pv and supplier.provider.key == "qemu"):
        provider = supplier.provider
        steps = [
            f"Rebooting alone will not help: this machine runs on {provider.name} "
            f"(identified by: {'; '.join(supplier.evidence)}), which loads a kernel other "
            "than the one the package manager installed.",
            *(step.format(want=want) for step in provider.steps),
        ]
        if provider.always_external:
            steps.append(
                "If the platform owns the host (a sandbox or a managed service), the kernel is "
                "the platform's. " + _purge_step(facts)
            )
        return steps
    if running.xen_pv:
        return [
            "Rebooting alone will not help: the Xen toolstack loads this PV guest's kernel "
            "from dom0.",
            f"On dom0, point the domain at {want} (kernel= in its config) or boot it with "
            "pygrub/PVH GRUB, then shut the domain down and start it again.",
        ]
    if facts.loaded_from_outside:
        return [
            f"Rebooting alone will not help: the running {running.release} is supplied by the "
            "hypervisor or platform (direct kernel boot), not by this machine's /boot; the "
            "evidence does not say which one.",
            f"Change the kernel in the VM's configuration (the hypervisor's kernel setting, "
            f"e.g. libvirt <kernel>, Firecracker boot-source) to {want}, or let the VM boot "
            "through its own boot loader.",
            _purge_step(facts),
        ]
    # The machine boots itself (BOOT_IMAGE= names an image) yet came up on the old kernel.
    return [
        f"Rebooting alone will not help: the last boot already skipped {want}.",
        "Check which entry the boot loader starts: grep -E '^GRUB_DEFAULT' /etc/default/grub; "
        "grep -E '^\\s*linux' /boot/grub/grub.cfg | head -n 3 (grub2 on RPM hosts: "
        "grubby --default-kernel; systemd-boot: bootctl list).",
        "Check that /boot is the partition the boot loader reads (findmnt /boot) and "
        "regenerate its menu (update-grub, or grub2-mkconfig -o /boot/grub2/grub.cfg).",
        f"Then reboot and confirm that /proc/version shows {target.version}.",
    ]


def _purge_step(facts: KernelFacts) -> str:
    """Removing the kernel packages that can never boot, as one command when every name is
    a plausible package name (each shell-quoted), else in words."""
    step = "If this machine does not need its own kernel packages, remove them"
    packages = _package_names(facts)
    manager = facts.host.packages.manager
    if not packages or not all(plausible_name(name) for name in packages):
        return step + "."
    words = shell_join(packages)
    command = {"dpkg": "apt-get purge", "rpm": "rpm -e"}.get(manager or "")
    if command is None:
        return step + "."
    return f"{step} so other tools stop reporting an upgrade that cannot happen: {command} {words}"


def _package_names(facts: KernelFacts) -> list[str]:
    """Every installed kernel package, meta packages included: what `apt-get purge` needs."""
    installed = facts.installed
    return [k.package for k in installed.kernels if k.package] + [
        m.package for m in installed.metas if m.package
    ]


# --- from kernel_findings.py
def container(ctx: CheckContext, running: Running) -> Finding:
    return ctx.absent(
        "kernel.container",
        f"inside a {ctx.host.container} container: the running kernel"
        f"{' ' + running.release if running.release else ''} belongs to the host, not to "
        "this container's packages",
        ["Run `preflight check kernel` on the container's host."],
    )


def unknown(ctx: CheckContext) -> Finding:
    host = ctx.host
    return ctx.absent(
        "kernel.unknown",
        "the running kernel is unknown: /proc/sys/kernel/osrelease is "
        f"{host.why_unreadable('proc/sys/kernel/osrelease')} and /proc/version is "
        f"{host.why_unreadable('proc/version')}",
        [
            "Run preflight on the host itself, or include proc/ in the snapshot "
            "(`preflight collect` does)."
        ],
    )


def ok(facts: KernelFacts, running_pkg: Kernel, build_matches: bool | None) -> Finding:
    how = (
        ""
        if build_matches
        else "; the build could not be compared (no build string in /proc/version)"
    )
    return Finding(
        "kernel.ok",
        Status.PASS,
        f"running {facts.running.label} is the installed "
        f"{running_pkg.label}, and no newer kernel is installed{how}",
    )


def no_packages(ctx: CheckContext, facts: KernelFacts) -> Finding:
    where = (
        "no linux-image-* package in /var/lib/dpkg/status"
        if facts.host.packages.manager == "dpkg"
        else "no kernel package and no kernel in /boot or /lib/modules"
    )
    who = _who_supplies(facts)
    message = (
        f"no kernel package is installed ({where}), so there is nothing to compare "
        f"with the running {facts.running.release}"
    )
    message += f"; the kernel is supplied by {who}" if who else "; who supplies it is unknown"
    absent = ctx.absent(
        "kernel.no-packages",
        message,
        [
            "Nothing to do if the platform supplies the kernel; otherwise install the "
            "distribution's kernel package (e.g. apt-get install linux-image-amd64)."
        ],
    )
    return replace(absent, summary=message)


def _who_supplies(facts: KernelFacts) -> str | None:
    """Who supplies the kernel when no package does. Unlike the external evidence, a provider
    or a Xen PV guest is named even when the kernel command line is unknown."""
    host, running, installed = facts.host, facts.running, facts.installed
    supplier = facts.supplier
    if supplier is not None:
        return f"{supplier.provider.name} ({'; '.join(supplier.evidence)})"
    if running.xen_pv:
        return "the Xen toolstack (a PV guest)"
    if not installed.running_image_found and running.boot_image is None and running.cmdline_known:
        virt = host.virtualization
        if virt not in (None, "none"):
            return (
                f"the hypervisor ({virt}: no /{installed.running_image} and no "
                "BOOT_IMAGE= on the kernel command line)"
            )
    if installed.running_image_found:
        return f"/{installed.running_image}, installed without a package"
    return None


def hand_installed(facts: KernelFacts, next_boot: Kernel | None) -> Finding:
    running = facts.running
    other = next_boot.label if next_boot else "the installed kernels"
    return Finding(
        "kernel.drift",
        Status.WARN,
        f"running {running.label} has an image "
        f"(/{facts.installed.running_image}) but no package; the packages provide {other}: the "
        "boot loader decides which one boots next",
        [
            f"If {running.release} was built and installed by hand, this is expected.",
            "Otherwise check the boot loader's default entry (grep GRUB_DEFAULT "
            "/etc/default/grub) and reboot into the packaged kernel.",
        ],
    )


def reboot_required(facts: KernelFacts, target: Kernel, source: str) -> Finding:
    running = facts.running
    if target.release != running.release:
        what = "a newer kernel"
    elif (
        running.build
        and target.version
        and facts.host.packages.order(target.version, running.build, target.rules) < 0
    ):
        what = "an older build of the running release"
    else:
        what = "a newer build of the running release"
    message = (
        f"{what}, {target.label}, was installed {iso_utc(target.installed_at)}, after "
        f"the last boot ({iso_utc(facts.host.boot_time)}); rebooting will load "
        f"{target.release} build {target.version} ({source}) in place of the running "
        f"{running.label}"
    )
    if running.boot_image is None:
        message += (
            " (no BOOT_IMAGE= on the kernel command line: if the platform supplies "
            "the kernel, a reboot will not change it)"
        )
    return Finding(
        "kernel.reboot-required",
        Status.WARN,
        message,
        [
            f"Reboot in a maintenance window (e.g. `shutdown -r +5`) to load {target.release}.",
            f"Afterwards `uname -r` prints {target.release} and /proc/version shows "
            f"{target.version}.",
        ],
        summary=(
            f"reboot pending: {target.release} build {target.version} will boot "
            f"in place of the running {running.label}"
        ),
    )


def externally_managed(facts: KernelFacts, target: Kernel, evidence: list[str]) -> Finding:
    running = facts.running
    side = (
        f"running {running.label} vs installed {target.package or target.release} {target.version}"
    )
    if target.image_build and target.image:
        side += f" (/{target.image} contains build {target.image_build})"
    message = (
        f"{side}: the kernel is not what the packages provide and a reboot will not "
        f"change that; evidence: {'; '.join(evidence)}"
    )
    build = f"build {running.build}" if running.build else running.release
    installed = (
        target.version
        if target.release == running.release
        else f"{target.release} build {target.version}"
    )
    return Finding(
        "kernel.externally-managed",
        Status.FAIL,
        message,
        external_remediation(facts, target),
        summary=(
            f"running {build} is not the installed {installed}; the kernel is "
            "loaded from outside the machine"
            if facts.loaded_from_outside
            else f"running {build} is not the installed {installed}, "
            "and the last boot did not load it"
        ),
    )


def drift(facts: KernelFacts, target: Kernel) -> Finding:
    running = facts.running
    why = []
    if facts.host.boot_time is None:
        why.append(
            f"the boot time is unknown (/proc/stat is "
            f"{facts.host.why_unreadable('proc/stat')} or has no btime)"
        )
    if target.installed_at is None:
        why.append(f"the install time of {target.label} is unknown")
    message = (
        f"running {running.label} vs installed "
        f"{target.label}: either a reboot is pending or the kernel is loaded from "
        f"outside the machine, and the evidence cannot tell which "
        f"({'; '.join(why) or 'no decisive evidence'})"
    )
    package = target.package if target.package and plausible_name(target.package) else None
    if target.manager == "dpkg" and package:
        since = "ls -l --time-style=full-iso " + shell_arg(f"/var/lib/dpkg/info/{package}.list")
    elif target.manager == "dpkg":
        since = "ls -l --time-style=full-iso /var/lib/dpkg/info/linux-image-*.list"
    elif target.manager == "pacman" and package:
        since = f"pacman -Qi {shell_arg(package)} (Install Date)"
    elif target.manager in ("apk", "files") and target.release:
        since = "ls -l --time-style=full-iso " + shell_arg(
            f"/lib/modules/{target.release}/modules.dep"
        )
    else:
        since = f"rpm -q --last {shell_arg(package or 'kernel-core')}"
    return Finding(
        "kernel.drift",
        Status.WARN,
        message,
        [
            f"Compare the boot time with the install time: uptime -s; {since}",
            f"Installed after the boot: reboot to load {target.release}. Installed before the "
            "boot: the kernel is loaded from outside (provider control panel or hypervisor "
            "setting) and rebooting will not help.",
        ],
    )


def modules_missing(facts: KernelFacts, main_code: str) -> Finding:
    release = facts.running.release
    message = (
        f"the kernel loads modules (/proc/modules exists) but /lib/modules/"
        f"{release} is missing: modules such as tun cannot be loaded until the "
        "running kernel matches an installed one"
    )
    if main_code == "kernel.externally-managed":
        fix = [
            "Make the running kernel one whose modules are installed (see "
            "kernel.externally-managed: rebooting alone will not help)."
        ]
    elif main_code == "kernel.reboot-required":
        fix = ["Reboot into the installed kernel (see kernel.reboot-required)."]
    else:
        if facts.host.packages.manager == "dpkg" and plausible_name(f"linux-image-{release}"):
            how = f"(apt-get install {shell_arg(f'linux-image-{release}')})"
        elif facts.host.packages.manager == "dpkg":
            how = "(its linux-image package)"
        elif facts.host.packages.manager == "rpm":
            how = "(dnf install kernel-modules-core-<version>)"
        else:
            how = "(with the distribution's package manager)"
        fix = [
            f"Install the modules of {release} if the distribution still ships them {how}",
            "Or run a kernel whose modules are installed (ls /lib/modules).",
        ]
    return Finding("kernel.modules-missing", Status.WARN, message, fix)
