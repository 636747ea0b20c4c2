# ruff: noqa: E501 - banners and boot entries are real data, their long lines included
"""Kernel layouts of Arch Linux, Alpine and systemd-boot hosts, for kernel snapshots.

The file layouts are those the distributions' packages create: Arch's /usr/lib/modules/<release>/
{pkgbase,vmlinuz} with /boot/vmlinuz-<pkgbase> and pacman's local desc files; Alpine's
/boot/vmlinuz-<flavour>, /boot/config-<release> and apk's installed database; systemd-boot's Boot
Loader Specification entries as kernel-install writes them on Debian 12, and unified kernel images
assembled from systemd's own EFI stub with objcopy (the way UKIs were built before ukify).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from snapshots_kernel import bzimage
from support.components import require, require_command
from support.snapshot import Snapshot

ARCH_OS_RELEASE = """NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
ANSI_COLOR="38;2;23;147;209"
HOME_URL="https://archlinux.org/"
DOCUMENTATION_URL="https://wiki.archlinux.org/"
SUPPORT_URL="https://bbs.archlinux.org/"
BUG_REPORT_URL="https://gitlab.archlinux.org/groups/archlinux/-/issues"
PRIVACY_POLICY_URL="https://terms.archlinux.org/docs/privacy-policy/"
LOGO=archlinux-logo
"""
ALPINE_OS_RELEASE = """NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.0
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
"""


def arch_banner(release: str, date: str) -> str:
    return f"{release} (linux@archlinux) #1 SMP PREEMPT_DYNAMIC {date}"


def arch_proc_version(release: str, date: str) -> str:
    return (
        f"Linux version {release} (linux@archlinux) (gcc (GCC) 13.2.1 20230801, GNU ld (GNU "
        f"Binutils) 2.41.0) #1 SMP PREEMPT_DYNAMIC {date}"
    )


def arch_kernel(
    snap: Snapshot, pkgbase: str, version: str, release: str, date: str, installed: float
) -> None:
    """An installed Arch kernel package: its modules folder (pkgbase, vmlinuz, modules.dep),
    /boot/vmlinuz-<pkgbase> and pacman's local record."""
    image = bzimage(arch_banner(release, date), 0x4100)
    folder = f"usr/lib/modules/{release}"
    snap.write(f"{folder}/pkgbase", pkgbase + "\n", mtime=installed)
    snap.write(f"{folder}/vmlinuz", image, mtime=installed)
    snap.write(f"{folder}/modules.dep", "kernel/drivers/net/tun.ko.zst:\n", mtime=installed)
    snap.write(f"boot/vmlinuz-{pkgbase}", image, mtime=installed)
    snap.write(
        f"var/lib/pacman/local/{pkgbase}-{version}/desc",
        f"%NAME%\n{pkgbase}\n\n%VERSION%\n{version}\n\n%BASE%\n{pkgbase}\n\n"
        f"%DESC%\nThe {'LTS ' if 'lts' in pkgbase else ''}Linux kernel and modules\n\n"
        f"%URL%\nhttps://github.com/archlinux/linux\n\n%ARCH%\nx86_64\n\n"
        f"%BUILDDATE%\n1703185261\n\n%INSTALLDATE%\n{int(installed)}\n\n"
        "%PACKAGER%\nJan Alexander Steffens (heftig) <heftig@archlinux.org>\n\n"
        "%SIZE%\n137838412\n\n%REASON%\n0\n\n%LICENSE%\nGPL-2.0-only\n\n%VALIDATION%\npgp\n",
        mtime=installed,
    )


ALPINE_PROC_VERSION = (
    "Linux version {release} (buildozer@build-3-20-x86_64) (gcc (Alpine 13.2.1_git20240309) "
    "13.2.1 20240309, GNU ld (GNU Binutils) 2.42) #1-Alpine SMP PREEMPT_DYNAMIC Fri, 17 May 2024 "
    "14:13:05 +0000"
)


def apk_installed(kernels: dict[str, str]) -> str:
    """apk's installed database: a base package, then each kernel package (P:, V:, ...)."""
    stanzas = [
        "C:Q1L3lvTwPPtbkNC1LGMwbADOWQzHw=\nP:alpine-baselayout\nV:3.6.5-r0\nA:x86_64\nS:8515\n"
        "I:331776\nT:Alpine base dir structure and init scripts\nU:https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout\n"
        "L:GPL-2.0-only\no:alpine-baselayout\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1714981135\n"
    ]
    for name, version in kernels.items():
        stanzas.append(
            f"C:Q1xg2O6eSkqT4pYFOWQzHw2Hn5y8c=\nP:{name}\nV:{version}\nA:x86_64\nS:29735187\n"
            f"I:137543680\nT:Linux lts kernel\nU:https://www.kernel.org\nL:GPL-2.0-only\n"
            f"o:{name}\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1715955185\n"
            "D:initramfs-generator\n"
        )
    return "\n".join(stanzas) + "\n"


def debian_boot_entry(machine_id: str, release: str) -> str:
    """A Boot Loader Specification entry as systemd 252's kernel-install writes it on Debian."""
    return (
        "# Boot Loader Specification type#1 entry\n"
        "title      Debian GNU/Linux 12 (bookworm)\n"
        f"version    {release}\n"
        f"machine-id {machine_id}\n"
        "sort-key   debian\n"
        f"options    root=UUID=6e1f5a6c-0b77-4c5b-9d8e-1f7c2f3e4a5b ro systemd.machine_id={machine_id}\n"
        f"linux      /{machine_id}/{release}/linux\n"
        f"initrd     /{machine_id}/{release}/initrd.img-{release}\n"
    )


def unified_kernel_image(workdir: Path, release: str, os_release: str, cmdline: str) -> bytes:
    """A UKI: systemd's EFI stub with .osrel, .cmdline, .uname and .linux sections added by
    objcopy at the addresses the Arch wiki's manual recipe used."""
    objcopy = require_command("objcopy")
    stub = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
    require("systemd's EFI stub (systemd-boot-efi)", stub.is_file())
    parts = {
        ".osrel": os_release.encode(),
        ".cmdline": cmdline.encode(),
        ".uname": release.encode(),
        ".linux": bzimage(arch_banner(release, "Thu, 21 Dec 2023 19:01:01 +0000")),
    }
    argv = [objcopy]
    for (section, data), vma in zip(
        parts.items(), ("0x20000", "0x30000", "0x40000", "0x2000000"), strict=True
    ):
        path = workdir / section.lstrip(".")
        path.write_bytes(data)
        argv += ["--add-section", f"{section}={path}", "--change-section-vma", f"{section}={vma}"]
    output = workdir / "uki.efi"
    subprocess.run([*argv, str(stub), str(output)], check=True, capture_output=True)
    return output.read_bytes()


def proc_files(
    snap: Snapshot,
    proc_version: str,
    cmdline: str,
    os_release: str,
    btime: int,
    dmi: tuple[str, str] | None = None,
) -> Snapshot:
    """/proc (banner, release, command line, boot time, modules), os-release and DMI."""
    from snapshots_kernel import PROC_MODULES, proc_stat

    snap.write("proc/version", proc_version + "\n")
    snap.write("proc/sys/kernel/osrelease", proc_version.split()[2] + "\n")
    snap.write("proc/cmdline", cmdline + "\n")
    snap.write("proc/stat", proc_stat(btime))
    snap.write("proc/modules", PROC_MODULES)
    snap.write("etc/os-release", os_release)
    if dmi is not None:
        snap.write("sys/class/dmi/id/sys_vendor", dmi[0] + "\n")
        snap.write("sys/class/dmi/id/product_name", dmi[1] + "\n")
    return snap
