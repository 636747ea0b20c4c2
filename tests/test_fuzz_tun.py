"""Fuzzing the tun check's parsers: OpenVPN configs, /proc/misc, the kernel config."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import FUZZ, mutated, raw_bytes

from preflight.host import Host
from preflight_checks.tun import facts as tun_facts

# --------------------------------------------------------------------------------- tun
OPENVPN_CONF = """# OpenVPN server, Debian's sample layout
port 1194
proto udp
dev tun0
dev-type tun
ca /etc/openvpn/server/ca.crt
cert /etc/openvpn/server/server.crt
key /etc/openvpn/server/server.key  # keep this secret
dh none
server 10.8.0.0 255.255.255.0
keepalive 10 120
persist-tun
"""


@FUZZ
@given(
    st.lists(mutated([OPENVPN_CONF]), min_size=1, max_size=3),
    raw_bytes(["tun\n"]),
    raw_bytes(["CONFIG_TUN=m\n# CONFIG_TAP is not set\n"]),
)
def test_tun_config_parsers_never_raise(configs: list[str], misc: bytes, kconfig: bytes) -> None:
    openvpn_configs = tun_facts.openvpn_configs
    kernel_support = tun_facts.kernel_support
    with tempfile.TemporaryDirectory() as root:
        for index, text in enumerate(configs):
            folder = ("etc/openvpn", "etc/openvpn/server", "etc/openvpn/client")[index]
            os.makedirs(f"{root}/{folder}", exist_ok=True)
            Path(f"{root}/{folder}/vpn.conf").write_text(text, errors="surrogatepass")
        os.makedirs(f"{root}/proc/sys/kernel")
        os.makedirs(f"{root}/boot")
        Path(f"{root}/proc/sys/kernel/osrelease").write_text("6.1.0-26-amd64\n")
        Path(f"{root}/proc/misc").write_bytes(b" 57 " + misc)
        Path(f"{root}/boot/config-6.1.0-26-amd64").write_bytes(kconfig)
        host = Host(root)
        found = openvpn_configs(host)
        kernel_support(host)
    assert len(found) == len(configs)
    for config in found:
        assert config.dev is None or (config.dev and " " not in config.dev)


def test_tun_reads_only_dev_lines_of_a_real_openvpn_config() -> None:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/etc/openvpn/server")
        Path(f"{root}/etc/openvpn/server/office.conf").write_text(OPENVPN_CONF)
        (config,) = tun_facts.openvpn_configs(Host(root))
    assert (config.dev, config.dev_type, config.unit) == ("tun0", "tun", "openvpn-server@office")
