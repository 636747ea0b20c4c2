"""The `puppet` check against the real Puppet 7.23 from Debian, on real layouts built in a private
mount namespace (tests/puppet_support.py): what `puppet config print modulepath`, `puppet module
list`, `puppet apply -e 'include X'` and `puppet --version` say is the truth each test compares
the check with. Each scenario runs once per module (starting Ruby costs 1-2 s a call), and the
tests that read the same state share it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hostdata import METADATA_TRULABS_KAMAILIO
from puppet_support import (
    CRON_PATH,
    LOGIN_PATH,
    Scenario,
    build_gem,
    config_print,
    module_list,
    puppet_apply,
    puppet_env,
    run_scenario,
)
from support.cli import IN_CI, PREFLIGHT, codes, finding
from support.components import require, require_command, require_root

pytestmark = pytest.mark.skipif(
    not IN_CI and (os.geteuid() != 0 or shutil.which("unshare") is None),
    reason="needs root and unshare for private mount namespaces",
)

METADATA_STDLIB = json.dumps(
    {
        "name": "puppetlabs-stdlib",
        "version": "8.5.0",
        "author": "puppetlabs",
        "summary": "Standard library of resources for Puppet modules.",
        "license": "Apache-2.0",
        "source": "https://github.com/puppetlabs/puppetlabs-stdlib",
        "dependencies": [],
    }
)


def require_debian_puppet() -> None:
    require_root()
    require_command("unshare")
    require(
        "Debian's puppet-agent package (/usr/bin/puppet, /usr/lib/ruby/vendor_ruby/puppet)",
        os.access("/usr/bin/puppet", os.X_OK)
        and os.path.isfile("/usr/lib/ruby/vendor_ruby/puppet/version.rb"),
    )


def preflight(work: Path, config: str = "", path: str = LOGIN_PATH) -> tuple[list[str], dict]:
    cfg = work / f"preflight-{abs(hash((config, path)))}.toml"
    cfg.write_text(config)
    argv = [*PREFLIGHT, "check", "puppet", "--format", "json", "--config", str(cfg)]
    return argv, {"PATH": path, "NO_COLOR": "1"}


def report(result: dict[str, Any]) -> dict[str, Any]:
    assert "Traceback" not in result["stderr"], result["stderr"]
    (check,) = json.loads(result["stdout"])["checks"]
    return check


def commands_in(step: str) -> list[str]:
    """The commands a remediation step spells out (in backticks, or the whole step)."""
    found = re.findall(r"`([^`]+)`", step)
    return found or [step]


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------ environments and modules
ENV_MODULES = ["puppetlabs-stdlib", "profile", "trulabs-kamailio", "puppetlabs-concat"]
ENV_CONFIG = f"[checks.puppet]\nmodules = {json.dumps(ENV_MODULES)}\n"
STAGING = "/etc/puppet/code/environments/staging"


def environments_layout(work: Path) -> Scenario:
    """puppet.conf with a basemodulepath and a non-default environment; the environment's
    environment.conf sets its own modulepath; an empty module folder shadows a complete one;
    a module only in production; the agent's environment has no folder."""
    etc = work / "etc-puppet"
    srv = work / "srv"
    write(
        etc / "puppet.conf",
        "# site settings\n[main]\n"
        "basemodulepath = /srv/puppet/shared:$codedir/modules:/usr/share/puppet/modules\n"
        "environment = staging\n\n[agent]\nenvironment = canary\n",
    )
    staging = etc / "code/environments/staging"
    write(staging / "environment.conf", "modulepath = site:modules:$basemodulepath\n")
    write(staging / "site/profile/manifests/init.pp", "class profile { }\n")
    (staging / "modules/concat").mkdir(parents=True)
    production = etc / "code/environments/production/modules/kamailio"
    write(production / "metadata.json", METADATA_TRULABS_KAMAILIO)
    write(production / "manifests/init.pp", "class kamailio { }\n")
    write(srv / "puppet/shared/stdlib/metadata.json", METADATA_STDLIB)
    write(srv / "puppet/shared/stdlib/manifests/init.pp", "class stdlib { }\n")
    write(srv / "puppet/shared/concat/manifests/init.pp", "class concat { }\n")
    return environments_scenario(work)


def environments_scenario(work: Path) -> Scenario:
    scenario = Scenario(work)
    scenario.bind(work / "etc-puppet", "/etc/puppet")
    scenario.bind(work / "srv", "/srv")
    return scenario


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_debian_puppet()
    work = tmp_path_factory.mktemp("environments")
    scenario = environments_layout(work)
    env = puppet_env(work)
    scenario.step(
        preflight=preflight(work, ENV_CONFIG),
        config_print=(["puppet", "config", "print", "modulepath"], env),
        agent_environment=(["puppet", "agent", "--configprint", "environment"], env),
        module_list=(["puppet", "module", "list", "--color", "false"], env),
        include_concat=(puppet_apply(work, "include concat", "concat"), env),
        include_others=(puppet_apply(work, "include stdlib\ninclude profile", "others"), env),
        include_kamailio=(puppet_apply(work, "include kamailio", "kamailio"), env),
        canary=(
            puppet_apply(work, "notice('agent environment')", "canary")
            + ["--environment", "canary"],
            env,
        ),
    )
    results = run_scenario(scenario)
    return {"work": work, "results": results, "check": report(results["preflight"])}


def test_modulepath_is_the_one_puppet_config_print_reports(environments):
    results, check = environments["results"], environments["check"]
    truth = config_print(results["config_print"]["stdout"])
    assert truth == [
        f"{STAGING}/site",
        f"{STAGING}/modules",
        "/srv/puppet/shared",
        "/etc/puppet/code/modules",
        "/usr/share/puppet/modules",
    ]
    assert check["details"]["modulepath"] == truth
    (apply, agent) = check["details"]["modulepaths"]
    assert apply["environment"] == "staging"
    assert apply["environment_source"] == "/etc/puppet/puppet.conf [main] environment"
    sources = [(p["path"], p["source"]) for p in apply["parts"]]
    env_conf = f"{STAGING}/environment.conf modulepath"
    base = "/etc/puppet/puppet.conf [main] basemodulepath"
    assert sources == [
        (f"{STAGING}/site", env_conf),
        (f"{STAGING}/modules", env_conf),
        ("/srv/puppet/shared", base),
        ("/etc/puppet/code/modules", base),
        ("/usr/share/puppet/modules", base),
    ]
    # The agent reads [agent] first: its environment is canary.
    assert results["agent_environment"]["stdout"].strip() == "canary"
    assert agent["environment"] == "canary" and agent["run_mode"] == "agent"


def test_module_folders_count_as_puppet_loads_them(environments):
    results, check = environments["results"], environments["check"]
    listed = module_list(results["module_list"]["stdout"])
    assert listed["concat"] == "???" and listed["stdlib"] == "v8.5.0"
    # Truth: what includes and what does not.
    assert results["include_others"]["rc"] == 0, results["include_others"]["stderr"]
    assert results["include_concat"]["rc"] != 0
    assert "Could not find class ::concat" in results["include_concat"]["stderr"]
    assert results["include_kamailio"]["rc"] != 0
    modules = {m["name"]: m for m in check["details"]["modules"] if "caller" not in m}
    assert modules["puppetlabs-stdlib"]["present"] is True
    assert modules["puppetlabs-stdlib"]["path"] == "/srv/puppet/shared/stdlib"
    assert modules["profile"]["present"] is True
    assert modules["puppetlabs-concat"]["present"] is False
    assert modules["trulabs-kamailio"]["present"] is False
    empty = finding(check, "puppet.module-empty")
    assert empty["status"] == "fail"
    assert empty["message"].startswith(f"module puppetlabs-concat: {STAGING}/modules/concat")
    assert "(it shadows /srv/puppet/shared/concat)" in empty["message"]
    missing = finding(check, "puppet.module-missing")
    # Only in production, and Puppet uses staging: missing, and installed into staging.
    assert missing["message"].startswith("module trulabs-kamailio is not in the modulepath")
    assert missing["remediation"] == [
        "puppet module install trulabs-kamailio --environment staging"
    ]
    assert check["status"] == "fail"


def test_an_environment_without_a_folder_stops_puppet(environments):
    results, check = environments["results"], environments["check"]
    assert results["canary"]["rc"] != 0
    assert "Could not find a directory environment named 'canary'" in results["canary"]["stderr"]
    missing = finding(check, "puppet.environment-missing")
    assert missing["message"].startswith(
        "environment canary (/etc/puppet/puppet.conf [agent] environment) has no folder in "
        "the environmentpath /etc/puppet/code/environments: puppet agent stops"
    )
    # No module verdicts for an environment Puppet cannot load.
    assert not [m for m in check["details"]["modules"] if m.get("environment") == "canary"]


def test_following_the_empty_module_remediation_fixes_the_include(environments):
    work, check = environments["work"], environments["check"]
    (step,) = finding(check, "puppet.module-empty")["remediation"]
    assert step == f"rmdir {STAGING}/modules/concat"
    scenario = environments_scenario(work)  # the same folders: the state persists in `work`
    env = puppet_env(work)
    scenario.step(fix=(["sh", "-c", step], env))
    scenario.step(
        include_concat=(puppet_apply(work, "include concat", "concat"), env),
        preflight=preflight(work, ENV_CONFIG),
    )
    results = run_scenario(scenario)
    assert results["fix"]["rc"] == 0, results["fix"]["stderr"]
    assert results["include_concat"]["rc"] == 0, results["include_concat"]["stderr"]
    after = report(results["preflight"])
    assert "puppet.module-empty" not in codes(after)
    concat = next(m for m in after["details"]["modules"] if m["name"] == "puppetlabs-concat")
    assert concat["present"] is True and concat["path"] == "/srv/puppet/shared/concat"


def test_modulepath_in_puppet_conf_stops_puppet_7(tmp_path):
    require_debian_puppet()
    etc = tmp_path / "etc-puppet"
    write(
        etc / "puppet.conf", "[main]\nmodulepath = /etc/puppet/modules:/usr/share/puppet/modules\n"
    )
    scenario = Scenario(tmp_path)
    scenario.bind(etc, "/etc/puppet")
    env = puppet_env(tmp_path)
    scenario.step(
        preflight=preflight(tmp_path, '[checks.puppet]\nmodules = ["puppetlabs-stdlib"]\n'),
        config_print=(["puppet", "config", "print", "modulepath"], env),
    )
    results = run_scenario(scenario)
    assert results["config_print"]["rc"] != 0
    assert "Cannot set modulepath settings in puppet.conf" in results["config_print"]["stderr"]
    check = report(results["preflight"])
    invalid = finding(check, "puppet.puppet-conf-invalid")
    assert invalid["status"] == "fail"
    assert "/etc/puppet/puppet.conf sets modulepath in [main]" in invalid["message"]
    assert "puppet.module-missing" not in codes(check)


# ------------------------------------------------------------------ interpreters
def test_missing_interpreter_is_a_failure_naming_the_package_that_restores_it(tmp_path):
    require_debian_puppet()
    owner = subprocess.run(
        ["dpkg", "-S", "/usr/bin/ruby3.1"], capture_output=True, text=True, timeout=60
    ).stdout.split(":")[0]
    scenario = Scenario(tmp_path)
    scenario.view("/usr/bin", drop=("ruby3.1",))
    env = puppet_env(tmp_path)
    scenario.step(
        preflight=preflight(tmp_path),
        version=(["sh", "-c", "puppet --version"], env),
    )
    results = run_scenario(scenario)
    # The kernel cannot start the script: the shell finds no runnable puppet at all.
    assert results["version"]["rc"] == 127
    assert "puppet: not found" in results["version"]["stderr"]
    check = report(results["preflight"])
    assert check["status"] == "fail"
    broken = finding(check, "puppet.cannot-run")
    assert broken["message"] == (
        "Puppet 7.23.0 at /usr/bin/puppet cannot start: its interpreter /usr/bin/ruby (the #! "
        "line) is missing (a link to ruby3.1, which does not exist)"
    )
    assert owner == "ruby3.1"
    assert broken["remediation"][0] == (
        "reinstall ruby3.1, which provides /usr/bin/ruby3.1: `apt-get install --reinstall ruby3.1`"
    )
    assert check["details"]["commands_run"] == []


AIO_VERSION = "7.28.0"


def broken_aio(work: Path) -> Path:
    """Puppet's all-in-one layout whose bin/ruby is gone (a half-removed puppet-agent)."""
    opt = work / "opt-puppetlabs"
    launcher = Path("/usr/bin/puppet").read_text()
    launcher = launcher.replace("#!/usr/bin/ruby", "#!/opt/puppetlabs/puppet/bin/ruby", 1)
    write(opt / "puppet/bin/puppet", launcher)
    (opt / "puppet/bin/puppet").chmod(0o755)
    (opt / "bin").mkdir()
    (opt / "bin/puppet").symlink_to("../puppet/bin/puppet")
    version_rb = Path("/usr/lib/ruby/vendor_ruby/puppet/version.rb").read_text()
    write(
        opt / "puppet/lib/ruby/vendor_ruby/puppet/version.rb",
        re.sub(r"PUPPETVERSION = '[^']+'", f"PUPPETVERSION = '{AIO_VERSION}'", version_rb),
    )
    write(opt / "puppet/VERSION", f"{AIO_VERSION}\n")
    return opt


def test_broken_all_in_one_next_to_working_debian_puppet(tmp_path):
    require_debian_puppet()
    opt = broken_aio(tmp_path)
    spool = tmp_path / "spool-cron"
    aio_first = f"/opt/puppetlabs/bin:{CRON_PATH}"
    write(
        spool / "crontabs/root",
        f"PATH={aio_first}\n*/30 * * * * puppet apply /etc/puppet/site.pp\n",
    )
    scenario = Scenario(tmp_path)
    scenario.view("/opt", add={"puppetlabs": str(opt)})
    scenario.view("/var/spool", add={"cron": str(spool)})
    env = puppet_env(tmp_path)
    scenario.step(
        preflight=preflight(tmp_path),
        aio=(["/opt/puppetlabs/bin/puppet", "--version"], env),
        as_cron=(["sh", "-c", "puppet --version"], puppet_env(tmp_path, aio_first)),
        debian=(["/usr/bin/puppet", "--version"], env),
    )
    results = run_scenario(scenario)
    assert results["aio"]["rc"] is None  # execve: No such file or directory
    assert "No such file or directory" in results["aio"]["stderr"]
    # cron's shell finds the all-in-one first, cannot exec it and goes on along PATH.
    assert results["as_cron"]["stdout"].strip() == "7.23.0"
    assert results["debian"]["stdout"].strip() == "7.23.0"
    check = report(results["preflight"])
    assert codes(check)[0] == "puppet.ok"
    cron = next(c for c in check["details"]["callers"] if c["caller"] == "root's crontab")
    assert cron["runs"] == "/usr/bin/puppet"
    assert cron["passed_over"] == ["/opt/puppetlabs/bin/puppet"]
    # Installed and unusable by its full path: a failure, with the fix.
    broken = finding(check, "puppet.cannot-run")
    assert broken["message"].startswith(
        f"Puppet {AIO_VERSION} at /opt/puppetlabs/bin/puppet cannot start: its interpreter "
        "/opt/puppetlabs/puppet/bin/ruby (the #! line) is missing"
    )
    steps = " ".join(broken["remediation"])
    assert "use the installed /usr/bin/puppet (Puppet 7.23.0)" in steps
    # The files under /opt belong to no package: `puppet-agent` here is Debian's own package,
    # the only working Puppet. No step may remove or reinstall it.
    assert "apt-get remove" not in steps and "--reinstall puppet-agent" not in steps
    assert "puppet.shadowed" not in codes(check)
    aio = next(i for i in check["details"]["installations"] if i["layout"] == "vendor")
    assert aio["works"] is False and aio["version"] == AIO_VERSION


# ------------------------------------------------------------------ a gem-installed Puppet
GEM_VERSION = "7.20.0"


@pytest.fixture(scope="module")
def gem_puppet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An older Puppet installed by RubyGems (`gem install`): its binstub in /usr/local/bin."""
    require_debian_puppet()
    require_command("gem")
    work = tmp_path_factory.mktemp("gem")
    gem = build_gem(Path("/usr/lib/ruby/vendor_ruby"), GEM_VERSION, work)
    scenario = gem_scenario(work)
    env = puppet_env(work)
    scenario.step(install=(["gem", "install", "--local", "--no-document", str(gem)], env))
    scenario.step(
        login=preflight(work),
        cron=preflight(work, path=CRON_PATH),
        login_version=(["sh", "-c", "puppet --version"], env),
        cron_version=(["sh", "-c", "puppet --version"], puppet_env(work, CRON_PATH)),
        stub=(["cat", "/usr/local/bin/puppet"], env),
    )
    results = run_scenario(scenario)
    assert results["install"]["rc"] == 0, results["install"]["stderr"]
    return {"work": work, "results": results}


def gem_scenario(work: Path) -> Scenario:
    gems = work / "var-lib-gems"
    bindir = work / "usr-local-bin"
    gems.mkdir(exist_ok=True)
    bindir.mkdir(exist_ok=True)
    scenario = Scenario(work)
    scenario.bind(gems, "/var/lib/gems")
    scenario.bind(bindir, "/usr/local/bin")
    return scenario


def test_gem_puppet_breaks_the_package_puppet_and_the_fix_is_gem_uninstall(gem_puppet):
    results = gem_puppet["results"]
    assert "This file was generated by RubyGems" in results["stub"]["stdout"]
    # Truth: a login shell runs the gem's Puppet; cron runs Debian's, which now fails: its
    # autoloader loads the gem's copies of its files.
    assert results["login_version"]["stdout"].strip() == GEM_VERSION
    assert results["cron_version"]["rc"] == 1
    assert "superclass mismatch" in results["cron_version"]["stderr"]
    check = report(results["login"])
    assert check["details"]["effective"] == "/usr/local/bin/puppet"
    assert check["details"]["version"] == GEM_VERSION
    gem = next(i for i in check["details"]["installations"] if i["kind"] == "gem")
    assert gem["interpreter"] == "/usr/bin/ruby3.1" and gem["works"] is True
    assert gem["library"] == f"/var/lib/gems/3.1.0/gems/puppet-{GEM_VERSION}/lib"
    broken = finding(check, "puppet.cannot-run")
    assert broken["message"].startswith(
        "Puppet 7.23.0 at /usr/bin/puppet (run by root's crontab) cannot start: its Ruby also "
        f"sees the puppet gem {GEM_VERSION} in /var/lib/gems/3.1.0/gems/puppet-{GEM_VERSION}"
    )
    assert broken["remediation"][0].startswith(
        f"remove the puppet gem (`gem uninstall puppet --version {GEM_VERSION} --executables`)"
    )
    # Nothing suggests removing Debian's package, which works again once the gem is gone.
    assert "apt-get remove" not in " ".join(broken["remediation"])
    runs = {c["caller"]: c["runs"] for c in check["details"]["callers"]}
    assert runs["root login shell"] == "/usr/local/bin/puppet"
    assert runs["puppet agent service and its exec resources"] == "/usr/local/bin/puppet"
    assert runs["root's crontab"] == "/usr/bin/puppet"


def test_under_crons_path_the_check_fails_instead_of_passing(gem_puppet):
    check = report(gem_puppet["results"]["cron"])
    assert check["details"]["effective"] == "/usr/bin/puppet"
    assert check["status"] == "fail"
    assert codes(check)[0] == "puppet.cannot-run"
    assert "gem uninstall puppet" in finding(check, "puppet.cannot-run")["remediation"][0]


def test_following_the_gem_remediation_leaves_the_package_puppet(gem_puppet):
    work = gem_puppet["work"]
    check = report(gem_puppet["results"]["login"])
    step = finding(check, "puppet.cannot-run")["remediation"][0]
    command = next(c for c in commands_in(step) if c.startswith("gem uninstall"))
    scenario = gem_scenario(work)
    env = puppet_env(work)
    scenario.step(fix=(["sh", "-c", command], env))
    scenario.step(
        version=(["sh", "-c", "puppet --version"], env),
        cron_version=(["sh", "-c", "puppet --version"], puppet_env(work, CRON_PATH)),
        preflight=preflight(work),
    )
    results = run_scenario(scenario)
    assert results["fix"]["rc"] == 0, results["fix"]["stderr"]
    assert results["version"]["stdout"].strip() == "7.23.0"
    assert results["cron_version"]["stdout"].strip() == "7.23.0"
    after = report(results["preflight"])
    assert codes(after) == ["puppet.ok"]
    assert after["details"]["effective"] == "/usr/bin/puppet"


# ------------------------------------------------------------------ min_version revisions
@pytest.mark.parametrize(("minimum", "meets"), [("7.23.0-1", True), ("7.23.0-2", False)])
def test_min_version_with_a_debian_revision_compares_as_dpkg_does(tmp_path, minimum, meets):
    require_debian_puppet()
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "puppet-agent"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    truth = subprocess.run(["dpkg", "--compare-versions", installed, "ge", minimum], timeout=60)
    assert (truth.returncode == 0) is meets
    from support.cli import run_preflight

    config = tmp_path / "preflight.toml"
    config.write_text(f'[checks.puppet]\nmin_version = "{minimum}"\n')
    run = run_preflight("check", "puppet", "--format", "json", "--config", str(config))
    (check,) = run.json()["checks"]
    assert codes(check)[0] == ("puppet.ok" if meets else "puppet.too-old"), check


def test_following_the_missing_environment_remediation_lets_puppet_start(environments):
    work, check = environments["work"], environments["check"]
    (create, _alternative) = finding(check, "puppet.environment-missing")["remediation"]
    command = create.split(" (", 1)[0]
    assert command == "mkdir -p /etc/puppet/code/environments/canary/modules"
    scenario = environments_scenario(work)
    env = puppet_env(work)
    scenario.step(fix=(["sh", "-c", command], env))
    scenario.step(
        canary=(
            puppet_apply(work, "notice('agent environment')", "canary-fixed")
            + ["--environment", "canary"],
            env,
        ),
        preflight=preflight(work, ENV_CONFIG),
    )
    results = run_scenario(scenario)
    assert results["fix"]["rc"] == 0, results["fix"]["stderr"]
    assert results["canary"]["rc"] == 0, results["canary"]["stderr"]
    after = report(results["preflight"])
    assert "puppet.environment-missing" not in codes(after)
    agent = after["details"]["modulepaths"][1]
    assert agent["environment_dir"] == "/etc/puppet/code/environments/canary"
