"""Real Kamailio instances for the kamailio check's tests, and the steps around them (the
fixtures that hold them are in tests/conftest.py).

Each instance runs in the foreground (`-DD -E`) on 127.0.0.1 high ports with its pid file, runtime
dir and ctl socket in a temporary folder, and is always stopped by its main pid (its children
follow it). Ports are probed free and handed out per test run so parallel runs and other tests'
instances do not collide.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from support.cli import report_of, run_preflight
from support.components import require, require_command

KAMAILIO = "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
START_TIMEOUT = 10.0
_PORTS = itertools.count(35100 + (os.getpid() % 400) * 10)


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or (KAMAILIO if os.access(KAMAILIO, os.X_OK) else None)


def free_port() -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 right now."""
    for port in _PORTS:
        if port > 60000:
            break
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            ):
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def sip_config(sip_port: int, ws_port: int, ctl: Path, head: str = "", body: str = "") -> str:
    """A small valid config: UDP and TCP SIP on `sip_port`, a WebSocket listener (xhttp +
    websocket) on TCP `ws_port`, a ctl socket in the temp folder."""
    return textwrap.dedent(f"""\
        #!KAMAILIO
        #!define SIP_PORT {sip_port}
        {head}
        debug=2
        log_stderror=yes
        children=1
        tcp_children=1
        tcp_accept_no_cl=yes
        listen=udp:127.0.0.1:SIP_PORT
        listen=tcp:127.0.0.1:SIP_PORT
        listen=tcp:127.0.0.1:{ws_port}
        mpath="{MODULES}/"
        loadmodule "pv.so"
        loadmodule "sl.so"
        loadmodule "xhttp.so"
        loadmodule "websocket.so"
        loadmodule "ctl.so"
        modparam("ctl", "binrpc", "unix:{ctl}")
        {body}
        request_route {{
            sl_send_reply("404", "Not here");
        }}
        event_route[xhttp:request] {{
            if ($hdr(Upgrade) =~ "websocket") {{
                ws_handle_handshake();
                exit;
            }}
            xhttp_reply("404", "Not Found", "", "");
        }}
        """)


def plain_config(folder: Path, port: int, extra: str = "") -> Path:
    """A minimal config (one UDP listener on 127.0.0.1:`port`, sl.so, a 404 route) written
    root-owned and world-readable to `folder`/kamailio.cfg, `extra` lines before the route."""
    config = folder / "kamailio.cfg"
    config.write_text(
        textwrap.dedent(f"""\
            #!KAMAILIO
            children=1
            log_stderror=yes
            listen=udp:127.0.0.1:{port}
            mpath="{MODULES}/"
            loadmodule "sl.so"
            """)
        + extra
        + 'request_route { sl_send_reply("404", "Not here"); }\n'
    )
    config.chmod(0o644)
    return config


@dataclass
class Instance:
    config: Path
    rundir: Path
    sip_port: int = 0
    ws_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    children: list[int] = field(default_factory=list)
    config_arg: str | None = None  # -f as given on the command line (default: the full path)
    extra: list[str] = field(default_factory=list)  # more options (-u kamailio -g kamailio)
    prefix: list[str] = field(default_factory=list)  # runs it as another account (setpriv ...)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def argv(self) -> list[str]:
        """The command line it is started with (foreground, its own pid file and run dir)."""
        return [
            kamailio_binary() or KAMAILIO,
            "-DD",
            "-E",
            "-f",
            self.config_arg or str(self.config),
            "-P",
            str(self.rundir / "kamailio.pid"),
            "-Y",
            str(self.rundir),
            "-m",
            "16",
            "-M",
            "4",
            *self.extra,
        ]

    def start(self, expect_failure: bool = False, cwd: Path | None = None) -> int | None:
        """Start in the foreground; return the main pid, or the exit code when it failed."""
        log = open(self.rundir / "kamailio.log", "wb")  # noqa: SIM115 - kept for the process
        self.process = subprocess.Popen(
            [*self.prefix, *self.argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=cwd,
            # As a shell started in `cwd` would: Kamailio moves to / once started, and PWD
            # is then the only trace of where a relative -f was found.
            env={**os.environ, "PWD": str(cwd)} if cwd else None,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                if expect_failure:
                    return code
                raise RuntimeError(f"kamailio exited with {code}: {self.log()[-2000:]}")
            if not expect_failure and self._listening():
                self.children = _children(self.pid)
                return self.pid
            time.sleep(0.05)
        if expect_failure:
            self.stop()
            raise RuntimeError("kamailio started although it was expected to fail")
        raise RuntimeError(f"kamailio did not start listening: {self.log()[-2000:]}")

    def _listening(self) -> bool:
        if not (self.rundir / "kamailio.pid").exists():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.ws_port), timeout=0.2):
                pass
        except OSError:
            return False
        # Children exist once the listeners are handed over; the check looks at all of them.
        return len(_children(self.pid)) >= 3

    def log(self) -> str:
        try:
            return (self.rundir / "kamailio.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop by the main pid; its children follow. Verify every one of them is gone."""
        if self.process is None:
            return
        pids = [self.pid, *_children(self.pid), *self.children]
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        deadline = time.monotonic() + 5
        for pid in pids[1:]:
            while _alive_kamailio(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive_kamailio(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        leftover = [pid for pid in pids[1:] if _alive_kamailio(pid)]
        assert not leftover, f"kamailio children still alive: {leftover}"


def _children(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def _alive_kamailio(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "kamailio"
    except OSError:
        return False


def preflight_config(folder: Path, config: Path, expect: list[str] | None = None) -> Path:
    """A preflight TOML file pointing the check at `config`."""
    lines = ["[checks.kamailio]", f'config = "{config}"']
    if expect is not None:
        lines.append("expect = [" + ", ".join(f'"{e}"' for e in expect) + "]")
    path = folder / "preflight.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def new_instance(folder: Path, head: str = "", body: str = "") -> Instance:
    """A config and runtime folder for one instance (not started)."""
    rundir = folder / "run"
    rundir.mkdir(exist_ok=True)
    sip_port = free_port()
    ws_port = free_port()
    config = folder / "kamailio.cfg"
    config.write_text(sip_config(sip_port, ws_port, rundir / "ctl", head, body))
    config.chmod(0o644)
    return Instance(config, rundir, sip_port, ws_port)


def main_kamailio_with(config: Path) -> list[int]:
    """Main processes (parent not kamailio) of every Kamailio running `config`. A `kamailio -c`
    config check that a restart step runs first is not an instance: it never listens."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "ppid", "status"]):
        if proc.info["name"] != "kamailio" or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        argv = proc.info["cmdline"] or []
        if str(config) not in " ".join(argv) or "-c" in argv:
            continue
        try:
            parent = psutil.Process(proc.info["ppid"]).name()
        except psutil.NoSuchProcess:
            parent = ""
        if parent != "kamailio":
            found.append(proc.pid)
    return found


def _alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_pid(pid: int) -> None:
    """Stop one Kamailio main process by its pid and wait until it and its children are gone."""
    try:
        main = psutil.Process(pid)
        children = main.children(recursive=True)
        main.terminate()
    except psutil.NoSuchProcess:
        return
    _gone, alive = psutil.wait_procs([main, *children], timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def wait_listening(port: int, transport: str = "tcp", timeout: float = START_TIMEOUT) -> bool:
    """Whether something binds 127.0.0.1:`port` within `timeout` seconds."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return True
        time.sleep(0.05)
    return False


def require_kamailio() -> None:
    """Kamailio and the modules every config of `sip_config` loads (websocket)."""
    require("kamailio (Debian package kamailio)", kamailio_binary() is not None)
    require("kamailio-websocket-modules", os.path.exists(f"{MODULES}/websocket.so"))


def check_kamailio(*args: str, user: int | None = None) -> tuple[int, dict[str, Any]]:
    """`preflight check kamailio --format json ARGS`: the exit code and the check's result."""
    run = run_preflight("check", "kamailio", "--format", "json", *args, user=user)
    (result,) = report_of(run)["checks"]
    return run.returncode, result


def judged(result: dict[str, Any], pid: int) -> dict[str, Any]:
    """The details of the judged instance `pid` (details.instances)."""
    (entry,) = [i for i in result["details"]["instances"] if i["pid"] == pid]
    return entry


def run_step(step: str, log: Path) -> tuple[int, str]:
    """Run a remediation step as an operator pastes it. Output goes to a file, not a pipe: a
    daemon the step starts keeps its stdout and stderr open."""
    with open(log, "wb") as out:
        code = subprocess.run(["sh", "-c", step], stdout=out, stderr=out, timeout=60).returncode
    return code, log.read_text(errors="replace")


def restart_step_of(instance: Instance) -> str:
    """The restart step the check gives for a hand-started instance started from this
    process's folder: check its config, stop exactly its pid, wait until it is gone, start its
    exact command line again in its start folder (every word shell-quoted)."""
    pid = instance.pid
    return (
        f"/usr/sbin/kamailio -c -f {shlex.quote(str(instance.config))} && kill {pid} && "
        f"while ps -o stat= -p {pid} | grep -qv Z; do sleep 0.2; done && "
        f"cd {shlex.quote(os.getcwd())} && {shlex.join(instance.argv)}"
    )


@contextmanager
def restarted_by(step: str, config: Path, old_pid: int, *ports: int) -> Iterator[int]:
    """Run a restart step verbatim, as an operator pastes it: in the background, since it
    starts Kamailio in the foreground (-DD) as the instance was started. Yields the new main
    pid once the old one is gone and `ports` listen again (so they are the new instance's);
    afterwards every Kamailio running `config` is stopped by its pid."""
    runner = subprocess.Popen(
        ["sh", "-c", step],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd="/",
    )
    try:
        deadline = time.monotonic() + 20
        new: list[int] = []
        while time.monotonic() < deadline:
            new = [p for p in main_kamailio_with(config) if p != old_pid]
            old_gone = not _alive(old_pid)
            if new and old_gone and all(wait_listening(port, timeout=0.2) for port in ports):
                break
            time.sleep(0.1)
        assert new, f"the step started no Kamailio with {config}: {step}"
        assert not _alive(old_pid), f"the step left pid {old_pid} running: {step}"
        time.sleep(0.5)  # the children take the sockets over
        yield new[0]
    finally:
        for pid in main_kamailio_with(config):
            stop_pid(pid)
        runner.wait(timeout=10)


def make_pair(folder: Path, name: str, kind: str = "rsa") -> tuple[Path, Path]:
    """A real self-signed certificate and its key (openssl): `kind` rsa or ec (P-256)."""
    openssl = require_command("openssl")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    newkey = ["-newkey", "rsa:2048"]
    if kind == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(
        [openssl, "req", "-x509", *newkey, "-nodes", "-keyout", str(key)]
        + ["-out", str(cert), "-days", "3", "-subj", f"/CN={name}"],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_instance(folder: Path, tls_port: int, params: str = "") -> Instance:
    """An instance with a tls: listener on `tls_port` and tls.so loaded with `params`."""
    return new_instance(
        folder,
        head=f"enable_tls=yes\nlisten=tls:127.0.0.1:{tls_port}",
        body=f'loadmodule "tls.so"\n{params}',
    )


def recording_binary(folder: Path) -> tuple[Path, Path]:
    """A `kamailio` for `[checks.kamailio] binary` that writes each command line it gets to a
    log and then runs the real Kamailio with it: the proof of whether (and how) the check ran
    `kamailio -c`. `folder` must be root-only (the check runs no binary others can change).
    Returns the script and its log (absent until the script runs)."""
    real = kamailio_binary() or KAMAILIO
    log = folder / "kamailio-runs.log"
    script = folder / "kamailio"
    script.write_text(f'#!/bin/sh\necho "$*" >>{shlex.quote(str(log))}\nexec {real} "$@"\n')
    script.chmod(0o755)
    return script, log


def runs_on(log: Path, config: Path) -> list[str]:
    """The command lines a recording_binary ran on `config` (other instances on the host,
    another test's say, are checked with the same binary)."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.endswith(f" {config}")]


def with_binary(toml: Path, binary: Path) -> Path:
    """The preflight TOML file `toml` (preflight_config) with `binary` set."""
    toml.write_text(toml.read_text() + f'binary = "{binary}"\n')
    return toml


def start_in_mount_namespace(folder: Path, config: str) -> subprocess.Popen[bytes]:
    """A Kamailio in a mount namespace of its own (a container on the host's network): a
    tmpfs over /etc/kamailio there, `config` written to its kamailio.cfg before the start.
    Its pid is the Popen's (unshare and sh exec into it); its log is `folder`/log. Stop it
    with stop_pid, then wait for the Popen."""
    unshare = require_command("unshare")
    require("kamailio", kamailio_binary() is not None)
    run_dir = folder / "run"
    run_dir.mkdir()
    script = (
        "mount -t tmpfs pf-test /etc/kamailio && "
        'printf "%s" "$1" >/etc/kamailio/kamailio.cfg && '
        f'exec "$2" -DD -E -f /etc/kamailio/kamailio.cfg -P {run_dir}/k.pid -Y {run_dir} '
        "-m 16 -M 4"
    )
    with open(folder / "log", "wb") as log:
        return subprocess.Popen(
            [unshare, "-m", "--propagation", "private", "sh", "-c", script, "sh", config]
            + [kamailio_binary() or KAMAILIO],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
