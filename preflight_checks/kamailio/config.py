"""Reading Kamailio configuration: a best-effort parser and `kamailio -c` output.

The parser follows `include_file`/`import_file`, plain `#!define`/`#!substdef` and
`#!ifdef`/`#!ifndef`/`#!else`/`#!endif`, and records where each fact came from (file and line) so
that reports can point at a line without quoting its content. It is not Kamailio's preprocessor:
on a live host the resolved listening sockets always come from `kamailio -c` itself.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from preflight.host import Host


# Where packages put the modules, in lookup order: Debian's multiarch folder (any architecture),
# RPM's lib64, then the plain and /usr/local builds. Here in the light config module: the
# check class names them in `markers`, which the engine reads even when the check does not run.
MODULE_DIRS = (
    "usr/lib/*-linux-gnu*/kamailio/modules",
    "usr/lib64/kamailio/modules",
    "usr/lib/kamailio/modules",
    "usr/local/lib64/kamailio/modules",
    "usr/local/lib/kamailio/modules",
)


DEFAULT_CONFIG = "etc/kamailio/kamailio.cfg"
DEFAULT_TLS_CONFIG = "/etc/kamailio/tls.cfg"
DEFAULT_SIP_PORT = 5060
DEFAULT_TLS_PORT = 5061
UNSET_PORT = 0  # a listen= read before any port=: it gets the config's final port=
MAX_INCLUDE_DEPTH = 20  # Kamailio's own limit is lower; deeper nesting is a loop in practice
MAX_FILES = 200
# Names Kamailio looks up that do not exist, kept for the trust check (config_risk); past this
# many, `kamailio -c` is not run at all.
MAX_ABSENT = 200
PROTOCOLS = ("udp", "tcp", "tls", "sctp")
TRUE_WORDS = ("yes", "on", "true", "1", "enable", "enabled")

# Every pattern here is linear: no two adjacent quantifiers can match the same characters
# (`\s*(?:\(\s*)?` rather than `\s*\(?\s*`), so a hostile line of spaces or repeated tokens
# costs one pass, not a cubic backtrack (issue 18: `port=5060` + 3000 spaces took 112 s).
_INCLUDE = re.compile(r"""^\s*(?:#!|!!)?(include_file|import_file)\s*(?:\(\s*)?["']([^"']+)["']""")
_DIRECTIVE = re.compile(r"^\s*(?:#!|!!)(\w+)(.*)$")
_LOADMODULE = re.compile(r"""^\s*loadmodule\s*(?:\(\s*)?["']([^"']+)["']""")
_LOADPATH = re.compile(r"""^\s*(?:loadpath|mpath)\s*(?:=\s*)?["']([^"']+)["']""")
# The value is a string, or a number or #!define name (`modparam("jsonrpcs", "transport", 1)`).
_MODPARAM = re.compile(
    r"""modparam\s*\(\s*["']([^"']+)["']\s*,\s*["']([^"']+)["']\s*,\s*"""
    r"""(?:["']([^"']*)["']|(-?\w+)\s*\))"""
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ERROR_LOCATION = re.compile(r"in config file ([^\s,]+), line (\d+)(?:, column [\d-]+)?:(.*)$")
_LOG_PREFIX = re.compile(r"^\s*\d+\(\d+\)\s+(?:\w+:?\s*)?<[^>]*>\s*\[[^\]]*\]:\s*\w+\(\):\s*")
_URL_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_USERINFO_END = frozenset(" \t\n\r\f\v@/\"'")

# Bounds of the best-effort preprocessor: Kamailio's own is not a model to copy here, since a
# 700-byte config of 40 nested `#!subst "/x/xx/"` doubles a line 40 times (24 GB).
MAX_SUBSTS = 64
MAX_DEFINES = 4096
MAX_DEFINE_VALUE = 4096
MAX_EXPANDED_LINE = 64 * 1024
MAX_MODPARAMS = 4096


def mask_secrets(text: str) -> str:
    """Mask the password of every URL (`mysql://user:secret@db` -> `mysql://user:***@db`).

    A scan from each `://`, not a regular expression: linear whatever the text holds."""
    out: list[str] = []
    done = 0
    at = text.find("://")
    while at != -1:
        start = at
        while start > 0 and text[start - 1] in _URL_SCHEME_CHARS:
            start -= 1
        user_start = at + 3
        colon = user_start
        while colon < len(text) and text[colon] not in _USERINFO_END and text[colon] != ":":
            colon += 1
        password_end = colon + 1
        while password_end < len(text) and text[password_end] not in _USERINFO_END:
            password_end += 1
        # The scheme starts at a letter after a non-word character (`\b[A-Za-z]`).
        while start < at and not (
            text[start].isalpha() and (start == 0 or not _word(text[start - 1]))
        ):
            start += 1
        if (
            start < at
            and colon < len(text)
            and text[colon] == ":"
            and password_end < len(text)
            and text[password_end] == "@"
        ):
            out.append(text[done : colon + 1] + "***")
            done = password_end
            at = text.find("://", password_end)
        else:
            at = text.find("://", at + 3)
    out.append(text[done:])
    return "".join(out)


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@dataclass(frozen=True)
class Socket:
    """One listening socket: proto udp|tcp|tls|sctp, addr an IP, `*` (any) or a name."""

    proto: str
    addr: str
    port: int

    def __str__(self) -> str:
        addr = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{self.proto}:{addr}:{self.port}"

    @property
    def transport(self) -> str:
        """What the socket tables show: TLS and WebSocket run over TCP."""
        return "udp" if self.proto == "udp" else "tcp"


def parse_socket(text: str) -> Socket | None:
    """`proto:addr:port` as written in `[checks.kamailio] expect` (IPv6 in brackets)."""
    match = re.fullmatch(
        r"\s*(udp|tcp|tls|sctp|ws|wss):(\[[^\]]+\]|[^:\[\]]+):(\d{1,5})\s*", text, re.I
    )
    if not match:
        return None
    proto = match.group(1).lower()
    proto = {"ws": "tcp", "wss": "tls"}.get(proto, proto)
    port = int(match.group(3))
    if not 0 < port < 65536:
        return None
    return Socket(proto, match.group(2).strip("[]").lower(), port)


@dataclass
class Location:
    file: str  # as the host names it: /etc/kamailio/kamailio.cfg
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class ListenEntry:
    sockets: list[Socket]
    where: Location
    unresolved: list[str] = field(default_factory=list)  # names best effort cannot resolve
    # The protocol written before the address (`tls:`), "" for none: a listen= without one
    # opens TLS only where TLS is enabled, so it never asks for TLS by itself.
    written_proto: str = ""


@dataclass
class ParsedConfig:
    """What the best-effort reading found."""

    main: str  # root-relative path of the main config
    files: list[str] = field(default_factory=list)  # root-relative, main first, every file read
    listens: list[ListenEntry] = field(default_factory=list)
    port: int | None = None
    tls_port: int | None = None
    enable_tls: bool = False
    disable_tcp: bool = False
    modules: list[tuple[str, Location]] = field(default_factory=list)
    mpaths: list[str] = field(default_factory=list)
    tls_config: str | None = None  # modparam("tls", "config", ...)
    tls_params: dict[str, tuple[str, Location]] = field(default_factory=dict)
    modparams: list[tuple[str, str, str, Location]] = field(default_factory=list)
    # The cdp module's Diameter peer config (modparam "config_file") and the Acceptor
    # sockets it declares; None: not named, or not readable.
    cdp_config: str | None = None
    cdp_acceptors: list[Socket] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # missing includes, cycles, ...
    missing_includes: list[tuple[str, Location]] = field(default_factory=list)
    # Every include name Kamailio tries that does not exist (root-relative), with the line
    # naming it: Kamailio skips a missing import_file silently, so another account able to
    # create one there would have its file read (and the modules it loads run) by root.
    absent: list[tuple[str, str]] = field(default_factory=list)
    # What the lines of #!ifdef branches this reading skipped name (Kamailio may take them):
    # included files that exist, and loadmodule names; trust-checked, never read.
    skipped_files: list[str] = field(default_factory=list)
    skipped_modules: list[tuple[str, Location]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # present, but this run may not read
    # Relative include names looked up only next to the including file: the folder Kamailio
    # was started in (looked up first) is unknown.
    cwd_unknown: list[str] = field(default_factory=list)
    # Lines whose #!subst/#!define expansion passed MAX_EXPANDED_LINE (left unexpanded), and
    # directives dropped for passing a count or size bound.
    oversized: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)

    @property
    def explicit_listen(self) -> bool:
        return bool(self.listens)

    @property
    def loads_tls(self) -> bool:
        return any(module_basename(name) == "tls" for name, _ in self.modules)

    def tls_listens(self) -> list[ListenEntry]:
        """The listen= lines written `tls:`: the ones that ask for TLS."""
        return [e for e in self.listens if e.written_proto == "tls"]

    def expected_sockets(self) -> list[Socket]:
        """The sockets a start would open, as far as a reading without Kamailio can tell."""
        found: list[Socket] = []
        for entry in self.listens:
            for sock in entry.sockets:
                if sock.proto == "tls" and not self.enable_tls:
                    continue
                if sock.proto in ("tcp", "tls") and self.disable_tcp:
                    continue
                if sock not in found:
                    found.append(sock)
        if not self.listens:
            # No listen=: every local address at start; which ones a snapshot cannot say.
            port = self.port or DEFAULT_SIP_PORT
            protos = ["udp"] + ([] if self.disable_tcp else ["tcp"])
            found = [Socket(p, "*", port) for p in protos]
            if self.enable_tls and not self.disable_tcp:
                found.append(Socket("tls", "*", self.tls_port or DEFAULT_TLS_PORT))
        return found


# Modules that open listening sockets of their own (not SIP): the parameter naming the socket,
# and the socket they open when it is not set (None: none, or a unix socket). Each was checked
# against a real Kamailio 5.6 start (`ss -tulpn`). Modules that open none of their own: xhttp
# (and jsonrpcs' HTTP transport, websocket) answer on the SIP tcp listen= sockets; sipcapture's
# raw capture opens a raw IP or packet socket, which no TCP/UDP table lists.
CTL_DEFAULT_PORT = 2049
EVAPI_DEFAULT = "127.0.0.1:8448"
JSONRPCS_DATAGRAM = 4  # the datagram bit of jsonrpcs' `transport` (0: every transport)
CDP_DEFAULT_CONFIG = "DiameterPeer.xml"  # cdp's default config_file, from Kamailio's folder /
MAX_CDP_CONFIG = 1 << 20


def module_params(parsed: ParsedConfig, module: str, param: str) -> list[str]:
    """Every value of modparam(module, param, ...), in config order."""
    return [v for m, p, v, _ in parsed.modparams if m == module and p == param]


def declared_listeners(parsed: ParsedConfig) -> list[Socket]:
    """The non-SIP sockets the config's modules listen on: ctl's binrpc over TCP or UDP,
    evapi's bind_addr (its default when evapi is loaded without one), jsonrpcs' UDP
    dgram_socket when its datagram transport is on, cdp's Acceptor sockets."""
    loaded = {module_basename(name) for name, _ in parsed.modules}
    found: list[Socket] = []

    def add(sock: Socket | None) -> None:
        if sock is not None and sock not in found:
            found.append(sock)

    if "ctl" in loaded:
        for value in module_params(parsed, "ctl", "binrpc"):
            add(_ctl_socket(value))
    if "evapi" in loaded:
        for value in module_params(parsed, "evapi", "bind_addr") or [EVAPI_DEFAULT]:
            add(_host_port_socket("tcp", value))
    if "jsonrpcs" in loaded:
        # A string parameter set twice keeps the last value.
        transport = (module_params(parsed, "jsonrpcs", "transport") or ["0"])[-1]
        dgram = module_params(parsed, "jsonrpcs", "dgram_socket")
        enabled = transport.isdecimal() and (
            int(transport) == 0 or int(transport) & JSONRPCS_DATAGRAM
        )
        if enabled and dgram and dgram[-1].startswith("udp:"):
            add(_host_port_socket("udp", dgram[-1][4:]))
    if "cdp" in loaded:
        for sock in parsed.cdp_acceptors:
            add(sock)
    return found


def _host_port_socket(proto: str, value: str) -> Socket | None:
    """`host:port` (IPv6 in brackets) as a socket; None for a name that needs a lookup."""
    addr, _, port = value.strip().rpartition(":")
    resolved = resolve_address(addr)
    if not port.isdecimal() or resolved is None or not 0 < int(port) < 65536:
        return None
    return Socket(proto, resolved, int(port))


def cdp_acceptors(text: str) -> list[Socket]:
    """The TCP sockets cdp's Diameter peer config opens: each <Acceptor port= bind=> child of
    <DiameterPeer> (names in any case, as cdp reads them); no bind is every address. A
    document with a DTD is not read (cdp configs have none; entities could expand)."""
    import xml.etree.ElementTree as ElementTree

    if len(text) > MAX_CDP_CONFIG or "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        return []
    try:
        # Without a DTD nothing can be declared, so no entity expands or loads a file; a str is
        # parsed as UTF-8 whatever its declaration says, so the check above saw every byte.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError:
        return []
    if not root.tag.lower().startswith("diameterpeer"):
        return []
    found: list[Socket] = []
    for child in root:
        if not isinstance(child.tag, str) or child.tag.lower() != "acceptor":
            continue
        attrs = {k.lower(): v.strip().strip('"') for k, v in child.attrib.items()}
        if attrs.get("proto", "tcp").lower() == "sctp":
            continue  # an SCTP acceptor: no TCP/UDP table lists it
        port, bind = attrs.get("port", ""), attrs.get("bind", "")
        addr = resolve_address(bind) if bind else "*"
        if port.isdecimal() and addr is not None and 0 < int(port) < 65536:
            sock = Socket("tcp", addr, int(port))
            if sock not in found:
                found.append(sock)
    return found


def _ctl_socket(value: str) -> Socket | None:
    """ctl's binrpc value `tcp:host:port`, `udp:port`, `tcp:[::1]:port` (unix: none)."""
    proto, sep, rest = value.strip().partition(":")
    if not sep or proto.lower() not in ("tcp", "udp"):
        return None
    addr, _, port = rest.rpartition(":")
    if not addr and rest.isdecimal():
        return Socket(proto.lower(), "*", int(rest)) if 0 < int(rest) < 65536 else None
    if not port.isdecimal():
        rest = f"{rest}:{CTL_DEFAULT_PORT}"
    return _host_port_socket(proto.lower(), rest)


def module_basename(name: str) -> str:
    base = posixpath.basename(name)
    return base[:-3] if base.endswith(".so") else base


def normalize_path(path: str) -> str:
    """A config path as Host names it: root-relative and normalized."""
    return posixpath.normpath("/" + path).lstrip("/")


def path_from_config(path: str, folder: str) -> str:
    """Root-relative path of `path`; relative paths are resolved next to the main config."""
    if path.startswith("/"):
        return normalize_path(path)
    return normalize_path(posixpath.join("/" + folder, path))


def _strip_comments(line: str, in_block: bool) -> tuple[str, bool]:
    """The line without `#`, `//` and `/* */` comments (outside quotes); directives stay."""
    out: list[str] = []
    i = 0
    quote = ""
    stripped = line.lstrip()
    if not in_block and (stripped.startswith("#!") or stripped.startswith("!!")):
        return line, False
    while i < len(line):
        ch = line[i]
        if in_block:
            if line.startswith("*/", i):
                in_block = False
                i += 2
                continue
            i += 1
            continue
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(line):
                out.append(line[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "#" or line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_block = True
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out), in_block


class _TooLarge(Exception):
    """A #!define expansion passed MAX_EXPANDED_LINE."""


class _Parser:
    def __init__(
        self,
        host: Host,
        main: str,
        defines: dict[str, str | None],
        cwd: str | None = "",
        fs_root: str = "",
    ) -> None:
        self.host = host
        self.cwd = cwd  # root-relative working folder of the start; None: unknown
        self.fs_root = fs_root  # root-relative folder absolute names start from
        self.result = ParsedConfig(main=main)
        self.defines: dict[str, str | None] = dict(defines)
        self.substs: list[tuple[str, str, bool]] = []  # pattern, replacement, g flag
        # listen= names best effort cannot resolve, with their port (UNSET_PORT until finish).
        self.pending_unresolved: list[tuple[ListenEntry, str, str, int]] = []

    def substitute(self, text: str, where: Location | None = None) -> str:
        """`text` with the #!subst replacements and #!define names applied, never growing past
        MAX_EXPANDED_LINE: past it the text is left unexpanded and the line is recorded."""
        limit = max(MAX_EXPANDED_LINE, len(text))
        # Kamailio applies every #!subst rule in turn, each to the previous one's result: the
        # first occurrence, or every one with the g flag. Kamailio itself refuses a result
        # past its buffer ("Buffer too small") and keeps the text; so does this reader.
        for pattern, replacement, every in self.substs:
            count = text.count(pattern) if every else min(1, text.count(pattern))
            if not count:
                continue
            if len(text) + count * (len(replacement) - len(pattern)) > limit:
                self.too_large(where)
                continue
            text = text.replace(pattern, replacement, -1 if every else 1)
        size = len(text)

        def replace(match: re.Match[str]) -> str:
            nonlocal size
            value = self.defines.get(match.group(0))
            if value is None:
                return match.group(0)
            value = value.strip().strip("\"'")
            size += len(value) - len(match.group(0))
            if size > limit:
                raise _TooLarge
            return value

        try:
            return _IDENTIFIER.sub(replace, text)
        except _TooLarge:
            self.too_large(where)
            return text

    def too_large(self, where: Location | None) -> None:
        place = str(where) if where else "a loadmodule or include name"
        if place not in self.result.oversized:
            self.result.oversized.append(place)

    def define(self, name: str, value: str, where: Location) -> None:
        """Record a #!define (bounded: count and value size)."""
        if name not in self.defines and len(self.defines) >= MAX_DEFINES:
            self.result.limits.append(f"{where}: more than {MAX_DEFINES} #!define names")
            return
        if len(value) > MAX_DEFINE_VALUE:
            self.result.limits.append(
                f"{where}: a #!define value longer than {MAX_DEFINE_VALUE} bytes"
            )
            return
        self.defines[name] = value

    def resolve_include(self, name: str, including: str, named_by: str) -> str:
        """The file Kamailio opens for include_file/import_file `name`: an absolute name as
        it is (inside `fs_root`); a relative one in the working folder Kamailio was started
        in first (fopen of the name as given), then next to the including file. Each name
        it tries that does not exist is recorded in `absent` with `named_by`."""
        if name.startswith("/"):
            candidates = [normalize_path(posixpath.join(self.fs_root, name.lstrip("/")))]
        else:
            candidates = []
            if self.cwd is not None:
                candidates.append(normalize_path(posixpath.join(self.cwd, name)))
            else:
                self.result.cwd_unknown.append(name)
            candidates.append(normalize_path(posixpath.join(posixpath.dirname(including), name)))
        for candidate in candidates:
            if self.host.exists(candidate):
                return candidate
            if len(self.result.absent) <= MAX_ABSENT:
                self.result.absent.append((candidate, named_by))
        return candidates[-1]

    def parse_file(self, rel: str, stack: tuple[str, ...]) -> bool:
        if len(stack) >= MAX_INCLUDE_DEPTH:
            self.result.problems.append(
                f"includes nested deeper than {MAX_INCLUDE_DEPTH} at {self.host.display(rel)}"
            )
            return True
        if len(self.result.files) >= MAX_FILES:
            self.result.problems.append(f"more than {MAX_FILES} included files; stopped reading")
            return True
        text = self.host.read_text(rel)
        if text is None:
            if self.host.exists(rel) and self.host.is_readable(rel) is False:
                # There, but this run may not read it (not root): unknown, not missing.
                if rel not in self.result.unreadable:
                    self.result.unreadable.append(rel)
                return True
            return False
        if rel not in self.result.files:
            self.result.files.append(rel)
        self.parse_text(text, rel, (*stack, rel))
        return True

    def parse_text(self, text: str, rel: str, stack: tuple[str, ...]) -> None:
        display = self.host.display(rel)
        conditions: list[bool] = []  # the #!ifdef stack: is this branch active?
        in_block = False
        for number, raw in enumerate(text.splitlines(), start=1):
            line, in_block = _strip_comments(raw, in_block)
            if not line.strip():
                continue
            where = Location(display, number)
            directive = _DIRECTIVE.match(line)
            active = all(conditions)
            if directive:
                name, arg = directive.group(1).lower(), directive.group(2).strip()
                if name in ("ifdef", "ifndef"):
                    defined = arg.split()[0] in self.defines if arg else False
                    conditions.append(defined if name == "ifdef" else not defined)
                    continue
                if name == "else" and conditions:
                    conditions[-1] = not conditions[-1]
                    continue
                if name == "endif" and conditions:
                    conditions.pop()
                    continue
                if not active:
                    self.note_skipped(line, rel, where)
                    continue
                if name in ("define", "trydef", "redefine"):
                    parts = arg.split(None, 1)
                    if parts and (name != "trydef" or parts[0] not in self.defines):
                        self.define(parts[0], parts[1] if len(parts) > 1 else "", where)
                    continue
                if name == "undef" and arg:
                    self.defines.pop(arg.split()[0], None)
                    continue
                if name in ("substdef", "substdefs", "subst"):
                    self.add_subst(arg, name != "subst", where)
                    continue
                if name not in ("include_file", "import_file"):
                    continue
            if not active:
                self.note_skipped(line, rel, where)
                continue
            include = _INCLUDE.match(line)
            if include:
                kind, name = include.group(1), include.group(2)
                name = self.substitute(name, where)
                target = self.resolve_include(name, rel, f"{kind} at {where}")
                if target in stack:
                    self.result.problems.append(
                        f"include cycle: {where} includes {self.host.display(target)} again"
                    )
                    continue
                found = self.parse_file(target, stack)
                if not found and kind == "include_file" and name in self.result.cwd_unknown:
                    continue  # it may be in the unknown start folder: unknown, not missing
                if not found and kind == "include_file":
                    self.result.missing_includes.append((self.host.display(target), where))
                continue
            self.parse_statement(line, where)

    def note_skipped(self, line: str, rel: str, where: Location) -> None:
        """A line of an #!ifdef branch this reading skips, which Kamailio may take all the
        same (it predefines KAMAILIO_5 and others; -A values are not all passed on): the
        files its include_file/import_file or loadmodule names are trust-checked too (not
        read: a file they include in turn is not seen)."""
        include = _INCLUDE.match(line)
        if include:
            kind, name = include.group(1), self.substitute(include.group(2), where)
            target = self.resolve_include(name, rel, f"{kind} at {where}")
            if self.host.exists(target) and len(self.result.skipped_files) < MAX_FILES:
                self.result.skipped_files.append(target)
            return
        module = _LOADMODULE.match(line)
        if module and len(self.result.skipped_modules) < MAX_FILES:
            self.result.skipped_modules.append((self.substitute(module.group(1), where), where))

    def add_subst(self, arg: str, define: bool, where: Location) -> None:
        body = arg.strip().strip("\"'")
        if len(body) < 3:
            return
        parts = body[1:].split(body[0])
        if len(parts) < 2 or not parts[0]:
            return
        pattern, replacement = parts[0], parts[1]
        every = len(parts) > 2 and "g" in parts[2]
        if define and _IDENTIFIER.fullmatch(pattern):
            self.define(pattern, replacement, where)
        elif not any(ch in pattern for ch in ".*+?[](){}|^$\\"):
            if len(self.substs) >= MAX_SUBSTS:
                self.result.limits.append(f"{where}: more than {MAX_SUBSTS} #!subst directives")
                return
            self.substs.append((pattern, replacement, every))

    def parse_statement(self, line: str, where: Location) -> None:
        module = _LOADMODULE.match(line)
        if module:
            self.result.modules.append((self.substitute(module.group(1), where), where))
            return
        loadpath = _LOADPATH.match(line)
        if loadpath:
            self.result.mpaths = [
                p for p in self.substitute(loadpath.group(1), where).split(":") if p
            ]
            return
        for modparam in _MODPARAM.finditer(line):
            module_name, param, quoted, bare = modparam.groups()
            value = quoted if quoted is not None else bare
            if len(self.result.modparams) < MAX_MODPARAMS:
                self.result.modparams.append(
                    (module_basename(module_name), param, self.substitute(value, where), where)
                )
            if module_basename(module_name) == "tls":
                if param == "config":
                    self.result.tls_config = self.substitute(value, where)
                elif param in TLS_FILE_KEYS:
                    self.result.tls_params[param] = (self.substitute(value, where), where)
        assign = assignment(line)
        if assign is None:
            return
        key, value = assign[0].lower(), self.substitute(assign[1], where)
        if key == "listen":
            self.result.listens.append(self.parse_listen(value, where))
        elif key in ("port", "tls_port_no") and _port(value) is not None:
            # 0 is "unset": a later listen= without a port then takes the final value.
            number = _port(value) or None
            if key == "port":
                self.result.port = number
            else:
                self.result.tls_port = number
        elif key == "enable_tls":
            self.result.enable_tls = value.strip("\"'").lower() in TRUE_WORDS
        elif key == "disable_tcp":
            self.result.disable_tcp = value.strip("\"'").lower() in TRUE_WORDS

    def parse_listen(self, value: str, where: Location) -> ListenEntry:
        """`[proto:]addr[:port] [advertise ...] [name "..."]`, addr a name, IP or (list)."""
        value = value.strip().strip("\"'")
        protos: list[str]
        match = re.match(r"(udp|tcp|tls|sctp|any)\s*:\s*", value, re.I)
        if match:
            proto = match.group(1).lower()
            protos = list(PROTOCOLS) if proto == "any" else [proto]
            value = value[match.end() :]
        else:
            protos = ["udp", "tcp", "tls", "sctp"]
        if value.startswith("("):
            close = value.find(")")
            addrs = [a.strip() for a in value[1 : close if close > 0 else None].split(",")]
            rest = value[close + 1 :] if close > 0 else ""
        else:
            token = value.split()[0] if value.split() else ""
            if token.startswith("["):
                close = token.find("]")
                addrs = [token[1:close] if close > 0 else token[1:]]
                rest = token[close + 1 :] if close > 0 else ""
            elif token.count(":") > 1:
                addrs, rest = [token], ""  # a bare IPv6 address: no port can follow
            else:
                addr, _, port_text = token.partition(":")
                addrs, rest = [addr], (":" + port_text if port_text else "")
        port: int | None = None
        port_match = re.match(r":(\d+)", rest)
        if port_match and 0 < int(port_match.group(1)) < 65536:
            port = int(port_match.group(1))
        entry = ListenEntry([], where, written_proto=match.group(1).lower() if match else "")
        for proto in protos:
            if not match and proto == "sctp":
                continue  # an implicit sctp socket needs the sctp module; not compared
            proto_port = self.listen_port(proto, port, implicit=not match)
            for addr in addrs:
                resolved = resolve_address(addr)
                if resolved is None:
                    self.pending_unresolved.append((entry, proto, addr, proto_port))
                    continue
                entry.sockets.append(Socket(proto, resolved, proto_port))
        return entry

    def listen_port(self, proto: str, port: int | None, implicit: bool) -> int:
        """The port Kamailio 5.6 gives one protocol of a listen= line (`kamailio -c` shows it):
        a written port as is, except that a listen= without a protocol puts TLS on the next
        port; without one, the `port=` (`tls_port_no=` for TLS) set above this line, else the
        last one of the whole config (UNSET_PORT here, filled in by `finish`)."""
        if port is not None:
            return port + 1 if proto == "tls" and implicit and port < 65535 else port
        current = self.result.tls_port if proto == "tls" else self.result.port
        return current if current is not None else UNSET_PORT

    def finish(self) -> None:
        """Give every listen= that had no port when it was read the config's final `port=`
        (`tls_port_no=` for TLS), or Kamailio's default."""
        final_sip = self.result.port or DEFAULT_SIP_PORT
        final_tls = self.result.tls_port or DEFAULT_TLS_PORT

        def final(proto: str, port: int) -> int:
            if port != UNSET_PORT:
                return port
            return final_tls if proto == "tls" else final_sip

        for entry in self.result.listens:
            entry.sockets = [Socket(s.proto, s.addr, final(s.proto, s.port)) for s in entry.sockets]
        for entry, proto, addr, port in self.pending_unresolved:
            entry.unresolved.append(f"{proto}:{addr}:{final(proto, port)}")
        self.read_cdp_config()

    def read_cdp_config(self) -> None:
        """The Diameter peer config of a loaded cdp module. Kamailio opens it from its working
        folder, /, so a relative name counts from the root."""
        if not any(module_basename(name) == "cdp" for name, _ in self.result.modules):
            return
        names = module_params(self.result, "cdp", "config_file") or [CDP_DEFAULT_CONFIG]
        rel = normalize_path(names[-1])
        text = self.host.read_text(rel, limit=MAX_CDP_CONFIG + 1)
        if text is not None:
            self.result.cdp_config = rel
            self.result.cdp_acceptors = cdp_acceptors(text)


def assignment(line: str) -> tuple[str, str] | None:
    """`name = value;` as (name, value), without the `;` and surrounding blanks; else None."""
    key, sep, value = line.partition("=")
    key = key.strip()
    if not sep or not _IDENTIFIER.fullmatch(key):
        return None
    value = value.strip()
    if value.endswith(";"):
        value = value[:-1].rstrip()
    return key, value


def _port(value: str) -> int | None:
    """A port number as `port=` or `tls_port_no=` gives it (0: unset); None for anything else."""
    text = value.strip("\"'")
    if not text.isdecimal() or not 0 <= int(text) < 65536:
        return None
    return int(text)


def resolve_address(addr: str) -> str | None:
    """An IP address for what a listen= names, where that needs no lookup; else None."""
    import ipaddress

    addr = addr.strip().strip("[]")
    if addr in ("*", ""):
        return "*"
    if addr.lower() == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None


def parse_config(
    host: Host,
    main: str,
    defines: dict[str, str | None] | None = None,
    cwd: str | None = "",
    fs_root: str = "",
) -> ParsedConfig | None:
    """Read `main` (root-relative) and what it includes; None if the main file is unreadable.
    `cwd`: the root-relative folder Kamailio is started in (relative includes are looked up
    there first; None: unknown); `fs_root`: where absolute names start (proc/PID/root for an
    instance in another mount namespace)."""
    parser = _Parser(host, main, defines or {}, cwd, fs_root)
    if not parser.parse_file(main, ()):
        return None
    parser.finish()
    return parser.result


# ----------------------------------------------------------------------- `kamailio -c` output
@dataclass
class CheckOutput:
    ok: bool
    sockets: list[Socket]
    errors: list[str]  # Kamailio's own messages, credentials masked
    first_error: str | None
    first_error_location: Location | None
    missing_modules: list[str]


def parse_check_output(
    returncode: int | None,
    stdout: str,
    stderr: str,
    anchor: Callable[[str], str] | None = None,
) -> CheckOutput:
    """`kamailio -c -f FILE`: the `Listening on` block and the error lines. `anchor`: the
    file Kamailio means by the name it reports an error in (a relative include is named
    relative to the folder it ran in)."""
    sockets: list[Socket] = []
    in_block = False
    for line in stdout.splitlines():
        if line.startswith("Listening on"):
            in_block = True
            continue
        if in_block:
            row = listen_row(line)
            if row is None:
                in_block = False
                continue
            sock = parse_listen_row(*row)
            if sock is not None and sock not in sockets:
                sockets.append(sock)
    errors: list[str] = []
    first_location: Location | None = None
    missing_modules: list[str] = []
    pending_include: str | None = None
    for line in (stderr + "\n" + stdout).splitlines():
        module = re.search(r"could not find module <([^>]+)>", line)
        if module and module.group(1) not in missing_modules:
            missing_modules.append(module.group(1))
        if not re.search(r"\b(ERROR|CRITICAL|ALERT|BUG)\b|: <core> \[core/cfg\.lex", line):
            continue
        message = _LOG_PREFIX.sub("", line).strip()
        message = re.sub(r"^ERROR:\s*", "", message)
        if not message or message.startswith("bad config file"):
            continue
        location = _ERROR_LOCATION.search(message)
        if location:
            named = location.group(1)
            loc = Location(anchor(named) if anchor else named, int(location.group(2)))
            text = location.group(3).strip() or "syntax error"
            message = f"{loc}: {text}"
            if first_location is None:
                first_location = loc
        elif message.startswith("cannot open included file"):
            pending_include = message
            continue
        elif pending_include and (at := re.search(r"error at cfg line (\d+)", message)):
            message = f"line {at.group(1)}: {pending_include}"
            pending_include = None
        errors.append(mask_secrets(message))
    if pending_include:
        errors.append(mask_secrets(pending_include))
    # The first message with a file and line is the one to act on; Kamailio often logs a
    # lower-level message without a location just before it.
    located = next(
        (e for e in errors if first_location and e.startswith(f"{first_location}:")), None
    )
    return CheckOutput(
        returncode == 0,
        sockets,
        errors,
        located or (errors[0] if errors else None),
        first_location,
        missing_modules,
    )


def listen_row(line: str) -> tuple[str, str] | None:
    """An indented `proto: socket` row of the `Listening on` block, as (proto, socket)."""
    if not line[:1].isspace():
        return None
    proto, sep, rest = line.strip().partition(":")
    rest = rest.strip()
    if not sep or proto not in PROTOCOLS or not rest or not line.split(":", 1)[1][:1].isspace():
        return None
    return proto, rest


def parse_listen_row(proto: str, text: str) -> Socket | None:
    """`127.0.0.1:5060`, `localhost [127.0.0.1]:5060`, `::1:5060`, `:::5060 advertise ...`."""
    bracketed = re.match(r"\S+ \[([^\]]+)\]:(\d+)", text)
    if bracketed:
        addr, port = bracketed.group(1), bracketed.group(2)
    else:
        token = text.split()[0]
        addr, _, port = token.rpartition(":")
    if not port.isdecimal():
        return None
    resolved = resolve_address(addr)
    return Socket(proto, resolved if resolved is not None else addr, int(port))


# ----------------------------------------------------------------------------------- tls.cfg
TLS_FILE_KEYS = ("private_key", "certificate", "ca_list", "crl")
# What the tls module loads when nothing names a file: cert.pem next to the main config.
TLS_DEFAULT_FILES = {"certificate": "cert.pem", "private_key": "cert.pem"}

TlsDomain = dict[str, tuple[str, Location]]


def tls_files(text: str, display: str) -> list[tuple[str, str, Location]]:
    """(key, path, location) for every certificate, key, CA and CRL file a tls.cfg names."""
    return [
        (key, path, where)
        for _name, files in parse_tls_config(text, display).domains
        for key, (path, where) in files.items()
    ]


@dataclass(frozen=True)
class TlsProfile:
    """One `[server:...]`/`[client:...]` profile of a tls.cfg."""

    kind: str  # server | client
    address: str  # default, any, or IP:PORT as written
    where: Location  # its [header] line
    server_name: bool  # it sets server_name (SNI)


@dataclass
class TlsConfig:
    """What a tls.cfg says: its domains with the files each names, and its profile headers."""

    domains: list[tuple[str, TlsDomain]]  # (header, its certificate/key/CA/CRL files)
    profiles: list[TlsProfile]


def parse_tls_config(text: str, display: str) -> TlsConfig:
    """The `[server:...]`/`[client:...]` profiles of a tls.cfg, in one pass: each with the
    certificate, key, CA and CRL files it names and where, and whether it names a
    server_name."""
    from dataclasses import replace

    domains: list[tuple[str, TlsDomain]] = []
    profiles: list[TlsProfile] = []
    name, files = "", TlsDomain()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            if name or files:
                domains.append((name, files))
            name, files = line[1:-1].strip(), TlsDomain()
            kind, _, address = name.partition(":")
            where = Location(display, number)
            profiles.append(TlsProfile(kind.strip().lower(), address.strip(), where, False))
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, path = key.strip().lower(), value.strip().strip("\"'")
        if key in TLS_FILE_KEYS and path:
            files[key] = (path, Location(display, number))
        if profiles and key == "server_name" and value.strip(" \"'"):
            profiles[-1] = replace(profiles[-1], server_name=True)
    if name or files:
        domains.append((name, files))
    return TlsConfig(domains, profiles)
