"""Times in reports: ISO 8601, UTC, whole seconds (`2026-11-26T03:40:00Z`)."""

from __future__ import annotations

import datetime as dt

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(epoch: float | None) -> str | None:
    """A Unix time as an ISO 8601 UTC string; None when unknown or out of range (a time read
    from a damaged file must not crash the report)."""
    if epoch is None:
        return None
    try:
        return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime(ISO_FORMAT)
    except (OverflowError, OSError, ValueError):
        return None
