# Example: deploy Kamailio only onto hosts that pass preflight. Apply with
#   puppet apply --modulepath examples/puppet/modules examples/puppet/site.pp
# When a check fails, the exec fails with preflight's report in Puppet's log, and the package
# and service below are skipped ("Skipping because of failed dependencies").
class { 'preflight_gate':
  checks => ['kernel', 'tun', 'puppet'],
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
