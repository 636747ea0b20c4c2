"""Kamailio's TLS: a tls: listen that enable_tls=yes is missing for, and certificate, key and CA
files that tls.cfg or modparam("tls", ...) names but that do not exist.

`kamailio -c` notices neither: the first silently drops the listener, the second fails the
start. Certificate and key files are only looked at, never opened.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from preflight_checks.kamailio_config import (
    DEFAULT_TLS_CONFIG,
    CheckOutput,
    Location,
    ParsedConfig,
    path_from_config,
    tls_files,
)

from preflight.check import Status

if TYPE_CHECKING:
    from preflight_checks.kamailio_report import Report

    from preflight.host import Host


def check_tls(
    report: Report, parsed: ParsedConfig | None, check_out: CheckOutput | None, config: str
) -> None:
    if parsed is None:
        return
    check_tls_enabled(report, parsed, check_out, config)
    if parsed.loads_tls:
        check_tls_files(report, parsed, config)


def check_tls_enabled(
    report: Report, parsed: ParsedConfig, check_out: CheckOutput | None, config: str
) -> None:
    tls_listens = parsed.tls_listens()
    if check_out is not None and check_out.ok:
        dropped = bool(tls_listens) and not any(s.proto == "tls" for s in check_out.sockets)
    else:
        dropped = bool(tls_listens) and not parsed.enable_tls
    if dropped:
        where = ", ".join(str(e.where) for e in tls_listens[:3])
        report.add(
            "tls-disabled",
            Status.WARN,
            f"a tls: listen ({where}) is configured but enable_tls=yes is not set, so "
            "Kamailio ignores it",
            [
                f'add enable_tls=yes and loadmodule "tls.so" to {config}',
                f"kamailio -c -f {config}",
                report.service.restart,
            ],
        )


def check_tls_files(report: Report, parsed: ParsedConfig, config: str) -> None:
    host = report.host
    config_dir = posixpath.dirname(parsed.main)
    files: list[tuple[str, str, Location]] = []
    tls_cfg = parsed.tls_config or DEFAULT_TLS_CONFIG
    tls_rel = path_from_config(tls_cfg, config_dir)
    text = host.read_text(tls_rel)
    report.details["tls_config"] = host.display(tls_rel)
    if text is None:
        if parsed.tls_config:
            report.add(
                "tls-files-missing",
                Status.FAIL,
                f"the TLS config {host.display(tls_rel)} named by "
                f'modparam("tls", "config") is {host.why_unreadable(tls_rel)}',
                [
                    f"create {host.display(tls_rel)} or fix the modparam in {config}",
                    report.service.restart,
                ],
            )
    else:
        files = tls_files(text, host.display(tls_rel))
    files += [(key, value, where) for key, (value, where) in parsed.tls_params.items()]
    for key, path, where in files:
        rel = path_from_config(path, config_dir)
        problem = file_problem(host, rel)
        if problem:
            report.add(
                "tls-files-missing",
                Status.FAIL,
                f"TLS {key} {host.display(rel)} ({where}) is {problem}; "
                "Kamailio will not start with it",
                [
                    f"create {host.display(rel)} (or fix {where})",
                    report.service.restart,
                ],
            )


def file_problem(host: Host, rel: str) -> str | None:
    """Why Kamailio could not load a certificate or key; never opens it (no key content
    is ever read)."""
    if not host.is_file(rel):
        return host.why_unreadable(rel)
    # Under --root who could read it is unknown (None): only a live host says "unreadable".
    return "unreadable" if host.is_readable(rel) is False else None
