"""A real Kamailio module, built here with gcc, whose constructor leaves a marker file when it
is loaded as root: the proof that root's check never dlopens a module another account chose."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.components import require_command
from support.kamailio import kamailio_binary

# The exported symbols Kamailio 5.6 checks before it accepts a module (MODULE_VERSION and
# `exports`); the constructor runs at dlopen, before any of them is looked at.
EVIL_MODULE = r"""
#include <fcntl.h>
#include <unistd.h>
static void __attribute__((constructor)) evil(void) {
    if (geteuid() == 0) {
        int fd = open(MARKER, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) close(fd);
    }
}
char *module_version = VERSION;
char *module_flags = FLAGS;
unsigned int module_interface_ver = 4;
static void *empty[4][16];
struct { const char *name; unsigned int dlflags; void *cmds, *params, *rpc, *pv, *f[4]; }
    exports = {"evil", 0, empty[0], empty[1], empty[2], empty[3], {0}};
"""


def _kamailio_build() -> tuple[str, str]:
    """Kamailio's version and compile flags, as `kamailio -v` prints them."""
    out = subprocess.run(
        [kamailio_binary() or "kamailio", "-v"], capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    version = lines[0].split("version: ", 1)[1].strip()
    flags = lines[1].split("flags: ", 1)[1].strip()
    return version, flags


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_evil_module(folder: Path, marker: Path) -> Path:
    gcc = require_command("gcc")
    version, flags = _kamailio_build()
    source = folder / "evil.c"
    source.write_text(EVIL_MODULE)
    module = folder / "evil.so"
    subprocess.run(
        [
            gcc,
            "-shared",
            "-fPIC",
            f"-DMARKER={_c_string(str(marker))}",
            f"-DVERSION={_c_string(version)}",
            f"-DFLAGS={_c_string(flags)}",
            "-o",
            str(module),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return module
