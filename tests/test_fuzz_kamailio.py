"""Fuzzing the kamailio check's parsers: `kamailio -c` output, listen rows, expect entries,
tls.cfg, the config reader, the socket tables."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hostdata import (
    KAMAILIO_CHECK_STDERR,
    KAMAILIO_CHECK_STDOUT,
)
from hypothesis import assume, given
from hypothesis import strategies as st
from support.fuzz import (
    FUZZ,
    mutated,
)

from preflight.host import Host
from preflight_checks.kamailio import config as kamailio_config

# ---------------------------------------------------------------------------- kamailio
KAMAILIO_CFG = """#!KAMAILIO
#!define WITH_TLS
#!substdef "!MY_IP!192.0.2.10!g"
#!ifdef WITH_TLS
enable_tls=yes
tls_port_no=5061
#!endif
port=5060
listen=udp:MY_IP:5060
listen=tcp:[2001:db8::1]:5060 advertise 203.0.113.1:5060
listen=tls:(127.0.0.1, ::1):5061
listen=localhost
disable_tcp=no
/* a block
   comment */ mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tls.so" // trailing comment
loadmodule "db_mysql.so"
modparam("tls", "config", "/etc/kamailio/tls.cfg")
modparam("usrloc", "db_url", "mysql://kamailio:s3cretPW@localhost/kamailio")
include_file "extra.cfg"
import_file "/etc/kamailio/missing.cfg"
"""
TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
private_key = /etc/kamailio/kamailio-selfsigned.key
certificate = "/etc/kamailio/kamailio-selfsigned.pem"
ca_list = /etc/ssl/certs/ca-certificates.crt # a comment
"""


@FUZZ
@given(
    mutated([KAMAILIO_CHECK_STDOUT]),
    mutated([KAMAILIO_CHECK_STDERR]),
    st.one_of(st.none(), st.integers(-255, 255)),
)
def test_kamailio_check_output_parser_never_raises(
    stdout: str, stderr: str, code: int | None
) -> None:
    parse = kamailio_config.parse_check_output
    result = parse(code, stdout, stderr)
    assert result.ok == (code == 0)
    assert all(s.port >= 0 for s in result.sockets)
    assert "s3cretPW" not in " ".join(result.errors)


@FUZZ
@given(
    st.sampled_from(["udp", "tcp", "tls", "sctp"]),
    mutated(
        [
            "127.0.0.1:5060",
            "localhost [127.0.0.1]:5060",
            "::1:5060",
            ":::5060 advertise 203.0.113.1:5060",
            "[2001:db8::1]:5061",
        ]
    ),
)
def test_kamailio_listen_row_parser_never_raises(proto: str, text: str) -> None:
    assume(text.strip())
    sock = kamailio_config.parse_listen_row(proto, text)
    assert sock is None or (sock.proto == proto and isinstance(sock.port, int))


@FUZZ
@given(mutated(["udp:0.0.0.0:5060", "tcp:[::]:8080", "tls:192.0.2.1:5061", "wss:[::1]:443"]))
def test_kamailio_expect_entries_parse_or_are_rejected(text: str) -> None:
    sock = kamailio_config.parse_socket(text)
    assert sock is None or (0 < sock.port < 65536 and str(sock).count(":") >= 2)


@FUZZ
@given(mutated([TLS_CFG]))
def test_kamailio_tls_cfg_parser_never_raises(text: str) -> None:
    for key, path, where in kamailio_config.tls_files(text, "/etc/kamailio/tls.cfg"):
        assert key in ("private_key", "certificate", "ca_list") and path and where.line >= 1


@FUZZ
@given(st.text(max_size=200))
def test_masking_hides_every_url_password(noise: str) -> None:
    mask = kamailio_config.mask_secrets
    assume("@" not in noise and "://" not in noise)
    text = f"{noise} mysql://kamailio:s3cretPW@localhost/kamailio {noise}"
    assert "s3cretPW" not in mask(text)


@FUZZ
@given(
    st.lists(mutated(KAMAILIO_CFG.splitlines()), max_size=30),
    mutated([KAMAILIO_CFG]),
    st.booleans(),
)
def test_kamailio_config_parser_never_raises_and_stops_on_cycles(
    lines: list[str], extra: str, cycle: bool
) -> None:
    parse = kamailio_config.parse_config
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/etc/kamailio")
        Path(f"{root}/etc/kamailio/kamailio.cfg").write_text(
            "\n".join(lines) + '\ninclude_file "extra.cfg"\n', errors="surrogatepass"
        )
        tail = '\ninclude_file "kamailio.cfg"\n' if cycle else ""
        Path(f"{root}/etc/kamailio/extra.cfg").write_text(extra + tail, errors="surrogatepass")
        parsed = parse(Host(root), "etc/kamailio/kamailio.cfg")
    assert parsed is not None
    for sock in parsed.expected_sockets():
        assert 0 < sock.port < 65536
    assert len(parsed.files) <= 3


@pytest.mark.parametrize("value", ["\u00b2", "5\u00b2", "\u0665\u0660\u0666\u0660", "-1", "99999"])
def test_kamailio_ports_that_are_not_numbers_are_ignored(value: str) -> None:
    """Found by fuzzing: `port=\u00b2` passed str.isdigit() and crashed int()."""
    parse = kamailio_config.parse_config
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/etc/kamailio")
        Path(f"{root}/etc/kamailio/kamailio.cfg").write_text(
            f"port={value}\ntls_port_no={value}\nlisten=udp:192.0.2.1:{value}\n"
        )
        parsed = parse(Host(root), "etc/kamailio/kamailio.cfg")
    assert parsed is not None
    assert all(0 < s.port < 65536 for s in parsed.expected_sockets())
    row = kamailio_config.parse_listen_row("udp", f"127.0.0.1:{value}")
    assert row is None or row.port >= 0
