"""What the kamailio check reports: its findings, details and notes, credentials masked.

Every finding passes through `Report.add`, so no message or remediation step can echo a
password from a database URL Kamailio or its configuration printed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from preflight_checks.kamailio_config import mask_secrets

from preflight.check import Finding, Status

if TYPE_CHECKING:
    from preflight.host import Host

SERVICE_STEPS = ["systemctl status kamailio", "journalctl -u kamailio -n 50 --no-pager"]


class Report:
    def __init__(self, host: Host, details: dict[str, Any]) -> None:
        self.host = host
        self.details = details
        self.findings: list[Finding] = []
        self.notes: list[str] = []

    def add(
        self, code: str, status: Status, message: str, remediation: list[str] | None = None
    ) -> None:
        self.findings.append(
            Finding(
                f"kamailio.{code}",
                status,
                mask_secrets(message),
                [mask_secrets(r) for r in remediation or []],
            )
        )
