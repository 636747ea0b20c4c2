"""RPM package databases read in place, for --root: nothing is executed and nothing is written.

Two formats hold the same thing, one RPM header blob per installed package:
- `rpmdb.sqlite` (rpm >= 4.16: RHEL 9, Fedora 33+, SUSE since 2021): table Packages(hnum, blob)
  and one index table per tag (Name(key, hnum, idx)), read with the standard library's sqlite3,
  opened read-only and immutable (no lock, no journal, no -wal written beside it);
- Berkeley DB `Packages` (RHEL 8 and older, SLES 15 before 2021): a hash database whose keys are
  header numbers and whose values are header blobs, read page by page as rpm's own read-only
  backend (bdb_ro) does.
No maintained Python library reads either (the Berkeley DB bindings need libdb, and rpm's own
bindings need the rpm library and a configured rpm), so this is the smallest reader: every
length, offset, count and chain read from the file is checked before use.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterator

    from preflight.host import Host

# rpm's own limits (header.c): at most 0xffff tags and 256 MiB of data in one header.
MAX_TAGS = 0xFFFF
MAX_HEADER = 64 << 20  # a package with a huge file list has a header of a few MiB
MAX_PACKAGES = 200_000  # a real host has a few thousand
MAX_BDB_FILE = 2 << 30  # a real Packages file is 50-300 MiB
BDB_HASH_MAGIC = 0x00061561

# Header tags and types (rpmtag.h).
TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH = 1000, 1001, 1002, 1003
TAG_INSTALLTIME, TAG_ARCH = 1008, 1022
TYPE_INT32, TYPE_STRING = 4, 6
_WANTED = {TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_INSTALLTIME, TAG_ARCH}


class RpmdbError(ValueError):
    """A database or header that is not what rpm writes."""


@dataclass(frozen=True)
class RpmPackage:
    name: str
    version: str  # VERSION-RELEASE, with "EPOCH:" in front when the epoch is not 0
    arch: str | None
    installed_at: float | None


def installed_packages(
    host: Host,
    folders: tuple[str, ...],
    names: list[str] | tuple[str, ...] = (),
    prefix: str | None = None,
) -> list[RpmPackage] | None:
    """Installed packages named in `names` or starting with `prefix`, from the first RPM
    database that can be read in `folders` (root-relative); None when there is none."""
    wanted = set(names)

    def matches(name: str) -> bool:
        return name in wanted or (prefix is not None and name.startswith(prefix))

    for folder in folders:
        for reader in (_sqlite_headers, _bdb_headers):
            try:
                headers = reader(host, folder, names, prefix)
                if headers is None:
                    continue
                found = []
                for blob in headers:
                    try:
                        package = _package(blob, matches)
                    except RpmdbError:
                        continue  # one damaged header: the others still count
                    if package is not None:
                        found.append(package)
                return found
            except (RpmdbError, OSError, MemoryError, sqlite3.Error):
                continue  # damaged or not a database: try the next one
    return None


# ------------------------------------------------------------------------------- headers
def _package(blob: bytes, matches: Callable[[str], bool]) -> RpmPackage | None:
    """The package a header describes, if `matches(name)`; None for others."""
    tags = parse_header(blob)
    name = tags.get(TAG_NAME)
    if not isinstance(name, str) or not matches(name):
        return None
    version, release = tags.get(TAG_VERSION), tags.get(TAG_RELEASE)
    if not isinstance(version, str) or not isinstance(release, str):
        return None
    epoch = tags.get(TAG_EPOCH)
    evr = f"{version}-{release}"
    if isinstance(epoch, int) and epoch:
        evr = f"{epoch}:{evr}"
    arch = tags.get(TAG_ARCH)
    installed = tags.get(TAG_INSTALLTIME)
    return RpmPackage(
        name,
        evr,
        arch if isinstance(arch, str) else None,
        float(installed) if isinstance(installed, int) else None,
    )


def parse_header(blob: bytes) -> dict[int, str | int]:
    """The name, version, release, epoch, arch and install time tags of a header blob as rpm
    stores it in its database: il and dl (big-endian), il index entries of 16 bytes (tag,
    type, offset, count), then dl bytes of data."""
    if len(blob) < 8:
        raise RpmdbError("header shorter than its preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    if il > MAX_TAGS or dl > MAX_HEADER or 8 + 16 * il + dl > len(blob):
        raise RpmdbError("header lengths out of bounds")
    data_start = 8 + 16 * il
    data = memoryview(blob)[data_start : data_start + dl]
    tags: dict[int, str | int] = {}
    for index in range(il):
        tag, kind, offset, count = struct.unpack_from(">IIiI", blob, 8 + 16 * index)
        if tag not in _WANTED or offset < 0 or offset >= dl:
            continue
        if kind == TYPE_STRING and count == 1:
            end = bytes(data[offset : min(dl, offset + 4096)]).find(b"\0")
            if end != -1:
                tags[tag] = bytes(data[offset : offset + end]).decode("utf-8", "replace")
        elif kind == TYPE_INT32 and count >= 1 and offset % 4 == 0 and offset + 4 <= dl:
            tags[tag] = struct.unpack_from(">I", data, offset)[0]
    return tags


# -------------------------------------------------------------------------------- sqlite
def _sqlite_headers(
    host: Host, folder: str, names: list[str] | tuple[str, ...], prefix: str | None
) -> Iterator[bytes] | None:
    path = _regular_file(host, f"{folder}/rpmdb.sqlite")
    if path is None:
        return None
    # immutable=1: sqlite neither locks nor looks for a journal, so nothing is created beside a
    # snapshot's file (and a hostile -wal next to it is never replayed).
    uri = f"file:{quote(path)}?mode=ro&immutable=1"
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        db.execute("PRAGMA query_only = 1")
        hnums: list[int] | None = None
        try:
            rows = []
            for name in names:
                rows += db.execute(
                    "SELECT hnum FROM Name WHERE key = ? LIMIT ?", (name, MAX_PACKAGES)
                ).fetchall()
            if prefix:
                rows += db.execute(
                    "SELECT hnum FROM Name WHERE substr(key, 1, ?) = ? LIMIT ?",
                    (len(prefix), prefix, MAX_PACKAGES),
                ).fetchall()
            hnums = sorted({row[0] for row in rows if isinstance(row[0], int)})
        except sqlite3.DatabaseError:
            hnums = None  # no Name index: read every header
        blobs: list[bytes] = []
        if hnums is None:
            query = db.execute("SELECT blob FROM Packages LIMIT ?", (MAX_PACKAGES,))
            blobs = [bytes(row[0]) for row in query if isinstance(row[0], bytes | memoryview)]
        else:
            for hnum in hnums:
                row = db.execute("SELECT blob FROM Packages WHERE hnum = ?", (hnum,)).fetchone()
                if row is not None and isinstance(row[0], bytes | memoryview):
                    blobs.append(bytes(row[0]))
        return iter(blobs)
    finally:
        db.close()


# ---------------------------------------------------------------------------- Berkeley DB
def _bdb_headers(
    host: Host, folder: str, names: list[str] | tuple[str, ...], prefix: str | None
) -> Iterator[bytes] | None:
    path = _regular_file(host, f"{folder}/Packages")
    if path is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BDB_FILE:
            raise RpmdbError("not a regular file of a plausible size")
        return iter(list(_bdb_values(fd, st.st_size)))
    finally:
        os.close(fd)


def _bdb_values(fd: int, size: int) -> Iterator[bytes]:
    """Every value of a Berkeley DB hash database, page by page (deleted pages are type 0)."""
    meta = os.pread(fd, 512, 0)
    if len(meta) < 512:
        raise RpmdbError("no meta page")
    for order in ("<", ">"):
        magic, version, pagesize = struct.unpack_from(order + "III", meta, 12)
        if magic == BDB_HASH_MAGIC:
            break
    else:
        raise RpmdbError("not a Berkeley DB hash database")
    if not 8 <= version <= 10 or pagesize not in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
        raise RpmdbError("unsupported hash version or page size")
    (last_page,) = struct.unpack_from(order + "I", meta, 32)
    last_page = min(last_page, size // pagesize - 1)
    count = 0
    for pgno in range(1, last_page + 1):
        page = os.pread(fd, pagesize, pgno * pagesize)
        if len(page) != pagesize or page[25] not in (2, 13):  # P_HASH_UNSORTED, P_HASH
            continue
        (entries,) = struct.unpack_from(order + "H", page, 20)
        entries = min(entries, (pagesize - 26) // 2)
        offsets = struct.unpack_from(f"{order}{entries}H", page, 26)
        for index in range(1, entries, 2):  # items alternate key, value
            start, end = offsets[index], offsets[index - 1]
            if not 26 + 2 * entries <= start < end <= pagesize:
                continue
            value = _bdb_item(fd, order, pagesize, last_page, page[start:end])
            if value is not None:
                count += 1
                if count > MAX_PACKAGES:
                    return
                yield value


def _bdb_item(fd: int, order: str, pagesize: int, last_page: int, item: bytes) -> bytes | None:
    """An item's bytes: inline (H_KEYDATA) or on a chain of overflow pages (H_OFFPAGE)."""
    if item[:1] == b"\x01":
        return item[1:]
    if item[:1] != b"\x03" or len(item) < 12:
        return None
    pgno, total = struct.unpack_from(order + "II", item, 4)
    if total > MAX_HEADER:
        return None
    chunks: list[bytes] = []
    have = 0
    seen: set[int] = set()
    while have < total:
        if not 0 < pgno <= last_page or pgno in seen:
            return None  # out of the file, or a loop
        seen.add(pgno)
        page = os.pread(fd, pagesize, pgno * pagesize)
        if len(page) != pagesize or page[25] != 7:  # P_OVERFLOW
            return None
        (used,) = struct.unpack_from(order + "H", page, 22)
        if used + 26 > pagesize or used > total - have or used == 0:
            return None
        chunks.append(page[26 : 26 + used])
        have += used
        (pgno,) = struct.unpack_from(order + "I", page, 16)
    return b"".join(chunks)


def _regular_file(host: Host, rel: str) -> str | None:
    """The real path of a regular file inside the root; None for anything else."""
    if not host.is_file(rel):
        return None
    return host.resolve(rel)
