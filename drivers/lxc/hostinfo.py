"""The host's real capacity, as the lxc driver reports it to the scheduler."""

from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HostFacts:
    """CPUs, memory (MiB) and disk (GiB, under the state path) of this host."""

    vcpus: int
    memory_mb: int
    local_gb: int
    cpu_info: dict[str, Any] = field(default_factory=dict)


def _meminfo_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def collect(state_path: str) -> HostFacts:
    """Read /proc and the filesystem holding ``state_path`` (blocking; run in a thread)."""
    path = state_path
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    disk = shutil.disk_usage(path or "/")
    return HostFacts(
        vcpus=os.cpu_count() or 1,
        memory_mb=_meminfo_mb(),
        local_gb=disk.total // (1024**3),
        cpu_info={
            "arch": platform.machine(),
            "model": _cpu_model(),
            "vendor": "",
            "topology": {"sockets": 1, "cores": os.cpu_count() or 1, "threads": 1},
        },
    )


def version_number(version: str) -> int:
    """Nova's integer form of a version: ``"5.0.2"`` -> ``5000002``."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0, 0]
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]
