"""`preflight collect`: a host snapshot for `preflight check --root` on another machine.

There is one collector: the POSIX sh script `preflight/collect.sh`. `collect --print-script`
prints it with this installation's path list filled in, for hosts without Python; `preflight
collect FILE` runs the very same script (OUT "-": the tarball on its stdout) and writes the
tarball through `preflight.output` (descriptors, O_TMPFILE, mode 0600). Path resolution inside
ROOT, device handling and redaction exist only in the script; this module only declares what to
collect (the host fact files and every loaded check's `paths` and `markers`) and runs it.

A pattern ending in `/**` copies that directory's whole tree; any other pattern that names a
directory adds the directory itself (a check asking `is_dir` sees it) but not its content. A
pattern written `FOLLOWER:PATTERN` (FOLLOWER one of FOLLOWERS) is collected as PATTERN, and the
script also copies the files each match names, read the way that follower in the script reads
them (Kamailio's includes, tls config and certificates). A pattern written `{OPTION}` is the
value of that option of the check as configured (`-c`), when it is an absolute path.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from preflight import __version__
from preflight.errors import UsageError
from preflight.facts import FACT_PATHS
from preflight.host import SYSTEM_PATH

if TYPE_CHECKING:
    from preflight.runner import Planned

MANIFEST = ".preflight-collect.json"
MAX_FILE_BYTES = 64 << 20  # bigger files are left out (a kernel image is ~10 MiB)
# Never even read: a key stays on its host (stored empty, listed as withheld).
WITHHELD_SUFFIXES = (".key", ".p12", ".pfx")
# Key material left in a file after redaction (a PEM key, OpenVPN's static keys outside an
# inline block): the whole file is withheld.
WITHHELD_MARKERS = (b"PRIVATE KEY", b"OpenVPN Static key")
# Files taken verbatim: kernel interfaces, the package database, kernel images, modules and build
# configs hold no secrets (and CONFIG_SECRETMEM=y is not one).
VERBATIM_PREFIXES = (
    "proc/",
    "sys/",
    "dev/",
    "var/lib/dpkg/",
    "var/lib/rpm/",  # RPM databases (binary: redaction would withhold them)
    "usr/lib/sysimage/rpm/",
    "boot/config-",
    "boot/vmlinuz-",
    "boot/efi/EFI/Linux/",  # unified kernel images
    "boot/EFI/Linux/",
    "efi/EFI/Linux/",
    "lib/modules/",
)
SCRIPT_PATH = ("/bin/sh", "/usr/bin/sh")
# The readers collect.sh has for files that name other files: a Kamailio config (includes, the
# tls module's files, cdp's config), and /etc/default/kamailio (its CFGFILE=).
FOLLOWERS = ("kamailio-config", "kamailio-defaults")
MAX_FOLLOWED = 200  # files followed in all, like the check's reader (MAX_FILES)
MAX_FOLLOW_DEPTH = 20  # levels of files naming files
_SUMMARY = re.compile(r"wrote - \((\d+) files, (\d+) redacted, (\d+) withheld, (\d+) skipped\)$")


@dataclass
class Snapshot:
    """What went into the tarball, as the script counted it."""

    files: int = 0
    redacted: int = 0
    withheld: int = 0
    skipped: int = 0


# --------------------------------------------------------------------- paths
def _declared(plan: list[Planned], attr: str) -> list[str]:
    """Every loaded check's `attr` ("paths" or "markers"), root-relative, without duplicates.
    A plugin's value is not trusted to be a tuple of non-empty strings."""
    patterns: list[str] = []
    for planned in plan:
        check = planned.loaded.check
        declared = getattr(check, attr, ()) if check is not None else ()
        if isinstance(declared, (list, tuple)):
            entries = (_with_option(p, planned.options) for p in declared if isinstance(p, str))
            patterns.extend(p.strip().lstrip("/") for p in entries if p and p.strip().strip("/"))
    return list(dict.fromkeys(patterns))


def _with_option(entry: str, options: dict[str, object]) -> str | None:
    """`entry` with a pattern written `{OPTION}` (after an optional `FOLLOWER:`) replaced by
    that option's value, an absolute path taken literally (its wildcards escaped); None when
    the option is unset or not such a path. Any other entry as it is."""
    follower, sep, pattern = entry.partition(":")
    if not (sep and follower in FOLLOWERS):
        follower, sep, pattern = "", "", entry
    if not (pattern.startswith("{") and pattern.endswith("}")):
        return entry
    value = options.get(pattern[1:-1])
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        return None
    return follower + sep + re.sub(r"([][*?])", r"[\1]", value)


def check_paths(plan: list[Planned]) -> list[str]:
    """Fact paths, then every loaded check's `paths` (a follower's pattern as the plain
    pattern), without duplicates."""
    plain = [_followed(p)[1] for p in _declared(plan, "paths")]
    return list(dict.fromkeys([*FACT_PATHS, *plain]))


def follow_paths(plan: list[Planned]) -> list[str]:
    """`FOLLOWER PATTERN` for every `FOLLOWER:PATTERN` of the loaded checks' `paths`."""
    found = [_followed(p) for p in _declared(plan, "paths")]
    return list(dict.fromkeys(f"{name} {pattern}" for name, pattern in found if name))


def _followed(entry: str) -> tuple[str | None, str]:
    """(follower, pattern) of a `paths` entry; (None, entry) when it names no follower."""
    name, sep, pattern = entry.partition(":")
    if sep and name in FOLLOWERS and pattern.strip("/"):
        return name, pattern.lstrip("/")
    return None, entry


def check_markers(plan: list[Planned]) -> list[str]:
    """Every loaded check's `markers`: stored as empty files."""
    return _declared(plan, "markers")


def _loaded_plan(config_path: str | None, no_plugins: bool, root: str) -> list[Planned]:
    from preflight import session

    plan, _cfg = session.plan([], config_path, no_plugins, root)
    return plan


# ------------------------------------------------------------------- collect
def collect(
    out_path: str, root: str = "/", config_path: str | None = None, no_plugins: bool = False
) -> Snapshot:
    """Run the collector script on ROOT and write its tarball to `out_path` atomically."""
    from preflight.output import atomic_binary, check_destination
    from preflight.session import require_root

    require_root(root)
    check_destination(out_path, flag="collect")
    text = script(config_path, no_plugins, root)
    shell = next((p for p in SCRIPT_PATH if _is_file(p)), "sh")
    env = {"PATH": SYSTEM_PATH, "LC_ALL": "C"}
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    with (
        tempfile.TemporaryFile() as errors,
        atomic_binary(out_path, mode=0o600, flag="collect") as handle,
    ):
        # `sh -c SCRIPT NAME OUT ROOT`: the script is an argument, so nothing it runs can
        # read it from stdin. It is our own text; ROOT is passed as data.
        proc = subprocess.Popen(  # noqa: S603
            [shell, "-c", text, "preflight-collect", "-", root],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(1 << 16):
                handle.write(chunk)
        finally:
            proc.stdout.close()
            code = proc.wait()
        errors.seek(0)
        lines = errors.read(64 * 1024).decode("utf-8", "replace").splitlines()
        if code != 0:  # the half-written tarball is discarded by atomic_binary
            reason = lines[-1] if lines else f"exit status {code}"
            raise UsageError(f"collect {out_path}: the collector failed: {reason}")
    summary = _SUMMARY.search(lines[-1]) if lines else None
    for line in lines[:-1] if summary else lines:
        sys.stderr.write(line + "\n")
    counts = [int(n) for n in summary.groups()] if summary else [0, 0, 0, 0]
    return Snapshot(*counts)


def _is_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


# -------------------------------------------------------------------- script
def script(config_path: str | None = None, no_plugins: bool = False, root: str = "/") -> str:
    """The POSIX sh collector with this installation's path list filled in."""
    plan = _loaded_plan(config_path, no_plugins, root)
    patterns = check_paths(plan)
    markers = check_markers(plan)
    follow = follow_paths(plan)
    template = resources.files("preflight").joinpath("collect.sh").read_text(encoding="utf-8")
    # `find -size +N` counts 512-byte blocks, rounded up: +N means more than N * 512 bytes.
    max_blocks, odd_bytes = divmod(MAX_FILE_BYTES, 512)
    if odd_bytes:
        raise RuntimeError("MAX_FILE_BYTES must be a whole number of 512-byte blocks")
    values = {
        "@VERSION@": __version__,
        "@PATTERNS@": "\n".join(_sh_word(p) for p in patterns),
        "@MARKERS@": "\n".join(_sh_word(p) for p in markers),
        "@FOLLOW@": "\n".join(_sh_word(p) for p in follow),
        "@MAX_FOLLOWED@": str(MAX_FOLLOWED),
        "@MAX_FOLLOW_DEPTH@": str(MAX_FOLLOW_DEPTH),
        "@WITHHELD_SUFFIX_CASE@": " | ".join("*" + _any_case(s) for s in WITHHELD_SUFFIXES),
        "@MAX_FILE_BLOCKS@": str(max_blocks),
        "@MAX_FILE_MIB@": str(MAX_FILE_BYTES >> 20),
        "@WITHHELD_MARKER_ARGS@": " ".join(
            "-e " + shlex.quote(m.decode("ascii")) for m in WITHHELD_MARKERS
        ),
        "@VERBATIM_CASE@": " | ".join(shlex.quote(p) + "*" for p in VERBATIM_PREFIXES),
    }
    for placeholder in values:
        if placeholder not in template:
            # A packaging bug, not user input: the script would silently differ from collect.
            raise RuntimeError(f"collect.sh lacks {placeholder}")
    # One pass, so a value (a plugin's path) that looks like a placeholder stays as it is.
    return re.sub("|".join(map(re.escape, values)), lambda m: values[m.group()], template)


def _any_case(text: str) -> str:
    """`text` as a sed or sh pattern that matches it in any letter case."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in text)


def _sh_word(pattern: str) -> str:
    """A pattern as one line of the script's here-document (which is not expanded)."""
    return pattern.replace("\n", " ")
