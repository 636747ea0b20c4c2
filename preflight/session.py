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
from preflight.suggest import did_you_mean

# The top-level folders of a host (a snapshot from `collect`, a mounted disk image). A --root that
# has none of them is a typo or the wrong folder: every check would skip and the run would pass.
HOST_FOLDERS = ("etc", "proc", "sys", "usr", "var", "boot", "dev", "run", "lib")


def require_root(root: str) -> None:
    """--root must name a directory that looks like a host; every command says so the same way."""
    if not os.path.isdir(root):
        raise UsageError(f"--root {root}: not a directory")
    if os.path.realpath(root) == "/":
        return
    if not any(os.path.isdir(os.path.join(root, folder)) for folder in HOST_FOLDERS):
        raise UsageError(
            f"--root {root}: holds no host files (no etc/os-release, no proc/, no package "
            "database): name a snapshot from `preflight collect` or a mounted disk image"
        )


def _note(message: str) -> None:
    sys.stderr.write(f"preflight: note: {message}\n")


def plan(
    names: list[str],
    config_path: str | None,
    no_plugins: bool,
    root: str,
    timeout: float = registry.IMPORT_TIMEOUT,
) -> tuple[list[Planned], config_mod.Config]:
    """Which checks run, loaded and with validated options; usage errors raise UsageError.
    A plugin gets `timeout` seconds to import."""
    require_root(root)
    cfg = config_mod.load(config_path)
    available = registry.discover()
    usable = registry.select(available, no_plugins, cfg.plugins) + _declared(cfg, available)
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
    # Sections of checks not run this time are still validated: a typo in one is a config error
    # found now rather than on the run that needs it.
    others = [s for s in cfg.sections if s in by_id and s not in wanted]
    loaded = dict(
        zip(
            [*wanted, *others],
            registry.load_many([by_id[name] for name in [*wanted, *others]], timeout),
            strict=True,
        )
    )
    for section in cfg.sections:
        if section not in by_id:
            _note(f"{cfg.path}: [checks.{section}] ignored: no check {section!r} is loaded")
    for section in others:
        other = loaded[section].check
        if other is not None:
            config_mod.check_options(cfg, section, other.all_options())
    planned = []
    for name in wanted:
        check = loaded[name].check
        options: dict[str, Any] = {}
        if check is not None:
            options = config_mod.check_options(cfg, name, check.all_options())
        planned.append(Planned(loaded[name], options))
    _check_waivers(cfg, by_id, loaded)
    return planned, cfg


def _declared(
    cfg: config_mod.Config, available: list[registry.EntryPointInfo]
) -> list[registry.EntryPointInfo]:
    """The declared checks (config and drop-in folder): config, not code, so they are loaded
    under --no-plugins too; a malformed one is a usage error."""
    from preflight import declared

    return declared.entries(cfg, available)


def _check_waivers(
    cfg: config_mod.Config, by_id: dict[str, registry.EntryPointInfo], loaded: dict[str, Any]
) -> None:
    """A waiver must name a finding its check can report: a typo would silently waive nothing.
    A waiver for a check that is not loaded is ignored with a note, as its [checks.X] is."""
    for index, waiver in enumerate(cfg.waivers, 1):
        check_id = waiver.code.partition(".")[0]
        if check_id not in by_id:
            _note(
                f"{cfg.path}: [[waivers]] #{index} {waiver.code!r} ignored: no check "
                f"{check_id!r} is loaded"
            )
            continue
        entry = loaded.get(check_id) or registry.load(by_id[check_id])
        if entry.check is None or entry.check.open_codes:
            continue  # failed to load (its own error result), or reports codes it cannot list
        codes = {*entry.check.findings, f"{check_id}.not-installed"}
        codes |= {f"{check_id}.{reason}" for reason in ENGINE_REASONS}
        if waiver.code not in codes:
            raise UsageError(
                f"{cfg.path}: [[waivers]] #{index} code: check {check_id!r} reports no "
                f"{waiver.code!r}{did_you_mean(waiver.code, codes)} (`preflight explain "
                f"{check_id}` lists its codes)"
            )


def _dedupe(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _unknown(name: str, excluded: set[str], by_id: dict[str, Any], what: str) -> str:
    if name in excluded:
        return (
            f"{what} {name!r} is a plugin that is not enabled (--no-plugins or [preflight] plugins)"
        )
    known = ", ".join(sorted(by_id)) or "none"
    return f"unknown {what} {name!r}{did_you_mean(name, by_id)} (known: {known})"


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

    from preflight.progress import Progress
    from preflight.text import printable

    ids = printable(", ".join(p.loaded.id for p in plan_))  # plugin ids are data too
    if wait > 0:
        with Progress(f"running {ids}; re-running what does not pass for up to {wait:g} s"):
            results, host = run_with_wait(plan_, make_host, timeout, wait)
    else:
        host = make_host()
        with Progress(f"running {ids}"):
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


def list_checks(
    config_path: str | None, no_plugins: bool, timeout: float = registry.IMPORT_TIMEOUT
) -> list[dict[str, Any]]:
    cfg = config_mod.load(config_path)
    rows = []
    available = registry.discover()
    entries = registry.select(available, no_plugins, cfg.plugins) + _declared(cfg, available)
    for loaded in registry.load_many(entries, timeout):
        row: dict[str, Any] = {"id": loaded.id, "title": loaded.title, "origin": loaded.origin}
        if loaded.error:
            row["error"] = loaded.error
        rows.append(row)
    return rows


def explain(
    check_id: str, config_path: str | None, no_plugins: bool, width: int = 100
) -> tuple[dict[str, Any], str]:
    """What a check looks at and every finding it can report: (JSON document, text wrapped to
    `width`). Only checks that `check` would load are explained: the plugin allow-list and
    --no-plugins apply, so explaining never imports a plugin that a run would not."""
    if check_id == "declared":
        from preflight import declared

        return declared.explain_kinds()
    cfg = config_mod.load(config_path)
    available = registry.discover()
    usable = registry.select(available, no_plugins, cfg.plugins) + _declared(cfg, available)
    entries = {e.name: e for e in usable}
    if check_id not in entries:
        excluded = {e.name for e in available} - set(entries)
        raise UsageError(_unknown(check_id, excluded, entries, "check"))
    loaded = registry.load(entries[check_id])
    doc: dict[str, Any] = {"id": check_id, "title": loaded.title, "origin": loaded.origin}
    if loaded.check is None:
        doc["error"] = loaded.error
        return doc, f"{check_id} ({loaded.origin}): failed to load: {loaded.error}\n"
    check = loaded.check
    doc["description"] = (check.description or "").strip()
    doc["findings"] = [
        {"code": code, "status": d.status.value, "meaning": d.meaning, "fix": d.fix}
        for code, d in check.findings.items()
    ]
    doc["engine_findings"] = [
        {"code": f"{check_id}.{reason}", "status": "error", "meaning": meaning, "fix": fix}
        for reason, (meaning, fix) in ENGINE_REASONS.items()
    ]
    doc["options"] = [
        {
            "name": name,
            "default": option.default,
            "toml": f"{name} = {_toml(option.default)}",
            "help": option.help,
        }
        for name, option in check.all_options().items()
    ]
    return doc, _explain_text(doc, width)


def _explain_text(doc: dict[str, Any], width: int) -> str:
    import textwrap

    def para(text: str, indent: str) -> list[str]:
        return textwrap.wrap(
            text,
            max(width, 40),
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        ) or [indent]

    lines = [f"{doc['id']}: {doc['title']} ({doc['origin']})", ""]
    if doc["description"]:
        lines += [*para(doc["description"], ""), ""]
    for heading, key in (
        ("Findings:", "findings"),
        ("Any check can also report (error):", "engine_findings"),
    ):
        if not doc[key]:
            continue
        lines.append(heading)
        for finding in doc[key]:
            lines.append(f"  {finding['code']} ({finding['status']})")
            lines += para(finding["meaning"], "      ")
            if finding["fix"]:
                lines += para(f"Fix: {finding['fix']}", "      ")
        lines.append("")
    lines.append(f"Options ([checks.{doc['id']}] in the config file):")
    for option in doc["options"]:
        lines.append(f"  {option['toml']}")
        if option["help"]:
            lines += para(option["help"], "      ")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """An option's default as a TOML value, ready to paste into [checks.X]."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if value is None:
        return '""  # no default'
    return json.dumps(str(value))  # a TOML basic string: same escapes as JSON


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
