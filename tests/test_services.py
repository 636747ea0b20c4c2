"""The `services` check against real processes whose code is really replaced on disk.

Most tests start Debian's own python3 with LD_LIBRARY_PATH pointing at a copy of libssl and
libcrypto in a folder under /usr/local/lib (where locally installed code lives; /tmp is ignored
by design), then replace the copy the way dpkg does (write a new file, rename it over the old
one) so the running process keeps the deleted inode mapped. One test reinstalls the real libssl3
package with apt. Kamailio runs from its Debian init script, and pid 1 is tested, inside private
mount and pid namespaces, so nothing on the machine is touched.
"""

from __future__ import annotations

import calendar
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kamailio_support import free_port, kamailio_binary
from support.cli import NOBODY, PREFLIGHT, as_user, check_of, codes, report_of, run_preflight
from support.components import require, require_command, require_nobody_can_run, require_root
from support.namespace import Namespace

DEBIAN_PYTHON = "/usr/bin/python3"
SSL_LIBS = ("libssl.so.3", "libcrypto.so.3")
# Imports ssl (which maps libssl and libcrypto), says so, then waits to be stopped.
SLEEPER = "import ssl, time; print('ready', flush=True); time.sleep(600)"
# The same, as a parent and a forked child: one process tree.
FORKING_SLEEPER = (
    "import os, ssl, time\n"
    "child = os.fork()\n"
    "if child == 0:\n"
    "    time.sleep(600)\n"
    "    os._exit(0)\n"
    "print('ready', child, flush=True)\n"
    "time.sleep(600)\n"
)
MEMFD = "memfd: anonymous memory with a name (sealed code copies, JIT), never on disk"
SHM = "POSIX shared memory in /dev/shm"
DATA = (
    "data, not code: mapped without execute permission (the locale archive, caches, fonts, "
    "ICU data)"
)
ISO = "%Y-%m-%dT%H:%M:%SZ"
TMP = "a file in /tmp: temporary data, not installed code"


# ------------------------------------------------------------------ helpers
def system_lib(name: str) -> str:
    found = glob.glob(f"/usr/lib/*-linux-gnu/{name}")
    require(f"Debian's {name}", bool(found))
    return found[0]


def replace_like_dpkg(path: Path) -> None:
    """A new file with the same content renamed over the old one: the old inode lives on,
    deleted, in every process that maps it."""
    new = path.with_name(path.name + ".dpkg-new")
    shutil.copy2(path, new)
    os.replace(new, path)


@pytest.fixture
def libdir() -> Iterator[Path]:
    """A folder under /usr/local/lib, readable by all, with copies of libssl and libcrypto."""
    require_root()
    require("Debian's python3", os.access(DEBIAN_PYTHON, os.X_OK))
    folder = Path(tempfile.mkdtemp(prefix="preflight-services-", dir="/usr/local/lib"))
    folder.chmod(0o755)
    for name in SSL_LIBS:
        shutil.copy2(system_lib(name), folder / name)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Sleeper:
    """A running Debian python3 started by hand, stopped by its pid (and its child's)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str = "/") -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        words = self.process.stdout.readline().split()
        assert words[:1] == ["ready"], f"the process did not start: {words}"
        self.child = int(words[1]) if len(words) > 1 else None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        for pid in (self.child, self.pid):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process.wait(timeout=10)


@contextmanager
def sleeper(libs: Path | None, code: str = SLEEPER, user: int | None = None) -> Iterator[Sleeper]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if libs is not None:
        env["LD_LIBRARY_PATH"] = str(libs)
    prefix = as_user(user) if user is not None else []
    started = Sleeper([*prefix, DEBIAN_PYTHON, "-c", code], env)
    try:
        yield started
    finally:
        started.stop()


def services_result(*args: str, user: int | None = None, prefix: list[str] | None = None) -> Any:
    run = run_preflight(
        "check", "services", "--format", "json", *args, user=user, prefix=prefix or []
    )
    return check_of(report_of(run), "services"), run


def service_with(result: dict[str, Any], pid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(details of the service that holds `pid`, its finding): one finding per service, in
    the same order as details["services"]."""
    services = result["details"].get("services", [])
    assert len(services) == len(result["findings"]), result
    for service, finding in zip(services, result["findings"], strict=True):
        if pid in [p["pid"] for p in service["processes"]]:
            return service, finding
    raise AssertionError(f"pid {pid} not reported: {result['summary']}")


def reported_pids(result: dict[str, Any]) -> set[int]:
    return {p["pid"] for s in result["details"].get("services", []) for p in s["processes"]}


# ------------------------------------------------------------------ hand-started processes
def test_replaced_library_is_found_grouped_as_one_tree_and_the_restart_fixes_it(
    libdir: Path,
) -> None:
    with sleeper(libdir, FORKING_SLEEPER) as proc:
        before, _ = services_result()
        assert proc.pid not in reported_pids(before)
        replace_like_dpkg(libdir / "libssl.so.3")

        result, run = services_result()
        service, found = service_with(result, proc.pid)
        assert found["code"] == "services.restart-needed"
        assert found["status"] == "warn" and run.returncode == 1
        # parent and child are one service, named after the parent (the tree's root).
        assert {p["pid"] for p in service["processes"]} == {proc.pid, proc.child}
        assert service["kind"] == "process" and service["main_pid"] == proc.pid
        assert f"pid {proc.pid} (python3, uid 0)" in found["message"]
        assert "deleted libssl.so.3" in found["message"]
        assert "libcrypto" not in found["message"]  # untouched
        stale = service["processes"][0]["files"]
        assert [f["path"] for f in stale] == [str(libdir / "libssl.so.3")]
        assert stale[0]["state"] == "deleted"
        # Root's own process: its pids (a forked child outlives its parent's kill), then its
        # command line, shell-quoted, in its folder.
        assert found["remediation"][0] == f"kill {proc.pid} {proc.child}"
        assert found["remediation"][1] == (
            f"cd / && {DEBIAN_PYTHON} -c 'import os, ssl, time\n"
            "child = os.fork()\nif child == 0:\n    time.sleep(600)\n    os._exit(0)\n"
            "print('\"'\"'ready'\"'\"', child, flush=True)\ntime.sleep(600)\n'"
        )
        assert result["details"]["files"][str(libdir / "libssl.so.3")]["replaced_at"]

        # Follow the two commands verbatim; the restarted process maps the files on disk.
        subprocess.run(["sh", "-c", found["remediation"][0]], check=True, timeout=30)
        proc.process.wait(timeout=10)
        restarted = subprocess.Popen(
            ["sh", "-c", found["remediation"][1]],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert restarted.stdout is not None
            new_child = int(restarted.stdout.readline().split()[1])
            after, _ = services_result()
            assert not reported_pids(after) & {proc.pid, proc.child, restarted.pid, new_child}
        finally:
            os.killpg(restarted.pid, signal.SIGKILL)
            restarted.wait(timeout=10)


def test_a_path_that_now_holds_another_inode_is_replaced(libdir: Path) -> None:
    """Not deleted: the path still exists, but a bind mount put another file there. Run in a
    private mount namespace, so the mount is gone with it."""
    require_command("unshare")
    target = libdir / "libcrypto.so.3"
    other = libdir / "other.so"
    shutil.copy2(target, other)
    script = (
        f'LD_LIBRARY_PATH={libdir} {DEBIAN_PYTHON} -c "{SLEEPER}" > {libdir}/out & '
        f"pid=$!; while ! [ -s {libdir}/out ]; do sleep 0.05; done; "
        f"mount --bind {other} {target}; "
        f"{' '.join(PREFLIGHT)} check services --format json; kill $pid"
    )
    run = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    result = json.loads(run.stdout)["checks"][0]
    stale = [
        f
        for s in result["details"]["services"]
        for p in s["processes"]
        for f in p["files"]
        if f["path"] == str(target)
    ]
    assert stale and stale[0]["state"] == "replaced", result["summary"]
    assert "replaced libcrypto.so.3" in " ".join(f["message"] for f in result["findings"])


def test_memfd_shared_memory_tmp_and_data_files_are_not_reported(libdir: Path) -> None:
    """A process that maps an executable memfd, a deleted /dev/shm file, a deleted /tmp file
    and a replaced data file (mapped read-only, like the locale archive) runs no replaced
    package code. needrestart 3.6 calls a program run from a memfd an obsolete binary."""
    data = libdir / "data.bin"
    data.write_bytes(b"d" * 4096)
    code = (
        "import mmap, os, tempfile, time\n"
        f"with open({str(data)!r}, 'rb') as f:\n"
        "    archive = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
        "fd = os.memfd_create('preflight-jit')\n"
        "os.write(fd, b'\\xc3' * 4096)\n"
        "jit = mmap.mmap(fd, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)\n"
        "maps = [jit]\n"
        "for folder in ('/dev/shm', '/tmp'):\n"
        "    f = tempfile.NamedTemporaryFile(dir=folder, delete=False)\n"
        "    f.write(b'x' * 4096); f.flush()\n"
        "    maps.append(mmap.mmap(f.fileno(), 4096))\n"
        "    os.unlink(f.name)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    # And a program run from a memfd (as sandboxes and this machine's own agents do).
    from_memfd = (
        "import os\n"
        "fd = os.memfd_create('preflight-sleep', 0)\n"
        "os.write(fd, open('/bin/sleep', 'rb').read())\n"
        "print('ready', flush=True)\n"
        "os.execv(f'/proc/self/fd/{fd}', ['sleep', '600'])\n"
    )
    with sleeper(None, code) as proc, sleeper(None, from_memfd) as program:
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "/memfd:preflight-jit (deleted)" in maps
        assert "/dev/shm/" in maps and "(deleted)" in maps
        deadline = time.monotonic() + 10
        while not os.readlink(f"/proc/{program.pid}/exe").startswith("/memfd:"):
            assert time.monotonic() < deadline, "the memfd program did not start"
            time.sleep(0.05)
        replace_like_dpkg(data)
        assert f"{data} (deleted)" in Path(f"/proc/{proc.pid}/maps").read_text()
        result, _ = services_result()
        assert not reported_pids(result) & {proc.pid, program.pid}
        ignored = result["details"]["ignored"]
        assert str(data) in ignored[DATA]["examples"]
        assert "/memfd:preflight-jit" in ignored[MEMFD]["examples"]
        assert ignored[SHM]["mappings"] >= 1
        assert ignored[TMP]["mappings"] >= 1

        # What needrestart 3.6 says about the program run from a memfd: a false alarm,
        # an "obsolete binary" that no restart can renew.
        needrestart = subprocess.run(
            [require_command("needrestart"), "-v", "-b", "-r", "l"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = needrestart.stdout + needrestart.stderr
        assert f"#{program.pid} uses obsolete binary /memfd:preflight-sleep" in said


# ------------------------------------------------------------------ grouping by cgroup
@pytest.mark.parametrize(
    ("cgroup", "owner"),
    [
        # /proc/PID/cgroup lines as Debian 12 (systemd 252, cgroup v2) and older v1 hosts write them
        ("0::/system.slice/nginx.service\n", ("systemd", "nginx.service", None)),
        ("0::/system.slice/kamailio.service\n", ("systemd", "kamailio.service", None)),
        ("0::/init.scope\n", ("self", "init", None)),
        ("0::/user.slice/user-1000.slice/session-4.scope\n", ("session", "", "4")),
        (
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service\n",
            ("session", "", None),
        ),
        (
            "0::/system.slice/docker-3f2a9c1b7e5d.scope\n",
            ("container", "docker:3f2a9c1b7e5d", None),
        ),
        ("0::/machine.slice/libpod-8c1d2e.scope/container\n", ("container", "podman:8c1d2e", None)),
        ("12:pids:/docker/5b2c\n1:name=systemd:/docker/5b2c\n", ("container", "docker:5b2c", None)),
        ("1:name=systemd:/system.slice/ssh.service\n0::/\n", None),
        ("0::/\n", None),
    ],
)
def test_the_cgroup_names_the_service(cgroup: str, owner: Any) -> None:
    from preflight.facts.processes import cgroup_owner, parse_cgroup

    assert cgroup_owner(parse_cgroup(cgroup)) == owner


# ------------------------------------------------------------------ options
def test_fail_on_restart_and_ignore_processes(libdir: Path, tmp_path: Path) -> None:
    with sleeper(libdir) as proc:
        replace_like_dpkg(libdir / "libcrypto.so.3")
        gate = tmp_path / "gate.toml"
        gate.write_text("[checks.services]\nfail_on_restart = true\n")
        result, run = services_result("--config", str(gate))
        _, found = service_with(result, proc.pid)
        assert found["status"] == "fail" and run.returncode == 2

        quiet = tmp_path / "quiet.toml"
        quiet.write_text('[checks.services]\nignore_processes = ["python3"]\n')
        result, _ = services_result("--config", str(quiet))
        assert proc.pid not in reported_pids(result)


def test_under_root_it_skips_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "proc" / "1").mkdir(parents=True)
    result, run = services_result("--root", str(tmp_path))
    assert codes(result) == ["services.not-live"]
    assert result["status"] == "skip" and run.returncode == 0
    assert "does not record process memory maps" in result["summary"]


# ------------------------------------------------------------------ unprivileged
def test_an_unprivileged_run_sees_its_own_processes_and_says_what_it_could_not(
    libdir: Path,
) -> None:
    require_nobody_can_run()
    with sleeper(libdir, user=NOBODY) as mine, sleeper(libdir) as roots:
        replace_like_dpkg(libdir / "libssl.so.3")
        result, _ = services_result(user=NOBODY)
        assert roots.pid not in reported_pids(result)  # root's process: not visible
        _, found = service_with(result, mine.pid)
        assert f"pid {mine.pid} (python3, uid {NOBODY})" in found["message"]
        assert found["remediation"][0] == f"kill {mine.pid}"  # its own process
        assert "need root" in result["summary"]
        assert result["details"]["unreadable"]

        as_root, _ = services_result()
        assert {mine.pid, roots.pid} <= reported_pids(as_root)
        # Several services: the summary names each.
        assert "services run replaced code: " in as_root["summary"]
        assert f"pid {mine.pid} (python3)" in as_root["summary"]
        assert f"pid {roots.pid} (python3)" in as_root["summary"]
        # Another user's command line is data for root, never a command to paste.
        _, theirs = service_with(as_root, mine.pid)
        assert not any(DEBIAN_PYTHON in step for step in theirs["remediation"])
        assert any(f"uid {NOBODY}" in step for step in theirs["remediation"])


def test_a_login_users_processes_are_an_outdated_session(libdir: Path) -> None:
    """A uid in login.defs' UID_MIN..UID_MAX with no unit or pid file: someone's session, which
    a logout renews, not a service restart."""
    uid = 4321  # no passwd entry: named by its number
    with sleeper(libdir, user=uid) as theirs:
        replace_like_dpkg(libdir / "libssl.so.3")
        result, _ = services_result()
        service, found = service_with(result, theirs.pid)
        assert found["code"] == "services.session-outdated" and found["status"] == "warn"
        assert service["kind"] == "session" and service["name"] == f"uid {uid}"
        assert found["message"].startswith(f"processes of user uid {uid}: pid {theirs.pid} ")
        assert found["remediation"] == [f"log out every session of uid {uid} and log in again"]


# ------------------------------------------------------------------ namespaces
def test_pid_1_running_replaced_code_is_self_and_needs_a_reboot(libdir: Path) -> None:
    ns = Namespace({"LD_LIBRARY_PATH": str(libdir)}, init_code="import ssl\n")
    try:
        replace_like_dpkg(libdir / "libssl.so.3")
        result = ns.services()
        assert codes(result) == ["services.self"], result["summary"]
        found = result["findings"][0]
        assert found["message"].startswith("pid 1 (python3) still runs the deleted libssl.so.3")
        assert found["remediation"] == [
            "reboot in a maintenance window (pid 1 cannot be restarted)"
        ]
    finally:
        ns.stop()


KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=no
children=1
tcp_children=1
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
loadmodule "pv.so"
loadmodule "sl.so"
request_route {{
    sl_send_reply("404", "Not here");
}}
"""


def test_kamailio_from_its_init_script_after_a_module_is_replaced(tmp_path: Path) -> None:
    """Debian's /etc/init.d/kamailio starts the real daemon (its pid file groups the main
    process and its children); a module it loaded is replaced; the finding's remediation,
    run verbatim, restarts it onto the new file."""
    require_root()
    require("kamailio", kamailio_binary() is not None and os.path.isfile("/etc/init.d/kamailio"))
    modules = Path(system_lib("kamailio/modules/sl.so")).parent
    copy = tmp_path / "modules"
    shutil.copytree(modules, copy, symlinks=True)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "kamailio.cfg").write_text(KAMAILIO_CFG.format(port=free_port()))
    defaults = tmp_path / "default"
    defaults.write_text("RUN_KAMAILIO=yes\nSHM_MEMORY=16\nPKG_MEMORY=4\n")
    tmp_path.chmod(0o755)
    ns = Namespace()
    try:
        ns.run("mount", "-t", "tmpfs", "tmpfs", "/run")
        ns.run("mount", "--bind", str(etc), "/etc/kamailio")
        ns.run("mount", "--bind", str(defaults), "/etc/default/kamailio")
        ns.run("mount", "--bind", str(copy), str(modules))
        ns.run("service", "kamailio", "start")
        first = int(ns.run("cat", "/run/kamailio/kamailio.pid").stdout)
        assert ns.services()["code"] == "services.ok"

        replace_like_dpkg(copy / "sl.so")
        result = ns.services()
        assert codes(result) == ["services.restart-needed"], result["summary"]
        service, found = result["details"]["services"][0], result["findings"][0]
        assert service["kind"] == "init" and service["name"] == "kamailio"
        assert service["pidfile"] == "/run/kamailio/kamailio.pid"
        assert service["main_pid"] == first
        assert len(service["processes"]) >= 3  # the main process and its workers: one service
        assert found["message"].startswith(
            "init script /etc/init.d/kamailio (pid file /run/kamailio/kamailio.pid):"
        )
        assert "deleted sl.so (kamailio" in found["message"]  # the package that owns the path
        assert found["remediation"] == ["service kamailio restart"]
        path = f"{modules}/sl.so"
        assert result["details"]["files"][path]["package"] == "kamailio"

        ignore = tmp_path / "ignore.toml"
        ignore.write_text('[checks.services]\nignore_units = ["kamailio"]\n')
        run = ns.run(*PREFLIGHT, "check", "services", "-f", "json", "-c", str(ignore))
        assert check_of(json.loads(run.stdout), "services")["code"] == "services.ok"

        ns.run("sh", "-c", found["remediation"][0])
        second = int(ns.run("cat", "/run/kamailio/kamailio.pid").stdout)
        assert second != first
        assert ns.run("cat", f"/proc/{second}/comm").stdout.strip() == "kamailio"
        after = ns.services()
        assert after["code"] == "services.ok", after["summary"]
        ns.run("service", "kamailio", "stop")
    finally:
        ns.stop()


# ------------------------------------------------------------------ the real package
def test_reinstalling_libssl3_with_apt_is_found_with_the_package(tmp_path: Path) -> None:
    """The case needrestart 3.6 missed: a Debian python3 that maps libssl.so.3 while apt
    reinstalls libssl3."""
    require_root()
    require_command("apt-get")
    with sleeper(None) as proc:
        started = time.time()
        apt = subprocess.run(
            [
                "apt-get",
                "-o",
                "DPkg::Lock::Timeout=600",
                "install",
                "--reinstall",
                "-y",
                "-q",
                "libssl3",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        assert apt.returncode == 0, apt.stderr[-2000:]
        result, _ = services_result()
        service, found = service_with(result, proc.pid)
        assert found["code"] == "services.restart-needed"
        files = [f for p in service["processes"] if p["pid"] == proc.pid for f in p["files"]]
        libs = [f for f in files if f["path"].endswith("/libssl.so.3")]
        assert libs, (files, apt.stdout[-2000:])
        lib = libs[0]
        assert lib["state"] == "deleted" and lib["path"].startswith("/usr/lib/")
        about = result["details"]["files"][lib["path"]]
        assert about["package"] == "libssl3"
        installed = calendar.timegm(time.strptime(about["package_installed_at"], ISO))
        assert installed >= int(started) - 1
        assert "deleted libssl.so.3 (libssl3, replaced " in found["message"]
        # The test runner maps libssl too and started the process: one tree, one kill line.
        kill = found["remediation"][0].split()
        assert kill[0] == "kill" and str(proc.pid) in kill[1:]
