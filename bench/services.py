"""How long the `services` check takes: this machine as it is, against `needrestart -b -r l`,
and the same machine with 1,000 more processes (none stale, then all of them stale).

    python bench/services.py [--preflight PATH] [--rounds N] [--processes 1000]

The extra processes are one Debian python3 that imported ssl and forked N-1 children (every one
maps libssl, libcrypto and python's own libraries, as a pre-fork daemon does). For the "stale"
rows the parent loaded libssl from a copy under /usr/local/lib, which is then replaced the way
dpkg replaces a file, so every process maps a deleted library and the check groups all of them
into one service. Everything started here is stopped by its pid. Prints a Markdown table; nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DEFAULT_PREFLIGHT, alternate, fmt_ms, median_or_none  # noqa: E402

FORKER = """
import os, ssl, sys, time
children = []
for _ in range(int(sys.argv[1]) - 1):
    pid = os.fork()
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    children.append(pid)
print(" ".join(map(str, children)), flush=True)
time.sleep(3600)
"""


@contextmanager
def process_tree(count: int, libs: Path | None) -> Iterator[list[int]]:
    """`count` processes (a parent and its children) that map libssl; yields their pids."""
    env = {"PATH": "/usr/bin:/bin"}
    if libs is not None:
        env["LD_LIBRARY_PATH"] = str(libs)
    parent = subprocess.Popen(
        ["/usr/bin/python3", "-c", FORKER, str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert parent.stdout is not None
    children = [int(pid) for pid in parent.stdout.readline().split()]
    try:
        yield [parent.pid, *children]
    finally:
        for pid in [*children, parent.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        parent.wait(timeout=30)


@contextmanager
def ssl_copy() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="preflight-bench-", dir="/usr/local/lib"))
    for name in ("libssl.so.3", "libcrypto.so.3"):
        shutil.copy2(glob.glob(f"/usr/lib/*-linux-gnu/{name}")[0], folder / name)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def replace(path: Path) -> None:
    new = path.with_name(path.name + ".new")
    shutil.copy2(path, new)
    os.replace(new, path)


def process_count() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def row(label: str, preflight: str, rounds: int, with_needrestart: bool) -> str:
    commands = [[preflight, "check", "services", "--format", "json"]]
    if with_needrestart:
        commands.append(["needrestart", "-b", "-r", "l"])
    series = alternate(commands, rounds)
    check = series[0]
    own = median_or_none(check.check_durations("services"))
    code = check.runs[-1].report["checks"][0]["code"] if check.runs[-1].report else "?"
    cells = [
        label,
        str(process_count()),
        fmt_ms(check.median_ms),
        fmt_ms(own),
        code,
    ]
    if with_needrestart:
        theirs = series[1].median_ms
        cells.append(f"{fmt_ms(theirs)} ({check.median_ms / theirs:.2f}x)")
    else:
        cells.append("-")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preflight", default=DEFAULT_PREFLIGHT)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=1000)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: the scan reads every process's maps", file=sys.stderr)
        return 64
    print(
        "| scenario | processes | `check services --format json` | check itself | code "
        "| `needrestart -b -r l` |"
    )
    print("|---|---|---|---|---|---|")
    print(row("this machine as it is", args.preflight, args.rounds, True))
    with process_tree(args.processes, None):
        time.sleep(1)
        print(row(f"+{args.processes:,} processes, none stale", args.preflight, args.rounds, True))
    with ssl_copy() as libs, process_tree(args.processes, libs):
        replace(libs / "libssl.so.3")
        time.sleep(1)
        label = f"+{args.processes:,} processes, all stale (one tree)"
        print(row(label, args.preflight, args.rounds, True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
