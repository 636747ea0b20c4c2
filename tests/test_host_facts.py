"""Host facts: computed once and shared, derived the same way for every check and report."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import Snapshot, run_preflight
from hostdata import DEBIAN7_OS_RELEASE, DEBIAN12_OS_RELEASE, UBUNTU1204_OS_RELEASE

from preflight.host import Host

DEBIAN7_BANNER = (
    "Linux version 3.2.0-4-amd64 (debian-kernel@lists.debian.org) "
    "(gcc version 4.6.3 (Debian 4.6.3-14) ) #1 SMP Debian 3.2.54-2"
)
OPENVPN_STANZA = """Package: openvpn
Status: install ok installed
Architecture: amd64
Version: 2.6.14-0+deb12u2
"""


class CountingHost(Host):
    """A real Host that counts its file reads (what a shared fact must not repeat)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def read_bytes(self, rel: str, limit: int = 1 << 20) -> bytes | None:
        with self._count_lock:
            self.reads[rel] = self.reads.get(rel, 0) + 1
        return super().read_bytes(rel, limit)


def test_facts_are_computed_once_when_checks_ask_at_the_same_time(snapshot: Snapshot) -> None:
    snapshot.write("var/lib/dpkg/status", OPENVPN_STANZA)
    host = CountingHost(str(snapshot))
    start = threading.Barrier(8)
    seen: list[object] = []

    def check() -> None:
        start.wait()
        seen.append(host.packages)
        assert host.packages.get("openvpn") is not None

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert host.reads["var/lib/dpkg/status"] == 1
    assert len({id(db) for db in seen}) == 1, "every check shares one PackageDB"


def test_release_falls_back_to_proc_version_for_every_check(snapshot: Snapshot) -> None:
    snapshot.write("proc/version", DEBIAN7_BANNER + "\n")  # no proc/sys/kernel/osrelease
    facts = run_preflight("facts", "--root", str(snapshot)).json()
    assert facts["kernel"]["release"] == "3.2.0-4-amd64"
    assert facts["kernel"]["version"] == "#1 SMP Debian 3.2.54-2"
    assert facts["kernel"]["modules_dir"] is False  # known release, no lib/modules/ for it
    snapshot.write("proc/version", "\x00\x00garbage\n")
    assert run_preflight("facts", "--root", str(snapshot)).json()["kernel"]["release"] is None


def test_codename_for_releases_whose_os_release_lacks_it(snapshot: Snapshot) -> None:
    def codename() -> str | None:
        return run_preflight("facts", "--root", str(snapshot)).json()["os"]["codename"]

    snapshot.write("etc/os-release", DEBIAN12_OS_RELEASE)
    assert codename() == "bookworm"
    snapshot.write("etc/os-release", DEBIAN7_OS_RELEASE)
    assert codename() == "wheezy"
    snapshot.write("etc/os-release", UBUNTU1204_OS_RELEASE)
    snapshot.write(
        "etc/lsb-release",
        "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=12.04\nDISTRIB_CODENAME=precise\n"
        'DISTRIB_DESCRIPTION="Ubuntu 12.04.5 LTS"\n',
    )
    assert codename() == "precise"


def test_boot_image_and_loaded_modules(snapshot: Snapshot) -> None:
    snapshot.write("proc/sys/kernel/osrelease", "6.1.0-26-amd64\n")
    snapshot.write(
        "proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 root=UUID=0b7e ro quiet\n"
    )
    snapshot.write(
        "proc/modules",
        "tun 61440 0 - Live 0x0000000000000000\next4 1019904 1 - Live 0x0000000000000000\n",
    )
    snapshot.mkdir("lib/modules/6.1.0-26-amd64")
    kernel = run_preflight("facts", "--root", str(snapshot)).json()["kernel"]
    assert kernel["boot_image"] == "/boot/vmlinuz-6.1.0-26-amd64"
    assert kernel["loaded_modules"] == ["ext4", "tun"]
    assert kernel["modules_dir"] is True
    (snapshot.root / "proc/modules").unlink()  # a kernel built without module support
    assert (
        run_preflight("facts", "--root", str(snapshot)).json()["kernel"]["loaded_modules"] is None
    )


def test_glob_never_looks_outside_the_root(snapshot: Snapshot, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "link").symlink_to("dir")  # exists only outside the snapshot
    snapshot.symlink("x/r", str(outside))  # absolute: ROOT/<that path>, not this machine's
    host = Host(str(snapshot))
    assert host.glob("x/r/link") == []
    snapshot.symlink("dangling", "nowhere")
    assert host.glob("dangling") == ["dangling"]  # a dangling link inside the root matches


def test_which_finds_sbin_programs_even_with_crons_short_path() -> None:
    host = Host("/", env={"PATH": "/usr/bin:/bin"})
    found = host.which("openvpn")
    assert found is not None and found.endswith("sbin/openvpn")
    assert host.which_all("openvpn") == []  # which_all reports PATH as it is


def test_package_order_never_raises_and_owns_reads_the_file_list() -> None:
    db = Host("/").packages
    assert db.order("2.6.3-1", "2.6.14-0+deb12u2") == -1
    assert db.order("1.0", "not a version!") == 0
    assert db.order("5.14.0-362.8.1.el9_3", "5.14.0-362.13.1.el9_3", "rpm") == -1
    openvpn = db.get("openvpn")
    assert openvpn is not None and openvpn.list_file is not None
    assert db.owns(openvpn, "/usr/sbin/openvpn")
    assert not db.owns(openvpn, "/usr/sbin/kamailio")
