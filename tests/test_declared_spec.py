"""Malformed declared checks: each is a usage error (exit 64) with one line naming the file, the
check and the key, never a traceback; and the drop-in folder's rules."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cli import IN_CI, check_of, report_of, run_preflight
from support.declared import drop_in_config

GOOD = """
[[check]]
id = "good"
title = "Good"

[[check.assert]]
name = "passwd"
kind = "file"
path = "/etc/passwd"
"""


def one_check(assertion: str, check_head: str = 'id = "bad"\ntitle = "Bad"') -> str:
    return f"[[check]]\n{check_head}\n\n[[check.assert]]\n{textwrap.dedent(assertion).strip()}\n"


# (what is wrong, the spec, words the one-line error must contain besides the file name)
MALFORMED = [
    (
        "unknown kind",
        one_check('name = "a"\nkind = "filez"\npath = "/x"'),
        ["check 'bad'", "assert 'a'", "key 'kind'", "unknown assertion kind 'filez'"],
    ),
    (
        "wrong type",
        one_check('name = "rmem"\nkind = "sysctl"\nkey = "net.core.rmem_max"\nmin = "8M"'),
        ["check 'bad'", "assert 'rmem'", "key 'min'", "expected an integer", "'8M'"],
    ),
    (
        "bad regex",
        one_check('name = "re"\nkind = "file"\npath = "/etc/passwd"\ncontains = "(unclosed"'),
        ["check 'bad'", "assert 're'", "key 'contains'", "bad regular expression"],
    ),
    (
        "backreference (not linear-time)",
        one_check('name = "re"\nkind = "command"\nargv = ["true"]\nstdout = "(a+)\\\\1"'),
        ["check 'bad'", "assert 're'", "key 'stdout'", "bad regular expression", "RE2"],
    ),
    (
        "unknown key in an assertion",
        one_check('name = "a"\nkind = "file"\npath = "/x"\npermissions = "0640"'),
        ["check 'bad'", "assert 'a'", "key 'permissions'", "unknown key"],
    ),
    (
        "unknown key in a check",
        one_check('name = "a"\nkind = "file"\npath = "/x"', 'id = "bad"\nseverity = "high"'),
        ["check 'bad'", "key 'severity'", "unknown key"],
    ),
    (
        "missing required key",
        one_check('name = "a"\nkind = "port"\nproto = "udp"'),
        ["check 'bad'", "assert 'a'", "key 'port'", "required"],
    ),
    (
        "port out of range",
        one_check('name = "a"\nkind = "port"\nport = 70000'),
        ["check 'bad'", "assert 'a'", "key 'port'", "1-65535"],
    ),
    (
        "bad status",
        one_check('name = "a"\nkind = "file"\npath = "/x"\nstatus = "critical"'),
        ["check 'bad'", "assert 'a'", "key 'status'", '"fail" or "warn"'],
    ),
    (
        "relative path",
        one_check('name = "a"\nkind = "file"\npath = "etc/passwd"'),
        ["check 'bad'", "assert 'a'", "key 'path'", "absolute path"],
    ),
    (
        "bad mode",
        one_check('name = "a"\nkind = "file"\npath = "/x"\nmode = 640'),
        ["check 'bad'", "assert 'a'", "key 'mode'", "octal mode"],
    ),
    (
        "bad version constraint",
        one_check('name = "a"\nkind = "package"\npackage = "puppet"\nversion = "~> 2.7"'),
        ["check 'bad'", "assert 'a'", "key 'version'", "version constraint"],
    ),
    (
        "a package name that is not a name",
        one_check('name = "a"\nkind = "package"\npackage = "puppet; rm -rf /"'),
        ["check 'bad'", "assert 'a'", "key 'package'", "a name"],
    ),
    (
        "a service name starting with a dash",
        one_check('name = "a"\nkind = "service"\nservice = "--now"'),
        ["check 'bad'", "assert 'a'", "key 'service'"],
    ),
    (
        "duplicate assertion name",
        one_check('name = "a"\nkind = "file"\npath = "/x"')
        + '\n[[check.assert]]\nname = "a"\nkind = "file"\npath = "/y"\n',
        ["check 'bad'", "assert 'a'", "key 'name'", "duplicate assertion name"],
    ),
    (
        "reserved assertion name",
        one_check('name = "ok"\nkind = "file"\npath = "/x"'),
        ["check 'bad'", "assert 'ok'", "key 'name'", "reserved"],
    ),
    (
        "an id clashing with a built-in check",
        one_check('name = "a"\nkind = "file"\npath = "/x"', 'id = "kernel"'),
        ["check 'kernel'", "key 'id'", "clashes with the loaded check 'kernel'"],
    ),
    (
        "an id that cannot be a finding code",
        one_check('name = "a"\nkind = "file"\npath = "/x"', 'id = "my check"'),
        ["check 'my check'", "key 'id'"],
    ),
    (
        "no assertions",
        '[[check]]\nid = "bad"\n',
        ["check 'bad'", "key 'assert'", "one or more"],
    ),
    (
        "min above max",
        one_check('name = "a"\nkind = "sysctl"\nkey = "vm.swappiness"\nmin = 5\nmax = 1'),
        ["check 'bad'", "assert 'a'", "key 'min'", "greater than 'max'"],
    ),
    (
        "process without name or argv",
        one_check('name = "a"\nkind = "process"\ncount = 1'),
        ["check 'bad'", "assert 'a'", "key 'process'"],
    ),
    (
        "empty argv",
        one_check('name = "a"\nkind = "command"\nargv = []'),
        ["check 'bad'", "assert 'a'", "key 'argv'"],
    ),
]


def _assert_usage_error(run_args: list[str], needles: list[str]) -> str:
    run = run_preflight(*run_args)
    assert run.returncode == 64, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert run.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("text", "needles"), [(t, n) for _, t, n in MALFORMED], ids=[w for w, _, _ in MALFORMED]
)
def test_malformed_spec_in_the_config_is_exit_64_naming_file_check_and_key(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    path = tmp_path / "preflight.toml"
    path.write_text(text)
    line = _assert_usage_error(["check", "-c", str(path)], [str(path), *needles])
    # The same error for list and explain (every command that loads the checks).
    assert _assert_usage_error(["list", "-c", str(path)], []) == line


@pytest.mark.parametrize(
    ("text", "needles"), [(t, n) for _, t, n in MALFORMED[:4]], ids=[w for w, _, _ in MALFORMED[:4]]
)
def test_malformed_spec_in_a_drop_in_file_names_that_file(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    folder, config = drop_in_config(tmp_path, {"10-good.toml": GOOD, "20-bad.toml": text})
    _assert_usage_error(["check", "-c", str(config)], [str(folder / "20-bad.toml"), *needles])


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    folder, config = drop_in_config(tmp_path, {"a.toml": GOOD, "b.toml": GOOD})
    _assert_usage_error(
        ["check", "-c", str(config)],
        [str(folder / "b.toml"), "check 'good'", "key 'id'", "duplicate check id", "a.toml"],
    )


def test_drop_in_file_rules(tmp_path: Path) -> None:
    folder = tmp_path / "checks.d"
    folder.mkdir()
    config = tmp_path / "preflight.toml"
    # A relative checks_dir is relative to the config file's folder.
    config.write_text('[preflight]\nchecks_dir = "checks.d"\n')
    (folder / "good.toml").write_text(GOOD)
    (folder / "notes.txt").write_text("not toml [[")  # only *.toml is read
    (folder / ".hidden.toml").write_text("not toml [[")
    report = report_of(run_preflight("check", "good", "-c", str(config), "-f", "json"))
    assert check_of(report, "good")["status"] == "pass"
    # Only [[check]] tables in a drop-in file.
    (folder / "x.toml").write_text('[preflight]\nfail_on = "fail"\n')
    _assert_usage_error(["check", "-c", str(config)], [str(folder / "x.toml"), "key 'preflight'"])
    (folder / "x.toml").write_text("[[check]\n")
    _assert_usage_error(["check", "-c", str(config)], [str(folder / "x.toml"), "invalid TOML"])
    (folder / "x.toml").unlink()
    missing = tmp_path / "nowhere"
    config.write_text(f'[preflight]\nchecks_dir = "{missing}"\n')
    _assert_usage_error(["check", "-c", str(config)], ["checks_dir", str(missing)])
    config.write_text("[preflight]\nchecks_dir = 5\n")
    _assert_usage_error(["check", "-c", str(config)], [str(config), "checks_dir"])


def test_the_main_config_and_the_drop_in_folder_together(tmp_path: Path) -> None:
    main = one_check('name = "a"\nkind = "file"\npath = "/etc/passwd"', 'id = "main"')
    folder, config = drop_in_config(tmp_path, {"good.toml": GOOD}, main)
    run = run_preflight("list", "-f", "json", "-c", str(config))
    origins = {r["id"]: r["origin"] for r in json.loads(run.stdout)}
    assert origins["main"] == f"declared:{config}"
    assert origins["good"] == f"declared:{folder / 'good.toml'}"


def test_catastrophic_patterns_match_in_linear_time() -> None:
    """RE2 instead of backtracking: a pattern that takes Python's re exponential time on this
    input is decided at once."""
    from preflight.declared.spec import v_regex

    regex = v_regex("^(a+)+$", "test")
    started = time.perf_counter()
    assert not regex.search("a" * 100_000 + "!")
    assert time.perf_counter() - started < 1.0


def test_no_kind_key_shadows_a_common_key() -> None:
    from preflight.declared.spec import COMMON_KEYS, KINDS

    for kind, schema in KINDS.items():
        assert not (set(schema) & COMMON_KEYS), kind


_SCALARS = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
    st.sampled_from(["file", "port", "sysctl", "/etc/passwd", "^a$", "(", ">= 1", "0640"]),
)
_KEYS = st.one_of(
    st.sampled_from(
        ["id", "title", "assert", "name", "kind", "path", "port", "proto", "min", "max",
         "value", "key", "contains", "mode", "status", "remediation", "argv", "version"]
    ),
    st.text(max_size=8),
)  # fmt: skip
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=25,
)


# CI replays a fixed set of examples (as test_fuzz does); developers' runs explore new ones.
@settings(
    max_examples=300,
    deadline=None,
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(_DATA, st.lists(st.dictionaries(_KEYS, _DATA, max_size=6), max_size=3)))
def test_any_data_is_a_spec_or_one_spec_error(data: object) -> None:
    """Whatever the TOML holds, validation returns checks or raises SpecError (exit 64) with
    one line naming the file: never another exception."""
    from preflight.declared.spec import SpecError, parse_checks

    try:
        parse_checks(data, "fuzz.toml")
    except SpecError as exc:
        assert str(exc).startswith("fuzz.toml")
        assert "\n" not in str(exc)
