"""Helpers shared by the tests (fixtures stay in tests/conftest.py).

- `support.cli`: run the real CLI, read its report (`run_preflight`, `report_of`, `finding`, ...)
- `support.snapshot`: `Snapshot`, a host snapshot directory for `--root`
- `support.components`: require real components (`require`, `require_command`, `live_machine`)
- `support.plugins`: the scripted and demo plugins, third-party distributions
- `support.audit`: run the CLI under audit hooks (what it wrote, what it started)
- `support.kamailio`: real Kamailio instances on loopback high ports, the check's report of
  them, remediation steps run verbatim
- `support.evil_module`: a gcc-built Kamailio module that leaves a marker when root loads it
- `support.declared`: declared-check specs run through the real CLI
- `support.namespace`: private mount/pid/net namespaces for replacing /etc files in a test
"""
