"""The facts the kernel check decides on: what the running kernel says about itself and how it
was booted, and the installed kernels as seen from it. Read once, through the Host."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight_checks.kernel_builds import release_from_proc_version, running_build
from preflight_checks.kernel_inventory import Kernel, installed_kernels, read_images

from preflight.timefmt import iso_utc

if TYPE_CHECKING:
    from preflight.host import Host

_BOOT_IMAGE = re.compile(r"(?:^|\s)BOOT_IMAGE=(\S+)")

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
    boot_time: float | None
    provider: str | None
    virtualization: str | None
    container: str | None

    @property
    def label(self) -> str:
        if self.build:
            return f"{self.release} build {self.build}"
        return f"{self.release} ({self.uts_version})" if self.uts_version else f"{self.release}"

    def details(self) -> dict[str, Any]:
        return {
            "running_release": self.release,
            "running_build": self.build,
            "running_version": self.uts_version,
            "version_signature": self.signature,
            "boot_time": iso_utc(self.boot_time),
            "boot_image": self.boot_image,
            "provider": self.provider,
            "virtualization": self.virtualization,
            "container": self.container,
        }


def read_running(host: Host) -> Running:
    proc_version = host.read_line("proc/version")
    release = host.kernel_release or release_from_proc_version(proc_version)
    uts_version = host.kernel_version
    signature = host.read_line("proc/version_signature")
    cmdline = host.read_text("proc/cmdline", 64 * 1024)
    match = _BOOT_IMAGE.search(cmdline or "")
    return Running(
        release=release,
        uts_version=uts_version,
        signature=signature,
        build=running_build(release, uts_version, signature),
        cmdline_known=cmdline is not None,
        boot_image=match.group(1) if match else None,
        boot_time=host.boot_time,
        provider=host.provider,
        virtualization=host.virtualization,
        container=host.container,
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
    modules_dir = host.is_dir(f"lib/modules/{release}")
    proc_modules = host.exists("proc/modules")
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
        modules_dir=modules_dir,
        proc_modules=proc_modules,
        reboot_flag=host.exists("var/run/reboot-required"),
        reboot_pkgs=(host.read_text("var/run/reboot-required.pkgs", 64 * 1024) or "").split(),
    )


@dataclass
class KernelFacts:
    """Everything the findings are built from."""

    host: Host
    running: Running
    installed: Installed

    def is_xen_pv(self) -> bool:
        return (self.host.read_line("sys/hypervisor/guest_type") or "").upper() == "PV"

    def loaded_from_outside(self) -> bool:
        """No boot loader inside the machine chose the kernel: the provider, the Xen toolstack
        or the hypervisor supplied it."""
        running, installed = self.running, self.installed
        return (
            running.boot_image is None
            and running.cmdline_known
            and (
                running.provider in EXTERNAL_PROVIDERS
                or self.is_xen_pv()
                or (installed.running_pkg is None and not installed.running_image_found)
            )
        )


def image_name(release: str | None) -> str:
    return f"vmlinuz-{release}"
