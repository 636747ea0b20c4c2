"""Linux capabilities of this process (preflight itself), from proc/self/status.

Only meaningful on the live host: under --root, proc/self is the snapshot's, not ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.host import Host

# <linux/capability.h>
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21

_CAP_LINE = re.compile(r"^(Cap(?:Inh|Prm|Eff|Bnd|Amb)):\s*([0-9a-fA-F]{1,16})\s*$", re.M)


@dataclass(frozen=True)
class Capabilities:
    """The capability sets as bit masks; None where status has no such line."""

    effective: int | None
    permitted: int | None
    bounding: int | None

    def has(self, capability: int) -> bool:
        """Whether `capability` is in the effective set (False when unknown)."""
        return bool((self.effective or 0) & (1 << capability))


def own_capabilities(host: Host) -> Capabilities:
    sets = dict(_CAP_LINE.findall(host.read_text("proc/self/status", 64 * 1024) or ""))

    def mask(name: str) -> int | None:
        return int(sets[name], 16) if name in sets else None

    return Capabilities(mask("CapEff"), mask("CapPrm"), mask("CapBnd"))
