"""Where Puppet lives on a host: the files the `puppet` check reads.

Kept apart from the code that reads them: the check's `paths` are built from these, and the engine
imports the check module (to validate `[checks.puppet]`) even when the check does not run.
"""

from __future__ import annotations

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
