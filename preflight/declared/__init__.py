"""Declared checks: checks written as `[[check]]` tables in TOML, no Python (contract section 9).

Each declared check becomes a normal `Check` class, so the runner, waivers, every report format,
`list`, `explain` and the exit codes treat it exactly like a built-in one. Its assertions run one
after another in the check's thread and share one cache of host facts (facts.py) with every other
declared check of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from preflight.check import Check, CheckContext, Finding, FindingDoc, Status
from preflight.declared.spec import Assertion, CheckSpec, load_all
from preflight.registry import EntryPoint, EntryPointInfo

if TYPE_CHECKING:
    from preflight.config import Config

ORIGIN_PREFIX = "declared:"


class DeclaredCheck(Check):
    """The base of every declared check; `spec` is set on each generated subclass."""

    spec: ClassVar[CheckSpec]

    def run(self, ctx: CheckContext) -> list[Finding]:
        from preflight.declared.facts import facts_of
        from preflight.declared.kinds import KIND_FUNCTIONS, Outcome

        spec = self.spec
        host = ctx.host
        facts = facts_of(host)
        findings: list[Finding] = []
        rows: list[dict[str, Any]] = []
        held = skipped = 0
        for assertion in spec.assertions:
            code = f"{spec.id}.{assertion.name}"
            if assertion.live_only and not host.is_live:
                outcome = Outcome(
                    assertion.name,
                    skip=f"{assertion.kind} assertions need the live host: not run under --root",
                )
            else:
                try:
                    outcome = KIND_FUNCTIONS[assertion.kind](assertion, facts, host)
                except Exception as exc:  # one broken assertion never stops the others
                    outcome = Outcome(assertion.name, error=f"{type(exc).__name__}: {exc}")
            finding, result = _finding(code, assertion, outcome)
            if finding is not None:
                findings.append(finding)
            held += result == "pass"
            skipped += result == "skip"
            row: dict[str, Any] = {
                "name": assertion.name,
                "kind": assertion.kind,
                "result": result,
                "expected": outcome.expected,
                "observed": outcome.observed,
            }
            if outcome.skip or outcome.error:
                row["reason"] = outcome.skip or outcome.error
            rows.append(row)
        ctx.details["source"] = spec.source
        ctx.details["assertions"] = rows
        total = len(spec.assertions)
        bad = [f for f in findings if f.status in (Status.FAIL, Status.WARN, Status.ERROR)]
        if not bad and held:
            note = f" ({skipped} skipped under --root)" if skipped else ""
            findings.append(
                Finding(f"{spec.id}.ok", Status.PASS, f"all {held} assertions hold{note}")
            )
        elif not bad:  # every assertion skipped (there is at least one)
            summary = f"all {total} assertions need the live host: not run under --root"
            findings[0] = replace(findings[0], summary=summary)
        elif len(bad) > 1:
            worst = next(f for f in bad if f.status == max(bad, key=_rank).status)
            summary = f"{len(bad)} of {total} assertions do not hold; {worst.message}"
            findings[0] = replace(findings[0], summary=summary)
        return findings


def _rank(finding: Finding) -> int:
    return {Status.FAIL: 3, Status.ERROR: 2, Status.WARN: 1}.get(finding.status, 0)


def _finding(code: str, assertion: Assertion, outcome: Any) -> tuple[Finding | None, str]:
    """The finding of one assertion (None when it holds), and its result word for details."""
    if outcome.skip:
        return Finding(code, Status.SKIP, f"{outcome.subject}: skipped: {outcome.skip}"), "skip"
    if outcome.error:
        message = f"{outcome.subject}: could not decide: {outcome.error}"
        fix = assertion.remediation or [
            "Run preflight as root on the host itself, or fix what the message names"
        ]
        return Finding(code, Status.ERROR, message, fix), "error"
    if outcome.holds:
        return None, "pass"
    message = f"{outcome.subject}: {'; '.join(outcome.problems)}"
    remediation = assertion.remediation or outcome.fixes or [_statement(assertion)]
    return Finding(code, assertion.status, message, list(remediation)), assertion.status.value


def _statement(assertion: Assertion) -> str:
    return f"Change the host so that it holds: {describe(assertion)}"


def describe(assertion: Assertion) -> str:
    """What an assertion requires, in one line (for explain and default remediation)."""
    if assertion.description:
        return assertion.description.strip().rstrip(".")
    import json

    parts = []
    for key, value in assertion.params.items():
        shown = getattr(value, "pattern", None) or getattr(value, "text", None)
        if shown is None:
            shown = f"{value:04o}" if key == "mode" else value
        parts.append(f"{key} = {json.dumps(shown)}")  # as written in the TOML file
    return f"{assertion.kind}: " + ", ".join(parts)


def _paths(spec: CheckSpec) -> tuple[str, ...]:
    """What `preflight collect` copies so the assertions can be judged under --root."""
    from preflight.declared.kinds import sysctl_path

    paths: list[str] = []
    for assertion in spec.assertions:
        kind, p = assertion.kind, assertion.params
        if kind == "file":
            paths.append(p["path"])
        elif kind == "sysctl":
            paths.append(sysctl_path(p["key"]))
        elif kind in ("user", "group"):
            paths += ["etc/passwd", "etc/group"]
        elif kind == "mount":
            paths.append("proc/self/mounts")
        elif kind == "kernel_module":
            paths.append("lib/modules/*/modules.builtin")
    return tuple(dict.fromkeys(p.lstrip("/") for p in paths))


def check_class(spec: CheckSpec) -> type[DeclaredCheck]:
    """A Check class for one declared check: id, title, the codes it can report, what it reads."""
    findings = {f"{spec.id}.ok": FindingDoc(Status.PASS, "Every assertion holds.")}
    for assertion in spec.assertions:
        fix = "; ".join(assertion.remediation) or (
            "the step the finding gives, derived from what differs (e.g. chmod, sysctl -w, "
            "apt-get install, service ... start)"
        )
        live = " Needs the live host: skipped under --root." if assertion.live_only else ""
        findings[f"{spec.id}.{assertion.name}"] = FindingDoc(
            assertion.status, f"It does not hold: {describe(assertion)}.{live}", fix
        )
    description = (spec.description + "\n\n" if spec.description else "") + (
        f"Declared in {spec.source} ({len(spec.assertions)} assertions); "
        "`preflight explain declared` documents the assertion kinds."
    )
    namespace = {
        "id": spec.id,
        "title": spec.title,
        "description": description,
        "findings": findings,
        "spec": spec,
        "paths": _paths(spec),
    }
    return type(f"Declared_{spec.id.replace('-', '_')}", (DeclaredCheck,), namespace)


@dataclass(frozen=True)
class DeclaredEntryPoint(EntryPoint):
    """An entry point whose check class is already built (from a spec, not imported)."""

    check: Any = field(default=None, compare=False)
    # Data, not third-party code: loaded in this process like a built-in (registry.load_many).
    in_process = True

    def load(self) -> Any:
        return self.check


def entries(cfg: Config, known: list[EntryPointInfo]) -> list[EntryPointInfo]:
    """The declared checks of the config and the drop-in folder, as registry entries; a
    malformed spec or an id of a check in `known` raises SpecError (exit 64)."""
    specs = load_all(cfg.check_tables, cfg.path, cfg.checks_dir, {entry.name for entry in known})
    out = []
    for spec in specs:
        origin = ORIGIN_PREFIX + spec.source
        point = DeclaredEntryPoint(spec.id, origin, check=check_class(spec))
        out.append(EntryPointInfo(spec.id, origin, point))
    return out


def explain_kinds() -> tuple[dict[str, Any], str]:
    """`preflight explain declared`: the assertion kinds, with an example of each, as a JSON
    document and as text."""
    from preflight.declared.docs import KIND_EXAMPLES, KINDS_TEXT

    doc = {
        "id": "declared",
        "title": "Declared checks: checks written in TOML, without Python",
        "kinds": [
            {"kind": kind, "summary": summary, "example": example}
            for kind, (summary, example) in KIND_EXAMPLES.items()
        ],
    }
    return doc, KINDS_TEXT
