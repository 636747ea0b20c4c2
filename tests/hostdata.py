"""Real files of real hosts, shared by the tests that build host snapshots.

Each constant is a file as its distribution ships it (verbatim where a comment says so).
"""

DEBIAN7_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 7 (wheezy)"
NAME="Debian GNU/Linux"
VERSION_ID="7"
VERSION="7 (wheezy)"
ID=debian
ANSI_COLOR="1;31"
HOME_URL="http://www.debian.org/"
SUPPORT_URL="http://www.debian.org/support/"
BUG_REPORT_URL="http://bugs.debian.org/"
"""

DEBIAN12_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

UBUNTU2204_OS_RELEASE = """PRETTY_NAME="Ubuntu 22.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.3 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
UBUNTU_CODENAME=jammy
"""

ROCKY9_OS_RELEASE = """NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
"""

# Ubuntu 12.04's: no VERSION_CODENAME yet; the codename is in VERSION and /etc/lsb-release.
UBUNTU1204_OS_RELEASE = """NAME="Ubuntu"
VERSION="12.04.5 LTS, Precise Pangolin"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu precise (12.04.5 LTS)"
VERSION_ID="12.04"
"""

UBUNTU1404_OS_RELEASE = """NAME="Ubuntu"
VERSION="14.04.6 LTS, Trusty Tahr"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 14.04.6 LTS"
VERSION_ID="14.04"
HOME_URL="http://www.ubuntu.com/"
SUPPORT_URL="http://help.ubuntu.com/"
BUG_REPORT_URL="http://bugs.launchpad.net/ubuntu/"
"""

DEBIAN11_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"
NAME="Debian GNU/Linux"
VERSION_ID="11"
VERSION="11 (bullseye)"
VERSION_CODENAME=bullseye
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

UBUNTU2204_4_OS_RELEASE = """PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""

# metadata.json of trulabs-kamailio 0.0.7 (github.com/trulabs/puppet-kamailio), verbatim.
METADATA_TRULABS_KAMAILIO = """{
  "author": "trulabs",
  "dependencies": [
    {
      "name": "puppetlabs/stdlib"
    },
    {
      "name": "puppetlabs/apt"
    }
  ],
  "license": "see LICENSE",
  "name": "trulabs-kamailio",
  "operatingsystem_support": [],
  "project_page": "http://github.com/trulabs/puppet-kamailio",
  "requirements": [],
  "source": "git://github.com/trulabs/puppet-kamailio",
  "summary": "A module for managing Kamailio deployments with Puppet.",
  "tags": [],
  "version": "0.0.7"
}"""
MODULEFILE_TRULABS_KAMAILIO = """name         'trulabs-kamailio'
version      '0.0.7'
source       'git://github.com/trulabs/puppet-kamailio'
author       'trulabs'
license      'see LICENSE'
summary      'A module for managing Kamailio deployments with Puppet.'
description  'This module provides a simple interface for managing Kamailio deployments with {}.'
project_page 'http://github.com/trulabs/puppet-kamailio'

## Add dependencies, if any:
dependency 'puppetlabs/apt'
dependency 'puppetlabs/stdlib'
""".format("Puppet")  # the real line is 101 characters long

# `kamailio -c` of Kamailio 5.6.3 (Debian 12): a valid config (stdout), and one whose module is
# missing (stderr).
KAMAILIO_CHECK_STDOUT = """\
loading modules under config path: /usr/lib/x86_64-linux-gnu/kamailio/modules/
Listening on{SP}
             udp: localhost [127.0.0.1]:35062
             udp: 0.0.0.0:35063
             udp: :::35065
             udp: 127.0.0.1:35066 advertise 1.2.3.4:5060
             tcp: ::1:35064
Aliases:{SP}
             tcp: localhost:35068
""".format(SP=" ")  # Kamailio prints a space after both headings
KAMAILIO_CHECK_STDERR = """\
 0(1076) ERROR: <core> [core/sr_module.c:510]: ksr_locate_module(): could not find module \
<db_mysql> in </usr/lib/x86_64-linux-gnu/kamailio/modules>
 0(1076) CRITICAL: <core> [core/cfg.y:3787]: yyerror_at(): parse error in config file \
/tmp/kamlearn/e.cfg, line 3, column 12-24: failed to load module
ERROR: bad config file (2 errors) (parsing code: 0)
"""
