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
    from collections.abc import Callable, Iterable

    from preflight.host import Host

__all__ = ["AppliesWhen", "Check", "CheckContext", "Finding", "FindingDoc", "Option", "Status"]

# Where `commands` are looked for in a snapshot (Host.which), and so what `collect` marks.
COMMAND_FOLDERS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
SERVICE_FILES = (
    "etc/systemd/system/{}.service",
    "lib/systemd/system/{}.service",
    "usr/lib/systemd/system/{}.service",
    "etc/init.d/{}",
)


@dataclass(frozen=True)
class Option:
    """One key a check accepts in its `[checks.<id>]` config section."""

    kind: type | tuple[type, ...]  # bool, str, int, float, or list (of str)
    default: Any
    help: str = ""
    # What is wrong with a value of the right type (None: nothing): the engine makes it a
    # configuration error (exit 64) naming the file and key, before any check runs.
    problem: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class FindingDoc:
    """What `preflight explain` says about one finding code."""

    status: Status
    meaning: str
    fix: str = ""


class AppliesWhen:
    """What makes a check apply (sos style): any one of these present is enough. Where none is,
    the engine reports `<id>.<code>` with `message` and does not run the check: a skip, or a
    failure under `required = true` (unless `required_runs`: then the check runs anyway).

    A plain class, not a dataclass: every check module builds one at import, on the path of
    every run, and a dataclass costs ~0.8 ms to create."""

    __slots__ = (
        "message",
        "packages",
        "commands",
        "files",
        "services",
        "processes",
        "remediation",
        "code",
        "required_runs",
    )

    def __init__(
        self,
        message: str,  # the finding's message when nothing is there
        *,
        packages: tuple[str, ...] = (),  # installed packages (dpkg or rpm)
        commands: tuple[str, ...] = (),  # programs on PATH or in the standard folders
        files: tuple[str, ...] = (),  # root-relative shell patterns: any regular file matching
        services: tuple[str, ...] = (),  # a systemd unit or an init script of that name
        processes: tuple[str, ...] = (),  # a running process of that name (comm)
        remediation: tuple[str, ...] = (),
        code: str = "not-installed",
        required_runs: bool = False,
    ) -> None:
        self.message = message
        self.packages = tuple(packages)
        self.commands = tuple(commands)
        self.files = tuple(files)
        self.services = tuple(services)
        self.processes = tuple(processes)
        self.remediation = tuple(remediation)
        self.code = code
        self.required_runs = required_runs

    def present(self, host: Host) -> bool:
        """Whether anything declared is there (cheapest evidence first)."""
        return (
            any(host.which(name) for name in self.commands)
            or any(host.is_file(rel) for rel in self.service_paths())
            or any(host.is_file(rel) for pattern in self.files for rel in host.glob(pattern))
            or bool(self.packages and host.packages.find(names=self.packages))
            or any(not p.zombie for name in self.processes for p in host.processes.named(name))
        )

    def service_paths(self) -> tuple[str, ...]:
        return tuple(form.format(name) for name in self.services for form in SERVICE_FILES)

    def command_paths(self) -> tuple[str, ...]:
        return tuple(f"{folder}/{name}" for name in self.commands for folder in COMMAND_FOLDERS)


@dataclass
class CheckContext:
    """What a check gets to work with for one run."""

    host: Host
    options: dict[str, Any]
    timeout: float
    check_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)

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
    #: What makes the check apply; None: it always does. The files it names are added to
    #: `paths` (and the commands to `markers`), so a snapshot decides the same way.
    applies: ClassVar[AppliesWhen | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        applies = cls.__dict__.get("applies")
        if isinstance(applies, AppliesWhen):
            cls.paths = tuple(dict.fromkeys([*cls.paths, *applies.files, *applies.service_paths()]))
            cls.markers = tuple(
                dict.fromkeys(
                    [*cls.markers, *(p for p in applies.command_paths() if p not in cls.paths)]
                )
            )

    def not_applicable(self, ctx: CheckContext) -> Finding | None:
        """The engine's finding when nothing `applies` names is there; None: run the check."""
        applies = self.applies
        if applies is None or (applies.required_runs and ctx.required):
            return None
        if applies.present(ctx.host):
            return None
        return ctx.absent(
            f"{self.id}.{applies.code}", applies.message, self.absent_remediation(ctx)
        )

    def absent_remediation(self, ctx: CheckContext) -> list[str]:
        """The steps of the not-applicable finding (a check may tailor them to the host)."""
        return list(self.applies.remediation) if self.applies else []

    def run(self, ctx: CheckContext) -> Iterable[Finding]:
        raise NotImplementedError

    @classmethod
    def host_facts(cls, host: Host) -> dict[str, Any]:
        """What this check knows about the host beyond the engine's facts, for `preflight facts`
        (built-in checks only): merged into its JSON object, one level deep."""
        return {}

    @classmethod
    def all_options(cls) -> dict[str, Option]:
        merged = {"required": Option(bool, False, "run even where the subject is absent")}
        merged.update(cls.options)
        return merged
