"""Private namespaces for tests that replace host folders (/etc/kamailio, /run) or add
addresses: the machine and every other process keep the real ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from support.cli import PREFLIGHT, check_of
from support.components import require_command

DEBIAN_PYTHON = "/usr/bin/python3"


class Namespace:
    """Private mount and pid namespaces whose pid 1 reaps orphans (like init) after running
    `init_code`; commands enter both namespaces with nsenter."""

    REAPER = (
        "import os, time\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        os.wait()\n"
        "    except ChildProcessError:\n"
        "        time.sleep(0.1)\n"
    )

    def __init__(
        self, env: dict[str, str] | None = None, init_code: str = "", net: bool = False
    ) -> None:
        require_command("unshare")
        require_command("nsenter")
        # A private network namespace too (`net`): addresses may be added to its lo.
        self.enter = ["-n"] if net else []
        self.holder = subprocess.Popen(
            [
                "unshare",
                *(["--net"] if net else []),
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                DEBIAN_PYTHON,
                "-c",
                init_code + self.REAPER,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})},
        )
        assert self.holder.stdout is not None
        assert self.holder.stdout.readline().strip() == "ready"
        import psutil

        self.init = psutil.Process(self.holder.pid).children()[0].pid

    def run(self, *argv: str, check: bool = True, timeout: float = 120) -> Any:
        return subprocess.run(
            ["nsenter", "-t", str(self.init), "-m", "-p", *self.enter, "--", *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            cwd="/",
            env={**os.environ, "NO_COLOR": "1"},
        )

    def services(self) -> dict[str, Any]:
        return self.check("services")[1]

    def check(self, check: str, *args: str) -> tuple[int, dict[str, Any]]:
        """`preflight check CHECK --format json ARGS` inside: exit code and the result."""
        run = self.run(*PREFLIGHT, "check", check, "--format", "json", *args, check=False)
        assert "Traceback" not in run.stderr, run.stderr
        return run.returncode, check_of(json.loads(run.stdout), check)

    def stop(self) -> None:
        os.kill(self.init, signal.SIGKILL)  # the namespace's init: every process in it goes
        self.holder.wait(timeout=10)
