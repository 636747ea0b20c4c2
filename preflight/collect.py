"""`preflight collect`: a host snapshot for `preflight check --root` on another machine.

The tarball holds the files the loaded checks declare in `Check.paths`, plus the files the host
facts come from, at their root-relative paths. proc and sys files become regular files with their
content; every file keeps its mtime (the kernel check dates packages by their dpkg `.list` mtime).
What can carry a secret is redacted the same way here and in the POSIX sh script of
`--print-script` (preflight/collect.sh), so both collectors give the same snapshot:

- `proc/*/environ`: only the `container=` entry is kept;
- `proc/*/cmdline` and text files outside proc, sys, dev and the dpkg database: credentials in
  URLs (`scheme://user:SECRET@`), the value after `password`/`secret`/`token`/... followed by `=`
  or `:` (or, as in Kamailio's `modparam("auth", "secret", "VALUE")`, by a quote and a comma),
  and the argument after a `--password`-like flag become `REDACTED`;
- private keys are never copied: a `*.key`, `*.p12` or `*.pfx` file, or any file containing
  `PRIVATE KEY`, an OpenVPN static key or an inline `<auth-user-pass>`, is stored empty (it
  still exists, its content does not).

A pattern ending in `/**` copies that directory's whole tree; any other pattern that names a
directory adds the directory itself (a check asking `is_dir` sees it) but not its content.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import stat
import tarfile
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from preflight import __version__
from preflight.facts import FACT_PATHS
from preflight.timefmt import iso_utc

if TYPE_CHECKING:
    from preflight.host import Host
    from preflight.runner import Planned

MANIFEST = ".preflight-collect.json"
MAX_FILE_BYTES = 64 << 20  # bigger files are left out (a kernel image is ~10 MiB)
MAX_TREE_ENTRIES = 20000  # a `dir/**` pattern on the wrong folder must not copy a whole disk
REDACTED = b"REDACTED"
# Keys whose value is masked in `key = value` / `key: value` lines, in this order (collect.sh
# applies one sed expression per key in the same order, so both give the same bytes).
SECRET_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "api_key",
    "api-key",
    "apikey",
)
WITHHELD_SUFFIXES = (".key", ".p12", ".pfx")
# Content that marks a file as key material: PEM private keys, OpenVPN's static keys (tls-auth,
# tls-crypt, secret) and its inline <auth-user-pass> block, whose password is a bare line.
WITHHELD_MARKERS = (b"PRIVATE KEY", b"OpenVPN Static key", b"<auth-user-pass>")
# Files taken verbatim: kernel interfaces, the package database and kernel build configs hold
# no secrets (and CONFIG_SECRETMEM=y is not one).
VERBATIM_PREFIXES = ("proc/", "sys/", "dev/", "var/lib/dpkg/", "boot/config-")

_SPACE = rb" \t\n\r\f\v"
_URL_CREDENTIALS = re.compile(rb"(://[^:/@" + _SPACE + rb"\"']+):[^@/" + _SPACE + rb"\"']+@")
# Per key: `key = value` / `key: value`, then Kamailio's `modparam("auth", "secret", "value")`.
_KEY_LINES = [
    re.compile(pattern, re.IGNORECASE)
    for key in SECRET_KEYS
    for pattern in (
        rb"^(.*" + re.escape(key.encode()) + rb"[^=:]*[=:][ \t]*).+$",
        rb"^(.*" + re.escape(key.encode()) + rb"[^,\"']*[\"'][ \t]*,[ \t]*).+$",
    )
]
_SECRET_FLAG = re.compile(
    rb"^-.*(" + b"|".join(re.escape(k.encode()) for k in SECRET_KEYS) + rb")", re.IGNORECASE
)


@dataclass
class Snapshot:
    """What went into the tarball, for the summary line and the manifest."""

    files: list[str] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ redaction
def redact_line(line: bytes) -> bytes:
    """One line of a config file (or one command-line argument), secrets masked."""
    line = _URL_CREDENTIALS.sub(rb"\1:" + REDACTED + b"@", line)
    for pattern in _KEY_LINES:
        line = pattern.sub(rb"\1" + REDACTED, line)
    return line


def redact_text(data: bytes) -> bytes:
    return b"\n".join(redact_line(line) for line in data.split(b"\n"))


def redact_cmdline(data: bytes) -> bytes:
    """NUL-separated arguments: each is redacted, and the one after `--password` is masked."""
    out = []
    mask_next = False
    for arg in data.split(b"\0"):
        redacted = redact_line(arg)
        out.append(REDACTED if mask_next and arg and not arg.startswith(b"-") else redacted)
        mask_next = bool(_SECRET_FLAG.match(redacted)) and b"=" not in redacted
    return b"\0".join(out)


def redact_environ(data: bytes) -> bytes:
    """Only the `container=` entry: the rest of an environment is nobody else's business."""
    kept = [item for item in data.split(b"\0") if item.startswith(b"container=")]
    return b"".join(item + b"\0" for item in kept)


def is_private_key(rel: str, data: bytes) -> bool:
    return rel.lower().endswith(WITHHELD_SUFFIXES) or any(m in data for m in WITHHELD_MARKERS)


def _is_process_file(rel: str, name: str) -> bool:
    parts = rel.split("/")
    return len(parts) == 3 and parts[0] == "proc" and parts[2] == name


def prepare(rel: str, data: bytes) -> tuple[bytes, str]:
    """The bytes to store for ROOT/rel, and what was done: "", "redacted" or "withheld"."""
    if is_private_key(rel, data):
        return b"", "withheld"
    if _is_process_file(rel, "environ"):
        new = redact_environ(data)
    elif _is_process_file(rel, "cmdline"):
        new = redact_cmdline(data)
    elif rel.startswith(VERBATIM_PREFIXES) or b"\0" in data:
        return data, ""
    else:
        new = redact_text(data)
    return new, ("redacted" if new != data else "")


# --------------------------------------------------------------------- paths
def _declared(plan: list[Planned], attr: str) -> list[str]:
    """Every loaded check's `attr` ("paths" or "markers"), root-relative, without duplicates.
    A plugin's value is not trusted to be a tuple of non-empty strings."""
    patterns: list[str] = []
    for planned in plan:
        check = planned.loaded.check
        declared = getattr(check, attr, ()) if check is not None else ()
        if isinstance(declared, (list, tuple)):
            patterns.extend(
                p.strip().lstrip("/")
                for p in declared
                if isinstance(p, str) and p.strip().strip("/")
            )
    return list(dict.fromkeys(patterns))


def check_paths(plan: list[Planned]) -> list[str]:
    """Fact paths, then every loaded check's `paths`, without duplicates."""
    return list(dict.fromkeys([*FACT_PATHS, *_declared(plan, "paths")]))


def check_markers(plan: list[Planned]) -> list[str]:
    """Every loaded check's `markers`: stored as empty files."""
    return _declared(plan, "markers")


def _loaded_plan(config_path: str | None, no_plugins: bool, root: str) -> list[Planned]:
    from preflight import session

    plan, _cfg = session.plan([], config_path, no_plugins, root)
    return plan


# ------------------------------------------------------------------- collect
class _Collector:
    def __init__(self, host: Host, archive: tarfile.TarFile) -> None:
        self.host = host
        self.archive = archive
        self.snapshot = Snapshot()
        self._added: set[str] = set()

    def pattern(self, pattern: str) -> None:
        if pattern.endswith("/**"):
            for base in self.host.glob(pattern[:-3]):
                self.tree(base)
            return
        for rel in self.host.glob(pattern):
            self.entry(rel)

    def marker(self, pattern: str) -> None:
        """Files whose presence is the fact: an empty file with the original's mode and mtime."""
        for rel in self.host.glob(pattern):
            st = self.host.stat(rel)
            if rel not in self._added and st is not None and stat.S_ISREG(st.st_mode):
                self._add_file(rel, st, b"")

    def tree(self, base: str) -> None:
        """A directory and everything below it; symlinked folders are not descended (loops)."""
        pending = [base]
        count = 0
        while pending and count < MAX_TREE_ENTRIES:
            rel = pending.pop()
            count += 1
            self.entry(rel)
            if not self.host.is_dir(rel) or (rel != base and self._is_link(rel)):
                continue
            pending.extend(f"{rel}/{name}" for name in reversed(self.host.listdir(rel)))

    def _is_link(self, rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        folder = self.host.resolve(parent) if parent else self.host.root
        return folder is not None and os.path.islink(os.path.join(folder, name))

    def entry(self, rel: str) -> None:
        if rel in self._added:
            return
        st = self.host.stat(rel)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            self._parents(rel)
            self._add(self._info(rel, st, tarfile.DIRTYPE))
        elif stat.S_ISREG(st.st_mode):
            self.file(rel, st)
        elif (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and rel.startswith("dev/"):
            # /dev/net/tun is judged by its type and numbers, which a device entry keeps.
            kind = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info = self._info(rel, st, kind)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self._parents(rel)
            self._add(info)
        else:
            self.snapshot.skipped[rel] = "not a regular file, folder or device"

    def file(self, rel: str, st: os.stat_result) -> None:
        if rel.lower().endswith(WITHHELD_SUFFIXES):
            self._add_file(rel, st, b"")  # never even read: a key stays on its host
            self.snapshot.withheld.append(rel)
            return
        if st.st_size > MAX_FILE_BYTES:
            self.snapshot.skipped[rel] = f"larger than {MAX_FILE_BYTES >> 20} MiB"
            return
        data = self.host.read_bytes(rel, limit=MAX_FILE_BYTES)
        if data is None:
            self.snapshot.skipped[rel] = self.host.why_unreadable(rel)
            return
        content, action = prepare(rel, data)
        if action == "withheld":
            self.snapshot.withheld.append(rel)
        elif action == "redacted":
            self.snapshot.redacted.append(rel)
        self._add_file(rel, st, content)

    def _add_file(self, rel: str, st: os.stat_result, content: bytes) -> None:
        info = self._info(rel, st, tarfile.REGTYPE)
        info.size = len(content)
        self._parents(rel)
        self._add(info, content)
        self.snapshot.files.append(rel)

    def _parents(self, rel: str) -> None:
        parts = rel.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent in self._added:
                continue
            st = self.host.stat(parent)
            info = tarfile.TarInfo(parent)
            info.type = tarfile.DIRTYPE
            info.mode = stat.S_IMODE(st.st_mode) if st is not None else 0o755
            info.mtime = int(st.st_mtime) if st is not None else 0
            self._add(info)

    def _info(self, rel: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(rel)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = int(st.st_mtime)
        info.uid, info.gid, info.uname, info.gname = 0, 0, "root", "root"
        return info

    def _add(self, info: tarfile.TarInfo, content: bytes | None = None) -> None:
        self._added.add(info.name)
        self.archive.addfile(info, io.BytesIO(content) if content is not None else None)


def collect(
    out_path: str, root: str = "/", config_path: str | None = None, no_plugins: bool = False
) -> Snapshot:
    """Write the snapshot tarball to `out_path` atomically; returns what went in."""
    from preflight.host import Host
    from preflight.output import atomic_binary, check_destination
    from preflight.session import require_root

    require_root(root)
    check_destination(out_path, flag="collect")
    plan = _loaded_plan(config_path, no_plugins, root)
    patterns = check_paths(plan)
    markers = check_markers(plan)
    host = Host(root)
    with (
        atomic_binary(out_path, mode=0o600) as handle,
        tarfile.open(
            fileobj=handle, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=1
        ) as archive,
    ):
        collector = _Collector(host, archive)
        for pattern in patterns:
            collector.pattern(pattern)
        for pattern in markers:
            collector.marker(pattern)
        snapshot = collector.snapshot
        manifest = (
            json.dumps(
                {
                    "collector": "preflight",
                    "preflight_version": __version__,
                    "generated_at": iso_utc(time.time()),
                    "root": host.root,
                    "hostname": host.hostname,
                    "patterns": patterns,
                    "markers": markers,
                    "redacted": sorted(snapshot.redacted),
                    "withheld": sorted(snapshot.withheld),
                    "skipped": dict(sorted(snapshot.skipped.items())),
                },
                indent=2,
            ).encode()
            + b"\n"
        )
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(manifest), 0o644
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(manifest))
    return snapshot


# -------------------------------------------------------------------- script
def script(config_path: str | None = None, no_plugins: bool = False) -> str:
    """The POSIX sh collector with this installation's path list filled in."""
    plan = _loaded_plan(config_path, no_plugins, "/")
    patterns = check_paths(plan)
    markers = check_markers(plan)
    template = resources.files("preflight").joinpath("collect.sh").read_text(encoding="utf-8")
    sed_lines = [
        r"s#\(://[^:/@[:space:]"
        + "\"'"
        + r"]\{1,\}\):[^@/[:space:]"
        + "\"'"
        + r"]\{1,\}@#\1:REDACTED@#g"
    ]
    for key in SECRET_KEYS:
        anycase = _any_case(key)
        sed_lines.append(r"s/^\(.*" + anycase + r"[^=:]*[=:][[:blank:]]*\).\{1,\}$/\1REDACTED/")
        sed_lines.append(
            r"s/^\(.*"
            + anycase
            + "[^,\"']*[\"']"  # not raw: sed must see no backslash in these brackets
            + r"[[:blank:]]*,[[:blank:]]*\).\{1,\}$/\1REDACTED/"
        )
    # `find -size +N` counts 512-byte blocks, rounded up: +N means more than N * 512 bytes.
    max_blocks, odd_bytes = divmod(MAX_FILE_BYTES, 512)
    if odd_bytes:
        raise RuntimeError("MAX_FILE_BYTES must be a whole number of 512-byte blocks")
    values = {
        "@VERSION@": __version__,
        "@PATTERNS@": "\n".join(_sh_word(p) for p in patterns),
        "@MARKERS@": "\n".join(_sh_word(p) for p in markers),
        "@SECRET_FLAG@": "|".join(SECRET_KEYS),
        "@SED_SCRIPT@": "\n".join(sed_lines),
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
