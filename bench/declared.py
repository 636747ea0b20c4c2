"""Budget of issue 17: a declared check with 50 assertions runs within the full-run budget.

    python bench/declared.py [--preflight PATH] [--rounds N] [--print-spec]

Writes a 50-assertion spec to a temporary folder (every kind that needs no network beyond
loopback: files with content and hash checks, sysctls, packages with version constraints, users,
groups, mounts, kernel modules, processes, commands, a DNS name from /etc/hosts and 20 port
assertions that one socket-table read answers), starts the same loopback Kamailio as budget 3 of
bench/run.py, and times, alternating:

- `check bench-declared --format json`: the declared check alone;
- `check --format json` with the spec as config: every built-in check plus the declared one, which
  is budget 3's scenario and its budget (<= 250 ms).

It reuses bench/run.py's harness (alternating rounds, the Kamailio it starts and stops by pid).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402 - bench/run.py, beside this file

CHECK_ID = "bench-declared"
ASSERTIONS = 50


def _assert(name: str, body: str) -> str:
    return f'\n[[check.assert]]\nname = "{name}"\n{body.strip()}\n'


def spec_text(kamailio_port: int = harness.KAMAILIO_PORT) -> str:
    """The 50-assertion spec, as an operator would write it."""
    parts = [f'[[check]]\nid = "{CHECK_ID}"\ntitle = "Benchmark: 50 declared assertions"\n']
    files = ["/etc/passwd", "/etc/group", "/etc/hostname", "/etc/os-release", "/etc/hosts"]
    for index, path in enumerate(files):
        parts.append(
            _assert(
                f"file-{index}",
                f'kind = "file"\npath = "{path}"\ntype = "file"\nowner = "root"\n'
                f'max_size = 16777216\nnot_contains = "^(?:x|y)+z$"',
            )
        )
    parts.append(_assert("passwd-root", 'kind = "file"\npath = "/etc/passwd"\ncontains = "^root:"'))
    for index, key in enumerate(
        [
            "net.core.rmem_max",
            "net.core.wmem_max",
            "net.core.somaxconn",
            "fs.file-max",
            "net.ipv4.ip_forward",
        ]
    ):
        parts.append(_assert(f"sysctl-{index}", f'kind = "sysctl"\nkey = "{key}"\nmin = 0'))
    for index, package in enumerate(["python3", "dpkg", "base-files", "kamailio", "procps"]):
        parts.append(
            _assert(
                f"package-{index}", f'kind = "package"\npackage = "{package}"\nversion = ">= 0"'
            )
        )
    for index, user in enumerate(["root", "daemon", "nobody"]):
        parts.append(_assert(f"user-{index}", f'kind = "user"\nuser = "{user}"'))
    for index, group in enumerate(["root", "daemon"]):
        parts.append(_assert(f"group-{index}", f'kind = "group"\ngroup = "{group}"'))
    parts.append(_assert("mount-proc", 'kind = "mount"\npath = "/proc"\nfstype = "proc"'))
    parts.append(_assert("mount-root", 'kind = "mount"\npath = "/"'))
    parts.append(_assert("module-0", 'kind = "kernel_module"\nmodule = "nf_conntrack"'))
    parts.append(_assert("module-1", 'kind = "kernel_module"\nmodule = "ipv6"'))
    for index in range(10):
        for proto in ("udp", "tcp"):
            parts.append(
                _assert(
                    f"port-{proto}-{index}",
                    f'kind = "port"\nproto = "{proto}"\nport = {kamailio_port}\n'
                    f'address = "127.0.0.1"\nprocess = "kamailio"',
                )
            )
    parts.append(_assert("process-0", 'kind = "process"\nprocess = "kamailio"\nmin = 1'))
    parts.append(_assert("process-1", 'kind = "process"\nargv = "kamailio.*-DD"'))
    parts.append(_assert("command-0", 'kind = "command"\nargv = ["true"]'))
    parts.append(
        _assert("command-1", 'kind = "command"\nargv = ["uname", "-s"]\nstdout = "^Linux$"')
    )
    parts.append(_assert("dns-0", 'kind = "dns"\nhost = "localhost"\naddresses = ["127.0.0.1"]'))
    text = "".join(parts)
    count = text.count("[[check.assert]]")
    assert count == ASSERTIONS, count
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preflight", default=harness.DEFAULT_PREFLIGHT)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--print-spec", action="store_true", help="print the spec and exit")
    args = parser.parse_args(argv)
    if args.print_spec:
        sys.stdout.write(spec_text())
        return 0
    pf = args.preflight
    with tempfile.TemporaryDirectory(prefix="pf-bench-declared-") as folder:
        spec = Path(folder) / "declared.toml"
        spec.write_text(spec_text())
        alone = [pf, "check", CHECK_ID, "--config", str(spec), "--format", "json"]
        everything = [pf, "check", "--config", str(spec), "--format", "json"]
        with harness.kamailio_running():
            a, b = harness.alternate([alone, everything], args.rounds)
    check_ms = harness.median_or_none(a.check_durations(CHECK_ID))
    held = sum(
        1
        for row in a.runs[-1].report.get("checks", [{}])[0].get("details", {}).get("assertions", [])
        if row.get("result") == "pass"
    )
    per_check = ", ".join(
        f"{cid} {harness.fmt_ms(harness.median_or_none(b.check_durations(cid)))} ({st})"
        for cid, st in b.statuses().items()
    )
    rows = [
        harness.Row(
            "17",
            f"declared check alone, {ASSERTIONS} assertions ({held} hold)",
            f"{a.median_ms:.1f} ms (check itself {harness.fmt_ms(check_ms)})",
            "",
            None,
            a.label.replace(folder, "$TMP"),
        ),
        harness.Row(
            "17",
            f"all checks plus the {ASSERTIONS}-assertion declared check, Kamailio running",
            f"{b.median_ms:.1f} ms ({per_check})",
            "<= 250 ms (budget 3)",
            b.median_ms <= 250,
            b.label.replace(folder, "$TMP"),
        ),
    ]
    print(
        f"preflight: {pf}; {args.rounds} rounds each; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    harness.print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
