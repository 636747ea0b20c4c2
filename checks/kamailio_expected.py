"""What Kamailio should be doing: which running instance and config to judge, what
`kamailio -c` resolves that config to, and so which sockets it should hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from preflight_checks.kamailio_config import (
    DEFAULT_CONFIG,
    CheckOutput,
    ParsedConfig,
    Socket,
    normalize_path,
    parse_check_output,
    parse_socket,
)

from preflight.check import Status

if TYPE_CHECKING:
    from preflight_checks.kamailio_report import Report
    from preflight_checks.kamailio_sockets import Instance


def expected_from_option(report: Report, raw: list[Any]) -> list[Socket]:
    """The sockets of `[checks.kamailio] expect`; option-invalid for each malformed entry."""
    sockets = []
    for entry in raw:
        sock = parse_socket(str(entry))
        if sock is None:
            report.add(
                "option-invalid",
                Status.ERROR,
                f"[checks.kamailio] expect: {str(entry)!r} is not proto:addr:port",
                ['write entries such as "udp:0.0.0.0:5060" or "tcp:[::]:8080"'],
            )
        elif sock not in sockets:
            sockets.append(sock)
    return sockets


def choose_instance(
    report: Report, instances: list[Instance], option: str | None
) -> tuple[Instance | None, str, str]:
    """The instance to judge, its config (root-relative) and where the config came from."""
    wanted = normalize_path(option) if option else None
    if len(instances) > 1:
        report.details["instances"] = [
            {"pid": i.main.pid, "config": report.host.display(i.config_rel)} for i in instances
        ]
    if wanted is not None:
        match = next((i for i in instances if i.config_rel == wanted), None)
        return match, wanted, "option"
    if instances:
        chosen = next((i for i in instances if i.config_rel == DEFAULT_CONFIG), instances[0])
        return chosen, chosen.config_rel, "running process"
    return None, DEFAULT_CONFIG, "default"


def run_kamailio_c(
    report: Report,
    binary: str | None,
    config: str,
    argv_options: dict[str, list[str]],
    timeout: float,
) -> CheckOutput | None:
    """`kamailio -c -f CONFIG` on a live host; None where it cannot run (then: best effort)."""
    host = report.host
    if not host.is_live or binary is None:
        return None
    argv = [binary, "-c", "-f", config]
    # The running instance's own preprocessor defines and paths shape what it resolves.
    for letter in ("A", "L", "l"):
        for value in argv_options.get(letter, []):
            argv += [f"-{letter}", value]
    for letter in ("T", "S"):
        if letter in argv_options:
            argv.append(f"-{letter}")
    for name in ("subst", "substdef", "substdefs", "loadmodule"):
        argv += [f"--{name}={value}" for value in argv_options.get(name, [])]
    result = host.run(argv, timeout=max(1.0, timeout / 2))
    if result is None:
        return None
    if result.returncode is None:
        why = "timed out" if result.timed_out else (result.error or "could not start")
        report.notes.append(f"`kamailio -c` {why}; the configuration was read best effort")
        return None
    return parse_check_output(result.returncode, result.stdout, result.stderr)


def expected_from_config(
    report: Report, parsed: ParsedConfig | None, check_out: CheckOutput | None
) -> list[Socket] | None:
    """The configured sockets: `kamailio -c`'s, else the best-effort reading's; None: unknown."""
    if check_out is not None:
        if not check_out.ok:
            report.notes.append(
                "kamailio -c failed: the configured sockets are unknown; only `expect` is compared"
            )
            return None
        sockets = [s for s in check_out.sockets if s.proto != "sctp"]
    elif parsed is not None:
        sockets = [s for s in parsed.expected_sockets() if s.proto != "sctp"]
        unresolved = [u for e in parsed.listens for u in e.unresolved]
        if unresolved:
            report.details["unresolved"] = unresolved
            report.notes.append(
                "listen= names that need a lookup or an interface are not compared under --root"
            )
    else:
        return None
    return sockets
