"""Command line: `preflight [check|list|explain|facts|collect] ...` (contract section 1).

A plain `check` run is read here and run without importing typer (`preflight.check_run`); every
other command line goes to the typer app in `preflight.commands`.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from preflight.check_run import plain_check_args, run_check
from preflight.errors import UsageError
from preflight.report import EXIT_ERROR, EXIT_USAGE
from preflight.stdout import guard_standard_fds
from preflight.suggest import did_you_mean

COMMANDS = ("check", "list", "explain", "facts", "collect")


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
        plain = plain_check_args(args)
        code = run_check(**plain) if plain is not None else _run_typer_app(args)
    except UsageError as exc:
        _fail(str(exc), nagios=nagios)
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


def _run_typer_app(args: list[str]) -> Any:
    """Every command line that is not a plain `check` run: help, the other commands, errors."""
    import typer

    from preflight.commands import app

    try:
        command = typer.main.get_command(app)
        return command.main(args=args, prog_name="preflight", standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
