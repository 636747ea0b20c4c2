"""Finds checks through the `preflight.checks` entry-point group, built-ins included.

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
from dataclasses import dataclass
from typing import Any

from preflight.check import Check

GROUP = "preflight.checks"
OWN_DISTRIBUTION = "host-preflight"

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
    found: dict[str, EntryPointInfo] = {}
    for ep, dist_name in _entry_points():
        origin = "built-in" if dist_name == OWN_DISTRIBUTION else dist_name
        # A built-in keeps its id: a plugin cannot silently replace a built-in check.
        if ep.name in found and found[ep.name].origin == "built-in":
            continue
        found[ep.name] = EntryPointInfo(ep.name, origin, ep)
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


def load(entry: EntryPointInfo) -> LoadedCheck:
    """Import one check; a plugin that fails to import is kept as an error, not raised."""
    try:
        obj = entry.entry_point.load()
    except Exception as exc:  # any import-time failure of third-party code
        return LoadedCheck(
            entry.name,
            entry.origin,
            None,
            f"could not load {entry.entry_point.value}: {type(exc).__name__}: {exc}",
        )
    if not (isinstance(obj, type) and issubclass(obj, Check)):
        return LoadedCheck(
            entry.name,
            entry.origin,
            None,
            f"{entry.entry_point.value} is not a preflight Check class",
        )
    return LoadedCheck(entry.name, entry.origin, obj)
