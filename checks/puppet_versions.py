"""Comparing Puppet version strings for the `puppet` check, vendor builds included."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.version import Version


def version_key(version: str) -> Version | None:
    """A comparable version; vendor suffixes (3.7.2.acquia7) compare by their release part."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion:
        match = re.match(r"\d+(?:\.\d+)*", version)
        return Version(match.group(0)) if match else None


def sort_key(version: str | None) -> Version:
    from packaging.version import Version

    return version_key(version or "") or Version("0")


def older(version: str, minimum: str) -> bool:
    have, want = version_key(version), version_key(minimum)
    return have is not None and want is not None and have < want
