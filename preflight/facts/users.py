"""Users and groups, from the root's own passwd and group files (a snapshot's names, not this
machine's), read once per run: by number (uid -> name, gid -> name) and by name (an account's
uid, primary group and supplementary groups). On the live host an account the files do not
list is looked up through NSS (LDAP, sssd, extrausers), as `ls -l` names it; a snapshot has only
its files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight.facts.shared import shared_fact

if TYPE_CHECKING:
    from preflight.host import Host

ACCOUNT_FILE_LIMIT = 4 << 20  # a directory-backed host can list tens of thousands of accounts
PATHS = ("etc/passwd", "etc/group")


def _number(field: str) -> int | None:
    """A uid or gid field; only the canonical spelling counts: "0100" is not uid 100 to
    getpwuid either."""
    if field.isascii() and field.isdecimal() and str(int(field)) == field:
        return int(field)
    return None


def _entries(text: str | None) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines()]


def parse_id_names(text: str | None) -> dict[int, str]:
    """number -> name of a passwd or group file; the first line with a number wins (as getpwuid)."""
    return _first_by_number(_entries(text))


@dataclass(frozen=True)
class Account:
    """A passwd entry with its groups: what a process switched to this account may open."""

    name: str
    uid: int
    gid: int | None  # the primary group; None when the passwd field is not a number
    gids: frozenset[int]  # the primary group and every group that lists the account


class Accounts:
    def __init__(self, host: Host) -> None:
        self.host = host

    @shared_fact
    def _passwd(self) -> list[list[str]]:
        return _entries(self.host.read_text("etc/passwd", ACCOUNT_FILE_LIMIT))

    @shared_fact
    def _group(self) -> list[list[str]]:
        return _entries(self.host.read_text("etc/group", ACCOUNT_FILE_LIMIT))

    @shared_fact
    def users(self) -> dict[int, str]:
        return _first_by_number(self._passwd)

    @shared_fact
    def groups(self) -> dict[int, str]:
        return _first_by_number(self._group)

    @shared_fact
    def _by_name(self) -> dict[str, tuple[int, int | None]]:
        """name -> (uid, primary gid); the first line of a name wins (as getpwnam)."""
        found: dict[str, tuple[int, int | None]] = {}
        for fields in self._passwd:
            uid = _number(fields[2]) if len(fields) > 3 else None
            if uid is not None:
                found.setdefault(fields[0], (uid, _number(fields[3])))
        return found

    @shared_fact
    def _memberships(self) -> dict[str, frozenset[int]]:
        """account name -> the gids of the groups whose member list names it."""
        found: dict[str, set[int]] = {}
        for fields in self._group:
            gid = _number(fields[2]) if len(fields) > 3 else None
            if gid is None:
                continue
            for member in fields[3].split(","):
                if member:
                    found.setdefault(member, set()).add(gid)
        return {name: frozenset(gids) for name, gids in found.items()}

    def user_name(self, uid: int) -> str | None:
        return self.users.get(uid) or self._nss_name("user", uid)

    def group_name(self, gid: int) -> str | None:
        return self.groups.get(gid) or self._nss_name("group", gid)

    def _nss_name(self, kind: str, number: int) -> str | None:
        """The name NSS gives a uid or gid the files do not list; live host only."""
        if not self.host.is_live:
            return None
        import grp
        import pwd

        try:
            if kind == "user":
                return pwd.getpwuid(number).pw_name
            return grp.getgrgid(number).gr_name
        except (KeyError, OverflowError):
            return None

    def uid_of(self, name: str) -> int | None:
        found = self.account(name)
        return None if found is None else found.uid

    def account(self, name: str) -> Account | None:
        """The account `name` with its primary and supplementary groups; None if unknown."""
        entry = self._by_name.get(name)
        if entry is None:
            return self._nss_account(name) if self.host.is_live else None
        uid, gid = entry
        primary = frozenset() if gid is None else frozenset({gid})
        return Account(name, uid, gid, primary | self._memberships.get(name, frozenset()))

    @staticmethod
    def _nss_account(name: str) -> Account | None:
        """An account only NSS knows, with the groups NSS gives it (getgrouplist)."""
        import os
        import pwd

        try:
            entry = pwd.getpwnam(name)
            gids = frozenset(os.getgrouplist(name, entry.pw_gid))
        except (KeyError, OSError, ValueError):
            return None
        return Account(name, entry.pw_uid, entry.pw_gid, gids)

    def describe_user(self, uid: int) -> str:
        """`user NAME (uid N)` as messages name an account, or `uid N` when it has no name."""
        name = self.user_name(uid)
        return f"uid {uid}" if name is None else f"user {name} (uid {uid})"

    def describe_group(self, gid: int) -> str:
        """`NAME (gid N)`, or `gid N` when the group has no name."""
        name = self.group_name(gid)
        return f"gid {gid}" if name is None else f"{name} (gid {gid})"


def _first_by_number(entries: list[list[str]]) -> dict[int, str]:
    """number -> name of passwd or group entries; the first entry with a number wins."""
    names: dict[int, str] = {}
    for fields in entries:
        number = _number(fields[2]) if len(fields) > 2 else None
        if number is not None:
            names.setdefault(number, fields[0])
    return names
