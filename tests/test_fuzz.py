"""Property-based fuzzing of every parser, and of whole runs over fuzzed host snapshots.

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
from conftest import IN_CI, SCHEMA, report_of, run_preflight
from hostdata import DEBIAN12_OS_RELEASE as OS_RELEASE
from hostdata import (
    KAMAILIO_CHECK_STDERR,
    KAMAILIO_CHECK_STDOUT,
    METADATA_TRULABS_KAMAILIO,
    MODULEFILE_TRULABS_KAMAILIO,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from snapshots_kernel import (
    DEBIAN7_PROC_VERSION,
    UBUNTU_PROC_VERSION,
    bookworm_proc_version,
    bzimage,
)

from preflight import config as config_mod
from preflight import facts, registry
from preflight.errors import ConfigError
from preflight.facts.packages import PackageDB, compare_versions, parse_stanza
from preflight.host import Host
from preflight.report import Report
from preflight.reporters import FORMATS, render
from preflight.runner import Planned, run_all
from preflight_checks.kamailio import config as kamailio_config
from preflight_checks.kamailio import facts as kamailio_sockets
from preflight_checks.kernel import facts as kernel_builds
from preflight_checks.kernel import image as kernel_image
from preflight_checks.puppet import facts as puppet_installs
from preflight_checks.puppet import facts as puppet_modules
from preflight_checks.puppet import facts as puppet_versions
from preflight_checks.tun import facts as tun_facts

# CI replays a fixed set of examples, so a landing never depends on the dice; developers'
# runs explore new ones and bring the failures they find back as fixes.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=25)

# Real samples the mutations start from (copied from real hosts).
PROC_VERSIONS = [
    DEBIAN7_PROC_VERSION,
    bookworm_proc_version("6.1.0-26"),
    UBUNTU_PROC_VERSION,
    # Ubuntu 22.04's 5.15.0-122, the kernel VERSION_SIGNATURES[0] belongs to.
    "Linux version 5.15.0-122-generic (buildd@lcy02-amd64-106) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04)"
    " 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #132-Ubuntu SMP Thu Aug 29 13:45:52 UTC 2024",
    # This Firecracker microVM's own.
    "Linux version 6.18.44-fc-v595 (root@buildkitsandbox) (gcc (GCC) 11.4.1) #1 SMP "
    "PREEMPT_DYNAMIC @0",
]
VERSION_SIGNATURES = [
    "Ubuntu 5.15.0-122.132-generic 5.15.163",
    "Ubuntu 4.4.0-210.242-generic 4.4.302",
]
DPKG_STANZA = """Package: linux-image-6.1.0-26-amd64
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 398289
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Source: linux-signed-amd64 (6.1.112+1)
Version: 6.1.112-1
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Description: Linux 6.1 for 64-bit PCs (signed)
 The Linux kernel 6.1 and modules for use on PCs with AMD64, Intel 64 or
 VIA Nano processors.
"""


def mutated(samples: list[str]) -> st.SearchStrategy[str]:
    """A real sample, a random string, or a sample with random text spliced in or cut."""
    sample = st.sampled_from(samples)
    splice = st.tuples(sample, st.integers(0, 400), st.integers(0, 400), st.text(max_size=40)).map(
        lambda t: t[0][: t[1]] + t[3] + t[0][t[2] :]
    )
    return st.one_of(sample, splice, st.text(max_size=300))


def raw_bytes(samples: list[str]) -> st.SearchStrategy[bytes]:
    """Bytes for a file: a mutated sample (possibly with invalid UTF-8) or random bytes."""
    return st.one_of(
        mutated(samples).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.tuples(mutated(samples), st.binary(max_size=20)).map(
            lambda t: t[0].encode("utf-8", "surrogatepass") + t[1] + b"\xff\xfe\n"
        ),
        st.binary(max_size=400),
    )


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
        assert waiver.until is None or dt.date.fromisoformat(waiver.until)
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


# ---------------------------------------------------------------------------- kamailio
KAMAILIO_CFG = """#!KAMAILIO
#!define WITH_TLS
#!substdef "!MY_IP!192.0.2.10!g"
#!ifdef WITH_TLS
enable_tls=yes
tls_port_no=5061
#!endif
port=5060
listen=udp:MY_IP:5060
listen=tcp:[2001:db8::1]:5060 advertise 203.0.113.1:5060
listen=tls:(127.0.0.1, ::1):5061
listen=localhost
disable_tcp=no
/* a block
   comment */ mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tls.so" // trailing comment
loadmodule "db_mysql.so"
modparam("tls", "config", "/etc/kamailio/tls.cfg")
modparam("usrloc", "db_url", "mysql://kamailio:s3cretPW@localhost/kamailio")
include_file "extra.cfg"
import_file "/etc/kamailio/missing.cfg"
"""
TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
private_key = /etc/kamailio/kamailio-selfsigned.key
certificate = "/etc/kamailio/kamailio-selfsigned.pem"
ca_list = /etc/ssl/certs/ca-certificates.crt # a comment
"""


@FUZZ
@given(
    mutated([KAMAILIO_CHECK_STDOUT]),
    mutated([KAMAILIO_CHECK_STDERR]),
    st.one_of(st.none(), st.integers(-255, 255)),
)
def test_kamailio_check_output_parser_never_raises(
    stdout: str, stderr: str, code: int | None
) -> None:
    parse = kamailio_config.parse_check_output
    result = parse(code, stdout, stderr)
    assert result.ok == (code == 0)
    assert all(s.port >= 0 for s in result.sockets)
    assert "s3cretPW" not in " ".join(result.errors)


@FUZZ
@given(
    st.sampled_from(["udp", "tcp", "tls", "sctp"]),
    mutated(
        [
            "127.0.0.1:5060",
            "localhost [127.0.0.1]:5060",
            "::1:5060",
            ":::5060 advertise 203.0.113.1:5060",
            "[2001:db8::1]:5061",
        ]
    ),
)
def test_kamailio_listen_row_parser_never_raises(proto: str, text: str) -> None:
    assume(text.strip())
    sock = kamailio_config.parse_listen_row(proto, text)
    assert sock is None or (sock.proto == proto and isinstance(sock.port, int))


@FUZZ
@given(mutated(["udp:0.0.0.0:5060", "tcp:[::]:8080", "tls:192.0.2.1:5061", "wss:[::1]:443"]))
def test_kamailio_expect_entries_parse_or_are_rejected(text: str) -> None:
    sock = kamailio_config.parse_socket(text)
    assert sock is None or (0 < sock.port < 65536 and str(sock).count(":") >= 2)


@FUZZ
@given(mutated([TLS_CFG]))
def test_kamailio_tls_cfg_parser_never_raises(text: str) -> None:
    for key, path, where in kamailio_config.tls_files(text, "/etc/kamailio/tls.cfg"):
        assert key in ("private_key", "certificate", "ca_list") and path and where.line >= 1


@FUZZ
@given(st.text(max_size=200))
def test_masking_hides_every_url_password(noise: str) -> None:
    mask = kamailio_config.mask_secrets
    assume("@" not in noise and "://" not in noise)
    text = f"{noise} mysql://kamailio:s3cretPW@localhost/kamailio {noise}"
    assert "s3cretPW" not in mask(text)


@FUZZ
@given(
    st.lists(mutated(KAMAILIO_CFG.splitlines()), max_size=30),
    mutated([KAMAILIO_CFG]),
    st.booleans(),
)
def test_kamailio_config_parser_never_raises_and_stops_on_cycles(
    lines: list[str], extra: str, cycle: bool
) -> None:
    parse = kamailio_config.parse_config
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/etc/kamailio")
        Path(f"{root}/etc/kamailio/kamailio.cfg").write_text(
            "\n".join(lines) + '\ninclude_file "extra.cfg"\n', errors="surrogatepass"
        )
        tail = '\ninclude_file "kamailio.cfg"\n' if cycle else ""
        Path(f"{root}/etc/kamailio/extra.cfg").write_text(extra + tail, errors="surrogatepass")
        parsed = parse(Host(root), "etc/kamailio/kamailio.cfg")
    assert parsed is not None
    for sock in parsed.expected_sockets():
        assert 0 < sock.port < 65536
    assert len(parsed.files) <= 3


@pytest.mark.parametrize("value", ["\u00b2", "5\u00b2", "\u0665\u0660\u0666\u0660", "-1", "99999"])
def test_kamailio_ports_that_are_not_numbers_are_ignored(value: str) -> None:
    """Found by fuzzing: `port=\u00b2` passed str.isdigit() and crashed int()."""
    parse = kamailio_config.parse_config
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/etc/kamailio")
        Path(f"{root}/etc/kamailio/kamailio.cfg").write_text(
            f"port={value}\ntls_port_no={value}\nlisten=udp:192.0.2.1:{value}\n"
        )
        parsed = parse(Host(root), "etc/kamailio/kamailio.cfg")
    assert parsed is not None
    assert all(0 < s.port < 65536 for s in parsed.expected_sockets())
    row = kamailio_config.parse_listen_row("udp", f"127.0.0.1:{value}")
    assert row is None or row.port >= 0


# ------------------------------------------------------------------------------ kernel
IMAGE_VERSION = (
    "6.1.0-26-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 "
    "(2024-09-30)"
)


@FUZZ
@given(st.binary(max_size=0x400), st.integers(0, 0xFFFF), st.binary(max_size=600))
def test_kernel_image_header_parser_never_raises(head: bytes, pointer: int, tail: bytes) -> None:
    header_version = kernel_image.header_version
    scan_version = kernel_image.scan_version
    data = bytearray(head.ljust(0x210, b"\0"))
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = pointer.to_bytes(2, "little")
    for blob in (bytes(data) + tail, bytes(head), head + b"Linux version " + tail):
        found = header_version(blob)
        assert found is None or (found.isprintable() and len(found) <= 512)
        scanned = scan_version(blob)
        assert scanned is None or scanned.isprintable()


@FUZZ
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=200))
def test_kernel_image_header_round_trips_printable_versions(version: str) -> None:
    assume(version.strip())
    found = kernel_image.header_version(bzimage(version))
    assert found == version.strip()


@FUZZ
@given(
    st.sampled_from([b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"]),
    st.binary(max_size=2000),
)
def test_kernel_image_scan_survives_truncated_and_corrupt_payloads(
    magic: bytes, rest: bytes
) -> None:
    import gzip

    scan_version = kernel_image.scan_version
    real = gzip.compress(b"\0" * 1000 + b"Linux version " + IMAGE_VERSION.encode() + b"\n\0")
    for blob in (magic + rest, b"MZ" + real[: len(rest) % len(real)], b"MZ" + real + rest):
        assert scan_version(blob) in (None, IMAGE_VERSION)


def test_kernel_image_scan_bounds_memory_on_a_decompression_bomb() -> None:
    """Found by fault injection: 1 MiB of gzip inflated to 1 GiB in one call (2 GB RSS, 8 s)."""
    import gzip
    import lzma
    import time
    import tracemalloc

    scan_version = kernel_image.scan_version
    zeros = b"\0" * (128 << 20)
    bombs = [gzip.compress(zeros, 1), lzma.compress(zeros[: 64 << 20], format=lzma.FORMAT_XZ)]
    del zeros
    for bomb in bombs:
        tracemalloc.start()
        started = time.monotonic()
        assert scan_version(b"MZ" + bomb) is None
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 48 << 20, f"peak {peak >> 20} MiB"
        assert time.monotonic() - started < 3


@FUZZ
@given(
    mutated(PROC_VERSIONS),
    mutated(VERSION_SIGNATURES),
    mutated(["6.1.0-26-amd64", "5.15.0-122-generic", "5.14.0-427.13.1.el9_4.x86_64"]),
)
def test_kernel_build_parsers_never_raise(uts: str, signature: str, release: str) -> None:
    running_build = kernel_builds.running_build
    image_build = kernel_builds.build_from_uts
    dpkg_image_release = kernel_builds.dpkg_image_release
    for build in (
        running_build(release, uts, signature),
        running_build(None, uts, None),
        running_build(release, None, None),
        image_build(uts, release),
        image_build(uts, None),
    ):
        assert build is None or (isinstance(build, str) and build)
    for name in (f"linux-image-{release}", f"linux-image-unsigned-{release}", release):
        found = dpkg_image_release(name)
        assert found is None or found in name


@pytest.mark.parametrize(
    ("release", "uts", "signature", "build"),
    [
        ("3.2.0-4-amd64", "#1 SMP Debian 3.2.54-2", None, "3.2.54-2"),
        (
            "6.1.0-26-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)",
            None,
            "6.1.112-1",
        ),
        (
            "5.15.0-122-generic",
            "#132-Ubuntu SMP Thu Aug 29 13:45:52 UTC 2024",
            None,
            "5.15.0-122.132",
        ),
        ("5.15.0-122-generic", "#132-Ubuntu SMP", VERSION_SIGNATURES[0], "5.15.0-122.132"),
    ],
)
def test_kernel_build_of_real_version_strings(
    release: str, uts: str, signature: str | None, build: str
) -> None:
    assert kernel_builds.running_build(release, uts, signature) == build


# ------------------------------------------------------------------------------ puppet
VERSION_RB = """module Puppet
  PUPPETVERSION = '7.23.0'

  def self.version
    @puppet_version || PUPPETVERSION
  end
end
"""
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(mutated([VERSION_RB]), mutated(["7.23.0\n", "3.8.7"]), mutated([VERSION_RB]))
def test_puppet_version_files_never_raise_and_give_a_version_or_none(
    version_rb: str, version_file: str, puppet_rb: str
) -> None:
    read = puppet_installs.version_from_library
    with tempfile.TemporaryDirectory() as root:
        library = "usr/lib/ruby/vendor_ruby"
        os.makedirs(f"{root}/{library}/puppet")
        Path(f"{root}/{library}/puppet/version.rb").write_text(version_rb, errors="surrogatepass")
        Path(f"{root}/{library}/puppet.rb").write_text(puppet_rb, errors="surrogatepass")
        found = read(Host(root), library)
        assert found is None or found[0][:1].isdigit()
        Path(f"{root}/{library}/puppet/VERSION").write_text(version_file, errors="surrogatepass")
        found = read(Host(root), library)
    assert found is None or (found[0][:1].isdigit() and "\n" not in found[0])


@FUZZ
@given(
    st.one_of(mutated([METADATA_TRULABS_KAMAILIO]), _JSON.map(json.dumps)),
    mutated([MODULEFILE_TRULABS_KAMAILIO]),
    st.booleans(),
)
def test_puppet_module_metadata_never_raises(metadata: str, modulefile: str, both: bool) -> None:
    read = puppet_modules.module_metadata
    with tempfile.TemporaryDirectory() as root:
        folder = "etc/puppet/code/modules/kamailio"
        os.makedirs(f"{root}/{folder}")
        Path(f"{root}/{folder}/metadata.json").write_text(metadata, errors="surrogatepass")
        if both:
            Path(f"{root}/{folder}/Modulefile").write_text(modulefile, errors="surrogatepass")
        name, version = read(Host(root), folder)
    assert name is None or isinstance(name, str)
    assert version is None or isinstance(version, str)


@pytest.mark.parametrize(
    ("text", "name", "version"),
    [
        (METADATA_TRULABS_KAMAILIO, "trulabs-kamailio", "0.0.7"),
        ('{"name": 7, "version": ["0.1"]}', None, None),
        ("[1, 2]", None, None),
    ],
)
def test_puppet_module_metadata_of_real_and_wrongly_typed_files(
    text: str, name: str | None, version: str | None
) -> None:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/m")
        Path(f"{root}/m/metadata.json").write_text(text)
        assert puppet_modules.module_metadata(Host(root), "m") == (name, version)


@FUZZ
@given(
    mutated(["7.23.0", "2.7.14", "3.7.2.acquia7", "4.10.12", "2.7.21.github2"]),
    mutated(["2.7.14", "7.0"]),
)
def test_puppet_version_ordering_never_raises(version: str, minimum: str) -> None:
    assert puppet_versions.older(version, minimum) in (True, False)


# --------------------------------------------------------------------------------- tun
OPENVPN_CONF = """# OpenVPN server, Debian's sample layout
port 1194
proto udp
dev tun0
dev-type tun
ca /etc/openvpn/server/ca.crt
cert /etc/openvpn/server/server.crt
key /etc/openvpn/server/server.key  # keep this secret
dh none
server 10.8.0.0 255.255.255.0
keepalive 10 120
persist-tun
"""


@FUZZ
@given(
    st.lists(mutated([OPENVPN_CONF]), min_size=1, max_size=3),
    raw_bytes(["tun\n"]),
    raw_bytes(["CONFIG_TUN=m\n# CONFIG_TAP is not set\n"]),
)
def test_tun_config_parsers_never_raise(configs: list[str], misc: bytes, kconfig: bytes) -> None:
    openvpn_configs = tun_facts.openvpn_configs
    kernel_support = tun_facts.kernel_support
    with tempfile.TemporaryDirectory() as root:
        for index, text in enumerate(configs):
            folder = ("etc/openvpn", "etc/openvpn/server", "etc/openvpn/client")[index]
            os.makedirs(f"{root}/{folder}", exist_ok=True)
            Path(f"{root}/{folder}/vpn.conf").write_text(text, errors="surrogatepass")
        os.makedirs(f"{root}/proc/sys/kernel")
        os.makedirs(f"{root}/boot")
        Path(f"{root}/proc/sys/kernel/osrelease").write_text("6.1.0-26-amd64\n")
        Path(f"{root}/proc/misc").write_bytes(b" 57 " + misc)
        Path(f"{root}/boot/config-6.1.0-26-amd64").write_bytes(kconfig)
        host = Host(root)
        found = openvpn_configs(host)
        kernel_support(host)
    assert len(found) == len(configs)
    for config in found:
        assert config.dev is None or (config.dev and " " not in config.dev)


def test_tun_reads_only_dev_lines_of_a_real_openvpn_config() -> None:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/etc/openvpn/server")
        Path(f"{root}/etc/openvpn/server/office.conf").write_text(OPENVPN_CONF)
        (config,) = tun_facts.openvpn_configs(Host(root))
    assert (config.dev, config.dev_type, config.unit) == ("tun0", "tun", "openvpn-server@office")


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
def test_kamailio_socket_tables_and_fd_links_from_a_snapshot_never_raise(
    targets: list[str], udp_row: str
) -> None:
    """Found by review: a copied fd link `socket:[garbage]` reached int() unguarded."""
    socket_inodes = kamailio_sockets.socket_inodes
    read_socket_tables = kamailio_sockets.read_socket_tables
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/proc/4242/fd")
        os.makedirs(f"{root}/proc/net")
        for index, target in enumerate([*targets, "socket:[abc]", "socket:[18234]"]):
            os.symlink(target, f"{root}/proc/4242/fd/{index}")
        Path(f"{root}/proc/net/udp").write_text(
            "  sl  local_address rem_address   st\n" + udp_row, errors="surrogatepass"
        )
        host = Host(root)
        inodes = socket_inodes(host, 4242)
        read_socket_tables(host)
    assert inodes is not None and 18234 in inodes
