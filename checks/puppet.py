"""The `puppet` check: is the Puppet that deployments run new enough, and are its modules there?

Deployments call `puppet module install` and `puppet apply`. Puppet below 2.7.14 has no `puppet
module` subcommand (Ubuntu 12.04 shipped 2.7.11), and a host often carries two Puppets: the
distribution's `/usr/bin/puppet` and the vendor's all-in-one `/opt/puppetlabs/bin/puppet`, where
whichever comes first on PATH wins. The check finds every installation, reads each version from the
Ruby library's own files (starting Ruby for `puppet --version` costs about 0.8 s), compares the one
that `puppet` runs with the minimum, and looks for the required modules in the modulepath.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight.check import Check, CheckContext, Finding, FindingDoc, Option, Status

if TYPE_CHECKING:
    from packaging.version import Version

    from preflight.host import Host

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
LSB_RELEASE = "etc/lsb-release"
SYSTEM_BIN_DIRS = ("usr/bin", "usr/sbin", "bin", "sbin")

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
PUPPETVERSION_RE = re.compile(r"""^\s*PUPPETVERSION\s*=\s*['"]([^'"\s]+)['"]""", re.M)
VERSION_TEXT_RE = re.compile(r"^\d+\.\d+[0-9A-Za-z.+~-]*$")
GEM_DIR_RE = re.compile(r"/puppet-(\d[0-9A-Za-z.]*)/lib$")
VERSION_FILE_LIMIT = 256 * 1024  # puppet.rb of 2.7 is 4 KiB
LAUNCHER_HEAD = 4096
DPKG_LIST_LIMIT = 32 << 20  # the all-in-one puppet-agent lists tens of thousands of files

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
METADATA_LIMIT = 1 << 20
MODULE_NAME_RE = re.compile(r"^(?:([A-Za-z0-9]+)[-/])?([a-z][a-z0-9_]*)$")
MODULEFILE_RE = {
    key: re.compile(rf"""^\s*{key}\s+['"]([^'"]+)['"]""", re.M) for key in ("name", "version")
}

MODULE_TOOL_VERSION = "2.7.14"
MODULE_TOOL_MISSING = (
    "`puppet module` (install, list and search modules from the Puppet Forge) only exists from "
    "Puppet 2.7.14 on"
)
# What each release's own archive carries, (os-release ID, VERSION_CODENAME) -> (package, Puppet).
DISTRO_PUPPET = {
    ("debian", "bookworm"): ("puppet-agent", "7.23.0"),
    ("debian", "bullseye"): ("puppet", "5.5.22"),
    ("ubuntu", "jammy"): ("puppet", "5.5.22"),
    ("ubuntu", "focal"): ("puppet", "5.5.10"),
    ("ubuntu", "precise"): ("puppet", "2.7.11"),  # 2.7.11-1ubuntu2.x, security fixes only
}
# Codenames with a Puppet 7 release package at https://apt.puppet.com/puppet7-release-<codename>.deb.
VENDOR_APT_CODENAMES = ("buster", "bullseye", "bookworm", "bionic", "focal", "jammy")
VENDOR_YUM_MAJORS = ("7", "8", "9")  # https://yum.puppet.com/puppet7-release-el-<N>.noarch.rpm
VENDOR_PUPPET_MAJOR = "7"
# Ubuntu 12.04's last vendor repository (Puppet 3.x); the OS itself is end of life.
PRECISE_RELEASE_URL = "http://apt.puppetlabs.com/puppetlabs-release-precise.deb"
RHEL_LIKE = ("rhel", "centos", "rocky", "almalinux", "ol")


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


class PuppetCheck(Check):
    id = "puppet"
    title = "Puppet version and modules"
    description = (
        "Finds every Puppet installation (`puppet` on PATH, the distribution's /usr/bin/puppet, "
        "the vendor's all-in-one /opt/puppetlabs/bin/puppet, and the puppet, puppet-agent and "
        "puppet-common packages), reads each version from the Ruby library's VERSION, "
        "puppet/version.rb or puppet.rb without starting Ruby, and compares the one that `puppet` "
        "runs with `min_version` (below 2.7.14 there is no `puppet module` to install modules "
        "from the Forge). It warns when an older Puppet comes first on PATH and shadows a newer "
        "one, and checks that each module in `modules` is in the modulepath (metadata.json name "
        "and version). Under --root, PATH is /etc/environment's PATH (else the standard one) "
        "plus /opt/puppetlabs/bin when /etc/profile.d/puppet-agent.sh exists, as a login shell "
        "would have it."
    )
    findings = {
        "puppet.ok": FindingDoc(Status.PASS, "The Puppet that `puppet` runs meets min_version."),
        "puppet.too-old": FindingDoc(
            Status.FAIL,
            "The Puppet that `puppet` runs is older than min_version (below 2.7.14 the "
            "`puppet module` tool is missing).",
            "Install the distribution's package where it is new enough, else Puppet's release "
            "package for this OS (apt.puppet.com / yum.puppet.com), as the remediation says.",
        ),
        "puppet.shadowed": FindingDoc(
            Status.WARN,
            "The `puppet` first on PATH is older than another installed Puppet, which therefore "
            "never runs by name.",
            "Remove the older installation, or put the newer one's folder first in PATH.",
        ),
        "puppet.module-missing": FindingDoc(
            Status.FAIL,
            "A module named in `modules` is not in the modulepath (or the folder of that name "
            "holds another author's module).",
            "`puppet module install <author>-<name>` (with --modulepath DIR for a custom path).",
        ),
        "puppet.version-unknown": FindingDoc(
            Status.ERROR,
            "Puppet is installed but its version could not be read from its library files (and, "
            "under --root, no command may be run), so the check cannot decide.",
            "Make sure the library files exist (reinstall the package), or run the check live.",
        ),
        "puppet.not-installed": FindingDoc(
            Status.SKIP,
            "No Puppet is installed (a skip; a failure when `required = true`). It is also a "
            "failure when a Puppet package is installed but no puppet executable exists.",
            "Install Puppet (see puppet.too-old for the package of this OS), or reinstall the "
            "package whose executable is missing.",
        ),
        "puppet.config-invalid": FindingDoc(
            Status.ERROR,
            "min_version, a module name or a modulepath entry in [checks.puppet] is not valid.",
            "Fix the value named in the message.",
        ),
    }
    options = {
        "min_version": Option(str, MODULE_TOOL_VERSION, "oldest acceptable Puppet version"),
        "modules": Option(
            list, [], "modules that must be in the modulepath, e.g. trulabs-kamailio"
        ),
        "modulepath": Option(
            list, [], "folders to look for modules in; default: the installed layouts' own"
        ),
    }
    paths = (
        DISTRO_BIN,
        VENDOR_BIN,
        "opt/puppetlabs/puppet/bin/puppet",
        "usr/local/bin/puppet",
        VENDOR_AGENT_VERSION,
        *(f"{lib}/{name}" for lib in VENDOR_LIBDIRS + DISTRO_LIBDIRS for name in VERSION_FILES),
        *(f"{lib}/{name}" for lib in GEM_LIBDIRS for name in VERSION_FILES),
        *(
            f"{mp}/*/{name}"
            for mp in DISTRO_MODULEPATHS + VENDOR_MODULEPATHS
            for name in ("metadata.json", "Modulefile")
        ),
        "var/lib/dpkg/status",
        *(f"var/lib/dpkg/info/{name}.list" for name in PACKAGE_NAMES),
        "etc/os-release",
        LSB_RELEASE,
        VENDOR_PROFILE,
        ENVIRONMENT_FILE,
    )

    def run(self, ctx: CheckContext) -> list[Finding]:
        host = ctx.host
        min_version = str(ctx.options.get("min_version") or MODULE_TOOL_VERSION)
        modules = [str(m) for m in ctx.options.get("modules") or []]
        modulepath_option = [str(p) for p in ctx.options.get("modulepath") or []]
        problems = _config_problems(min_version, modules, modulepath_option)
        if problems:
            return [
                Finding(
                    "puppet.config-invalid",
                    Status.ERROR,
                    "; ".join(problems),
                    ["fix [checks.puppet] in the preflight configuration"],
                )
            ]
        ctx.details["min_version"] = min_version

        search_path, path_source = _search_path(host)
        ctx.details["path"] = search_path
        ctx.details["path_source"] = path_source
        ignored: list[dict[str, str]] = []
        installs = _find_installs(host, search_path, ignored)
        packages = host.packages.find(names=PACKAGE_NAMES)
        ctx.details["packages"] = [{"name": p.name, "version": p.version} for p in packages]
        _assign_packages(host, installs, [p.name for p in packages])
        commands: list[str] = []
        for install in installs:
            _read_version(host, install, ctx.timeout, commands)
        ctx.details["installations"] = [i.to_dict(host) for i in installs]
        ctx.details["ignored"] = ignored
        ctx.details["commands_run"] = commands
        if any(i.layout == "vendor" for i in installs):
            ctx.details["agent_version"] = host.read_line(VENDOR_AGENT_VERSION)

        if not installs:
            return [_not_installed(host, ctx, packages)]

        findings: list[Finding] = []
        effective = _effective(installs)
        ctx.details["effective"] = host.display(effective.path)
        ctx.details["version"] = effective.version
        newer = _newest_meeting(installs, effective, min_version)
        puppet_cmd = "puppet" if effective.path_rank is not None else host.display(effective.path)
        too_old = False
        if effective.version is None:
            findings.append(_version_unknown(host, effective))
            ctx.summary = f"Puppet at {host.display(effective.path)}: version unknown" + (
                f" ({effective.failure})" if effective.failure else ""
            )
        elif _older(effective.version, min_version):
            too_old = True
            findings.append(_too_old(host, effective, min_version, newer))
            ctx.summary = (
                f"Puppet {effective.version} ({host.display(effective.path)}) is "
                f"older than {min_version}"
            )
        else:
            findings.append(
                Finding(
                    "puppet.ok",
                    Status.PASS,
                    f"Puppet {effective.version} ({host.display(effective.path)}, "
                    f"{effective.layout} build, read from {effective.version_source}) meets the "
                    f"minimum {min_version}",
                )
            )
            ctx.summary = f"Puppet {effective.version} ({host.display(effective.path)})"

        shadowed = _shadowed(host, installs)
        if shadowed is not None:
            findings.append(shadowed)

        if modules:
            findings.extend(
                self._modules(ctx, installs, modules, modulepath_option, puppet_cmd, too_old)
            )
        return findings

    def _modules(
        self,
        ctx: CheckContext,
        installs: list[Install],
        modules: list[str],
        modulepath_option: list[str],
        puppet_cmd: str,
        too_old: bool,
    ) -> list[Finding]:
        host = ctx.host
        if modulepath_option:
            patterns = [p.strip().lstrip("/") for p in modulepath_option]
        else:
            patterns = _default_modulepaths(installs)
        folders: list[str] = []
        for pattern in patterns:
            for folder in host.glob(pattern) if _is_glob(pattern) else [pattern]:
                if folder not in folders and host.is_dir(folder):
                    folders.append(folder)
        ctx.details["modulepath"] = [host.display(p) for p in patterns]
        results = []
        findings = []
        for wanted in modules:
            result = _find_module(host, wanted, folders)
            results.append(result)
            if result["present"]:
                continue
            where = ", ".join(host.display(p) for p in patterns)
            message = f"module {wanted} is not in the modulepath ({where})"
            if result.get("found_instead"):
                message = (
                    f"module {wanted} is missing: {result['path']} holds "
                    f"{result['found_instead']}, not {wanted} ({where})"
                )
            command = f"{puppet_cmd} module install {_forge_name(wanted)}"
            if modulepath_option and not _is_glob(modulepath_option[0]):
                command += f" --modulepath {modulepath_option[0]}"
            remediation = [command]
            if too_old:
                remediation.insert(
                    0, f"first upgrade Puppet (see puppet.too-old): {MODULE_TOOL_MISSING}"
                )
            findings.append(Finding("puppet.module-missing", Status.FAIL, message, remediation))
        ctx.details["modules"] = results
        present = [r for r in results if r["present"]]
        if present and ctx.summary:
            ctx.summary += "; modules: " + ", ".join(
                f"{r['name']} {r['version']}" if r.get("version") else str(r["name"])
                for r in present
            )
        return findings


# ------------------------------------------------------------------ finding installations
def _search_path(host: Host) -> tuple[list[str] | None, str]:
    """The PATH `puppet` is looked up in: the live environment's, or a login shell's in ROOT."""
    from preflight.host import SYSTEM_PATH

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


def _on_path(host: Host, search_path: list[str] | None) -> list[str]:
    if search_path is None:
        return [p.lstrip("/") for p in host.which_all("puppet")]
    found = []
    for folder in search_path:
        rel = f"{folder.strip('/')}/puppet"
        st = host.stat(rel)
        if st is not None and host.is_file(rel) and st.st_mode & 0o111:
            found.append(rel)
    return found


def _find_installs(
    host: Host, search_path: list[str] | None, ignored: list[dict[str, str]]
) -> list[Install]:
    on_path = _on_path(host, search_path)
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


def _assign_packages(host: Host, installs: list[Install], package_names: list[str]) -> None:
    """Which package owns each executable (from dpkg's file lists), for details and advice."""
    if not installs or host.packages.manager != "dpkg":
        return
    for name in package_names:
        listing = None
        for list_name in (f"{name}.list", f"{name}:amd64.list", f"{name}:all.list"):
            listing = host.read_text(f"var/lib/dpkg/info/{list_name}", DPKG_LIST_LIMIT)
            if listing is not None:
                break
        if not listing:
            continue
        lines = set(listing.splitlines())
        for install in installs:
            if install.package is None and (
                "/" + install.path in lines or "/" + install.real in lines
            ):
                install.package = name


# ------------------------------------------------------------------ versions
def _library_dirs(host: Host, install: Install) -> list[str]:
    if install.layout == "vendor":
        patterns: tuple[str, ...] = VENDOR_LIBDIRS
    elif install.layout == "distribution":
        patterns = DISTRO_LIBDIRS
    else:
        prefix = os.path.dirname(os.path.dirname(install.real))
        base = f"{prefix}/" if prefix else ""
        patterns = (f"{base}lib/ruby/vendor_ruby", f"{base}lib/ruby/site_ruby/*", f"{base}lib")
    folders: list[str] = []
    for pattern in patterns:
        folders.extend(host.glob(pattern) if _is_glob(pattern) else [pattern])
    if install.layout == "other" and not install.ruby:
        return []  # a wrapper: its folder says nothing about the library it ends up loading
    if install.layout == "other":
        # A RubyGems binstub loads the newest installed puppet gem.
        gems = [g for pattern in GEM_LIBDIRS for g in host.glob(pattern) if GEM_DIR_RE.search(g)]
        gems.sort(key=lambda g: _sort_key(GEM_DIR_RE.findall(g)[0]), reverse=True)
        folders.extend(gems)
    return folders


def _version_from_library(host: Host, library: str) -> tuple[str, str] | None:
    for name in VERSION_FILES:
        rel = f"{library}/{name}"
        text = host.read_text(rel, VERSION_FILE_LIMIT)
        if text is None:
            continue
        if name.endswith("VERSION"):
            value = text.strip().split("\n", 1)[0].strip()
            if VERSION_TEXT_RE.match(value):
                return value, host.display(rel)
            continue
        match = PUPPETVERSION_RE.search(text)
        if match and VERSION_TEXT_RE.match(match.group(1)):
            return match.group(1), host.display(rel)
    return None


def _read_version(host: Host, install: Install, timeout: float, commands: list[str]) -> None:
    for library in _library_dirs(host, install):
        found = _version_from_library(host, library)
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


def _version_key(version: str) -> Version | None:
    """A comparable version; vendor suffixes (3.7.2.acquia7) compare by their release part."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion:
        match = re.match(r"\d+(?:\.\d+)*", version)
        return Version(match.group(0)) if match else None


def _sort_key(version: str | None) -> Version:
    from packaging.version import Version

    return _version_key(version or "") or Version("0")


def _older(version: str, minimum: str) -> bool:
    have, want = _version_key(version), _version_key(minimum)
    return have is not None and want is not None and have < want


def _effective(installs: list[Install]) -> Install:
    """What `puppet` runs: the first on PATH; with none on PATH, the newest installed."""
    ranked = sorted(
        (i for i in installs if i.path_rank is not None), key=lambda i: i.path_rank or 0
    )
    if ranked:
        return ranked[0]
    known = [i for i in installs if i.version is not None]
    if known:
        return max(known, key=lambda i: _sort_key(i.version))
    return installs[0]


def _newest_meeting(installs: list[Install], effective: Install, minimum: str) -> Install | None:
    candidates = [
        i
        for i in installs
        if i is not effective and i.version is not None and not _older(i.version, minimum)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda i: _sort_key(i.version))


# ------------------------------------------------------------------ findings
def _not_installed(host: Host, ctx: CheckContext, packages: list[Any]) -> Finding:
    where = "no puppet on PATH, no /usr/bin/puppet, no /opt/puppetlabs/bin/puppet"
    if packages:
        names = ", ".join(f"{p.name} {p.version}" for p in packages)
        reinstall = " ".join(p.name for p in packages)
        command = (
            "dnf reinstall " if host.packages.manager == "rpm" else "apt-get install --reinstall "
        ) + reinstall
        noun = "package" if len(packages) == 1 else "packages"
        verb = "is" if len(packages) == 1 else "are"
        return Finding(
            "puppet.not-installed",
            Status.FAIL,
            f"{noun} {names} {verb} installed but no puppet executable exists ({where})",
            [command],
        )
    message = f"Puppet is not installed ({where}, no puppet, puppet-agent or puppet-common package)"
    if ctx.required:
        return Finding(
            "puppet.not-installed",
            Status.FAIL,
            message,
            _upgrade_path(
                host, str(ctx.options.get("min_version") or MODULE_TOOL_VERSION), "distribution"
            ),
        )
    return Finding("puppet.not-installed", Status.SKIP, message)


def _version_unknown(host: Host, install: Install) -> Finding:
    where = f"{host.display(install.path)} ({install.layout} build)"
    if not install.ruby:
        where = f"{host.display(install.path)} (first on PATH, not a Ruby puppet launcher)"
    reasons = []
    libraries = _library_dirs(host, install)[:4]
    if libraries:
        tried = ", ".join(host.display(f"{lib}/puppet/version.rb") for lib in libraries)
        reasons.append(f"no version in {tried}")
    if install.failure:
        reasons.append(install.failure)
    elif not host.is_live:
        reasons.append("under --root no command is run")
    if install.ruby:
        remediation = [
            f"reinstall the package that owns {host.display(install.path)}"
            + (f" (`apt-get install --reinstall {install.package}`)" if install.package else ""),
        ]
    else:
        remediation = [
            f"`puppet` runs {host.display(install.path)}: remove it from PATH or make it a "
            f"working Puppet"
        ]
    if not host.is_live:
        remediation.append("or run the check on the host itself")
    return Finding(
        "puppet.version-unknown",
        Status.ERROR,
        f"Puppet at {where}: its version could not be read ({'; '.join(reasons) or 'unknown'})",
        remediation,
    )


def _too_old(host: Host, install: Install, minimum: str, newer: Install | None) -> Finding:
    missing = (
        MODULE_TOOL_MISSING
        if _older(install.version or "", MODULE_TOOL_VERSION)
        else "features the deployment relies on"
    )
    first = " (first on PATH)" if install.path_rank is not None else ""
    message = (
        f"Puppet {install.version} ({host.display(install.path)}{first}, "
        f"{install.layout} build) is older than the minimum {minimum}: {missing}"
    )
    remediation: list[str] = []
    if newer is not None:
        remediation.append(_use_newer(host, install, newer))
    remediation.extend(_upgrade_path(host, minimum, install.layout))
    return Finding("puppet.too-old", Status.FAIL, message, remediation)


def _use_newer(host: Host, older: Install, newer: Install) -> str:
    step = (
        f"use the installed {host.display(newer.path)} (Puppet {newer.version}): remove "
        f"the older {host.display(older.path)}"
    )
    if older.package:
        step += f" (`apt-get remove {older.package}`)"
    return (
        step + f" or put {os.path.dirname(host.display(newer.path))} before "
        f"{os.path.dirname(host.display(older.path))} in PATH (e.g. in /etc/environment)"
    )


def _shadowed(host: Host, installs: list[Install]) -> Finding | None:
    ranked = sorted(
        (i for i in installs if i.path_rank is not None), key=lambda i: i.path_rank or 0
    )
    if not ranked or ranked[0].version is None:
        return None
    first = ranked[0]
    newer = [
        i
        for i in installs
        if i is not first and i.version is not None and _older(first.version or "", i.version)
    ]
    if not newer:
        return None
    best = max(newer, key=lambda i: _sort_key(i.version))
    return Finding(
        "puppet.shadowed",
        Status.WARN,
        f"{host.display(first.path)} (Puppet {first.version}) comes first on PATH and shadows "
        f"{host.display(best.path)} (Puppet {best.version})",
        [_use_newer(host, first, best)],
    )


def _upgrade_path(host: Host, minimum: str, layout: str) -> list[str]:
    """How to get a new enough Puppet on this OS: its own archive, else the vendor's packages."""
    osr = host.os_release or {}
    os_id = (osr.get("ID") or "").lower()
    codename = _codename(host, osr)
    like = (osr.get("ID_LIKE") or "").lower().split()
    major = (osr.get("VERSION_ID") or "").split(".")[0]
    name = osr.get("PRETTY_NAME") or (f"{os_id} {codename}".strip() or "this OS")
    steps: list[str] = []
    distro = DISTRO_PUPPET.get((os_id, codename))
    if distro is not None and layout != "vendor":
        package, version = distro
        if not _older(version, minimum):
            return [f"{name} ships Puppet {version}: apt-get update && apt-get install {package}"]
        steps.append(
            f"{name} ships only Puppet {version} (package {package}), older than "
            f"{minimum}: use Puppet's own packages"
        )
    # The release packages below carry the newest Puppet 7: enough for any minimum below 8.
    vendor_ok = _older(minimum, str(int(VENDOR_PUPPET_MAJOR) + 1))
    if os_id in ("debian", "ubuntu") or "debian" in like:
        if codename in VENDOR_APT_CODENAMES and vendor_ok:
            deb = f"puppet{VENDOR_PUPPET_MAJOR}-release-{codename}.deb"
            steps.append(
                f"wget https://apt.puppet.com/{deb} && dpkg -i {deb} && apt-get update "
                f"&& apt-get install puppet-agent  (Puppet {VENDOR_PUPPET_MAJOR}, "
                f"installed as {VENDOR_BIN_DIR}/puppet)"
            )
            return steps
        if codename == "precise":
            steps.append(
                f"Ubuntu 12.04 is end of life; Puppet's last repository for it (Puppet "
                f"3.x): wget {PRECISE_RELEASE_URL} && dpkg -i "
                f"puppetlabs-release-precise.deb && apt-get update && apt-get install "
                f"puppet; better, upgrade the OS"
            )
            return steps
    if (os_id in RHEL_LIKE or "rhel" in like) and major in VENDOR_YUM_MAJORS and vendor_ok:
        steps.append(
            f"rpm -Uvh https://yum.puppet.com/puppet{VENDOR_PUPPET_MAJOR}-release-el-"
            f"{major}.noarch.rpm && yum install puppet-agent"
        )
        return steps
    steps.append(
        f"install Puppet {minimum} or later: the distribution's package if new enough, "
        f"else Puppet's release package for {name} from apt.puppet.com or yum.puppet.com"
    )
    return steps


def _codename(host: Host, osr: dict[str, str]) -> str:
    """The release codename; Ubuntu 12.04's os-release has no VERSION_CODENAME."""
    codename = osr.get("VERSION_CODENAME") or osr.get("UBUNTU_CODENAME")
    if not codename:
        text = host.read_text(LSB_RELEASE, 64 * 1024) or ""
        match = re.search(r"^DISTRIB_CODENAME=[\"']?([A-Za-z]+)", text, re.M)
        codename = match.group(1) if match else None
    if not codename:
        # VERSION="7 (wheezy)" or VERSION="12.04.5 LTS, Precise Pangolin"
        match = re.search(r"\(([A-Za-z]+)\)|, ([A-Za-z]+) ", osr.get("VERSION") or "")
        codename = (match.group(1) or match.group(2)) if match else None
    return (codename or "").lower()


# ------------------------------------------------------------------ modules
def _default_modulepaths(installs: list[Install]) -> list[str]:
    layouts = {i.layout for i in installs} or {"distribution", "vendor"}
    paths: list[str] = []
    if layouts - {"vendor"}:
        paths.extend(DISTRO_MODULEPATHS)
    if "vendor" in layouts:
        paths.extend(VENDOR_MODULEPATHS)
    return paths


def _find_module(host: Host, wanted: str, folders: list[str]) -> dict[str, Any]:
    match = MODULE_NAME_RE.match(wanted)
    assert match is not None  # validated in _config_problems
    author, short = match.group(1), match.group(2)
    result: dict[str, Any] = {"name": wanted, "present": False, "path": None, "version": None}
    for folder in folders:
        module_dir = f"{folder}/{short}"
        if not host.is_dir(module_dir):
            continue
        # Puppet loads the first folder of that name on the modulepath, whoever wrote it.
        name, version = _module_metadata(host, module_dir)
        result.update(path=host.display(module_dir), metadata_name=name, version=version)
        if author and name and _forge_name(name).lower() != f"{author}-{short}".lower():
            result["found_instead"] = f"{name} {version or ''}".strip()
            return result
        result["present"] = True
        return result
    return result


def _module_metadata(host: Host, module_dir: str) -> tuple[str | None, str | None]:
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


def _forge_name(name: str) -> str:
    return name.replace("/", "-", 1)


# ------------------------------------------------------------------ helpers
def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _config_problems(min_version: str, modules: list[str], modulepath: list[str]) -> list[str]:
    problems = []
    if _version_key(min_version) is None:
        problems.append(f"min_version {min_version!r} is not a version")
    for name in modules:
        if not MODULE_NAME_RE.match(name):
            problems.append(
                f"modules: {name!r} is not a module name (author-name, e.g. trulabs-kamailio)"
            )
    for folder in modulepath:
        if not folder.strip().startswith("/") or ".." in folder.split("/"):
            problems.append(f"modulepath: {folder!r} is not an absolute folder")
    return problems
