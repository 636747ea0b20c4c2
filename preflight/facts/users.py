"""Users and groups by number, from the root's own passwd and group files (a snapshot's names,
not this machine's), read once per run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight.facts.shared import shared_fact

if TYPE_CHECKING:
    from preflight.host import Host

ACCOUNT_FILE_LIMIT = 4 << 20  # a directory-backed host can list tens of thousands of accounts
PATHS = ("etc/passwd", "etc/group")


def parse_id_names(text: str | None) -> dict[int, str]:
    """number -> name of a passwd or group file; the first line with a number wins (as getpwuid)."""
    names: dict[int, str] = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        number = fields[2] if len(fields) > 2 else ""
        # Only the canonical spelling: "0100" is not uid 100 to getpwuid either.
        if number.isascii() and number.isdecimal() and str(int(number)) == number:
            names.setdefault(int(number), fields[0])
    return names


class Accounts:
    def __init__(self, host: Host) -> None:
        self.host = host

    @shared_fact
    def users(self) -> dict[int, str]:
        return parse_id_names(self.host.read_text("etc/passwd", ACCOUNT_FILE_LIMIT))

    @shared_fact
    def groups(self) -> dict[int, str]:
        return parse_id_names(self.host.read_text("etc/group", ACCOUNT_FILE_LIMIT))

    def user_name(self, uid: int) -> str | None:
        return self.users.get(uid)

    def group_name(self, gid: int) -> str | None:
        return self.groups.get(gid)
