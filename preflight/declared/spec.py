"""Declared checks: the `[[check]]` tables of the config and of the drop-in folder, validated.

Every problem is a ConfigError (exit 64) whose one line names the file, the check and the key. A
spec is data the operator wrote, but its regular expressions run against host data: they are
compiled with RE2 (google-re2), whose matching time is linear in the input, so no pattern can
backtrack catastrophically; what RE2 cannot do in linear time (backreferences, lookaround) is
refused here as a bad regex. Inputs to a match are bounded as well (MATCH_INPUT_LIMIT).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from preflight.errors import ConfigError
from preflight.host import NotRegularFile, read_regular
from preflight.model import ENGINE_REASONS, Status
from preflight.text import describe_value, plausible_name

DEFAULT_CHECKS_DIR = "/etc/preflight/checks.d"
MAX_SPEC_BYTES = 4 << 20
MAX_ASSERTIONS = 1000  # per check: more is a generated file gone wrong
MATCH_INPUT_LIMIT = 1 << 20  # bytes of a file, an output or a body a regex is matched against
MAX_REGEX_LENGTH = 4096
# Check ids and assertion names become finding codes `<id>.<name>`: one token each, no dots in
# a name. Linear: one character class, anchored by fullmatch.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_.:@/-]{1,255}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MODE = re.compile(r"0?[0-7]{3,4}")
_CONSTRAINT = re.compile(r"\s*(>=|<=|>>|<<|==|!=|=|>|<)\s*([^\s,<>=!]+)\s*")
# Names the engine gives findings of every check, and the code a passing declared check uses.
RESERVED_NAMES = {"ok", *ENGINE_REASONS}
RESERVED_IDS = {"declared"}  # `preflight explain declared` documents the assertion kinds

FILE_TYPES = ("file", "directory", "symlink", "socket", "fifo", "char", "block")
LIVE_ONLY = ("port", "socket", "process", "service", "dns", "http", "command")


class SpecError(ConfigError):
    """A malformed declared check: exit 64."""


@dataclass
class Regex:
    """A user pattern compiled with RE2; `search` bounds its input."""

    pattern: str
    compiled: Any

    def search(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogateescape")[:MATCH_INPUT_LIMIT]
        return self.compiled.search(data.decode("utf-8", "replace")) is not None


@dataclass
class Constraint:
    """`>= 2.7.14, < 8`: each part an operator and a version."""

    text: str
    parts: list[tuple[str, str]]


@dataclass
class Assertion:
    name: str
    kind: str
    status: Status  # when it does not hold: FAIL or WARN
    params: dict[str, Any]
    remediation: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def live_only(self) -> bool:
        return self.kind in LIVE_ONLY


@dataclass
class CheckSpec:
    id: str
    title: str
    source: str  # the file it was declared in
    description: str = ""
    assertions: list[Assertion] = field(default_factory=list)


# ------------------------------------------------------------------------ value validators
Where = str  # "FILE: check 'ID' assert 'NAME' key 'KEY'"
Validator = Callable[[Any, Where], Any]


def _fail(where: Where, what: str, value: Any) -> SpecError:
    return SpecError(f"{where}: expected {what}, got {describe_value(value)}")


def v_str(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, "a non-empty string", value)
    return value


def v_bool(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "true or false", value)
    return value


def v_int(value: Any, where: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, "an integer", value)
    return value


def v_count(value: Any, where: Where) -> int:
    if v_int(value, where) < 0:
        raise _fail(where, "an integer >= 0", value)
    return int(value)


def v_seconds(value: Any, where: Where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 300:
        raise _fail(where, "a number of seconds (0 < s <= 300)", value)
    return float(value)


def v_port(value: Any, where: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _fail(where, "a port number 1-65535", value)
    return value


def v_str_list(value: Any, where: Where) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, "a list of non-empty strings", value)
    return list(value)


def v_names(value: Any, where: Where) -> list[str]:
    """A name or a list of names (package, any of)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise _fail(where, "a name or a non-empty list of names", value)
    for name in names:
        v_name(name, where)
    return list(names)


def v_name(value: Any, where: Where) -> str:
    """A name that may reach a command line: no blanks, no shell syntax, no leading dash."""
    if not isinstance(value, str) or not plausible_name(value):
        raise _fail(
            where, "a name (letters, digits and @%+=:,./_~- only, not starting with -)", value
        )
    return value


def v_abspath(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise _fail(where, "an absolute path", value)
    if ".." in value.split("/"):
        raise _fail(where, "an absolute path without '..'", value)
    return value


def v_regex(value: Any, where: Where) -> Regex:
    if not isinstance(value, str):
        raise _fail(where, "a regular expression (a string)", value)
    if len(value) > MAX_REGEX_LENGTH:
        raise SpecError(f"{where}: regular expression longer than {MAX_REGEX_LENGTH} characters")
    import re2  # google-re2: linear-time matching

    options = re2.Options()
    options.log_errors = False  # the error is reported once, here, not logged to stderr
    try:
        # Multi-line mode: ^ and $ match at each line's start and end, as grep does, so
        # "^yes$" matches a command's "yes\n" and "^listen=" any line of a file.
        compiled = re2.compile("(?m)" + value, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else str(exc)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise SpecError(
            f"{where}: bad regular expression {value!r}: {reason} (RE2 syntax: no "
            f"backreferences or lookaround)"
        ) from None
    return Regex(value, compiled)


def v_mode(value: Any, where: Where) -> int:
    if not isinstance(value, str) or not _MODE.fullmatch(value):
        raise _fail(where, 'an octal mode as a string, e.g. "0640"', value)
    return int(value, 8)


def v_sha256(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise _fail(where, "64 hexadecimal digits", value)
    return value.lower()


def v_ip(value: Any, where: Where) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise _fail(where, "an IPv4 or IPv6 address", value) from None


def v_ip_list(value: Any, where: Where) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _fail(where, "a non-empty list of IP addresses", value)
    return [v_ip(item, where) for item in value]


def v_user(value: Any, where: Where) -> str | int:
    """A user or group: a name, or a numeric id."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return v_name(value, where)


def v_constraint(value: Any, where: Where) -> Constraint:
    text = value if isinstance(value, str) else ""
    parts: list[tuple[str, str]] = []
    for piece in text.split(","):
        match = _CONSTRAINT.fullmatch(piece)
        if match is None:
            raise _fail(where, 'a version constraint such as ">= 2.7.14" or ">= 1.2, < 2"', value)
        parts.append((match.group(1), match.group(2)))
    return Constraint(text.strip(), parts)


def v_sysctl_key(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not _SYSCTL_KEY.fullmatch(value):
        raise _fail(where, 'a sysctl key such as "net.core.rmem_max"', value)
    if ".." in value.replace(".", "/").split("/") or value.startswith("/"):
        raise _fail(where, "a sysctl key without empty parts", value)
    return value


def v_sysctl_value(value: Any, where: Where) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(where, "a string or an integer", value)
    return " ".join(str(value).split())


def v_url(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise _fail(where, "an http:// or https:// URL", value)
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise _fail(where, "a URL without blanks or control characters", value)
    return value


def v_argv(value: Any, where: Where) -> list[str]:
    argv = v_str_list(value, where)
    if not argv or "\0" in "".join(argv):
        raise _fail(where, "a non-empty list of arguments (the program first)", value)
    return argv


def v_http_status(value: Any, where: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise _fail(where, "an HTTP status code 100-599", value)
    return value


def v_exit_code(value: Any, where: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise _fail(where, "an exit status 0-255", value)
    return value


def v_hostname(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", value):
        raise _fail(where, "a host name", value)
    return value


def _one_of(*choices: str) -> Validator:
    def check(value: Any, where: Where) -> str:
        if value not in choices:
            raise _fail(where, " or ".join(f'"{c}"' for c in choices), value)
        return str(value)

    return check


# ------------------------------------------------------------------------ the kinds
# kind -> key -> (validator, required). Defaults are applied by the kinds themselves.
_PORT: dict[str, tuple[Validator, bool]] = {
    "port": (v_port, True),
    "proto": (_one_of("tcp", "udp"), False),
    "address": (v_ip, False),
    "process": (v_str, False),
    "listening": (v_bool, False),
}
KINDS: dict[str, dict[str, tuple[Validator, bool]]] = {
    "file": {
        "path": (v_abspath, True),
        "exists": (v_bool, False),
        "type": (_one_of(*FILE_TYPES), False),
        "mode": (v_mode, False),
        "owner": (v_user, False),
        "group": (v_user, False),
        "min_size": (v_count, False),
        "max_size": (v_count, False),
        "contains": (v_regex, False),
        "not_contains": (v_regex, False),
        "sha256": (v_sha256, False),
    },
    "package": {
        "package": (v_names, True),
        "installed": (v_bool, False),
        "version": (v_constraint, False),
    },
    "port": _PORT,
    "socket": _PORT,
    "process": {
        "process": (v_str, False),
        "argv": (v_regex, False),
        "running": (v_bool, False),
        "count": (v_count, False),
        "min": (v_count, False),
        "max": (v_count, False),
    },
    "service": {
        "service": (v_name, True),
        "active": (v_bool, False),
        "enabled": (v_bool, False),
    },
    "sysctl": {
        "key": (v_sysctl_key, True),
        "value": (v_sysctl_value, False),
        "min": (v_int, False),
        "max": (v_int, False),
    },
    "kernel_module": {
        "module": (v_name, True),
        "loaded": (v_bool, False),
    },
    "mount": {
        "path": (v_abspath, True),
        "mounted": (v_bool, False),
        "fstype": (v_str, False),
        "options": (v_str_list, False),
    },
    "user": {
        "user": (v_name, True),
        "exists": (v_bool, False),
        "uid": (v_count, False),
        "gid": (v_count, False),
        "shell": (v_abspath, False),
        "home": (v_abspath, False),
        "groups": (v_str_list, False),
    },
    "group": {
        "group": (v_name, True),
        "exists": (v_bool, False),
        "gid": (v_count, False),
        "members": (v_str_list, False),
    },
    "dns": {
        "host": (v_hostname, True),
        "addresses": (v_ip_list, False),
        "timeout": (v_seconds, False),
    },
    "http": {
        "url": (v_url, True),
        "status_code": (v_http_status, False),
        "body": (v_regex, False),
        "timeout": (v_seconds, False),
        "verify_tls": (v_bool, False),
    },
    "command": {
        "argv": (v_argv, True),
        "exit_code": (v_exit_code, False),
        "stdout": (v_regex, False),
        "stderr": (v_regex, False),
        "timeout": (v_seconds, False),
    },
}
COMMON_KEYS = {"name", "kind", "status", "remediation", "description"}
CHECK_KEYS = {"id", "title", "description", "assert"}


# ------------------------------------------------------------------------ parsing
def _where(source: str, check: str | None, name: str | None = None, key: str | None = None) -> str:
    text = source
    if check is not None:
        text += f": check {check!r}"
    if name is not None:
        text += f" assert {name!r}"
    if key is not None:
        text += f" key {key!r}"
    return text


def _unknown_key(where: str, key: str, allowed: set[str]) -> SpecError:
    return SpecError(f"{where} key {key!r}: unknown key (allowed: {', '.join(sorted(allowed))})")


def parse_checks(tables: Any, source: str) -> list[CheckSpec]:
    """The `check` array of one file: every check validated, or SpecError."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SpecError(f"{source}: key 'check': expected an array of tables ([[check]])")
    return [_check(table, source, index) for index, table in enumerate(tables, 1)]


def _check(table: dict[str, Any], source: str, index: int) -> CheckSpec:
    raw_id = table.get("id")
    label = raw_id if isinstance(raw_id, str) else f"#{index}"
    for key in table:
        if key not in CHECK_KEYS:
            raise _unknown_key(_where(source, label), key, CHECK_KEYS)
    if not isinstance(raw_id, str) or not _ID.fullmatch(raw_id):
        raise _fail(
            _where(source, label, key="id"),
            "an id of letters, digits, '-' and '_' (at most 64, not starting with - or _)",
            raw_id,
        )
    if raw_id in RESERVED_IDS:
        raise SpecError(f"{_where(source, raw_id, key='id')}: {raw_id!r} is reserved")
    title = table.get("title", raw_id)
    v_str(title, _where(source, raw_id, key="title"))
    description = table.get("description", "")
    if not isinstance(description, str):
        raise _fail(_where(source, raw_id, key="description"), "a string", description)
    raw_asserts = table.get("assert")
    if (
        not isinstance(raw_asserts, list)
        or not raw_asserts
        or not all(isinstance(a, dict) for a in raw_asserts)
    ):
        raise SpecError(
            f"{_where(source, raw_id, key='assert')}: expected one or more [[check.assert]] tables"
        )
    if len(raw_asserts) > MAX_ASSERTIONS:
        raise SpecError(
            f"{_where(source, raw_id, key='assert')}: more than {MAX_ASSERTIONS} assertions"
        )
    spec = CheckSpec(raw_id, title, source, description.strip())
    seen: set[str] = set()
    for number, raw in enumerate(raw_asserts, 1):
        assertion = _assertion(raw, source, raw_id, number)
        if assertion.name in seen:
            raise SpecError(
                f"{_where(source, raw_id, assertion.name, 'name')}: duplicate assertion name"
            )
        seen.add(assertion.name)
        spec.assertions.append(assertion)
    return spec


def _assertion(raw: dict[str, Any], source: str, check_id: str, number: int) -> Assertion:
    name = raw.get("name")
    label = name if isinstance(name, str) else f"#{number}"
    if not isinstance(name, str) or not _ID.fullmatch(name):
        raise _fail(
            _where(source, check_id, label, "name"),
            "a name of letters, digits, '-' and '_' (it becomes the finding code)",
            name,
        )
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{_where(source, check_id, name, 'name')}: {name!r} is reserved "
            f"(the engine's code {check_id}.{name})"
        )
    kind = raw.get("kind")
    if kind not in KINDS:
        raise SpecError(
            f"{_where(source, check_id, name, 'kind')}: unknown assertion kind "
            f"{kind!r} (known: {', '.join(KINDS)})"
        )
    schema = KINDS[kind]
    allowed = COMMON_KEYS | set(schema)
    for key in raw:
        if key not in allowed:
            raise _unknown_key(_where(source, check_id, name), key, allowed)
    status_text = raw.get("status", "fail")
    if status_text not in ("fail", "warn"):
        raise _fail(_where(source, check_id, name, "status"), '"fail" or "warn"', status_text)
    remediation = raw.get("remediation", [])
    if isinstance(remediation, str):
        remediation = [remediation]
    v_str_list(remediation, _where(source, check_id, name, "remediation")) if remediation else None
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _fail(_where(source, check_id, name, "description"), "a string", description)
    params: dict[str, Any] = {}
    for key, (validate, required) in schema.items():
        if key in raw:
            params[key] = validate(raw[key], _where(source, check_id, name, key))
        elif required:
            raise SpecError(f"{_where(source, check_id, name, key)}: required for kind {kind!r}")
    _cross_check(kind, params, _where(source, check_id, name))
    return Assertion(name, kind, Status(status_text), params, list(remediation), description)


def _cross_check(kind: str, params: dict[str, Any], where: str) -> None:
    """Keys that are each valid but do not make sense together."""
    if kind == "process" and "process" not in params and "argv" not in params:
        raise SpecError(f"{where} key 'process': a process assertion needs process or argv")
    for low, high in (("min_size", "max_size"), ("min", "max")):
        if low in params and high in params and params[low] > params[high]:
            raise SpecError(f"{where} key {low!r}: greater than {high!r}")
    if "count" in params and ("min" in params or "max" in params):
        raise SpecError(f"{where} key 'count': use count, or min/max, not both")


# ------------------------------------------------------------------------ files
def _toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        raw = read_regular(path, MAX_SPEC_BYTES)
    except NotRegularFile:
        raise SpecError(f"{path}: not a regular file") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None


def drop_in_files(folder: str, explicit: bool) -> list[str]:
    """The `*.toml` files of the drop-in folder, sorted; a missing default folder is none."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        if explicit:
            raise SpecError(f"[preflight] checks_dir {folder}: no such directory") from None
        return []
    except OSError as exc:
        raise SpecError(f"[preflight] checks_dir {folder}: {exc.strerror or exc}") from None
    return [os.path.join(folder, n) for n in names if n.endswith(".toml") and not n.startswith(".")]


def load_drop_in(path: str) -> list[CheckSpec]:
    data = _toml(path)
    for key in data:
        if key != "check":
            raise _unknown_key(path + ":", key, {"check"})
    return parse_checks(data.get("check", []), path)


def load_all(
    config_tables: Any, config_path: str | None, checks_dir: str | None, known_ids: set[str]
) -> list[CheckSpec]:
    """Every declared check: the main config's, then each drop-in file's, in name order.
    Duplicate ids, and ids of checks preflight already has, are errors."""
    specs: list[CheckSpec] = []
    if config_tables:
        specs += parse_checks(config_tables, config_path or "config")
    folder = checks_dir or DEFAULT_CHECKS_DIR
    if checks_dir and config_path and not os.path.isabs(checks_dir):
        folder = os.path.join(os.path.dirname(os.path.abspath(config_path)), checks_dir)
    for path in drop_in_files(folder, explicit=checks_dir is not None):
        specs += load_drop_in(path)
    first: dict[str, CheckSpec] = {}
    for spec in specs:
        where = _where(spec.source, spec.id, key="id")
        if spec.id in known_ids:
            raise SpecError(f"{where}: clashes with the loaded check {spec.id!r}")
        if spec.id in first:
            raise SpecError(f"{where}: duplicate check id (also in {first[spec.id].source})")
        first[spec.id] = spec
    return specs
