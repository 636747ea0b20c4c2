"""Host facts: computed once and shared, derived the same way for every check and report."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hostdata import DEBIAN7_OS_RELEASE, DEBIAN12_OS_RELEASE, UBUNTU1204_OS_RELEASE
from support.cli import run_preflight
from support.components import require, require_command, require_root
from support.snapshot import Snapshot

from preflight.facts import distribution as facts_distribution
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


# ------------------------------------------------------------------ processes and sockets
def _copy_proc_entry(snapshot: Snapshot, pid: int) -> None:
    """ROOT/proc/<pid> as `preflight collect` would store it: the real files of a live process."""
    for name in ("stat", "status", "cmdline"):
        snapshot.write(f"proc/{pid}/{name}", Path(f"/proc/{pid}/{name}").read_bytes())
    for name in ("exe", "cwd"):
        snapshot.symlink(f"proc/{pid}/{name}", os.readlink(f"/proc/{pid}/{name}"))


def test_process_table_of_the_live_host_and_of_a_snapshot_agree(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    child = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        live = Host("/").processes
        mine = live.get(os.getpid())
        proc = live.get(child.pid)
        assert mine is not None and proc is not None
        assert proc.ppid == os.getpid() and proc.name == "sleep" and not proc.zombie
        assert proc.argv == ["sleep", "30"] and proc.cwd == str(tmp_path)
        assert proc.exe == os.path.realpath(shutil.which("sleep") or "")
        assert proc.user == pwd.getpwuid(os.getuid()).pw_name and proc.uid == os.getuid()
        assert proc.start_time is not None and abs(proc.start_time - time.time()) < 10
        # Other children of this pytest may exist (a session-wide Kamailio) or end meanwhile
        # (another test's helper): every process listed must be a child as the kernel says.
        listed = {p.pid for p in live.children(os.getpid())}
        assert child.pid in listed
        for pid in listed:
            try:
                stat_line = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue  # ended since the table was read
            assert int(stat_line.rsplit(")", 1)[1].split()[1]) == os.getpid(), pid
        assert child.pid in [p.pid for p in live.descendants(os.getppid())]

        for pid in (os.getpid(), child.pid):
            _copy_proc_entry(snapshot, pid)
        snapshot.write("proc/stat", Path("/proc/stat").read_bytes())  # btime: the start times
        snapshot.write("etc/passwd", Path("/etc/passwd").read_bytes())
        table = Host(str(snapshot)).processes
        assert table.visible and len(table) == 2
        copied = table.get(child.pid)
        assert copied is not None
        for attr in ("pid", "ppid", "name", "uid", "zombie", "argv", "cwd", "exe", "user"):
            assert getattr(copied, attr) == getattr(proc, attr), attr
        assert copied.start_time is not None and abs(copied.start_time - proc.start_time) < 0.02
        assert [p.pid for p in table.children(os.getpid())] == [child.pid]
    finally:
        child.kill()
        child.wait()


def test_exe_of_a_removed_program_says_so_live_and_in_a_snapshot(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    """A program deleted (or replaced by an upgrade) since it started: its exe is the kernel's
    link, " (deleted)" included, which trust rules rely on (psutil's exe() drops it)."""
    program = tmp_path / "sleeper"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    child = subprocess.Popen([str(program), "30"])
    try:
        program.unlink()
        proc = Host("/").processes.get(child.pid)
        assert proc is not None and proc.exe == f"{program} (deleted)"
        assert proc.uids == (os.getuid(), os.geteuid())
        _copy_proc_entry(snapshot, child.pid)
        copied = Host(str(snapshot)).processes.get(child.pid)
        assert copied is not None
        assert copied.exe == proc.exe and copied.uids == proc.uids
    finally:
        child.kill()
        child.wait()


def test_a_child_nobody_reaped_is_a_zombie() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    try:
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline, "`true` did not exit"
            time.sleep(0.01)
        proc = Host("/").processes.get(child.pid)
        assert proc is not None and proc.zombie and proc.argv == []
    finally:
        child.wait()


def test_a_snapshot_without_a_process_list_says_so(snapshot: Snapshot) -> None:
    snapshot.write("proc/1/environ", b"container=lxc\0")  # what collect keeps of pid 1 alone
    table = Host(str(snapshot)).processes
    assert not table.visible and list(table) == []


def test_listening_sockets_and_who_holds_them() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("::1", 0))
        host = Host("/")
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        [listening] = host.sockets.on_port("tcp", tcp_port)
        [bound] = host.sockets.on_port("udp", udp_port)
        assert (listening.addr, bound.addr) == ("127.0.0.1", "::1")
        assert {listening.inode, bound.inode} <= (host.sockets.inodes_of(os.getpid()) or set())
        owners = host.sockets.holders({listening.inode, bound.inode}, host.processes)
        assert {p.pid for p in owners.values()} == {os.getpid()}
        assert host.sockets is host.sockets, "read once per run"


# ---------------------------------------------------------------------- distribution (distro)
def test_os_release_stays_inside_the_snapshot_and_never_blocks(snapshot: Snapshot) -> None:
    # An absolute link names the snapshot's own usr/lib/os-release, not this machine's.
    snapshot.write("usr/lib/os-release", DEBIAN7_OS_RELEASE)
    snapshot.symlink("etc/os-release", "/usr/lib/os-release")
    assert Host(str(snapshot)).os_release == facts_distribution.parse_os_release(DEBIAN7_OS_RELEASE)
    (Path(str(snapshot)) / "etc/os-release").unlink()
    os.mkfifo(Path(str(snapshot)) / "etc/os-release")  # nobody writes: a read would block
    host = Host(str(snapshot))
    assert (host.os_release or {}).get("VERSION_ID") == "7"
    assert host.os_codename == "wheezy"


def test_os_release_keeps_the_good_lines_of_a_damaged_file(snapshot: Snapshot) -> None:
    snapshot.write("etc/os-release", DEBIAN12_OS_RELEASE + 'BUG_REPORT_URL="unclosed\n')
    osr = Host(str(snapshot)).os_release or {}
    assert (osr.get("ID"), osr.get("VERSION_ID"), osr.get("VERSION_CODENAME")) == (
        "debian",
        "12",
        "bookworm",
    )


def test_process_and_socket_tables_are_read_once_for_every_check_thread() -> None:
    host = Host("/")
    start = threading.Barrier(6)
    seen: list[tuple[int, int]] = []

    def check() -> None:
        start.wait()
        seen.append((id(host.processes), id(host.sockets)))

    threads = [threading.Thread(target=check) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and len(seen) == 6


def test_user_and_group_names_come_from_the_roots_own_files(snapshot: Snapshot) -> None:
    # Debian's base-passwd lines; a second uid 0 and a non-canonical number as an attacker or a
    # sloppy tool might leave them: getpwuid answers with the first canonical match.
    snapshot.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n"
        "odd:x:0100:100::/:/usr/sbin/nologin\n"
        "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n",
    )
    snapshot.write("etc/group", "root:x:0:\nnetdev:x:108:\n")
    users = Host(str(snapshot)).users
    assert (users.user_name(0), users.user_name(42), users.user_name(100)) == ("root", "_apt", None)
    assert (users.group_name(108), users.group_name(65534)) == ("netdev", None)


def test_accounts_by_name_have_their_uid_primary_and_supplementary_groups(
    snapshot: Snapshot,
) -> None:
    """What a process switched to an account may open: its uid, its primary group and every
    group whose member list names it, all from the root's own files (the kamailio check asks
    this of the account Kamailio runs as)."""
    snapshot.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\n"
        "kamailio:x:112:120::/run/kamailio:/usr/sbin/nologin\n"
        "kamailio:x:999:999::/:/bin/sh\n"  # a second line of a name: getpwnam takes the first
        "odd:x:0100:100::/:/usr/sbin/nologin\n",
    )
    snapshot.write(
        "etc/group",
        "root:x:0:\nssl-cert:x:110:postgres,kamailio\nkamailio:x:120:\naudio:x:29:kamailiox\n",
    )
    users = Host(str(snapshot)).users
    account = users.account("kamailio")
    assert account is not None
    assert (account.uid, account.gid, account.gids) == (112, 120, frozenset({110, 120}))
    assert users.uid_of("kamailio") == 112
    assert users.uid_of("odd") is None and users.account("nosuch") is None
    assert users.describe_user(112) == "user kamailio (uid 112)"
    assert users.describe_user(4242) == "uid 4242"
    assert (users.describe_group(110), users.describe_group(7)) == ("ssl-cert (gid 110)", "gid 7")


def test_a_live_account_only_nss_knows_is_named_as_ls_names_it(tmp_path: Path) -> None:
    """On the live host an account from another NSS source (LDAP, sssd; here the real
    libnss-extrausers, in a private mount namespace) is named and has its groups, as `ls -l`
    and `id` show it; the passwd and group files do not list it."""
    require_root()
    require_command("unshare")
    require("libnss-extrausers", Path("/usr/lib/libnss_extrausers.so.2").exists())
    varlib = tmp_path / "varlib"
    (varlib / "extrausers").mkdir(parents=True)
    (varlib / "extrausers" / "passwd").write_text("sipops:x:54321:54321::/:/bin/sh\n")
    (varlib / "extrausers" / "group").write_text("sipops:x:54321:\nsipcerts:x:54400:sipops\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("passwd: files extrausers\ngroup: files extrausers\n")
    probe = (
        "from preflight.host import Host\n"
        "users = Host('/').users\n"
        "account = users.account('sipops')\n"
        "print(users.describe_user(54321), users.describe_group(54400), sep='|')\n"
        "print(account.uid, sorted(account.gids), users.uid_of('sipops'), sep='|')\n"
        "print(Host('/').users.describe_user(54322))\n"
    )
    script = (
        f"mount --bind {nsswitch} /etc/nsswitch.conf && mount --bind {varlib} /var/lib && "
        f'exec "$0" -c "$1"'
    )
    run = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, sys.executable, probe],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "user sipops (uid 54321)|sipcerts (gid 54400)",
        "54321|[54321, 54400]|54321",
        "uid 54322",
    ]
    # A snapshot has only its own files: NSS is never asked for its names.
    assert Host(str(tmp_path)).users.describe_user(54321) == "uid 54321"


@pytest.mark.parametrize(
    ("dmi", "provider"),
    [
        # (sys_vendor, product_name, bios_vendor, chassis_asset_tag) as each platform writes them
        (("DigitalOcean", "Droplet", "DigitalOcean", ""), "digitalocean"),
        (("Amazon EC2", "m5.large", "Amazon EC2", "Amazon EC2"), "aws"),
        (("Xen", "HVM domU", "Xen", ""), None),  # an EC2 Xen instance names no one in DMI
        (("Google", "Google Compute Engine", "Google", ""), "gcp"),
        (("Hetzner", "vServer", "Hetzner", ""), "hetzner"),
        (("Vultr", "VC2", "SeaBIOS", ""), "vultr"),
        (("Akamai", "Linode", "SeaBIOS", ""), "linode"),
        (
            ("QEMU", "Standard PC (i440FX + PIIX, 1996)", "SeaBIOS", "OracleCloud.com"),
            "oracle",
        ),
        (
            (
                "Microsoft Corporation",
                "Virtual Machine",
                "Microsoft Corporation",
                "7783-7084-3265-9085-8269-3286-77",
            ),
            "azure",
        ),
        # Hyper-V outside Azure writes the same names without Azure's asset tag
        (("Microsoft Corporation", "Virtual Machine", "Microsoft Corporation", "None"), None),
        # a libvirt or Proxmox VE guest: a hypervisor, no provider
        (("QEMU", "Standard PC (Q35 + ICH9, 2009)", "SeaBIOS", ""), None),
    ],
)
def test_the_provider_is_named_by_the_dmi_the_platform_writes(
    snapshot: Snapshot, dmi: tuple[str, str, str, str], provider: str | None
) -> None:
    """One DMI vendor table for the report's provider and the kernel check's evidence."""
    from preflight.facts.platform import DMI_FIELDS

    for name, value in zip(DMI_FIELDS, dmi, strict=True):
        if value:
            snapshot.write(f"sys/class/dmi/id/{name}", value + "\n")
    host = Host(str(snapshot))
    assert host.provider == provider
    assert host.dmi_vendor == (provider or ("qemu" if dmi[0] == "QEMU" else None))
