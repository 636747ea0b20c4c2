"""What the kamailio check reports: its findings, details and notes, credentials masked.

Every finding passes through `Report.add`, so no message or remediation step can echo a
password from a database URL Kamailio or its configuration printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from preflight_checks.kamailio_config import mask_secrets

from preflight.check import Finding, Status
from preflight.facts import parse_os_release

if TYPE_CHECKING:
    from preflight.host import Host


@dataclass(frozen=True)
class ServiceCommands:
    """How this host starts Kamailio: remediation must name commands that exist here."""

    start: str
    restart: str
    status: tuple[str, ...]


SYSTEMD = ServiceCommands(
    "systemctl start kamailio",
    "systemctl restart kamailio",
    ("systemctl status kamailio", "journalctl -u kamailio -n 50 --no-pager"),
)
DEFAULTS = "etc/default/kamailio"  # Debian's: the init script sources it
INIT_SCRIPT_FILE = "etc/init.d/kamailio"
INIT_SCRIPT = ServiceCommands(
    "service kamailio start",
    "service kamailio restart",
    ("service kamailio status", "grep kamailio /var/log/syslog | tail -n 50"),
)


def service_commands(host: Host) -> ServiceCommands:
    """systemctl where systemd runs (or nothing says otherwise); Debian's init script through
    `service` where something else is pid 1 (sysvinit, a container, a microVM)."""
    manager = host.service_manager
    if manager in (None, "systemd") or not host.is_file(INIT_SCRIPT_FILE):
        return SYSTEMD
    defaults = host.read_text(DEFAULTS, 64 * 1024)
    if defaults is not None and parse_os_release(defaults).get("RUN_KAMAILIO") != "yes":
        # Debian's init script refuses to start ("Kamailio not yet configured") until this is set.
        enable = f"sed -i 's/^#*RUN_KAMAILIO=.*/RUN_KAMAILIO=yes/' {host.display(DEFAULTS)}"
        return ServiceCommands(
            f"{enable} && {INIT_SCRIPT.start}",
            f"{enable} && {INIT_SCRIPT.restart}",
            INIT_SCRIPT.status,
        )
    return INIT_SCRIPT


class Report:
    def __init__(self, host: Host, details: dict[str, Any]) -> None:
        self.host = host
        self.details = details
        self.findings: list[Finding] = []
        self.notes: list[str] = []

    @cached_property
    def service(self) -> ServiceCommands:
        """Asked for only by findings that name a command: most runs never read the files."""
        return service_commands(self.host)

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
