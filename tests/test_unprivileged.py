"""The whole suite of checks as an unprivileged user (uid 65534) on the live machine.

preflight usually runs as root, but operators try it as themselves first, and a monitoring
agent may run it unprivileged. Then nothing may crash, results that do not need root must be the
same as root's, and what needs root must say so.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from support.cli import NOBODY, check_of, report_of, run_preflight
from support.components import live_machine, require_nobody_can_run, world_readable_dir

from preflight.host import Host

which = Host("/").which  # PATH and the sbin folders, as the check looks


@pytest.fixture(scope="module", autouse=True)
def _nobody_can_run_preflight() -> None:
    require_nobody_can_run()


def live_report(user: int | None) -> dict[str, Any]:
    run = run_preflight("check", "--format", "json", "--no-plugins", user=user, timeout=120)
    assert "internal error" not in run.stderr, run.stderr
    return report_of(run)


@pytest.fixture(scope="module")
def reports() -> tuple[dict[str, Any], dict[str, Any]]:
    return live_report(None), live_report(NOBODY)


def test_every_check_runs_unprivileged_without_a_crash(
    reports: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    as_root, as_nobody = reports
    ids = [c["id"] for c in as_nobody["checks"]]
    assert ids == [c["id"] for c in as_root["checks"]]
    assert {"kernel", "tun", "puppet", "kamailio"} <= set(ids)
    for check in as_nobody["checks"]:
        assert not check["code"].endswith((".crashed", ".timeout", ".load-error")), check
        for finding in check["findings"]:
            assert finding["message"] and "Traceback" not in finding["message"]
    # The host facts come from world-readable files: the same for both users.
    assert as_nobody["host"] == as_root["host"]


def test_checks_that_need_no_root_give_roots_answer(
    reports: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    as_root, as_nobody = reports
    root_by_id = {c["id"]: c for c in as_root["checks"]}
    for check in as_nobody["checks"]:
        if check["id"] in ("kernel", "puppet"):
            assert check["status"] == root_by_id[check["id"]]["status"], check["summary"]
            assert check["code"] == root_by_id[check["id"]]["code"]


@live_machine("openvpn installed (else the tun check does not apply)", lambda: which("openvpn"))
def test_what_needs_root_says_so(reports: tuple[dict[str, Any], dict[str, Any]]) -> None:
    as_root, as_nobody = reports
    tun_root = check_of(as_root, "tun")
    tun = check_of(as_nobody, "tun")
    assert tun_root["status"] != "skip", tun_root["summary"]
    # The functional probe needs root (or CAP_NET_ADMIN): the report says it did not run and
    # why, and the verdict then rests on the files alone.
    assert "needs root" in tun["summary"], tun["summary"]
    assert "needs root" not in tun_root["summary"]
    kamailio = check_of(as_nobody, "kamailio")
    if kamailio["status"] != "skip" and any(
        f["code"] == "kamailio.owners-unknown" for f in kamailio["findings"]
    ):
        assert "root" in json.dumps(kamailio["findings"])


def test_unreadable_config_is_a_usage_error_for_a_normal_user(open_dir: Path) -> None:
    cfg = open_dir / "preflight.toml"
    cfg.write_text('[preflight]\nfail_on = "fail"\n')
    cfg.chmod(0o600)
    run = run_preflight("check", "--config", str(cfg), "--no-plugins", user=NOBODY)
    assert run.returncode == 64 and run.stdout == ""
    assert str(cfg) in run.stderr and "permission denied" in run.stderr.lower()
    assert run.stderr.count("\n") == 1


def test_unprivileged_facts_and_collect_name_what_they_could_not_read() -> None:
    facts = run_preflight("facts", user=NOBODY)
    assert facts.returncode == 0, facts.stderr
    data = json.loads(facts.stdout)
    # /proc/1/environ is unreadable (even for root here): container stays unknown, not guessed.
    assert data["container"] == json.loads(run_preflight("facts").stdout)["container"]
    # A folder uid NOBODY can write to.
    with world_readable_dir("preflight-nobody-", mode=0o777) as shared_dir:
        tarball = shared_dir / "host.tar.gz"
        run = run_preflight("collect", str(tarball), "--no-plugins", user=NOBODY, timeout=120)
        assert run.returncode == 0, run.stderr
        assert tarball.stat().st_uid == NOBODY and (tarball.stat().st_mode & 0o077) == 0
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(".preflight-collect.json")
            assert member is not None
            manifest = json.load(member)
    # Process 1 is root's: its environment is unreadable for uid 65534 on any Linux.
    assert manifest["skipped"].get("proc/1/environ") == "permission denied"
