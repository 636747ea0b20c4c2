"""The facts the kernel check decides on: what the running kernel says about itself and how it
was booted, and the installed kernels as seen from it. Read once, through the Host; the
machine's own facts (boot time, provider, virtualization, container) stay on the Host."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from preflight_checks.kernel_builds import running_build
from preflight_checks.kernel_inventory import Kernel, installed_kernels, read_images

from preflight.timefmt import iso_utc

if TYPE_CHECKING:
    from preflight.host import Host

# Providers whose legacy setups boot a kernel chosen in their control panel, from outside the VM.
EXTERNAL_PROVIDERS = {"digitalocean": "DigitalOcean", "linode": "Linode", "ovh": "OVH"}


@dataclass
class Running:
    """The running kernel: its release and build, and how the machine was booted."""

    release: str | None
    uts_version: str | None  # uname -v
    signature: str | None  # Ubuntu's /proc/version_signature
    build: str | None
    cmdline_known: bool
    boot_image: str | None  # BOOT_IMAGE= on the kernel command line: a boot loader chose it
    xen_pv: bool  # a Xen PV guest: the toolstack in dom0 loads its kernel

    @property
    def label(self) -> str:
        if self.build:
            return f"{self.release} build {self.build}"
        return f"{self.release} ({self.uts_version})" if self.uts_version else f"{self.release}"

    def details(self, host: Host) -> dict[str, Any]:
        return {
            "running_release": self.release,
            "running_build": self.build,
            "running_version": self.uts_version,
            "version_signature": self.signature,
            "boot_time": iso_utc(host.boot_time),
            "boot_image": self.boot_image,
            "provider": host.provider,
            "virtualization": host.virtualization,
            "container": host.container,
        }


def read_running(host: Host) -> Running:
    release = host.kernel_release
    uts_version = host.kernel_version
    signature = host.read_line("proc/version_signature")
    return Running(
        release=release,
        uts_version=uts_version,
        signature=signature,
        build=running_build(release, uts_version, signature),
        cmdline_known=host.kernel_cmdline is not None,
        boot_image=host.boot_image,
        xen_pv=(host.read_line("sys/hypervisor/guest_type") or "").upper() == "PV",
    )


@dataclass
class Installed:
    """The installed kernels, and what of the running release is on disk."""

    kernels: list[Kernel]
    metas: list[Kernel]  # meta packages (linux-image-amd64): they only point at a kernel
    running_pkg: Kernel | None  # the installed kernel of the running release
    running_image: str  # root-relative boot/vmlinuz-<running release>
    running_image_found: bool
    running_image_version: str | None
    modules_dir: bool
    proc_modules: bool  # the kernel loads modules at all
    reboot_flag: bool
    reboot_pkgs: list[str]

    def details(self) -> dict[str, Any]:
        return {
            "running_image": "/" + self.running_image if self.running_image_found else None,
            "running_image_version": self.running_image_version,
            "installed": [k.to_dict() for k in [*self.kernels, *self.metas]],
            "modules_dir": self.modules_dir,
            "proc_modules": self.proc_modules,
            "reboot_required_flag": self.reboot_flag,
            "reboot_required_pkgs": self.reboot_pkgs,
        }


def read_installed(host: Host, release: str) -> Installed:
    kernels, metas = installed_kernels(host)
    running_image = f"boot/vmlinuz-{release}"
    running_image_found = host.is_file(running_image)
    running_image_version = read_images(
        host, kernels, release, running_image if running_image_found else None
    )
    return Installed(
        kernels=kernels,
        metas=metas,
        running_pkg=next((k for k in kernels if k.release == release), None),
        running_image=running_image,
        running_image_found=running_image_found,
        running_image_version=running_image_version,
        modules_dir=bool(host.modules_dir),
        proc_modules=host.loaded_modules is not None,
        reboot_flag=host.exists("var/run/reboot-required"),
        reboot_pkgs=(host.read_text("var/run/reboot-required.pkgs", 64 * 1024) or "").split(),
    )


@dataclass
class KernelFacts:
    """Everything the findings are built from."""

    host: Host
    running: Running
    installed: Installed

    @cached_property
    def external_evidence(self) -> list[str]:
        """Why no boot loader inside the machine chose the running kernel (the provider, the
        Xen toolstack or the hypervisor supplied it); empty when one did, or when the kernel
        command line is unknown."""
        running, installed = self.running, self.installed
        if not running.cmdline_known or running.boot_image is not None:
            return []
        evidence = []
        provider = self.host.provider
        if provider in EXTERNAL_PROVIDERS:
            evidence.append(
                f"DMI names the provider {EXTERNAL_PROVIDERS[provider]} and the kernel "
                "command line has no BOOT_IMAGE=, so no boot loader inside the machine chose "
                "the kernel"
            )
        if running.xen_pv:
            evidence.append(
                "this is a Xen PV guest whose kernel the toolstack loads "
                "(no BOOT_IMAGE= on the kernel command line)"
            )
        if installed.running_pkg is None and not installed.running_image_found:
            missing = f"no package, no /{installed.running_image}"
            if not installed.modules_dir:
                missing += f", no /lib/modules/{running.release}"
            evidence.append(
                f"the running release {running.release} has {missing} and no BOOT_IMAGE= on the "
                "kernel command line, while other kernels are installed: something outside "
                "the machine supplies it"
            )
        return evidence

    @property
    def loaded_from_outside(self) -> bool:
        return bool(self.external_evidence)
