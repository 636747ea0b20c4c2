"""Kernel drift: is the kernel that runs the one the packages installed, and would a reboot fix it?

`uname -r` names only the ABI (`3.2.0-4-amd64`); two different builds share it. The running build
comes from `/proc/version` (Debian: `Debian 3.2.54-2`), `/proc/version_signature` (Ubuntu) or the
release itself (RPM: version-release.arch). It is compared with the installed kernel packages, and
the install times (dpkg's `.list` mtime, rpm's INSTALLTIME) with the boot time, to tell a pending
reboot from a kernel that a provider or hypervisor loads from outside the machine, where a reboot
changes nothing (the DigitalOcean trap).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight.check import Check, CheckContext, Finding, FindingDoc, Status

if TYPE_CHECKING:
    from preflight.host import Host

_DEBIAN_BUILD = re.compile(r"\bDebian (\d\S*)")
_UBUNTU_UPLOAD = re.compile(r"#(\d+(?:~[\w.+]+)?)-Ubuntu\b")
_RPM_ARCH = re.compile(r"\.(x86_64|aarch64|ppc64le|s390x|i686|armv7hl|noarch)$")
_UTS_VERSION = re.compile(r"\s(#\S*\s.*)$")  # uname -v: "#1 SMP ...", "#101-Ubuntu SMP ..."
_PROC_VERSION_RELEASE = re.compile(r"^Linux version (\S+)")
_BOOT_IMAGE = re.compile(r"(?:^|\s)BOOT_IMAGE=(\S+)")
_GRUB_LINUX = re.compile(r"^\s*linux(?:efi|16)?\s+(\S+)", re.M)
_DEBUG_SUFFIXES = ("-dbg", "-dbgsym")

# Providers whose legacy setups boot a kernel chosen in their control panel, from outside the VM.
_EXTERNAL_PROVIDERS = {"digitalocean": "DigitalOcean", "linode": "Linode", "ovh": "OVH"}
_BOOT_LOADER_FILES = ("boot/grub/grub.cfg", "boot/grub2/grub.cfg")
_GRUBENV_FILES = ("boot/grub/grubenv", "boot/grub2/grubenv")


@dataclass
class Kernel:
    """One installed kernel: a package (or, without a package database, files on disk)."""

    package: str | None
    version: str | None  # the package version, i.e. the build it installs
    release: str | None  # the `uname -r` it provides
    installed_at: float | None
    manager: str  # "dpkg", "rpm" or "files"
    meta: bool = False
    image: str | None = None  # root-relative path of boot/vmlinuz-<release>, when present
    image_version: str | None = None  # the build string inside that image
    image_build: str | None = None

    @property
    def label(self) -> str:
        name = self.package or f"kernel {self.release}"
        return f"{name} {self.version}" if self.version else name

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "package": self.package,
            "version": self.version,
            "release": self.release,
            "installed_at": _iso(self.installed_at),
            "build": self.image_build,
            "image": None if self.image is None else "/" + self.image,
            "image_version": self.image_version,
            "source": self.manager,
        }
        if self.meta:
            data["meta"] = True
        return data


class KernelCheck(Check):
    id = "kernel"
    title = "Kernel drift"
    description = (
        "Compares the kernel that is running (release from /proc/sys/kernel/osrelease, build from "
        "/proc/version or Ubuntu's /proc/version_signature) with the installed kernel packages, "
        "the build strings inside /boot/vmlinuz-* and the install times against the boot time. "
        "It tells a reboot that is merely pending from a kernel that is loaded from outside the "
        "machine (a provider's control-panel kernel, Xen PV, a hypervisor's direct kernel boot), "
        "where rebooting changes nothing: `uname -r` is the same for every build of one ABI, so "
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
            "the kernel from outside (DMI vendor without BOOT_IMAGE=, Xen PV).",
            "Rebooting alone will not help. DigitalOcean: control panel -> Settings -> Kernel -> "
            "select the installed version -> Change, then power-cycle from the panel (or switch "
            "to the GrubLoader kernel). Linode: set the configuration profile's kernel to GRUB 2. "
            "Otherwise: change the kernel in the hypervisor's VM settings, or fix the boot "
            "loader's default entry when the machine boots itself.",
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
        "proc/version",
        "proc/sys/kernel/osrelease",
        "proc/sys/kernel/version",
        "proc/version_signature",
        "proc/cmdline",
        "proc/stat",
        "proc/modules",
        "proc/1/cgroup",
        "proc/1/environ",
        "proc/cpuinfo",
        "sys/hypervisor/type",
        "sys/hypervisor/guest_type",
        "sys/class/dmi/id/sys_vendor",
        "sys/class/dmi/id/product_name",
        "sys/class/dmi/id/bios_vendor",
        "run/systemd/container",
        "run/.containerenv",
        ".dockerenv",
        "etc/os-release",
        "var/lib/dpkg/status",
        "var/lib/dpkg/info/linux-image-*.list",
        "var/run/reboot-required",
        "var/run/reboot-required.pkgs",
        "boot/vmlinuz-*",
        "boot/config-*",
        "boot/grub/grub.cfg",
        "boot/grub/grubenv",
        "boot/grub2/grub.cfg",
        "boot/grub2/grubenv",
        "lib/modules/*/modules.dep",
    )

    def run(self, ctx: CheckContext) -> list[Finding]:
        return _Evaluation(ctx).run()


class _Evaluation:
    """One run of the check: gathers the facts once, then decides."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.host: Host = ctx.host
        self.evidence: list[str] = []

    # ------------------------------------------------------------------ decide
    def run(self) -> list[Finding]:
        host = self.host
        details = self.ctx.details
        proc_version = host.read_line("proc/version")
        self.release = host.kernel_release or _release_from_proc_version(proc_version)
        self.uts_version = host.kernel_version
        signature = host.read_line("proc/version_signature")
        self.build = running_build(self.release, self.uts_version, signature)
        cmdline = host.read_text("proc/cmdline", 64 * 1024)
        self.cmdline_known = cmdline is not None
        match = _BOOT_IMAGE.search(cmdline or "")
        self.boot_image = match.group(1) if match else None
        self.boot_time = host.boot_time
        self.provider = host.provider
        self.container = host.container
        details.update(
            {
                "running_release": self.release,
                "running_build": self.build,
                "running_version": self.uts_version,
                "version_signature": signature,
                "boot_time": _iso(self.boot_time),
                "boot_image": self.boot_image,
                "provider": self.provider,
                "virtualization": host.virtualization,
                "container": self.container,
            }
        )
        if self.container is not None:
            return [
                self._absent(
                    "kernel.container",
                    f"inside a {self.container} container: the running kernel"
                    f"{' ' + self.release if self.release else ''} belongs to the host, not to "
                    "this container's packages",
                    ["Run `preflight check kernel` on the container's host."],
                )
            ]
        if self.release is None:
            return [
                self._absent(
                    "kernel.unknown",
                    "the running kernel is unknown: /proc/sys/kernel/osrelease is "
                    f"{host.why_unreadable('proc/sys/kernel/osrelease')} and /proc/version is "
                    f"{host.why_unreadable('proc/version')}",
                    [
                        "Run preflight on the host itself, or include proc/ in the snapshot "
                        "(`preflight collect` does)."
                    ],
                )
            ]

        self.kernels, metas = self._installed()
        self.running_pkg = next((k for k in self.kernels if k.release == self.release), None)
        self.running_image = f"boot/vmlinuz-{self.release}"
        if not host.is_file(self.running_image):
            self.running_image_found = False
        else:
            self.running_image_found = True
        self.modules_dir = host.is_dir(f"lib/modules/{self.release}")
        self.proc_modules = host.exists("proc/modules")
        self._read_images()
        reboot_flag = host.exists("var/run/reboot-required")
        reboot_pkgs = (host.read_text("var/run/reboot-required.pkgs", 64 * 1024) or "").split()
        details.update(
            {
                "running_image": "/" + self.running_image if self.running_image_found else None,
                "running_image_version": self.running_image_version,
                "installed": [k.to_dict() for k in [*self.kernels, *metas]],
                "modules_dir": self.modules_dir,
                "proc_modules": self.proc_modules,
                "reboot_required_flag": reboot_flag,
                "reboot_required_pkgs": reboot_pkgs,
            }
        )

        findings: list[Finding] = []
        if not self.kernels:
            findings.append(self._no_packages())
        else:
            findings.append(self._compare(reboot_pkgs))
        details["evidence"] = list(self.evidence)
        if self.proc_modules and not self.modules_dir:
            findings.append(self._modules_missing(findings[0].code))
        return findings

    def _compare(self, reboot_pkgs: list[str]) -> Finding:
        running = self.running_pkg
        newer = self._newer_than_running()
        next_boot, next_boot_source = self._next_boot(newer)
        self.ctx.details["next_boot"] = (
            None
            if next_boot is None
            else {
                "package": next_boot.package,
                "version": next_boot.version,
                "release": next_boot.release,
                "source": next_boot_source,
            }
        )
        build_matches = self._build_matches()

        if running is not None and build_matches is not False and not newer:
            how = (
                ""
                if build_matches
                else "; the build could not be compared (no build string in /proc/version)"
            )
            return Finding(
                "kernel.ok",
                Status.PASS,
                f"running {self._running_label()} is the installed "
                f"{running.label}, and no newer kernel is installed{how}",
            )

        if running is None and self.running_image_found:
            return self._hand_installed(next_boot)

        # `target` is what the packages want running: a newer kernel, or the installed build of
        # the running release.
        target = next_boot if newer or running is None else running
        assert target is not None
        self._external_evidence()
        timing_known = self.boot_time is not None and target.installed_at is not None
        after_boot = timing_known and (target.installed_at or 0) > (self.boot_time or 0)
        if timing_known and not after_boot:
            self.evidence.append(
                f"{target.label} was installed {_iso(target.installed_at)}, before the last boot "
                f"({_iso(self.boot_time)}), and still is not running: a reboot already happened"
            )
        if self.evidence:
            return self._externally_managed(target)
        if after_boot:
            return self._reboot_required(target, next_boot_source, reboot_pkgs)
        return self._drift(target)

    # ---------------------------------------------------------------- findings
    def _absent(self, code: str, message: str, remediation: list[str]) -> Finding:
        status = Status.FAIL if self.ctx.required else Status.SKIP
        return Finding(code, status, message, remediation)

    def _who_supplies(self) -> str | None:
        if self.provider in _EXTERNAL_PROVIDERS and self.boot_image is None:
            return f"the provider ({_EXTERNAL_PROVIDERS[self.provider]})"
        if self._is_xen_pv():
            return "the Xen toolstack (a PV guest)"
        if not self.running_image_found and self.boot_image is None and self.cmdline_known:
            virt = self.host.virtualization
            if virt not in (None, "none"):
                return (
                    f"the hypervisor ({virt}: no /boot/{_image_name(self.release)} and no "
                    "BOOT_IMAGE= on the kernel command line)"
                )
        if self.running_image_found:
            return f"/{self.running_image}, installed without a package"
        return None

    def _no_packages(self) -> Finding:
        where = (
            "no linux-image-* package in /var/lib/dpkg/status"
            if self.host.packages.manager == "dpkg"
            else "no kernel package and no kernel in /boot or /lib/modules"
        )
        who = self._who_supplies()
        message = (
            f"no kernel package is installed ({where}), so there is nothing to compare "
            f"with the running {self.release}"
        )
        message += f"; the kernel is supplied by {who}" if who else "; who supplies it is unknown"
        self.ctx.summary = message
        return self._absent(
            "kernel.no-packages",
            message,
            [
                "Nothing to do if the platform supplies the kernel; otherwise install the "
                "distribution's kernel package (e.g. apt-get install linux-image-amd64)."
            ],
        )

    def _hand_installed(self, next_boot: Kernel | None) -> Finding:
        other = next_boot.label if next_boot else "the installed kernels"
        return Finding(
            "kernel.drift",
            Status.WARN,
            f"running {self._running_label()} has an image "
            f"(/{self.running_image}) but no package; the packages provide {other}: the "
            "boot loader decides which one boots next",
            [
                f"If {self.release} was built and installed by hand, this is expected.",
                "Otherwise check the boot loader's default entry (grep GRUB_DEFAULT "
                "/etc/default/grub) and reboot into the packaged kernel.",
            ],
        )

    def _reboot_required(self, target: Kernel, source: str, reboot_pkgs: list[str]) -> Finding:
        if target.release != self.release:
            what = "a newer kernel"
        elif (
            self.build and target.version and self._compare_versions(target.version, self.build) < 0
        ):
            what = "an older build of the running release"
        else:
            what = "a newer build of the running release"
        message = (
            f"{what}, {target.label}, was installed {_iso(target.installed_at)}, after "
            f"the last boot ({_iso(self.boot_time)}); rebooting will load "
            f"{target.release} build {target.version} ({source}) in place of the running "
            f"{self._running_label()}"
        )
        if self.boot_image is None:
            message += (
                " (no BOOT_IMAGE= on the kernel command line: if the platform supplies "
                "the kernel, a reboot will not change it)"
            )
        evidence = [f"{target.label} installed after the last boot"]
        if reboot_pkgs:
            evidence.append("/var/run/reboot-required.pkgs lists " + ", ".join(reboot_pkgs))
        self.evidence.extend(evidence)
        self.ctx.summary = (
            f"reboot pending: {target.release} build {target.version} will boot "
            f"in place of the running {self._running_label()}"
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
        )

    def _externally_managed(self, target: Kernel) -> Finding:
        side = (
            f"running {self._running_label()} vs installed "
            f"{target.package or target.release} {target.version}"
        )
        if target.image_build and target.image:
            side += f" (/{target.image} contains build {target.image_build})"
        message = (
            f"{side}: the kernel is not what the packages provide and a reboot will not "
            f"change that; evidence: {'; '.join(self.evidence)}"
        )
        running = f"build {self.build}" if self.build else self.release
        installed = (
            target.version
            if target.release == self.release
            else f"{target.release} build {target.version}"
        )
        self.ctx.summary = (
            f"running {running} is not the installed {installed}; the kernel is "
            "loaded from outside the machine"
            if self._loaded_from_outside()
            else f"running {running} is not the installed {installed}, and the last "
            "boot did not load it"
        )
        return Finding(
            "kernel.externally-managed", Status.FAIL, message, self._external_remediation(target)
        )

    def _running_label(self) -> str:
        if self.build:
            return f"{self.release} build {self.build}"
        return f"{self.release} ({self.uts_version})" if self.uts_version else f"{self.release}"

    def _external_remediation(self, target: Kernel) -> list[str]:
        want = f"{target.release} ({target.label})"
        provider = self.provider if self.boot_image is None else None
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
        if self._is_xen_pv():
            return [
                "Rebooting alone will not help: the Xen toolstack loads this PV guest's kernel "
                "from dom0.",
                f"On dom0, point the domain at {want} (kernel= in its config) or boot it with "
                "pygrub/PVH GRUB, then shut the domain down and start it again.",
            ]
        if self._loaded_from_outside():
            return [
                f"Rebooting alone will not help: the running {self.release} is supplied by the "
                "hypervisor or platform (direct kernel boot), not by this machine's /boot.",
                f"Change the kernel in the VM's configuration (the hypervisor's kernel setting, "
                f"e.g. libvirt <kernel>, Firecracker boot-source) to {want}, or let the VM boot "
                "through its own boot loader.",
                "If this machine does not need its own kernel packages, remove them so other "
                "tools stop reporting an upgrade that cannot happen: "
                f"apt-get purge {' '.join(self._package_names())}"
                if self.host.packages.manager == "dpkg" and self._package_names()
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

    def _drift(self, target: Kernel) -> Finding:
        why = []
        if self.boot_time is None:
            why.append(
                f"the boot time is unknown (/proc/stat is "
                f"{self.host.why_unreadable('proc/stat')} or has no btime)"
            )
        if target.installed_at is None:
            why.append(f"the install time of {target.label} is unknown")
        message = (
            f"running {self._running_label()} vs installed "
            f"{target.label}: either a reboot is pending or the kernel is loaded from "
            f"outside the machine, and the evidence cannot tell which "
            f"({'; '.join(why) or 'no decisive evidence'})"
        )
        since = (
            "ls -l --time-style=full-iso /var/lib/dpkg/info/" + f"{target.package}.list"
            if target.manager == "dpkg" and target.package
            else f"rpm -q --last {target.package or 'kernel-core'}"
        )
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

    def _modules_missing(self, main_code: str) -> Finding:
        message = (
            f"the kernel loads modules (/proc/modules exists) but /lib/modules/"
            f"{self.release} is missing: modules such as tun cannot be loaded until the "
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
            fix = [
                f"Install the modules of {self.release} if the distribution still ships them "
                + (
                    f"(apt-get install linux-image-{self.release})"
                    if self.host.packages.manager == "dpkg"
                    else "(dnf install kernel-modules-core-<version>)"
                ),
                "Or run a kernel whose modules are installed (ls /lib/modules).",
            ]
        return Finding("kernel.modules-missing", Status.WARN, message, fix)

    # ------------------------------------------------------------------ facts
    def _installed(self) -> tuple[list[Kernel], list[Kernel]]:
        db = self.host.packages
        kernels: list[Kernel] = []
        metas: list[Kernel] = []
        if db.manager == "dpkg":
            for pkg in db.kernel_packages():
                if pkg.name.endswith(_DEBUG_SUFFIXES):
                    continue
                release = dpkg_image_release(pkg.name)
                if release is not None:
                    kernels.append(Kernel(pkg.name, pkg.version, release, pkg.installed_at, "dpkg"))
                else:
                    # A meta package (linux-image-amd64) installs nothing itself: it depends on
                    # the real image, which provides the release.
                    depends = re.search(
                        r"\blinux-image-(?:unsigned-)?(\d[^\s,(|]*)", pkg.fields.get("Depends", "")
                    )
                    meta_release = depends.group(1) if depends else None
                    if meta_release and meta_release.endswith("-unsigned"):
                        meta_release = meta_release[: -len("-unsigned")]
                    metas.append(
                        Kernel(
                            pkg.name, pkg.version, meta_release, pkg.installed_at, "dpkg", meta=True
                        )
                    )
            return kernels, metas
        if db.manager == "rpm":
            seen: set[str] = set()
            for pkg in sorted(db.kernel_packages(), key=lambda p: p.name != "kernel-core"):
                release = f"{pkg.version.split(':')[-1]}.{pkg.arch}" if pkg.arch else None
                if release is None or release in seen:
                    continue
                seen.add(release)
                kernels.append(Kernel(pkg.name, pkg.version, release, pkg.installed_at, "rpm"))
            if kernels:
                return kernels, metas
        if db.manager in ("rpm", None):
            kernels = self._kernels_on_disk()
        return kernels, metas

    def _kernels_on_disk(self) -> list[Kernel]:
        """Without a usable package database (an RPM host under --root): the kernels that
        /lib/modules and /boot hold. depmod writes modules.dep when the kernel is installed."""
        host = self.host
        releases = {
            name
            for name in host.listdir("lib/modules")
            if name[:1].isdigit()
            and (
                host.is_file(f"lib/modules/{name}/vmlinuz") or host.is_file(f"boot/vmlinuz-{name}")
            )
        }
        releases.update(
            path.split("/vmlinuz-", 1)[1]
            for path in host.glob("boot/vmlinuz-*")
            if path.split("/vmlinuz-", 1)[1][:1].isdigit() and "rescue" not in path
        )
        kernels = []
        for release in self._sorted_releases(releases):
            installed = host.mtime(f"lib/modules/{release}/modules.dep") or host.mtime(
                f"boot/initramfs-{release}.img"
            )
            version = _RPM_ARCH.sub("", release)
            kernels.append(Kernel(None, version, release, installed, "files"))
        return kernels

    def _sorted_releases(self, releases: set[str]) -> list[str]:
        from functools import cmp_to_key

        from preflight.packages import compare_versions

        def by_version(a: str, b: str) -> int:
            try:
                return compare_versions(_RPM_ARCH.sub("", a), _RPM_ARCH.sub("", b), "rpm")
            except Exception:  # a malformed version cannot be ordered
                return 0

        return sorted(sorted(releases), key=cmp_to_key(by_version))

    def _read_images(self) -> None:
        from preflight_checks.kernel_image import image_version

        self.running_image_version = None
        if self.running_image_found:
            self.running_image_version = image_version(self.host, self.running_image)
        for kernel in self.kernels:
            rel = f"boot/vmlinuz-{kernel.release}"
            if kernel.release == self.release:
                if self.running_image_found:
                    kernel.image, kernel.image_version = rel, self.running_image_version
            elif self.host.is_file(rel):
                kernel.image = rel
                kernel.image_version = image_version(self.host, rel, scan=False)
            if kernel.image_version:
                kernel.image_build = image_build(kernel.image_version, kernel.release)

    def _compare_versions(self, a: str, b: str) -> int:
        from preflight.packages import compare_versions

        manager = "dpkg" if self.host.packages.manager == "dpkg" else "rpm"
        try:
            return compare_versions(a, b, manager)
        except Exception:  # ValueError, or worse from a library on hostile input
            return 0  # a malformed version is not "newer": it cannot be ordered at all

    def _newer_than_running(self) -> list[Kernel]:
        others = [k for k in self.kernels if k.release != self.release and k.version]
        if not others:
            return []
        base = (
            self.running_pkg.version if self.running_pkg else (self.build if self.build else None)
        )
        if base is None:
            return others  # nothing runs from a package: every installed kernel is "the target"
        return [k for k in others if self._compare_versions(k.version or "", base) > 0]

    def _next_boot(self, newer: list[Kernel]) -> tuple[Kernel | None, str]:
        """Which kernel the boot loader starts next, and how we know."""
        candidates = newer or [k for k in self.kernels if k.release != self.release]
        if not candidates:
            return self.running_pkg, "the running release"
        by_release = {k.release: k for k in candidates}
        for rel in _GRUBENV_FILES:
            text = self.host.read_text(rel, 64 * 1024) or ""
            match = re.search(r"^saved_entry=(.+)$", text, re.M)
            if match:
                for release, kernel in by_release.items():
                    if release and match.group(1).strip().endswith(release):
                        return kernel, f"the boot loader's saved entry, /{rel}"
        for rel in _BOOT_LOADER_FILES:
            text = self.host.read_text(rel, 1 << 20) or ""
            match = _GRUB_LINUX.search(text)
            if match:
                name = match.group(1).rsplit("/", 1)[-1]
                for release, kernel in by_release.items():
                    if name == f"vmlinuz-{release}":
                        return kernel, f"the first entry of /{rel}"
                break
        best = candidates[0]
        for kernel in candidates[1:]:
            if self._compare_versions(kernel.version or "", best.version or "") > 0:
                best = kernel
        return best, (
            "the newest installed, which the boot loader's default entry starts"
            if self.boot_image
            else "the newest installed"
        )

    def _build_matches(self) -> bool | None:
        """Whether the running build is the running release's installed package; None: unknown."""
        pkg = self.running_pkg
        if pkg is None:
            return None
        if pkg.manager in ("rpm", "files"):
            return True  # the release names the version-release: one release, one build
        if self.build is not None and pkg.version:
            return self.build == pkg.version
        # No build string in /proc/version: the image's own `#N ...` string must equal uname -v.
        if pkg.image_version and self.uts_version:
            match = _UTS_VERSION.search(" " + pkg.image_version)
            if match:
                return match.group(1).strip() == self.uts_version.strip()
        return None

    def _is_xen_pv(self) -> bool:
        return (self.host.read_line("sys/hypervisor/guest_type") or "").upper() == "PV"

    def _loaded_from_outside(self) -> bool:
        return (
            self.boot_image is None
            and self.cmdline_known
            and (
                self.provider in _EXTERNAL_PROVIDERS
                or self._is_xen_pv()
                or (self.running_pkg is None and not self.running_image_found)
            )
        )

    def _external_evidence(self) -> None:
        if not self.cmdline_known or self.boot_image is not None:
            return  # a boot loader inside the machine named the image (or we cannot tell)
        if self.provider in _EXTERNAL_PROVIDERS:
            self.evidence.append(
                f"DMI names the provider {_EXTERNAL_PROVIDERS[self.provider]} and the kernel "
                "command line has no BOOT_IMAGE=, so no boot loader inside the machine chose "
                "the kernel"
            )
        if self._is_xen_pv():
            self.evidence.append(
                "this is a Xen PV guest whose kernel the toolstack loads "
                "(no BOOT_IMAGE= on the kernel command line)"
            )
        if self.running_pkg is None and not self.running_image_found:
            missing = f"no package, no /boot/{_image_name(self.release)}"
            if not self.modules_dir:
                missing += f", no /lib/modules/{self.release}"
            self.evidence.append(
                f"the running release {self.release} has {missing} and no BOOT_IMAGE= on the "
                "kernel command line, while other kernels are installed: something outside "
                "the machine supplies it"
            )

    def _package_names(self) -> list[str]:
        return [k.package for k in self.kernels if k.package] + [
            m["package"]
            for m in self.ctx.details.get("installed", [])
            if m.get("meta") and m.get("package")
        ]


# ---------------------------------------------------------------------- parsing
def dpkg_image_release(name: str) -> str | None:
    """The release a dpkg image package provides (linux-image-6.1.0-26-amd64 -> 6.1.0-26-amd64,
    Ubuntu's linux-image-unsigned-<release>, Debian's <release>-unsigned); None for a meta
    package such as linux-image-amd64."""
    rest = name[len("linux-image-") :] if name.startswith("linux-image-") else ""
    rest = rest.removeprefix("unsigned-").removesuffix("-unsigned")
    return rest if rest[:1].isdigit() else None


def running_build(
    release: str | None, uts_version: str | None, signature: str | None
) -> str | None:
    """The package version of the running kernel, from what the kernel says about itself."""
    if signature:
        fields = signature.split()
        if len(fields) >= 2 and fields[0] == "Ubuntu":
            flavour = _flavour(release)
            build = fields[1]
            if flavour and build.endswith("-" + flavour):
                build = build[: -len(flavour) - 1]
            return build
    return _build_from_uts(uts_version, release)


def image_build(image_version: str, release: str | None) -> str | None:
    """The build inside an image's string `R (builder) #1 SMP Debian 6.1.112-1 (...)`."""
    match = _UTS_VERSION.search(" " + image_version)
    return _build_from_uts(match.group(1) if match else None, release)


def _build_from_uts(uts_version: str | None, release: str | None) -> str | None:
    if uts_version:
        debian = _DEBIAN_BUILD.search(uts_version)
        if debian:
            return debian.group(1)
        ubuntu = _UBUNTU_UPLOAD.search(uts_version)
        if ubuntu and release:
            base = "-".join(release.split("-")[:2])
            return f"{base}.{ubuntu.group(1)}"
    if release and _RPM_ARCH.search(release):
        return _RPM_ARCH.sub("", release)  # RPM: the release is version-release.arch
    return None


def _flavour(release: str | None) -> str | None:
    parts = (release or "").split("-")
    return "-".join(parts[2:]) or None if len(parts) > 2 else None


def _release_from_proc_version(line: str | None) -> str | None:
    match = _PROC_VERSION_RELEASE.match(line or "")
    return match.group(1) if match else None


def _image_name(release: str | None) -> str:
    return f"vmlinuz-{release}"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    try:
        stamp = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
