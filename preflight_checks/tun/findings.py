"""The findings of the `tun` check, with the exact steps that fix each one.

Container runtimes hand /dev/net/tun in differently, so the remediation names the runtime's own
setting when the container type is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from preflight.check import Finding, Status
from preflight.text import plausible_name, shell_arg, shell_join

if TYPE_CHECKING:
    from collections.abc import Iterable

    from preflight_checks.tun.facts import KernelSupport
    from preflight_checks.tun.probe import ProbeResult


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


def restart_steps(units: Iterable[str]) -> list[str]:
    """Restarting the enabled OpenVPN instances once the device is there: they started without
    their interface. A unit name comes from a file name on the host: it is quoted, and a name no
    init system would give (shell syntax in it) gets no command at all."""
    names = sorted({unit for unit in units if plausible_name(unit)})
    if not names:
        return []
    return [shell_join(["systemctl", "restart", *names])]


def probe_findings(
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
                [f"ip link delete {shell_arg(probe.interface)}"]
                if probe.interface and plausible_name(probe.interface)
                else [],
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
        return [no_kernel_support(kernel, f"{what} failed with {errname} ({probe.error})")]
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


def device_missing(container: str | None, units: Iterable[str] = ()) -> Finding:
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
        [MKNOD, *restart_steps(units)],
    )


def device_wrong(device: dict[str, Any], units: Iterable[str] = ()) -> Finding:
    kind = device["type"]
    if kind == "char":
        what = f"a character device {device['major']}:{device['minor']}"
    else:
        from preflight_checks.tun.facts import FILE_TYPES

        what = next((phrase for _, name, phrase in FILE_TYPES if name == kind), str(kind))
    return Finding(
        "tun.device-wrong",
        Status.FAIL,
        f"/dev/net/tun is {what}, not the character device 10:200 of the tun driver",
        [f"mv /dev/net/tun /dev/net/tun.wrong && {MKNOD}", *restart_steps(units)],
    )


def no_kernel_support(kernel: KernelSupport, probe_note: str | None = None) -> Finding:
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


def kernel_phrase(kernel: KernelSupport) -> str:
    if kernel.supported:
        return f"{kernel.kind or 'present'}, {kernel.evidence}"
    if kernel.supported is False:
        return f"absent, {kernel.evidence}"
    return "unknown"


def ok_finding(kernel: KernelSupport, probe: ProbeResult) -> Finding:
    parts = ["/dev/net/tun is the character device 10:200"]
    if kernel.supported:
        parts.append(f"the kernel has tun ({kernel_phrase(kernel)})")
    elif not (probe.ran and probe.ok):
        parts.append("the kernel's tun support could not be determined from its files")
    if probe.ran and probe.ok:
        parts.append(f"the probe created and removed {probe.interface}")
    elif probe.reason:
        parts.append(probe.reason)
    return Finding("tun.ok", Status.PASS, "; ".join(parts))
