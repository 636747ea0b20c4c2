"""`--format json`: the contract's report, schema_version 1."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preflight.report import Report


def _plain(value: Any) -> Any:
    """Details may hold sets, paths or exceptions: make them JSON without failing the run."""
    if isinstance(value, BaseException):
        return None
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
    return str(value)


def render(report: Report, color: bool = False) -> str:
    data = report.to_dict()
    for check in data["checks"]:
        check["details"].pop("exception", None)
    return json.dumps(data, indent=2, default=_plain) + "\n"
