"""Issue 18 items 7 and 8: the kamailio check's readers are bounded and linear.

Each parser gets hostile input (long runs of spaces, one token repeated thousands of times) and
must answer within a small budget; the preprocessor's expansions stop at their bounds with a
finding instead of growing without end.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cli import codes, finding, report_of, run_preflight
from support.components import require
from support.kamailio import free_port, kamailio_binary, preflight_config
from support.snapshot import Snapshot

from preflight.host import Host
from preflight_checks.kamailio.config import (
    declared_listeners,
    listen_row,
    mask_secrets,
    parse_check_output,
    parse_config,
    parse_listen_row,
    parse_socket,
    tls_files,
)
from preflight_checks.kamailio.facts import parse_argv, read_socket_tables

BUDGET = 1.0  # seconds per input for all parsers together; each takes milliseconds
TOKENS = [
    "port=5060",
    "listen=",
    "listen=udp:",
    "loadmodule",
    'loadmodule "',
    "include_file",
    "import_file(",
    "mpath",
    "modparam(",
    'modparam("tls", "',
    'modparam("jsonrpcs", "transport", ',
    "#!define",
    "#!subst",
    "#!ifdef",
    "a.",
    "a://",
    "mysql://u:",
    '"',
    "(",
    "/*",
    "//",
    "=",
    ":",
    "[",
    "in config file ",
    " 0(1) ",
    "<core> [",
    "Listening on",
    "udp: ",
]


def hostile_texts(token: str, size: int = 30_000) -> list[str]:
    return [
        token + " " * size,  # `port=5060` + spaces: 112 s (3000 of them) in the old regex
        token + " " * size + "x",
        (token + " ") * (size // (len(token) + 1)),
        token * (size // len(token)) + "\n" + token * (size // len(token)),
        " " * size + token,
    ]


@pytest.mark.parametrize("token", TOKENS)
def test_every_parser_is_linear_on_hostile_lines(tmp_path: Path, token: str) -> None:
    config = tmp_path / "etc/kamailio/kamailio.cfg"
    config.parent.mkdir(parents=True)
    tables = tmp_path / "proc/net"
    tables.mkdir(parents=True)
    host = Host(str(tmp_path))
    for text in hostile_texts(token):
        config.write_text(text)
        for name in ("tcp", "udp"):
            (tables / name).write_text("  sl  local_address\n" + text + "\n")
        started = time.perf_counter()
        parse_config(host, "etc/kamailio/kamailio.cfg")
        parse_check_output(255, "Listening on\n" + text, text)
        mask_secrets(text)
        parse_socket(text)
        listen_row(text)
        parse_listen_row("udp", text)
        tls_files(text, "/etc/kamailio/tls.cfg")
        parse_argv(["kamailio", *text.split(" ", 2000)])
        read_socket_tables(host)
        elapsed = time.perf_counter() - started
        assert elapsed < BUDGET, f"{token!r}: {elapsed:.1f} s"


def test_assignment_with_3000_spaces_reads_the_port(snapshot: Snapshot) -> None:
    """The line that took 112 s: read quickly, and read right."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/kamailio/kamailio.cfg", "port=5070" + " " * 3000 + "\n")
    started = time.monotonic()
    run = run_preflight("check", "kamailio", "--format", "json", "--root", str(snapshot))
    assert time.monotonic() - started < 10
    (result,) = report_of(run)["checks"]
    assert set(result["details"]["expected"]) == {"udp:*:5070", "tcp:*:5070"}


# The pattern mask_secrets replaced: the oracle for what it must still mask.
_OLD_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@\"']*:)[^\s@/\"']*@")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab1.+-_:/@ \"'", max_size=40))
def test_mask_secrets_masks_what_the_old_pattern_masked(text: str) -> None:
    assert mask_secrets(text) == _OLD_URL_CREDENTIALS.sub(r"\1***@", text)


def test_mask_secrets_examples() -> None:
    assert mask_secrets("x .mysql://u:p@h y") == "x .mysql://u:***@h y"
    assert mask_secrets("redis://:pw@h and pg://a:b@c") == "redis://:***@h and pg://a:***@c"
    assert mask_secrets("1mysql://u:p@h") == "1mysql://u:p@h"


# ------------------------------------------------------------------ preprocessor bounds
SUBST_BOMB = '#!subst "/x/xx/g"\n' * 40 + 'alias="x.x"\n'


def _bomb_result(*args: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    run = run_preflight("check", "kamailio", "--format", "json", *args)
    elapsed = time.monotonic() - started
    (result,) = report_of(run)["checks"]
    return elapsed, result


def test_subst_bomb_in_a_snapshot_stops_with_a_finding(snapshot: Snapshot) -> None:
    """40 chained `#!subst "/x/xx/g"` in a 700-byte file would double a value 40 times
    (terabytes); the reader stops the expansion at its bound and says where."""
    text = SUBST_BOMB + "listen=udp:127.0.0.1:5060\n"
    assert len(text) <= 760
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/kamailio/kamailio.cfg", text)
    elapsed, result = _bomb_result("--root", str(snapshot))
    assert elapsed < 10
    bounded = finding(result, "kamailio.config-too-complex")
    assert "/etc/kamailio/kamailio.cfg:41" in bounded["message"]
    assert result["details"]["expected"] == ["udp:127.0.0.1:5060"]


def test_subst_bomb_on_the_live_host(tmp_path: Path) -> None:
    """The same file judged with the real `kamailio -c` (which itself stops at its buffer):
    the run finishes quickly, with the reader's finding beside Kamailio's verdict."""
    require("kamailio", kamailio_binary() is not None)
    port = free_port()
    config = tmp_path / "kamailio.cfg"
    config.write_text(SUBST_BOMB + f"listen=udp:127.0.0.1:{port}\nrequest_route {{ drop; }}\n")
    elapsed, result = _bomb_result("--config", str(preflight_config(tmp_path, config)))
    assert elapsed < 20
    assert result["details"]["resolved_by"] == "kamailio -c"
    assert "kamailio.config-too-complex" in codes(result)
    assert result["details"]["expected"] == [f"udp:127.0.0.1:{port}"]


def test_define_expansion_is_bounded(snapshot: Snapshot) -> None:
    """A 4 KiB #!define used 20,000 times on one line would be 80 MB: left unexpanded."""
    text = '#!define A "' + "B" * 4000 + '"\nserver_header="' + "A " * 20_000 + '"\n'
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write("etc/kamailio/kamailio.cfg", text)
    elapsed, result = _bomb_result("--root", str(snapshot))
    assert elapsed < 10
    assert (
        "/etc/kamailio/kamailio.cfg:2" in finding(result, "kamailio.config-too-complex")["message"]
    )


# ------------------------------------------------------------- port= against `kamailio -c`
# Each config is read by the best-effort reader (what `--root` uses) and by the real
# `kamailio -c`; both must name the same sockets. Kamailio 5.6 gives a listen= without a port the
# `port=` (`tls_port_no=` for tls) set above it, else the last one of the whole file, and puts the
# TLS socket of a listen= without a protocol on the next port.
PORT_CASES = {
    "port after listen": "listen=udp:127.0.0.1\nport=5071\n",
    "port before listen": "port=5071\nlisten=udp:127.0.0.1\n",
    "port between listens": "listen=udp:127.0.0.1\nport=5071\nlisten=tcp:127.0.0.1\n",
    "set above wins over a later port": "port=5072\nlisten=udp:127.0.0.1\nport=5071\n",
    "each listen its own port above": (
        "port=5072\nlisten=udp:127.0.0.1\nport=5071\nlisten=tcp:127.0.0.1\n"
    ),
    "unset above: the last port": (
        "listen=udp:127.0.0.1\nport=5072\nlisten=tcp:127.0.0.1\nport=5071\n"
    ),
    "two ports after": "listen=udp:127.0.0.1\nport=5072\nport=5071\n",
    "written port kept": "listen=udp:127.0.0.1:5080\nport=5071\n",
    "written port 0 is unset": "listen=udp:127.0.0.1:0\nport=5071\n",
    "port=0 resets": "port=5072\nport=0\nlisten=udp:127.0.0.1\n",
    "no protocol, port after": "listen=127.0.0.1\nport=5071\n",
    "no protocol, port above": "port=5072\nlisten=127.0.0.1\nport=5071\n",
    "address list": (
        "port=5072\nlisten=udp:(127.0.0.1, 127.0.0.2)\nport=5071\nlisten=udp:127.0.0.3\n"
    ),
    "ipv6": "port=5072\nlisten=[::1]\nport=5071\nlisten=udp:[::1]:5090\n",
    "defined port": "#!define P 5073\nport=P\nlisten=udp:127.0.0.1\n",
    "defined port after": "#!define P 5077\nlisten=udp:127.0.0.1\nport=P\n",
    "defined port in listen": "#!define P 5073\nlisten=udp:127.0.0.1:P\n",
    "advertise, written port": (
        "#!define P 5073\nlisten=udp:127.0.0.1:P advertise 192.0.2.1:5999\nport=5071\n"
    ),
    "advertise, port after": "listen=udp:127.0.0.1 advertise 192.0.2.1:5999\nport=5074\n",
    "advertise, port above": ("port=5072\nlisten=tcp:127.0.0.1 advertise 192.0.2.1\nport=5071\n"),
    "tls ignores port=": "enable_tls=yes\nport=5071\nlisten=tls:127.0.0.1\n",
    "tls_port_no after": "enable_tls=yes\nlisten=tls:127.0.0.1\ntls_port_no=5096\n",
    "tls_port_no above": (
        "enable_tls=yes\ntls_port_no=5092\nlisten=tls:127.0.0.1\ntls_port_no=5093\n"
        "listen=tls:127.0.0.2\n"
    ),
    "no protocol with tls, port and tls_port_no": (
        "enable_tls=yes\nport=5071\nlisten=127.0.0.1\ntls_port_no=5095\n"
    ),
    "no protocol with tls, tls_port_no above": (
        "enable_tls=yes\ntls_port_no=5095\nlisten=127.0.0.1\ntls_port_no=5096\n"
    ),
    "no protocol with tls, written port": "enable_tls=yes\nlisten=127.0.0.1:5080\n",
    "included file": 'port=5072\ninclude_file "more.cfg"\nport=5071\n',
}


@pytest.mark.parametrize("case", sorted(PORT_CASES))
def test_port_order_read_as_kamailio_c_resolves_it(tmp_path: Path, case: str) -> None:
    binary = kamailio_binary()
    require("kamailio", binary is not None)
    assert binary is not None
    folder = tmp_path / "etc/kamailio"
    folder.mkdir(parents=True)
    config = folder / "kamailio.cfg"
    config.write_text(PORT_CASES[case])
    (folder / "more.cfg").write_text("listen=udp:127.0.0.1\nlisten=tcp:127.0.0.1:5085\n")
    real = subprocess.run(
        [binary, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    resolved = parse_check_output(real.returncode, real.stdout, real.stderr)
    assert resolved.ok and resolved.sockets, real.stdout + real.stderr
    parsed = parse_config(Host(str(tmp_path)), "etc/kamailio/kamailio.cfg")
    assert parsed is not None
    assert {str(s) for s in parsed.expected_sockets()} == {str(s) for s in resolved.sockets}


def test_port_after_listen_in_a_snapshot(snapshot: Snapshot) -> None:
    """Under --root (nothing executed) the check expects what Kamailio would open."""
    snapshot.write("usr/sbin/kamailio", "", mode=0o755)
    snapshot.write(
        "etc/kamailio/kamailio.cfg",
        "listen=udp:127.0.0.1\nlisten=tcp:192.0.2.9 advertise 198.51.100.1\nport=5071\n",
    )
    run = run_preflight("check", "kamailio", "--format", "json", "--root", str(snapshot))
    (result,) = report_of(run)["checks"]
    assert set(result["details"]["expected"]) == {"udp:127.0.0.1:5071", "tcp:192.0.2.9:5071"}


def test_cdp_config_with_a_dtd_is_not_expanded(tmp_path: Path) -> None:
    """A Diameter peer config is host data: one with entity declarations (a billion laughs)
    is not parsed, so it declares nothing and costs nothing."""
    laughs = '<!ENTITY a0 "ha">' + "".join(
        f'<!ENTITY a{i} "&a{i - 1};&a{i - 1};">' for i in range(1, 30)
    )
    config = tmp_path / "etc/kamailio/kamailio.cfg"
    config.parent.mkdir(parents=True)
    config.write_text(
        'loadmodule "cdp.so"\nmodparam("cdp", "config_file", "/etc/kamailio/d.xml")\n'
    )
    xml = tmp_path / "etc/kamailio/d.xml"
    xml.write_text(
        f"<?xml version='1.0'?><!DOCTYPE DiameterPeer [{laughs}]>"
        '<DiameterPeer><Acceptor port="3868" bind="&a29;"/></DiameterPeer>'
    )
    started = time.perf_counter()
    parsed = parse_config(Host(str(tmp_path)), "etc/kamailio/kamailio.cfg")
    assert time.perf_counter() - started < BUDGET
    assert parsed is not None and parsed.cdp_acceptors == []
    xml.write_text('<DiameterPeer><acceptor port="3868" bind="127.0.0.1"/></DiameterPeer>')
    parsed = parse_config(Host(str(tmp_path)), "etc/kamailio/kamailio.cfg")
    assert parsed is not None and [str(s) for s in declared_listeners(parsed)] == [
        "tcp:127.0.0.1:3868"
    ]
