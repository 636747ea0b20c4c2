"""Write a --root snapshot of a busy Debian host, for the kernel scale benchmark.

    python bench/make_snapshot.py DEST [--packages 10000]

The snapshot is a Debian 12 VM booted from the kernel package installed on this machine (so the
kernel check can match the running build against the package and the image): its /proc files are
written in the kernel's own format from the build string inside /boot/vmlinuz-*, and the image,
its config and lib/modules/<release>/modules.dep are copied. var/lib/dpkg/status holds
--packages real stanzas: every stanza of this machine's own status file, then copies of them
under suffixed names (`libc6-bench0001`) until the count is reached; the kernel packages occur
once, with their real .list files (whose mtime is the install time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

# /proc/version's compiler part is not in the image; this is Debian 12's, as its kernels print it.
BOOKWORM_TOOLCHAIN = (
    "(gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40)"
)


def image_build_string(image: Path) -> str | None:
    """The x86 boot header's kernel_version string: 'RELEASE (builder) #1 SMP ... (date)', read
    by the kernel check's own reader."""
    from preflight.host import Host
    from preflight_checks.kernel.image import image_version

    return image_version(Host("/"), str(image.resolve()).lstrip("/"), scan=False)


def stanzas(status_text: str) -> list[str]:
    return [s.strip("\n") for s in status_text.split("\n\n") if s.strip()]


def stanza_name(stanza: str) -> str:
    for line in stanza.splitlines():
        if line.startswith("Package: "):
            return line[len("Package: ") :].strip()
    return ""


def rename(stanza: str, suffix: str) -> str:
    """The stanza under another package name (only the Package field changes)."""
    lines = stanza.splitlines()
    return "\n".join(f"{line}{suffix}" if line.startswith("Package: ") else line for line in lines)


def build_status(real: list[str], count: int) -> str:
    """`count` stanzas: the real ones once each, then suffixed copies of the non-kernel ones."""
    kernel = [s for s in real if stanza_name(s).startswith("linux-image-")]
    filler = [s for s in real if not stanza_name(s).startswith("linux-image-")]
    if not filler:
        raise SystemExit("make_snapshot: the source status file has no usable stanzas")
    out = list(real[:count]) if len(real) >= count else list(real)
    copy = 0
    while len(out) < count:
        source = filler[copy % len(filler)]
        out.append(rename(source, f"-bench{copy // len(filler) + 1:04d}"))
        copy += 1
    # The kernel packages must be in the snapshot even when `count` is small.
    names = {stanza_name(s) for s in out}
    out.extend(s for s in kernel if stanza_name(s) not in names)
    return "\n\n".join(out) + "\n"


def write(dest: Path, rel: str, text: str) -> None:
    path = dest / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def copy(dest: Path, src: str, rel: str | None = None) -> None:
    target = dest / (rel or src.lstrip("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, target)  # keeps the mtime: a .list file's mtime is the install time


def make(dest: Path, count: int, source_root: Path = Path("/")) -> dict[str, object]:
    images = sorted((source_root / "boot").glob("vmlinuz-*"))
    if not images:
        raise SystemExit("make_snapshot: no /boot/vmlinuz-* on this machine to model the host on")
    image = images[-1]
    release = image.name[len("vmlinuz-") :]
    build = image_build_string(image)
    if build is None or not build.startswith(release + " "):
        raise SystemExit(f"make_snapshot: {image} has no readable build string")
    builder, _, uts_version = build[len(release) + 1 :].partition(" #")
    uts_version = "#" + uts_version

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    write(dest, "proc/sys/kernel/osrelease", release + "\n")
    write(dest, "proc/sys/kernel/version", uts_version + "\n")
    write(dest, "proc/sys/kernel/hostname", "bench-host\n")
    write(
        dest,
        "proc/version",
        f"Linux version {release} {builder} {BOOKWORM_TOOLCHAIN} {uts_version}\n",
    )
    write(
        dest,
        "proc/cmdline",
        f"BOOT_IMAGE=/boot/vmlinuz-{release} root=UUID=0f6e3c1c-5bd4-4c8e-9a3a-2b1f1f1e8d2a ro "
        "quiet\n",
    )
    copy(dest, str(source_root / "proc/stat"), "proc/stat")
    copy(dest, str(source_root / "proc/cpuinfo"), "proc/cpuinfo")
    write(dest, "proc/1/cgroup", "0::/init.scope\n")
    write(
        dest,
        "proc/modules",
        "ext4 1011712 1 - Live 0x0000000000000000\nvirtio_net 65536 0 - Live 0x0000000000000000\n",
    )
    copy(dest, str(source_root / "etc/os-release"), "etc/os-release")
    copy(dest, str(image), f"boot/{image.name}")
    config = source_root / "boot" / f"config-{release}"
    if config.is_file():
        copy(dest, str(config), f"boot/{config.name}")
    modules_dep = source_root / "lib/modules" / release / "modules.dep"
    if modules_dep.is_file():
        copy(dest, str(modules_dep), f"lib/modules/{release}/modules.dep")
    else:
        (dest / "lib/modules" / release).mkdir(parents=True)

    real = stanzas((source_root / "var/lib/dpkg/status").read_text(encoding="utf-8"))
    status = build_status(real, count)
    write(dest, "var/lib/dpkg/status", status)
    info = source_root / "var/lib/dpkg/info"
    for name in sorted(os.listdir(info)):
        if name.startswith("linux-image-") and name.endswith(".list"):
            copy(dest, str(info / name), f"var/lib/dpkg/info/{name}")
    return {
        "root": str(dest),
        "release": release,
        "packages": status.count("\nPackage: ") + status.startswith("Package: "),
        "status_bytes": len(status.encode()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="snapshot folder (replaced if it exists)")
    parser.add_argument("--packages", type=int, default=10000, help="stanzas in dpkg status")
    args = parser.parse_args(argv)
    info = make(args.dest, args.packages)
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
