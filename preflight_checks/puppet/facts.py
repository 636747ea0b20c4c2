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
import stat
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
LOCAL_BIN = "usr/local/bin/puppet"  # `gem install puppet` puts its binstub here
VENDOR_BIN = "opt/puppetlabs/bin/puppet"
VENDOR_RUBY_BIN = "opt/puppetlabs/puppet/bin/puppet"
# Where an installed Puppet's executable is looked for (besides each caller's PATH).
NO_EXECUTABLE = "no puppet on PATH, no /usr/bin/puppet, no /opt/puppetlabs/bin/puppet"
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
# [ \t], not \s: with re.M, `^\s*` spans blank lines and is quadratic on a file of newlines.
PUPPETVERSION_RE = re.compile(r"""^[ \t]*PUPPETVERSION[ \t]*=[ \t]*['"]([^'"\s]+)['"]""", re.M)
VERSION_TEXT_RE = re.compile(r"^\d+\.\d[0-9A-Za-z.+~-]*$")  # no two overlapping runs
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
    package_version: str | None = None  # the owning package's full version (7.23.0-1+deb12u1)
    gem_stub: bool = False  # a RubyGems binstub (`gem install puppet`)
    interpreter: str | None = None  # the Ruby its #! line starts, as the host names it
    interpreter_package: str | None = None  # the package whose file list names the interpreter
    interpreter_target: str | None = None  # the file that package provides (a link's target)
    broken: str | None = None  # why this Puppet cannot start, when it cannot
    # execve() itself fails (the #! interpreter is missing or not executable): a shell looking
    # `puppet` up on PATH then goes on to the next folder, as execvp does.
    exec_fails: bool = False
    conflicting_gem: str | None = None  # a puppet gem this Ruby's autoloader loads first
    env_program: str | None = None  # `#!/usr/bin/env ruby`: the Ruby depends on the caller's PATH

    @property
    def works(self) -> bool:
        """Nothing found that stops it from starting (a failed `--version` counts too)."""
        return self.broken is None and self.failure is None

    @property
    def kind(self) -> str:
        """How it was installed, for the tool that removes or repairs it."""
        if self.gem_stub:
            return "gem"
        if self.layout == "vendor":
            return "vendor"
        return "package" if self.package else "other"

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
            "package_version": self.package_version,
            "kind": self.kind,
            "ruby_launcher": self.ruby,
            "interpreter": self.interpreter,
            "works": self.works,
            "broken": self.broken,
        }


CRON_DEFAULT_PATH = "/usr/bin:/bin"  # cron (Debian's and cronie) for a crontab without PATH=
# systemd's PATH for services: the agent daemon, and so its `exec` resources (`path =>
# $facts['path']`, or a command run by name through the shell provider).
SYSTEMD_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT_CRONTABS = ("var/spool/cron/crontabs/root", "var/spool/cron/root")  # Debian, RHEL
PROFILE_FILE = "etc/profile"
# Matched against a stripped line; no two adjacent parts can take the same characters.
PATH_ASSIGN_RE = re.compile(r"""(?:export[ \t]+)?PATH[ \t]*=["']?([^"'\n$]*)["']?""")
SCRIPT_LINE_LIMIT = 4000


@dataclass
class Caller:
    """Something that runs `puppet` by name, and the PATH it looks it up in."""

    name: str
    path: list[str]
    source: str
    runs: Install | None = None  # the installation it starts
    runs_path: str | None = None  # what it finds first on its PATH, as the host names it
    passed_over: list[str] = field(default_factory=list)  # found earlier, but execve() fails
    # Whether what it runs starts for it: an `env ruby` launcher starts the Ruby of its PATH.
    runs_broken: bool = False

    def to_dict(self, host: Host) -> dict[str, Any]:
        return {
            "caller": self.name,
            "path": ":".join(self.path),
            "path_source": self.source,
            "runs": self.runs_path,
            "passed_over": self.passed_over,
            "version": self.runs.version if self.runs else None,
            "works": (not self.runs_broken) if self.runs else None,
        }


def _path_folders(value: str) -> list[str]:
    return [f for f in value.split(":") if f.startswith("/")]


def _assigned_path(text: str, root_branch: bool = False) -> str | None:
    """The PATH a shell script or crontab assigns (for /etc/profile: in its `id -u` = 0 branch,
    where Debian sets root's PATH). Line by line, no regex over the whole text."""
    in_root = not root_branch
    for line in text.splitlines()[:SCRIPT_LINE_LIMIT]:
        stripped = line.strip()
        if root_branch:
            if stripped.startswith("if") and "id -u" in stripped and "-eq 0" in stripped:
                in_root = True
                continue
            if in_root and stripped.startswith(("else", "elif", "fi")):
                return None
        if not in_root:
            continue
        match = PATH_ASSIGN_RE.fullmatch(stripped)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return None


def login_search_path(host: Host) -> tuple[list[str], str]:
    """root's login shell PATH: /etc/profile's (Debian sets it for root, after pam_env read
    /etc/environment), else /etc/environment's, else the standard one; then the all-in-one
    package's profile script appends /opt/puppetlabs/bin."""
    source = "standard"
    value = SYSTEM_PATH
    profile = host.read_text(PROFILE_FILE, limit=64 * 1024)
    found = _assigned_path(profile, root_branch=True) if profile else None
    if found:
        value, source = found, "/" + PROFILE_FILE
    else:
        text = host.read_text(ENVIRONMENT_FILE, limit=64 * 1024)
        found = _assigned_path(text) if text else None
        if found:
            value, source = found, "/" + ENVIRONMENT_FILE
    folders = _path_folders(value)
    if host.exists(VENDOR_PROFILE) and VENDOR_BIN_DIR not in folders:
        folders.append(VENDOR_BIN_DIR)
        source += " + /" + VENDOR_PROFILE
    return folders, source


def crontab_search_path(host: Host) -> tuple[list[str], str]:
    for crontab in ROOT_CRONTABS:
        text = host.read_text(crontab, limit=256 * 1024)
        found = _assigned_path(text) if text else None
        if found:
            return _path_folders(found), "/" + crontab
    return _path_folders(CRON_DEFAULT_PATH), "cron's default"


def callers(host: Host) -> list[Caller]:
    """Who runs `puppet` by name on this host, each with its own PATH."""
    found = []
    if host.is_live:
        found.append(Caller("this run", host.search_path(), "environment"))
    found.append(Caller("root's crontab", *crontab_search_path(host)))
    found.append(Caller("root login shell", *login_search_path(host)))
    found.append(
        Caller(
            "puppet agent service and its exec resources",
            _path_folders(SYSTEMD_DEFAULT_PATH),
            "systemd's default",
        )
    )
    return found


def _works_for(host: Host, install: Install, caller: Caller) -> bool:
    """Whether the installation starts for this caller. An `env ruby` launcher whose Ruby (on
    the caller's PATH) differs from the one judged is judged again with that Ruby."""
    if install.env_program is None or install.conflicting_gem or install.gem_stub:
        return install.works
    found = host.which_all(install.env_program, caller.path)
    if not found:
        return False
    if found[0] == install.interpreter:
        return install.works
    return any(
        version_from_library(host, folder) is not None
        for pattern in interpreter_libdirs(host, found[0])
        for folder in host.glob(pattern)
    )


def puppet_search_path(host: Host) -> tuple[list[str] | None, str]:
    """The PATH `puppet` is looked up in: the live environment's, or a login shell's in ROOT."""
    if host.is_live:
        return None, "environment"  # host.which_all walks the live PATH itself
    return login_search_path(host)


def resolve_callers(host: Host, found: list[Caller], installs: list[Install]) -> None:
    for caller in found:
        for candidate in host.which_all("puppet", caller.path):
            real = host.realpath(candidate.lstrip("/"))
            install = next((i for i in installs if i.real == real), None)
            if install is not None and install.exec_fails:
                # The shell's execvp() gets ENOENT/EACCES for the script and tries the next
                # folder of PATH, so this caller never runs it.
                caller.passed_over.append(candidate)
                continue
            caller.runs_path = candidate
            caller.runs = install
            caller.runs_broken = install is not None and not _works_for(host, install, caller)
            break


def find_installs(
    host: Host,
    search_path: list[str] | None,
    ignored: list[dict[str, str]],
    extra: list[str] = (),  # type: ignore[assignment]
) -> list[Install]:
    # The PATH as given, not host.which's: what `puppet` runs is the first in the operator's PATH.
    on_path = [p.lstrip("/") for p in host.which_all("puppet", search_path)]
    others = [p.lstrip("/") for p in (*extra, DISTRO_BIN, VENDOR_BIN, LOCAL_BIN)]
    candidates = list(on_path) + [p for p in dict.fromkeys(others) if p not in on_path]
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
            if rel not in on_path and rel in others[: len(extra)]:
                continue  # first on another caller's PATH only: reported with that caller
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
                install.package_version = package.version


RUBYGEMS_STUB_MARK = b"This file was generated by RubyGems"


def inspect_launcher(host: Host, install: Install, search_path: list[str] | None) -> None:
    """The Ruby a launcher's #! line starts (through `env` on `search_path` too) must exist and
    be executable, or `puppet` cannot start at all: the kernel refuses the script."""
    head = host.read_bytes(install.real, LAUNCHER_HEAD) or b""
    install.gem_stub = RUBYGEMS_STUB_MARK in head
    if not install.ruby:
        return
    words = head.split(b"\n", 1)[0][2:].decode("utf-8", "replace").split()
    program = words[0] if words else ""
    if os.path.basename(program) == "env":
        if not _executable(host, program):
            install.broken = f"its #! line starts {program}, which is missing or not executable"
            install.exec_fails = True
            return
        name = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), "ruby")
        install.env_program = name
        found = host.which_all(name, search_path)
        if not found:
            install.interpreter = name
            install.broken = f"its #! line runs `{name}` by name and no {name} is on PATH"
            return
        program = found[0]
    install.interpreter = program
    if not program.startswith("/"):
        install.broken = f"its #! line names no interpreter ({program or 'empty'})"
    elif not host.exists(program.lstrip("/")):
        install.broken = f"its interpreter {program} (the #! line) is missing"
        install.exec_fails = True
        target = host.readlink(program.lstrip("/"))
        if target is not None:
            install.broken += f" (a link to {target}, which does not exist)"
    elif not _executable(host, program):
        install.broken = f"its interpreter {program} (the #! line) is not an executable file"
        install.exec_fails = True


def _executable(host: Host, path: str) -> bool:
    st = host.stat(path.lstrip("/"))
    if st is None or not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        return False
    if host.is_live:
        return os.access(path, os.X_OK)
    return True


def interpreter_libdirs(host: Host, interpreter: str) -> tuple[str, ...]:
    """The folders the Ruby at `interpreter` loads libraries from, in its $LOAD_PATH order:
    site_ruby before vendor_ruby (Debian's /usr/bin/ruby: /usr/local/lib/site_ruby first)."""
    real = host.realpath(interpreter.lstrip("/")) or interpreter.lstrip("/")
    prefix = os.path.dirname(os.path.dirname(real))
    if prefix == "usr":
        return ("usr/local/lib/site_ruby/*", "usr/local/lib/site_ruby", *DISTRO_LIBDIRS)
    base = f"{prefix}/" if prefix else ""
    return (
        f"{base}lib/ruby/site_ruby/*",
        f"{base}lib/ruby/site_ruby",
        f"{base}lib/ruby/vendor_ruby",
    )


def _layout_libdirs(install: Install) -> tuple[str, ...]:
    if install.layout == "vendor":
        return VENDOR_LIBDIRS
    if install.layout == "distribution":
        return DISTRO_LIBDIRS
    prefix = os.path.dirname(os.path.dirname(install.real))
    base = f"{prefix}/" if prefix else ""
    return (f"{base}lib/ruby/vendor_ruby", f"{base}lib/ruby/site_ruby/*", f"{base}lib")


def _puppet_gems(host: Host) -> list[str]:
    """Installed puppet gems' library folders, newest first (what a binstub activates)."""
    gems = [g for pattern in GEM_LIBDIRS for g in host.glob(pattern) if GEM_DIR_RE.search(g)]
    gems.sort(key=lambda g: sort_key(GEM_DIR_RE.findall(g)[0]), reverse=True)
    return gems


def library_dirs(host: Host, install: Install) -> list[str]:
    """The existing library folders the launcher may load Puppet from, in its lookup order:
    those of the Ruby it starts when that is known, else the layout's."""
    if install.layout == "other" and not install.ruby:
        return []  # a wrapper: its folder says nothing about the library it ends up loading
    if install.gem_stub:
        return _puppet_gems(host)
    patterns: tuple[str, ...] = ()
    if install.interpreter and install.interpreter.startswith("/") and install.broken is None:
        patterns = interpreter_libdirs(host, install.interpreter)
        if install.layout == "other":
            patterns += _layout_libdirs(install)
    else:
        patterns = _layout_libdirs(install)
    folders: list[str] = []
    for pattern in patterns:
        folders.extend(f for f in host.glob(pattern) if f not in folders)
    if install.layout == "other":
        folders.extend(g for g in _puppet_gems(host) if g not in folders)
    return folders


def check_library(host: Host, install: Install) -> None:
    """A Ruby launcher whose Ruby loads no Puppet library cannot run, even when the layout's
    library folder holds one (an all-in-one launcher pointed at another Ruby, a removed gem)."""
    if install.broken or not install.ruby or install.library is not None or install.gem_stub:
        return
    if install.interpreter is None or install.layout == "other":
        return
    for library in _layout_libdirs_existing(host, install):
        found = version_from_library(host, library)
        if found is not None:
            install.version, install.version_source = found
            install.library = library
            loaded = ", ".join(
                host.display(p) for p in interpreter_libdirs(host, install.interpreter)
            )
            install.broken = (
                f"its Ruby {install.interpreter} loads Puppet from {loaded}, not from "
                f"{host.display(library)} where the library is"
            )
            return


def check_gem_conflict(host: Host, install: Install) -> None:
    """A packaged Puppet on the system Ruby next to a `gem install puppet`: Puppet's autoloader
    searches every installed gem's lib folder before its own library (Puppet::Util::Autoload
    search_directories), loads the gem's copies of its own files and stops ('superclass
    mismatch'). Only the system Ruby's gem folders count: the all-in-one Ruby has its own."""
    if install.gem_stub or install.broken or not install.ruby or install.library is None:
        return
    if not install.interpreter or not install.interpreter.startswith("/"):
        return
    real = host.realpath(install.interpreter.lstrip("/")) or ""
    if os.path.dirname(os.path.dirname(real)) != "usr":
        return
    for gem in _puppet_gems(host):
        if gem != install.library:
            install.conflicting_gem = os.path.dirname(gem)
            version = GEM_DIR_RE.findall(gem)[0]
            install.broken = (
                f"its Ruby also sees the puppet gem {version} in "
                f"{host.display(install.conflicting_gem)}, and Puppet's autoloader loads a "
                "gem's files before its own library: it stops with 'superclass mismatch'"
            )
            return


def _layout_libdirs_existing(host: Host, install: Install) -> list[str]:
    return [f for pattern in _layout_libdirs(install) for f in host.glob(pattern)]


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
            check_gem_conflict(host, install)
            return
    check_library(host, install)
    if install.broken or not host.is_live or not (install.ruby or install.path_rank == 0):
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


def interpreter_owner(host: Host, install: Install) -> None:
    """Which package's file list names the launcher's interpreter (ruby3.1, puppet-agent)."""
    if install.interpreter is None or not install.interpreter.startswith("/"):
        return
    # The link's target first: /usr/bin/ruby (package ruby) points at /usr/bin/ruby3.1 (package
    # ruby3.1), and only reinstalling the target's package brings a missing target back.
    real = host.realpath(install.interpreter.lstrip("/"))
    names = [host.display(real)] if real is not None else []
    names += [install.interpreter] if install.interpreter not in names else []
    candidates = host.packages.find(names=("puppet-agent",)) + host.packages.find(prefix="ruby")
    for name in names:
        for package in candidates:
            if host.packages.owns(package, name):
                install.interpreter_package = package.name
                install.interpreter_target = name
                return


MIN_VERSION_RE = re.compile(r"(?:\d+:)?\d[0-9A-Za-z.+~]*(?:-[0-9A-Za-z.+~]+)?")


def upstream_part(version: str) -> str:
    """7.23.0 of 1:7.23.0-1+deb12u1: no epoch, no Debian/RPM revision."""
    version = version.split(":", 1)[1] if ":" in version.split("-", 1)[0] else version
    return version.rsplit("-", 1)[0] if "-" in version else version


def below_minimum(host: Host, install: Install, minimum: str) -> bool:
    """Whether the installation is older than `minimum`. A minimum with a revision or an epoch
    (7.23.0-1) is a package version: compared with the owning package's version by the host's
    package manager's rules (dpkg or rpm); without a package, by its upstream part."""
    if install.version is None:
        return False
    if (":" in minimum or "-" in minimum) and install.package_version:
        return host.packages.order(install.package_version, minimum) < 0
    return older(install.version, upstream_part(minimum))


def first_on_path(installs: list[Install]) -> Install | None:
    """What `puppet` runs by name: the first on PATH that execve() can start."""
    ranked = [i for i in installs if i.path_rank is not None and not i.exec_fails]
    return min(ranked, key=lambda i: i.path_rank or 0) if ranked else None


def newest(installs: list[Install]) -> Install | None:
    """The installation with the highest known version (the first of equals)."""
    known = [i for i in installs if i.version is not None]
    return max(known, key=lambda i: sort_key(i.version)) if known else None


def effective_install(installs: list[Install]) -> Install:
    """What `puppet` runs: the first on PATH; with none on PATH, the newest working one."""
    return (
        first_on_path(installs)
        or newest([i for i in installs if i.works])
        or newest(installs)
        or installs[0]
    )


def newest_meeting(
    host: Host, installs: list[Install], effective: Install, minimum: str
) -> Install | None:
    """The newest other working installation that meets the minimum: switching to it beats
    upgrading."""
    return newest(
        [
            i
            for i in installs
            if i is not effective
            and i.works
            and i.version is not None
            and not below_minimum(host, i, minimum)
        ]
    )


# --- from puppet_modules.py
METADATA_LIMIT = 1 << 20
MODULE_NAME_RE = re.compile(r"^(?:([A-Za-z0-9]+)[-/])?([a-z][a-z0-9_]*)$")
MODULEFILE_RE = {
    key: re.compile(rf"""^[ \t]*{key}[ \t]+['"]([^'"]+)['"]""", re.M) for key in ("name", "version")
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
    """The first folder named after the module on the modulepath: the one Puppet loads. It is the
    module when it holds metadata.json or manifests/ (and, for author-name, the author matches);
    an empty or broken folder shadows any complete one further down the path."""
    match = MODULE_NAME_RE.match(wanted)
    assert match is not None  # the check validated every name (puppet._config_problems)
    author, short = match.group(1), match.group(2)
    result: dict[str, Any] = {"name": wanted, "present": False, "path": None, "version": None}
    for index, folder in enumerate(folders):
        module_dir = f"{folder.strip('/')}/{short}"
        if not host.is_dir(module_dir):
            continue
        name, version = module_metadata(host, module_dir)
        result.update(path=host.display(module_dir), metadata_name=name, version=version)
        if not (
            host.is_file(f"{module_dir}/metadata.json") or host.is_dir(f"{module_dir}/manifests")
        ):
            result["empty"] = True
            result["contents"] = host.listdir(module_dir)[:8]
            result["shadows"] = next(
                (
                    host.display(f"{later.strip('/')}/{short}")
                    for later in folders[index + 1 :]
                    if host.is_file(f"{later.strip('/')}/{short}/metadata.json")
                    or host.is_dir(f"{later.strip('/')}/{short}/manifests")
                ),
                None,
            )
            return result
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
