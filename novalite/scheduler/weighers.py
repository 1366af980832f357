"""Host weighers, with Nova's names, multipliers and normalization.

The contract (built-ins and plugins alike): a subclass of :class:`Weigher`
registered in the ``novalite.scheduler.weighers`` entry-point group.

* ``weigh(host, spec)`` - the host's raw weight; higher is preferred with a
  positive multiplier. Required.
* ``weigh_all(hosts, spec)`` - the raw weights of a list (Nova's
  ``weigh_objects``); by default calls ``weigh`` on each.
* ``applies(spec)`` - False when every host would weigh the same (the
  scheduler then skips it). Defaults to True.
* ``option`` - the ``[scheduler]`` key holding the multiplier (default 1.0).

The scheduler normalizes each weigher's weights to 0..1 across the candidates
(min -> 0, max -> 1, all equal -> all 0), multiplies them by the multiplier and
adds them up; the best total wins (``host_subset_size``: a random one of the best N).
"""

from __future__ import annotations

from typing import Any

from novalite.scheduler.host_state import HostState, RequestSpec


class Weigher:
    """Gives each candidate host a raw weight; higher is preferred (with a positive multiplier)."""

    name = ""
    option = ""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.multiplier = float(options.get(self.option, 1.0)) if self.option else 1.0

    def applies(self, spec: RequestSpec) -> bool:
        """False when every host would weigh the same for ``spec`` (the weigher is skipped)."""
        return True

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        raise NotImplementedError

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        weigh = self.weigh
        return [weigh(h, spec) for h in hosts]


class RAMWeigher(Weigher):
    """Prefers hosts with more free RAM (spreading); a negative multiplier packs."""

    name = "RAMWeigher"
    option = "ram_weight_multiplier"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return host.free_ram_mb

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        return [h.free_ram_mb for h in hosts]


class CPUWeigher(Weigher):
    """Prefers hosts with more free vCPUs (spreading); a negative multiplier packs."""

    name = "CPUWeigher"
    option = "cpu_weight_multiplier"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return host.free_vcpus

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        return [h.free_vcpus for h in hosts]


class DiskWeigher(Weigher):
    """Prefers hosts with more free disk (spreading); a negative multiplier packs."""

    name = "DiskWeigher"
    option = "disk_weight_multiplier"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return host.free_disk_gb

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        return [h.free_disk_gb for h in hosts]


class NumInstancesWeigher(Weigher):
    """Weighs hosts by their instance count: a positive multiplier packs, a negative one
    spreads (Nova's default multiplier, 0.0, turns it off)."""

    name = "NumInstancesWeigher"
    option = "num_instances_weight_multiplier"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return host.num_instances

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float]:
        return [h.num_instances for h in hosts]


class _GroupWeigher(Weigher):
    policy = ""

    def applies(self, spec: RequestSpec) -> bool:
        return spec.group_policy == self.policy and bool(spec.group_hosts)


class ServerGroupSoftAffinityWeigher(_GroupWeigher):
    """For a ``soft-affinity`` group: prefers hosts with more of the group's members."""

    name = "ServerGroupSoftAffinityWeigher"
    option = "soft_affinity_weight_multiplier"
    policy = "soft-affinity"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return spec.group_hosts.get(host.host, 0)


class ServerGroupSoftAntiAffinityWeigher(_GroupWeigher):
    """For a ``soft-anti-affinity`` group: prefers hosts with fewer of the group's members."""

    name = "ServerGroupSoftAntiAffinityWeigher"
    option = "soft_anti_affinity_weight_multiplier"
    policy = "soft-anti-affinity"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return -spec.group_hosts.get(host.host, 0)


class BuildFailureWeigher(Weigher):
    """Steers away from hosts whose recent builds failed (reset by a successful build)."""

    name = "BuildFailureWeigher"
    option = "build_failure_weight_multiplier"

    def applies(self, spec: RequestSpec) -> bool:
        # The scheduler keeps the set of hosts with failures in its options.
        return bool(self.options.get("hosts_with_failed_builds", True))

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return -host.failed_builds


def normalize(values: list[float]) -> list[float]:
    """Nova's normalization: map min..max onto 0..1 (all equal -> all 0)."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.0] * len(values)
    span = hi - lo
    return [(v - lo) / span for v in values]
