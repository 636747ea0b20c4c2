"""Host facts derived from files under the root. Unknown is None, never a guess."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.host import Host


# Every file the host facts below (and PackageDB) read. `preflight collect` always copies them, so
# a snapshot gives the same `host` object (and `preflight facts`) as the host; checks need not
# declare them again. (A folder adds only itself: enough for "this host uses rpm".)
FACT_PATHS = (
    "etc/os-release",
    "usr/lib/os-release",
    "etc/lsb-release",
    "etc/hostname",
    "proc/sys/kernel/hostname",
    "proc/sys/kernel/osrelease",
    "proc/sys/kernel/version",
    "proc/version",
    "proc/cmdline",
    "proc/modules",
    "proc/stat",
    "proc/cpuinfo",
    "proc/xen",
    "proc/vz",
    "proc/bc",
    "proc/1/environ",
    "proc/1/cgroup",
    "proc/1/mountinfo",
    "proc/1/comm",
    "sys/hypervisor/type",
    "sys/class/dmi/id/sys_vendor",
    "sys/class/dmi/id/product_name",
    "sys/class/dmi/id/bios_vendor",
    "run/systemd/container",
    "run/systemd/system",
    "run/container_type",
    "run/.containerenv",
    ".dockerenv",
    "var/lib/dpkg/status",
    "var/lib/rpm",
    "usr/lib/sysimage/rpm",
    "var/lib/dpkg/info/linux-image*.list",
    "var/lib/dpkg/info/linux-signed-image*.list",
)


def os_release(host: Host) -> dict[str, str] | None:
    # Parsed here rather than by `distro`: distro opens paths itself, so it would follow absolute
    # symlinks out of a snapshot and block on a FIFO; the format is plain shell assignments.
    text = host.read_text("etc/os-release", 64 * 1024) or host.read_text(
        "usr/lib/os-release", 64 * 1024
    )
    if text is None:
        return None
    return parse_os_release(text) or None


def parse_os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        values[key] = words[0] if words else ""
    return values


# `uname -v` inside a kernel banner: "#1 SMP Debian 6.1.112-1 (...)", "#101-Ubuntu SMP ...".
_UNAME_V = re.compile(r"\s(#\d\S*(?:\s.*)?)$")
_BANNER_RELEASE = re.compile(r"^Linux version (\S+)")


def uts_version_of(banner: str | None) -> str | None:
    """The `uname -v` part of a banner as in /proc/version or a kernel image's version string."""
    match = _UNAME_V.search(" " + (banner or ""))
    return match.group(1).strip() if match else None


def _valid_release(release: str | None) -> str | None:
    # uname's release field holds at most 64 printable characters without blanks; anything else
    # (a NUL-filled or garbled file) is not a release, and checks build paths from it.
    if release is None or len(release) > 64 or not release.isprintable() or " " in release:
        return None
    return release


def kernel_release(host: Host) -> str | None:
    """`uname -r`: proc/sys/kernel/osrelease, else the release named by proc/version."""
    direct = _valid_release(host.read_line("proc/sys/kernel/osrelease"))
    if direct:
        return direct
    match = _BANNER_RELEASE.match(host.proc_version or "")
    return _valid_release(match.group(1)) if match else None


def kernel_version(host: Host) -> str | None:
    """`uname -v`: proc/sys/kernel/version, else the tail of proc/version from `#N`."""
    return host.read_line("proc/sys/kernel/version") or uts_version_of(host.proc_version)


def boot_time(host: Host) -> float | None:
    text = host.read_text("proc/stat", 256 * 1024)
    if text is None:
        return None
    match = re.search(r"^btime\s+(\d+)\s*$", text, re.M)
    return float(match.group(1)) if match else None


DMI_FIELDS = ("sys_vendor", "product_name", "bios_vendor")


def dmi(host: Host) -> dict[str, str | None]:
    """The DMI names that say who made the (virtual) machine: read once, used by
    virtualization() and provider()."""
    return {name: host.read_line(f"sys/class/dmi/id/{name}") for name in DMI_FIELDS}


def _dmi_text(host: Host, *names: str) -> str:
    return " ".join(value for name in names if (value := host.dmi[name]))


# DMI sys_vendor / product_name words -> systemd-detect-virt's names.
_VIRT_BY_DMI = (
    ("KVM", "kvm"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VirtualBox", "oracle"),
    ("innotek", "oracle"),
    ("Xen", "xen"),
    ("Bochs", "bochs"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Amazon EC2", "amazon"),
    ("Google Compute Engine", "google"),
    ("DigitalOcean", "kvm"),
    ("Linode", "kvm"),
    ("Hetzner", "kvm"),
    ("OpenStack", "kvm"),
)


def virtualization(host: Host) -> str | None:
    if host.read_line("sys/hypervisor/type") == "xen" or host.is_dir("proc/xen"):
        return "xen"
    dmi = _dmi_text(host, *DMI_FIELDS)
    if dmi:
        for word, name in _VIRT_BY_DMI:
            if word.lower() in dmi.lower():
                return name
        if "Microsoft Corporation" in dmi and "Virtual Machine" in dmi:
            return "microsoft"
    # The first processor's block holds the flags line: no need to read every CPU's.
    cpuinfo = host.read_text("proc/cpuinfo", 64 * 1024)
    if cpuinfo is None:
        return None
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    if flags is None:
        return None
    # The CPU says it runs under a hypervisor but nothing names which one (a microVM has no DMI).
    return "vm" if "hypervisor" in flags.group(1).split() else "none"


def container(host: Host) -> str | None:
    """The container technology, from evidence that only containers produce. `/.dockerenv`
    alone is weak (image builders leave it behind, and microVMs booted from Docker images carry
    it), so it counts only when the cgroup or the root filesystem agree."""
    for rel in ("run/systemd/container", "run/container_type"):
        name = host.read_line(rel)
        if name:
            return name
    environ = host.read_bytes("proc/1/environ", 64 * 1024)
    if environ:
        for item in environ.split(b"\0"):
            if item.startswith(b"container="):
                return item[len(b"container=") :].decode("utf-8", "replace") or None
    if host.exists("run/.containerenv"):
        return "podman"
    if host.is_dir("proc/vz") and not host.exists("proc/bc"):
        return "openvz"
    cgroup = host.read_text("proc/1/cgroup", 64 * 1024) or ""
    for marker, name in (
        ("docker", "docker"),
        ("kubepods", "kubernetes"),
        ("lxc", "lxc"),
        ("containerd", "containerd"),
        ("libpod", "podman"),
    ):
        if marker in cgroup:
            return name
    if host.exists(".dockerenv") and _root_is_overlay(host):
        return "docker"
    return None


def _root_is_overlay(host: Host) -> bool:
    mountinfo = (
        host.read_text("proc/1/mountinfo", 512 * 1024)
        or host.read_text("proc/self/mountinfo", 512 * 1024)
        or ""
    )
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 8 and fields[4] == "/" and "-" in fields:
            fstype = fields[fields.index("-") + 1]
            return fstype in ("overlay", "aufs", "fuse-overlayfs")
    return False


_PROVIDER_BY_VENDOR = (
    ("DigitalOcean", "digitalocean"),
    ("Linode", "linode"),
    ("Akamai", "linode"),
    ("Amazon EC2", "aws"),
    ("Google", "gcp"),
    ("Hetzner", "hetzner"),
    ("Vultr", "vultr"),
    ("Scaleway", "scaleway"),
    ("OVH", "ovh"),
    ("Alibaba", "alibaba"),
    ("OpenStack", "openstack"),
    ("Microsoft Corporation", "azure"),
)


def provider(host: Host) -> str | None:
    """The cloud provider named by DMI; None when DMI says nothing we recognise."""
    vendor = _dmi_text(host, *DMI_FIELDS)
    for word, name in _PROVIDER_BY_VENDOR:
        if word.lower() in vendor.lower():
            if name == "azure" and "Virtual Machine" not in vendor:
                continue
            return name
    return None


# proc/1/comm of the service managers whose commands a remediation can name.
_INIT_BY_COMM = {
    "systemd": "systemd",
    "init": "sysvinit",
    "openrc-init": "openrc",
    "runit": "runit",
    "s6-svscan": "s6",
}


def service_manager(host: Host) -> str | None:
    """What starts services: "systemd", "sysvinit", "openrc", "runit", "s6", "none" (pid 1 is
    something else, as in a container or a microVM), or None when the files do not say."""
    # sd_booted(): /run/systemd/system exists only while systemd runs as pid 1.
    if host.is_dir("run/systemd/system"):
        return "systemd"
    comm = host.read_line("proc/1/comm")
    if comm:
        return _INIT_BY_COMM.get(comm, "none")
    if not host.is_live and host.exists("sbin/init"):
        # A disk image: /run is empty, but the init it would boot is named by /sbin/init.
        init = host.realpath("sbin/init")
        if init:
            name = init.rstrip("/").rsplit("/", 1)[-1]
            return _INIT_BY_COMM.get(name, "sysvinit" if name == "init" else None)
    return None


def kernel_cmdline(host: Host) -> str | None:
    return host.read_line("proc/cmdline")


def boot_image(host: Host) -> str | None:
    """`BOOT_IMAGE=` on the kernel command line: the image a boot loader inside the machine
    chose; None when there is none (a hypervisor or provider loaded the kernel, or no cmdline)."""
    for word in (host.kernel_cmdline or "").split():
        if word.startswith("BOOT_IMAGE="):
            return word.split("=", 1)[1] or None
    return None


def modules_dir(host: Host) -> bool | None:
    """Whether lib/modules/<running release> exists; None when the release is unknown."""
    release = host.kernel_release
    return None if release is None else host.is_dir(f"lib/modules/{release}")


def loaded_modules(host: Host) -> frozenset[str] | None:
    """Names in proc/modules; None when the kernel has no module support (no proc/modules)."""
    text = host.read_text("proc/modules", 4 << 20)
    if text is None:
        return None
    return frozenset(line.split(None, 1)[0] for line in text.splitlines() if line.strip())


def os_codename(host: Host) -> str | None:
    """The release codename: VERSION_CODENAME (or UBUNTU_CODENAME) in os-release, else
    /etc/lsb-release (Ubuntu 12.04 has no codename in os-release), else the name in VERSION
    (Debian 7's "7 (wheezy)")."""
    osr = host.os_release or {}
    for key in ("VERSION_CODENAME", "UBUNTU_CODENAME"):
        if osr.get(key):
            return osr[key]
    lsb = host.read_text("etc/lsb-release", 64 * 1024)
    if lsb:
        codename = parse_os_release(lsb).get("DISTRIB_CODENAME")
        if codename:
            return codename.lower()
    # VERSION="7 (wheezy)" or VERSION="12.04.5 LTS, Precise Pangolin"
    match = re.search(r"\(([A-Za-z]+)\)|, ([A-Za-z]+) ", osr.get("VERSION", ""))
    return (match.group(1) or match.group(2)).lower() if match else None
