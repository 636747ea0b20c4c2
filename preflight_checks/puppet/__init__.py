"""The `puppet` check: is the Puppet that deployments run new enough, and are its modules there?

Deployments call `puppet module install` and `puppet apply`. Puppet below 2.7.14 has no `puppet
module` subcommand (Ubuntu 12.04 shipped 2.7.11), and a host often carries two Puppets: the
distribution's `/usr/bin/puppet` and the vendor's all-in-one `/opt/puppetlabs/bin/puppet`, where
whichever comes first on PATH wins. The check finds every installation, reads each version from the
Ruby library's own files (starting Ruby for `puppet --version` costs about 0.8 s), compares the one
that `puppet` runs with the minimum, and looks for the required modules in the modulepath.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from preflight.check import AppliesWhen, Check, CheckContext, Finding, FindingDoc, Option, Status
from preflight_checks.puppet.facts import (
    DISTRO_BIN,
    DISTRO_LIBDIRS,
    DISTRO_MODULEPATHS,
    ENVIRONMENT_FILE,
    GEM_LIBDIRS,
    LOCAL_BIN,
    MODULE_TOOL_VERSION,
    NO_EXECUTABLE,
    PACKAGE_NAMES,
    VENDOR_AGENT_VERSION,
    VENDOR_BIN,
    VENDOR_LIBDIRS,
    VENDOR_MODULEPATHS,
    VENDOR_PROFILE,
    VENDOR_RUBY_BIN,
    VERSION_FILES,
)

if TYPE_CHECKING:
    from preflight_checks.puppet.facts import Install
    from preflight_checks.puppet.modulepath import ModulePath


class PuppetCheck(Check):
    id = "puppet"
    title = "Puppet version and modules"
    description = (
        "Finds every Puppet installation (`puppet` on each caller's PATH, the distribution's "
        "/usr/bin/puppet, the vendor's all-in-one /opt/puppetlabs/bin/puppet, a RubyGems stub in "
        "/usr/local/bin, and the puppet, puppet-agent and puppet-common packages) and judges "
        "each without starting Ruby: the interpreter its #! line starts (or the all-in-one "
        "bin/ruby) must exist and be executable, the Ruby library holding the version file "
        "must be one that interpreter loads, and no puppet gem may sit beside a packaged Puppet "
        "on the system Ruby (Puppet's autoloader loads the gem's files first). The version comes "
        "from the library's VERSION, puppet/version.rb or puppet.rb; the Puppet that `puppet` "
        "runs is compared with `min_version` (a Debian/RPM revision such as 7.23.0-1 compares "
        "the owning package's version by dpkg's or rpm's rules). Which `puppet` runs is worked "
        "out for each caller as its shell would (a launcher whose interpreter is missing is "
        "passed over): root's crontab (its PATH= line, else /usr/bin:/bin), a root login shell "
        "(/etc/profile's root PATH, else /etc/environment's, plus /opt/puppetlabs/bin when "
        "/etc/profile.d/puppet-agent.sh exists) and the agent service with its exec resources "
        "(systemd's PATH); live, also the PATH preflight runs with. Each module in `modules` is "
        "looked up in the modulepath Puppet will use, read from puppet.conf ([user] for `puppet "
        "apply`, [agent] for the agent, then [main]: environment, environmentpath, "
        "basemodulepath, $confdir/$codedir) and the environment's environment.conf; a module is "
        "there when the first folder of its name holds metadata.json or manifests/."
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
        "puppet.cannot-run": FindingDoc(
            Status.FAIL,
            "An installed Puppet cannot start: its #! interpreter is missing or not executable, "
            "its Ruby does not load the library that holds Puppet, or a puppet gem on the same "
            "Ruby makes it load the gem's files ('superclass mismatch'). The message names the "
            "callers that run it by name.",
            "Reinstall the package that provides the interpreter (or Puppet's own package), or "
            "`gem uninstall puppet` for a conflicting gem; or use the working Puppet the "
            "remediation names. Advice never removes the only working Puppet, and never names a "
            "package that does not own the broken files.",
        ),
        "puppet.shadowed": FindingDoc(
            Status.WARN,
            "For the callers named (cron, a login shell, the agent service), the `puppet` first "
            "on PATH is older than another working Puppet, which they therefore never run.",
            "Remove the older installation with the tool that installed it (apt-get/yum remove, "
            "`gem uninstall puppet`), or put the newer one's folder first in those callers' PATH.",
        ),
        "puppet.module-missing": FindingDoc(
            Status.FAIL,
            "A module named in `modules` is not in the modulepath Puppet uses (or the first "
            "folder of that name holds another author's module).",
            "`puppet module install <author>-<name>` (with --environment for a non-production "
            "environment, --modulepath DIR for a configured path).",
        ),
        "puppet.module-empty": FindingDoc(
            Status.FAIL,
            "The first folder named after a required module holds neither metadata.json nor "
            "manifests/: `puppet module list` shows it as ??? and `include` fails, even when a "
            "complete copy sits further down the modulepath.",
            "Remove the empty folder (rmdir), or move a broken one aside, then install the "
            "module if no other copy remains.",
        ),
        "puppet.environment-missing": FindingDoc(
            Status.FAIL,
            "The environment puppet.conf selects (for `puppet apply` or the agent) has no folder "
            "in the environmentpath: Puppet stops with 'Could not find a directory environment'.",
            "Create the environment's folder, or set `environment` to one that exists.",
        ),
        "puppet.puppet-conf-invalid": FindingDoc(
            Status.FAIL,
            "puppet.conf stops Puppet from starting: it sets modulepath, manifest or "
            "config_version (Puppet 4 and later refuse them there), or has a line Puppet cannot "
            "parse.",
            "Move the setting to the environment's environment.conf, or fix the line.",
        ),
        "puppet.modulepath-unknown": FindingDoc(
            Status.ERROR,
            "A required module is not in the known part of the modulepath, and part of the "
            "modulepath uses a setting that cannot be known without starting Ruby ($vardir, a "
            "relative folder): the check does not guess.",
            "Ask Puppet (`puppet config print modulepath`), or set the modulepath in "
            "[checks.puppet].",
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
    applies = AppliesWhen(
        f"Puppet is not installed ({NO_EXECUTABLE}, no puppet, puppet-agent or puppet-common "
        "package)",
        packages=PACKAGE_NAMES,
        commands=("puppet",),
        files=(DISTRO_BIN, VENDOR_BIN, VENDOR_RUBY_BIN, LOCAL_BIN),
    )
    paths = (
        VENDOR_AGENT_VERSION,
        *(f"{lib}/{name}" for lib in VENDOR_LIBDIRS + DISTRO_LIBDIRS for name in VERSION_FILES),
        *(f"{lib}/{name}" for lib in GEM_LIBDIRS for name in VERSION_FILES),
        *(
            f"{mp}/*/{name}"
            for mp in DISTRO_MODULEPATHS + VENDOR_MODULEPATHS
            for name in ("metadata.json", "Modulefile")
        ),
        *(f"{mp}/*/manifests/init.pp" for mp in DISTRO_MODULEPATHS + VENDOR_MODULEPATHS),
        *(f"var/lib/dpkg/info/{name}.list" for name in PACKAGE_NAMES),
        "var/lib/dpkg/info/ruby*.list",
        VENDOR_PROFILE,
        ENVIRONMENT_FILE,
        # What the modulepath and the callers' PATHs are read from.
        "etc/puppet/puppet.conf",
        "etc/puppetlabs/puppet/puppet.conf",
        "etc/puppet/code/environments/*/environment.conf",
        "etc/puppetlabs/code/environments/*/environment.conf",
        "etc/puppet/environments/*/environment.conf",
        *(f"{lib}/puppet/util/run_mode.rb" for lib in VENDOR_LIBDIRS + DISTRO_LIBDIRS),
        *(f"{lib}/puppet/defaults.rb" for lib in VENDOR_LIBDIRS + DISTRO_LIBDIRS),
        "etc/profile",
        "var/spool/cron/crontabs/root",
        "var/spool/cron/root",
        # The interpreters launchers start (their presence and mode are judged).
        "usr/bin/ruby*",
        "usr/bin/env",
        "opt/puppetlabs/puppet/bin/ruby",
    )

    def not_applicable(self, ctx: CheckContext) -> Finding | None:
        # A wrong [checks.puppet] is reported (puppet.config-invalid, by run) whether or not
        # Puppet is installed.
        return None if _option_problems(ctx.options) else super().not_applicable(ctx)

    def absent_remediation(self, ctx: CheckContext) -> list[str]:
        """Required but not installed: how to install a new enough Puppet on this OS."""
        if not ctx.required:
            return []
        from preflight_checks.puppet.findings import install_steps

        return install_steps(ctx.host, str(ctx.options.get("min_version", MODULE_TOOL_VERSION)))

    def run(self, ctx: CheckContext) -> list[Finding]:
        # The helpers are imported here, not above: the engine imports this module to validate
        # [checks.puppet] even when the check does not run.
        from preflight.text import plausible_name, shell_arg
        from preflight_checks.puppet.facts import (
            assign_packages,
            below_minimum,
            callers,
            effective_install,
            find_installs,
            inspect_launcher,
            interpreter_owner,
            newest_meeting,
            puppet_search_path,
            read_version,
            resolve_callers,
        )
        from preflight_checks.puppet.findings import (
            cannot_run_finding,
            package_without_executable,
            shadowed_findings,
            too_old_finding,
            version_unknown_finding,
        )

        host = ctx.host
        min_version = str(ctx.options.get("min_version", MODULE_TOOL_VERSION))
        modules = [str(m) for m in ctx.options.get("modules") or []]
        modulepath_option = [str(p) for p in ctx.options.get("modulepath") or []]
        problems = _option_problems(ctx.options)
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

        search_path, path_source = puppet_search_path(host)
        ctx.details["path"] = search_path
        ctx.details["path_source"] = path_source
        found_callers = callers(host)
        firsts = [
            found[0]
            for caller in found_callers
            for found in [host.which_all("puppet", caller.path)]
            if found
        ]
        ignored: list[dict[str, str]] = []
        installs = find_installs(host, search_path, ignored, firsts)
        packages = host.packages.find(names=PACKAGE_NAMES)
        ctx.details["packages"] = [{"name": p.name, "version": p.version} for p in packages]
        assign_packages(host, installs, packages)
        commands: list[str] = []
        for install in installs:
            inspect_launcher(host, install, search_path)
            read_version(host, install, ctx.timeout, commands)
            if install.broken:
                interpreter_owner(host, install)
        resolve_callers(host, found_callers, installs)
        ctx.details["installations"] = [i.to_dict(host) for i in installs]
        ctx.details["callers"] = [c.to_dict(host) for c in found_callers]
        ctx.details["ignored"] = ignored
        ctx.details["commands_run"] = commands
        if any(i.layout == "vendor" for i in installs):
            ctx.details["agent_version"] = host.read_line(VENDOR_AGENT_VERSION)

        if packages and not installs:
            return [package_without_executable(host, packages)]
        if not installs:  # what `applies` found is no Puppet (a wrapper named puppet)
            return [
                ctx.absent(
                    "puppet.not-installed", self.applies.message, self.absent_remediation(ctx)
                )
            ]

        findings: list[Finding] = []
        effective = effective_install(installs)
        ctx.details["effective"] = host.display(effective.path)
        ctx.details["version"] = effective.version
        newer = newest_meeting(host, installs, effective, min_version)
        # By name when `puppet` finds it, else by its path (quoted; never an implausible one).
        puppet_cmd = "puppet"
        if effective.path_rank is None and plausible_name(host.display(effective.path)):
            puppet_cmd = shell_arg(host.display(effective.path))
        too_old = False
        if effective.broken:
            findings.append(cannot_run_finding(host, effective, installs, found_callers))
            summary = f"Puppet at {host.display(effective.path)} cannot start"
        elif effective.version is None:
            findings.append(version_unknown_finding(host, effective))
            summary = f"Puppet at {host.display(effective.path)}: version unknown" + (
                f" ({effective.failure})" if effective.failure else ""
            )
        elif below_minimum(host, effective, min_version):
            too_old = True
            findings.append(too_old_finding(host, effective, min_version, newer))
            summary = (
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
            summary = f"Puppet {effective.version} ({host.display(effective.path)})"

        for install in installs:
            # Installed but unable to start: whoever calls it (by name, or by its full path as
            # the all-in-one layout's documentation does) fails.
            if install is not effective and install.broken:
                findings.append(cannot_run_finding(host, install, installs, found_callers))
                summary += f"; {host.display(install.path)} cannot start"
        findings.extend(shadowed_findings(host, installs, found_callers, min_version))

        modulepaths = self._modulepaths(ctx, effective, modulepath_option)
        reported: set[str] = set()
        for modulepath in modulepaths:
            for code, message, remediation in modulepath.problems:
                if message not in reported:
                    reported.add(message)
                    findings.append(Finding(code, Status.FAIL, message, remediation))
        if modules:
            findings.extend(
                self._modules(ctx, modules, modulepaths, modulepath_option, puppet_cmd, too_old)
            )
            summary += _modules_phrase(ctx.details["modules"])
        # The first finding is the verdict on the Puppet that `puppet` runs: it states the summary.
        return [replace(findings[0], summary=summary), *findings[1:]]

    def _modulepaths(
        self, ctx: CheckContext, effective: Install, modulepath_option: list[str]
    ) -> list[ModulePath]:
        """The modulepath of `puppet apply` and, when it differs, of `puppet agent`."""
        from preflight_checks.puppet.modulepath import ModulePath, PathPart, resolve

        host = ctx.host
        if modulepath_option:
            configured = ModulePath("user", "", "", "", None, None)
            configured.parts = [
                PathPart(
                    host.display(folder),
                    "[checks.puppet] modulepath",
                    host.is_dir(folder.strip("/")),
                )
                for option in modulepath_option
                for folder in (host.glob(option.strip()) or [option.strip()])
            ]
            ctx.details["modulepath"] = [host.display(p.strip()) for p in modulepath_option]
            return [configured]
        major = None
        if effective.version and effective.version.split(".")[0].isdigit():
            major = int(effective.version.split(".")[0])
        resolved: list[ModulePath] = []
        for run_mode in ("user", "agent"):
            modulepath = resolve(
                host,
                run_mode=run_mode,
                library=effective.library,
                layout=effective.layout,
                major=major,
            )
            if resolved and (
                modulepath.folders() == resolved[0].folders() and not modulepath.problems
            ):
                continue
            resolved.append(modulepath)
        ctx.details["modulepath"] = resolved[0].printed().split(":") if resolved[0].parts else []
        ctx.details["modulepaths"] = [m.to_dict() for m in resolved]
        return resolved

    def _modules(
        self,
        ctx: CheckContext,
        modules: list[str],
        modulepaths: list[ModulePath],
        modulepath_option: list[str],
        puppet_cmd: str,
        too_old: bool,
    ) -> list[Finding]:
        from preflight.text import plausible_name, shell_arg
        from preflight_checks.puppet.facts import find_module, forge_name
        from preflight_checks.puppet.findings import MODULE_TOOL_MISSING

        host = ctx.host
        results = []
        findings = []
        # Puppet stops before loading any module where its environment or puppet.conf is broken.
        usable = [
            m
            for m in modulepaths
            if not any(
                code in ("puppet.environment-missing", "puppet.puppet-conf-invalid")
                for code, _, _ in m.problems
            )
        ]
        for wanted in modules:
            for modulepath in usable:
                folders = [p.path for p in modulepath.parts if p.path is not None]
                result = find_module(host, wanted, folders)
                if modulepath is not modulepaths[0]:
                    result["caller"] = modulepath.caller
                    result["environment"] = modulepath.environment
                results.append(result)
                if result["present"]:
                    continue
                for_whom = ""
                if len(modulepaths) > 1 or modulepath.environment not in ("", "production"):
                    for_whom = f" of {modulepath.caller} (environment {modulepath.environment})"
                where = ":".join(folders) or "no folder"
                unknown = [p.unknown for p in modulepath.parts if p.unknown]
                install = f"{puppet_cmd} module install {shell_arg(forge_name(wanted))}"
                if modulepath_option and folders and plausible_name(folders[0]):
                    install += f" --modulepath {shell_arg(folders[0])}"
                elif modulepath.environment not in ("", "production") and plausible_name(
                    modulepath.environment
                ):
                    install += f" --environment {shell_arg(modulepath.environment)}"
                remediation = [install]
                if result.get("empty"):
                    path = str(result["path"])
                    contents = result.get("contents") or []
                    message = (
                        f"module {wanted}: {path} holds no metadata.json and no manifests/ "
                        f"({'empty' if not contents else 'only ' + ', '.join(contents)}); it is "
                        f"the first {path.rsplit('/', 1)[-1]} on the modulepath{for_whom}, so "
                        f"`puppet module list` shows it as ??? and `include` fails"
                    )
                    if result.get("shadows"):
                        message += f" (it shadows {result['shadows']})"
                    # Out of the way (a name with a dot is no module name to Puppet); then the
                    # folder it shadowed is used, or the module is installed.
                    if not plausible_name(path):
                        clear = ""
                    elif not contents:
                        clear = f"rmdir {shell_arg(path)}"
                    else:
                        clear = f"mv {shell_arg(path)} {shell_arg(path + '.broken')}"
                    if not clear:
                        remediation = [f"move {path} out of the modulepath, then: {install}"]
                    elif result.get("shadows"):
                        remediation = [clear]
                    else:
                        remediation = [f"{clear} && {install}"]
                    findings.append(
                        Finding("puppet.module-empty", Status.FAIL, message, remediation)
                    )
                    continue
                if unknown:
                    findings.append(
                        Finding(
                            "puppet.modulepath-unknown",
                            Status.ERROR,
                            f"module {wanted} is not in the known part of the modulepath"
                            f"{for_whom} ({where}); unknown without starting Ruby: "
                            + "; ".join(str(u) for u in unknown),
                            [
                                f"ask Puppet: `puppet config print modulepath`; {install} "
                                "if it is missing"
                            ],
                        )
                    )
                    continue
                message = f"module {wanted} is not in the modulepath{for_whom} ({where})"
                if result.get("found_instead"):
                    message = (
                        f"module {wanted} is missing: {result['path']} holds "
                        f"{result['found_instead']}, not {wanted} ({where})"
                    )
                if too_old:
                    remediation.insert(
                        0, f"first upgrade Puppet (see puppet.too-old): {MODULE_TOOL_MISSING}"
                    )
                findings.append(Finding("puppet.module-missing", Status.FAIL, message, remediation))
        ctx.details["modules"] = results
        return findings


def _modules_phrase(results: list[dict[str, Any]]) -> str:
    """The summary's "; modules: NAME VERSION, ..." for the required modules that are there."""
    present = [r for r in results if r["present"] and "caller" not in r]
    if not present:
        return ""
    return "; modules: " + ", ".join(
        f"{r['name']} {r['version']}" if r.get("version") else str(r["name"]) for r in present
    )


def _option_problems(options: dict[str, Any]) -> list[str]:
    """What is wrong in [checks.puppet] (min_version, modules, modulepath)."""
    return _config_problems(
        str(options.get("min_version", MODULE_TOOL_VERSION)),
        [str(m) for m in options.get("modules") or []],
        [str(p) for p in options.get("modulepath") or []],
    )


def _config_problems(min_version: str, modules: list[str], modulepath: list[str]) -> list[str]:
    from preflight_checks.puppet.facts import (
        MIN_VERSION_RE,
        MODULE_NAME_RE,
        upstream_part,
        version_key,
    )

    problems = []
    if not MIN_VERSION_RE.fullmatch(min_version) or version_key(upstream_part(min_version)) is None:
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
