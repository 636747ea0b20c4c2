"""examples/declared/voip-droplet.toml runs verbatim, from --config and from a checks.d folder,
and judges a real Kamailio the way the real programs (ss, prlimit) see it."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from support.cli import REPO, check_of, finding, report_of, run_preflight
from support.components import require, require_command
from support.declared import drop_in_config, results, rows

from tests.kamailio_support import kamailio_binary, new_instance

EXAMPLE = REPO / "examples" / "declared" / "voip-droplet.toml"
NAMES = [
    "kamailio-package",
    "rtpengine-package",
    "kamailio-running",
    "sip-udp",
    "sip-tcp",
    "sip-tls",
    "kamailio-open-files",
    "rtpengine-running",
    "rtpengine-control",
    "rmem-max",
    "wmem-max",
    "ntp-synced",
    "tls-certificate",
    "tls-key-private",
    "tls-certificate-valid",
]


def test_the_example_runs_verbatim(tmp_path: Path) -> None:
    run = run_preflight("check", "voip-droplet", "--config", str(EXAMPLE), "-f", "json")
    result = check_of(report_of(run), "voip-droplet")
    assert [row["name"] for row in result["details"]["assertions"]] == NAMES
    assert result["details"]["source"] == str(EXAMPLE)
    # Every assertion was decided on this machine; none crashed.
    assert all(r in ("pass", "fail", "warn", "error") for r in results(result).values())
    assert not [f for f in result["findings"] if "Error:" in f["message"]]
    # Its remediation is the author's, verbatim.
    if results(result)["rmem-max"] == "warn":
        assert finding(result, "voip-droplet.rmem-max")["remediation"] == [
            "sysctl -w net.core.rmem_max=8388608",
            "echo 'net.core.rmem_max = 8388608' > /etc/sysctl.d/60-voip.conf",
        ]
    # As a drop-in file, the way the example's header says to install it.
    folder, config = drop_in_config(tmp_path, {"voip-droplet.toml": EXAMPLE.read_text()})
    listed = run_preflight("list", "-c", str(config))
    assert f"declared:{folder / 'voip-droplet.toml'}" in listed.stdout
    explained = run_preflight("explain", "voip-droplet", "-c", str(config))
    for name in NAMES:
        assert f"voip-droplet.{name} (" in explained.stdout


def test_the_example_judges_a_real_kamailio(tmp_path: Path) -> None:
    require("kamailio", kamailio_binary() is not None)
    require_command("prlimit")
    require_command("pgrep")
    instance = new_instance(tmp_path)
    text = EXAMPLE.read_text().replace("port = 5060", f"port = {instance.sip_port}")
    spec = tmp_path / "voip.toml"
    spec.write_text(text)
    argv = ["check", "voip-droplet", "--config", str(spec), "-f", "json"]
    before = check_of(report_of(run_preflight(*argv)), "voip-droplet")
    instance.start()
    try:
        during = check_of(report_of(run_preflight(*argv)), "voip-droplet")
        soft_limit = psutil.Process(instance.pid).rlimit(psutil.RLIMIT_NOFILE)[0]
        others = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "kamailio"]
    finally:
        instance.stop()
    if min(others) != instance.pid:
        pytest.skip("another Kamailio runs on this machine: pgrep -o would pick it")
    assert results(before)["sip-udp"] == "fail"
    assert "nothing listens" in finding(before, "voip-droplet.sip-udp")["message"]
    assert results(during)["sip-udp"] == "pass"
    assert results(during)["sip-tcp"] == "pass"
    assert rows(during)["sip-udp"]["observed"]["listening"] == [
        f"udp 127.0.0.1:{instance.sip_port} (kamailio)"
    ]
    assert results(during)["sip-tls"] == "warn"  # the test instance has no TLS listener
    # prlimit's answer for the running Kamailio, compared as the example's regex says.
    assert rows(during)["kamailio-open-files"]["observed"]["stdout"] == str(soft_limit)
    assert results(during)["kamailio-open-files"] == ("pass" if soft_limit >= 65536 else "fail")
