"""The check API: what a built-in or third-party check implements.

A check reads the host through ``ctx.host``, returns findings, and never prints or exits::

    from preflight.check import Check, Finding, Status

    class HelloCheck(Check):
        id = "hello"
        title = "Hello file present"

        def run(self, ctx):
            if ctx.host.exists("etc/hello"):
                return [Finding("hello.ok", Status.PASS, "/etc/hello is present")]
            return [Finding("hello.missing", Status.FAIL, "/etc/hello is missing",
                            ["touch /etc/hello"])]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from preflight.model import Finding, Status

if TYPE_CHECKING:
    from collections.abc import Iterable

    from preflight.host import Host

__all__ = ["Check", "CheckContext", "Finding", "FindingDoc", "Option", "Status"]


@dataclass(frozen=True)
class Option:
    """One key a check accepts in its `[checks.<id>]` config section."""

    kind: type | tuple[type, ...]  # bool, str, int, float, or list (of str)
    default: Any
    help: str = ""


@dataclass(frozen=True)
class FindingDoc:
    """What `preflight explain` says about one finding code."""

    status: Status
    meaning: str
    fix: str = ""


@dataclass
class CheckContext:
    """What a check gets to work with for one run."""

    host: Host
    options: dict[str, Any]
    timeout: float
    check_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    summary: str | None = None

    @property
    def required(self) -> bool:
        """`required = true`: what the check then cannot find is a failure, not a skip."""
        return bool(self.options.get("required", False))

    def absent(self, code: str, message: str, remediation: list[str] | None = None) -> Finding:
        """The check's subject is not here (not installed, not applicable): a skip, or a
        failure when the check is `required`."""
        return Finding(
            code, Status.FAIL if self.required else Status.SKIP, message, remediation or []
        )


class Check:
    """Base class for checks. Subclasses set `id`, `title` and implement `run`."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: What the check looks at and why it matters (for `preflight explain`).
    description: ClassVar[str] = ""
    #: Every finding code the check can report (for `preflight explain`).
    findings: ClassVar[dict[str, FindingDoc]] = {}
    #: True when the check reports codes beyond `findings` (made from what it reads): a waiver's
    #: code is then not checked against `findings`.
    open_codes: ClassVar[bool] = False
    #: Config keys of `[checks.<id>]` besides `required`, which every check accepts.
    options: ClassVar[dict[str, Option]] = {}
    #: Paths (relative to the root, shell patterns allowed) that `preflight collect` copies, besides
    #: the files of the shared host facts (`preflight.facts.FACT_PATHS`), which it always copies.
    paths: ClassVar[tuple[str, ...]] = ()
    #: Paths whose presence matters but not their content (e.g. loadable modules): `preflight
    #: collect` stores them as empty files, so a snapshot stays small.
    markers: ClassVar[tuple[str, ...]] = ()

    def run(self, ctx: CheckContext) -> Iterable[Finding]:
        raise NotImplementedError

    @classmethod
    def all_options(cls) -> dict[str, Option]:
        merged = {"required": Option(bool, False, "run even where the subject is absent")}
        merged.update(cls.options)
        return merged
