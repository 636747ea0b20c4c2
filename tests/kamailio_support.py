"""The Kamailio test helpers moved to tests/support/kamailio.py; these names stay importable
from here for tests written before the move."""

from support.kamailio import (
    KAMAILIO,
    MODULES,
    Instance,
    free_port,
    kamailio_binary,
    main_kamailio_with,
    new_instance,
    preflight_config,
    sip_config,
    stop_pid,
    wait_listening,
)

__all__ = [
    "KAMAILIO",
    "MODULES",
    "Instance",
    "free_port",
    "kamailio_binary",
    "main_kamailio_with",
    "new_instance",
    "preflight_config",
    "sip_config",
    "stop_pid",
    "wait_listening",
]
