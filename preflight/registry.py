"""Finds checks: the built-ins from preflight's own installation, plugins through the
`preflight.checks` entry-point group.

Built-ins are the entry points pyproject.toml registers (BUILTIN_CHECKS, kept equal to it by a
test), imported from the `preflight_checks` folder beside this `preflight` package: a distribution
on PYTHONPATH that calls itself `preflight`, or a `preflight_checks` module earlier on sys.path,
cannot replace them. Plugins are third-party code: they are imported in a child process under the
run's deadline first (preflight.isolation), and the engine keeps only plain metadata from that
import; the check itself is imported again, and run, in the check's own child process.

Discovery reads the `entry_points.txt` of every installed distribution itself, the way
importlib.metadata finds them (same sys.path order, same first-distribution-of-a-name-wins rule),
because importing importlib.metadata (email, pathlib, zipfile, csv) costs more than cron-driven
runs should pay on every invocation. A sys.path entry this scanner does not read (a zip file)
falls back to importlib.metadata.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from preflight.check import Check, CheckContext, FindingDoc, Option, Status

GROUP = "preflight.checks"
OWN_DISTRIBUTION = "host-preflight"
# Names a distribution other than this installation may take to pass for preflight's own.
_OWN_NAMES = ("host_preflight", "preflight")
# The [project.entry-points."preflight.checks"] table of pyproject.toml.
BUILTIN_CHECKS = {
    "kernel": "preflight_checks.kernel:KernelCheck",
    "tun": "preflight_checks.tun:TunCheck",
    "puppet": "preflight_checks.puppet:PuppetCheck",
    "kamailio": "preflight_checks.kamailio:KamailioCheck",
}
BUILTIN_PACKAGE = "preflight_checks"
# How long a plugin may take to import when no --timeout says otherwise (list, explain).
IMPORT_TIMEOUT = 10.0
# The class attributes of a check that the engine reads (list, explain, config, collect).
_METADATA = (
    "id", "title", "description", "findings", "open_codes", "options", "paths", "markers",
)  # fmt: skip
_OPTION_KINDS: dict[str, type] = {k.__name__: k for k in (bool, str, int, float, list)}

# importlib.metadata.EntryPoint.pattern: `module.path:attr.path [extras]`.
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


@dataclass(frozen=True)
class EntryPoint:
    """One entry point of GROUP: the parts of importlib.metadata.EntryPoint that are used."""

    name: str
    value: str
    group: str = GROUP

    def load(self) -> Any:
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        obj: Any = importlib.import_module(match.group("module"))
        for attr in (match.group("attr") or "").split("."):
            if attr:
                obj = getattr(obj, attr)
        return obj


@dataclass
class LoadedCheck:
    id: str
    origin: str  # "built-in", or the plugin's distribution name
    check: type[Check] | None  # None when the plugin failed to load
    error: str | None = None

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"

    @property
    def title(self) -> str:
        if self.check is not None and self.check.title:
            return self.check.title
        return self.id


@dataclass
class EntryPointInfo:
    name: str
    origin: str
    entry_point: EntryPoint

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"


def discover() -> list[EntryPointInfo]:
    """Every registered check, sorted by id; nothing is imported yet."""
    found = {
        name: EntryPointInfo(name, "built-in", EntryPoint(name, value))
        for name, value in BUILTIN_CHECKS.items()
    }
    for ep, dist_name in _entry_points():
        # A built-in keeps its id: a plugin cannot silently replace a built-in check. A
        # distribution named like preflight's own is not this installation: ignored.
        if ep.name in found or _normalize(dist_name) in _OWN_NAMES:
            continue
        found[ep.name] = EntryPointInfo(ep.name, dist_name, ep)
    return [found[k] for k in sorted(found)]


def _entry_points() -> list[tuple[EntryPoint, str]]:
    """(entry point, distribution name) of GROUP, in importlib.metadata's order."""
    try:
        return _scan_entry_points(sys.path)
    except _Unreadable:
        return _importlib_entry_points()


class _Unreadable(Exception):
    """A sys.path entry the fast scanner does not read."""


def _normalize(name: str) -> str:
    # importlib.metadata.Prepared.normalize: PEP 503 plus dashes as underscores.
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _metadata_folders(entry: str) -> list[tuple[str, str]]:
    """(normalized distribution name, metadata folder) in one sys.path entry, in listing order."""
    root = entry or "."
    try:
        children = os.listdir(root)
    except NotADirectoryError:
        raise _Unreadable(entry) from None  # a zip file on sys.path
    except OSError:
        return []
    base = os.path.basename(root).lower()
    grouped: dict[str, list[str]] = {}
    eggs: dict[str, list[str]] = {}
    for child in children:
        low = child.lower()
        if low.endswith((".dist-info", ".egg-info")):
            name = _normalize(low.rpartition(".")[0].partition("-")[0])
            grouped.setdefault(name, []).append(os.path.join(root, child))
        elif base.endswith(".egg") and low == "egg-info":
            name = base.rpartition(".")[0].partition("-")[0].replace("-", "_")
            eggs.setdefault(name, []).append(os.path.join(root, child))
    return [(name, path) for name, paths in grouped.items() for path in paths] + [
        (name, path) for name, paths in eggs.items() for path in paths
    ]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _group_entries(text: str) -> list[tuple[str, str]]:
    """`name = value` pairs of the [GROUP] section of an entry_points.txt."""
    pairs = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section == GROUP and "=" in line:
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs


def _distribution_name(folder: str) -> str:
    """The `Name:` header of METADATA (PKG-INFO for egg-info), as dist.metadata["Name"]."""
    for filename in ("METADATA", "PKG-INFO"):
        text = _read(os.path.join(folder, filename))
        if not text:
            continue
        for line in text.splitlines():
            if not line.strip():
                break  # end of the headers
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == "name":
                return value.strip()
        break
    return "unknown"


def _scan_entry_points(paths: list[Any]) -> list[tuple[EntryPoint, str]]:
    seen: set[str] = set()
    out: list[tuple[EntryPoint, str]] = []
    for entry in paths:
        if not isinstance(entry, str):
            continue
        for name, folder in _metadata_folders(entry):
            # The first distribution of a name on sys.path wins, as in importlib.metadata.
            if name in seen:
                continue
            seen.add(name)
            text = _read(os.path.join(folder, "entry_points.txt"))
            if not text or GROUP not in text:
                continue
            pairs = _group_entries(text)
            if pairs:
                dist_name = _distribution_name(folder)
                out.extend((EntryPoint(n, v), dist_name) for n, v in pairs)
    return out


def _importlib_entry_points() -> list[tuple[EntryPoint, str]]:
    import importlib.metadata

    out = []
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        out.append((EntryPoint(ep.name, ep.value), dist_name))
    return out


def select(
    entries: list[EntryPointInfo], no_plugins: bool, allow: list[str] | None
) -> list[EntryPointInfo]:
    """Built-ins always; plugins unless --no-plugins, and only allow-listed ones if set."""
    return [
        entry
        for entry in entries
        if entry.builtin or not (no_plugins or (allow is not None and entry.name not in allow))
    ]


def load(entry: EntryPointInfo, timeout: float = IMPORT_TIMEOUT) -> LoadedCheck:
    """Import one check; a plugin that fails to import is kept as an error, not raised."""
    return load_many([entry], timeout)[0]


def load_many(entries: list[EntryPointInfo], timeout: float = IMPORT_TIMEOUT) -> list[LoadedCheck]:
    """Import checks: built-ins here, plugins each in a child process given `timeout` seconds
    (all at once); a plugin that fails, exits or hangs at import is kept as an error."""
    from preflight.isolation import run_jobs

    plugins = [entry for entry in entries if not _in_process(entry)]
    jobs = [(lambda entry=entry: _describe(entry)) for entry in plugins]
    described = dict(
        zip((e.name for e in plugins), run_jobs(jobs, timeout) if jobs else [], strict=True)
    )
    loaded = []
    for entry in entries:
        if _in_process(entry):
            loaded.append(_load_builtin(entry))
            continue
        outcome = described[entry.name]
        value = entry.entry_point.value
        if outcome.error is not None:
            why = outcome.error.message
            if outcome.error.kind == "timeout":
                why = f"did not import within {timeout:g} s"
            elif outcome.error.kind == "lost":
                why = f"its import {why}"
            loaded.append(
                LoadedCheck(entry.name, entry.origin, None, f"could not load {value}: {why}")
            )
        else:
            try:
                metadata = _metadata(outcome.value)
            except (ValueError, TypeError, KeyError):
                error = f"could not load {value}: its import sent unreadable metadata"
                loaded.append(LoadedCheck(entry.name, entry.origin, None, error))
                continue
            loaded.append(LoadedCheck(entry.name, entry.origin, _plugin_class(entry, metadata)))
    return loaded


def _in_process(entry: EntryPointInfo) -> bool:
    """Built-ins, and checks that are data rather than third-party code (declared checks, whose
    entry point holds the class built from the spec): nothing to import in a child first."""
    return entry.builtin or bool(getattr(entry.entry_point, "in_process", False))


def _load_builtin(entry: EntryPointInfo) -> LoadedCheck:
    try:
        _own_checks_package()
        obj = entry.entry_point.load()
    except Exception as exc:  # a broken installation: an error result, not a crash
        return LoadedCheck(
            entry.name,
            entry.origin,
            None,
            f"could not load {entry.entry_point.value}: {type(exc).__name__}: {exc}",
        )
    return _as_check(entry, obj)


def _as_check(entry: EntryPointInfo, obj: Any) -> LoadedCheck:
    if not (isinstance(obj, type) and issubclass(obj, Check)):
        return LoadedCheck(
            entry.name,
            entry.origin,
            None,
            f"{entry.entry_point.value} is not a preflight Check class",
        )
    return LoadedCheck(entry.name, entry.origin, obj)


def _own_checks_package() -> None:
    """Import `preflight_checks` from beside this `preflight` package, whatever sys.path says,
    so that the built-ins' modules (imported through its __path__) are preflight's own."""
    folder = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), BUILTIN_PACKAGE
    )
    module = sys.modules.get(BUILTIN_PACKAGE)
    if module is not None:
        paths = [os.path.abspath(p) for p in getattr(module, "__path__", [])]
        if paths == [folder]:
            return
        raise ImportError(
            f"{BUILTIN_PACKAGE} was imported from {paths or module}, not from {folder}"
        )
    import importlib.util

    init = os.path.join(folder, "__init__.py")
    spec = importlib.util.spec_from_file_location(
        BUILTIN_PACKAGE, init, submodule_search_locations=[folder]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[BUILTIN_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[BUILTIN_PACKAGE]
        raise


def _describe(entry: EntryPointInfo) -> dict[str, Any]:
    """In the child: import the plugin and return its metadata as checked JSON data
    (_metadata rebuilds it in the parent)."""
    obj = entry.entry_point.load()
    if not (isinstance(obj, type) and issubclass(obj, Check)):
        raise TypeError(f"{entry.entry_point.value} is not a preflight Check class")
    findings = {}
    for code, doc in dict(obj.findings or {}).items():
        if not (isinstance(code, str) and isinstance(doc, FindingDoc)):
            raise TypeError(f"findings[{code!r}] is not a FindingDoc")
        findings[code] = [Status(doc.status).value, str(doc.meaning), str(doc.fix)]
    options = {}
    for name, option in dict(obj.options or {}).items():
        if not (isinstance(name, str) and isinstance(option, Option)):
            raise TypeError(f"options[{name!r}] is not an Option")
        kinds = option.kind if isinstance(option.kind, tuple) else (option.kind,)
        if not all(kind in _OPTION_KINDS.values() for kind in kinds):
            raise TypeError(f"option {name!r}: kind is not bool, str, int, float or list")
        if not isinstance(option.default, (type(None), *_OPTION_KINDS.values())):
            raise TypeError(f"option {name!r}: the default is not plain data")
        options[name] = [[kind.__name__ for kind in kinds], option.default, str(option.help)]
    return {
        "id": str(obj.id or entry.name),
        "title": str(obj.title or ""),
        "description": str(obj.description or ""),
        "findings": findings,
        "open_codes": bool(obj.open_codes),
        "options": options,
        "paths": _strings(obj.paths),
        "markers": _strings(obj.markers),
    }


def _metadata(data: Any) -> dict[str, Any]:
    """The class attributes of a plugin from what _describe sent; ValueError, TypeError or
    KeyError when it is not that."""
    findings = {
        str(code): FindingDoc(Status(status), str(meaning), str(fix))
        for code, (status, meaning, fix) in data["findings"].items()
    }
    options = {}
    for name, (kinds, default, help_text) in data["options"].items():
        types = tuple(_OPTION_KINDS[kind] for kind in kinds)
        options[str(name)] = Option(types[0] if len(types) == 1 else types, default, str(help_text))
    return {
        "id": str(data["id"]),
        "title": str(data["title"]),
        "description": str(data["description"]),
        "findings": findings,
        "open_codes": bool(data["open_codes"]),
        "options": options,
        "paths": _strings(data["paths"]),
        "markers": _strings(data["markers"]),
    }


def _strings(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values or ()]


def _plugin_class(entry: EntryPointInfo, metadata: dict[str, Any]) -> type[Check]:
    """A stand-in for a plugin's class in this process: its metadata, and `real_class()`, which
    imports the plugin's own class; the runner calls it in the check's child process and runs
    that class (so every part of the Check API the plugin overrides is its own)."""
    entry_point = entry.entry_point

    def real_class() -> type[Check]:
        real = entry_point.load()
        if not (isinstance(real, type) and issubclass(real, Check)):
            raise TypeError(f"{entry_point.value} is not a preflight Check class")
        return real

    def run(self: Check, ctx: CheckContext) -> Any:
        return real_class()().run(ctx)

    attrs = {key: metadata[key] for key in _METADATA}
    attrs["paths"], attrs["markers"] = tuple(attrs["paths"]), tuple(attrs["markers"])
    attrs["run"] = run
    attrs["real_class"] = staticmethod(real_class)
    return type(f"Plugin_{entry.name}", (Check,), attrs)
