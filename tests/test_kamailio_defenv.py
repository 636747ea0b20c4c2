"""Review R4: a config that takes names from the environment (#!defenv and its forms).

Kamailio 5.6 reads them at start from its own environment (`KAM_SIP_IP=127.0.0.3 kamailio
-f ...`); `kamailio -c` run without that environment refuses the config ("env variable not
defined"). The check must judge it with exactly the variables those lines name, taken from the
running instance, and say "unknown" (never config-invalid) where that environment is unknown.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import NOBODY, codes, finding
from support.components import require_nobody_can_run, require_root, world_readable_dir
from support.kamailio import (
    Instance,
    check_kamailio,
    free_port,
    new_instance,
    preflight_config,
    require_kamailio,
    restarted_by,
)

DIRECTIVES = ["defenv SIPIP=KAM_SIP_IP", "defenvs SIPIP=KAM_SIP_IP", "trydefenv SIPIP=KAM_SIP_IP"]


@pytest.fixture
def own() -> Iterator[list[Instance]]:
    """Instances a test started; each is stopped by its main pid."""
    require_kamailio()
    started: list[Instance] = []
    yield started
    for instance in started:
        instance.stop()


def bound(addr: str, port: int) -> bool:
    """Whether something holds UDP `addr`:`port` within a few seconds (the kernel's word)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((addr, port))
            except OSError:
                return True
        time.sleep(0.05)
    return False


def env_instance(folder: Path, directive: str, extra: str = "") -> tuple[Instance, int]:
    """An instance whose extra UDP listener's address comes from KAM_SIP_IP."""
    port = free_port()
    instance = new_instance(folder, head=f"#!{directive}\n{extra}", body=f"listen=udp:SIPIP:{port}")
    return instance, port


@pytest.mark.parametrize("directive", DIRECTIVES)
def test_instance_started_with_the_variable_passes_and_restarts_with_it(
    own: list[Instance], tmp_path: Path, directive: str
) -> None:
    """Started as `KAM_SIP_IP=127.0.0.3 kamailio ...` (a private environment): the check runs
    `kamailio -c` with that variable, expects the socket on 127.0.0.3 and passes; after a
    config change its restart step, pasted in a shell without the variable, brings the
    instance back on 127.0.0.3."""
    require_root()
    assert "KAM_SIP_IP" not in os.environ
    instance, port = env_instance(tmp_path, directive)
    instance.env = {"KAM_SIP_IP": "127.0.0.3"}
    own.append(instance)
    pid = instance.start()
    assert pid is not None
    toml = str(preflight_config(tmp_path, instance.config))
    # The truth: without the variable Kamailio refuses the config (the try form: the name
    # stays unresolved), with it the socket is on 127.0.0.3.
    bare = subprocess.run(
        ["/usr/sbin/kamailio", "-c", "-f", str(instance.config)], capture_output=True, text=True
    )
    assert bare.returncode != 0, bare.stderr
    code, result = check_kamailio("--config", toml)
    assert code == 0, result
    assert result["details"]["resolved_by"] == "kamailio -c"
    assert f"udp:127.0.0.3:{port}" in result["details"]["expected"]
    assert bound("127.0.0.3", port)
    time.sleep(1.1)  # start times are whole clock ticks after a boot time in whole seconds
    with open(instance.config, "a") as config:
        config.write("# changed\n")
    code, result = check_kamailio("--config", toml)
    assert "kamailio.config-changed" in codes(result), result
    step = finding(result, "kamailio.config-changed")["remediation"][-1]
    assert step.count("KAM_SIP_IP=127.0.0.3 ") == 2, step  # the check and the start
    with restarted_by(step, instance.config, pid, instance.ws_port) as new:
        assert bound("127.0.0.3", port)
        code, result = check_kamailio("--config", toml)
        assert code == 0, result
        assert result["details"]["pid"] == new


def test_without_an_instance_the_config_is_unknown_not_invalid(tmp_path: Path) -> None:
    """No instance shows the environment the config is started with: `kamailio -c` is not run
    (it would refuse the config for our environment) and the verdict on it is unknown."""
    require_kamailio()
    instance, _ = env_instance(tmp_path, "defenv SIPIP=KAM_SIP_IP")
    code, result = check_kamailio("--config", str(preflight_config(tmp_path, instance.config)))
    found = codes(result)
    assert "kamailio.config-invalid" not in found, result
    unknown = finding(result, "kamailio.config-env-unknown")
    assert unknown["status"] == "warn"
    assert "KAM_SIP_IP" in unknown["message"] and "unknown" in unknown["message"]


def test_a_value_that_is_not_plain_is_not_passed(own: list[Instance], tmp_path: Path) -> None:
    """A variable whose value has a control character (it names nothing Kamailio binds, so
    Kamailio starts): not handed to `kamailio -c`, and the config is unknown, not invalid."""
    require_root()
    instance, _ = env_instance(tmp_path, "defenv SIPIP=KAM_SIP_IP", "#!defenv BANNER=KAM_BANNER\n")
    instance.env = {"KAM_SIP_IP": "127.0.0.3", "KAM_BANNER": "a\tb"}
    own.append(instance)
    assert instance.start() is not None
    code, result = check_kamailio("--config", str(preflight_config(tmp_path, instance.config)))
    assert "kamailio.config-invalid" not in codes(result), result
    unknown = finding(result, "kamailio.config-env-unknown")
    assert "KAM_BANNER" in unknown["message"] and "not plain" in unknown["message"]


def test_non_root_run_says_unknown_not_invalid(own: list[Instance]) -> None:
    """As an unprivileged user, root's instance's environment cannot be read: the config that
    needs it is not judged by `kamailio -c` (it would refuse it for our environment), never
    config-invalid, and nothing fails."""
    require_root()
    require_nobody_can_run()
    with world_readable_dir("pf-kam-defenv-") as folder:
        instance, _ = env_instance(folder, "defenv SIPIP=KAM_SIP_IP")
        instance.env = {"KAM_SIP_IP": "127.0.0.3"}
        own.append(instance)
        assert instance.start() is not None
        toml = str(preflight_config(folder, instance.config))
        _code, result = check_kamailio("--config", toml, user=NOBODY)
    assert "kamailio.config-invalid" not in codes(result), result
    assert result["status"] != "fail", result
    assert result["details"]["resolved_by"] == "best effort"


@pytest.mark.parametrize(
    "directive", [*DIRECTIVES, "defenv KAM_SIP_IP", "!!defenv SIPIP=KAM_SIP_IP"]
)
def test_reader_takes_the_value_from_the_instance_environment(
    tmp_path: Path, directive: str
) -> None:
    """The best-effort reader (used where `kamailio -c` cannot run) resolves the name as the
    start does, from the instance's environment; without one the name stays unresolved."""
    from preflight.host import Host
    from preflight_checks.kamailio.config import parse_config

    name = directive.split()[1].partition("=")[0]
    line = directive if directive.startswith("!!") else f"#!{directive}"
    (tmp_path / "k.cfg").write_text(f"{line}\nlisten=udp:{name}:5080\n")
    host = Host(str(tmp_path))
    parsed = parse_config(host, "k.cfg", environ={"KAM_SIP_IP": "127.0.0.3", "OTHER": "x"})
    assert parsed is not None
    assert [str(s) for s in parsed.expected_sockets()] == ["udp:127.0.0.3:5080"]
    assert [use[0] for use in parsed.env_uses] == ["KAM_SIP_IP"]
    unknown = parse_config(host, "k.cfg")
    assert unknown is not None and unknown.expected_sockets() == []
