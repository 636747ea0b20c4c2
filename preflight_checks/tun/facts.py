"""The static facts of the `tun` check: the /dev/net/tun node, the running kernel's tun support,
and OpenVPN's package, configs and enabled units.

Every fact is read through the Host and nothing is opened or asked of the kernel, so the same code
judges the live host and a snapshot (--root); the live probe is in tun_probe.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet

    from preflight.host import Host


DEVICE = "dev/net/tun"
TUN_MAJOR = 10  # the misc character-device major
TUN_MINOR = 200  # TUN_MINOR in include/linux/miscdevice.h

CONFIG_GZ_LIMIT = 1 << 20  # proc/config.gz is ~30 KiB compressed
CONFIG_TEXT_LIMIT = 8 << 20  # a distribution kernel's config is ~300 KiB
MODULE_SUFFIXES = ("", ".xz", ".zst", ".gz")

OPENVPN_CONFIG_DIRS = (
    # (folder, systemd template): where the Debian/Fedora unit files look for NAME.conf.
    ("etc/openvpn", "openvpn@"),
    ("etc/openvpn/server", "openvpn-server@"),
    ("etc/openvpn/client", "openvpn-client@"),
)


@dataclass
class OpenVPNConfig:
    path: str  # as the host names it: /etc/openvpn/server/NAME.conf
    unit: str
    dev: str | None
    dev_type: str | None
    dev_node: str | None
    enabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
        return dataclasses.asdict(self)


def openvpn_package_version(host: Host) -> str | None:
    """The installed openvpn package's version, or None."""
    package = host.packages.get("openvpn")
    return package.version if package is not None else None


_DIRECTIVE = re.compile(r"^\s*(dev|dev-type|dev-node)\s+(\S+)", re.M)


def openvpn_configs(
    host: Host, enabled_units: AbstractSet[str] = frozenset()
) -> list[OpenVPNConfig]:
    """The configs in the folders the systemd units read; `enabled_units` (from
    enabled_openvpn_units) marks the ones whose unit is enabled."""
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
            unit = f"{template}{name}"
            configs.append(
                OpenVPNConfig(
                    host.display(rel),
                    unit,
                    values.get("dev"),
                    values.get("dev-type"),
                    values.get("dev-node"),
                    unit in enabled_units,
                )
            )
    return configs


def enabled_openvpn_units(host: Host) -> set[str]:
    """OpenVPN units enabled through a symlink in a .wants folder, without `.service`."""
    units = set()
    for rel in host.glob("etc/systemd/system/*.wants/openvpn*"):
        name = rel.rsplit("/", 1)[1]
        units.add(name.removesuffix(".service"))
    return units


# (test, the name in details["device"]["type"], the phrase in messages)
FILE_TYPES = (
    (stat.S_ISCHR, "char", "a character device"),
    (stat.S_ISBLK, "block", "a block device"),
    (stat.S_ISREG, "regular", "a regular file"),
    (stat.S_ISDIR, "directory", "a directory"),
    (stat.S_ISFIFO, "fifo", "a FIFO"),
    (stat.S_ISSOCK, "socket", "a socket"),
)


def device_facts(host: Host) -> dict[str, Any]:
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
    facts["type"] = next((name for test, name, _ in FILE_TYPES if test(st.st_mode)), "other")
    if facts["type"] in ("char", "block"):
        facts["major"], facts["minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
    facts["mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
    facts["uid"], facts["gid"] = st.st_uid, st.st_gid
    facts["owner"] = host.users.user_name(st.st_uid)
    facts["group"] = host.users.group_name(st.st_gid)
    return facts


def tun_module_loaded(host: Host) -> bool | None:
    """Whether `tun` is in /proc/modules; None when the kernel has no loadable modules (the file
    is absent) or the file is unreadable."""
    loaded = host.loaded_modules
    return None if loaded is None else "tun" in loaded


def kernel_support(host: Host) -> KernelSupport:
    release = host.kernel_release
    support = KernelSupport(release, modules_dir=host.modules_dir)

    # 1. /proc/misc lists registered misc devices: tun is there when built in or loaded.
    misc = host.read_text("proc/misc", 64 * 1024)
    in_misc = (
        None if misc is None else any(line.split()[1:2] == ["tun"] for line in misc.splitlines())
    )
    support.sources["proc_misc"] = in_misc
    if in_misc:
        loaded = tun_module_loaded(host)
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
