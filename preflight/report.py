"""The run's report: results plus host, counts, overall status and exit code (contract 2-4)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from preflight import __version__
from preflight.model import CheckResult, Status, worst
from preflight.timefmt import ISO_FORMAT

SCHEMA_VERSION = 1

EXIT_OK = 0
EXIT_WARN = 1
EXIT_FAIL = 2
EXIT_ERROR = 3
EXIT_USAGE = 64


def exit_code(results: list[CheckResult], fail_on: str = "warn") -> int:
    """fail (2) > error (3) > warn (1, or 0 under --fail-on fail) > pass/skip (0)."""
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return EXIT_FAIL
    if Status.ERROR in statuses:
        return EXIT_ERROR
    if Status.WARN in statuses and fail_on == "warn":
        return EXIT_WARN
    return EXIT_OK


@dataclass
class Report:
    results: list[CheckResult]
    host: dict[str, Any]
    fail_on: str = "warn"
    duration_ms: float = 0.0
    generated_at: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    )

    @property
    def status(self) -> Status:
        return worst([r.status for r in self.results])

    @property
    def exit_code(self) -> int:
        return exit_code(self.results, self.fail_on)

    @property
    def generated_at_text(self) -> str:
        return self.generated_at.strftime(ISO_FORMAT)

    @property
    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for result in self.results:
            counts[result.status.value] += 1
        counts["waived"] = sum(1 for r in self.results for f in r.findings if f.waived)
        return counts

    def tally(self) -> str:
        """`2 passed, 0 warned, 1 failed, 0 errored, 1 skipped[, 1 waived]`."""
        counts = self.counts
        words = (
            ("pass", "passed"),
            ("warn", "warned"),
            ("fail", "failed"),
            ("error", "errored"),
            ("skip", "skipped"),
        )
        parts = [f"{counts[key]} {word}" for key, word in words]
        if counts["waived"]:
            parts.append(f"{counts['waived']} waived")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "preflight_version": __version__,
            "generated_at": self.generated_at_text,
            "duration_ms": round(self.duration_ms, 1),
            "host": self.host,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "counts": self.counts,
            "checks": [r.to_dict() for r in self.results],
        }
