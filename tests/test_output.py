"""--output PATH (contract section 5): atomic replacement, mode 0644, usage errors, leftovers."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import NOBODY, REPO, as_user, preflight_argv, preflight_env
from support.components import (
    require_command,
    require_nobody_can_run,
    require_root,
    world_readable_dir,
)
from support.plugins import script, scripted, scripted_env
from support.snapshot import Snapshot


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A folder for reports only (the snapshot lives beside it in tmp_path)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def failing_root(snapshot: Snapshot) -> Snapshot:
    script(snapshot, "fail broken the widget is broken\n")
    return snapshot


def test_output_replaces_the_file_with_mode_0644_under_a_strict_umask(
    failing_root: Snapshot, out: Path
) -> None:
    report = out / "report.json"
    report.write_text("old report\n")
    report.chmod(0o600)
    argv = preflight_argv(
        *("check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)),
        prefix=("sh", "-c", 'umask 077; exec "$@"', "sh"),
    )
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=preflight_env(scripted_env()),
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert json.loads(report.read_text())["checks"][0]["code"] == "scripted.broken"
    # node_exporter and facter do not run as root: the report must be readable by them
    assert report.stat().st_mode & 0o777 == 0o644
    assert os.listdir(out) == ["report.json"]  # no temporary file left behind


def test_missing_folder_is_a_usage_error(failing_root: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "nosuch" / "report.prom"
    run = scripted(
        "check", "scripted", "--root", str(failing_root), "-f", "prometheus", "-o", str(target)
    )
    assert run.returncode == 64
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output" in lines[0] and str(tmp_path / "nosuch") in lines[0]
    assert "does not exist" in lines[0]


def test_unwritable_folder_is_a_usage_error(open_snapshot: Snapshot, open_dir: Path) -> None:
    # The CLI runs as an unprivileged user, who cannot write a folder of root's.
    require_nobody_can_run()
    folder = open_dir / "reports"
    folder.mkdir(mode=0o755)
    run = scripted(
        "check",
        "--no-plugins",
        "--root",
        str(open_snapshot),
        "-f",
        "json",
        "-o",
        str(folder / "report.json"),
        user=NOBODY,
    )
    assert run.returncode == 64, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output" in lines[0] and "not writable" in lines[0]
    assert os.listdir(folder) == []


def test_temp_file_is_dot_named_and_not_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preflight.output import atomic_binary, temp_name

    for name in ("report.json", "preflight.prom"):
        temp = temp_name(name)
        # node_exporter reads *.prom, facter and log shippers *.json: never a partial file
        assert temp.startswith(f".{name}.") and not temp.endswith((".prom", ".json"))
    # Normally the data is written into an unnamed file (O_TMPFILE): no name to see at all.
    with atomic_binary(str(tmp_path / "report.json")) as handle:
        handle.write(b"x")
        assert os.listdir(tmp_path) == []
    # Without O_TMPFILE (an old kernel, some filesystems) a dot-named file is used instead.
    monkeypatch.delattr(os, "O_TMPFILE")
    with atomic_binary(str(tmp_path / "preflight.prom")) as handle:
        handle.write(b"x")
        (temp,) = [e for e in os.listdir(tmp_path) if e != "report.json"]
        assert temp.startswith(".preflight.prom.") and not temp.endswith((".prom", ".json"))
    assert sorted(os.listdir(tmp_path)) == ["preflight.prom", "report.json"]


def test_kill_9_mid_write_keeps_the_previous_report_and_the_next_run_cleans_up(
    failing_root: Snapshot, out: Path
) -> None:
    report = out / "report.json"
    first = scripted(
        "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
    )
    assert first.returncode == 2
    previous = report.read_bytes()
    # A run killed with SIGKILL halfway through writing its temporary file.
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from preflight.output import atomic_binary\n"
            "with atomic_binary(sys.argv[1]) as handle:\n"
            '    handle.write(b\'{"schema_version": 1, "chec\')\n'
            "    handle.flush()\n"
            "    os.kill(os.getpid(), 9)\n",
            str(report),
        ],
        cwd=REPO,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    # The unnamed temp file died with the process: nothing is left to clean up.
    assert os.listdir(out) == ["report.json"]
    assert report.read_bytes() == previous  # readers still see the old complete report

    # A temp file of a run that is still going (its pid is alive and a preflight) is kept.
    busy = subprocess.Popen(["sh", "-c", "sleep 30", "preflight-busy"])
    try:
        busy_temp = out / f".report.json.preflight-tmp-{busy.pid}-abc.tmp"
        busy_temp.write_text("in progress")
        script(failing_root, "pass fine all good\n")
        second = scripted(
            "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
        )
        assert second.returncode == 0
        assert json.loads(report.read_text())["status"] == "pass"
        assert sorted(os.listdir(out)) == sorted(["report.json", busy_temp.name])
    finally:
        busy.kill()
        busy.wait()


def test_readers_never_see_a_partial_report_while_runs_are_killed(
    failing_root: Snapshot, out: Path
) -> None:
    report = out / "preflight.json"
    assert (
        scripted(
            "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
        ).returncode
        == 2
    )
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = report.read_bytes()
            reads += 1
            try:
                json.loads(data)
            except ValueError:
                bad.append(data[:80].decode("utf-8", "replace"))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    rng = random.Random(7)
    argv = preflight_argv(
        "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
    )
    try:
        for _ in range(6):
            proc = subprocess.Popen(
                argv,
                env=preflight_env(scripted_env()),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.05, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        stop.set()
        thread.join(5)
    assert reads > 0 and bad == []
    final = scripted(
        "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(report)
    )
    assert final.returncode == 2 and json.loads(report.read_text())["exit_code"] == 2
    assert os.listdir(out) == ["preflight.json"]  # the killed runs' temps are gone


# ---------------------------------------------------------------- attacks (issue 18, items 3-6)
# Runs as another account: swaps every temp name it sees in the folder for a symlink to a file
# of root's, as fast as it can, for `seconds`. Prints how often it looked and swapped.
SWAPPER = r"""
import os, signal, sys, time
folder, victim, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
looks = swaps = 0
end = time.monotonic() + seconds
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while time.monotonic() < end and not stop:
    looks += 1
    for name in os.listdir(folder):
        if ".preflight-tmp-" in name:
            path = os.path.join(folder, name)
            try:
                os.unlink(path)
                os.symlink(victim, path)
                swaps += 1
            except OSError:
                pass
print(looks, swaps, flush=True)
"""

# Root writes `count` reports in a row through the public writer, checking each one landed.
WRITER = r"""
import os, sys
if sys.argv[3] == "no-tmpfile":
    del os.O_TMPFILE
from preflight.errors import UsageError
from preflight.output import write_atomically
path, count = sys.argv[1], int(sys.argv[2])
landed = refused = 0
for i in range(count):
    data = b'{"run": %d}\n' % i
    try:
        write_atomically(path, data)
    except UsageError as exc:
        refused += 1
        assert str(exc).count("\n") == 0 and os.path.dirname(path) in str(exc), exc
        continue
    if sys.argv[3] == "unverified":  # the path itself is being swapped: checked afterwards
        landed += 1
        continue
    st = os.lstat(path)
    with open(path, "rb") as handle:
        assert handle.read() == data and st.st_uid == 0 and st.st_mode & 0o777 == 0o644
    landed += 1
print(landed, refused, flush=True)
"""


def _write_reports(path: str, count: int, mode: str) -> subprocess.CompletedProcess[str]:
    """WRITER writing `count` reports to `path` the `mode` way, while another process races it:
    its stdout is "LANDED REFUSED"."""
    return subprocess.run(
        [sys.executable, "-c", WRITER, path, str(count), mode],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def _swapper(folder: Path, victim: Path, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*as_user(NOBODY), sys.executable, "-c", SWAPPER, str(folder), str(victim), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )


@pytest.fixture
def service_folder(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A node_exporter-style textfile folder owned by a service account (uid NOBODY), and a
    root-only file elsewhere that the account would like root to chmod."""
    require_nobody_can_run()
    victim = tmp_path / "shadow"
    victim.write_text("root:$6$secret:19000:0:99999:7:::\n")
    victim.chmod(0o600)
    with world_readable_dir("preflight-textfile-") as parent:
        folder = parent / "textfile"
        folder.mkdir()
        os.chown(folder, NOBODY, NOBODY)
        yield folder, victim


def test_a_service_account_swapping_temp_names_for_symlinks_changes_nothing_of_roots(
    service_folder: tuple[Path, Path], failing_root: Snapshot
) -> None:
    folder, victim = service_folder
    before = victim.stat()
    report = folder / "preflight.prom"
    swapper = _swapper(folder, victim, 30)
    try:
        time.sleep(0.3)  # the loop is running before the first write
        writer = _write_reports(str(report), 300, "tmpfile")
        cli = [
            scripted(
                *("check", "scripted", "--root", str(failing_root), "-f", "prometheus"),
                *("-o", str(report)),
            )
            for _ in range(5)
        ]
    finally:
        swapper.terminate()
        looks, _swaps = swapper.communicate(timeout=30)[0].split() or ["0", "0"]
    assert int(looks) > 100, "the competing process did not run"
    assert writer.returncode == 0, writer.stderr
    landed, refused = map(int, writer.stdout.split())
    assert (landed, refused) == (300, 0)  # every report landed, none was lost
    for run in cli:
        assert run.returncode == 2 and run.stderr == "", run.stderr
    assert 'preflight_check_status{check="scripted",status="fail"} 1' in report.read_text()
    # The root-only file: same mode, same content, same inode.
    after = victim.stat()
    assert (after.st_mode, after.st_ino, after.st_size) == (
        before.st_mode,
        before.st_ino,
        before.st_size,
    )
    assert victim.read_text().startswith("root:$6$secret")


def test_without_o_tmpfile_a_swapped_temp_file_is_refused_never_followed(
    service_folder: tuple[Path, Path],
) -> None:
    """The fallback for kernels and filesystems without O_TMPFILE: a named temp file made with
    O_EXCL|O_NOFOLLOW, written and chmod-ed through its descriptor, its inode checked before
    and after the rename. The swapper wins the long window (write, fsync) nearly every time:
    those writes are refused with one line naming the folder (checked by WRITER), any other
    lands, and root's file never changes."""
    folder, victim = service_folder
    before = victim.stat()
    swapper = _swapper(folder, victim, 30)
    try:
        time.sleep(0.3)
        writer = _write_reports(str(folder / "preflight.prom"), 200, "no-tmpfile")
    finally:
        swapper.terminate()
        looks, swaps = swapper.communicate(timeout=30)[0].split() or ["0", "0"]
    assert writer.returncode == 0, writer.stderr
    landed, refused = map(int, writer.stdout.split())
    assert landed + refused == 200, (landed, refused, looks, swaps)
    after = victim.stat()
    assert (after.st_mode, after.st_ino, after.st_size) == (
        before.st_mode,
        before.st_ino,
        before.st_size,
    )


def test_output_onto_a_character_device_writes_to_it_and_leaves_it_a_device(
    failing_root: Snapshot, out: Path
) -> None:
    """`-o /dev/null` as root once replaced the system's /dev/null with a regular file. A
    device node made here with mknod (the same char 1:3) stands in for it."""
    require_root()
    null = out / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for fmt in ("json", "prometheus"):
        run = scripted("check", "scripted", "--root", str(failing_root), "-f", fmt, "-o", str(null))
        assert run.returncode == 2 and run.stderr == "", run.stderr
        st = os.lstat(null)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert os.listdir(out) == ["null"]
    # `-o /dev/null` itself, in a private mount namespace whose /dev is a fresh tmpfs holding a
    # real null device: a regression replaces that one, never the machine's.
    unshare = require_command("unshare")
    inner = (
        "mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && "
        '"$@" -o /dev/null; code=$?; '
        "if [ -c /dev/null ] && [ ! -s /dev/null ]; then exit $code; fi; "
        "echo /dev/null is no longer a device >&2; exit 99"
    )
    argv = preflight_argv(
        *("check", "scripted", "--root", str(failing_root), "-f", "json"),
        prefix=(unshare, "-m", "--propagation", "private", "sh", "-c", inner, "sh"),
    )
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=preflight_env(scripted_env()), cwd=REPO
    )
    assert proc.returncode == 2 and proc.stderr == "", proc.stderr
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_output_onto_a_fifo_and_dev_stdout_streams_the_report(
    failing_root: Snapshot, out: Path
) -> None:
    fifo = out / "report.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    run = scripted("check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(fifo))
    reader.join(30)
    assert run.returncode == 2, run.stderr
    assert json.loads(got[0])["exit_code"] == 2
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(out) == ["report.fifo"]
    # /dev/stdout -> /proc/self/fd/1 -> pipe:[...]: the report reaches the pipe.
    run = scripted(
        "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", "/dev/stdout"
    )
    assert run.returncode == 2 and json.loads(run.stdout)["exit_code"] == 2


def test_a_fifo_nobody_reads_fails_at_once_instead_of_hanging(
    failing_root: Snapshot, out: Path
) -> None:
    fifo = out / "report.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    run = scripted(
        "check",
        "scripted",
        "--root",
        str(failing_root),
        "-f",
        "json",
        "-o",
        str(fifo),
        timeout=30,
    )
    assert time.monotonic() - started < 20
    assert run.returncode == 64 and "a FIFO that no process reads" in run.stderr, run.stderr


def test_a_fifo_planted_by_another_account_is_refused(
    failing_root: Snapshot, open_dir: Path
) -> None:
    """A service account that owns the textfile folder (or anyone in a sticky world-writable
    one) replaces the report with its FIFO: root would hang on it or hand it the report."""
    out = open_dir / "textfile"
    out.mkdir()
    out.chmod(0o1777)
    planted = out / "preflight.prom"
    subprocess.run([*as_user(NOBODY), "mkfifo", str(planted)], check=True)
    run = scripted(
        "check",
        "scripted",
        "--root",
        str(failing_root),
        "-f",
        "prometheus",
        "-o",
        str(planted),
        timeout=30,
    )
    assert run.returncode == 64, run.stderr
    assert "is a FIFO another account could have planted" in run.stderr
    assert f"it belongs to uid {NOBODY}" in run.stderr
    assert stat.S_ISFIFO(os.lstat(planted).st_mode)


def test_a_symlinked_report_keeps_its_link_and_its_target_is_replaced(
    failing_root: Snapshot, out: Path
) -> None:
    real = out / "real"
    real.mkdir()
    (real / "report.json").write_text("old\n")
    link = out / "report.json"
    link.symlink_to("real/report.json")
    dangling = out / "new.json"
    dangling.symlink_to(real / "new.json")
    for path in (link, dangling):
        run = scripted(
            "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(path)
        )
        assert run.returncode == 2 and run.stderr == "", run.stderr
        assert path.is_symlink()
        assert json.loads(path.read_text())["exit_code"] == 2
    assert sorted(os.listdir(real)) == ["new.json", "report.json"]  # no temp left beside them
    assert (real / "report.json").stat().st_mode & 0o777 == 0o644


def test_a_symlink_planted_by_another_account_is_refused(
    failing_root: Snapshot, tmp_path: Path
) -> None:
    """In a sticky world-writable folder (/tmp), another account's link to a root file is
    never followed: exit 64 before any check runs, one line naming the link and the folder."""
    require_nobody_can_run()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    victim.chmod(0o600)
    with world_readable_dir("preflight-sticky-", mode=0o1777) as shared:
        planted = shared / "report.json"
        subprocess.run([*as_user(NOBODY), "ln", "-s", str(victim), str(planted)], check=True)
        run = scripted(
            "check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(planted)
        )
        assert run.returncode == 64 and run.stdout == ""
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "symbolic link" in lines[0] and str(shared) in lines[0]
        assert planted.is_symlink() and os.listdir(shared) == ["report.json"]
    assert victim.read_text() == "keep me\n" and victim.stat().st_mode & 0o777 == 0o600


def test_unsuitable_destinations_are_refused_before_any_check_runs(
    failing_root: Snapshot, out: Path
) -> None:
    # A name whose temp name would not fit in NAME_MAX (255): once exit 3 after every check.
    long_name = out / ("r" * 230 + ".json")
    sock_dir = out / "a-folder"
    sock_dir.mkdir()
    for target, words in ((long_name, "too long"), (sock_dir, "directory")):
        # The config file is missing too: the error is about --output, so it was checked
        # before the config was even read, let alone any check run.
        run = scripted(
            *("check", "scripted", "--root", str(failing_root), "-f", "json"),
            *("-c", str(out / "nosuch.toml"), "-o", str(target)),
        )
        assert run.returncode == 64 and run.stdout == "", run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "--output" in lines[0] and words in lines[0], lines
    assert sorted(os.listdir(out)) == ["a-folder"]
    # The longest name that fits is written.
    fits = out / ("r" * 215)
    run = scripted("check", "scripted", "--root", str(failing_root), "-f", "json", "-o", str(fits))
    assert run.returncode == 2 and fits.is_file(), run.stderr


# Runs as the account that owns the parent folder: swaps the report folder for a symlink to a
# folder of root's and back, as fast as it can.
FOLDER_SWAPPER = r"""
import os, signal, sys, time
parent, target = sys.argv[1], sys.argv[2]
real, aside = os.path.join(parent, "reports"), os.path.join(parent, "reports.real")
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
swaps = 0
while not stop:
    try:
        os.rename(real, aside)
        os.symlink(target, real)
        swaps += 1
        os.unlink(real)
        os.rename(aside, real)
        time.sleep(0.001)  # the real folder stays a moment, so some writes land
    except OSError:
        pass
print(swaps, flush=True)
"""


def test_a_parent_folder_swapped_for_a_link_never_redirects_the_report(
    tmp_path: Path,
) -> None:
    """The account that owns the report folder's parent swaps the folder for a symlink to a
    folder of root's holding a file of the report's name. The folder is opened one component
    at a time without following such a link: each write lands in the real folder or is
    refused with one line; root's file is never replaced."""
    require_nobody_can_run()
    roots = tmp_path / "etc"
    roots.mkdir(mode=0o700)
    victim = roots / "preflight.json"
    victim.write_text("root's own file\n")
    victim.chmod(0o600)
    with world_readable_dir("preflight-parent-") as parent_of_parent:
        parent = parent_of_parent / "service"
        parent.mkdir()
        (parent / "reports").mkdir()
        for folder in (parent, parent / "reports"):
            os.chown(folder, NOBODY, NOBODY)
        swapper = subprocess.Popen(
            [*as_user(NOBODY), sys.executable, "-c", FOLDER_SWAPPER, str(parent), str(roots)],
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        try:
            time.sleep(0.3)
            writer = _write_reports(str(parent / "reports/preflight.json"), 300, "unverified")
        finally:
            swapper.terminate()
            swaps = int(swapper.communicate(timeout=30)[0] or 0)
        landed_in = [parent / d / "preflight.json" for d in ("reports", "reports.real")]
        reports = [p.read_text() for p in landed_in if p.is_file() and not p.is_symlink()]
    assert swaps > 100, "the competing process did not run"
    assert writer.returncode == 0, writer.stderr
    landed, refused = map(int, writer.stdout.split())
    # Every write either landed or was refused with one line; how many of each depends on how
    # the two processes were scheduled (the folder's owner may deny service, never redirect).
    assert landed + refused == 300, (landed, refused)
    assert victim.read_text() == "root's own file\n" and victim.stat().st_mode & 0o777 == 0o600
    assert os.listdir(roots) == ["preflight.json"]
    if landed:
        # The last report that landed is in the real folder (wherever the swapper left it).
        assert len(reports) == 1 and reports[0].startswith('{"run": ')
