"""`--format facter`: a Facter external fact (JSON) for a facts.d folder, so PuppetDB holds every
host's last result and `puppet query` / a manifest can branch on `$facts['preflight']`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.report import Report


def render(report: Report, color: bool = False) -> str:
    fact = {
        "preflight": {
            "status": report.status.value,
            "exit_code": report.exit_code,
            "generated_at": report.generated_at_text,
            "checks": {r.id: {"status": r.status.value, "code": r.code} for r in report.results},
        }
    }
    return json.dumps(fact, indent=2, sort_keys=True) + "\n"
