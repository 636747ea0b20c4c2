"""Real RPM databases for host snapshots, written by the real `rpm` (Debian's rpm 4.18).

Packages are built with `rpmbuild` (empty payloads, real names, versions and architectures) and
installed with `rpm --root SNAP --dbpath /var/lib/rpm -i --justdb`, so the sqlite database and
every header in it are rpm's own, install times (INSTALLTIME) included. The Berkeley DB variant
(RHEL 8 and older) is the same headers loaded into a hash database with `db5.3_load` (Debian's
rpm cannot write Berkeley DB; its read-only bdb_ro backend reads the result back).
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
import time
from pathlib import Path

from support.components import require_command

DBPATH = "/var/lib/rpm"


def build_rpm(
    workdir: Path, name: str, version: str, release: str, arch: str, description: str = ""
) -> Path:
    """An empty binary package with this name, version, release and architecture."""
    rpmbuild = require_command("rpmbuild")
    spec = workdir / f"{name}-{version}-{release}.spec"
    spec.write_text(
        f"Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: {name}\n"
        f"License: GPLv2\nBuildArch: {arch}\n%description\n{description or name}\n%files\n"
    )
    subprocess.run(
        [
            rpmbuild,
            "-bb",
            "--quiet",
            "--define",
            f"_topdir {workdir / 'top'}",
            "--target",
            arch,
            str(spec),
        ],
        check=True,
        capture_output=True,
    )
    return workdir / "top" / "RPMS" / arch / f"{name}-{version}-{release}.{arch}.rpm"


def install(root: Path, packages: list[Path], dbpath: str = DBPATH) -> list[int]:
    """`rpm -i --justdb` into ROOT's database (created if absent); the install times rpm
    recorded, one per package."""
    rpm = require_command("rpm")
    base = [rpm, "--root", str(root), "--dbpath", dbpath]
    if not (root / dbpath.lstrip("/") / "rpmdb.sqlite").exists():
        subprocess.run([*base, "--initdb"], check=True, capture_output=True)
    subprocess.run(
        [*base, "-i", "--justdb", "--nodeps", "--ignorearch", "--ignoreos", *map(str, packages)],
        check=True,
        capture_output=True,
    )
    query = subprocess.run(
        [*base, "-q", "--qf", "%{INSTALLTIME}\\n", *(p.name[: -len(".rpm")] for p in packages)],
        check=True,
        capture_output=True,
        text=True,
    )
    return [int(line) for line in query.stdout.split()]


def wait_past(moment: int) -> None:
    """Sleep until the clock is two seconds past `moment` (INSTALLTIME counts seconds)."""
    while time.time() < moment + 2:
        time.sleep(0.2)


def copy_db(source_root: Path, target_root: Path, dbpath: str = DBPATH) -> None:
    """The database files of one snapshot into another."""
    shutil.copytree(source_root / dbpath.lstrip("/"), target_root / dbpath.lstrip("/"))


def berkeley_db(source_root: Path, target: Path) -> None:
    """A Berkeley DB hash `Packages` holding the sqlite database's headers under their header
    numbers (4-byte native-endian keys, as rpm stores them)."""
    loader = require_command("db5.3_load")
    with sqlite3.connect(
        f"file:{source_root / DBPATH.lstrip('/')}/rpmdb.sqlite?mode=ro", uri=True
    ) as db:
        rows = db.execute("SELECT hnum, blob FROM Packages").fetchall()
    dump = ["VERSION=3", "format=bytevalue", "type=hash", "HEADER=END"]
    for hnum, blob in rows:
        dump += [" " + struct.pack("<I", hnum).hex(), " " + bytes(blob).hex()]
    dump.append("DATA=END")
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([loader, str(target)], input="\n".join(dump) + "\n", text=True, check=True)


def bdb_ro_lists(dbdir: Path) -> list[str]:
    """What the real rpm lists from a Berkeley DB folder with its read-only backend."""
    rpm = require_command("rpm")
    listing = subprocess.run(
        [
            rpm,
            "--dbpath",
            str(dbdir),
            "--define",
            "_db_backend bdb_ro",
            "-qa",
            "--qf",
            "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n",
        ],
        capture_output=True,
        text=True,
    )
    return sorted(listing.stdout.split())
