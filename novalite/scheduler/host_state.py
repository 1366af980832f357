"""The scheduler's in-memory view of every compute host: capacity, usage and liveness."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostState:
    """One compute host as the scheduler sees it. Usage counts every claim it made."""

    host: str
    vcpus: int = 0
    memory_mb: int = 0
    local_gb: int = 0
    hypervisor_type: str = ""
    availability_zone: str = "nova"
    supported_instances: list[Any] = field(default_factory=list)
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
    failed_builds: int = 0

    def is_up(self, down_after: float) -> bool:
        return self.last_seen > 0 and time.monotonic() - self.last_seen < down_after

    @property
    def free_ram_mb(self) -> float:
        return self.memory_mb * self.ram_allocation_ratio - self.memory_mb_used

    @property
    def free_vcpus(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio - self.vcpus_used

    @property
    def free_disk_gb(self) -> float:
        return self.local_gb * self.disk_allocation_ratio - self.disk_gb_used

    def claim(self, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        self.vcpus_used += vcpus
        self.memory_mb_used += memory_mb
        self.disk_gb_used += disk_gb
        self.num_instances += 1

    def release(self, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        self.vcpus_used -= vcpus
        self.memory_mb_used -= memory_mb
        self.disk_gb_used -= disk_gb
        self.num_instances -= 1


@dataclass
class RequestSpec:
    """What a boot asks of a host (plain data; crosses the bus as a dict)."""

    instance_uuid: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    image_properties: dict[str, Any] = field(default_factory=dict)
    ignore_hosts: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestSpec:
        return cls(**data)
