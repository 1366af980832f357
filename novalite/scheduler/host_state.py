"""The scheduler's in-memory view of every compute host: capacity, usage and liveness.

Free capacity is kept as plain attributes, recomputed on every claim, release,
capacity report or ratio change, so filters and weighers read numbers instead of
computing them once per host per request (this is what keeps a choice among
10,000 hosts within milliseconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False, slots=True)
class HostState:
    """One compute host as the scheduler sees it. Usage counts every claim it made."""

    host: str
    vcpus: int = 0
    memory_mb: int = 0
    local_gb: int = 0
    hypervisor_type: str = ""
    hypervisor_version: int = 0
    cpu_info: dict[str, Any] = field(default_factory=dict)
    #: The zone: its aggregate's availability_zone, else the service's own (``[compute]``).
    availability_zone: str = "nova"
    service_zone: str = "nova"
    #: (arch, hypervisor_type, vm_mode) triples; a tuple, so hosts alike share a cache key.
    supported_instances: tuple[tuple[str, ...], ...] = ()
    #: Ratios from ``[scheduler]``, or an aggregate's metadata override (the smallest wins).
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    vcpus_used: int = 0
    memory_mb_used: int = 0
    disk_gb_used: int = 0
    num_instances: int = 0
    disabled: bool = False
    #: time.monotonic() of the last heartbeat this process saw; 0 = never.
    last_seen: float = 0.0
    #: Builds that failed here since the last success (BuildFailureWeigher).
    failed_builds: int = 0
    #: Instance uuids claimed on this host (SameHostFilter, DifferentHostFilter).
    instances: set[str] = field(default_factory=set)
    #: Aggregate metadata of this host's aggregates: key -> every value it has.
    aggregate_metadata: dict[str, set[str]] = field(default_factory=dict)
    #: Ids of the aggregates this host belongs to.
    aggregates: list[int] = field(default_factory=list)
    free_vcpus: float = 0.0
    free_ram_mb: float = 0.0
    free_disk_gb: float = 0.0

    def __post_init__(self) -> None:
        self.recompute()

    def recompute(self) -> None:
        """Refresh the free-capacity attributes (after any change of capacity or usage)."""
        self.free_vcpus = self.vcpus * self.cpu_allocation_ratio - self.vcpus_used
        self.free_ram_mb = self.memory_mb * self.ram_allocation_ratio - self.memory_mb_used
        self.free_disk_gb = self.local_gb * self.disk_allocation_ratio - self.disk_gb_used

    def is_up(self, down_after: float) -> bool:
        return self.last_seen > 0 and time.monotonic() - self.last_seen < down_after

    def claim(self, uuid: str, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        self.vcpus_used += vcpus
        self.memory_mb_used += memory_mb
        self.disk_gb_used += disk_gb
        self.num_instances += 1
        self.instances.add(uuid)
        self.recompute()

    def release(self, uuid: str, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        self.vcpus_used -= vcpus
        self.memory_mb_used -= memory_mb
        self.disk_gb_used -= disk_gb
        self.num_instances -= 1
        self.instances.discard(uuid)
        self.recompute()

    def capability(self, name: str) -> Any:
        """A host attribute by Nova's HostState name (ComputeCapabilitiesFilter); None: unknown."""
        values = {
            "host": self.host, "hypervisor_type": self.hypervisor_type,
            "hypervisor_version": self.hypervisor_version,
            "hypervisor_hostname": self.host, "cpu_info": self.cpu_info,
            "vcpus_total": self.vcpus, "vcpus_used": self.vcpus_used,
            "total_usable_ram_mb": self.memory_mb, "free_ram_mb": self.free_ram_mb,
            "total_usable_disk_gb": self.local_gb, "free_disk_mb": self.free_disk_gb * 1024,
            "num_instances": self.num_instances, "availability_zone": self.availability_zone,
            "supported_instances": self.supported_instances,
        }
        return values.get(name)


@dataclass
class RequestSpec:
    """What a boot asks of a host (plain data; crosses the bus as a dict).

    ``group`` is the server group the instance joins (``uuid``, ``policy``,
    ``rules``); ``same_host`` / ``different_host`` are the scheduler hints'
    instance uuids. ``group_hosts`` is filled in by the scheduler itself: how
    many of the group's members each host holds, at the moment of choosing.
    """

    instance_uuid: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    image_properties: dict[str, Any] = field(default_factory=dict)
    ignore_hosts: list[str] = field(default_factory=list)
    image_id: str = ""
    extra_specs: dict[str, str] = field(default_factory=dict)
    group: dict[str, Any] | None = None
    same_host: list[str] = field(default_factory=list)
    different_host: list[str] = field(default_factory=list)
    project_id: str = ""
    group_hosts: dict[str, int] = field(default_factory=dict)
    #: The host the boot asked for (``availability_zone`` ``az:host`` or 2.74's
    #: ``host``/``hypervisor_hostname``): only it is considered.
    requested_host: str | None = None
    #: ``az:host`` forces the host: Nova skips the filters then.
    force_host: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestSpec:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def group_policy(self) -> str | None:
        return self.group.get("policy") if self.group else None
