# Gate a deployment on preflight: everything that `require`s this class is applied only when
# `preflight check` exits 0. When it does not, Puppet reports the exec as failed, shows the
# report in its log, and skips every dependent resource ("Skipping because of failed
# dependencies"), so nothing is deployed onto a host that is not ready for it.
#
#   class { 'preflight_gate':
#     checks => ['kernel', 'tun', 'puppet'],
#   }
#   package { 'kamailio':
#     ensure  => installed,
#     require => Class['preflight_gate'],
#   }
#
# Parameters:
#   preflight   - the preflight command (absolute path; the README installs it here).
#   checks      - check ids to run; empty means every check preflight loads.
#   options     - further options, e.g. ['--config', '/etc/preflight/kamailio.toml'] or
#                 ['--fail-on', 'fail'] to let warnings through.
#   wait        - seconds to re-run failing checks before giving up (--wait), e.g. while a
#                 service that an earlier resource started comes up.
#   environment - extra environment variables for the exec ("NAME=value" strings).
class preflight_gate (
  String        $preflight   = '/opt/preflight/bin/preflight',
  Array[String] $checks      = [],
  Array[String] $options     = [],
  Integer       $wait        = 0,
  Array[String] $environment = [],
) {
  $wait_options = $wait ? {
    0       => [],
    default => ['--wait', String($wait)],
  }
  exec { 'preflight check':
    command     => shellquote([$preflight, 'check', '--no-color'] + $wait_options + $options
                              + $checks),
    # the human report lands in Puppet's log (and the report sent to PuppetDB) when it fails
    logoutput   => 'on_failure',
    returns     => [0],
    timeout     => 300 + $wait,
    environment => $environment + ['NO_COLOR=1'],
  }
}
