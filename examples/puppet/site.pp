# Example: deploy Kamailio only onto hosts that pass preflight. Apply with
#   puppet apply --modulepath examples/puppet/modules examples/puppet/site.pp
class { 'preflight_gate':
  checks  => ['kernel', 'tun', 'puppet', 'kamailio'],
  options => ['--config', '/etc/preflight/preflight.toml'],
}

package { 'kamailio':
  ensure  => installed,
  require => Class['preflight_gate'],
}

service { 'kamailio':
  ensure  => running,
  enable  => true,
  require => Package['kamailio'],
}
