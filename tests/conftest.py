"""pytest fixtures. The helpers live in tests/support/: import them from there. The re-exports
below are only for the tests still importing them from conftest (test_kamailio_parsers.py,
test_collect.py); drop them once those import from support."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.audit import Audit, run_audited
from support.cli import (
    IN_CI,
    NOBODY,
    PREFLIGHT,
    REPO,
    SCHEMA,
    Run,
    as_user,
    check_of,
    codes,
    finding,
    preflight_argv,
    preflight_env,
    report_of,
    run_preflight,
)
from support.components import (
    live_machine,
    require,
    require_command,
    require_nobody_can_run,
    require_root,
    world_readable_dir,
)
from support.kamailio import Instance as KamailioInstance
from support.kamailio import require_kamailio, stop_pid
from support.plugins import (
    AUTOMATION_PLUGINS,
    SCRIPTED_FINDINGS,
    SCRIPTED_FINDINGS_B,
    demo,
    distribution,
    plugin_site,
    script,
    scripted,
    scripted_env,
)
from support.snapshot import Snapshot

__all__ = [
    "AUTOMATION_PLUGINS",
    "Audit",
    "IN_CI",
    "NOBODY",
    "PREFLIGHT",
    "REPO",
    "Run",
    "SCHEMA",
    "SCRIPTED_FINDINGS",
    "SCRIPTED_FINDINGS_B",
    "Snapshot",
    "as_user",
    "check_of",
    "codes",
    "demo",
    "distribution",
    "finding",
    "live_machine",
    "plugin_site",
    "preflight_argv",
    "preflight_env",
    "report_of",
    "require",
    "require_command",
    "require_nobody_can_run",
    "require_root",
    "run_audited",
    "run_preflight",
    "script",
    "scripted",
    "scripted_env",
    "world_readable_dir",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "live_machine(what, available): the test judges this very machine (a Firecracker "
        "microVM with openvpn, kamailio, puppet installed); it requires `what` "
        "(skipped when missing, a failure under CI=true). Deselect with -m 'not live_machine'.",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("live_machine"):
        what, available = mark.args
        require(what, bool(available()))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder uid NOBODY can enter and read (not write)."""
    with world_readable_dir() as folder:
        yield folder


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    root = tmp_path / "host"
    root.mkdir()
    return Snapshot(root)


@pytest.fixture
def open_snapshot(open_dir: Path) -> Snapshot:
    """A snapshot that uid NOBODY can traverse and read."""
    root = open_dir / "host"
    root.mkdir()
    root.chmod(0o755)
    return Snapshot(root)


@pytest.fixture
def own_kamailio() -> Iterator[list[KamailioInstance]]:
    """Kamailio instances a test starts itself (support.kamailio); each is stopped by its pid
    afterwards, children included."""
    require_kamailio()
    started: list[KamailioInstance] = []
    yield started
    for instance in started:
        instance.stop()


@pytest.fixture
def tls_kamailio(own_kamailio: list[KamailioInstance]) -> list[KamailioInstance]:
    """As own_kamailio, for instances that load tls.so."""
    from support.kamailio import MODULES

    require("kamailio-tls-modules", os.path.exists(f"{MODULES}/tls.so"))
    return own_kamailio


@pytest.fixture
def started_pids() -> Iterator[list[int]]:
    """Kamailio main pids a test's remediation steps started; each is stopped by its pid."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        stop_pid(pid)


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    """A folder uid NOBODY owns (its home, say), inside a folder root owns; Kamailio installed
    (the tests that use it start one as that account)."""
    require_nobody_can_run()
    require_kamailio()
    with world_readable_dir("pf-kam-nobody-") as outer:
        home = outer / "home"
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        yield home
