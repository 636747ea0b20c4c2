"""Issue 13 item 4: sockets Kamailio modules open besides SIP are declared, not unexpected.

Each module runs in a real Kamailio 5.6 on 127.0.0.1 high ports; what it really binds is read
from the kernel (`ss`), and the check, run against the live instance, must classify exactly that:
cdp's Diameter Acceptors, jsonrpcs' UDP datagram transport; sipcapture and xhttp open no TCP/UDP
socket of their own. A socket the configuration no longer declares is still reported.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import codes, finding, report_of, run_preflight
from support.components import require, require_root
from support.kamailio import (
    MODULES,
    Instance,
    free_port,
    kamailio_binary,
    new_instance,
    preflight_config,
    restarted_by,
    wait_listening,
)


@pytest.fixture
def own() -> Iterator[list[Instance]]:
    """Instances a test started; each is stopped by its main pid."""
    require("kamailio", kamailio_binary() is not None)
    require("kamailio-websocket-modules", os.path.exists(f"{MODULES}/websocket.so"))
    require_root()  # which process holds a socket is visible to root only
    started: list[Instance] = []
    yield started
    for instance in started:
        instance.stop()


def check(folder: Path, config: Path) -> tuple[int, dict[str, Any]]:
    run = run_preflight(
        "check", "kamailio", "--format", "json", "--config", str(preflight_config(folder, config))
    )
    (result,) = report_of(run)["checks"]
    return run.returncode, result


def bound_by(pid: int, port: int, transport: str) -> list[str]:
    """`ss`'s local addresses for `port` held by the Kamailio tree of `pid` (the truth)."""
    flag = "-tlnp" if transport == "tcp" else "-ulnp"
    rows = subprocess.run(["ss", "-H", flag], capture_output=True, text=True, check=True)
    return [
        line.split()[3]
        for line in rows.stdout.splitlines()
        if line.split()[3].endswith(f":{port}") and "kamailio" in line
    ]


def start(own: list[Instance], folder: Path, body: str) -> Instance:
    instance = new_instance(folder, body=textwrap.dedent(body))
    own.append(instance)
    instance.start()
    return instance


def diameter_config(path: Path, acceptors: list[str]) -> None:
    """A cdp peer config. One <Peer> is there because cdp 5.6 forks one process more than it
    registers without peers, and Kamailio then refuses to fork its TCP main process."""
    path.write_text(
        textwrap.dedent("""\
            <?xml version="1.0" encoding="UTF-8"?>
            <DiameterPeer FQDN="pcscf.test.local" Realm="test.local" Vendor_Id="10415"
                Product_Name="CDiameterPeer" AcceptUnknownPeers="1" DropUnknownOnDisconnect="1"
                Tc="30" Workers="2" QueueLength="8">
            """)
        + "".join(f"  {a}\n" for a in acceptors)
        + '  <Peer FQDN="hss.test.local" Realm="test.local" port="9"/>\n'
        + '  <Auth id="16777216" vendor="10415"/>\n</DiameterPeer>\n'
    )


def test_cdp_acceptors_are_declared_and_a_dropped_one_is_unexpected(
    own: list[Instance], tmp_path: Path
) -> None:
    require("kamailio-ims-modules (cdp)", os.path.exists(f"{MODULES}/cdp.so"))
    bound, wildcard = free_port(), free_port()
    xml = tmp_path / "diameter.xml"
    diameter_config(
        xml, [f'<Acceptor port="{bound}" bind="127.0.0.1"/>', f'<acceptor port="{wildcard}"/>']
    )
    instance = start(
        own,
        tmp_path,
        f"""\
        loadmodule "cdp.so"
        modparam("cdp", "config_file", "{xml}")
        """,
    )
    assert wait_listening(bound) and wait_listening(wildcard)
    # What cdp really opens: its bind address, and without one the IPv4 wildcard (the IPv6 one
    # fails beside it on a dual-stack host, which cdp logs and ignores).
    assert bound_by(instance.pid, bound, "tcp") == [f"127.0.0.1:{bound}"]
    assert bound_by(instance.pid, wildcard, "tcp") in ([f"0.0.0.0:{wildcard}"], [f"*:{wildcard}"])
    code, result = check(tmp_path, instance.config)
    assert code == 0, result
    assert "kamailio.listener-unexpected" not in codes(result)
    assert set(result["details"]["declared_listeners"]) == {
        f"tcp:127.0.0.1:{bound}",
        f"tcp:*:{wildcard}",
    }

    # The wildcard acceptor is removed from the file while Kamailio still holds it: an
    # undeclared socket, reported.
    diameter_config(xml, [f'<Acceptor port="{bound}" bind="127.0.0.1"/>'])
    code, result = check(tmp_path, instance.config)
    assert code == 1, result
    unexpected = finding(result, "kamailio.listener-unexpected")
    assert f"tcp:0.0.0.0:{wildcard}" in unexpected["message"]
    assert [c for c in codes(result) if c == "kamailio.listener-unexpected"] == [
        "kamailio.listener-unexpected"
    ]


@pytest.mark.parametrize(("transport", "opens"), [(None, True), ("1", False), ("6", True)])
def test_jsonrpcs_datagram_socket_is_declared(
    own: list[Instance], tmp_path: Path, transport: str | None, opens: bool
) -> None:
    """jsonrpcs binds its UDP dgram_socket when its datagram transport is on (the default, 0
    or bit 4 of `transport`); with `transport` 1 (HTTP, over xhttp) it opens nothing."""
    require("jsonrpcs", os.path.exists(f"{MODULES}/jsonrpcs.so"))
    port = free_port()
    setting = f'modparam("jsonrpcs", "transport", {transport})' if transport else ""
    instance = start(
        own,
        tmp_path,
        f"""\
        loadmodule "jsonrpcs.so"
        {setting}
        modparam("jsonrpcs", "fifo_name", "{tmp_path}/run/rpc.fifo")
        modparam("jsonrpcs", "dgram_socket", "udp:127.0.0.1:{port}")
        """,
    )
    assert wait_listening(port, "udp", timeout=3 if opens else 1) is opens
    assert bound_by(instance.pid, port, "udp") == ([f"127.0.0.1:{port}"] if opens else [])
    code, result = check(tmp_path, instance.config)
    assert code == 0, result
    assert "kamailio.listener-unexpected" not in codes(result)
    declared = result["details"].get("declared_listeners", [])
    assert (f"udp:127.0.0.1:{port}" in declared) is opens


def test_sipcapture_and_xhttp_open_no_socket_of_their_own(
    own: list[Instance], tmp_path: Path
) -> None:
    """sipcapture's raw IPIP capture opens a raw socket (no TCP/UDP table lists it) and HEP
    arrives on the SIP listen= sockets; xhttp answers on the SIP tcp listen=. The check finds
    every socket of the instance expected, none unexpected."""
    require("sipcapture", os.path.exists(f"{MODULES}/sipcapture.so"))
    database = tmp_path / "db"
    database.mkdir()
    (database / "version").write_text("version:int table_name:str\nsip_capture:1\n")
    instance = start(
        own,
        tmp_path,
        f"""\
        loadmodule "db_text.so"
        loadmodule "sipcapture.so"
        modparam("sipcapture", "db_url", "text://{database}")
        modparam("sipcapture", "capture_on", 1)
        modparam("sipcapture", "hep_capture_on", 1)
        modparam("sipcapture", "raw_ipip_capture_on", 1)
        modparam("sipcapture", "raw_socket_listen", "127.0.0.1:{free_port()}")
        """,
    )
    raw = subprocess.run(["ss", "-H", "-wlnp"], capture_output=True, text=True, check=True)
    capture = [row for row in raw.stdout.splitlines() if row.split()[3] == "127.0.0.1:4"]
    pids = [instance.pid, *instance.children]
    # The IPIP capture socket (protocol 4) is really there, held by this instance.
    assert any(f"pid={pid}," in row for row in capture for pid in pids), raw.stdout
    code, result = check(tmp_path, instance.config)
    assert code == 0, result
    assert set(result["details"]["actual"]) == {
        f"udp:127.0.0.1:{instance.sip_port}",
        f"tcp:127.0.0.1:{instance.sip_port}",
        f"tcp:127.0.0.1:{instance.ws_port}",
    }


# Each module socket as a name its module refuses at start, and the IP form it works with.
NAME_FORMS = {
    "ctl binrpc": (
        'modparam("ctl", "binrpc", "tcp:{addr}:{port}")',
        "tcp",
        "bad address localhost",
    ),
    "jsonrpcs dgram_socket": (
        'loadmodule "jsonrpcs.so"\nmodparam("jsonrpcs", "transport", 4)\n'
        'modparam("jsonrpcs", "dgram_socket", "udp:{addr}:{port}")',
        "udp",
        "failed to resolve localhost",
    ),
}


@pytest.mark.parametrize("case", list(NAME_FORMS))
def test_module_socket_named_localhost_is_fixed_before_the_restart(
    own: list[Instance], tmp_path: Path, case: str
) -> None:
    """A running instance whose ctl (or jsonrpcs) socket is then written as localhost:
    `kamailio -c` passes, the real start fails. The check names the modparam and the start's
    error, its steps (the edit first, the one restart last) pasted verbatim bring Kamailio back
    on the IP form, and the check passes again."""
    template, transport, start_error = NAME_FORMS[case]
    port = free_port()
    instance = start(own, tmp_path, template.format(addr="127.0.0.1", port=port))
    assert wait_listening(port, transport), instance.log()
    pid = instance.pid
    code, result = check(tmp_path, instance.config)
    assert code == 0, result

    config = instance.config
    config.write_text(config.read_text().replace(f"127.0.0.1:{port}", f"localhost:{port}"))
    # The truth: kamailio -c accepts the name form, a real start of it fails.
    assert (
        subprocess.run(["/usr/sbin/kamailio", "-c", "-f", str(config)], check=False).returncode == 0
    )
    # A trial start on ports and a ctl socket of its own (the instance keeps running).
    trial = tmp_path / "trial.cfg"
    text = config.read_text().replace(str(instance.rundir / "ctl"), str(tmp_path / "trial.ctl"))
    for old in (instance.sip_port, instance.ws_port):
        text = text.replace(str(old), str(free_port()))
    trial.write_text(text)
    (tmp_path / "trial-run").mkdir()
    started = subprocess.run(
        [
            "/usr/sbin/kamailio",
            "-DD",
            "-E",
            "-f",
            str(trial),
            "-P",
            str(tmp_path / "t.pid"),
            "-Y",
            str(tmp_path / "trial-run"),
            "-m",
            "16",
            "-M",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert started.returncode != 0 and start_error in started.stderr, started.stderr[-2000:]

    code, result = check(tmp_path, instance.config)
    assert code == 2, result
    bad = finding(result, "kamailio.module-address-invalid")
    assert bad["status"] == "fail"
    line = next(
        n for n, text in enumerate(config.read_text().splitlines(), 1) if "localhost" in text
    )
    assert f"{config}:{line}" in bad["message"] and start_error in bad["message"], bad
    steps = [step for found in result["findings"] for step in found["remediation"]]
    restarts = [step for step in steps if f"kill {pid} " in step]
    assert restarts == [steps[-1]], steps
    assert steps.index(bad["remediation"][0]) < len(steps) - 1
    fix = bad["remediation"][0]
    assert subprocess.run(["sh", "-c", fix], check=False).returncode == 0
    assert f"127.0.0.1:{port}" in config.read_text()
    with restarted_by(steps[-1], config, pid, instance.sip_port, instance.ws_port) as new:
        assert wait_listening(port, transport)
        code, result = check(tmp_path, instance.config)
        assert code == 0, result
        assert result["details"]["pid"] == new
