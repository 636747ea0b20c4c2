# ruff: noqa: E501 - dpkg stanzas are real data, their long lines included
"""Host snapshots for the kernel check, written from real data.

The /proc/version lines, version_signature, dpkg stanzas and package versions are those of real
Debian 7, Debian 12, Ubuntu 22.04 and Rocky Linux 9 hosts; the stanzas follow the real layout of
each release's linux-image packages (Debian 12's copied from a bookworm host and re-versioned).
Boot images carry a real x86 boot header (HdrS at 0x202, kernel_version pointer at 0x20E).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass

from hostdata import DEBIAN12_OS_RELEASE
from support.snapshot import Snapshot

BOOT = 1_732_000_000  # 2024-11-19T07:06:40Z: the last boot of every snapshot
BEFORE_BOOT = BOOT - 14 * 86_400
AFTER_BOOT = BOOT + 3 * 86_400

# ----------------------------------------------------------------------------- real strings
DEBIAN7_PROC_VERSION = (
    "Linux version 3.2.0-4-amd64 (debian-kernel@lists.debian.org) "
    "(gcc version 4.6.3 (Debian 4.6.3-14) ) #1 SMP Debian 3.2.54-2"
)
DEBIAN7_IMAGE_VERSION = (
    "3.2.0-4-amd64 (debian-kernel@lists.debian.org) #1 SMP Debian 3.2.63-2+deb7u1"
)
DEBIAN7_IMAGE_STANZA = """Package: linux-image-3.2.0-4-amd64
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 105385
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Source: linux
Version: 3.2.63-2+deb7u1
Provides: linux-modules-3.2.0-4-amd64
Depends: kmod | module-init-tools, linux-base (>= 3~), initramfs-tools (>= 0.99~) | linux-initramfs-tool
Pre-Depends: debconf | debconf-2.0
Recommends: firmware-linux-free (>= 3~), irqbalance
Suggests: linux-doc-3.2, debian-kernel-handbook, grub-pc | extlinux | lilo
Breaks: at (<< 3.1.12-1+squeeze1), firmware-linux (<< 0.38), firmware-linux-nonfree (<< 0.38), initramfs-tools (<< 0.99~)
Description: Linux 3.2 for 64-bit PCs
 The Linux kernel 3.2 and modules for use on PCs with AMD64, Intel 64 or
 VIA Nano processors.
 .
 This kernel also runs on a Xen hypervisor.  It supports both privileged
 (dom0) and unprivileged (domU) operation.
"""
DEBIAN7_META_STANZA = """Package: linux-image-amd64
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 26
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Source: linux-latest (46)
Version: 3.2+46
Provides: linux-latest-modules-3.2.0-4-amd64
Depends: linux-image-3.2.0-4-amd64
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel and modules for use on PCs
 with AMD64, Intel 64 or VIA Nano processors.
"""

# Debian 12: (ABI, package version, build date) of real bookworm kernels.
BOOKWORM = {
    "6.1.0-23": ("6.1.98-1", "2024-07-14"),
    "6.1.0-26": ("6.1.112-1", "2024-09-30"),
    "6.1.0-27": ("6.1.115-1", "2024-11-01"),
}
# Copied from a bookworm host's /var/lib/dpkg/status (linux-image-6.1.0-56-amd64 6.1.192-2).
_BOOKWORM_IMAGE_STANZA = """Package: linux-image-{abi}-amd64
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 400652
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Source: linux-signed-amd64 ({source})
Version: {version}
Replaces: linux-image-{abi}-amd64-unsigned
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Recommends: firmware-linux-free, apparmor
Suggests: linux-doc-6.1, debian-kernel-handbook, grub-pc | grub-efi-amd64 | extlinux
Breaks: fwupdate (<< 12-7), initramfs-tools (<< 0.120+deb8u2), wireless-regdb (<< 2019.06.03-1~)
Conflicts: linux-image-{abi}-amd64-unsigned
Description: Linux 6.1 for 64-bit PCs (signed)
 The Linux kernel 6.1 and modules for use on PCs with AMD64, Intel 64 or
 VIA Nano processors.
 .
 The kernel image and modules are signed for use with Secure Boot.
Built-Using: linux (= {version})
Homepage: https://www.kernel.org/
"""
_BOOKWORM_META_STANZA = """Package: linux-image-amd64
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 13
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Source: linux-signed-amd64 ({source})
Version: {version}
Provides: linux-image-generic, linux-latest-modules-{abi}-amd64, virtualbox-guest-modules, wireguard-modules (= 1.0.0)
Depends: linux-image-{abi}-amd64 (= {version})
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel and modules for use on PCs
 with AMD64, Intel 64 or VIA Nano processors.
Built-Using: linux (= {version})
Homepage: https://www.kernel.org/
"""
# Real stanzas of ordinary packages, as padding around the kernel's.
# Debian 12's base-files and openvpn, as dpkg records them.
BASE_FILES_STANZA = """Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u11
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Pre-Depends: awk
Breaks: debian-security-support (<< 2019.04.25), initscripts (<< 2.88dsf-13.3), sendfile (<< 2.1b.20080616-5.2~)
Conffiles:
 /etc/debian_version 8031d1483ffa9c819e6be94c6c77fd2a
 /etc/dpkg/origins/debian c47b6815f67ad1aeccb0d4529bd0b990
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
 /etc/issue 349d61a0e072d678e3e94923f0c3ce0e
 /etc/issue.net 3ae9b9ff69a78d614864f1957778fecb
 /etc/update-motd.d/10-uname 9e1b832b7b06f566156e7c9e0548247b
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files, such as /etc/debian_version,
 /etc/host.conf, /etc/issue, /etc/motd, /etc/profile, and others,
 and the text of several common licenses in use on Debian systems.
"""
OPENVPN_STANZA = """Package: openvpn
Status: install ok installed
Priority: optional
Section: net
Installed-Size: 1777
Maintainer: Bernhard Schmidt <berni@debian.org>
Architecture: amd64
Version: 2.6.14-0+deb12u2
Depends: debconf (>= 0.5) | debconf-2.0, libc6 (>= 2.34), libcap-ng0 (>= 0.7.9), liblz4-1 (>= 0.0~r130), liblzo2-2 (>= 2.02), libnl-3-200 (>= 3.2.7), libnl-genl-3-200 (>= 3.2.7), libpam0g (>= 0.99.7.1), libpkcs11-helper1 (>= 1.28), libssl3 (>= 3.0.0), libsystemd0
Recommends: easy-rsa
Suggests: openssl, resolvconf, openvpn-dco-dkms, openvpn-systemd-resolved
Conffiles:
 /etc/default/openvpn 3c4d9d1b3f89320396784cc21a142a22
 /etc/init.d/openvpn cf1bc30e71de3b3e4a2f05dc8bf095e4
Description: virtual private network daemon
 OpenVPN is an application to securely tunnel IP networks over a
 single UDP or TCP port.
Homepage: https://openvpn.net/
"""
FILLER_STANZAS = [
    BASE_FILES_STANZA,
    """Package: kmod
Status: install ok installed
Priority: important
Section: admin
Installed-Size: 251
Maintainer: Marco d'Itri <md@linux.it>
Architecture: amd64
Multi-Arch: foreign
Version: 30+20221128-1
Depends: libc6 (>= 2.34), liblzma5 (>= 5.1.1alpha+20120614), libssl3 (>= 3.0.0), libzstd1 (>= 1.5.2), libkmod2 (= 30+20221128-1)
Conffiles:
 /etc/init.d/kmod c5df572a7bc622632284b75441ee066e
Description: tools for managing Linux kernel modules
 This package contains a set of programs for loading, inserting, and
 removing kernel modules for Linux.
 It replaces module-init-tools.
""",
    OPENVPN_STANZA,
]

UBUNTU_PROC_VERSION = (
    "Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) "
    "11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023"
)
UBUNTU_SIGNATURE = "Ubuntu 5.15.0-91.101-generic 5.15.131"
_UBUNTU_IMAGE_STANZA = """Package: linux-image-{abi}-generic
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 11548
Maintainer: Canonical Kernel Team <kernel-team@lists.ubuntu.com>
Architecture: amd64
Source: linux-signed ({version})
Version: {version}
Provides: virtualbox-guest-modules, wireguard-modules (= 1.0.0)
Depends: kmod, linux-base (>= 4.5ubuntu1~16.04.1), linux-modules-{abi}-generic
Recommends: grub-pc | grub-efi-amd64 | grub-efi-ia32 | grub | lilo, initramfs-tools | linux-initramfs-tool
Suggests: fdutils, linux-doc | linux-source-5.15.0, linux-tools, linux-headers-{abi}-generic
Conflicts: linux-image-unsigned-{abi}-generic
Description: Signed kernel image generic
 A kernel image for generic.  This has been signed with the Ubuntu EFI signing
 key.
Built-Using: linux (= {version})
"""
UBUNTU_META_STANZA = """Package: linux-image-generic
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 19
Maintainer: Ubuntu Kernel Team <kernel-team@lists.ubuntu.com>
Architecture: amd64
Source: linux-meta
Version: 5.15.0.94.91
Provides: spl-modules, v4l2loopback-modules, zfs-modules
Depends: linux-image-5.15.0-94-generic, linux-modules-extra-5.15.0-94-generic, linux-firmware, intel-microcode, amd64-microcode
Recommends: thermald
Description: Generic Linux kernel image
 This package will always depend on the latest generic kernel image
 available.
"""

ROCKY_RUNNING = "5.14.0-362.8.1.el9_3.x86_64"
ROCKY_UPDATE = "5.14.0-362.13.1.el9_3.x86_64"
ROCKY_PROC_VERSION = (
    f"Linux version {ROCKY_RUNNING} (mockbuild@iad1-prod-build001.bld.equ.rockylinux.org) "
    "(gcc (GCC) 11.4.1 20230605 (Red Hat 11.4.1-2), GNU ld version 2.35.2-42.el9) "
    "#1 SMP PREEMPT_DYNAMIC Wed Nov 8 17:36:32 UTC 2023"
)
ROCKY_MACHINE_ID = "3a9e1c5f0b7d4e2a8c6f1d0e9b8a7c65"

PROC_MODULES = (
    "tun 61440 2 - Live 0x0000000000000000\nnf_tables 352256 0 - Live 0x0000000000000000\n"
)


def proc_stat(btime: int) -> str:
    return (
        "cpu  16841 0 9060 105968 397 0 109 156 0 0\n"
        "cpu0 6225 0 4137 55760 35 0 19 86 0 0\n"
        "intr 299593 0 0 0 0 0 0 0 0 0\nctxt 1098768\n"
        f"btime {btime}\nprocesses 39666\nprocs_running 3\nprocs_blocked 0\n"
    )


def bzimage(version_string: str, pointer: int = 0x3900) -> bytes:
    """A file laid out as a real x86 bzImage's start: boot sector, setup header, and the
    kernel_version string where the header's pointer says (0x200 + pointer)."""
    data = bytearray(0x200 + pointer + 0x800)
    data[0x1FE:0x200] = b"\x55\xaa"  # boot_flag
    data[0x200:0x202] = b"\xeb\x66"  # jump over the header, as real images do
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x206, 0x020F)  # boot protocol 2.15
    struct.pack_into("<H", data, 0x20E, pointer)
    raw = version_string.encode() + b"\0"
    data[0x200 + pointer : 0x200 + pointer + len(raw)] = raw
    # A compressed payload follows the setup code in a real image.
    return bytes(data) + gzip.compress(b"\0" * 4096, mtime=0)


def gzip_image(banner_version: str) -> bytes:
    """An arm64-style vmlinuz: a gzip-compressed Image whose .rodata holds the banner."""
    body = (
        b"MZ"
        + b"\0" * 0x3E
        + b"ARMd"
        + b"\x11" * 200_000
        + b"Linux version %s (%s) (%s) %s\n\0"
        + b"Linux version "
        + banner_version.encode()
        + b"\n\0"
        + b"\x22" * 100_000
    )
    return gzip.compress(body, mtime=0)


@dataclass
class Kernel:
    """An installed kernel package for a snapshot."""

    package: str
    stanza: str
    release: str
    installed_at: float
    image: bytes | None = None


def bookworm_kernel(
    abi: str, installed_at: float, version: str | None = None, with_image: bool = True
) -> Kernel:
    version = version or BOOKWORM[abi][0]
    source = version.replace("-", "+")
    stanza = _BOOKWORM_IMAGE_STANZA.format(abi=abi, version=version, source=source)
    image = (
        bzimage(
            f"{abi}-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC "
            f"Debian {version} ({_build_date(version)})",
            0x42C0,
        )
        if with_image
        else None
    )
    return Kernel(f"linux-image-{abi}-amd64", stanza, f"{abi}-amd64", installed_at, image)


def bookworm_meta(abi: str, version: str | None = None) -> str:
    version = version or BOOKWORM[abi][0]
    return _BOOKWORM_META_STANZA.format(abi=abi, version=version, source=version.replace("-", "+"))


def bookworm_proc_version(abi: str, version: str | None = None) -> str:
    version = version or BOOKWORM[abi][0]
    return (
        f"Linux version {abi}-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
        "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
        f"Debian {version} ({_build_date(version)})"
    )


def _build_date(version: str) -> str:
    for known, date in BOOKWORM.values():
        if known == version:
            return date
    return {"6.1.99-1": "2024-07-15"}.get(version, "2024-01-01")


def ubuntu_kernel(abi: str, version: str, installed_at: float) -> Kernel:
    stanza = _UBUNTU_IMAGE_STANZA.format(abi=abi, version=version)
    upload = version.split(".")[-1]
    image = bzimage(
        f"{abi}-generic (buildd@lcy02-amd64-045) #{upload}-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023",
        0x3FC0,
    )
    return Kernel(f"linux-image-{abi}-generic", stanza, f"{abi}-generic", installed_at, image)


def write_host(
    snap: Snapshot,
    *,
    proc_version: str,
    kernels: list[Kernel],
    extra_stanzas: tuple[str, ...] = (),
    os_release: str = DEBIAN12_OS_RELEASE,
    cmdline: str | None = "ro quiet",
    btime: int | None = BOOT,
    proc_modules: bool = True,
    dmi: tuple[str, str] | None = None,
    modules_dirs: bool = True,
    filler: int = 0,
) -> Snapshot:
    """A dpkg host: /proc, DMI, dpkg status with .list mtimes, /boot images, /lib/modules."""
    release = proc_version.split()[2]
    uts = proc_version[proc_version.index(" #") + 1 :]
    snap.write("proc/version", proc_version + "\n")
    snap.write("proc/sys/kernel/osrelease", release + "\n")
    snap.write("proc/sys/kernel/version", uts + "\n")
    if cmdline is not None:
        snap.write("proc/cmdline", cmdline + "\n")
    if btime is not None:
        snap.write("proc/stat", proc_stat(btime))
    if proc_modules:
        snap.write("proc/modules", PROC_MODULES)
    if dmi is not None:
        snap.write("sys/class/dmi/id/sys_vendor", dmi[0] + "\n")
        snap.write("sys/class/dmi/id/product_name", dmi[1] + "\n")
    snap.write("etc/os-release", os_release)
    snap.symlink("var/run", "/run")
    snap.mkdir("run")
    stanzas = [FILLER_STANZAS[0], *[k.stanza for k in kernels], *extra_stanzas, *FILLER_STANZAS[1:]]
    for index in range(filler):
        base = FILLER_STANZAS[index % len(FILLER_STANZAS)]
        name = base.split("\n", 1)[0].split(": ", 1)[1]
        stanzas.append(base.replace(f"Package: {name}\n", f"Package: {name}-pad{index}\n", 1))
    snap.write("var/lib/dpkg/status", "\n".join(stanzas))
    for kernel in kernels:
        snap.write(
            f"var/lib/dpkg/info/{kernel.package}.list",
            f"/.\n/boot\n/boot/vmlinuz-{kernel.release}\n/lib/modules/{kernel.release}\n",
            mtime=kernel.installed_at,
        )
        if kernel.image is not None:
            # The image's own mtime is its build date, not its install date.
            snap.write(
                f"boot/vmlinuz-{kernel.release}", kernel.image, mtime=BEFORE_BOOT - 86_400 * 30
            )
        if modules_dirs:
            snap.write(
                f"lib/modules/{kernel.release}/modules.dep",
                "kernel/drivers/net/tun.ko:\n",
                mtime=kernel.installed_at,
            )
    for stanza in extra_stanzas:
        name = stanza.split("\n", 1)[0].split(": ", 1)[1]
        snap.write(f"var/lib/dpkg/info/{name}.list", "/.\n/usr\n", mtime=BEFORE_BOOT)
    return snap
