"""The benchmark's own tools do what the figures in bench/RESULTS.md rely on, and the fast
entry-point scan (preflight/registry.py) finds exactly what importlib.metadata finds.

No timing is asserted here: benchmarks are not tests."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.cli import REPO, preflight_env, run_preflight
from support.components import require
from support.plugins import distribution

BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

import make_snapshot  # noqa: E402


def _kernel_image() -> Path | None:
    images = sorted(Path("/boot").glob("vmlinuz-*"))
    return images[-1] if images else None


def test_snapshot_has_the_package_count_and_the_real_kernel_once(tmp_path: Path) -> None:
    image = _kernel_image()
    require("a Debian kernel image in /boot (package linux-image-amd64)", image is not None)
    root = tmp_path / "root"
    info = make_snapshot.make(root, 1500)
    status = (root / "var/lib/dpkg/status").read_text()
    names = [
        line[len("Package: ") :] for line in status.splitlines() if line.startswith("Package: ")
    ]
    assert len(names) == 1500 == info["packages"]
    assert len(set(names)) == len(names), "every stanza is a distinct package"
    release = str(info["release"])
    assert names.count(f"linux-image-{release}") == 1
    assert (root / "proc/sys/kernel/osrelease").read_text().strip() == release

    run = run_preflight("check", "kernel", "--root", str(root), "--format", "json")
    report = run.json()
    kernel = report["checks"][0]
    # A host booted from its own installed kernel package is in order.
    assert run.returncode == 0, run.stdout
    assert kernel["status"] == "pass" and release in kernel["summary"]


def test_connections_helper_holds_established_connections_and_cleans_up() -> None:
    def established_rows(port: int) -> int:
        hex_port = f":{port:04X} "
        rows = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and (hex_port in f"{fields[1]} " or hex_port in f"{fields[2]} "):
                rows += 1
        return rows

    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "connections.py"), "--count", "300"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, count, port, child = proc.stdout.readline().split()
        assert ready == "ready" and count == "300"
        assert established_rows(int(port)) == 600, "both ends of every connection"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # end of input stops it, as when the harness goes away
        proc.wait(20)
    assert proc.returncode == 0
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
    assert established_rows(int(port)) == 0, "closed with a reset: nothing left behind"


# ------------------------------------------------------------------ entry-point discovery
def _dist(site: Path, folder: str, name: str, entry_points: str, meta: str = "METADATA") -> None:
    distribution(site, folder, name, entry_points, version="1.0", meta=meta, body="\nbody\n")


COMPARE = """
import json, sys
from preflight import registry
fast = [(ep.name, ep.value, dist) for ep, dist in registry._entry_points()]
slow = [(ep.name, ep.value, dist) for ep, dist in registry._importlib_entry_points()]
listed = [(e.name, e.origin, e.entry_point.value) for e in registry.discover()]
print(json.dumps({"fast": sorted(fast), "slow": sorted(slow), "listed": listed}))
"""


def _discover_with(paths: list[Path]) -> dict[str, list[list[str]]]:
    env_path = ":".join(str(p) for p in paths)
    proc = subprocess.run(
        [sys.executable, "-c", COMPARE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        cwd="/",
        check=True,
    )
    return json.loads(proc.stdout)


def test_fast_entry_point_scan_matches_importlib_metadata(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(
        first,
        "Acme.Checks-2.0.dist-info",
        "Acme.Checks",
        "# generated\n[console_scripts]\nacme = acme:main\n\n"
        "[preflight.checks]\nacme = acme_checks.mod:AcmeCheck [extra]\n"
        "acme_two=acme_checks:Two\n",
    )
    # The same distribution again later on the path: importlib.metadata ignores it.
    _dist(second, "acme_checks-1.0.dist-info", "acme-checks", "[preflight.checks]\nold = x:Y\n")
    _dist(
        second,
        "legacy_plugin.egg-info",
        "legacy-plugin",
        "[preflight.checks]\nlegacy = l:C\n",
        meta="PKG-INFO",
    )
    _dist(second, "other-1.0.dist-info", "other", "[other.group]\nnot_ours = o:P\n")

    found = _discover_with([first, second])
    assert found["fast"] == found["slow"]
    listed = {row[0]: row for row in found["listed"]}
    assert listed["acme"] == ["acme", "Acme.Checks", "acme_checks.mod:AcmeCheck [extra]"]
    assert listed["acme_two"][2] == "acme_checks:Two"
    assert listed["legacy"][1] == "legacy-plugin"
    assert "old" not in listed and "not_ours" not in listed
    assert listed["kernel"][1] == "built-in"


def test_a_plugin_in_a_zip_on_the_path_is_still_found(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[preflight.checks]\nzip = z:C\n")
    listed = {row[0]: row for row in _discover_with([archive])["listed"]}
    assert listed["zip"] == ["zip", "zipped", "z:C"]


@pytest.mark.parametrize("fmt", ["json", "nagios", "prometheus"])
def test_machine_formats_never_import_rich(fmt: str, tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "preflight",
            "check",
            "kernel",
            "--root",
            str(tmp_path),
            "--format",
            fmt,
        ],
        capture_output=True,
        text=True,
        cwd="/",
        env=preflight_env(),
        check=False,
    )
    assert proc.stdout, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "preflight.cli" in imported
    assert not {m for m in imported if m == "rich" or m.startswith("rich.")}
    assert "importlib.metadata" not in imported


# ------------------------------------------------------------------ dpkg status lookups
def _reference_find(text: str, names: list[str], prefix: str | None) -> list[tuple[str, str]]:
    """Every stanza parsed in turn: slow, obviously right."""
    from preflight.facts.packages import parse_stanza

    out = []
    for chunk in text.split("\n\n"):
        fields = parse_stanza(chunk)
        name = fields.get("Package", "")
        status = fields.get("Status", "")
        if not fields.get("Version") or status.split()[-1:] != ["installed"]:
            continue
        if name in names or (prefix and name.startswith(prefix) and name.split() == [name]):
            out.append((name, fields["Version"]))
    return out


def test_dpkg_lookup_finds_exactly_what_parsing_every_stanza_finds(tmp_path: Path) -> None:
    from preflight.facts.packages import PackageDB
    from preflight.host import Host
    from preflight_checks.kernel.facts import kernel_packages

    real = Path("/var/lib/dpkg/status")
    require("a dpkg status file", real.is_file())
    edge = [
        "Package: linux-image-amd64\nStatus: install ok installed\nVersion: 6.1.1\n"
        "Description: first stanza of the file\n Package: linux-image-not-a-stanza",
        "Package: libc6   \nStatus: install ok installed\nVersion: 2.36-9\n"
        "Description: trailing blanks after the name; d\u00e9j\u00e0 vu",
        "Package: libc6-dev\nStatus: install ok installed\nVersion: 2.36-9",
        "Package: linux-image-6.1.0-9-amd64\nStatus: deinstall ok config-files\nVersion: 6.1.27-1",
        "Package: linux-image-with space\nStatus: install ok installed\nVersion: 1",
    ]
    tail = "Package: linux-image-last\nStatus: install ok installed\nVersion: 9"  # no final newline
    text = "\n\n".join([*edge, real.read_text(encoding="utf-8").strip("\n"), tail])
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(text, encoding="utf-8")
    db = PackageDB(Host(str(tmp_path)))

    for names, prefix in (
        (["libc6"], None),
        (["libc6", "libc6-dev", "dpkg", "no-such-package"], None),
        ([], "linux-image-"),
        (["bash"], "lib"),
    ):
        found = [(p.name, p.version) for p in db.find(names=names, prefix=prefix)]
        assert found == _reference_find(text, names, prefix), (names, prefix)
    assert [p.name for p in kernel_packages(db)][0] == "linux-image-amd64"
    assert "linux-image-last" in [p.name for p in kernel_packages(db)]
