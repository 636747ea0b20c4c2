"""The typer app behind `preflight` (contract section 1); `preflight.cli.main` runs it.

Imported only when a command line is not a plain `check` run (help, other commands, errors):
importing typer costs more than the kernel check itself."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from preflight import __version__
from preflight.check_run import run_check, seconds_problem
from preflight.errors import UsageError
from preflight.reporters import FORMATS
from preflight.stdout import emit

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Host preflight and drift checker. Without a command: `preflight check`.",
)

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


def _seconds(minimum: float) -> Any:
    """A click callback: a finite number of seconds in [minimum, MAX_SECONDS]."""

    def validate(value: float) -> float:
        problem = seconds_problem(value, minimum)
        if problem:
            raise typer.BadParameter(problem)
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
    code = run_check(
        checks or [],
        fmt.value if fmt else None,
        output,
        reports or [],
        config,
        root,
        fail_on.value if fail_on is not None else None,
        timeout,
        wait,
        no_plugins,
        quiet,
        no_color,
        debug,
    )
    raise typer.Exit(code)


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
    check: Annotated[
        str, typer.Argument(help="A check id, or `declared` for declared checks.", metavar="CHECK")
    ],
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
            f"{snapshot.withheld} withheld (keys, not text, untrusted paths), "
            f"{snapshot.skipped} skipped"
        )
