"""RPM hosts under --root: the package database is read in place (sqlite and Berkeley DB).

The databases are written by the real `rpm` from packages built with `rpmbuild`; the kernels'
names and versions are those of real Rocky Linux 9, Rocky Linux 8 and SUSE Linux Enterprise 15
SP5 kernels. Install times are rpm's own (INSTALLTIME); each snapshot's boot time is put between
or after them to make a reboot pending or show that the last boot skipped the update.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hostdata import ROCKY9_OS_RELEASE
from rpm_support import (
    bdb_ro_lists,
    berkeley_db,
    build_rpm,
    copy_db,
    install,
    wait_past,
)
from snapshots_kernel import (
    PROC_MODULES,
    ROCKY_PROC_VERSION,
    ROCKY_RUNNING,
    ROCKY_UPDATE,
    proc_stat,
)
from support.cli import codes, finding, report_of, run_preflight
from support.snapshot import Snapshot

from preflight.host import Host

ROCKY8_RUNNING = "4.18.0-513.5.1.el8_9.x86_64"
ROCKY8_UPDATE = "4.18.0-513.9.1.el8_9.x86_64"
ROCKY8_PROC_VERSION = (
    f"Linux version {ROCKY8_RUNNING} (mockbuild@iad1-prod-build001.bld.equ.rockylinux.org) "
    "(gcc version 8.5.0 20210514 (Red Hat 8.5.0-20) (GCC)) #1 SMP Fri Nov 17 03:31:10 UTC 2023"
)
SUSE_RUNNING = "5.14.21-150500.55.39-default"
SUSE_PROC_VERSION = (
    f"Linux version {SUSE_RUNNING} (geeko@buildhost) (gcc (SUSE Linux) 7.5.0, GNU ld (GNU "
    "Binutils; SUSE Linux Enterprise 15) 2.41.0.20230908-150100.7.46) #1 SMP PREEMPT_DYNAMIC "
    "Tue Dec 5 10:08:51 UTC 2023 (f4b2ce0)"
)
SLES15_OS_RELEASE = """NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:suse:sles:15:sp5"
DOCUMENTATION_URL="https://documentation.suse.com/"
"""


@dataclass
class Database:
    root: Path  # a snapshot root holding only the database
    first: int  # install time of the running kernel's packages
    second: int  # install time of the update


def two_installs(
    workdir: Path,
    old: list[tuple[str, str, str]],
    new: list[tuple[str, str, str]],
    dbpath: str = "/var/lib/rpm",
) -> Database:
    """A database where `old` (name, version, release) was installed, then `new` seconds later."""
    root = workdir / "db"
    root.mkdir()
    first = install(root, [build_rpm(workdir, *spec, "x86_64") for spec in old], dbpath)
    wait_past(max(first))
    second = install(root, [build_rpm(workdir, *spec, "x86_64") for spec in new], dbpath)
    return Database(root, max(first), min(second))


@pytest.fixture(scope="module")
def rocky9_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    old, new = "362.8.1.el9_3", "362.13.1.el9_3"
    return two_installs(
        tmp_path_factory.mktemp("rocky9"),
        [
            ("kernel-core", "5.14.0", old),
            ("kernel", "5.14.0", old),
            ("puppet-agent", "7.28.0", "1.el9"),
            ("kamailio", "5.7.4", "1.el9"),
            ("bash", "5.1.8", "6.el9_1"),
        ],
        [("kernel-core", "5.14.0", new), ("kernel", "5.14.0", new)],
    )


@pytest.fixture(scope="module")
def rocky8_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    old, new = "513.5.1.el8_9", "513.9.1.el8_9"
    return two_installs(
        tmp_path_factory.mktemp("rocky8"),
        [("kernel-core", "4.18.0", old), ("kernel", "4.18.0", old), ("bash", "4.4.20", "4.el8_6")],
        [("kernel-core", "4.18.0", new), ("kernel", "4.18.0", new)],
    )


def rpm_host(snap: Snapshot, proc_version: str, os_release: str, btime: int, cmdline: str) -> None:
    release = proc_version.split()[2]
    snap.write("proc/version", proc_version + "\n")
    snap.write("proc/sys/kernel/osrelease", release + "\n")
    snap.write("proc/cmdline", cmdline + "\n")
    snap.write("proc/stat", proc_stat(btime))
    snap.write("proc/modules", PROC_MODULES)
    snap.write("etc/os-release", os_release)
    snap.write(f"lib/modules/{release}/modules.dep", "kernel/drivers/net/tun.ko.xz:\n")


def kernel_result(root: Snapshot) -> tuple[int, dict[str, Any]]:
    run = run_preflight("check", "kernel", "--root", str(root), "--format", "json")
    (check,) = report_of(run)["checks"]
    return run.returncode, check


def rocky9(snap: Snapshot, db: Database, btime: int) -> Snapshot:
    rpm_host(
        snap,
        ROCKY_PROC_VERSION,
        ROCKY9_OS_RELEASE,
        btime,
        f"BOOT_IMAGE=(hd0,gpt2)/vmlinuz-{ROCKY_RUNNING} root=/dev/mapper/rl-root ro",
    )
    copy_db(db.root, snap.root)
    return snap


def test_rocky9_sqlite_update_after_boot_requires_reboot(
    snapshot: Snapshot, rocky9_db: Database
) -> None:
    code, check = kernel_result(rocky9(snapshot, rocky9_db, rocky9_db.first + 1))
    assert code == 1 and codes(check) == ["kernel.reboot-required"]
    installed = check["details"]["installed"]
    assert [(k["package"], k["release"], k["source"]) for k in installed] == [
        ("kernel-core", ROCKY_RUNNING, "rpm"),
        ("kernel-core", ROCKY_UPDATE, "rpm"),
    ]
    assert installed[1]["version"] == "5.14.0-362.13.1.el9_3"
    # The install time is rpm's INSTALLTIME, read from the database.
    assert Host(str(snapshot.root)).packages.get("kernel-core") is not None
    assert "rebooting will load " + ROCKY_UPDATE in check["findings"][0]["message"]


def test_rocky9_sqlite_update_before_boot_was_skipped(
    snapshot: Snapshot, rocky9_db: Database
) -> None:
    code, check = kernel_result(rocky9(snapshot, rocky9_db, rocky9_db.second + 1))
    assert code == 2 and codes(check) == ["kernel.externally-managed"]
    found = finding(check, "kernel.externally-managed")
    assert "before the last boot" in found["message"]
    assert any("grubby --default-kernel" in step for step in found["remediation"])


def test_rpm_database_serves_every_package_lookup(snapshot: Snapshot, rocky9_db: Database) -> None:
    """The puppet and kamailio checks ask the same package source as the kernel check."""
    rocky9(snapshot, rocky9_db, rocky9_db.first + 1)
    db = Host(str(snapshot.root)).packages
    assert db.manager == "rpm"
    puppet = db.get("puppet-agent")
    assert puppet is not None and puppet.version == "7.28.0-1.el9" and puppet.arch == "x86_64"
    assert puppet.installed_at == rocky9_db.first
    kamailio = db.get("kamailio")
    assert kamailio is not None and kamailio.version == "5.7.4-1.el9"
    assert [p.name for p in db.find(prefix="kam")] == ["kamailio"]
    assert db.get("openvpn") is None
    facts = run_preflight("facts", "--root", str(snapshot.root))
    assert facts.returncode == 0 and "362.13.1.el9_3" in facts.stdout


def test_rocky8_berkeley_db(snapshot: Snapshot, rocky8_db: Database) -> None:
    """RHEL 8's Berkeley DB Packages, which the real rpm reads back with bdb_ro."""
    rpm_host(
        snapshot,
        ROCKY8_PROC_VERSION,
        ROCKY9_OS_RELEASE.replace("9.3 (Blue Onyx)", "8.9 (Green Obsidian)"),
        rocky8_db.first + 1,
        f"BOOT_IMAGE=(hd0,msdos1)/vmlinuz-{ROCKY8_RUNNING} ro",
    )
    packages = snapshot.root / "var/lib/rpm/Packages"
    berkeley_db(rocky8_db.root, packages)
    assert "kernel-core-4.18.0-513.9.1.el8_9.x86_64" in bdb_ro_lists(packages.parent)
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.reboot-required"]
    releases = [k["release"] for k in check["details"]["installed"]]
    assert releases == [ROCKY8_RUNNING, ROCKY8_UPDATE] or releases == [
        ROCKY8_UPDATE,
        ROCKY8_RUNNING,
    ]
    update = next(k for k in check["details"]["installed"] if k["release"] == ROCKY8_UPDATE)
    assert update["source"] == "rpm" and update["installed_at"] is not None


def test_damaged_databases_never_crash(snapshot: Snapshot, rocky9_db: Database) -> None:
    rocky9(snapshot, rocky9_db, rocky9_db.first + 1)
    sqlite = snapshot.root / "var/lib/rpm/rpmdb.sqlite"
    data = bytearray(sqlite.read_bytes())
    data[4096:8192] = b"\xff" * 4096
    sqlite.write_bytes(bytes(data))
    (snapshot.root / "var/lib/rpm/Packages").write_bytes(
        b"\0" * 12
        + (0x061561).to_bytes(4, "little")
        + (9).to_bytes(4, "little")
        + (4096).to_bytes(4, "little")
        + b"\0" * 8
        + (0xFFFFFFF).to_bytes(4, "little")
        + b"\xff" * 5000
    )
    code, check = kernel_result(snapshot)
    assert check["status"] != "error", check


@pytest.fixture(scope="module")
def sles15_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """SLES 15 SP5 keeps its database in /usr/lib/sysimage/rpm (/var/lib/rpm links to it)."""
    return two_installs(
        tmp_path_factory.mktemp("sles15"),
        [("kernel-default", "5.14.21", "150500.55.39.1"), ("bash", "4.4", "150400.27.3.2")],
        [("kernel-default", "5.14.21", "150500.55.44.1")],
        dbpath="/usr/lib/sysimage/rpm",
    )


def test_suse_kernel_default_from_sysimage_database(
    snapshot: Snapshot, sles15_db: Database
) -> None:
    rpm_host(
        snapshot,
        SUSE_PROC_VERSION,
        SLES15_OS_RELEASE,
        sles15_db.first + 1,
        f"BOOT_IMAGE=/boot/vmlinuz-{SUSE_RUNNING} root=UUID=5a8a2a1c-0d4d-4f6e-9a3b-2f4c5e6d7a8b "
        "splash=silent mitigations=auto quiet",
    )
    copy_db(sles15_db.root, snapshot.root, "/usr/lib/sysimage/rpm")
    snapshot.symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm")
    code, check = kernel_result(snapshot)
    assert code == 1 and codes(check) == ["kernel.reboot-required"]
    installed = check["details"]["installed"]
    assert [(k["package"], k["release"]) for k in installed] == [
        ("kernel-default", SUSE_RUNNING),
        ("kernel-default", "5.14.21-150500.55.44-default"),
    ]
    assert "rebooting will load 5.14.21-150500.55.44-default" in check["findings"][0]["message"]


def test_berkeley_db_overflow_loop_and_lies_are_bounded(snapshot: Snapshot, tmp_path: Path) -> None:
    """A header larger than a page lives on a chain of overflow pages: a chain turned into a
    loop, or lengths that point past the file, lose that header only, quickly."""
    import time

    root = tmp_path / "db"
    root.mkdir()
    long_text = "The Linux kernel documentation. " * 600  # ~19 KB: five overflow pages
    install(
        root,
        [
            build_rpm(tmp_path, "kernel-doc", "4.18.0", "513.5.1.el8_9", "x86_64", long_text),
            build_rpm(tmp_path, "kernel-core", "4.18.0", "513.5.1.el8_9", "x86_64"),
        ],
    )
    packages = snapshot.root / "var/lib/rpm/Packages"
    berkeley_db(root, packages)
    db = Host(str(snapshot.root)).packages
    assert {p.name for p in db.find(names=["kernel-doc", "kernel-core"])} == {
        "kernel-doc",
        "kernel-core",
    }
    data = bytearray(packages.read_bytes())
    pagesize = int.from_bytes(data[20:24], "little")
    overflow = [n for n in range(1, len(data) // pagesize) if data[n * pagesize + 25] == 7]
    assert len(overflow) >= 2
    for page in overflow:  # every page's next is the first one: the chain becomes a loop
        data[page * pagesize + 16 : page * pagesize + 20] = overflow[0].to_bytes(4, "little")
    packages.write_bytes(bytes(data))
    started = time.monotonic()
    found = Host(str(snapshot.root)).packages.find(names=["kernel-doc", "kernel-core"])
    assert [p.name for p in found] == ["kernel-core"] and time.monotonic() - started < 1


def test_collect_round_trip_keeps_the_rpm_database(
    snapshot: Snapshot, rocky9_db: Database, tmp_path: Path
) -> None:
    """`preflight collect` of an RPM host copies its database, so the snapshot gives the same
    verdict as the host."""
    import tarfile

    rocky9(snapshot, rocky9_db, rocky9_db.first + 1)
    tarball = tmp_path / "rocky.tar.gz"
    run = run_preflight("collect", "--root", str(snapshot.root), str(tarball))
    assert run.returncode == 0, run.stderr
    copy = tmp_path / "copy"
    with tarfile.open(tarball) as archive:
        archive.extractall(copy)  # noqa: S202 - our own tarball, in a test
    assert (copy / "var/lib/rpm/rpmdb.sqlite").is_file()
    _, original = kernel_result(snapshot)
    _, collected = kernel_result(Snapshot(copy))
    assert collected["code"] == original["code"] == "kernel.reboot-required"
    assert collected["details"]["installed"] == original["details"]["installed"]
