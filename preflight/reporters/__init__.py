"""Output formats. Each lives in its own module and is imported only when asked for, so the
machine formats never pay for rich."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.report import Report

FORMATS = ("human", "json", "nagios", "prometheus", "junit", "facter")


def render(fmt: str, report: Report, color: bool = False, width: int = 100) -> str:
    """The whole report as text in format `fmt`; `width` matters to the human format only."""
    module = importlib.import_module(f"preflight.reporters.{fmt}_format")
    if fmt == "human":
        return str(module.render(report, color=color, width=width))
    return str(module.render(report, color=color))
