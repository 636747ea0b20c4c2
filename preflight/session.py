"""What the CLI commands do, apart from parsing arguments and printing."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from preflight import config as config_mod
from preflight import registry
from preflight.errors import UsageError
from preflight.host import Host
from preflight.model import ENGINE_REASONS
from preflight.report import Report
from preflight.runner import Planned, apply_waivers, run_all, run_with_wait


def require_root(root: str) -> None:
    """--root must name a directory; every command that reads a host says so the same way."""
    if not os.path.isdir(root):
        raise UsageError(f"--root {root}: not a directory")


def _note(message: str) -> None:
    sys.stderr.write(f"preflight: note: {message}\n")


def plan(
    names: list[str], config_path: str | None, no_plugins: bool, root: str
) -> tuple[list[Planned], config_mod.Config]:
    """Which checks run, loaded and with validated options; usage errors raise UsageError."""
    require_root(root)
    cfg = config_mod.load(config_path)
    available = registry.discover()
    usable = registry.select(available, no_plugins, cfg.plugins)
    by_id = {e.name: e for e in usable}
    excluded = {e.name for e in available} - set(by_id)
    for name in cfg.checks or []:
        if name not in by_id:
            raise UsageError(
                f"{cfg.path}: [preflight] checks: " + _unknown(name, excluded, by_id, "check")
            )
    if names:
        wanted = _dedupe(names)
        for name in wanted:
            if name not in by_id:
                raise UsageError(_unknown(name, excluded, by_id, "check"))
    elif cfg.checks is not None:
        wanted = _dedupe(cfg.checks)
    else:
        wanted = list(by_id)
    for section in cfg.sections:
        if section not in by_id:
            _note(f"{cfg.path}: [checks.{section}] ignored: no check {section!r} is loaded")
        elif section not in wanted:
            # Not run this time, but a typo in its section is still a config error, found now
            # rather than on the run that needs it.
            other = registry.load(by_id[section])
            if other.check is not None:
                config_mod.check_options(cfg, section, other.check.all_options())
    planned = []
    for name in wanted:
        loaded = registry.load(by_id[name])
        options: dict[str, Any] = {}
        if loaded.check is not None:
            options = config_mod.check_options(cfg, name, loaded.check.all_options())
        planned.append(Planned(loaded, options))
    return planned, cfg


def _dedupe(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _unknown(name: str, excluded: set[str], by_id: dict[str, Any], what: str) -> str:
    if name in excluded:
        return (
            f"{what} {name!r} is a plugin that is not enabled (--no-plugins or [preflight] plugins)"
        )
    known = ", ".join(sorted(by_id)) or "none"
    return f"unknown {what} {name!r} (known: {known})"


def execute(
    plan_: list[Planned],
    cfg: config_mod.Config,
    root: str,
    timeout: float,
    wait: float,
    fail_on: str,
    started: float,
) -> Report:
    def make_host() -> Host:
        return Host(root, timeout=timeout)

    if wait > 0:
        results, host = run_with_wait(plan_, make_host, timeout, wait)
    else:
        host = make_host()
        results = run_all(plan_, host, timeout)
    results = apply_waivers(results, cfg.waivers)
    return Report(
        results, host.summary(), fail_on, duration_ms=(time.perf_counter() - started) * 1000
    )


def failure_report(root: str, fail_on: str, exc: Exception, started: float) -> Report:
    """The report when the engine itself broke: cron and Puppet still get one document, and an
    `error` result (exit 3), never an empty file or a false success."""
    from preflight.model import error_result

    message = f"preflight itself failed: {type(exc).__name__}: {exc} (re-run with --debug)"
    result = error_result(
        "preflight",
        "preflight engine",
        message,
        "internal-error",
        remediation=["preflight check --debug (the traceback), and report it with the version"],
    )
    try:
        host = Host(root).summary()
    except Exception:
        host = {
            "hostname": None,
            "root": root,
            "os": None,
            "kernel": {"release": None, "version": None},
            "virtualization": None,
            "container": None,
            "provider": None,
        }
    return Report([result], host, fail_on, duration_ms=(time.perf_counter() - started) * 1000)


def list_checks(config_path: str | None, no_plugins: bool) -> list[dict[str, Any]]:
    cfg = config_mod.load(config_path)
    rows = []
    for entry in registry.select(registry.discover(), no_plugins, cfg.plugins):
        loaded = registry.load(entry)
        row: dict[str, Any] = {"id": loaded.id, "title": loaded.title, "origin": loaded.origin}
        if loaded.error:
            row["error"] = loaded.error
        rows.append(row)
    return rows


def explain(check_id: str) -> str:
    entries = {e.name: e for e in registry.discover()}
    if check_id not in entries:
        raise UsageError(_unknown(check_id, set(), entries, "check"))
    loaded = registry.load(entries[check_id])
    if loaded.check is None:
        return f"{check_id} ({loaded.origin}): failed to load: {loaded.error}\n"
    check = loaded.check
    lines = [f"{check_id}: {check.title} ({loaded.origin})", ""]
    if check.description:
        lines += [check.description.strip(), ""]
    if check.findings:
        lines.append("Findings:")
        for code, doc in check.findings.items():
            lines.append(f"  {code} ({doc.status.value})")
            lines.append(f"      {doc.meaning}")
            if doc.fix:
                lines.append(f"      Fix: {doc.fix}")
        lines.append("")
    lines.append("Any check can also report (error):")
    for reason, (meaning, fix) in ENGINE_REASONS.items():
        lines += [f"  {check_id}.{reason} (error)", f"      {meaning}", f"      Fix: {fix}"]
    lines.append("")
    lines.append(f"Options ([checks.{check_id}] in the config file):")
    for name, option in check.all_options().items():
        lines.append(f"  {name} = {option.default!r}  {option.help}".rstrip())
    return "\n".join(lines) + "\n"


def facts(root: str) -> dict[str, Any]:
    require_root(root)
    host = Host(root)
    data = host.summary()
    data["kernel"].update(
        {
            "proc_version": host.proc_version,
            "boot_time": host.boot_time,
            "boot_image": host.boot_image,
            "modules_dir": host.modules_dir,
            "loaded_modules": None if host.loaded_modules is None else sorted(host.loaded_modules),
        }
    )
    data["service_manager"] = host.service_manager
    data["packages"] = {"manager": host.packages.manager}
    for entry in registry.discover():
        loaded = registry.load(entry) if entry.builtin else None
        if loaded is None or loaded.check is None:
            continue
        for key, value in loaded.check.host_facts(host).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
    return data
