"""Declared checks on the live host: every assertion kind passing and failing against real files,
real sockets and processes the tests start, real packages (dpkg), real sysctls, a real HTTP
server, real commands, and a real init script; remediation followed verbatim fixes the host."""

from __future__ import annotations

import hashlib
import http.server
import os
import shlex
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.cli import PREFLIGHT, check_of, codes, finding, report_of, run_preflight
from support.components import require_command, require_root
from support.declared import results, rows, run_spec, spec

from tests.kamailio_support import free_port


def test_file_assertions_pass_and_fail_on_a_real_file(tmp_path: Path) -> None:
    target = tmp_path / "server.pem"
    content = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    target.write_bytes(content)
    target.chmod(0o640)
    digest = hashlib.sha256(content).hexdigest()
    text = spec(
        "tls",
        f"""
        name = "cert-ok"
        kind = "file"
        path = "{target}"
        type = "file"
        mode = "0640"
        owner = "root"
        group = 0
        min_size = 10
        max_size = 4096
        contains = "^-----BEGIN CERTIFICATE-----$"
        not_contains = "PRIVATE KEY"
        sha256 = "{digest}"
        """,
        f"""
        name = "cert-mode"
        kind = "file"
        path = "{target}"
        mode = "0600"
        """,
        f"""
        name = "cert-content"
        kind = "file"
        path = "{target}"
        contains = "^-----BEGIN PRIVATE KEY-----$"
        sha256 = "{"0" * 64}"
        max_size = 5
        """,
        f"""
        name = "missing"
        kind = "file"
        path = "{tmp_path}/nosuch.pem"
        """,
        f"""
        name = "absent-ok"
        kind = "file"
        path = "{tmp_path}/nosuch.pem"
        exists = false
        """,
        f"""
        name = "is-dir"
        kind = "file"
        path = "{tmp_path}"
        type = "file"
        status = "warn"
        """,
    )
    report = run_spec(tmp_path, text)
    result = check_of(report, "tls")
    assert results(result) == {
        "cert-ok": "pass",
        "cert-mode": "fail",
        "cert-content": "fail",
        "missing": "fail",
        "absent-ok": "pass",
        "is-dir": "warn",
    }
    assert result["status"] == "fail" and report["exit_code"] == 2
    mode = finding(result, "tls.cert-mode")
    assert "mode 0640, expected 0600" in mode["message"]
    assert mode["remediation"] == [f"chmod 0600 {shlex.quote(str(target))}"]
    assert rows(result)["cert-mode"]["expected"] == {"exists": True, "mode": "0600"}
    assert rows(result)["cert-mode"]["observed"] == {"exists": True, "mode": "0640"}
    content_msg = finding(result, "tls.cert-content")["message"]
    assert "no line matches" in content_msg and "sha256" in content_msg
    assert "bytes, expected at most 5" in content_msg
    assert finding(result, "tls.missing")["message"].endswith("missing")
    assert "is a directory, not a file" in finding(result, "tls.is-dir")["message"]
    # The passing assertion's observations are in the details too.
    assert rows(result)["cert-ok"]["observed"]["sha256"] == digest


def test_file_remediation_followed_verbatim_fixes_it(tmp_path: Path) -> None:
    target = tmp_path / "kamailio.cfg"
    target.write_text("listen=udp:0.0.0.0:5060\n")
    target.chmod(0o666)
    text = spec(
        "cfg",
        f"""
        name = "mode"
        kind = "file"
        path = "{target}"
        mode = "0640"
        """,
    )
    before = check_of(run_spec(tmp_path, text), "cfg")
    steps = finding(before, "cfg.mode")["remediation"]
    for step in steps:
        subprocess.run(["sh", "-c", step], check=True)
    after = check_of(run_spec(tmp_path, text), "cfg")
    assert after["status"] == "pass" and codes(after) == ["cfg.ok"]


# ------------------------------------------------------------------------------ package
def test_package_assertions_against_the_dpkg_database(tmp_path: Path) -> None:
    require_command("dpkg-query")
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "python3"], capture_output=True, text=True
    ).stdout
    assert version
    text = spec(
        "pkg",
        """
        name = "python"
        kind = "package"
        package = ["nosuch-python-package", "python3"]
        version = ">= 3.9, << 99"
        """,
        f"""
        name = "exact"
        kind = "package"
        package = "python3"
        version = "= {version}"
        """,
        """
        name = "too-old"
        kind = "package"
        package = "python3"
        version = ">= 99"
        """,
        """
        name = "not-installed"
        kind = "package"
        package = "nosuch-python-package"
        """,
        """
        name = "must-be-absent"
        kind = "package"
        package = "python3"
        installed = false
        status = "warn"
        """,
    )
    result = check_of(run_spec(tmp_path, text), "pkg")
    assert results(result) == {
        "python": "pass",
        "exact": "pass",
        "too-old": "fail",
        "not-installed": "fail",
        "must-be-absent": "warn",
    }
    assert rows(result)["too-old"]["observed"]["version"] == version
    assert f"python3 {version} does not satisfy >= 99" in finding(result, "pkg.too-old")["message"]
    assert finding(result, "pkg.not-installed")["remediation"] == [
        "apt-get install nosuch-python-package"
    ]
    # dpkg's rules, not string order: 3.11 is newer than 3.9.
    assert rows(result)["python"]["observed"]["version"] == version


# ------------------------------------------------------------------------------ port
@pytest.fixture
def listeners() -> Iterator[tuple[int, int]]:
    """A TCP listener and a bound UDP socket on 127.0.0.1, held by this test process."""
    tcp_port, udp_port = free_port(), free_port()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind(("127.0.0.1", tcp_port))
        tcp.listen()
        udp.bind(("127.0.0.1", udp_port))
        yield tcp_port, udp_port


def test_port_assertions_against_sockets_the_test_holds(
    tmp_path: Path, listeners: tuple[int, int]
) -> None:
    require_root()  # the owner of another process's socket is visible to root only
    tcp_port, udp_port = listeners
    me = psutil.Process().name()
    closed = free_port()
    text = spec(
        "net",
        f"""
        name = "tcp"
        kind = "port"
        port = {tcp_port}
        address = "127.0.0.1"
        process = "{me}"
        """,
        f"""
        name = "udp"
        kind = "socket"
        proto = "udp"
        port = {udp_port}
        """,
        f"""
        name = "closed"
        kind = "port"
        port = {closed}
        """,
        f"""
        name = "wrong-owner"
        kind = "port"
        port = {tcp_port}
        process = "kamailio"
        """,
        f"""
        name = "other-address"
        kind = "port"
        port = {tcp_port}
        address = "127.0.0.2"
        """,
        f"""
        name = "must-be-free"
        kind = "port"
        proto = "udp"
        port = {udp_port}
        listening = false
        """,
    )
    result = check_of(run_spec(tmp_path, text), "net")
    assert results(result) == {
        "tcp": "pass",
        "udp": "pass",
        "closed": "fail",
        "wrong-owner": "fail",
        "other-address": "fail",
        "must-be-free": "fail",
    }
    assert f"held by {me}, not kamailio" in finding(result, "net.wrong-owner")["message"]
    assert finding(result, "net.closed")["message"] == f"tcp *:{closed}: nothing listens"
    observed = rows(result)["tcp"]["observed"]["listening"]
    assert observed == [f"tcp 127.0.0.1:{tcp_port} ({me})"]


def test_port_owner_unknown_to_an_unprivileged_user_is_an_error(
    tmp_path: Path, listeners: tuple[int, int], open_dir: Path
) -> None:
    from support.cli import NOBODY
    from support.components import require_nobody_can_run

    require_nobody_can_run("re2")
    tcp_port, _ = listeners
    path = open_dir / "spec.toml"
    path.write_text(
        spec(
            "net",
            f"""
            name = "tcp"
            kind = "port"
            port = {tcp_port}
            process = "kamailio"
            """,
            """
            name = "shadow"
            kind = "file"
            path = "/etc/shadow"
            mode = "0640"
            not_contains = "^nobody:[^*!]"
            """,
        )
    )
    path.chmod(0o644)
    run = run_preflight("check", "net", "-c", str(path), "-f", "json", user=NOBODY)
    result = check_of(report_of(run), "net")
    assert result["status"] == "error"
    assert "cannot see which process holds" in finding(result, "net.tcp")["message"]
    # Not a verdict on content it may not read: an error naming why.
    shadow = finding(result, "net.shadow")
    assert shadow["status"] == "error"
    assert "cannot read /etc/shadow: permission denied" in shadow["message"]


# ------------------------------------------------------------------------------ process
def test_process_assertions_against_a_process_the_test_starts(tmp_path: Path) -> None:
    marker = f"{os.getpid()}.{free_port()}"
    proc = subprocess.Popen(["sleep", f"{marker}"])
    try:
        text = spec(
            "procs",
            f"""
            name = "by-argv"
            kind = "process"
            argv = "^sleep {marker}$"
            count = 1
            """,
            f"""
            name = "by-name-and-argv"
            kind = "process"
            process = "sleep"
            argv = "{marker}"
            """,
            f"""
            name = "two"
            kind = "process"
            argv = "^sleep {marker}$"
            min = 2
            """,
            f"""
            name = "none-wanted"
            kind = "process"
            argv = "^sleep {marker}$"
            running = false
            """,
            """
            name = "not-running"
            kind = "process"
            process = "nosuch-daemon"
            """,
        )
        result = check_of(run_spec(tmp_path, text), "procs")
    finally:
        proc.kill()
        proc.wait()
    assert results(result) == {
        "by-argv": "pass",
        "by-name-and-argv": "pass",
        "two": "fail",
        "none-wanted": "fail",
        "not-running": "fail",
    }
    assert rows(result)["by-argv"]["observed"]["pids"] == [proc.pid]
    assert "1 running, expected >= 2" in finding(result, "procs.two")["message"]
    assert str(proc.pid) in finding(result, "procs.none-wanted")["remediation"][0]


# ------------------------------------------------------------------------------ service
def _in_private_run(script: str) -> subprocess.CompletedProcess[str]:
    """`script` in private mount and pid namespaces with an empty /run: services started there
    (the real dbus init script) stop with the namespace and never touch the host's."""
    require_root()
    require_command("unshare")
    return subprocess.run(
        ["unshare", "-m", "-p", "-f", "--mount-proc", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_service_through_the_real_init_script(tmp_path: Path) -> None:
    require_command("dbus-daemon")
    path = tmp_path / "svc.toml"
    path.write_text(
        spec(
            "svc",
            """
            name = "dbus"
            kind = "service"
            service = "dbus"
            enabled = true
            """,
            """
            name = "puppet-at-boot"
            kind = "service"
            service = "puppet"
            active = false
            enabled = true
            status = "warn"
            """,
            """
            name = "nosuch"
            kind = "service"
            service = "nosuch-service"
            """,
            """
            name = "kamailio-unconfigured"
            kind = "service"
            service = "kamailio"
            """,
        )
    )
    # Debian's /etc/default/kamailio as shipped (RUN_KAMAILIO commented out): its init script
    # then exits 0 from `status` while printing "... failed!".
    default = tmp_path / "default-kamailio"
    default.write_text(
        "# Set to yes to enable kamailio, once configured properly.\n#RUN_KAMAILIO=yes\n"
    )
    check = shlex.join([*PREFLIGHT, "check", "svc", "-c", str(path), "-f", "json"])
    # Not running first; its remediation, run verbatim; then running.
    script = (
        f"mount -t tmpfs tmpfs /run && mount --bind {default} /etc/default/kamailio && "
        f"{check} > {tmp_path}/before.json; "
        f"python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); "
        f'[print(s) for c in r["checks"] for f in c["findings"] '
        f'if f["code"] == "svc.dbus" for s in f["remediation"]]\' {tmp_path}/before.json '
        f"> {tmp_path}/steps; sh -e {tmp_path}/steps >/dev/null && "
        f"{{ {check} > {tmp_path}/after.json; true; }}"
    )
    proc = _in_private_run(script)
    assert proc.returncode == 0, proc.stderr
    import json

    before = check_of(json.loads((tmp_path / "before.json").read_text()), "svc")
    after = check_of(json.loads((tmp_path / "after.json").read_text()), "svc")
    assert results(before)["dbus"] == "fail"
    assert "status says not running" in finding(before, "svc.dbus")["message"]
    assert finding(before, "svc.dbus")["remediation"] == ["service dbus start"]
    assert results(after)["dbus"] == "pass"
    # puppet's init script has K links only: not started at boot.
    assert results(after)["puppet-at-boot"] == "warn"
    assert finding(after, "svc.puppet-at-boot")["remediation"] == ["update-rc.d puppet enable"]
    assert "no systemd and no /etc/init.d/nosuch-service" in finding(after, "svc.nosuch")["message"]
    unconfigured = finding(after, "svc.kamailio-unconfigured")
    assert unconfigured["status"] == "fail"
    assert "not running (Kamailio not yet configured" in unconfigured["message"]


# ------------------------------------------------------------------------------ sysctl
def test_sysctl_assertions_against_real_values(tmp_path: Path) -> None:
    current = int(Path("/proc/sys/net/core/rmem_max").read_text())
    ports = " ".join(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    text = spec(
        "kern",
        f"""
        name = "rmem"
        kind = "sysctl"
        key = "net.core.rmem_max"
        min = {current}
        max = {current}
        """,
        f"""
        name = "ports"
        kind = "sysctl"
        key = "net/ipv4/ip_local_port_range"
        value = "{ports}"
        """,
        f"""
        name = "rmem-bigger"
        kind = "sysctl"
        key = "net.core.rmem_max"
        min = {current + 1}
        status = "warn"
        """,
        f"""
        name = "rmem-value"
        kind = "sysctl"
        key = "net.core.rmem_max"
        value = {current + 1}
        """,
        """
        name = "no-such"
        kind = "sysctl"
        key = "net.core.nosuch_key"
        value = 1
        """,
        """
        name = "not-a-number"
        kind = "sysctl"
        key = "net.ipv4.ip_local_port_range"
        min = 1
        """,
    )
    result = check_of(run_spec(tmp_path, text), "kern")
    assert results(result) == {
        "rmem": "pass",
        "ports": "pass",
        "rmem-bigger": "warn",
        "rmem-value": "fail",
        "no-such": "fail",
        "not-a-number": "error",
    }
    assert rows(result)["rmem-bigger"]["observed"] == {"min": current}
    assert finding(result, "kern.rmem-bigger")["remediation"][0] == (
        f"sysctl -w net.core.rmem_max={current + 1}"
    )


def test_sysctl_remediation_verbatim_in_a_private_network_namespace(tmp_path: Path) -> None:
    """net.ipv4.tcp_keepalive_time belongs to the network namespace: the fix is applied in a
    private one, so the host's value never changes."""
    require_root()
    require_command("unshare")
    path = tmp_path / "k.toml"
    path.write_text(
        spec(
            "keepalive",
            """
            name = "time"
            kind = "sysctl"
            key = "net.ipv4.tcp_keepalive_time"
            value = 600
            """,
        )
    )
    check = shlex.join([*PREFLIGHT, "check", "keepalive", "-c", str(path), "-f", "json"])
    script = (
        f"sysctl -w net.ipv4.tcp_keepalive_time=7200 >/dev/null; {check} > {tmp_path}/b.json; "
        f"python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))"
        f'["checks"][0]["findings"][0]["remediation"][0])\' {tmp_path}/b.json > {tmp_path}/s; '
        f"sh -e {tmp_path}/s >/dev/null && {{ {check} > {tmp_path}/a.json; true; }}"
    )
    host_before = Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text()
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    before = json.loads((tmp_path / "b.json").read_text())["checks"][0]
    after = json.loads((tmp_path / "a.json").read_text())["checks"][0]
    assert before["status"] == "fail" and after["status"] == "pass"
    assert (tmp_path / "s").read_text().strip() == "sysctl -w net.ipv4.tcp_keepalive_time=600"
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text() == host_before


# ------------------------------------------------------------------------------ kernel_module
def test_kernel_module_built_in_and_absent(tmp_path: Path) -> None:
    builtin = next(
        (
            name
            for name in sorted(os.listdir("/sys/module"))
            if not os.path.exists(f"/sys/module/{name}/initstate")
        ),
        None,
    )
    assert builtin is not None
    text = spec(
        "mods",
        f"""
        name = "builtin"
        kind = "kernel_module"
        module = "{builtin}"
        """,
        f"""
        name = "builtin-unwanted"
        kind = "kernel_module"
        module = "{builtin}"
        loaded = false
        """,
        """
        name = "absent"
        kind = "kernel_module"
        module = "nosuch_module"
        """,
    )
    result = check_of(run_spec(tmp_path, text), "mods")
    got = results(result)
    assert got["builtin"] == "pass" and got["builtin-unwanted"] == "fail"
    assert rows(result)["builtin"]["observed"] == {"loaded": "built in"}
    # Without modules.builtin for the running kernel (a kernel supplied by the hypervisor) a
    # module found nowhere cannot be judged; with it, it is a failure.
    release = os.uname().release
    has_builtin_list = os.path.exists(f"/lib/modules/{release}/modules.builtin")
    assert got["absent"] == ("fail" if has_builtin_list else "error")


# ------------------------------------------------------------------------------ mount
def test_mount_assertions_against_proc_self_mounts(tmp_path: Path) -> None:
    text = spec(
        "mnt",
        """
        name = "proc"
        kind = "mount"
        path = "/proc"
        fstype = "proc"
        options = ["rw"]
        """,
        """
        name = "proc-type"
        kind = "mount"
        path = "/proc"
        fstype = "ext4"
        options = ["rw", "noexec-not-there"]
        """,
        f"""
        name = "not-mounted"
        kind = "mount"
        path = "{tmp_path}"
        """,
    )
    result = check_of(run_spec(tmp_path, text), "mnt")
    assert results(result) == {"proc": "pass", "proc-type": "fail", "not-mounted": "fail"}
    message = finding(result, "mnt.proc-type")["message"]
    assert "file system proc, expected ext4" in message
    assert "lacks option noexec-not-there" in message


# ------------------------------------------------------------------------------ user, group
def test_user_and_group_assertions(tmp_path: Path) -> None:
    text = spec(
        "acct",
        """
        name = "root"
        kind = "user"
        user = "root"
        uid = 0
        gid = 0
        home = "/root"
        groups = ["root"]
        """,
        """
        name = "root-shell"
        kind = "user"
        user = "root"
        shell = "/usr/sbin/nologin"
        uid = 5
        """,
        """
        name = "ghost"
        kind = "user"
        user = "nosuch-user"
        """,
        """
        name = "root-group"
        kind = "group"
        group = "root"
        gid = 0
        members = ["root"]
        """,
        """
        name = "nogroup"
        kind = "group"
        group = "nosuch-group"
        gid = 4242
        """,
    )
    result = check_of(run_spec(tmp_path, text), "acct")
    assert results(result) == {
        "root": "pass",
        "root-shell": "fail",
        "ghost": "fail",
        "root-group": "pass",
        "nogroup": "fail",
    }
    shell = finding(result, "acct.root-shell")
    assert "uid 0, expected 5" in shell["message"]
    assert "usermod -s /usr/sbin/nologin root" in shell["remediation"]
    assert finding(result, "acct.nogroup")["remediation"] == ["groupadd -g 4242 nosuch-group"]


# ------------------------------------------------------------------------------ dns, http
def test_dns_assertions(tmp_path: Path) -> None:
    text = spec(
        "names",
        """
        name = "localhost"
        kind = "dns"
        host = "localhost"
        addresses = ["127.0.0.1"]
        """,
        """
        name = "wrong-address"
        kind = "dns"
        host = "localhost"
        addresses = ["192.0.2.7"]
        """,
        """
        name = "invalid"
        kind = "dns"
        host = "nosuch.invalid"
        timeout = 2
        """,
    )
    result = check_of(run_spec(tmp_path, text), "names")
    assert results(result) == {"localhost": "pass", "wrong-address": "fail", "invalid": "fail"}
    assert "not 192.0.2.7" in finding(result, "names.wrong-address")["message"]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/health":
            body = b"status: ok\n"
            self.send_response(200)
        else:
            body = b"not here\n"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_http_assertions_against_a_local_server(tmp_path: Path, http_server: int) -> None:
    base = f"http://127.0.0.1:{http_server}"
    closed = free_port()
    text = spec(
        "web",
        f"""
        name = "health"
        kind = "http"
        url = "{base}/health"
        body = "^status: ok$"
        """,
        f"""
        name = "gone"
        kind = "http"
        url = "{base}/missing"
        status_code = 404
        """,
        f"""
        name = "health-body"
        kind = "http"
        url = "{base}/health"
        body = "^status: degraded$"
        """,
        f"""
        name = "wrong-status"
        kind = "http"
        url = "{base}/missing"
        """,
        f"""
        name = "down"
        kind = "http"
        url = "http://127.0.0.1:{closed}/"
        timeout = 2
        """,
    )
    result = check_of(run_spec(tmp_path, text), "web")
    assert results(result) == {
        "health": "pass",
        "gone": "pass",
        "health-body": "fail",
        "wrong-status": "fail",
        "down": "fail",
    }
    assert "status 404, expected 200" in finding(result, "web.wrong-status")["message"]
    assert "no response" in finding(result, "web.down")["message"]


# ------------------------------------------------------------------------------ command
def test_command_assertions(tmp_path: Path) -> None:
    text = spec(
        "cmds",
        """
        name = "echo"
        kind = "command"
        argv = ["echo", "yes"]
        stdout = "^yes$"
        """,
        """
        name = "exit-1"
        kind = "command"
        argv = ["false"]
        exit_code = 1
        """,
        """
        name = "fails"
        kind = "command"
        argv = ["sh", "-c", "echo broken >&2; exit 3"]
        stderr = "^fine$"
        """,
        """
        name = "no-program"
        kind = "command"
        argv = ["/nonexistent/program"]
        """,
        """
        name = "hangs"
        kind = "command"
        argv = ["sleep", "30"]
        timeout = 0.5
        """,
        """
        name = "no-shell"
        kind = "command"
        argv = ["echo", "$HOME; true"]
        stdout = "^\\\\$HOME; true$"
        """,
    )
    result = check_of(run_spec(tmp_path, text), "cmds")
    assert results(result) == {
        "echo": "pass",
        "exit-1": "pass",
        "fails": "fail",
        "no-program": "fail",
        "hangs": "fail",
        "no-shell": "pass",
    }
    message = finding(result, "cmds.fails")["message"]
    assert "exit status 3, expected 0" in message and "broken" in message
    assert "could not start" in finding(result, "cmds.no-program")["message"]
    assert "did not finish within 0.5 s" in finding(result, "cmds.hangs")["message"]


# ------------------------------------------------------------------------------ engine
def test_waiver_and_fail_on_treat_a_declared_finding_like_a_builtin(tmp_path: Path) -> None:
    text = spec(
        "w",
        """
        name = "warned"
        kind = "command"
        argv = ["false"]
        status = "warn"
        remediation = ["fix it by hand"]
        """,
    )
    report = run_spec(tmp_path, text)
    result = check_of(report, "w")
    assert report["exit_code"] == 1 and result["status"] == "warn"
    assert finding(result, "w.warned")["remediation"] == ["fix it by hand"]
    assert run_spec(tmp_path, text, "--fail-on", "fail")["exit_code"] == 0
    waived = text + textwrap.dedent("""
        [[waivers]]
        code = "w.warned"
        reason = "known"
        """)
    report = run_spec(tmp_path, waived)
    assert report["exit_code"] == 0 and report["counts"]["waived"] == 1
    assert finding(check_of(report, "w"), "w.warned")["waived"]["reason"] == "known"


def test_every_format_renders_a_declared_check(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(
        spec(
            "fmt",
            """
            name = "passwd"
            kind = "file"
            path = "/etc/passwd"
            mode = "0000"
            """,
        )
    )
    for fmt, needle in (
        ("human", "fmt.passwd"),
        ("nagios", "PREFLIGHT CRITICAL"),
        ("prometheus", 'preflight_check_status{check="fmt",status="fail"} 1'),
        ("junit", "<failure"),
        ("facter", '"fmt"'),
    ):
        run = run_preflight("check", "fmt", "-c", str(path), "-f", fmt)
        assert run.returncode == 2, (fmt, run.stderr)
        assert needle in run.stdout, (fmt, run.stdout)


def test_list_and_explain_show_declared_checks(tmp_path: Path) -> None:
    path = tmp_path / "l.toml"
    path.write_text(
        spec(
            "listed",
            """
            name = "passwd"
            kind = "file"
            path = "/etc/passwd"
            remediation = "restore /etc/passwd from backup"
            """,
            title="Listed declared check",
        )
    )
    run = run_preflight("list", "-f", "json", "-c", str(path))
    assert run.returncode == 0, run.stderr
    import json

    rows_ = {r["id"]: r for r in json.loads(run.stdout)}
    assert rows_["listed"] == {
        "id": "listed",
        "title": "Listed declared check",
        "origin": f"declared:{path}",
    }
    assert rows_["kernel"]["origin"] == "built-in"
    human = run_preflight("list", "-c", str(path))
    assert f"declared:{path}" in human.stdout
    explained = run_preflight("explain", "listed", "-c", str(path))
    assert explained.returncode == 0, explained.stderr
    assert "listed.passwd (fail)" in explained.stdout
    assert "listed.ok (pass)" in explained.stdout
    assert "Fix: restore /etc/passwd from backup" in explained.stdout
    assert "preflight explain declared" in explained.stdout


def test_explain_declared_documents_every_kind_with_an_example_that_validates() -> None:
    from preflight.declared.docs import KIND_EXAMPLES
    from preflight.declared.spec import KINDS, parse_checks

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    run = run_preflight("explain", "declared")
    assert run.returncode == 0, run.stderr
    for kind in KINDS:
        assert f"\n  {kind}\n" in run.stdout, kind
    assert set(KIND_EXAMPLES) | {"socket"} == set(KINDS)
    for kind, (_summary, example) in KIND_EXAMPLES.items():
        text = f'[[check]]\nid = "x"\n[[check.assert]]\nname = "a"\n{example}\n'
        (checked,) = parse_checks(tomllib.loads(text)["check"], "example")
        assert checked.assertions[0].kind == kind
        assert example.splitlines()[0] in run.stdout


def test_a_declared_check_runs_by_id_and_in_the_default_run(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(
        spec(
            "mine",
            """
            name = "passwd"
            kind = "file"
            path = "/etc/passwd"
            """,
        )
    )
    everything = report_of(run_preflight("check", "-c", str(path), "-f", "json"))
    assert "mine" in [c["id"] for c in everything["checks"]]
    assert "kernel" in [c["id"] for c in everything["checks"]]
    alone = report_of(run_preflight("check", "mine", "-c", str(path), "-f", "json"))
    assert [c["id"] for c in alone["checks"]] == ["mine"]
    assert check_of(alone, "mine")["code"] == "mine.ok"
    # Declared checks are configuration, not installed code: --no-plugins keeps them.
    no_plugins = report_of(
        run_preflight("check", "mine", "--no-plugins", "-c", str(path), "-f", "json")
    )
    assert check_of(no_plugins, "mine")["status"] == "pass"


def test_one_socket_table_read_serves_every_port_assertion(listeners: tuple[int, int]) -> None:
    """Two declared checks with ten port assertions each, run one after the other in this
    process on one Host (as a check's child process runs its assertions): each socket table is
    read once (counted by a Host that reads for real and notes what)."""
    import tomllib

    from preflight import declared
    from preflight.config import Config
    from preflight.host import Host
    from preflight.registry import load
    from preflight.runner import Planned, run_one

    class CountingHost(Host):
        reads: list[str] = []

        def read_bytes(self, rel: str, limit: int = 1 << 20) -> bytes | None:
            self.reads.append(rel)
            return super().read_bytes(rel, limit)

    tcp_port, udp_port = listeners
    tables = []
    for check_id in ("ports-a", "ports-b"):
        body = [f'name = "p{i}"\nkind = "port"\nport = {tcp_port}' for i in range(5)]
        body += [
            f'name = "u{i}"\nkind = "port"\nproto = "udp"\nport = {udp_port}' for i in range(5)
        ]
        tables += tomllib.loads(spec(check_id, *body))["check"]
    entries = declared.entries(Config(path="inline", check_tables=tables, checks_dir=None), [])
    plan = [Planned(load(entry), {}) for entry in entries]
    host = CountingHost("/")
    results_ = [run_one(planned, host, timeout=30) for planned in plan]
    assert [r.status.value for r in results_] == ["pass", "pass"]
    assert [f.code for r in results_ for f in r.findings] == ["ports-a.ok", "ports-b.ok"]
    tables_read = [rel for rel in CountingHost.reads if rel.startswith("proc/net/")]
    assert sorted(tables_read) == ["proc/net/tcp", "proc/net/tcp6", "proc/net/udp", "proc/net/udp6"]


def test_mount_remediation_verbatim_in_a_private_mount_namespace(tmp_path: Path) -> None:
    """A tmpfs mounted without noexec, in a private mount namespace: the finding's remount
    command, run verbatim there, makes the assertion hold."""
    require_root()
    require_command("unshare")
    point = tmp_path / "spool"
    point.mkdir()
    path = tmp_path / "m.toml"
    path.write_text(
        spec(
            "spool",
            f"""
            name = "noexec"
            kind = "mount"
            path = "{point}"
            fstype = "tmpfs"
            options = ["noexec", "nosuid"]
            """,
        )
    )
    check = shlex.join([*PREFLIGHT, "check", "spool", "-c", str(path), "-f", "json"])
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(point))} && "
        f"{check} > {tmp_path}/b.json; "
        f"python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))"
        f'["checks"][0]["findings"][0]["remediation"][0])\' {tmp_path}/b.json > {tmp_path}/s; '
        f"sh -e {tmp_path}/s >/dev/null && {{ {check} > {tmp_path}/a.json; true; }}"
    )
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    before = json.loads((tmp_path / "b.json").read_text())["checks"][0]
    after = json.loads((tmp_path / "a.json").read_text())["checks"][0]
    assert "lacks options noexec,nosuid" in before["findings"][0]["message"]
    assert (
        (tmp_path / "s")
        .read_text()
        .startswith(f"mount -o remount,noexec,nosuid {shlex.quote(str(point))}")
    )
    assert after["status"] == "pass", after
    # Nothing stays mounted outside the namespace.
    assert str(point) not in Path("/proc/self/mounts").read_text()


def test_https_verifies_the_certificate_unless_told_not_to(tmp_path: Path) -> None:
    """A local HTTPS server with a self-signed certificate made by openssl: refused by default
    (the finding says why), accepted with verify_tls = false."""
    import ssl

    openssl = require_command("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/health"
    try:
        text = spec(
            "tls",
            f'name = "verified"\nkind = "http"\nurl = "{url}"\ntimeout = 3',
            f'name = "unverified"\nkind = "http"\nurl = "{url}"\nverify_tls = false\nbody = "ok"',
        )
        result = check_of(run_spec(tmp_path, text), "tls")
    finally:
        server.shutdown()
        server.server_close()
    assert results(result) == {"verified": "fail", "unverified": "pass"}
    assert "CERTIFICATE_VERIFY_FAILED" in finding(result, "tls.verified")["message"]
