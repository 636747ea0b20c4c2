"""The `puppet` check: live against Debian's real Puppet 7.23, and on host snapshots built from
real files of other releases (Ubuntu 12.04 with Puppet 2.7.13, 14.04 with 3.4.3, the vendor's
all-in-one layout, a real Forge module's metadata.json)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hostdata import DEBIAN11_OS_RELEASE as OS_RELEASE_BULLSEYE
from hostdata import DEBIAN12_OS_RELEASE as OS_RELEASE_BOOKWORM
from hostdata import METADATA_TRULABS_KAMAILIO, MODULEFILE_TRULABS_KAMAILIO
from hostdata import UBUNTU1204_OS_RELEASE as OS_RELEASE_PRECISE
from hostdata import UBUNTU1404_OS_RELEASE as OS_RELEASE_TRUSTY
from hostdata import UBUNTU2204_4_OS_RELEASE as OS_RELEASE_JAMMY
from support.audit import run_audited
from support.cli import Run, codes, finding, report_of, run_preflight
from support.components import require
from support.snapshot import Snapshot

# ------------------------------------------------------------------ real file contents

# /usr/bin/puppet of Debian 12's puppet-agent, verbatim.
LAUNCHER_DEBIAN = """#!/usr/bin/ruby

begin
  require 'puppet/util/command_line'
  Puppet::Util::CommandLine.new.execute
rescue LoadError => e
  $stderr.puts e.message
  exit(1)
end
"""
LAUNCHER_2_7 = """#!/usr/bin/env ruby

require 'puppet/util/command_line'
Puppet::Util::CommandLine.new.execute
"""
LAUNCHER_VENDOR = LAUNCHER_DEBIAN.replace("#!/usr/bin/ruby", "#!/opt/puppetlabs/puppet/bin/ruby")


def version_rb(version: str) -> str:
    """lib/puppet/version.rb as Puppet 4 to 7 ship it (Debian 12's, doc comments shortened)."""
    return f"""# The version method and constant are isolated in puppet/version.rb so that a
# simple `require 'puppet/version'` allows a rubygems gemspec or bundler
# Gemfile to get the Puppet version of the gem install.
#
# The version can be set programmatically because we want to allow the
# Raketasks and such to set the version based on the output of `git describe`

module Puppet
  PUPPETVERSION = '{version}'

  # @return [String] containing the puppet version, e.g. "3.0.1"
  def self.version
    version_file = File.join(File.dirname(__FILE__), 'VERSION')
    return @puppet_version if @puppet_version
    @puppet_version = read_version_file(version_file) || PUPPETVERSION
  end
end
"""


# lib/puppet/version.rb of Puppet 3.x (the 3.4-3.8 file, doc comments shortened).
VERSION_RB_3_4_3 = """# The version method and constant are isolated in puppet/version.rb so that a
# simple `require 'puppet/version'` allows a rubygems gemspec or bundler
# Gemfile to get the Puppet version of the gem install.
#
# The version is programatically settable because we want to allow the
# Raketasks and such to set the version based on the output of `git describe`


module Puppet
  PUPPETVERSION = '3.4.3'

  def self.version
    version_file = File.join(File.dirname(__FILE__), 'VERSION')
    return @puppet_version if @puppet_version
    if version = read_version_file(version_file)
      @puppet_version = version
    end
    @puppet_version ||= PUPPETVERSION
  end
end
"""
# lib/puppet.rb of Puppet 2.7 before version.rb existed (2.7.19): the constant lives here.
PUPPET_RB_2_7_13 = """# Try to load rubygems.  Hey rubygems, I hate you.
begin
  require 'rubygems'
rescue LoadError
end

# see the bottom of the file for further inclusions
require 'singleton'
require 'facter'
require 'puppet/error'
require 'puppet/util'
require 'puppet/util/autoload'
require 'puppet/util/settings'
require 'puppet/util/feature'
require 'puppet/util/suidmanager'
require 'puppet/util/run_mode'

#------------------------------------------------------------
# the top-level module
#
# all this really does is dictate how the whole system behaves, through
# preferences for things like debugging
#
# it's also a place to find top-level commands like 'debug'

module Puppet
  PUPPETVERSION = '2.7.13'

  def Puppet.version
    PUPPETVERSION
  end

  class << self
    include Puppet::Util
    attr_reader :features
    attr_writer :name
  end
end
"""
# The Puppet Labs all-in-one package's profile script (/etc/profile.d/puppet-agent.sh), verbatim.
PROFILE_PUPPET_AGENT = """# Add /opt/puppetlabs/bin to the path for sh compatible users

if [ -z "${PATH-}" ] ; then
  export PATH=/opt/puppetlabs/bin
elif ! echo "${PATH}" | grep -q /opt/puppetlabs/bin ; then
  export PATH="${PATH}:/opt/puppetlabs/bin"
fi

if ! echo "${MANPATH-}" | grep -q /opt/puppetlabs/puppet/share/man ; then
  export MANPATH="${MANPATH-}:/opt/puppetlabs/puppet/share/man"
fi
"""


def dpkg_stanza(
    package: str,
    version: str,
    section: str = "admin",
    source: str | None = None,
    depends: str = "ruby",
) -> str:
    """One installed package as dpkg's status file records it."""
    lines = [
        f"Package: {package}",
        "Status: install ok installed",
        "Priority: optional",
        f"Section: {section}",
        "Installed-Size: 6238",
        "Maintainer: Puppet Package Maintainers <pkg-puppet-devel@alioth-lists.debian.net>",
        "Architecture: all",
    ]
    if source:
        lines.append(f"Source: {source}")
    lines += [
        f"Version: {version}",
        f"Depends: {depends}",
        "Description: configuration management system, agent",
        "Homepage: https://github.com/puppetlabs/puppet",
    ]
    return "\n".join(lines) + "\n\n"


# ------------------------------------------------------------------ snapshot layouts
# A Ruby interpreter as a snapshot holds it: an ELF executable (this VM's own /usr/bin/env, a
# real binary of the right kind; its contents are never run, only its presence and mode matter).
ELF_BINARY = Path("/usr/bin/env").read_bytes()


def ruby(snap: Snapshot, path: str, link: str | None = None) -> None:
    """An interpreter at `path`, and `link` (e.g. usr/bin/ruby) pointing at it."""
    snap.write(path, ELF_BINARY, mode=0o755)
    if link:
        snap.symlink(link, os.path.basename(path))


def debian12(snap: Snapshot, version: str = "7.23.0") -> None:
    """Debian 12's own Puppet: /usr/bin/puppet from puppet-agent, library in vendor_ruby."""
    snap.write("etc/os-release", OS_RELEASE_BOOKWORM)
    snap.write("usr/bin/puppet", LAUNCHER_DEBIAN, mode=0o755)
    ruby(snap, "usr/bin/ruby3.1", "usr/bin/ruby")
    snap.write("usr/lib/ruby/vendor_ruby/puppet/version.rb", version_rb(version))
    snap.write(
        "var/lib/dpkg/status",
        dpkg_stanza("puppet", f"{version}-1+deb12u1", "oldlibs", "puppet-agent", "puppet-agent")
        + dpkg_stanza("puppet-agent", f"{version}-1+deb12u1"),
    )
    snap.write(
        "var/lib/dpkg/info/puppet-agent.list",
        "/.\n/usr\n/usr/bin\n/usr/bin/puppet\n/usr/lib/ruby/vendor_ruby/puppet/version.rb\n",
    )
    snap.mkdir("etc/puppet/code")


def precise_2_7_13(snap: Snapshot) -> None:
    """Ubuntu 12.04 with Puppet Labs' puppet-common 2.7.13: the library in /usr/lib/ruby/1.8."""
    snap.write("etc/os-release", OS_RELEASE_PRECISE)
    snap.write(
        "etc/lsb-release",
        "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=12.04\n"
        'DISTRIB_CODENAME=precise\nDISTRIB_DESCRIPTION="Ubuntu 12.04.5 LTS"\n',
    )
    snap.write("usr/bin/puppet", LAUNCHER_2_7, mode=0o755)
    snap.write("usr/bin/env", ELF_BINARY, mode=0o755)
    ruby(snap, "usr/bin/ruby1.8", "usr/bin/ruby")
    snap.write("usr/lib/ruby/1.8/puppet.rb", PUPPET_RB_2_7_13)
    snap.mkdir("usr/lib/ruby/1.8/puppet/util")
    snap.write(
        "var/lib/dpkg/status",
        dpkg_stanza(
            "puppet-common",
            "2.7.13-1puppetlabs1",
            "admin",
            "puppet",
            "ruby1.8, libopenssl-ruby1.8, facter, lsb-base",
        )
        + dpkg_stanza(
            "puppet",
            "2.7.13-1puppetlabs1",
            "admin",
            None,
            "puppet-common (= 2.7.13-1puppetlabs1), ruby1.8",
        ),
    )
    snap.write(
        "var/lib/dpkg/info/puppet-common.list",
        "/.\n/usr\n/usr/bin\n/usr/bin/puppet\n/usr/lib/ruby/1.8/puppet.rb\n",
    )
    snap.mkdir("etc/puppet/modules")


def vendor_aio(snap: Snapshot, puppet: str, agent: str, profile: bool = True) -> None:
    """Puppet's all-in-one puppet-agent: /opt/puppetlabs/bin/puppet -> ../puppet/bin/puppet."""
    snap.write("opt/puppetlabs/puppet/bin/puppet", LAUNCHER_VENDOR, mode=0o755)
    ruby(snap, "opt/puppetlabs/puppet/bin/ruby")
    snap.symlink("opt/puppetlabs/bin/puppet", "../puppet/bin/puppet")
    snap.write("opt/puppetlabs/puppet/lib/ruby/vendor_ruby/puppet/version.rb", version_rb(puppet))
    snap.write("opt/puppetlabs/puppet/VERSION", agent + "\n")
    snap.mkdir("etc/puppetlabs/code/environments/production/modules")
    if profile:
        snap.write("etc/profile.d/puppet-agent.sh", PROFILE_PUPPET_AGENT)


# ------------------------------------------------------------------ helpers
def run_check(
    root: Snapshot | str,
    tmp_path: Path,
    config: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Run, dict[str, Any]]:
    args = ["check", "puppet", "--format", "json", "--root", str(root)]
    if config is not None:
        path = tmp_path / "preflight.toml"
        path.write_text(config)
        args += ["--config", str(path)]
    result = run_preflight(*args, env=env)
    (check,) = report_of(result)["checks"]
    return result, check


# ------------------------------------------------------------------ live
def live_puppet_version() -> str | None:
    """Upstream version of the installed puppet-agent package, asked of dpkg (not of Puppet)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "puppet-agent"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except OSError:
        return None
    return out.split("-", 1)[0] or None


def tripwire(folder: Path, marker: Path, names: dict[str, str]) -> None:
    """Executables that record being run in `marker`, then do what the real one would."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, real in names.items():
        script = folder / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> {marker}\nexec {real} "$@"\n')
        script.chmod(0o755)


def audited_puppet_check(tmp_path: Path, path_env: str) -> tuple[Run, list[list[str]]]:
    """The real CLI with PATH set, and the command line of every process it started."""
    audit = run_audited(
        "check", "puppet", "--format", "json", log=tmp_path / "audit.log", env={"PATH": path_env}
    )
    return audit.run, [argv for _event, argv in audit.starts]


def test_live_debian_puppet_version_is_read_from_the_file_without_starting_ruby(tmp_path):
    expected = live_puppet_version()
    require(
        "Debian's puppet-agent package",
        expected is not None
        and os.path.isfile("/usr/lib/ruby/vendor_ruby/puppet/version.rb")
        and os.access("/usr/bin/puppet", os.X_OK),
    )
    marker = tmp_path / "tripwire.log"
    # First in PATH: a `ruby`, which any `#!/usr/bin/env ruby` launcher would start. Last in PATH:
    # a `puppet` wrapper script, which a check that ran every puppet it found would start. Not
    # first: a `puppet` first on PATH is what `puppet` runs, and is asked when no file answers.
    # /usr/bin/puppet starts /usr/bin/ruby directly, which no PATH tripwire sees: the audit hook
    # records every process the preflight process starts, so `/usr/bin/puppet --version` counts.
    tripwire(tmp_path / "first", marker, {"ruby": "/usr/bin/ruby"})
    tripwire(tmp_path / "last", marker, {"puppet": "/usr/bin/puppet"})
    path_env = f"{tmp_path / 'first'}:/usr/sbin:/usr/bin:/sbin:/bin:{tmp_path / 'last'}"
    proc, spawned = audited_puppet_check(tmp_path, path_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (check,) = report_of(proc)["checks"]
    assert check["status"] == "pass" and codes(check) == ["puppet.ok"]
    details = check["details"]
    assert details["version"] == expected
    assert details["effective"] == "/usr/bin/puppet"
    install = details["installations"][0]
    assert install["version_source"] == "/usr/lib/ruby/vendor_ruby/puppet/version.rb"
    assert install["layout"] == "distribution" and install["package"] == "puppet-agent"
    assert f"Puppet {expected} (/usr/bin/puppet" in finding(check, "puppet.ok")["message"]
    # The wrapper is not taken for a Puppet, and nothing was started: no Ruby, no process at all.
    assert details["ignored"] == [
        {
            "path": str(tmp_path / "last" / "puppet"),
            "reason": "not a Ruby puppet launcher, not first on PATH",
        }
    ]
    assert details["commands_run"] == []
    assert not marker.exists()
    assert spawned == []
    # `puppet --version` takes ~0.8 s here; reading two files must be far below that.
    assert check["duration_ms"] < 300


def test_live_launcher_without_library_files_falls_back_to_puppet_version(tmp_path):
    """The control for the test above: when no file answers, the check does start Ruby once, and
    both the tripwire and the audit hook see it."""
    expected = live_puppet_version()
    require(
        "Debian's puppet-agent package",
        expected is not None and os.access("/usr/bin/puppet", os.X_OK),
    )
    marker = tmp_path / "tripwire.log"
    tripwire(tmp_path / "tripwire", marker, {"ruby": "/usr/bin/ruby"})
    # A launcher in a folder with no Ruby library beside it (as a hand-made /srv/bin/puppet).
    launcher = tmp_path / "srv" / "bin" / "puppet"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(LAUNCHER_2_7)  # `#!/usr/bin/env ruby`: resolves the tripwire ruby
    launcher.chmod(0o755)
    path_env = f"{tmp_path / 'tripwire'}:{launcher.parent}:/usr/sbin:/usr/bin:/sbin:/bin"
    proc, spawned = audited_puppet_check(tmp_path, path_env)
    (check,) = report_of(proc)["checks"]
    assert check["status"] == "pass", proc.stdout
    assert check["details"]["effective"] == str(launcher)
    assert check["details"]["commands_run"] == [f"{launcher} --version"]
    assert check["details"]["version"] == expected
    assert marker.read_text().startswith("ruby ")
    assert spawned == [[str(launcher), "--version"]]


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        # A site wrapper around the real Puppet (as some put in /usr/local/bin): asked, trusted.
        ('exec /usr/bin/puppet "$@"\n', "pass", "Puppet {version} ({wrapper}"),
        # A broken one: `puppet` by name fails, so the check cannot call this a pass.
        ("echo 'puppet: not configured' >&2; exit 1\n", "error", "exited with status 1"),
    ],
    ids=["wrapper", "broken"],
)
def test_live_non_ruby_puppet_first_on_path_is_what_puppet_runs(tmp_path, body, status, expected):
    version = live_puppet_version()
    require(
        "Debian's puppet-agent package",
        version is not None and os.access("/usr/bin/puppet", os.X_OK),
    )
    wrapper = tmp_path / "bin" / "puppet"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\n" + body)
    wrapper.chmod(0o755)
    result = run_preflight(
        "check",
        "puppet",
        "--format",
        "json",
        env={"PATH": f"{wrapper.parent}:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    check = result.json()["checks"][0]
    assert check["status"] == status, check
    assert check["details"]["effective"] == str(wrapper)
    assert check["details"]["commands_run"] == [f"{wrapper} --version"]
    messages = " ".join(f["message"] for f in check["findings"])
    assert expected.format(version=version, wrapper=wrapper) in messages
    assert result.returncode == (0 if status == "pass" else 3)


# ------------------------------------------------------------------ snapshots
def test_puppet_2_7_13_in_lib_puppet_rb_is_too_old_with_the_upgrade_path(snapshot, tmp_path):
    precise_2_7_13(snapshot)
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 2
    assert check["status"] == "fail" and codes(check) == ["puppet.too-old"]
    too_old = finding(check, "puppet.too-old")
    assert "Puppet 2.7.13 (/usr/bin/puppet" in too_old["message"]
    assert "minimum 2.7.14" in too_old["message"]
    assert "`puppet module`" in too_old["message"]
    steps = " ".join(too_old["remediation"])
    # The release's own archive only has 2.7.11, so the vendor's repository is the way up.
    assert "ships only Puppet 2.7.11" in steps
    assert "http://apt.puppetlabs.com/puppetlabs-release-precise.deb" in steps
    assert check["details"]["installations"][0]["version_source"] == "/usr/lib/ruby/1.8/puppet.rb"
    assert check["details"]["installations"][0]["package"] == "puppet-common"


def test_puppet_3_layout_passes(snapshot, tmp_path):
    snapshot.write("etc/os-release", OS_RELEASE_TRUSTY)
    snapshot.write("usr/bin/puppet", LAUNCHER_2_7, mode=0o755)
    snapshot.write("usr/bin/env", ELF_BINARY, mode=0o755)
    ruby(snapshot, "usr/bin/ruby1.9.1", "usr/bin/ruby")
    snapshot.write("usr/lib/ruby/vendor_ruby/puppet/version.rb", VERSION_RB_3_4_3)
    snapshot.write(
        "var/lib/dpkg/status", dpkg_stanza("puppet-common", "3.4.3-1ubuntu1.2", "admin", "puppet")
    )
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 0
    assert codes(check) == ["puppet.ok"]
    assert check["details"]["version"] == "3.4.3"
    assert check["summary"] == "Puppet 3.4.3 (/usr/bin/puppet)"


def test_version_file_beside_the_library_wins_over_the_constant(snapshot, tmp_path):
    """Puppet.version reads lib/puppet/VERSION first: packagers patch the version there."""
    debian12(snapshot)
    snapshot.write("usr/lib/ruby/vendor_ruby/puppet/VERSION", "7.23.0-12-g3f5e1c1\n")
    _, check = run_check(snapshot, tmp_path)
    assert check["details"]["version"] == "7.23.0-12-g3f5e1c1"
    assert (
        check["details"]["installations"][0]["version_source"]
        == "/usr/lib/ruby/vendor_ruby/puppet/VERSION"
    )


def test_vendor_all_in_one_layout_passes_and_keeps_the_agent_version_apart(snapshot, tmp_path):
    snapshot.write("etc/os-release", OS_RELEASE_BOOKWORM)
    vendor_aio(snapshot, puppet="4.10.12", agent="1.10.14")
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 0
    assert codes(check) == ["puppet.ok"]
    details = check["details"]
    assert details["version"] == "4.10.12"  # Puppet's, not the package's 1.10.14
    assert details["agent_version"] == "1.10.14"
    install = details["installations"][0]
    assert install["path"] == "/opt/puppetlabs/bin/puppet"
    assert install["real_path"] == "/opt/puppetlabs/puppet/bin/puppet"
    assert install["layout"] == "vendor" and install["on_path"] is True
    assert "/opt/puppetlabs/bin" in details["path"]
    assert "vendor build" in finding(check, "puppet.ok")["message"]


def test_old_distribution_puppet_first_on_path_shadows_the_vendor_one(snapshot, tmp_path):
    precise_2_7_13(snapshot)
    vendor_aio(snapshot, puppet="7.23.0", agent="7.23.0")
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 2
    assert sorted(codes(check)) == ["puppet.shadowed", "puppet.too-old"]
    shadowed = finding(check, "puppet.shadowed")
    assert shadowed["status"] == "warn"
    # Every caller's PATH has /usr/bin before /opt/puppetlabs/bin (the profile script appends it).
    assert shadowed["message"] == (
        "/usr/bin/puppet (Puppet 2.7.13) comes first on PATH for root's crontab, root login "
        "shell, puppet agent service and its exec resources and "
        "shadows /opt/puppetlabs/bin/puppet (Puppet 7.23.0)"
    )
    assert "apt-get remove puppet-common" in shadowed["remediation"][0]
    # The first fix for the old one is the newer Puppet that is already there.
    assert finding(check, "puppet.too-old")["remediation"][0].startswith(
        "use the installed /opt/puppetlabs/bin/puppet (Puppet 7.23.0)"
    )


def test_path_from_etc_environment_puts_the_vendor_puppet_first(snapshot, tmp_path):
    precise_2_7_13(snapshot)
    vendor_aio(snapshot, puppet="7.23.0", agent="7.23.0", profile=False)
    snapshot.write(
        "etc/environment",
        'PATH="/opt/puppetlabs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:'
        '/usr/bin:/sbin:/bin:/usr/games:/usr/local/games"\n',
    )
    result, check = run_check(snapshot, tmp_path)
    assert check["details"]["effective"] == "/opt/puppetlabs/bin/puppet"
    assert check["details"]["path_source"] == "/etc/environment"
    # A login shell runs the new Puppet; cron and the agent service do not read
    # /etc/environment, so they still run the old one: a warning that names them.
    assert result.returncode == 1, check
    assert codes(check) == ["puppet.ok", "puppet.shadowed"]
    shadowed = finding(check, "puppet.shadowed")["message"]
    assert "for root's crontab, puppet agent service and its exec resources and" in shadowed
    assert "login" not in shadowed
    runs = {c["caller"]: c["runs"] for c in check["details"]["callers"]}
    assert runs == {
        "root's crontab": "/usr/bin/puppet",
        "root login shell": "/opt/puppetlabs/bin/puppet",
        "puppet agent service and its exec resources": "/usr/bin/puppet",
    }


MODULES_CONFIG = '[checks.puppet]\nmodules = ["trulabs-kamailio", "puppetlabs-stdlib"]\n'


def test_module_present_and_module_missing(snapshot, tmp_path):
    debian12(snapshot)
    snapshot.write("etc/puppet/code/modules/kamailio/metadata.json", METADATA_TRULABS_KAMAILIO)
    snapshot.mkdir("etc/puppet/code/modules/kamailio/manifests")
    result, check = run_check(snapshot, tmp_path, MODULES_CONFIG)
    assert result.returncode == 2
    assert codes(check) == ["puppet.ok", "puppet.module-missing"]
    missing = finding(check, "puppet.module-missing")
    # No production environment folder: Puppet falls back to the basemodulepath folders that
    # exist ($codedir/modules; this snapshot has no /usr/share/puppet/modules).
    assert missing["message"] == (
        "module puppetlabs-stdlib is not in the modulepath (/etc/puppet/code/modules)"
    )
    assert missing["remediation"] == ["puppet module install puppetlabs-stdlib"]
    kamailio = check["details"]["modules"][0]
    assert kamailio == {
        "name": "trulabs-kamailio",
        "present": True,
        "path": "/etc/puppet/code/modules/kamailio",
        "metadata_name": "trulabs-kamailio",
        "version": "0.0.7",
    }
    assert check["summary"].endswith("modules: trulabs-kamailio 0.0.7")


def test_modules_in_a_configured_modulepath_and_older_module_formats(snapshot, tmp_path):
    debian12(snapshot)
    # A pre-metadata.json module (Modulefile only), and a truncated metadata.json that must not
    # break the check: Puppet loads a module folder whatever its metadata says.
    snapshot.write("srv/puppet/modules/kamailio/Modulefile", MODULEFILE_TRULABS_KAMAILIO)
    snapshot.write("srv/puppet/modules/kamailio/manifests/init.pp", "class kamailio {}\n")
    snapshot.write("srv/puppet/modules/stdlib/metadata.json", '{"name": "puppetlabs-std')
    config = (
        '[checks.puppet]\nmodules = ["trulabs/kamailio", "puppetlabs-stdlib", '
        '"puppetlabs-apt"]\nmodulepath = ["/srv/puppet/modules"]\n'
    )
    result, check = run_check(snapshot, tmp_path, config)
    assert result.returncode == 2
    modules = {m["name"]: m for m in check["details"]["modules"]}
    assert modules["trulabs/kamailio"]["present"] is True
    assert modules["trulabs/kamailio"]["version"] == "0.0.7"
    assert modules["puppetlabs-stdlib"]["present"] is True
    assert modules["puppetlabs-stdlib"]["version"] is None
    missing = finding(check, "puppet.module-missing")
    assert missing["remediation"] == [
        "puppet module install puppetlabs-apt --modulepath /srv/puppet/modules"
    ]


def test_too_old_puppet_cannot_install_the_missing_module(snapshot, tmp_path):
    precise_2_7_13(snapshot)
    _, check = run_check(snapshot, tmp_path, '[checks.puppet]\nmodules = ["trulabs-kamailio"]\n')
    missing = finding(check, "puppet.module-missing")
    assert "/etc/puppet/modules" in missing["message"]
    assert missing["remediation"][0].startswith("first upgrade Puppet")
    assert missing["remediation"][1] == "puppet module install trulabs-kamailio"


@pytest.mark.parametrize(
    ("os_release", "installed", "minimum", "expected"),
    [
        # Debian 11's own archive is new enough for this minimum.
        (
            OS_RELEASE_BULLSEYE,
            "4.8.2",
            "5.5",
            "Debian GNU/Linux 11 (bullseye) ships Puppet 5.5.22: apt-get update && "
            "apt-get install puppet",
        ),
        # Ubuntu 22.04's 5.5.22 is not: Puppet's own release package for jammy.
        (
            OS_RELEASE_JAMMY,
            "5.5.22",
            "7.0",
            "wget https://apt.puppet.com/puppet7-release-jammy.deb && dpkg -i "
            "puppet7-release-jammy.deb && apt-get update && apt-get install puppet-agent",
        ),
    ],
)
def test_upgrade_path_follows_the_os_and_codename(
    snapshot, tmp_path, os_release, installed, minimum, expected
):
    snapshot.write("etc/os-release", os_release)
    snapshot.write("usr/bin/puppet", LAUNCHER_DEBIAN, mode=0o755)
    ruby(snapshot, "usr/bin/ruby3.0", "usr/bin/ruby")
    snapshot.write("usr/lib/ruby/vendor_ruby/puppet/version.rb", version_rb(installed))
    result, check = run_check(snapshot, tmp_path, f'[checks.puppet]\nmin_version = "{minimum}"\n')
    assert result.returncode == 2
    too_old = finding(check, "puppet.too-old")
    assert f"Puppet {installed} (/usr/bin/puppet" in too_old["message"]
    assert f"minimum {minimum}" in too_old["message"]
    assert "`puppet module`" not in too_old["message"]  # it exists from 2.7.14 on
    assert any(step.startswith(expected) for step in too_old["remediation"]), too_old


def test_not_installed_skips(snapshot, tmp_path):
    snapshot.write("etc/os-release", OS_RELEASE_BOOKWORM)
    snapshot.write("var/lib/dpkg/status", dpkg_stanza("ruby", "1:3.1", "ruby", None, "ruby3.1"))
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 0
    assert check["status"] == "skip" and codes(check) == ["puppet.not-installed"]


def test_not_installed_fails_when_required(snapshot, tmp_path):
    snapshot.write("etc/os-release", OS_RELEASE_BOOKWORM)
    result, check = run_check(snapshot, tmp_path, "[checks.puppet]\nrequired = true\n")
    assert result.returncode == 2
    not_installed = finding(check, "puppet.not-installed")
    assert not_installed["status"] == "fail"
    assert not_installed["remediation"] == [
        "Debian GNU/Linux 12 (bookworm) ships Puppet 7.23.0: apt-get update && "
        "apt-get install puppet-agent"
    ]


@pytest.mark.parametrize(
    "config",
    [
        '[checks.puppet]\nmin_version = "latest"\n',
        '[checks.puppet]\nmin_version = "latest"\nrequired = true\n',
    ],
)
def test_invalid_options_are_reported_where_puppet_is_not_installed(snapshot, tmp_path, config):
    snapshot.write("etc/os-release", OS_RELEASE_BOOKWORM)
    result, check = run_check(snapshot, tmp_path, config)
    assert result.returncode == 3
    assert codes(check) == ["puppet.config-invalid"]


def test_vendor_internal_launcher_alone_is_not_an_installed_puppet(snapshot, tmp_path):
    """/opt/puppetlabs/puppet/bin/puppet makes the check run (a collected snapshot keeps it), but
    without the /opt/puppetlabs/bin launcher, a package or a puppet on PATH nothing runs it."""
    snapshot.write("etc/os-release", OS_RELEASE_BOOKWORM)
    snapshot.write("opt/puppetlabs/puppet/bin/puppet", LAUNCHER_VENDOR, mode=0o755)
    result, check = run_check(snapshot, tmp_path, "[checks.puppet]\nrequired = true\n")
    assert result.returncode == 2
    assert codes(check) == ["puppet.not-installed"]
    assert check["details"]["installations"] == []  # decided by the check's run, not the engine
    assert finding(check, "puppet.not-installed")["remediation"] == [
        "Debian GNU/Linux 12 (bookworm) ships Puppet 7.23.0: apt-get update && "
        "apt-get install puppet-agent"
    ]


def test_package_without_executable_fails(snapshot, tmp_path):
    debian12(snapshot)
    (snapshot.root / "usr/bin/puppet").unlink()
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 2
    not_installed = finding(check, "puppet.not-installed")
    assert not_installed["status"] == "fail"
    assert "puppet-agent 7.23.0-1+deb12u1" in not_installed["message"]
    assert not_installed["remediation"] == ["apt-get install --reinstall puppet puppet-agent"]


def test_unreadable_version_under_root_is_an_error_not_a_guess(snapshot, tmp_path):
    debian12(snapshot)
    (snapshot.root / "usr/lib/ruby/vendor_ruby/puppet/version.rb").write_text("module Puppet\n")
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 3
    unknown = finding(check, "puppet.version-unknown")
    assert "/usr/lib/ruby/vendor_ruby/puppet/version.rb" in unknown["message"]
    assert check["details"]["version"] is None


@pytest.mark.parametrize(
    "config",
    [
        '[checks.puppet]\nmin_version = "latest"\n',
        '[checks.puppet]\nmin_version = ""\n',
        '[checks.puppet]\nmodules = ["../../etc"]\n',
        '[checks.puppet]\nmodulepath = ["relative/modules"]\n',
    ],
)
def test_invalid_options_are_reported_not_crashed_on(snapshot, tmp_path, config):
    debian12(snapshot)
    result, check = run_check(snapshot, tmp_path, config)
    assert result.returncode == 3
    assert codes(check) == ["puppet.config-invalid"]
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ modulepath from files
def test_puppet_2_7_modulepath_comes_from_puppet_conf_with_environment(snapshot, tmp_path):
    """Puppet 2.7/3 without environmentpath: `modulepath` in puppet.conf, $environment and
    $confdir interpolated (Puppet 4 and later refuse this setting; 2.7 reads it)."""
    precise_2_7_13(snapshot)
    snapshot.write(
        "etc/puppet/puppet.conf",
        "[main]\nlogdir=/var/log/puppet\n"
        "modulepath = $confdir/environments/$environment/modules:$confdir/modules\n",
    )
    module = "etc/puppet/environments/production/modules/kamailio"
    snapshot.write(f"{module}/Modulefile", MODULEFILE_TRULABS_KAMAILIO)
    snapshot.write(f"{module}/manifests/init.pp", "class kamailio {}\n")
    _, check = run_check(
        snapshot, tmp_path, '[checks.puppet]\nmin_version = "2.7"\nmodules = ["trulabs-kamailio"]\n'
    )
    assert codes(check) == ["puppet.ok"], check["findings"]
    assert check["details"]["modulepath"] == [
        "/etc/puppet/environments/production/modules",
        "/etc/puppet/modules",
    ]
    parts = check["details"]["modulepaths"][0]["parts"]
    assert {p["source"] for p in parts} == {"/etc/puppet/puppet.conf [main] modulepath"}
    assert check["details"]["modules"][0]["path"] == "/" + module


def test_an_unknown_interpolation_is_reported_not_guessed(snapshot, tmp_path):
    debian12(snapshot)
    snapshot.write(
        "etc/puppet/puppet.conf", "[main]\nbasemodulepath = $vardir/modules:$codedir/modules\n"
    )
    snapshot.mkdir("etc/puppet/code/modules")
    result, check = run_check(snapshot, tmp_path, '[checks.puppet]\nmodules = ["puppetlabs-apt"]\n')
    assert result.returncode == 3
    parts = check["details"]["modulepaths"][0]["parts"]
    assert parts[0] == {
        "path": None,
        "source": "/etc/puppet/puppet.conf [main] basemodulepath",
        "exists": None,
        "unknown": "$vardir/modules ($vardir unknown without Ruby)",
    }
    assert parts[1]["path"] == "/etc/puppet/code/modules"
    unknown = finding(check, "puppet.modulepath-unknown")
    assert unknown["status"] == "error"
    assert "$vardir/modules ($vardir unknown without Ruby)" in unknown["message"]


HOSTILE_PACKAGE = "ruby$(touch${IFS}/root/PWN);reboot"


def test_host_values_never_reach_a_suggested_command_unquoted(snapshot, tmp_path):
    """A package name, a module folder and an environment name from the host that a shell would
    execute: no command is suggested with them, and plausible values are quoted."""
    debian12(snapshot)
    (snapshot.root / "usr/bin/ruby3.1").unlink()  # the interpreter is gone
    with open(snapshot.root / "var/lib/dpkg/status", "a") as status:
        status.write(dpkg_stanza(HOSTILE_PACKAGE, "3.1.2-7"))
    snapshot.write(f"var/lib/dpkg/info/{HOSTILE_PACKAGE}.list", "/.\n/usr/bin/ruby3.1\n")
    snapshot.write(
        "etc/puppet/puppet.conf",
        "[main]\nbasemodulepath = /srv/x;reboot/modules\n[agent]\nenvironment = x$(reboot)\n",
    )
    snapshot.mkdir("srv/x;reboot/modules/concat")
    _, check = run_check(snapshot, tmp_path, '[checks.puppet]\nmodules = ["puppetlabs-concat"]\n')
    steps = [step for f in check["findings"] for step in f["remediation"]]
    assert codes(check) == [
        "puppet.cannot-run",
        "puppet.environment-missing",
        "puppet.module-empty",
    ], check["findings"]
    assert steps, check
    for step in steps:
        assert "$(" not in step or not step.startswith(("apt-get", "rmdir", "mv", "mkdir")), step
        assert not re.search(r"`[^`]*(\$\(|;reboot)[^`]*`", step), step
        assert not step.startswith(("rmdir /srv", "mv /srv", "mkdir -p")), step
    broken = finding(check, "puppet.cannot-run")
    assert broken["remediation"][0].startswith(
        "reinstall the package that provides /usr/bin/ruby3.1 (its name in the package "
        "database is not a plausible package name"
    )


def test_a_ruby_that_does_not_load_the_puppet_library_cannot_run_puppet(snapshot, tmp_path):
    """Ubuntu 14.04's Puppet 3 (`#!/usr/bin/env ruby`, library in /usr/lib/ruby/vendor_ruby)
    after a source-built Ruby landed in /usr/local/bin: a login shell's `env ruby` starts that
    Ruby, whose load path (/usr/local/lib/ruby/...) has no Puppet: 'cannot load such file --
    puppet/util/command_line'."""
    snapshot.write("etc/os-release", OS_RELEASE_TRUSTY)
    snapshot.write("usr/bin/puppet", LAUNCHER_2_7, mode=0o755)
    snapshot.write("usr/bin/env", ELF_BINARY, mode=0o755)
    ruby(snapshot, "usr/bin/ruby1.9.1", "usr/bin/ruby")
    ruby(snapshot, "usr/local/bin/ruby")
    snapshot.mkdir("usr/local/lib/ruby/site_ruby/2.3.0")
    snapshot.write("usr/lib/ruby/vendor_ruby/puppet/version.rb", VERSION_RB_3_4_3)
    snapshot.write(
        "var/lib/dpkg/status", dpkg_stanza("puppet-common", "3.4.3-1ubuntu1.2", "admin", "puppet")
    )
    result, check = run_check(snapshot, tmp_path)
    assert result.returncode == 2
    broken = finding(check, "puppet.cannot-run")
    # cron's PATH (/usr/bin:/bin) finds /usr/bin/ruby, which loads the library: cron works.
    assert broken["message"] == (
        "Puppet 3.4.3 at /usr/bin/puppet (run by root login shell, puppet agent service and its "
        "exec resources) cannot start: its Ruby /usr/local/bin/ruby loads Puppet "
        "from /usr/local/lib/ruby/site_ruby/*, /usr/local/lib/ruby/site_ruby, "
        "/usr/local/lib/ruby/vendor_ruby, not from /usr/lib/ruby/vendor_ruby where the library is"
    )
    install = check["details"]["installations"][0]
    assert install["interpreter"] == "/usr/local/bin/ruby" and install["works"] is False
    works = {c["caller"]: c["works"] for c in check["details"]["callers"]}
    assert works == {
        "root's crontab": True,
        "root login shell": False,
        "puppet agent service and its exec resources": False,
    }


def test_pathological_files_are_read_in_linear_time(snapshot, tmp_path):
    """Long runs of blanks and repeated tokens in every file the check parses: each parser is
    free of backtracking, so the whole check stays far under a second."""
    debian12(snapshot)
    blanks = " " * 200_000
    snapshot.write(
        "etc/puppet/puppet.conf",
        f"[main]\nbasemodulepath ={blanks}x$\n{blanks}[{'a' * 100_000}\n"
        + "environment = "
        + "$codedir" * 20_000
        + "\n",
    )
    snapshot.write("etc/environment", f"PATH={blanks}$\n")
    snapshot.write("etc/profile", 'if [ "$(id -u)" -eq 0 ]; then\n' + f"PATH={blanks}$\n" * 50)
    snapshot.write("usr/lib/ruby/vendor_ruby/puppet/VERSION", "1." + "1" * 60_000 + "!\n")
    snapshot.write(
        "usr/lib/ruby/vendor_ruby/puppet/version.rb", "\n" * 200_000 + version_rb("7.23.0")
    )
    snapshot.write("etc/puppet/code/modules/kamailio/Modulefile", "\n" * 200_000 + "name")
    result, check = run_check(
        snapshot, tmp_path, '[checks.puppet]\nmodules = ["trulabs-kamailio"]\n'
    )
    assert "Traceback" not in result.stderr
    assert check["details"]["version"] == "7.23.0"
    assert check["duration_ms"] < 1500, check["duration_ms"]
