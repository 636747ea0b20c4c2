"""Command line: `preflight [check|list|explain|facts] ...` (contract section 1)."""

from __future__ import annotations

import json
import math
import sys
import time
from enum import Enum
from typing import Annotated, Any, NoReturn, Optional

import typer

from preflight import __version__
from preflight.errors import UsageError
from preflight.report import EXIT_ERROR, EXIT_USAGE
from preflight.reporters import FORMATS
from preflight.stdout import emit, guard_standard_fds
from preflight.suggest import did_you_mean

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Host preflight and drift checker. Without a command: `preflight check`.",
)

COMMANDS = ("check", "list", "explain", "facts", "collect")


# typer needs an Enum for the choices; the names come from the reporters package, whose
# __init__ imports no reporter module.
Format = Enum("Format", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]


class ListFormat(str, Enum):
    human = "human"
    json = "json"


class FailOn(str, Enum):
    warn = "warn"
    fail = "fail"


def _version(value: bool) -> None:
    if value:
        print(f"preflight {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Host preflight and drift checker."""


RootOpt = Annotated[
    str, typer.Option("--root", metavar="PATH", help="Read the host from this directory.")
]
ConfigOpt = Annotated[
    Optional[str], typer.Option("--config", "-c", metavar="PATH", help="TOML config file.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
# Longer than any sensible check or wait, short enough that deadlines stay ordinary numbers.
MAX_SECONDS = 86400.0


def _seconds(minimum: float) -> Any:
    """A click callback: a finite number of seconds in [minimum, MAX_SECONDS]."""

    def validate(value: float) -> float:
        if not math.isfinite(value) or not minimum <= value <= MAX_SECONDS:
            raise typer.BadParameter(
                f"{value!r} is not a number of seconds from {minimum:g} to {MAX_SECONDS:g}"
            )
        return value

    return validate


TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        callback=_seconds(0.1),
        help="Seconds per check (and per plugin import).",
    ),
]


@app.command("check")
def check_command(
    checks: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Check ids to run (default: every loaded check).",
            show_default=False,
            metavar="CHECK...",
        ),
    ] = None,
    fmt: Annotated[
        Optional[Format],
        typer.Option("--format", "-f", help="Report format (default human).", show_default=False),
    ] = None,
    output: Annotated[
        Optional[str],
        typer.Option(
            "--output", "-o", metavar="PATH", help="Write the report to this file atomically."
        ),
    ] = None,
    reports: Annotated[
        Optional[list[str]],
        typer.Option(
            "--report",
            metavar="FORMAT[:PATH]",
            help="A report of this run (repeatable): to PATH atomically, or stdout without "
            "PATH or with -. Replaces -f/-o.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    root: RootOpt = "/",
    fail_on: Annotated[
        Optional[FailOn],
        typer.Option("--fail-on", help="Lowest status that makes the exit code non-zero."),
    ] = None,
    timeout: TimeoutOpt = 10.0,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            callback=_seconds(0.0),
            metavar="SECONDS",
            help="Re-run checks that did not pass for up to this long.",
        ),
    ] = 0.0,
    no_plugins: Annotated[bool, typer.Option("--no-plugins", help="Built-in checks only.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Exit code only.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour codes.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Run checks and print a report."""
    import signal

    from preflight import reports as reports_mod
    from preflight import session
    from preflight.isolation import STOP_SIGNALS

    targets = reports_mod.plan_reports(reports or [], fmt.value if fmt else None, output)
    reports_mod.check_destinations(targets)
    started = time.perf_counter()
    plan, cfg = session.plan(checks or [], config, no_plugins, root, timeout)
    effective_fail_on = fail_on.value if fail_on is not None else cfg.fail_on
    try:
        report = session.execute(plan, cfg, root, timeout, wait, effective_fail_on, started)
    except Exception as exc:  # a bug in preflight itself: still one report, exit 3
        if debug:
            raise
        report = session.failure_report(root, effective_fail_on, exc, started)
    if debug:
        _print_tracebacks(report)
    try:
        texts = reports_mod.render_all(report, targets, no_color, quiet)
    except Exception as exc:  # a reporter bug: report that instead of printing nothing
        if debug:
            raise
        report = session.failure_report(root, effective_fail_on, exc, started)
        texts = reports_mod.render_all(report, targets, no_color, quiet)
    # From here on a stop signal waits: the reports are delivered whole, with their exit code,
    # or (signal before this point) not at all.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    reports_mod.write_all(targets, texts)
    raise typer.Exit(report.exit_code)


@app.command("list")
def list_command(
    fmt: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.human,
    no_plugins: Annotated[bool, typer.Option("--no-plugins", help="Built-in checks only.")] = False,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Every loaded check: id, title and origin."""
    from preflight import session
    from preflight.text import printable

    rows = session.list_checks(config, no_plugins, timeout)
    if fmt is ListFormat.json:
        emit(json.dumps(rows, indent=2) + "\n")
        return
    # Titles, origins and errors come from installed distributions: data, not terminal codes.
    rows = [{key: printable(str(value)) for key, value in row.items()} for row in rows]
    width = max([len(r["id"]) for r in rows] + [2])
    title_width = max([len(r["title"]) for r in rows] + [5])
    lines = [f"{'ID':<{width}}  {'TITLE':<{title_width}}  ORIGIN"]
    for row in rows:
        line = f"{row['id']:<{width}}  {row['title']:<{title_width}}  {row['origin']}"
        if row.get("error"):
            line += f"  (failed to load: {row['error']})"
        lines.append(line)
    emit("\n".join(lines) + "\n")


@app.command("explain")
def explain_command(
    check: Annotated[str, typer.Argument(help="A check id.", metavar="CHECK")],
    fmt: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.human,
    no_plugins: Annotated[bool, typer.Option("--no-plugins", help="Built-in checks only.")] = False,
    config: ConfigOpt = None,
) -> None:
    """What a check looks at, why it matters, and every finding it can report."""
    import shutil

    from preflight import session
    from preflight.text import printable

    width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    doc, text = session.explain(check, config, no_plugins, width - 1)
    if fmt is ListFormat.json:
        emit(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        # Plugin titles and descriptions are data: no terminal codes.
        emit(printable(text, keep_newlines=True))


@app.command("facts")
def facts_command(root: RootOpt = "/", config: ConfigOpt = None) -> None:
    """The host facts the checks use, as one JSON object."""
    from preflight import config as config_mod
    from preflight import session

    config_mod.load(config)  # a broken config is reported the same way everywhere
    emit(json.dumps(session.facts(root), indent=2, default=str) + "\n")


@app.command("collect")
def collect_command(
    file: Annotated[
        Optional[str],
        typer.Argument(
            help="The snapshot tarball to write, e.g. host.tar.gz.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    root: RootOpt = "/",
    config: ConfigOpt = None,
    print_script: Annotated[
        bool,
        typer.Option(
            "--print-script", help="Print a POSIX sh script that collects the same files."
        ),
    ] = False,
    no_plugins: Annotated[bool, typer.Option("--no-plugins", help="Built-in checks only.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")] = False,
) -> None:
    """A host snapshot: the files the checks read, secrets redacted, for `check --root`."""
    from preflight import collect

    if print_script:
        if file:
            raise UsageError("collect --print-script takes no FILE: redirect its output instead")
        sys.stdout.write(collect.script(config, no_plugins))
        return
    if not file:
        raise UsageError(
            "collect: name the tarball to write, e.g. `preflight collect "
            "host.tar.gz` (or use --print-script)"
        )
    snapshot = collect.collect(file, root, config, no_plugins)
    if not quiet:
        print(
            f"preflight: wrote {file}: {snapshot.files} files, {snapshot.redacted} redacted, "
            f"{snapshot.withheld} withheld (keys, not text), {snapshot.skipped} skipped"
        )


def _print_tracebacks(report: Any) -> None:
    import traceback

    from preflight.isolation import CheckCrash

    for result in report.results:
        exc = result.exception
        if exc is not None:
            print(f"--- traceback of check {result.id}:", file=sys.stderr)
            if isinstance(exc, CheckCrash):  # formatted in the check's process
                sys.stderr.write(str(exc))
            else:
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def _argv_with_default_command(args: list[str]) -> list[str]:
    """`preflight --format json` means `preflight check --format json`."""
    if not args:
        return ["check"]
    first = args[0]
    if first in COMMANDS or first in ("--version", "-V", "--help", "-h"):
        return args
    if not first.startswith("-") and did_you_mean(first, COMMANDS):
        # `preflight chek`: a mistyped command, unless some check is really called that
        from preflight.registry import discover

        if first not in {entry.name for entry in discover()}:
            raise UsageError(f"unknown command {first!r}{did_you_mean(first, COMMANDS)}")
    return ["check", *args]


def _fail(message: str, code: int = EXIT_USAGE, nagios: bool = False) -> NoReturn:
    sys.stderr.write(f"preflight: error: {message}\n")
    sys.stderr.flush()
    if nagios and code == EXIT_USAGE:
        # Nagios reads stdout and knows 0-3 only: 64 would be "out of bounds", message lost.
        from preflight.reporters.nagios_format import UNKNOWN_EXIT, usage_error

        sys.stdout.write(usage_error(message))
        sys.stdout.flush()
        code = UNKNOWN_EXIT
    raise SystemExit(code)


def _asks_for_nagios(args: list[str]) -> bool:
    """Whether the command line asks for a Nagios report (-f nagios, --format=nagios,
    --report nagios[:PATH]), read before parsing so a usage error can still speak Nagios."""
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else ""
        if arg in ("-f", "--format") and following == "nagios":
            return True
        if arg == "--report" and following.partition(":")[0] == "nagios":
            return True
        if arg in ("-fnagios", "--format=nagios") or arg.startswith("--report=nagios"):
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    """Console entry point; every way out is an exit code from contract section 2."""
    from preflight.isolation import Interrupted, handle_signals

    guard_standard_fds()
    handle_signals()
    raw = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in raw
    nagios = _asks_for_nagios(raw)
    try:
        args = _argv_with_default_command(raw)
        command = typer.main.get_command(app)
        code = command.main(args=args, prog_name="preflight", standalone_mode=False)
    except UsageError as exc:
        _fail(str(exc), nagios=nagios)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Interrupted as exc:
        # Every check's process and command is already killed; no report was written.
        _fail(f"interrupted by {exc.name}: stopped, no report written", exc.exit_code)
    except Exception as exc:  # click's usage errors, or a bug in preflight itself
        if type(exc).__name__ in ("Abort",):
            _fail("aborted", 130)
        format_message = getattr(exc, "format_message", None)
        if format_message is not None and getattr(exc, "exit_code", None) == 2:
            _fail(format_message().splitlines()[0], nagios=nagios)
        if debug:
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug)", EXIT_ERROR)
    raise SystemExit(code if isinstance(code, int) else 0)
