"""Looking up the modules a deployment needs in Puppet's modulepath, as Puppet itself would."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from preflight_checks.puppet_paths import DISTRO_MODULEPATHS, VENDOR_MODULEPATHS

if TYPE_CHECKING:
    from preflight_checks.puppet_installs import Install

    from preflight.host import Host

METADATA_LIMIT = 1 << 20
MODULE_NAME_RE = re.compile(r"^(?:([A-Za-z0-9]+)[-/])?([a-z][a-z0-9_]*)$")
MODULEFILE_RE = {
    key: re.compile(rf"""^\s*{key}\s+['"]([^'"]+)['"]""", re.M) for key in ("name", "version")
}


def default_modulepaths(installs: list[Install]) -> list[str]:
    layouts = {i.layout for i in installs} or {"distribution", "vendor"}
    paths: list[str] = []
    if layouts - {"vendor"}:
        paths.extend(DISTRO_MODULEPATHS)
    if "vendor" in layouts:
        paths.extend(VENDOR_MODULEPATHS)
    return paths


def modulepath_folders(host: Host, patterns: list[str]) -> list[str]:
    """The existing folders the modulepath patterns name, each once, in modulepath order."""
    folders: list[str] = []
    for pattern in patterns:
        for folder in host.glob(pattern):
            if folder not in folders and host.is_dir(folder):
                folders.append(folder)
    return folders


def find_module(host: Host, wanted: str, folders: list[str]) -> dict[str, Any]:
    match = MODULE_NAME_RE.match(wanted)
    assert match is not None  # the check validated every name (puppet._config_problems)
    author, short = match.group(1), match.group(2)
    result: dict[str, Any] = {"name": wanted, "present": False, "path": None, "version": None}
    for folder in folders:
        module_dir = f"{folder}/{short}"
        if not host.is_dir(module_dir):
            continue
        # Puppet loads the first folder of that name on the modulepath, whoever wrote it.
        name, version = module_metadata(host, module_dir)
        result.update(path=host.display(module_dir), metadata_name=name, version=version)
        if author and name and forge_name(name).lower() != f"{author}-{short}".lower():
            result["found_instead"] = f"{name} {version or ''}".strip()
            return result
        result["present"] = True
        return result
    return result


def module_metadata(host: Host, module_dir: str) -> tuple[str | None, str | None]:
    text = host.read_text(f"{module_dir}/metadata.json", METADATA_LIMIT)
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            name, version = data.get("name"), data.get("version")
            return (
                name if isinstance(name, str) else None,
                version if isinstance(version, str) else None,
            )
    # Modules from before metadata.json (Puppet 2.7 era) describe themselves in a Modulefile.
    text = host.read_text(f"{module_dir}/Modulefile", METADATA_LIMIT)
    if text is not None:
        found = {key: pattern.search(text) for key, pattern in MODULEFILE_RE.items()}
        return (
            found["name"].group(1) if found["name"] else None,
            found["version"].group(1) if found["version"] else None,
        )
    return None, None


def forge_name(name: str) -> str:
    """The author-name form `puppet module install` takes; metadata.json may say author/name."""
    return name.replace("/", "-", 1)
