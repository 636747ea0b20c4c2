"""What the `puppet` check tells the user: its findings, and how to get a new enough Puppet.

The upgrade path depends on the OS: its own archive where that carries a new enough Puppet, else
Puppet's release packages (apt.puppet.com, yum.puppet.com) where they exist for this release.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from preflight.check import Finding, Status
from preflight.text import plausible_name, shell_arg, shell_join
from preflight_checks.puppet.facts import (
    GEM_DIR_RE,
    MODULE_TOOL_VERSION,
    NO_EXECUTABLE,
    VENDOR_BIN_DIR,
    Install,
    newest,
    older,
)

if TYPE_CHECKING:
    from preflight.host import Host
    from preflight_checks.puppet.facts import Caller


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


def package_without_executable(host: Host, packages: list[Any]) -> Finding:
    """A Puppet package is installed but no puppet executable exists: always a failure."""
    names = ", ".join(f"{p.name} {p.version}" for p in packages)
    names_ok = [p.name for p in packages if plausible_name(p.name)]
    reinstall = shell_join(names_ok)
    command = (
        "dnf reinstall " if host.packages.manager == "rpm" else "apt-get install --reinstall "
    ) + reinstall
    noun = "package" if len(packages) == 1 else "packages"
    verb = "is" if len(packages) == 1 else "are"
    return Finding(
        "puppet.not-installed",
        Status.FAIL,
        f"{noun} {names} {verb} installed but no puppet executable exists ({NO_EXECUTABLE})",
        [command] if names_ok else [],
    )


def install_steps(host: Host, min_version: str) -> list[str]:
    """How to install a new enough Puppet on this OS (the required not-installed finding)."""
    return _upgrade_path(host, min_version, "distribution")


def version_unknown_finding(host: Host, install: Install) -> Finding:
    where = f"{host.display(install.path)} ({install.layout} build)"
    if not install.ruby:
        where = f"{host.display(install.path)} (first on PATH, not a Ruby puppet launcher)"
    reasons = []
    if install.libraries:
        tried = ", ".join(host.display(f"{lib}/puppet/version.rb") for lib in install.libraries[:4])
        reasons.append(f"no version in {tried}")
    elif install.ruby:
        reasons.append("no Puppet library folder exists")
    if install.failure:
        reasons.append(install.failure)
    elif not host.is_live:
        reasons.append("under --root no command is run")
    if install.ruby:
        remediation = [
            f"reinstall the package that owns {host.display(install.path)}"
            + (
                f" (`{_reinstall(host, install.package)}`)"
                if install.package and plausible_name(install.package)
                else ""
            ),
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


def too_old_finding(host: Host, install: Install, minimum: str, newer: Install | None) -> Finding:
    missing = (
        MODULE_TOOL_MISSING
        if older(install.version or "", MODULE_TOOL_VERSION)
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


def _reinstall(host: Host, package: str) -> str:
    tool = "dnf reinstall" if host.packages.manager == "rpm" else "apt-get install --reinstall"
    return f"{tool} {shell_arg(package)}"


def removal_command(host: Host, install: Install) -> str | None:
    """The command that removes one installation with the tool that installed it; None when
    nothing safe can be suggested (no package owns its files, an implausible name). Never a
    package name guessed from the layout: on Debian 12 `puppet-agent` is the distribution's own
    package, and removing it for an all-in-one install would remove the Puppet that works."""
    if install.gem_stub:
        gem = "gem"
        if install.interpreter and install.interpreter.startswith("/"):
            # The gem command of the same Ruby (the all-in-one Ruby has its own).
            sibling = f"{os.path.dirname(install.interpreter)}/gem"
            if sibling != "/usr/bin/gem" and host.is_file(sibling.lstrip("/")):
                gem = sibling if plausible_name(sibling) else "gem"
        version = install.version
        if version and plausible_name(version):
            return f"{shell_arg(gem)} uninstall puppet --version {shell_arg(version)} --executables"
        return f"{shell_arg(gem)} uninstall puppet --executables"
    if install.package is None or not plausible_name(install.package):
        return None
    tool = "yum remove" if host.packages.manager == "rpm" else "apt-get remove"
    return f"{tool} {shell_arg(install.package)}"


def _callers_text(found: list[Caller]) -> str:
    return ", ".join(c.name for c in found)


def _use_newer(
    host: Host,
    old: Install,
    newer: Install,
    affected: list[Caller] | None = None,
    old_word: str = "older",
) -> str:
    step = (
        f"use the installed {host.display(newer.path)} (Puppet {newer.version}): remove "
        f"the {old_word} {host.display(old.path)}"
    )
    command = removal_command(host, old)
    if command:
        step += f" (`{command}`)"
    if affected == []:
        # Nobody finds it by name: PATH order changes nothing; whoever calls it by its path
        # should call the working one.
        return step + f", or call {host.display(newer.path)} where it is called by path"
    where = "in PATH (e.g. in /etc/environment)"
    if affected:
        where = f"in the PATH of {_callers_text(affected)}"
    return (
        step + f" or put {os.path.dirname(host.display(newer.path))} before "
        f"{os.path.dirname(host.display(old.path))} {where}"
    )


def shadowed_findings(
    host: Host, installs: list[Install], found: list[Caller], minimum: str
) -> list[Finding]:
    """One finding per working installation that some caller runs although a newer working one
    is installed. Broken installations never count as the better one: advice never removes the
    only Puppet that works."""
    findings = []
    working = [i for i in installs if i.works and i.version is not None]
    for install in working:
        affected = [c for c in found if c.runs is install]
        if not affected:
            continue
        best = newest([i for i in working if older(install.version or "", i.version or "")])
        if best is None:
            continue
        findings.append(
            Finding(
                "puppet.shadowed",
                Status.WARN,
                f"{host.display(install.path)} (Puppet {install.version}) comes first on PATH "
                f"for {_callers_text(affected)} and shadows {host.display(best.path)} "
                f"(Puppet {best.version})",
                [_use_newer(host, install, best, affected)],
            )
        )
    return findings


def cannot_run_finding(
    host: Host, install: Install, installs: list[Install], found: list[Caller]
) -> Finding:
    """A Puppet that cannot start: how to repair it, and the working one to use instead."""
    affected = [c for c in found if c.runs is install and c.runs_broken]
    who = f" (run by {_callers_text(affected)})" if affected else ""
    version = f"Puppet {install.version} " if install.version else "Puppet "
    message = (
        f"{version}at {host.display(install.path)}{who} cannot start: "
        f"{install.broken or install.failure}"
    )
    steps: list[str] = []
    path = host.display(install.path)
    if install.conflicting_gem:
        gem_version = GEM_DIR_RE.findall(install.conflicting_gem + "/lib")
        stub = next(
            (
                i
                for i in installs
                if i.gem_stub and i.library and i.library.startswith(install.conflicting_gem)
            ),
            None,
        )
        command = removal_command(host, stub) if stub is not None else None
        if command is None and gem_version and plausible_name(gem_version[0]):
            command = f"gem uninstall puppet --version {shell_arg(gem_version[0])} --executables"
        steps.append(
            f"remove the puppet gem (`{command}`): {path} then loads only its own library"
            if command
            else f"remove the puppet gem in {host.display(install.conflicting_gem)}"
        )
    elif install.gem_stub:
        steps.append(
            f"the RubyGems stub {path} outlived its Ruby: remove it (`rm {shell_arg(path)}`), "
            "or install the gem again with a working Ruby"
            if plausible_name(path)
            else f"remove the stale RubyGems stub {path}"
        )
    elif install.interpreter_package and not plausible_name(install.interpreter_package):
        # A package name no package manager would give: name the file, suggest no command.
        steps.append(
            f"reinstall the package that provides {install.interpreter_target} (its name in "
            "the package database is not a plausible package name: check it first)"
        )
    elif install.interpreter_package:
        steps.append(
            f"reinstall {install.interpreter_package}, which provides "
            f"{install.interpreter_target or install.interpreter}: "
            f"`{_reinstall(host, install.interpreter_package)}`"
        )
    elif install.package and plausible_name(install.package):
        steps.append(f"reinstall {install.package}: `{_reinstall(host, install.package)}`")
    elif install.layout == "vendor":
        steps.append(
            "the files under /opt/puppetlabs belong to no installed package: install "
            "Puppet's puppet-agent again from its repository (apt.puppet.com / "
            "yum.puppet.com), or remove /opt/puppetlabs"
        )
    elif install.interpreter and plausible_name(install.interpreter):
        steps.append(
            f"reinstall the package that provides {install.interpreter} "
            f"(`dpkg -S {shell_arg(install.interpreter)}` names it)"
        )
    other = newest([i for i in installs if i is not install and i.works and i.version])
    if other is not None and not install.conflicting_gem:
        # Removing the broken one is safe: another Puppet works.
        steps.append(_use_newer(host, install, other, affected, old_word="broken"))
    return Finding("puppet.cannot-run", Status.FAIL, message, steps)


def _upgrade_path(host: Host, minimum: str, layout: str) -> list[str]:
    """How to get a new enough Puppet on this OS: its own archive, else the vendor's packages."""
    osr = host.os_release or {}
    os_id = (osr.get("ID") or "").lower()
    codename = (host.os_codename or "").lower()
    like = (osr.get("ID_LIKE") or "").lower().split()
    major = (osr.get("VERSION_ID") or "").split(".")[0]
    name = osr.get("PRETTY_NAME") or (f"{os_id} {codename}".strip() or "this OS")
    steps: list[str] = []
    distro = DISTRO_PUPPET.get((os_id, codename))
    if distro is not None and layout != "vendor":
        package, version = distro
        if not older(version, minimum):
            return [f"{name} ships Puppet {version}: apt-get update && apt-get install {package}"]
        steps.append(
            f"{name} ships only Puppet {version} (package {package}), older than "
            f"{minimum}: use Puppet's own packages"
        )
    # The release packages below carry the newest Puppet 7: enough for any minimum below 8.
    vendor_ok = older(minimum, str(int(VENDOR_PUPPET_MAJOR) + 1))
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
