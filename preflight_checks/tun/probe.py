"""The live probe of the `tun` check: ask the kernel for a transient interface as OpenVPN does.

It runs only on the live host with root / CAP_NET_ADMIN and a device node that is the tun device;
otherwise the result says why it did not run and the static facts decide.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight.facts.capabilities import CAP_NET_ADMIN
from preflight_checks.tun.facts import DEVICE

if TYPE_CHECKING:
    from preflight.host import Host


# <linux/if_tun.h>: _IOW('T', 202, int), and the flags of struct ifreq's ifr_flags.
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
IFREQ_SIZE = 40  # sizeof(struct ifreq) on Linux: 16-byte name + a 24-byte union
PROBE_NAME_PATTERN = "pfprobe%d"  # our own prefix, so the transient interface is recognisably ours


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


def probe_if_allowed(host: Host, enabled: bool, device_ok: bool) -> ProbeResult:
    """The probe's result, or why it did not run (disabled, a snapshot, no privilege, no device)."""
    if not enabled:
        return ProbeResult(False, "probe not run: disabled by `probe = false`")
    if not host.is_live:
        return ProbeResult(False, "probe not run: only on the live host (--root is not /)")
    net_admin = _has_net_admin(host)
    if not (host.is_root_user or net_admin):
        return ProbeResult(False, "probe not run: needs root / CAP_NET_ADMIN")
    if not device_ok:
        return ProbeResult(False, "probe not run: /dev/net/tun is missing or not the tun device")
    result = probe_tun(host, "/" + DEVICE)
    result.net_admin = net_admin
    return result


def probe_tun(host: Host, device_path: str) -> ProbeResult:
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
        if not host.exists(f"sys/class/net/{name}"):
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


def _has_net_admin(host: Host) -> bool:
    return host.capabilities.has(CAP_NET_ADMIN)
