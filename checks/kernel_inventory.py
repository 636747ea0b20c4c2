"""The installed kernels: dpkg or rpm packages (else the kernels on disk), the build strings
inside their /boot images, and which of them the boot loader starts next."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight_checks.kernel_builds import RPM_ARCH, build_from_uts, dpkg_image_release

from preflight.facts import uts_version_of
from preflight.timefmt import iso_utc

if TYPE_CHECKING:
    from preflight.host import Host

_GRUB_LINUX = re.compile(r"^\s*linux(?:efi|16)?\s+(\S+)", re.M)
_DEBUG_SUFFIXES = ("-dbg", "-dbgsym")
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
    image_uts: str | None = None  # its `uname -v` part: "#1 SMP PREEMPT_DYNAMIC Debian ..."
    image_build: str | None = None

    @property
    def rules(self) -> str:
        """How its versions are ordered: kernels found on disk have RPM-style names."""
        return "dpkg" if self.manager == "dpkg" else "rpm"

    @property
    def label(self) -> str:
        name = self.package or f"kernel {self.release}"
        return f"{name} {self.version}" if self.version else name

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "package": self.package,
            "version": self.version,
            "release": self.release,
            "installed_at": iso_utc(self.installed_at),
            "build": self.image_build,
            "image": None if self.image is None else "/" + self.image,
            "image_version": self.image_version,
            "source": self.manager,
        }
        if self.meta:
            data["meta"] = True
        return data


def installed_kernels(host: Host) -> tuple[list[Kernel], list[Kernel]]:
    """The installed kernels and, apart, the meta packages that only point at one."""
    db = host.packages
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
                metas.append(
                    Kernel(
                        pkg.name,
                        pkg.version,
                        _depended_release(pkg.fields.get("Depends", "")),
                        pkg.installed_at,
                        "dpkg",
                        meta=True,
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
        kernels = _kernels_on_disk(host)
    return kernels, metas


def _depended_release(depends: str) -> str | None:
    """The release of the first image package in a Depends field ("linux-image-6.1.0-26-amd64
    (= 6.1.112-1), ..." or alternatives joined by "|")."""
    for alternative in re.split(r"[,|]", depends):
        words = alternative.split()
        release = dpkg_image_release(words[0]) if words else None
        if release is not None:
            return release
    return None


def _kernels_on_disk(host: Host) -> list[Kernel]:
    """Without a usable package database (an RPM host under --root): the kernels that
    /lib/modules and /boot hold. depmod writes modules.dep when the kernel is installed."""
    releases = {
        name
        for name in host.listdir("lib/modules")
        if name[:1].isdigit()
        and (host.is_file(f"lib/modules/{name}/vmlinuz") or host.is_file(f"boot/vmlinuz-{name}"))
    }
    releases.update(
        path.split("/vmlinuz-", 1)[1]
        for path in host.glob("boot/vmlinuz-*")
        if path.split("/vmlinuz-", 1)[1][:1].isdigit() and "rescue" not in path
    )
    kernels = []
    for release in _sorted_releases(host, releases):
        installed = host.mtime(f"lib/modules/{release}/modules.dep") or host.mtime(
            f"boot/initramfs-{release}.img"
        )
        version = RPM_ARCH.sub("", release)
        kernels.append(Kernel(None, version, release, installed, "files"))
    return kernels


def _sorted_releases(host: Host, releases: set[str]) -> list[str]:
    from functools import cmp_to_key

    def by_version(a: str, b: str) -> int:
        return host.packages.order(RPM_ARCH.sub("", a), RPM_ARCH.sub("", b), "rpm")

    return sorted(sorted(releases), key=cmp_to_key(by_version))


def read_images(
    host: Host, kernels: list[Kernel], running_release: str, running_image: str | None
) -> str | None:
    """Fill in each kernel's /boot image and the build inside it; return the build string of
    `running_image` (the running release's image, None when it is absent). Only the running
    image is scanned when it has no x86 header: a scan can cost a second per image."""
    from preflight_checks.kernel_image import image_version

    running_image_version = None
    if running_image is not None:
        running_image_version = image_version(host, running_image)
    for kernel in kernels:
        rel = f"boot/vmlinuz-{kernel.release}"
        if kernel.release == running_release:
            if running_image is not None:
                kernel.image, kernel.image_version = rel, running_image_version
        elif host.is_file(rel):
            kernel.image = rel
            kernel.image_version = image_version(host, rel, scan=False)
        if kernel.image_version:
            kernel.image_uts = uts_version_of(kernel.image_version)
            kernel.image_build = build_from_uts(kernel.image_uts, kernel.release)
    return running_image_version


def next_boot(
    host: Host,
    kernels: list[Kernel],
    running_pkg: Kernel | None,
    running_release: str | None,
    newer: list[Kernel],
    boot_image: str | None,
) -> tuple[Kernel | None, str]:
    """Which kernel the boot loader starts next, and how we know."""
    candidates = newer or [k for k in kernels if k.release != running_release]
    if not candidates:
        return running_pkg, "the running release"
    by_release = {k.release: k for k in candidates}
    for rel in _GRUBENV_FILES:
        text = host.read_text(rel, 64 * 1024) or ""
        match = re.search(r"^saved_entry=(.+)$", text, re.M)
        if match:
            for release, kernel in by_release.items():
                if release and match.group(1).strip().endswith(release):
                    return kernel, f"the boot loader's saved entry, /{rel}"
    for rel in _BOOT_LOADER_FILES:
        text = host.read_text(rel, 1 << 20) or ""
        match = _GRUB_LINUX.search(text)
        if match:
            name = match.group(1).rsplit("/", 1)[-1]
            for release, kernel in by_release.items():
                if name == f"vmlinuz-{release}":
                    return kernel, f"the first entry of /{rel}"
            break
    best = candidates[0]
    for kernel in candidates[1:]:
        if host.packages.order(kernel.version or "", best.version or "", kernel.rules) > 0:
            best = kernel
    return best, (
        "the newest installed, which the boot loader's default entry starts"
        if boot_image
        else "the newest installed"
    )
