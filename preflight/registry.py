"""Finds checks through the `preflight.checks` entry-point group, built-ins included."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from preflight.check import Check

GROUP = "preflight.checks"
OWN_DISTRIBUTION = "preflight"


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
    entry_point: importlib.metadata.EntryPoint

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"


def discover() -> list[EntryPointInfo]:
    """Every registered check, sorted by id; nothing is imported yet."""
    found: dict[str, EntryPointInfo] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        origin = "built-in" if dist_name == OWN_DISTRIBUTION else dist_name
        # A built-in keeps its id: a plugin cannot silently replace a built-in check.
        if ep.name in found and found[ep.name].origin == "built-in":
            continue
        found[ep.name] = EntryPointInfo(ep.name, origin, ep)
    return [found[k] for k in sorted(found)]


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
