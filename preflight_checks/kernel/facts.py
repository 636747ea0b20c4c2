"""Build strings: which package version a kernel is, read from what the kernel says about itself.

`uname -r` names only the ABI (`3.2.0-4-amd64`); two different builds share it. The build comes
from `/proc/version` (Debian: `Debian 3.2.54-2`), `/proc/version_signature` (Ubuntu), an image's
own version string, or the release itself (RPM: version-release.arch).

The installed kernels: dpkg or rpm packages (else the kernels on disk), the build strings
inside their /boot images, and which of them the boot loader starts next.

The facts the kernel check decides on: what the running kernel says about itself and how it
was booted, and the installed kernels as seen from it. Read once, through the Host; the
machine's own facts (boot time, provider, virtualization, container) stay on the Host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from preflight.facts import uts_version_of
from preflight.text import plausible_name
from preflight.timefmt import iso_utc

if TYPE_CHECKING:
    from preflight.facts.packages import Package, PackageDB
    from preflight.host import Host
    from preflight_checks.kernel.providers import Identification

RPM_KERNEL_NAMES = ("kernel", "kernel-core", "kernel-default")


def kernel_packages(db: PackageDB) -> list[Package]:
    """Installed kernel images: dpkg's linux-image-*, RPM's kernel/kernel-core."""
    if db.manager == "dpkg":
        return db.find(prefix="linux-image-")
    return db.find(names=RPM_KERNEL_NAMES)


# --- from kernel_builds.py
_DEBIAN_BUILD = re.compile(r"\bDebian (\d\S*)")
_UBUNTU_UPLOAD = re.compile(r"#(\d+(?:~[\w.+]+)?)-Ubuntu\b")
RPM_ARCH = re.compile(r"\.(x86_64|aarch64|ppc64le|s390x|i686|armv7hl|noarch)$")


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
    return build_from_uts(uts_version, release)


def build_from_uts(uts_version: str | None, release: str | None) -> str | None:
    """The build named by a `uname -v` string, else by an RPM release; None when neither says."""
    if uts_version:
        debian = _DEBIAN_BUILD.search(uts_version)
        if debian:
            return debian.group(1)
        ubuntu = _UBUNTU_UPLOAD.search(uts_version)
        if ubuntu and release:
            base = "-".join(release.split("-")[:2])
            return f"{base}.{ubuntu.group(1)}"
    if release and RPM_ARCH.search(release):
        return RPM_ARCH.sub("", release)  # RPM: the release is version-release.arch
    return None


def _flavour(release: str | None) -> str | None:
    parts = (release or "").split("-")
    return "-".join(parts[2:]) or None if len(parts) > 2 else None


# --- from kernel_inventory.py
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
        for pkg in kernel_packages(db):
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
        for pkg in sorted(kernel_packages(db), key=lambda p: p.name != "kernel-core"):
            release = rpm_kernel_release(pkg.name, pkg.version, pkg.arch)
            if release is None or release in seen:
                continue
            seen.add(release)
            kernels.append(Kernel(pkg.name, pkg.version, release, pkg.installed_at, "rpm"))
        if kernels:
            return kernels, metas
    if db.manager in ("rpm", None):
        kernels = _kernels_on_disk(host)
    return kernels, metas


# SUSE names each kernel flavour's package kernel-<flavour>; its `uname -r` is
# <version>-<release without its last number>-<flavour> (kernel-default 5.14.21-150500.55.39.1
# runs as 5.14.21-150500.55.39-default). Red Hat's is <version>-<release>.<arch>.
SUSE_FLAVOURS = ("default", "azure", "rt", "64kb", "preempt")


def rpm_kernel_release(name: str, version: str, arch: str | None) -> str | None:
    """The `uname -r` an RPM kernel package provides; None when it cannot be told."""
    evr = version.split(":")[-1]
    flavour = name.removeprefix("kernel-")
    if name.startswith("kernel-") and flavour in SUSE_FLAVOURS:
        upstream, _, release = evr.rpartition("-")
        base = release.rpartition(".")[0] or release
        return f"{upstream}-{base}-{flavour}" if upstream and base else None
    return f"{evr}.{arch}" if arch else None


def _depended_release(depends: str) -> str | None:
    """The release of the first image package in a Depends field ("linux-image-6.1.0-26-amd64
    (= 6.1.112-1), ..." or alternatives joined by "|")."""
    for alternative in re.split(r"[,|]", depends):
        words = alternative.split()
        release = dpkg_image_release(words[0]) if words else None
        if release is not None:
            return release
    return None


def image_path(host: Host, release: str) -> str | None:
    """The root-relative image file of a kernel release: boot/vmlinuz-<release>; OVH's
    boot/bzImage-<release>; else the one in its modules folder (Arch keeps each kernel's image
    there, boot/vmlinuz-linux being whichever is installed now, and so does Fedora). None when
    there is none."""
    for rel in (
        f"boot/vmlinuz-{release}",
        f"boot/bzImage-{release}",
        f"lib/modules/{release}/vmlinuz",
    ):
        if host.is_file(rel):
            return rel
    return None


def _kernels_on_disk(host: Host) -> list[Kernel]:
    """Without a usable package database (an RPM host under --root, Arch, Alpine): the kernels
    that /lib/modules and /boot hold. depmod writes modules.dep when the kernel is installed."""
    releases = {
        name
        for name in host.listdir("lib/modules")
        if name[:1].isdigit()
        and (image_path(host, name) is not None or _alpine_flavour(host, name) is not None)
    }
    releases.update(
        path.split("/vmlinuz-", 1)[1]
        for path in host.glob("boot/vmlinuz-*")
        if path.split("/vmlinuz-", 1)[1][:1].isdigit() and "rescue" not in path
    )
    apk = _apk_versions(host)
    kernels = []
    for release in _sorted_releases(host, releases):
        installed = host.mtime(f"lib/modules/{release}/modules.dep") or host.mtime(
            f"boot/initramfs-{release}.img"
        )
        kernel = Kernel(None, RPM_ARCH.sub("", release), release, installed, "files")
        pkgbase = host.read_line(f"lib/modules/{release}/pkgbase")
        flavour = _alpine_flavour(host, release)
        if pkgbase and plausible_name(pkgbase):
            kernel.package = pkgbase
            version, date = _pacman_package(host, pkgbase)
            if version and _same_release(version, release):
                kernel.version, kernel.manager = version, "pacman"
                kernel.installed_at = date or installed
        elif flavour is not None:
            kernel.package = f"linux-{flavour}"
            version = apk.get(kernel.package)
            if version and _same_release(version.replace("-r", "-"), release):
                kernel.version, kernel.manager = version, "apk"
        kernels.append(kernel)
    return kernels


# Arch Linux names a kernel package after its flavour (linux, linux-lts): the modules folder's
# pkgbase file names the package, pacman's local database its version and install date. Alpine's
# linux-lts and linux-virt install /boot/vmlinuz-<flavour> and lib/modules/<ver>-<r>-<flavour>.
PACMAN_LOCAL = "var/lib/pacman/local"
APK_INSTALLED = "lib/apk/db/installed"
ALPINE_FLAVOURS = ("lts", "virt", "edge", "rpi")
APK_READ_LIMIT = 32 << 20


def _alpine_flavour(host: Host, release: str) -> str | None:
    flavour = release.rpartition("-")[2]
    if flavour in ALPINE_FLAVOURS and host.is_file(f"boot/vmlinuz-{flavour}"):
        return flavour
    return None


def _same_release(version: str, release: str) -> bool:
    """Whether a package version names this release: 6.6.8.arch1-1 is 6.6.8-arch1-1, 6.1.69-1
    of linux-lts is 6.1.69-1-lts, Alpine's 6.6.31-0 is 6.6.31-0-lts."""

    def words(text: str) -> str:
        return text.replace(".", "-")

    return words(release).startswith(words(version))


def _pacman_package(host: Host, name: str) -> tuple[str | None, float | None]:
    """Version and install date of an installed pacman package, from its local desc file."""
    for folder in host.listdir(PACMAN_LOCAL)[:100_000]:
        if not folder.startswith(name + "-") or folder.count("-") != name.count("-") + 2:
            continue
        text = host.read_text(f"{PACMAN_LOCAL}/{folder}/desc", 256 * 1024) or ""
        lines = text.splitlines()
        fields = {
            lines[i]: lines[i + 1].strip() for i in range(len(lines) - 1) if lines[i][:1] == "%"
        }
        if fields.get("%NAME%") != name:
            continue
        date = fields.get("%INSTALLDATE%", "")
        return fields.get("%VERSION%") or None, float(
            date
        ) if date.isascii() and date.isdecimal() else None
    return None, None


def _apk_versions(host: Host) -> dict[str, str]:
    """Alpine's installed kernel packages (linux-*) and their versions, from apk's database."""
    if not host.is_file(APK_INSTALLED):
        return {}
    versions: dict[str, str] = {}
    name = None
    for line in (host.read_text(APK_INSTALLED, APK_READ_LIMIT) or "").splitlines():
        if line.startswith("P:"):
            name = line[2:].strip()
        elif line.startswith("V:") and name and name.startswith("linux-"):
            versions[name] = line[2:].strip()
        elif not line:
            name = None
    return versions


def _sorted_releases(host: Host, releases: set[str]) -> list[str]:
    from functools import cmp_to_key

    def by_version(a: str, b: str) -> int:
        return host.packages.order(RPM_ARCH.sub("", a), RPM_ARCH.sub("", b), "rpm")

    return sorted(sorted(releases), key=cmp_to_key(by_version))


# systemd-boot: Boot Loader Specification entries and unified kernel images (UKIs) on the ESP or
# /boot. Neither sets BOOT_IMAGE= on the kernel command line.
_LOADER_ROOTS = ("boot", "boot/efi", "efi")
_MAX_ENTRIES = 64  # per folder: a real ESP holds a handful
ENTRY_READ_LIMIT = 64 * 1024
UKI_READ_LIMIT = 4 << 20  # the .uname section sits before .linux, near the image's start


@dataclass(frozen=True)
class BootEntry:
    path: str  # root-relative
    release: str | None  # the `uname -r` it boots
    kind: str  # "entry" (loader/entries/*.conf) or "uki" (EFI/Linux/*.efi)


def boot_entries(host: Host) -> list[BootEntry]:
    """systemd-boot's entries and UKIs under /boot, /boot/efi and /efi, with their releases."""
    entries: list[BootEntry] = []
    for base in _LOADER_ROOTS:
        folder = f"{base}/loader/entries"
        for name in host.listdir(folder)[:_MAX_ENTRIES]:
            if name.endswith(".conf"):
                text = host.read_text(f"{folder}/{name}", ENTRY_READ_LIMIT) or ""
                entries.append(BootEntry(f"{folder}/{name}", _entry_release(text), "entry"))
        folder = f"{base}/EFI/Linux"
        for name in host.listdir(folder)[:_MAX_ENTRIES]:
            if name.lower().endswith(".efi"):
                data = host.read_bytes(f"{folder}/{name}", UKI_READ_LIMIT) or b""
                entries.append(BootEntry(f"{folder}/{name}", uki_release(data), "uki"))
    return entries


def _entry_release(text: str) -> str | None:
    """The release a Boot Loader Specification entry boots: its `linux` path names it
    (/vmlinuz-<release>, or kernel-install's /<machine-id>/<release>/linux), else `version`."""
    fields: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        key, _, value = line.strip().partition(" ")
        if key and key not in fields:
            fields[key] = value.strip()
    linux = fields.get("linux", "")
    name = linux.rsplit("/", 1)[-1]
    if name.startswith("vmlinuz-"):
        return name[len("vmlinuz-") :] or None
    parts = [p for p in linux.split("/") if p]
    if len(parts) >= 3 and parts[-1] == "linux":
        return parts[-2]
    return fields.get("version") or None


def uki_release(data: bytes) -> str | None:
    """`uname -r` from a unified kernel image's .uname PE section; None when absent. Every
    offset and length is checked against the bytes read."""
    if data[:2] != b"MZ" or len(data) < 0x40:
        return None
    pe = int.from_bytes(data[0x3C:0x40], "little")
    if pe + 24 > len(data) or data[pe : pe + 4] != b"PE\0\0":
        return None
    sections = int.from_bytes(data[pe + 6 : pe + 8], "little")
    optional = int.from_bytes(data[pe + 20 : pe + 22], "little")
    table = pe + 24 + optional
    for index in range(min(sections, 96)):
        entry = table + 40 * index
        if entry + 40 > len(data):
            return None
        if data[entry : entry + 8].rstrip(b"\0") != b".uname":
            continue
        size = int.from_bytes(data[entry + 16 : entry + 20], "little")
        offset = int.from_bytes(data[entry + 20 : entry + 24], "little")
        virtual = int.from_bytes(data[entry + 8 : entry + 12], "little")
        size = min(size, virtual or size, 64)
        if offset + size > len(data):
            return None
        release = data[offset : offset + size].split(b"\0", 1)[0].decode("ascii", "replace")
        release = release.strip()
        return release if release and release.isprintable() and " " not in release else None
    return None


def read_images(
    host: Host, kernels: list[Kernel], running_release: str, running_image: str | None
) -> str | None:
    """Fill in each kernel's /boot image and the build inside it; return the build string of
    `running_image` (the running release's image, None when it is absent). Only the running
    image is scanned when it has no x86 header: a scan can cost a second per image."""
    from preflight_checks.kernel.image import image_version

    running_image_version = None
    if running_image is not None:
        running_image_version = image_version(host, running_image)
    for kernel in kernels:
        if kernel.release == running_release:
            if running_image is not None:
                kernel.image, kernel.image_version = running_image, running_image_version
        elif kernel.release and (rel := image_path(host, kernel.release)) is not None:
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
    loader_entries: list[BootEntry],
) -> tuple[Kernel | None, str]:
    """Which kernel the boot loader starts next, and how we know (`loader_entries`: the
    host's systemd-boot entries, boot_entries)."""
    candidates = newer or [k for k in kernels if k.release != running_release]
    if not candidates:
        return running_pkg, "the running release"
    by_release = {k.release: k for k in candidates}
    entries = [e for e in loader_entries if e.release in by_release]
    if entries:
        # systemd-boot starts the newest entry unless loader.conf says otherwise.
        best_entry = entries[0]
        for entry in entries[1:]:
            if (
                host.packages.order(
                    by_release[entry.release].version or "",
                    by_release[best_entry.release].version or "",
                    by_release[entry.release].rules,
                )
                > 0
            ):
                best_entry = entry
        kind = "unified kernel image" if best_entry.kind == "uki" else "systemd-boot entry"
        return by_release[best_entry.release], f"the {kind} /{best_entry.path}"
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


# --- from kernel_facts.py
# Providers whose legacy setups boot a kernel chosen in their control panel, from outside the VM:
# named by DMI alone, they count only when no boot loader inside the machine chose the kernel.
PANEL_KERNEL_PROVIDERS = ("digitalocean", "linode", "ovh", "scaleway")


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
    found = image_path(host, release)
    running_image_version = read_images(host, kernels, release, found)
    return Installed(
        kernels=kernels,
        metas=metas,
        running_pkg=next((k for k in kernels if k.release == release), None),
        # Named as missing (boot/vmlinuz-<release>) when there is none.
        running_image=found or f"boot/vmlinuz-{release}",
        running_image_found=found is not None,
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
    def provider(self) -> Identification | None:
        """The provider or hypervisor this host's traces name, with the evidence."""
        from preflight_checks.kernel.providers import identify

        return identify(self.host)

    @cached_property
    def supplier(self) -> Identification | None:
        """The identified provider when the evidence says it loads the running kernel."""
        ident, running = self.provider, self.running
        if ident is None:
            return None
        if ident.provider.always_external:
            return ident
        if ident.kernel_named and not self.running_image_on_disk:
            return ident
        if ident.provider.key == "aws" and running.xen_pv and not self.running_image_on_disk:
            return ident  # an AKI kernel: PV-GRUB would have booted one from /boot
        if (
            ident.provider.key in PANEL_KERNEL_PROVIDERS
            and running.cmdline_known
            and running.boot_image is None
            and not self.boots_itself
        ):
            return ident
        return None

    @property
    def remedy_provider(self) -> Identification | None:
        """Whose steps fix an external kernel: the supplier, else (when other evidence shows
        the kernel comes from outside) the provider the host's traces name."""
        if self.supplier is not None:
            return self.supplier
        return self.provider if self.loaded_from_outside else None

    @cached_property
    def running_image_on_disk(self) -> bool:
        """Whether the running kernel's image is on this machine's /boot (vmlinuz-<release>,
        OVH's bzImage-<release>, or the file BOOT_IMAGE= names)."""
        if self.installed.running_image_found:
            return True
        image = self.running.boot_image
        name = image.rsplit("/", 1)[-1] if image else ""
        return bool(name) and name not in (".", "..") and self.host.is_file(f"boot/{name}")

    @cached_property
    def boot_entries(self) -> list[BootEntry]:
        """systemd-boot's entries and UKIs, read once per run (a UKI read is up to 4 MiB)."""
        return boot_entries(self.host)

    @cached_property
    def boots_itself(self) -> bool:
        """A boot loader inside the machine that sets no BOOT_IMAGE= (systemd-boot, a UKI)
        has an entry for the running release or an installed kernel (after an upgrade the UKI
        names the new one)."""
        known = {self.running.release} | {k.release for k in self.installed.kernels}
        return any(entry.release in known for entry in self.boot_entries)

    @cached_property
    def external_evidence(self) -> list[str]:
        """Why no boot loader inside the machine chose the running kernel (the provider, the
        Xen toolstack or the hypervisor supplied it); empty when one did, or when the kernel
        command line is unknown."""
        running, installed = self.running, self.installed
        evidence = []
        supplier = self.supplier
        if supplier is not None:
            provider = supplier.provider
            if provider.always_external:
                why = f"{provider.name} loads the kernel itself, with no boot loader in the guest"
            elif supplier.kernel_named and not self.running_image_on_disk:
                why = (
                    f"the running kernel is {provider.name}'s and its image is not in /boot, "
                    "so the provider loads it"
                )
            else:
                why = (
                    "the kernel command line has no BOOT_IMAGE=, so no boot loader inside "
                    "the machine chose the kernel"
                )
            evidence.append(f"{why} ({'; '.join(supplier.evidence)})")
        if not running.cmdline_known or running.boot_image is not None or self.boots_itself:
            return evidence
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
