"""Host strings are data: helpers that make them safe to print and to paste into a shell.

Every value a check reads from the host (package names, paths, hostnames, process arguments) is
untrusted. Reporters pass free text through `printable`; remediation that interpolates a host
value into a command passes it through `shell_arg`, and only suggests the command at all when
`plausible_name` accepts the value.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

# Package, unit, module, user and file names as package managers and init systems allow them:
# no shell metacharacters, no whitespace, bounded length. Linear: one character class, anchored.
_PLAUSIBLE = re.compile(r"[A-Za-z0-9@%+=:,./_~-]{1,255}")
# C0 and C1 control characters and DEL, except tab and newline (kept where text is multi-line).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plausible_name(value: str) -> bool:
    """True when `value` looks like a name a package manager, init system or file system would
    give: safe to suggest in a command (still quoted with `shell_arg`)."""
    return bool(_PLAUSIBLE.fullmatch(value)) and not value.startswith("-")


def shell_arg(value: str) -> str:
    """`value` quoted for a POSIX shell, so pasting the command runs it with exactly this word."""
    return shlex.quote(value)


def shell_join(words: Iterable[str]) -> str:
    """A command line of `words`, each quoted with `shell_arg` (shlex.join's rule), so pasting it
    runs exactly these words."""
    return " ".join(shell_arg(word) for word in words)


def printable(text: str, keep_newlines: bool = False) -> str:
    """`text` with control characters (terminal escapes among them) shown as `\\xNN`, and
    surrogates from undecodable bytes replaced, so it is safe on a terminal and in any format."""
    if not keep_newlines:
        text = text.replace("\n", "\\n").replace("\t", " ")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def describe_value(value: object) -> str:
    """A config value as an error message names it: `the string 'x'`, `a table`, `int 3`."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
