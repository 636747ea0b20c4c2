"""The `tun` check: can OpenVPN get a tun interface on this host?

OpenVPN opens /dev/net/tun and asks the kernel for an interface with the TUNSETIFF ioctl. When the
device node is missing (a container without it, a hand-made /dev), or the kernel has no tun driver
(a module tree that does not match the running kernel), OpenVPN starts without its interface and
says little about why. The check reads the static facts through the Host and, live and as root,
asks the kernel for a transient interface the same way OpenVPN does.

This module holds the check's metadata and weighs the evidence; the facts are read in tun_facts,
the probe runs in tun_probe, and tun_findings words the findings and their fixes.
"""

from __future__ import annotations

from preflight.check import AppliesWhen, Check, CheckContext, Finding, FindingDoc, Option, Status
from preflight_checks.tun.findings import MKNOD


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
            "`--devnodes net/tun:rw`). Then `systemctl restart` the enabled OpenVPN instances "
            "(named, shell-quoted; a unit whose name holds shell syntax is not suggested).",
        ),
        "tun.device-wrong": FindingDoc(
            Status.FAIL,
            "/dev/net/tun exists but is not the character device 10:200.",
            f"Move it aside and recreate it: `mv /dev/net/tun /dev/net/tun.wrong && {MKNOD}`, "
            "then `systemctl restart` the enabled OpenVPN instances.",
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
        "proc/config.gz",
        "boot/config-*",
        "lib/modules/*/modules.builtin",
        "lib/modules/*/kernel/drivers/net/tun.ko*",
        "etc/openvpn/*.conf",
        "etc/openvpn/server/*.conf",
        "etc/openvpn/client/*.conf",
        "etc/systemd/system/*.wants/openvpn*",
        "etc/passwd",
        "etc/group",
    )
    # The binary's presence (and mode) is the fact; its content is not needed.
    markers = ("usr/sbin/openvpn", "usr/local/sbin/openvpn")

    applies = AppliesWhen(
        "OpenVPN is not installed (no openvpn on PATH, no openvpn package) and there is no "
        "config in /etc/openvpn, /etc/openvpn/server or /etc/openvpn/client: nothing here "
        "needs /dev/net/tun",
        packages=("openvpn",),
        commands=("openvpn",),
        files=("etc/openvpn/*.conf", "etc/openvpn/server/*.conf", "etc/openvpn/client/*.conf"),
        remediation=("set `[checks.tun] required = true` to check the device anyway",),
        code="not-needed",
        required_runs=True,  # required = true checks the device even without OpenVPN
    )

    def run(self, ctx: CheckContext) -> list[Finding]:
        # Imported here: the engine imports this module to validate a config section even
        # when the check is not selected.
        from preflight_checks.tun.facts import (
            TUN_MAJOR,
            TUN_MINOR,
            device_facts,
            enabled_openvpn_units,
            kernel_support,
            openvpn_configs,
            openvpn_package_version,
            tun_module_loaded,
        )
        from preflight_checks.tun.findings import (
            device_missing,
            device_wrong,
            kernel_phrase,
            no_kernel_support,
            ok_finding,
            probe_findings,
        )
        from preflight_checks.tun.probe import probe_if_allowed

        host = ctx.host
        binary = host.which("openvpn")
        package = openvpn_package_version(host)
        enabled_units = enabled_openvpn_units(host)
        configs = openvpn_configs(host, enabled_units)
        ctx.details["openvpn"] = {
            "binary": binary,
            "package": package,
            "configs": [c.to_dict() for c in configs],
            "enabled_units": sorted(enabled_units),
        }
        # No OpenVPN at all is the engine's `tun.not-needed` (TunCheck.applies).
        container = host.container
        ctx.details["container"] = container
        device = device_facts(host)
        ctx.details["device"] = device
        kernel = kernel_support(host)
        ctx.details["kernel"] = kernel.to_dict()
        ctx.details["module_loaded"] = tun_module_loaded(host)

        findings: list[Finding] = []
        device_ok = (
            device["exists"] is True
            and device["type"] == "char"
            and (device["major"], device["minor"]) == (TUN_MAJOR, TUN_MINOR)
        )
        # The instances that started without their interface: restarted once the device is.
        units = [config.unit for config in configs if config.enabled]
        if device["exists"] is False:
            findings.append(device_missing(container, units))
        elif device["exists"] is True and not device_ok:
            findings.append(device_wrong(device, units))

        probe = probe_if_allowed(host, ctx.options.get("probe", True), device_ok)
        ctx.details["probe"] = probe.to_dict()
        findings.extend(probe_findings(probe, container, kernel))

        if (
            kernel.supported is False
            and not any(f.code == "tun.no-kernel-support" for f in findings)
            and not probe.ok
        ):
            findings.append(no_kernel_support(kernel))

        if device["exists"] is None and not findings:
            findings.append(
                Finding(
                    "tun.device-unknown",
                    Status.SKIP,
                    f"{device['note']}: /dev/net/tun cannot be judged from it "
                    f"(kernel tun support: {kernel_phrase(kernel)})",
                    [
                        "run preflight on the host itself, or collect the snapshot with "
                        "`preflight collect` so it includes dev/net/tun"
                    ],
                )
            )
        if not findings:
            findings.append(ok_finding(kernel, probe))
        return findings
