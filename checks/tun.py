"""The `tun` check: can OpenVPN get a tun interface on this host?

OpenVPN opens /dev/net/tun and asks the kernel for an interface with the TUNSETIFF ioctl. When the
device node is missing (a container without it, a hand-made /dev), or the kernel has no tun driver
(a module tree that does not match the running kernel), OpenVPN starts without its interface and
says little about why. The check reads the static facts through the Host and, live and as root,
asks the kernel for a transient interface the same way OpenVPN does.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.check import Check, CheckContext, Finding, FindingDoc, Option, Status

if TYPE_CHECKING:
    from preflight.host import Host

DEVICE = "dev/net/tun"
TUN_MAJOR = 10  # the misc character-device major
TUN_MINOR = 200  # TUN_MINOR in include/linux/miscdevice.h

# <linux/if_tun.h>: _IOW('T', 202, int), and the flags of struct ifreq's ifr_flags.
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
IFREQ_SIZE = 40  # sizeof(struct ifreq) on Linux: 16-byte name + a 24-byte union
PROBE_NAME_PATTERN = "pfprobe%d"  # our own prefix, so the transient interface is recognisably ours
CAP_NET_ADMIN = 12

CONFIG_GZ_LIMIT = 1 << 20  # proc/config.gz is ~30 KiB compressed
CONFIG_TEXT_LIMIT = 8 << 20  # a distribution kernel's config is ~300 KiB
MODULE_SUFFIXES = ("", ".xz", ".zst", ".gz")

OPENVPN_CONFIG_DIRS = (
    # (folder, systemd template): where the Debian/Fedora unit files look for NAME.conf.
    ("etc/openvpn", "openvpn@"),
    ("etc/openvpn/server", "openvpn-server@"),
    ("etc/openvpn/client", "openvpn-client@"),
)

MKNOD = "mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun"
LXC_STEPS = [
    "LXC: in the container's config on the LXC host add "
    "`lxc.cgroup2.devices.allow = c 10:200 rwm` (cgroup v1: `lxc.cgroup.devices.allow = "
    "c 10:200 rwm`) and `lxc.mount.entry = /dev/net/tun dev/net/tun none bind,create=file`, "
    "then restart the container",
    "LXD/Incus: on the host run `lxc config device add <name> tun unix-char path=/dev/net/tun` "
    "and restart the container",
]
DOCKER_STEPS = [
    "Docker/Podman: recreate the container with `--cap-add=NET_ADMIN --device /dev/net/tun` "
    "(compose: `cap_add: [NET_ADMIN]` and `devices: [/dev/net/tun]`)",
]
OPENVZ_STEPS = [
    "OpenVZ/Virtuozzo: on the hardware node run `vzctl set <CTID> --devnodes net/tun:rw --save` "
    "and restart the container",
]
# `host.container` reports systemd-detect-virt's names.
CONTAINER_STEPS = {
    "lxc": LXC_STEPS,
    "lxc-libvirt": LXC_STEPS,
    "docker": DOCKER_STEPS,
    "podman": DOCKER_STEPS,
    "containerd": DOCKER_STEPS,
    "kubernetes": [
        "Kubernetes: give the pod `securityContext.capabilities.add: [NET_ADMIN]` and a "
        "`hostPath` volume for /dev/net/tun (type CharDevice) mounted at /dev/net/tun",
    ],
    "openvz": OPENVZ_STEPS,
}


def container_steps(container: str) -> list[str]:
    """The runtime settings that hand /dev/net/tun to a container; all of them when the runtime
    is one we do not know."""
    return CONTAINER_STEPS.get(container, LXC_STEPS + DOCKER_STEPS + OPENVZ_STEPS)


@dataclass
class OpenVPNConfig:
    path: str  # as the host names it: /etc/openvpn/server/NAME.conf
    unit: str
    dev: str | None
    dev_type: str | None
    dev_node: str | None
    enabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "unit": self.unit,
            "dev": self.dev,
            "dev_type": self.dev_type,
            "dev_node": self.dev_node,
            "enabled": self.enabled,
        }


@dataclass
class KernelSupport:
    """Whether the running kernel has a tun driver, and the first evidence that says so."""

    release: str | None
    supported: bool | None = None  # None: nothing conclusive either way
    kind: str | None = None  # "built-in" or "module"
    evidence: str | None = None
    modules_dir: bool | None = None
    sources: dict[str, Any] = field(default_factory=dict)

    def decide(self, supported: bool, kind: str | None, evidence: str) -> KernelSupport:
        self.supported, self.kind, self.evidence = supported, kind, evidence
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "supported": self.supported,
            "kind": self.kind,
            "evidence": self.evidence,
            "modules_dir": self.modules_dir,
            "sources": self.sources,
        }


@dataclass
class ProbeResult:
    ran: bool
    reason: str | None = None  # why it did not run
    ok: bool | None = None
    interface: str | None = None
    interface_removed: bool | None = None
    step: str | None = None  # "open" or "ioctl": where it failed
    errno_name: str | None = None
    error: str | None = None

    net_admin: bool | None = None  # whether the probing process had CAP_NET_ADMIN

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class TunCheck(Check):
    id = "tun"
    title = "tun device for OpenVPN"
    description = """
OpenVPN needs a working /dev/net/tun: a character device 10:200 backed by the kernel's tun
driver. When the node is missing (typical in containers) or the kernel lacks the driver (for
example a module tree in /lib/modules that does not match the running kernel), OpenVPN starts
without its tun interface and says little about why.

The check applies when OpenVPN is installed (the openvpn binary or package) or a config exists in
/etc/openvpn, /etc/openvpn/server or /etc/openvpn/client (or `required = true`). It reads the
device node, the kernel's tun support (in order: /proc/misc, CONFIG_TUN in /proc/config.gz or
/boot/config-<release>, modules.builtin, a tun.ko for the running release), whether the module is
loaded, the container type, the OpenVPN configs' dev/dev-type lines and their systemd units.
On the live host as root it then asks the kernel for a transient interface exactly as OpenVPN
does (open /dev/net/tun, TUNSETIFF with IFF_TUN|IFF_NO_PI and the name pattern pfprobe%d); the
interface disappears when the descriptor is closed, and the check verifies that it did. Not
root, the probe does not run and the static facts decide. Opening /dev/net/tun loads the module
on demand, so a module that is not loaded yet is not a finding.
""".strip()
    findings = {
        "tun.ok": FindingDoc(
            Status.PASS,
            "/dev/net/tun is a character device 10:200 and the "
            "kernel supports tun (and, as root, the probe got an interface).",
        ),
        "tun.not-needed": FindingDoc(
            Status.SKIP,
            "OpenVPN is not installed and has no config; nothing here needs /dev/net/tun.",
            "Set `[checks.tun] required = true` to check it anyway.",
        ),
        "tun.device-missing": FindingDoc(
            Status.FAIL,
            "/dev/net/tun does not exist.",
            f"`{MKNOD}`; in a container, the runtime's setting (LXC "
            "`lxc.cgroup2.devices.allow = c 10:200 rwm` plus a bind mount, LXD `unix-char` "
            "device, Docker `--cap-add=NET_ADMIN --device /dev/net/tun`, OpenVZ "
            "`--devnodes net/tun:rw`).",
        ),
        "tun.device-wrong": FindingDoc(
            Status.FAIL,
            "/dev/net/tun exists but is not the character device 10:200.",
            f"Move it aside and recreate it: `mv /dev/net/tun /dev/net/tun.wrong && {MKNOD}`.",
        ),
        "tun.no-kernel-support": FindingDoc(
            Status.FAIL,
            "The running kernel has no tun driver: CONFIG_TUN is not set, no "
            "tun.ko exists for it, or its /lib/modules/<release> is missing (the running kernel "
            "is not the installed one).",
            "Boot a kernel with CONFIG_TUN=y/m; see `preflight explain kernel` when the running "
            "kernel does not match the installed one.",
        ),
        "tun.permission": FindingDoc(
            Status.FAIL,
            "The probe ran with root / CAP_NET_ADMIN and the kernel still refused "
            "(EPERM/EACCES): typically a container whose device cgroup does not allow c 10:200, "
            "or a process without CAP_NET_ADMIN.",
            "Allow the device in the container runtime (see tun.device-missing) or grant "
            "CAP_NET_ADMIN.",
        ),
        "tun.device-unknown": FindingDoc(
            Status.SKIP,
            "A snapshot (--root) without /dev: the device node cannot be judged "
            "(a disk image's /dev is filled at boot).",
            "Run preflight on the host, or use a snapshot made by `preflight collect`.",
        ),
        "tun.probe-leftover": FindingDoc(
            Status.WARN,
            "The probe's transient interface was still present after the descriptor was closed.",
            "`ip link delete <interface>`",
        ),
        "tun.probe-failed": FindingDoc(
            Status.ERROR,
            "The probe failed with an error the check does not recognise; the message names it.",
        ),
    }
    options = {
        "probe": Option(
            bool, True, "open /dev/net/tun and request a transient interface (live host, root only)"
        ),
    }
    paths = (
        "dev/net/tun",
        "proc/misc",
        "proc/modules",
        "proc/config.gz",
        "proc/sys/kernel/osrelease",
        "boot/config-*",
        "lib/modules/*/modules.builtin",
        "lib/modules/*/kernel/drivers/net/tun.ko*",
        "etc/openvpn/*.conf",
        "etc/openvpn/server/*.conf",
        "etc/openvpn/client/*.conf",
        "var/lib/dpkg/status",
        "run/systemd/container",
        "etc/systemd/system/*.wants/openvpn*",
        "etc/passwd",
        "etc/group",
    )
    # The binary's presence (and mode) is the fact; its content is not needed.
    markers = ("usr/sbin/openvpn", "usr/local/sbin/openvpn")

    def run(self, ctx: CheckContext) -> list[Finding]:
        host = ctx.host
        binary = host.which("openvpn")
        package = _openvpn_package(host)
        configs = _openvpn_configs(host)
        enabled_units = _enabled_units(host)
        for config in configs:
            config.enabled = config.unit in enabled_units
        ctx.details["openvpn"] = {
            "binary": binary,
            "package": package,
            "configs": [c.to_dict() for c in configs],
            "enabled_units": sorted(enabled_units),
        }
        if not (binary or package or configs or ctx.required):
            reason = (
                "OpenVPN is not installed (no openvpn on PATH, no openvpn package) and "
                "there is no config in /etc/openvpn, /etc/openvpn/server or "
                "/etc/openvpn/client: nothing here needs /dev/net/tun"
            )
            return [
                Finding(
                    "tun.not-needed",
                    Status.SKIP,
                    reason,
                    ["set `[checks.tun] required = true` to check the device anyway"],
                )
            ]

        container = host.container
        ctx.details["container"] = container
        device = _device_facts(host)
        ctx.details["device"] = device
        kernel = _kernel_support(host)
        ctx.details["kernel"] = kernel.to_dict()
        ctx.details["module_loaded"] = _module_loaded(host)

        findings: list[Finding] = []
        device_ok = (
            device["exists"] is True
            and device["type"] == "char"
            and (device["major"], device["minor"]) == (TUN_MAJOR, TUN_MINOR)
        )
        if device["exists"] is False:
            findings.append(_device_missing(container))
        elif device["exists"] is True and not device_ok:
            findings.append(_device_wrong(device))

        probe = self._probe(ctx, device_ok)
        ctx.details["probe"] = probe.to_dict()
        findings.extend(_probe_findings(probe, container, kernel))

        if (
            kernel.supported is False
            and not any(f.code == "tun.no-kernel-support" for f in findings)
            and not probe.ok
        ):
            findings.append(_no_kernel_support(kernel))

        if device["exists"] is None and not findings:
            findings.append(
                Finding(
                    "tun.device-unknown",
                    Status.SKIP,
                    f"{device['note']}: /dev/net/tun cannot be judged from it "
                    f"(kernel tun support: {_kernel_phrase(kernel)})",
                    [
                        "run preflight on the host itself, or collect the snapshot with "
                        "`preflight collect` so it includes dev/net/tun"
                    ],
                )
            )
        if not findings:
            findings.append(_ok(kernel, probe))
        return findings

    # ----------------------------------------------------------------- probe
    def _probe(self, ctx: CheckContext, device_ok: bool) -> ProbeResult:
        host = ctx.host
        if not ctx.options.get("probe", True):
            return ProbeResult(False, "probe not run: disabled by `probe = false`")
        if not host.is_live:
            return ProbeResult(False, "probe not run: only on the live host (--root is not /)")
        if not (host.is_root_user or _has_net_admin(host)):
            return ProbeResult(False, "probe not run: needs root / CAP_NET_ADMIN")
        if not device_ok:
            return ProbeResult(
                False, "probe not run: /dev/net/tun is missing or not the tun device"
            )
        result = probe_tun("/" + DEVICE)
        result.net_admin = _has_net_admin(host)
        return result


def probe_tun(device_path: str) -> ProbeResult:
    """Ask the kernel for a transient tun interface as OpenVPN does, then close it.

    The device path is opened directly, not through Host.read_*: it is a character device, which
    Host refuses by design, and the probe only runs on the live host.
    """
    import fcntl
    import struct

    try:
        fd = os.open(device_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return _probe_error("open", exc)
    name: str | None = None
    try:
        request = struct.pack(f"{IFNAMSIZ}sH", PROBE_NAME_PATTERN.encode(), IFF_TUN | IFF_NO_PI)
        request = request.ljust(IFREQ_SIZE, b"\0")
        try:
            answer = fcntl.ioctl(fd, TUNSETIFF, request)
        except OSError as exc:
            return _probe_error("ioctl", exc)
        name = answer[:IFNAMSIZ].split(b"\0", 1)[0].decode("ascii", "replace")
    finally:
        os.close(fd)
    if not name:
        return ProbeResult(True, ok=False, step="ioctl", error="the kernel returned no name")
    # Closing the only descriptor of a non-persistent interface unregisters it synchronously;
    # the short wait only covers a busy rtnl lock.
    removed = False
    deadline = time.monotonic() + 1.0
    while True:
        if not os.path.exists(f"/sys/class/net/{name}"):
            removed = True
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return ProbeResult(True, ok=True, interface=name, interface_removed=removed)


def _probe_error(step: str, exc: OSError) -> ProbeResult:
    code = exc.errno or 0
    return ProbeResult(
        True,
        ok=False,
        step=step,
        errno_name=errno.errorcode.get(code, str(code)),
        error=exc.strerror or str(exc),
    )


def _probe_findings(
    probe: ProbeResult, container: str | None, kernel: KernelSupport
) -> list[Finding]:
    if not probe.ran:
        return []
    if probe.ok:
        if probe.interface_removed:
            return []
        return [
            Finding(
                "tun.probe-leftover",
                Status.WARN,
                f"the probe's transient interface {probe.interface} was still present after "
                "its descriptor was closed",
                [f"ip link delete {probe.interface}"],
            )
        ]
    what = "opening /dev/net/tun" if probe.step == "open" else "the TUNSETIFF ioctl on /dev/net/tun"
    errname = probe.errno_name or "?"
    if errname in ("EPERM", "EACCES"):
        if probe.step == "ioctl" and probe.net_admin is False:
            where = f"root in this {container} container" if container else "this root process"
            steps = (
                container_steps(container)
                if container
                else [
                    "run OpenVPN (and preflight) with CAP_NET_ADMIN in its capability bounding "
                    "set: check `grep CapBnd /proc/self/status` and the unit's "
                    "`CapabilityBoundingSet=` (Debian's openvpn units include CAP_NET_ADMIN)"
                ]
            )
            return [
                Finding(
                    "tun.permission",
                    Status.FAIL,
                    f"{what} was refused ({errname}: {probe.error}): {where} lacks CAP_NET_ADMIN",
                    steps,
                )
            ]
        if container:
            why = (
                f"this is a {container} container whose device cgroup does not allow c 10:200"
                if probe.step == "open"
                else f"this is a {container} container without CAP_NET_ADMIN"
            )
            steps = container_steps(container)
        else:
            why = (
                "a security module (AppArmor/SELinux) or the service's device policy denies "
                "the device"
                if probe.step == "open"
                else "this process lacks CAP_NET_ADMIN (a capability bounding set?)"
            )
            steps = [
                "check the audit log: `journalctl -k | grep -i -e apparmor -e avc`",
                "give the OpenVPN service CAP_NET_ADMIN and access to /dev/net/tun "
                "(systemd: `DeviceAllow=/dev/net/tun rw`, "
                "`CapabilityBoundingSet=CAP_NET_ADMIN ...`)",
            ]
        return [
            Finding(
                "tun.permission",
                Status.FAIL,
                f"{what} was refused ({errname}: {probe.error}) although the probe ran "
                f"with root / CAP_NET_ADMIN: {why}",
                steps,
            )
        ]
    if errname in ("ENODEV", "ENXIO"):
        # The node exists but no driver answers it: the module is absent or cannot be loaded.
        return [_no_kernel_support(kernel, f"{what} failed with {errname} ({probe.error})")]
    return [
        Finding(
            "tun.probe-failed",
            Status.ERROR,
            f"{what} failed: {errname} ({probe.error})",
            [
                "run `openvpn --dev tun --ifconfig 10.255.0.1 10.255.0.2 --verb 4` "
                "to see how OpenVPN itself fails"
            ],
        )
    ]


def _has_net_admin(host: Host) -> bool:
    status = host.read_text("proc/self/status", 64 * 1024) or ""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)\s*$", status, re.M)
    if match is None:
        return False
    return bool(int(match.group(1), 16) & (1 << CAP_NET_ADMIN))


# --------------------------------------------------------------------- findings
def _device_missing(container: str | None) -> Finding:
    if container:
        return Finding(
            "tun.device-missing",
            Status.FAIL,
            f"/dev/net/tun does not exist in this {container} container: the container "
            "runtime does not pass the tun device in",
            container_steps(container),
        )
    return Finding(
        "tun.device-missing",
        Status.FAIL,
        "/dev/net/tun does not exist: OpenVPN cannot create its tun interface",
        [MKNOD],
    )


def _device_wrong(device: dict[str, Any]) -> Finding:
    kind = device["type"]
    if kind == "char":
        what = f"a character device {device['major']}:{device['minor']}"
    else:
        what = {
            "regular": "a regular file",
            "directory": "a directory",
            "block": "a block device",
            "fifo": "a FIFO",
            "socket": "a socket",
        }.get(kind, str(kind))
    return Finding(
        "tun.device-wrong",
        Status.FAIL,
        f"/dev/net/tun is {what}, not the character device 10:200 of the tun driver",
        [f"mv /dev/net/tun /dev/net/tun.wrong && {MKNOD}"],
    )


def _no_kernel_support(kernel: KernelSupport, probe_note: str | None = None) -> Finding:
    release = kernel.release or "(unknown release)"
    base = probe_note or f"the running kernel {release} has no tun driver"
    config = kernel.sources.get("config")
    if (
        kernel.release
        and kernel.modules_dir is False
        and config != "n"
        and kernel.kind != "built-in"
    ):
        return Finding(
            "tun.no-kernel-support",
            Status.FAIL,
            f"{base}: tun is not built in and /lib/modules/{release} is missing, so its "
            "module cannot be loaded; the running kernel does not match the installed one",
            [
                "run `preflight check kernel` (and read `preflight explain kernel`) to see why the "
                "running kernel is not the installed one",
                "reboot into an installed kernel, or install the modules for the running one",
            ],
        )
    detail = f" ({kernel.evidence})" if kernel.evidence and not probe_note else ""
    steps = ["boot a kernel built with CONFIG_TUN=y or CONFIG_TUN=m"]
    if config != "n":
        steps.append(
            "install the tun module for the running kernel (its distribution's modules "
            "package), then `modprobe tun`"
        )
    return Finding("tun.no-kernel-support", Status.FAIL, f"{base}{detail}", steps)


def _kernel_phrase(kernel: KernelSupport) -> str:
    if kernel.supported:
        return f"{kernel.kind or 'present'}, {kernel.evidence}"
    if kernel.supported is False:
        return f"absent, {kernel.evidence}"
    return "unknown"


def _ok(kernel: KernelSupport, probe: ProbeResult) -> Finding:
    parts = ["/dev/net/tun is the character device 10:200"]
    if kernel.supported:
        parts.append(f"the kernel has tun ({_kernel_phrase(kernel)})")
    elif not (probe.ran and probe.ok):
        parts.append("the kernel's tun support could not be determined from its files")
    if probe.ran and probe.ok:
        parts.append(f"the probe created and removed {probe.interface}")
    elif probe.reason:
        parts.append(probe.reason)
    return Finding("tun.ok", Status.PASS, "; ".join(parts))


# ------------------------------------------------------------------------ facts
def _openvpn_package(host: Host) -> str | None:
    """The installed openvpn package's version, or None."""
    try:
        package = host.packages.get("openvpn")
    except Exception:  # a malformed package database is "unknown", not a crash
        return None
    return package.version if package is not None else None


_DIRECTIVE = re.compile(r"^\s*(dev|dev-type|dev-node)\s+(\S+)", re.M)


def _openvpn_configs(host: Host) -> list[OpenVPNConfig]:
    configs = []
    for folder, template in OPENVPN_CONFIG_DIRS:
        for rel in host.glob(f"{folder}/*.conf"):
            if not host.is_file(rel):
                continue
            name = rel.rsplit("/", 1)[1][: -len(".conf")]
            values: dict[str, str] = {}
            # Only the dev lines are kept: the rest of a config can hold inline keys.
            for match in _DIRECTIVE.finditer(host.read_text(rel, 1 << 20) or ""):
                values.setdefault(match.group(1), match.group(2).strip("\"'"))
            configs.append(
                OpenVPNConfig(
                    host.display(rel),
                    f"{template}{name}",
                    values.get("dev"),
                    values.get("dev-type"),
                    values.get("dev-node"),
                )
            )
    return configs


def _enabled_units(host: Host) -> set[str]:
    """OpenVPN units enabled through a symlink in a .wants folder, without `.service`."""
    units = set()
    for rel in host.glob("etc/systemd/system/*.wants/openvpn*"):
        name = rel.rsplit("/", 1)[1]
        units.add(name.removesuffix(".service"))
    return units


_FILE_TYPES = (
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISREG, "regular"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


def _device_facts(host: Host) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "path": "/" + DEVICE,
        "exists": None,
        "type": None,
        "major": None,
        "minor": None,
        "mode": None,
        "uid": None,
        "gid": None,
        "owner": None,
        "group": None,
        "note": None,
    }
    st = host.stat(DEVICE)
    if st is None:
        if not host.is_live and not host.listdir("dev"):
            # A disk image's /dev is empty until devtmpfs is mounted at boot: absent is unknown.
            facts["note"] = "the snapshot has no /dev, so the device node is unknown"
            return facts
        facts["exists"] = False
        return facts
    facts["exists"] = True
    facts["type"] = next((name for test, name in _FILE_TYPES if test(st.st_mode)), "other")
    if facts["type"] in ("char", "block"):
        facts["major"], facts["minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
    facts["mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
    facts["uid"], facts["gid"] = st.st_uid, st.st_gid
    facts["owner"] = _id_name(host, "etc/passwd", st.st_uid)
    facts["group"] = _id_name(host, "etc/group", st.st_gid)
    return facts


def _id_name(host: Host, rel: str, number: int) -> str | None:
    """The name of a uid/gid from the root's own passwd/group file (not this machine's)."""
    for line in (host.read_text(rel, 4 << 20) or "").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2] == str(number):
            return fields[0]
    return None


def _module_loaded(host: Host) -> bool | None:
    """Whether `tun` is in /proc/modules; None when the kernel has no loadable modules (the file
    is absent) or the file is unreadable."""
    text = host.read_text("proc/modules", 4 << 20)
    if text is None:
        return None
    return any(line.startswith("tun ") for line in text.splitlines())


def _kernel_support(host: Host) -> KernelSupport:
    release = host.kernel_release
    support = KernelSupport(release)
    if release:
        support.modules_dir = host.is_dir(f"lib/modules/{release}")

    # 1. /proc/misc lists registered misc devices: tun is there when built in or loaded.
    misc = host.read_text("proc/misc", 64 * 1024)
    in_misc = (
        None if misc is None else any(line.split()[1:2] == ["tun"] for line in misc.splitlines())
    )
    support.sources["proc_misc"] = in_misc
    if in_misc:
        loaded = _module_loaded(host)
        kind: str | None
        if loaded is not None:
            kind = "module" if loaded else "built-in"
        else:
            # No /proc/modules: live, this kernel cannot load modules at all; in a snapshot the
            # file may simply not have been copied.
            kind = "built-in" if host.is_live else None
        return support.decide(True, kind, "/proc/misc lists tun")

    # 2. The kernel's own build config; 3. modules.builtin; 4. a module file for this release.
    config, config_file = _config_tun(host, release)
    support.sources["config"] = config
    support.sources["config_file"] = config_file
    base = f"lib/modules/{release}"
    in_builtin: bool | None = None
    module: str | None = None
    if release:
        builtin = host.read_text(f"{base}/modules.builtin", 4 << 20)
        in_builtin = None if builtin is None else bool(re.search(r"(^|/)tun\.ko$", builtin, re.M))
        module = next(
            (
                f"/{base}/kernel/drivers/net/tun.ko{suffix}"
                for suffix in MODULE_SUFFIXES
                if host.is_file(f"{base}/kernel/drivers/net/tun.ko{suffix}")
            ),
            None,
        )
    support.sources["modules_builtin"] = in_builtin
    support.sources["module_file"] = module

    if config == "y":
        return support.decide(True, "built-in", f"CONFIG_TUN=y in {config_file}")
    if config == "n":
        return support.decide(False, None, f"CONFIG_TUN is not set in {config_file}")
    if in_builtin:
        return support.decide(True, "built-in", f"/{base}/modules.builtin lists tun.ko")
    if module:
        why = f"CONFIG_TUN=m in {config_file}, {module}" if config else module
        return support.decide(True, "module", f"{why} exists")
    if not release:
        if config == "m":
            return support.decide(True, "module", f"CONFIG_TUN=m in {config_file}")
        return support
    # Neither built in nor loadable from a module file for the running release.
    if config == "m" or in_misc is False:
        prefix = f"CONFIG_TUN=m in {config_file}" if config else "/proc/misc has no tun"
        kind = "module" if config else None
        if support.modules_dir is False:
            return support.decide(False, kind, f"{prefix} and /{base} is missing")
        if support.modules_dir:
            return support.decide(
                False,
                kind,
                f"{prefix}, but neither /{base}/modules.builtin nor /{base}/kernel/drivers/net "
                "has tun.ko",
            )
    return support


def _config_tun(host: Host, release: str | None) -> tuple[str | None, str | None]:
    """CONFIG_TUN's value ("y", "m", "n") and the file it came from; (None, None) if unknown."""
    text = _proc_config(host)
    source = "/proc/config.gz"
    if text is None and release:
        text = host.read_text(f"boot/config-{release}", CONFIG_TEXT_LIMIT)
        source = f"/boot/config-{release}"
    if text is None:
        return None, None
    match = re.search(r"^CONFIG_TUN=([ym])\s*$", text, re.M)
    if match:
        return match.group(1), source
    if re.search(r"^# CONFIG_TUN is not set\s*$", text, re.M):
        return "n", source
    return None, None


def _proc_config(host: Host) -> str | None:
    import zlib

    data = host.read_bytes("proc/config.gz", CONFIG_GZ_LIMIT)
    if not data:
        return None
    try:
        # wbits 31: gzip framing; max_length bounds the output against a decompression bomb.
        text = zlib.decompressobj(31).decompress(data, CONFIG_TEXT_LIMIT)
    except zlib.error:
        return None
    return text.decode("utf-8", "replace")
