"""A check run in this process on a snapshot, counting the files it reads: a fact asked for by
several questions of one run must be read once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from preflight.check import Check, CheckContext, Finding
from preflight.host import DEFAULT_READ_LIMIT, Host


class CountingHost(Host):
    """A Host that counts each root-relative file it reads (read_text and read_line read
    through read_bytes)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: Counter[str] = Counter()

    def read_bytes(self, rel: str, limit: int = DEFAULT_READ_LIMIT) -> bytes | None:
        self.reads[rel.strip("/")] += 1
        return super().read_bytes(rel, limit)


def run_counting(check: Check, root: Any) -> tuple[list[Finding], dict[str, Any], Counter[str]]:
    """`check` run on the snapshot `root`: its findings, its details, and the reads per file."""
    host = CountingHost(str(root))
    ctx = CheckContext(host, {}, 10.0, check.id)
    findings = list(check.run(ctx))
    return findings, ctx.details, host.reads
