"""novalite-weigher-pack: prefer the hosts that already run the most.

Nova's default RAMWeigher spreads instances over hosts. Packing does the
opposite: each new instance goes to the busiest host that still passes the
filters, so the other hosts stay empty (to power them down, to keep whole hosts
free for big flavors). The weight is the share of the host's vCPUs and RAM
already claimed, so hosts of different sizes compare fairly.
"""

from __future__ import annotations

from novalite.scheduler.host_state import HostState, RequestSpec
from novalite.scheduler.weighers import Weigher

__all__ = ["PackWeigher"]
__version__ = "0.1.0"


class PackWeigher(Weigher):
    """Prefers hosts whose vCPUs and RAM are most used (packing)."""

    #: The name users put in ``[scheduler] weighers``.
    name = "PackWeigher"
    #: The option holding the multiplier; absent from novalite's configuration, so 1.0.
    option = "pack_weight_multiplier"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        cpu = host.vcpus_used / host.vcpus if host.vcpus else 0.0
        ram = host.memory_mb_used / host.memory_mb if host.memory_mb else 0.0
        return (cpu + ram) / 2
