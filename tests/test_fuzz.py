"""Property-based fuzzing of the engine's parsers (each check's are in test_fuzz_<check>.py), and of
whole runs over fuzzed host snapshots.

The properties: a parser never raises on any input (it returns "unknown" instead), well-formed
input round-trips, no path ever resolves outside --root, and a run over a snapshot full of
garbage still yields exactly one report that validates against the JSON schema and renders in
every output format. Example counts are kept modest so the file runs in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hostdata import DEBIAN12_OS_RELEASE as OS_RELEASE
from hypothesis import given
from hypothesis import strategies as st
from support.cli import SCHEMA, report_of, run_preflight
from support.fuzz import (
    DPKG_STANZA,
    FEW,
    FUZZ,
    PROC_VERSIONS,
    VERSION_SIGNATURES,
    mutated,
    raw_bytes,
)

from preflight import config as config_mod
from preflight import facts, registry
from preflight.errors import ConfigError
from preflight.facts.packages import PackageDB, compare_versions, parse_stanza
from preflight.host import Host
from preflight.report import Report
from preflight.reporters import FORMATS, render
from preflight.runner import Planned, run_all
from preflight_checks.kernel import facts as kernel_builds


# --------------------------------------------------------------------- engine parsers
@FUZZ
@given(mutated([OS_RELEASE]))
def test_os_release_parser_never_raises_and_keys_are_shell_names(text: str) -> None:
    values = facts.parse_os_release(text)
    for key, value in values.items():
        assert key.isidentifier() and key.isascii()
        assert "\n" not in value


_KEY = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True)
_VALUE = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    ),
    max_size=30,
)


@FUZZ
@given(st.dictionaries(_KEY, _VALUE, max_size=8))
def test_os_release_round_trips_shell_quoted_values(values: dict[str, str]) -> None:
    text = "# written by a fuzzer\n" + "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())
    parsed = facts.parse_os_release(text)
    for key, value in values.items():
        if value.strip() and not value.strip().startswith("#"):
            # shlex.split keeps the first word: a quoted value is one word whatever it holds.
            assert parsed[key] == value


@FUZZ
@given(mutated(PROC_VERSIONS))
def test_uname_v_from_proc_version_is_none_or_starts_with_hash(line: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/proc")
        Path(f"{root}/proc/version").write_text(line, errors="surrogatepass")
        version = Host(root).kernel_version
    assert version is None or version.startswith("#")


@pytest.mark.parametrize("line", PROC_VERSIONS)
def test_uname_v_of_real_proc_version_lines(line: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/proc")
        Path(f"{root}/proc/version").write_text(line + "\n")
        assert Host(root).kernel_version == line[line.index(" #") + 1 :]


@FUZZ
@given(mutated([DPKG_STANZA]))
def test_dpkg_stanza_parser_never_raises(text: str) -> None:
    fields = parse_stanza(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


_FIELD = st.from_regex(r"[A-Z][A-Za-z0-9-]{0,15}", fullmatch=True)
_FIELD_VALUE = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30
)


@FUZZ
@given(st.dictionaries(_FIELD, _FIELD_VALUE, min_size=1, max_size=8))
def test_dpkg_stanza_round_trips(fields: dict[str, str]) -> None:
    text = "".join(f"{k}: {v}\n" for k, v in fields.items()) + " continued line\n"
    parsed = parse_stanza(text)
    last = list(fields)[-1]
    assert parsed[last] == fields[last] + "\ncontinued line"
    assert {k: parsed[k] for k in list(fields)[:-1]} == dict(list(fields.items())[:-1])


@FUZZ
@given(st.lists(raw_bytes([DPKG_STANZA]), min_size=1, max_size=6), st.text(max_size=12))
def test_package_db_never_raises_on_a_garbled_status_file(stanzas: list[bytes], name: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/var/lib/dpkg/info")
        Path(f"{root}/var/lib/dpkg/status").write_bytes(b"\n\n".join(stanzas))
        db = PackageDB(Host(root))
        assert db.manager == "dpkg"
        for package in [*kernel_builds.kernel_packages(db), *db.find(names=[name]), db.get(name)]:
            if package is not None:
                assert package.status.split()[-1] == "installed" and package.version


@FUZZ
@given(st.text(max_size=20), st.text(max_size=20), st.sampled_from(["dpkg", "rpm"]))
def test_version_comparison_is_a_number_or_a_value_error(a: str, b: str, manager: str) -> None:
    # Documented behaviour: -1/0/1, or ValueError for a string that is not a version. A check
    # that compares versions read from a host must be ready for the ValueError.
    try:
        result = compare_versions(a, b, manager)
    except ValueError:
        return
    assert result in (-1, 0, 1)


# ------------------------------------------------------------------------- the config
_TOML_SCALAR = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.dates(),
)
_TOML_VALUE = st.recursive(
    _TOML_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_CONFIG_KEY = st.sampled_from(
    [
        "preflight",
        "checks",
        "waivers",
        "checks",
        "fail_on",
        "plugins",
        "kernel",
        "tun",
        "puppet",
        "kamailio",
        "required",
        "code",
        "reason",
        "until",
        "match",
        "x",
    ]
)
_CONFIG_DOC = st.recursive(
    st.dictionaries(_CONFIG_KEY, _TOML_VALUE, max_size=3),
    lambda inner: st.dictionaries(
        _CONFIG_KEY, st.one_of(inner, st.lists(inner, max_size=2), _TOML_VALUE), max_size=4
    ),
    max_leaves=12,
)


@FUZZ
@given(_CONFIG_DOC)
def test_config_parse_accepts_or_raises_config_error_naming_the_file(data: dict[str, Any]) -> None:
    try:
        config = config_mod.parse(data, "/etc/preflight/fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("/etc/preflight/fuzz.toml: ")
        assert "\n" not in str(exc).rstrip()
        return
    assert config.fail_on in ("warn", "fail")
    for waiver in config.waivers:
        assert waiver.until is None or isinstance(waiver.until, dt.date)
    from preflight.check import Option

    options = {
        "required": Option(bool, False),
        "min_version": Option(str, "1"),
        "expect": Option(list, []),
        "timeout": Option(float, 1.0),
    }
    for section in config.sections:
        try:
            config_mod.check_options(config, section, options)
        except ConfigError as exc:
            assert f"[checks.{section}]" in str(exc)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.dates(dt.date(1970, 1, 1), dt.date(2999, 12, 31)),
            st.sampled_from(["toml date", "text", "toml datetime"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_waiver_until_is_the_day_written_in_any_form(days: list[tuple[dt.date, str]]) -> None:
    # TOML gives a date, a datetime or (quoted) a string: each is the day the waiver ends.
    forms: dict[str, Any] = {
        "toml date": lambda day: day,
        "text": lambda day: day.isoformat(),
        "toml datetime": lambda day: dt.datetime.combine(day, dt.time(23, 59)),
    }
    waivers = [
        {"code": "kernel.reboot-required", "reason": "maintenance window", "until": forms[f](d)}
        for d, f in days
    ]
    config = config_mod.parse({"waivers": waivers}, "/etc/preflight/fuzz.toml")
    assert [w.until for w in config.waivers] == [day for day, _ in days]
    assert all(type(w.until) is dt.date for w in config.waivers)


@FUZZ
@given(
    raw_bytes(
        [
            '[preflight]\nchecks = ["kernel"]\nfail_on = "fail"\n[checks.kernel]\n'
            'required = true\n[[waivers]]\ncode = "kernel.x"\nreason = "r"\n'
            "until = 2026-12-31\n"
        ]
    )
)
def test_config_file_of_any_bytes_loads_or_is_a_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/preflight.toml"
        Path(path).write_bytes(data)
        try:
            config_mod.load(path)
        except ConfigError as exc:
            assert path in str(exc)


# ------------------------------------------------------------- paths stay inside --root
_NAME = st.sampled_from(["a", "b", "c", "..", ".", "etc", ""])
_REL = st.lists(_NAME, max_size=6).map("/".join)


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "a/b", "etc/c"]), _REL, max_size=5),
    st.lists(_REL, min_size=1, max_size=5),
    st.booleans(),
)
def test_no_path_resolves_outside_the_root(
    links: dict[str, str], queries: list[str], absolute: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "host")
        os.makedirs(f"{root}/etc")
        os.makedirs(f"{tmp}/a/b")  # what a link that escaped would reach
        Path(f"{tmp}/secret").write_text("outside")
        for name, target in links.items():
            path = os.path.join(root, name)
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except OSError:
                continue  # "a/b" after "a" became a link
            if target and not os.path.lexists(path):
                os.symlink(("/" if absolute else "") + target, path)
        host = Host(root)
        for query in [*queries, "../secret", "a/../../secret"]:
            resolved = host.resolve(query)
            assert resolved is None or resolved == root or resolved.startswith(root + "/")
            real = host.realpath(query)
            assert real is None or not real.startswith("..")
            assert host.read_text(query) != "outside"
            host.listdir(query)
            host.glob(query + "/*")


# ------------------------------------------------------------------ socket tables
@FEW
@given(
    st.lists(st.text(min_size=1, max_size=20).filter(lambda t: "\0" not in t), max_size=5),
    mutated(
        [
            "   0: 00000000:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000"
            "     0        0 18234 2 0000000000000000 0\n"
        ]
    ),
)
def test_socket_tables_and_fd_links_from_a_snapshot_never_raise(
    targets: list[str], udp_row: str
) -> None:
    """Found by review: a copied fd link `socket:[garbage]` reached int() unguarded."""
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/proc/4242/fd")
        os.makedirs(f"{root}/proc/net")
        for index, target in enumerate([*targets, "socket:[abc]", "socket:[18234]"]):
            os.symlink(target, f"{root}/proc/4242/fd/{index}")
        Path(f"{root}/proc/net/udp").write_text(
            "  sl  local_address rem_address   st\n" + udp_row, errors="surrogatepass"
        )
        host = Host(root)
        inodes = host.sockets.inodes_of(4242)
        bound = host.sockets.bound
    assert inodes is not None and 18234 in inodes
    assert all(s.transport == "udp" and 0 <= s.port < 65536 for s in bound)


# ---------------------------------------------------- whole runs over fuzzed snapshots
def builtin_checks() -> list[registry.LoadedCheck]:
    entries = registry.select(registry.discover(), no_plugins=True, allow=None)
    return [registry.load(entry) for entry in entries]


def concrete(pattern: str, name: str) -> str:
    """A file path that a check's `paths` pattern matches."""
    for wildcard in ("**", "*", "?"):
        pattern = pattern.replace(wildcard, name)
    return pattern.replace("[", "").replace("]", "")


def one_valid_report(root: str) -> dict[str, Any]:
    """Run every built-in check in-process on `root`: one report, valid in every format."""
    plan = []
    for loaded in builtin_checks():
        options = {}
        if loaded.check is not None:
            options = {k: o.default for k, o in loaded.check.all_options().items()}
        plan.append(Planned(loaded, options))
    host = Host(root, timeout=10)
    results = run_all(plan, host, 10)
    report = Report(results, host.summary())
    for result in results:
        crash = result.exception
        assert crash is None, f"{result.id} crashed: {crash!r}"
        assert result.code.startswith(f"{result.id}.")
    for fmt in FORMATS:
        text = render(fmt, report)
        assert text
    data = json.loads(render("json", report))
    jsonschema.validate(data, SCHEMA)
    return data


SNAPSHOT_FILES: dict[str, list[str]] = {
    "etc/os-release": [OS_RELEASE],
    "proc/version": PROC_VERSIONS,
    "proc/version_signature": VERSION_SIGNATURES,
    "proc/sys/kernel/osrelease": ["6.1.0-26-amd64", "3.2.0-4-amd64", "5.15.0-122-generic"],
    "proc/cmdline": ["BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 root=UUID=1 ro quiet"],
    "proc/stat": ["cpu  1 2 3 4\nbtime 1414281600\nprocesses 100\n"],
    "var/lib/dpkg/status": [DPKG_STANZA],
    "boot/vmlinuz-6.1.0-26-amd64": ["\x00" * 0x202 + "HdrS" + "\x00" * 10 + "6.1.0-26-amd64"],
}


@FEW
@given(st.data())
def test_every_check_survives_a_snapshot_of_garbage(data: st.DataObject) -> None:
    files = dict(SNAPSHOT_FILES)
    for loaded in builtin_checks():
        for pattern in getattr(loaded.check, "paths", ()):
            files.setdefault(concrete(pattern, "fuzz"), [""])
    with tempfile.TemporaryDirectory() as root:
        for rel, samples in files.items():
            if data.draw(st.booleans(), label=f"write {rel}"):
                content = data.draw(raw_bytes(samples), label=rel)
                path = os.path.join(root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if os.path.isdir(path):
                    continue
                Path(path).write_bytes(content)
        report = one_valid_report(root)
    assert {c["id"] for c in report["checks"]} >= {"tun"}


def test_cli_prints_one_valid_report_for_fuzzed_snapshots(tmp_path: Path) -> None:
    """End to end through the real CLI: a few fixed garbage snapshots, every format."""
    import random

    rng = random.Random(9)
    for index in range(3):
        root = tmp_path / f"host{index}"
        for rel, samples in SNAPSHOT_FILES.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            text = rng.choice(samples).encode()
            cut = rng.randrange(len(text) + 1)
            path.write_bytes(text[:cut] + bytes(rng.randrange(256) for _ in range(30)) + text[cut:])
        run = run_preflight("check", "--root", str(root), "--format", "json", "--no-plugins")
        report = report_of(run)
        assert not any("crashed" in c["summary"] for c in report["checks"]), report["checks"]
        for fmt in FORMATS:
            other = run_preflight("check", "--root", str(root), "-f", fmt, "--no-plugins")
            assert other.returncode == run.returncode and other.stdout, (fmt, other.stderr)
