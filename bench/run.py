"""preflight's benchmark harness: side-by-side timings and the budgets of issue 8.

    python bench/run.py compare [--rounds N] -- "CMD A" "CMD B" [...]
    python bench/run.py budgets [--preflight PATH] [--rounds N] [--only 1,3,...] [--json FILE]
    python bench/run.py imports [--preflight PATH]

`compare` runs the commands alternately (A B A B ...), so a burst of load on this 2-core machine
hits every command alike, and prints each median and the ratio of each to the last command.
`budgets` runs the five scenarios of issue 8 and prints a Markdown table; it starts what they
need itself (a Kamailio on 127.0.0.1 high ports, helper processes holding loopback TCP
connections, a 10,000-package snapshot in a temporary folder) and stops all of it by pid.
`imports` shows what the machine-readable report paths import (`-X importtime`) and whether rich
is among it.

Commands run with the caller's environment less PYTHONDONTWRITEBYTECODE, so that the first
(warm-up) run leaves bytecode behind, as an installed package has it. Benchmarks are not tests:
nothing here asserts a time; the table says which budget holds.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The README installs preflight here.
DEFAULT_PREFLIGHT = "/opt/preflight/bin/preflight"
KAMAILIO_PORT = 25060  # 127.0.0.1 only
SCALE_CONNECTIONS = (0, 2500, 10000)

KAMAILIO_CFG = """#!KAMAILIO
# preflight benchmark: a real Kamailio that only listens on loopback and drops every request.
debug=1
log_stderror=yes
children=1
tcp_children=1
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
request_route {{
    drop;
}}
"""


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@dataclass
class Run:
    wall_ms: float
    returncode: int
    stdout: str
    stderr: str

    @functools.cached_property
    def report(self) -> dict[str, Any]:
        """The JSON report the run printed (parsed once); empty when it printed none."""
        try:
            report = json.loads(self.stdout)
        except ValueError:
            return {}
        return report if isinstance(report, dict) else {}


@dataclass
class Series:
    argv: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        return shlex.join(self.argv)

    @property
    def median_ms(self) -> float:
        return statistics.median(r.wall_ms for r in self.runs)

    @property
    def min_ms(self) -> float:
        return min(r.wall_ms for r in self.runs)

    def check_durations(self, check_id: str) -> list[float]:
        """The `duration_ms` the JSON report gives for one check, run by run."""
        out: list[float] = []
        for run in self.runs:
            with contextlib.suppress(KeyError, TypeError):
                out.extend(c["duration_ms"] for c in run.report["checks"] if c["id"] == check_id)
        return out

    def report_durations(self) -> list[float]:
        out: list[float] = []
        for run in self.runs:
            with contextlib.suppress(KeyError, TypeError):
                out.append(run.report["duration_ms"])
        return out

    def statuses(self) -> dict[str, str]:
        """Check id -> status in the last run's report (empty without one)."""
        with contextlib.suppress(KeyError, TypeError, IndexError):
            return {c["id"]: c["status"] for c in self.runs[-1].report["checks"]}
        return {}

    def first_status(self) -> str:
        """The status of the first check in the last run's report, "?" without one."""
        return next(iter(self.statuses().values()), "?")


def run_once(argv: list[str], env: dict[str, str]) -> Run:
    started = time.perf_counter()
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, check=False
    )
    return Run((time.perf_counter() - started) * 1000, proc.returncode, proc.stdout, proc.stderr)


def alternate(commands: list[list[str]], rounds: int, warmup: int = 2) -> list[Series]:
    """Every command once per round, in the same order (A B A B ...), after `warmup` rounds."""
    env = bench_env()
    series = [Series(argv) for argv in commands]
    for _ in range(warmup):
        for argv in commands:
            first = run_once(argv, env)
            if "Traceback" in first.stderr or first.returncode == 64:
                raise SystemExit(f"bench: {shlex.join(argv)} failed:\n{first.stderr.strip()}")
    for _ in range(rounds):
        for one in series:
            one.runs.append(run_once(one.argv, env))
    return series


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------- helpers we start
def _children_of_group(pgid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{name}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                pids.append(int(name))
    return pids


def _stop(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process we started, wait, then SIGKILL it and any child of its own group
    (it was started as a session leader, so its group id is its pid) that outlived it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        left = _children_of_group(proc.pid)
        if not left:
            return
        time.sleep(0.1)
    for pid in _children_of_group(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _port_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def kamailio_running(port: int = KAMAILIO_PORT) -> Iterator[int]:
    """A real kamailio on 127.0.0.1:`port` (UDP and TCP) until the block ends; yields its pid."""
    if _port_listening(port):
        raise SystemExit(f"bench: 127.0.0.1:{port} is already in use")
    with tempfile.TemporaryDirectory(prefix="pf-bench-kamailio-") as folder:
        cfg = Path(folder) / "kamailio.cfg"
        cfg.write_text(KAMAILIO_CFG.format(port=port))
        log = open(Path(folder) / "kamailio.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            ["kamailio", "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "4"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 15
            while not _port_listening(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = (Path(folder) / "kamailio.log").read_text(errors="replace")
                    raise SystemExit(f"bench: kamailio did not start:\n{text[-2000:]}")
                time.sleep(0.1)
            time.sleep(0.5)  # let the UDP workers bind as well
            yield proc.pid
        finally:
            _stop(proc)
            log.close()


@contextlib.contextmanager
def connections_held(count: int) -> Iterator[None]:
    """`count` established loopback TCP connections (2 x count socket rows) until the block ends."""
    if count <= 0:
        yield
        return
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "connections.py"), "--count", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise SystemExit(f"bench: connections.py did not get ready ({line})")
        yield
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        _stop(proc)


def tcp_rows() -> int:
    rows = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, "rb") as handle:
            rows += sum(1 for _ in handle) - 1
    return rows


# --------------------------------------------------------------------------- budgets
@dataclass
class Row:
    number: str
    what: str
    figure: str
    budget: str
    holds: bool | None
    command: str


def ratio_budget(
    number: str, what: str, check_id: str, a: Series, b: Series, limit: float, budget: str
) -> Row:
    """A row for "command a takes at most `limit` times as long as command b"."""
    ratio = a.median_ms / b.median_ms
    return Row(
        number,
        what,
        f"{a.median_ms:.1f} vs {b.median_ms:.1f} ms = {ratio:.2f}x "
        f"(check itself {fmt_ms(median_or_none(a.check_durations(check_id)))})",
        budget,
        ratio <= limit,
        f"{a.label} | {b.label}",
    )


def budget_kernel(pf: str, rounds: int) -> list[Row]:
    a, b = alternate(
        [[pf, "check", "kernel", "--format", "json"], ["needrestart", "-b", "-k"]], rounds
    )
    return [
        ratio_budget(
            "1", "kernel check vs needrestart -b -k", "kernel", a, b, 2.0, "<= 2.0x (aim 1.3x)"
        )
    ]


def budget_puppet(pf: str, rounds: int) -> list[Row]:
    a, b = alternate([[pf, "check", "puppet", "--format", "json"], ["puppet", "--version"]], rounds)
    return [ratio_budget("2", "puppet check vs puppet --version", "puppet", a, b, 0.25, "<= 0.25x")]


def budget_all(pf: str, rounds: int) -> list[Row]:
    with kamailio_running():
        (a,) = alternate([[pf, "check", "--format", "json"]], rounds)
    statuses = a.statuses()
    per_check = ", ".join(
        f"{cid} {fmt_ms(median_or_none(a.check_durations(cid)))} ({st})"
        for cid, st in statuses.items()
    )
    return [
        Row(
            "3",
            "all checks, Kamailio running",
            f"{a.median_ms:.1f} ms (report {fmt_ms(median_or_none(a.report_durations()))}; "
            f"{per_check})",
            "<= 250 ms",
            a.median_ms <= 250,
            a.label,
        )
    ]


def budget_kamailio_scale(pf: str, rounds: int) -> list[Row]:
    rows = []
    argv = [pf, "check", "kamailio", "--format", "json"]
    with kamailio_running():
        for count in SCALE_CONNECTIONS:
            with connections_held(count):
                table_rows = tcp_rows()
                (a,) = alternate([argv], rounds)
            check_ms = median_or_none(a.check_durations("kamailio"))
            status = a.first_status()
            rows.append(
                Row(
                    "4",
                    f"kamailio check, {count:,} connections ({table_rows:,} tcp rows)",
                    f"{a.median_ms:.1f} ms (check itself {fmt_ms(check_ms)}, {status})",
                    "<= 300 ms",
                    a.median_ms <= 300,
                    a.label,
                )
            )
    return rows


def budget_kernel_snapshot(pf: str, rounds: int) -> list[Row]:
    sys.path.insert(0, str(HERE))
    import make_snapshot

    rows = []
    with tempfile.TemporaryDirectory(prefix="pf-bench-snap-") as folder:
        for count in (1000, 10000):
            root = Path(folder) / f"root-{count}"
            make_snapshot.make(root, count)
            argv = [pf, "check", "kernel", "--root", str(root), "--format", "json"]
            (a,) = alternate([argv], rounds)
            check_ms = median_or_none(a.check_durations("kernel"))
            status = a.first_status()
            rows.append(
                Row(
                    "5",
                    f"kernel check --root, {count:,}-package dpkg status",
                    f"check itself {fmt_ms(check_ms)} ({status}); whole command "
                    f"{a.median_ms:.1f} ms",
                    "<= 100 ms (check)",
                    check_ms is not None and check_ms <= 100,
                    shlex.join(argv).replace(folder, "$SNAP"),
                )
            )
    return rows


BUDGETS = {
    "1": budget_kernel,
    "2": budget_puppet,
    "3": budget_all,
    "4": budget_kamailio_scale,
    "5": budget_kernel_snapshot,
}


def floor_rows(pf: str, rounds: int) -> list[Row]:
    """What every run pays before any check: the interpreter, and the CLI with nothing to do."""
    python = str(Path(pf).parent / "python")
    a, b, c = alternate(
        [[python, "-c", "pass"], [python, "-I", "-S", "-c", "pass"], [pf, "--version"]], rounds
    )
    return [
        Row(
            "-",
            "floor: interpreter / interpreter without site / preflight --version",
            f"{a.median_ms:.1f} / {b.median_ms:.1f} / {c.median_ms:.1f} ms",
            "",
            None,
            f"{a.label} | {b.label} | {c.label}",
        )
    ]


def print_table(rows: list[Row]) -> None:
    print("| # | scenario | median (this run) | budget | holds |")
    print("|---|---|---|---|---|")
    for row in rows:
        holds = "" if row.holds is None else ("yes" if row.holds else "NO")
        print(f"| {row.number} | {row.what} | {row.figure} | {row.budget} | {holds} |")
    print()
    print("Commands:")
    for row in rows:
        print(f"- {row.number}: `{row.command}`")


# --------------------------------------------------------------------------- imports
HEAVY = (
    "rich",
    "importlib.metadata",
    "email",
    "psutil",
    "debian",
    "distro",
    "packaging",
    "pathlib",
    "asyncio",
    "xml",
)


def import_profile(pf: str, args: list[str]) -> tuple[list[tuple[int, int, str]], set[str]]:
    """(cumulative us, nesting level, module) for every import of one run, and the names."""
    python = str(Path(pf).parent / "python")
    proc = subprocess.run(
        [python, "-X", "importtime", pf, *args],
        capture_output=True,
        text=True,
        env=bench_env(),
        check=False,
    )
    rows: list[tuple[int, int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        level = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append((int(cumulative), level, name.strip()))
    return rows, {name for _, _, name in rows}


def imports_command(pf: str, root: str | None) -> None:
    base = ["check", "kernel"] + (["--root", root] if root else [])
    for fmt in ("json", "nagios", "prometheus", "human"):
        _, names = import_profile(pf, [*base, "--format", fmt])
        found = sorted(n for n in names if n in HEAVY)
        print(
            f"--format {fmt}: {len(names)} modules; heavy ones imported: "
            f"{', '.join(found) or 'none'}; rich: {'YES' if 'rich' in names else 'no'}"
        )
    rows, _ = import_profile(pf, [*base, "--format", "json"])
    top = sorted((r for r in rows if r[1] <= 1), reverse=True)
    print("\nlargest imports on the json path (cumulative us, top two levels):")
    for cumulative, level, name in top[:20]:
        print(f"{cumulative:>8}  {'  ' * level}{name}")


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    compare = sub.add_parser("compare", help="time commands alternately, medians and ratios")
    compare.add_argument("--rounds", type=int, default=20)
    compare.add_argument("commands", nargs="+", help="shell-quoted commands")
    budgets = sub.add_parser("budgets", help="the five scenarios of issue 8")
    budgets.add_argument("--preflight", default=DEFAULT_PREFLIGHT)
    budgets.add_argument("--rounds", type=int, default=20)
    budgets.add_argument("--only", default="", help="comma-separated budget numbers")
    budgets.add_argument("--json", dest="json_out", help="also write the rows to this file")
    imports = sub.add_parser("imports", help="what the report paths import")
    imports.add_argument("--preflight", default=DEFAULT_PREFLIGHT)
    imports.add_argument("--root", help="--root for the check (default: this host)")
    args = parser.parse_args(argv)

    if args.command == "compare":
        series = alternate([shlex.split(c) for c in args.commands], args.rounds)
        last = series[-1].median_ms
        for one in series:
            print(
                f"{one.median_ms:8.1f} ms median  {one.min_ms:8.1f} ms min  "
                f"{one.median_ms / last:5.2f}x  {one.label}"
            )
        return 0
    if args.command == "imports":
        imports_command(args.preflight, args.root)
        return 0

    wanted = [n for n in args.only.split(",") if n] or list(BUDGETS)
    rows = floor_rows(args.preflight, args.rounds)
    for number in wanted:
        rows.extend(BUDGETS[number](args.preflight, args.rounds))
    print(
        f"preflight: {args.preflight}; {args.rounds} rounds each; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    print_table(rows)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([row.__dict__ for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
