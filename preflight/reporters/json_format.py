"""`--format json`: the contract's report, schema_version 1."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preflight.report import Report


def _plain(value: Any) -> Any:
    """A plugin's details may hold sets or paths: make them JSON without failing the run."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def render(report: Report, color: bool = False) -> str:
    return json.dumps(report.to_dict(), indent=2, default=_plain) + "\n"
