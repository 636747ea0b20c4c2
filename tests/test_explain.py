"""`preflight explain` documents every finding code a built-in check can report."""

from __future__ import annotations

import re

import pytest
from support.cli import REPO, run_preflight

BUILTIN = ("kernel", "tun", "puppet", "kamailio")


def codes_in_source(check_id: str) -> set[str]:
    """Finding codes written in the check's modules: `"<id>.<reason>"` literals, and the
    kamailio check's `report.add("<reason>", ...)`, which prefixes the id itself."""
    found = set()
    for path in sorted((REPO / "preflight_checks" / check_id).glob("*.py")):
        text = path.read_text()
        found |= set(re.findall(rf"""["']({check_id}\.[a-z][a-z-]+)["']""", text))
        found |= {f"{check_id}.{r}" for r in re.findall(r"""\.add\(\s*["']([a-z-]+)["']""", text)}
    return {code for code in found if not code.endswith((".py", ".rb", ".cfg", ".so", ".service"))}


@pytest.mark.parametrize("check_id", BUILTIN)
def test_explain_lists_every_code_the_check_can_report(check_id: str) -> None:
    run = run_preflight("explain", check_id)
    assert run.returncode == 0, run.stderr
    documented = set(re.findall(rf"^  ({check_id}\.[a-z-]+) \(", run.stdout, re.M))
    emitted = codes_in_source(check_id)
    assert len(emitted) >= 5, "the source scan must find the check's codes"
    assert emitted <= documented, f"not in `preflight explain {check_id}`: {emitted - documented}"
    # The engine's own error codes apply to every check and are explained with it.
    assert {f"{check_id}.{r}" for r in ("load-error", "crashed", "timeout")} <= documented


def declared_check(check_id: str) -> object:
    """The built-in check as the engine loads it."""
    from preflight import registry

    (entry,) = [e for e in registry.discover() if e.name == check_id]
    loaded = registry.load(entry)
    assert loaded.check is not None, loaded
    return loaded.check


@pytest.mark.parametrize("check_id", BUILTIN)
def test_explain_gives_each_codes_status_and_fix_and_each_option(check_id: str) -> None:
    check = declared_check(check_id)
    run = run_preflight("explain", check_id)
    assert run.returncode == 0, run.stderr
    findings = check.findings  # type: ignore[attr-defined]
    assert findings, f"{check_id} declares no findings"
    # The text is wrapped to the terminal: compare with white space folded.
    folded = " ".join(run.stdout.split())
    documented = {
        f["code"]: f
        for f in run_preflight("explain", check_id, "--format", "json").json()["findings"]
    }
    for code, doc in findings.items():
        status = getattr(doc.status, "value", doc.status)
        assert f"  {code} ({status})\n" in run.stdout, code
        assert documented[code]["fix"] == doc.fix and documented[code]["status"] == status
        if doc.fix:
            assert " ".join(doc.fix.split()) in folded, f"{code}: fix text missing"
    # Each option with its default, as the config file spells the key.
    for name in check.all_options():  # type: ignore[attr-defined]
        assert f"\n  {name} = " in run.stdout, name
