"""Where Puppet lives on a host: the files the `puppet` check reads.

Kept apart from the code that reads them: the check's `paths` are built from these, and the engine
imports the check module (to validate `[checks.puppet]`) even when the check does not run.

Comparing Puppet version strings for the `puppet` check, vendor builds included.

Finding the `puppet` installations of a host and reading their versions without Ruby.

Starting Ruby for `puppet --version` costs about 0.8 s, so each version comes from the Ruby
library's own files, and the program is only asked when no file answers (and the host is live).

Looking up the modules a deployment needs in Puppet's modulepath, as Puppet itself would.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.host import SYSTEM_PATH

if TYPE_CHECKING:
    from packaging.version import Version

    from preflight.facts.packages import Package
    from preflight.host import Host


# --- from puppet_paths.py
PACKAGE_NAMES = ("puppet", "puppet-agent", "puppet-common")
DISTRO_BIN = "usr/bin/puppet"
VENDOR_BIN = "opt/puppetlabs/bin/puppet"
VENDOR_PREFIX = "opt/puppetlabs/"
VENDOR_BIN_DIR = "/opt/puppetlabs/bin"
# The all-in-one package's own version (puppet-agent 1.10.x carried Puppet 4.10.x): reported as
# agent_version, never as Puppet's.
VENDOR_AGENT_VERSION = "opt/puppetlabs/puppet/VERSION"
VENDOR_PROFILE = "etc/profile.d/puppet-agent.sh"
ENVIRONMENT_FILE = "etc/environment"

VENDOR_LIBDIRS = ("opt/puppetlabs/puppet/lib/ruby/vendor_ruby",)
DISTRO_LIBDIRS = (
    "usr/lib/ruby/vendor_ruby",  # Debian/Ubuntu from Puppet 3 on (Debian 12: 7.23)
    "usr/lib/ruby/1.8",  # Ubuntu 12.04, Debian 6/7: Puppet 2.x
    "usr/lib/ruby/1.9.1",
    "usr/share/ruby/vendor_ruby",  # Fedora, RHEL 7
    "usr/lib/ruby/site_ruby/*",  # RHEL/EPEL with Ruby 1.8
)
GEM_LIBDIRS = (
    "var/lib/gems/*/gems/puppet-*/lib",  # `gem install puppet` on Debian/Ubuntu
    "usr/local/lib/ruby/gems/*/gems/puppet-*/lib",
    "usr/lib/ruby/gems/*/gems/puppet-*/lib",
    "usr/share/gems/gems/puppet-*/lib",
)
# Relative to a library folder, in Puppet's own order: Puppet.version prefers a VERSION file beside
# version.rb (packagers write one), then the constant in version.rb (2.7.19 on), then the constant
# in puppet.rb (older 2.7 and before).
VERSION_FILES = ("puppet/VERSION", "puppet/version.rb", "puppet.rb")

DISTRO_MODULEPATHS = (
    "etc/puppet/code/environments/*/modules",  # Debian 12
    "etc/puppet/code/modules",
    "usr/share/puppet/modules",
    "usr/share/puppet/vendor_modules",
    "etc/puppet/environments/*/modules",  # Puppet 3 directory environments
    "etc/puppet/modules",  # Puppet 2.7/3 default ($confdir/modules)
)
VENDOR_MODULEPATHS = (
    "etc/puppetlabs/code/environments/production/modules",
    "etc/puppetlabs/code/modules",
    "opt/puppetlabs/puppet/modules",
    "opt/puppetlabs/puppet/vendor_modules",
)

MODULE_TOOL_VERSION = "2.7.14"


# --- from puppet_versions.py
def version_key(version: str) -> Version | None:
    """A comparable version; vendor suffixes (3.7.2.acquia7) compare by their release part."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion:
        match = re.match(r"\d+(?:\.\d+)*", version)
        return Version(match.group(0)) if match else None


def sort_key(version: str | None) -> Version:
    from packaging.version import Version

    return version_key(version or "") or Version("0")


def older(version: str, minimum: str) -> bool:
    have, want = version_key(version), version_key(minimum)
    return have is not None and want is not None and have < want


# --- from puppet_installs.py
SYSTEM_BIN_DIRS = ("usr/bin", "usr/sbin", "bin", "sbin")
PUPPETVERSION_RE = re.compile(r"""^\s*PUPPETVERSION\s*=\s*['"]([^'"\s]+)['"]""", re.M)
VERSION_TEXT_RE = re.compile(r"^\d+\.\d+[0-9A-Za-z.+~-]*$")
GEM_DIR_RE = re.compile(r"/puppet-(\d[0-9A-Za-z.]*)/lib$")
VERSION_FILE_LIMIT = 256 * 1024  # puppet.rb of 2.7 is 4 KiB
LAUNCHER_HEAD = 4096


@dataclass
class Install:
    """One `puppet` executable and what it runs."""

    path: str  # root-relative, as found
    real: str  # root-relative, symlinks resolved
    layout: str  # "vendor", "distribution" or "other"
    path_rank: int | None = None  # position on PATH; None when not on it
    version: str | None = None
    version_source: str | None = None  # display path of the file, or the command
    library: str | None = None
    package: str | None = None
    ruby: bool = True  # a Ruby script that loads Puppet (else a wrapper or another program)
    failure: str | None = None  # why `puppet --version` gave no version
    libraries: list[str] = field(default_factory=list)  # the library folders looked in

    def to_dict(self, host: Host) -> dict[str, Any]:
        return {
            "path": host.display(self.path),
            "real_path": host.display(self.real),
            "layout": self.layout,
            "on_path": self.path_rank is not None,
            "version": self.version,
            "version_source": self.version_source,
            "library": None if self.library is None else host.display(self.library),
            "package": self.package,
            "ruby_launcher": self.ruby,
        }


def puppet_search_path(host: Host) -> tuple[list[str] | None, str]:
    """The PATH `puppet` is looked up in: the live environment's, or a login shell's in ROOT."""
    if host.is_live:
        return None, "environment"  # host.which_all walks the live PATH itself
    source = "standard"
    value = SYSTEM_PATH
    text = host.read_text(ENVIRONMENT_FILE, limit=64 * 1024)
    if text:
        # pam_env reads /etc/environment for every login: its PATH replaces the default.
        match = re.search(r"""^\s*(?:export\s+)?PATH\s*=\s*["']?([^"'\n]*)""", text, re.M)
        if match and match.group(1).strip():
            value = match.group(1).strip()
            source = "/" + ENVIRONMENT_FILE
    folders = [f for f in value.split(":") if f.startswith("/")]
    if host.exists(VENDOR_PROFILE) and VENDOR_BIN_DIR not in folders:
        # The all-in-one package's profile script appends /opt/puppetlabs/bin for login shells.
        folders.append(VENDOR_BIN_DIR)
        source += " + /" + VENDOR_PROFILE
    return folders, source


def find_installs(
    host: Host, search_path: list[str] | None, ignored: list[dict[str, str]]
) -> list[Install]:
    # The PATH as given, not host.which's: what `puppet` runs is the first in the operator's PATH.
    on_path = [p.lstrip("/") for p in host.which_all("puppet", search_path)]
    candidates = list(on_path) + [p for p in (DISTRO_BIN, VENDOR_BIN) if p not in on_path]
    installs: list[Install] = []
    rank = 0
    for rel in candidates:
        if not host.is_file(rel):
            continue
        real = host.realpath(rel)
        if real is None:
            ignored.append({"path": host.display(rel), "reason": "symbolic link loop"})
            continue
        known = next((i for i in installs if i.real == real), None)
        ranked = rel in on_path
        if known is not None:
            # The same file under a second name (/bin -> usr/bin, a link into /opt/puppetlabs).
            if ranked and known.path_rank is None:
                known.path_rank = rank
                rank += 1
            continue
        layout = _layout(real)
        ruby = _is_ruby_launcher(host, real)
        if layout == "other" and not ruby and not (on_path and rel == on_path[0]):
            # A wrapper or an unrelated program named puppet that `puppet` does not run: nothing
            # says which Puppet it is, and running it to find out could do anything.
            ignored.append(
                {
                    "path": host.display(rel),
                    "reason": "not a Ruby puppet launcher, not first on PATH",
                }
            )
            continue
        install = Install(rel, real, layout, path_rank=rank if ranked else None, ruby=ruby)
        if ranked:
            rank += 1
        installs.append(install)
    return installs


def _layout(real: str) -> str:
    if real.startswith(VENDOR_PREFIX):
        return "vendor"
    if os.path.dirname(real) in SYSTEM_BIN_DIRS:
        return "distribution"
    return "other"


def _is_ruby_launcher(host: Host, rel: str) -> bool:
    head = host.read_bytes(rel, LAUNCHER_HEAD) or b""
    first = head.split(b"\n", 1)[0]
    return first.startswith(b"#!") and b"ruby" in first and b"puppet" in head.lower()


def assign_packages(host: Host, installs: list[Install], packages: list[Package]) -> None:
    """Which package owns each executable (from dpkg's file lists), for details and advice."""
    for package in packages:
        for install in installs:
            if install.package is None and any(
                host.packages.owns(package, "/" + path) for path in {install.path, install.real}
            ):
                install.package = package.name


def library_dirs(host: Host, install: Install) -> list[str]:
    """The existing library folders the launcher may load Puppet from, in its lookup order."""
    if install.layout == "other" and not install.ruby:
        return []  # a wrapper: its folder says nothing about the library it ends up loading
    if install.layout == "vendor":
        patterns: tuple[str, ...] = VENDOR_LIBDIRS
    elif install.layout == "distribution":
        patterns = DISTRO_LIBDIRS
    else:
        prefix = os.path.dirname(os.path.dirname(install.real))
        base = f"{prefix}/" if prefix else ""
        patterns = (f"{base}lib/ruby/vendor_ruby", f"{base}lib/ruby/site_ruby/*", f"{base}lib")
    folders = [folder for pattern in patterns for folder in host.glob(pattern)]
    if install.layout == "other":
        # A RubyGems binstub loads the newest installed puppet gem.
        gems = [g for pattern in GEM_LIBDIRS for g in host.glob(pattern) if GEM_DIR_RE.search(g)]
        gems.sort(key=lambda g: sort_key(GEM_DIR_RE.findall(g)[0]), reverse=True)
        folders.extend(gems)
    return folders


def version_from_library(host: Host, library: str) -> tuple[str, str] | None:
    for name in VERSION_FILES:
        rel = f"{library}/{name}"
        if name.endswith("VERSION"):
            value = host.read_line(rel)
            if value is not None and VERSION_TEXT_RE.match(value):
                return value, host.display(rel)
            continue
        text = host.read_text(rel, VERSION_FILE_LIMIT)
        if text is None:
            continue
        match = PUPPETVERSION_RE.search(text)
        if match and VERSION_TEXT_RE.match(match.group(1)):
            return match.group(1), host.display(rel)
    return None


def read_version(host: Host, install: Install, timeout: float, commands: list[str]) -> None:
    install.libraries = library_dirs(host, install)
    for library in install.libraries:
        found = version_from_library(host, library)
        if found is not None:
            install.version, install.version_source = found
            install.library = library
            return
    if not host.is_live or not (install.ruby or install.path_rank == 0):
        return
    # No file answers: ask the program itself (Puppet starts Ruby, ~0.8 s). What is first on
    # PATH is asked even when it is no Ruby script: it is what `puppet` runs.
    argv = [host.display(install.path), "--version"]
    commands.append(" ".join(argv))
    # A little under the check's own timeout, so the finding can say what hung.
    limit = max(0.5, timeout - 1.0)
    result = host.run(argv, timeout=limit)
    if result is None:
        return
    if result.timed_out:
        install.failure = f"`{' '.join(argv)}` timed out after {limit:g} s"
    elif result.returncode is None:
        install.failure = f"`{' '.join(argv)}` could not start ({result.error})"
    elif not result.ok:
        install.failure = f"`{' '.join(argv)}` exited with status {result.returncode}"
    else:
        # Puppet prints the bare version; anything else is not trusted as one.
        lines = result.stdout.strip().splitlines()
        if len(lines) == 1 and VERSION_TEXT_RE.match(lines[0].strip()):
            install.version = lines[0].strip()
            install.version_source = f"`{' '.join(argv)}`"
        else:
            install.failure = f"`{' '.join(argv)}` printed no version"


def first_on_path(installs: list[Install]) -> Install | None:
    """What `puppet` runs by name."""
    ranked = [i for i in installs if i.path_rank is not None]
    return min(ranked, key=lambda i: i.path_rank or 0) if ranked else None


def newest(installs: list[Install]) -> Install | None:
    """The installation with the highest known version (the first of equals)."""
    known = [i for i in installs if i.version is not None]
    return max(known, key=lambda i: sort_key(i.version)) if known else None


def effective_install(installs: list[Install]) -> Install:
    """What `puppet` runs: the first on PATH; with none on PATH, the newest installed."""
    return first_on_path(installs) or newest(installs) or installs[0]


def newest_meeting(installs: list[Install], effective: Install, minimum: str) -> Install | None:
    """The newest other installation that meets the minimum: switching to it beats upgrading."""
    return newest(
        [
            i
            for i in installs
            if i is not effective and i.version is not None and not older(i.version, minimum)
        ]
    )


# --- from puppet_modules.py
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
