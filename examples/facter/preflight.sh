#!/bin/sh
# An executable Facter external fact: copy to /etc/facter/facts.d/preflight.sh (Facter 4, or
# /etc/puppetlabs/facter/facts.d/ with the AIO packages) and make it executable. Each Facter
# run (every Puppet run) then reports `preflight` = {status, exit_code, generated_at, checks}
# and PuppetDB holds every host's latest result:
#   puppet query 'inventory[certname] { facts.preflight.status = "fail" }'
#
# Where the checks are too slow to run with every Puppet run, let cron or the systemd timer
# write the static fact instead (`--report facter:/etc/facter/facts.d/preflight.json`) and do
# not install this script.
#
# preflight's exit code is its verdict (2 when a check fails), not a broken fact script: the
# verdict is in the fact, so the script exits 0. When preflight is missing or prints nothing,
# the fact says so (status "error") instead of silently disappearing.
PREFLIGHT=/opt/preflight/bin/preflight
if [ ! -x "$PREFLIGHT" ]; then
  printf '{"preflight": {"status": "error", "error": "%s is not installed"}}\n' "$PREFLIGHT"
  exit 0
fi
out=$("$PREFLIGHT" check --format facter 2>/dev/null)
if [ -n "$out" ]; then
  printf '%s\n' "$out"
else
  printf '{"preflight": {"status": "error", "error": "%s printed no fact"}}\n' "$PREFLIGHT"
fi
exit 0
