"""The TOML configuration (contract section 7), validated key by key."""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from preflight.check import Option
from preflight.errors import ConfigError
from preflight.host import NotRegularFile, read_regular
from preflight.model import Waiver
from preflight.text import describe_value

DEFAULT_PATH = "/etc/preflight/preflight.toml"
FAIL_ON_VALUES = ("warn", "fail")
MAX_CONFIG_BYTES = 4 << 20


@dataclass
class Config:
    path: str | None = None
    checks: list[str] | None = None
    fail_on: str = "warn"
    plugins: list[str] | None = None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    waivers: list[Waiver] = field(default_factory=list)
    # Declared checks (contract section 9): the raw [[check]] tables, validated by
    # preflight.declared with the drop-in folder's files, and `[preflight] checks_dir`.
    check_tables: list[Any] = field(default_factory=list)
    checks_dir: str | None = None


def config_path(explicit: str | None) -> str | None:
    """--config, else $PREFLIGHT_CONFIG, else the system file if it exists."""
    if explicit:
        return explicit
    env = os.environ.get("PREFLIGHT_CONFIG")
    if env:
        return env
    return DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None


def load(explicit: str | None) -> Config:
    path = config_path(explicit)
    if path is None:
        return Config()
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        # One byte more than allowed: a bigger file is refused, never read in part.
        raw = read_regular(path, MAX_CONFIG_BYTES + 1)
    except NotRegularFile:
        raise ConfigError(f"{path}: not a regular file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB: not a preflight config file"
        )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:  # the parser recurses once per level of nested arrays and tables
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    return parse(data, path)


def parse(data: dict[str, Any], path: str) -> Config:
    config = Config(path=path)
    _no_unknown(data, {"preflight", "checks", "waivers", "check"}, path, "")
    main = _table(data.get("preflight", {}), path, "[preflight]")
    _no_unknown(main, {"checks", "fail_on", "plugins", "checks_dir"}, path, "[preflight] ")
    if "checks_dir" in main:
        if not isinstance(main["checks_dir"], str) or not main["checks_dir"]:
            raise ConfigError(f"{path}: [preflight] checks_dir: expected a folder path (a string)")
        config.checks_dir = main["checks_dir"]
    if "check" in data:
        if not isinstance(data["check"], list):
            raise ConfigError(f"{path}: check: expected an array of tables ([[check]])")
        config.check_tables = data["check"]
    if "checks" in main:
        config.checks = _str_list(main["checks"], path, "[preflight] checks")
    if "plugins" in main:
        config.plugins = _str_list(main["plugins"], path, "[preflight] plugins")
    if "fail_on" in main:
        value = main["fail_on"]
        if value not in FAIL_ON_VALUES:
            raise ConfigError(
                f'{path}: [preflight] fail_on: expected "warn" or "fail", got {value!r}'
            )
        config.fail_on = value
    checks = _table(data.get("checks", {}), path, "[checks]")
    for check_id, section in checks.items():
        config.sections[check_id] = _table(section, path, f"[checks.{check_id}]")
    waivers = data.get("waivers", [])
    if not isinstance(waivers, list):
        raise ConfigError(f"{path}: waivers: expected an array of tables ([[waivers]])")
    for index, waiver in enumerate(waivers, 1):
        config.waivers.append(_waiver(waiver, path, f"[[waivers]] #{index}"))
    return config


def check_options(config: Config, check_id: str, options: dict[str, Option]) -> dict[str, Any]:
    """The options of one loaded check: defaults overlaid with its validated config section."""
    values = {name: option.default for name, option in options.items()}
    section = config.sections.get(check_id, {})
    where = f"[checks.{check_id}]"
    _no_unknown(section, set(options), config.path or "config", where + " ")
    for key, value in section.items():
        option = options[key]
        values[key] = _typed(value, option, config.path or "config", f"{where} {key}")
        problem = option.problem(values[key]) if option.problem else None
        if problem:
            raise ConfigError(f"{config.path or 'config'}: {where} {key}: {problem}")
    return values


def _typed(value: Any, option: Option, path: str, where: str) -> Any:
    kinds = option.kind if isinstance(option.kind, tuple) else (option.kind,)
    if list in kinds:
        return _str_list(value, path, where)
    if bool in kinds and isinstance(value, bool):
        return value
    if isinstance(value, bool):  # TOML true is not a number or a string
        raise ConfigError(f"{path}: {where}: expected {_kind_names(kinds)}, got a boolean")
    if float in kinds and isinstance(value, (int, float)):
        return float(value)
    for kind in kinds:
        if kind is not bool and isinstance(value, kind):
            return value
    raise ConfigError(
        f"{path}: {where}: expected {_kind_names(kinds)}, got {describe_value(value)}"
    )


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {
        bool: "true or false",
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list of strings",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _table(value: Any, path: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where}: expected a table, got {describe_value(value)}")
    return value


def _str_list(value: Any, path: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{path}: {where}: expected a list of strings, got {describe_value(value)}"
        )
    return list(value)


def _no_unknown(table: dict[str, Any], known: set[str], path: str, where: str) -> None:
    for key in table:
        if key not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{path}: {where}unknown key {key!r} (allowed: {allowed})")


def _waiver(value: Any, path: str, where: str) -> Waiver:
    table = _table(value, path, where)
    _no_unknown(table, {"code", "match", "reason", "until"}, path, where + " ")
    for key in ("code", "reason"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"{path}: {where} {key}: required, a non-empty string")
    match = table.get("match", "")
    if not isinstance(match, str):
        raise ConfigError(f"{path}: {where} match: expected a string, got {describe_value(match)}")
    until = table.get("until")
    if until is not None:
        if isinstance(until, dt.datetime):
            until = until.date()
        if isinstance(until, str):
            try:
                until = dt.date.fromisoformat(until)
            except ValueError:
                raise ConfigError(
                    f"{path}: {where} until: expected a date YYYY-MM-DD, got {until!r}"
                ) from None
        if not isinstance(until, dt.date):
            raise ConfigError(
                f"{path}: {where} until: expected a date YYYY-MM-DD, got {describe_value(until)}"
            )
    return Waiver(table["code"], table["reason"], until, match)
