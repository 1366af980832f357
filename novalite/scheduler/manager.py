"""The scheduler actor: filter, weigh, and claim in one step.

It owns the resource view of every host in memory, rebuilt from the database
(compute nodes, services, allocations) at start. :meth:`select_destinations`
runs the filters and weighers and records the claim without awaiting between
the choice and the claim, so two concurrent boots can never take the same last
slot; the claim is then made durable as an ``allocations`` row.
"""

from __future__ import annotations

import random
import time
from typing import Any

import structlog
from sqlmodel import Session, select

from novalite.bus import Message
from novalite.config import Config
from novalite.db.engine import Database
from novalite.db.models import Allocation, ComputeNode, Service
from novalite.exceptions import ConfigError, NoValidHost
from novalite.scheduler import filters as filters_mod
from novalite.scheduler import weighers as weighers_mod
from novalite.scheduler.host_state import HostState, RequestSpec

log = structlog.get_logger("novalite.scheduler")


class SchedulerManager:
    """Handles the ``scheduler`` topic."""

    def __init__(self, db: Database, cfg: Config) -> None:
        self.db = db
        self.cfg = cfg
        self.hosts: dict[str, HostState] = {}
        self.claims: dict[str, tuple[str, int, int, int]] = {}
        options = {"service_down_time": cfg.compute.service_down_time,
                   "ram_weight_multiplier": cfg.scheduler.ram_weight_multiplier}
        self.filters = [self._plugin(name, filters_mod.BUILTIN, "filter")(options)
                        for name in cfg.scheduler.enabled_filters]
        self.weighers = [self._plugin(name, weighers_mod.BUILTIN, "weigher")(options)
                         for name in cfg.scheduler.weighers]

    @staticmethod
    def _plugin(name: str, builtin: dict[str, Any], kind: str) -> Any:
        if name in builtin:
            return builtin[name]
        key = "enabled_filters" if kind == "filter" else "weighers"
        raise ConfigError(f"[scheduler] {key}: unknown {kind} {name!r} "
                          f"(available: {', '.join(sorted(builtin))})")

    # -- state -----------------------------------------------------------------
    async def load(self) -> None:
        """Rebuild the in-memory view from the database."""

        def work(s: Session) -> tuple[list[ComputeNode], list[Service], list[Allocation]]:
            return (list(s.exec(select(ComputeNode)).all()),
                    list(s.exec(select(Service).where(Service.binary == "nova-compute")).all()),
                    list(s.exec(select(Allocation)).all()))

        nodes, services, allocations = await self.db.read(work)
        for node in nodes:
            self._update_node(node.host, node.vcpus, node.memory_mb, node.local_gb,
                              node.hypervisor_type, node.supported_instances)
        for svc in services:
            state = self._host(svc.host)
            state.disabled = svc.disabled
            state.availability_zone = svc.availability_zone
        for a in allocations:
            self._claim(a.host, a.instance_uuid, a.vcpus, a.memory_mb, a.disk_gb)

    def _host(self, host: str) -> HostState:
        state = self.hosts.get(host)
        if state is None:
            sc = self.cfg.scheduler
            state = self.hosts[host] = HostState(
                host, cpu_allocation_ratio=sc.cpu_allocation_ratio,
                ram_allocation_ratio=sc.ram_allocation_ratio,
                disk_allocation_ratio=sc.disk_allocation_ratio)
        return state

    def _update_node(self, host: str, vcpus: int, memory_mb: int, local_gb: int,
                     hypervisor_type: str, supported: list[Any]) -> None:
        state = self._host(host)
        state.vcpus, state.memory_mb, state.local_gb = vcpus, memory_mb, local_gb
        state.hypervisor_type = hypervisor_type
        state.supported_instances = [tuple(x) for x in supported]

    def _claim(self, host: str, uuid: str, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        self._host(host).claim(vcpus, memory_mb, disk_gb)
        self.claims[uuid] = (host, vcpus, memory_mb, disk_gb)

    def _release(self, uuid: str) -> str | None:
        claim = self.claims.pop(uuid, None)
        if claim is None:
            return None
        host, vcpus, memory_mb, disk_gb = claim
        self._host(host).release(vcpus, memory_mb, disk_gb)
        return host

    # -- choosing --------------------------------------------------------------
    def choose(self, spec: RequestSpec) -> HostState:
        """Filter, then weigh; raises NoValidHost saying how many hosts each filter removed."""
        candidates = [h for h in self.hosts.values() if h.host not in spec.ignore_hosts]
        removed: list[str] = []
        if spec.ignore_hosts:
            removed.append(f"{len(spec.ignore_hosts)} host(s) already tried")
        for f in self.filters:
            before = len(candidates)
            candidates = [h for h in candidates if f.host_passes(h, spec)]
            if len(candidates) < before:
                removed.append(f"{f.name} removed {before - len(candidates)}")
            log.debug("filter applied", filter=f.name, before=before, after=len(candidates))
            if not candidates:
                break
        if not candidates:
            why = "; ".join(removed) or "no compute hosts are registered"
            raise NoValidHost(f"No valid host was found. {why} "
                              f"(of {len(self.hosts)} host(s)).")
        if len(candidates) == 1 or not self.weighers:
            return candidates[0]
        totals = [0.0] * len(candidates)
        for w in self.weighers:
            for i, value in enumerate(weighers_mod.normalize([w.weigh(h, spec)
                                                              for h in candidates])):
                totals[i] += w.multiplier * value
        best = max(totals)
        top = [h for h, t in zip(candidates, totals, strict=True) if t == best]
        return top[0] if len(top) == 1 else random.choice(top)

    async def select_destinations(self, spec: RequestSpec) -> dict[str, Any]:
        state = self.choose(spec)
        # The claim is taken before the first await: nothing can slip in between.
        self._claim(state.host, spec.instance_uuid, spec.vcpus, spec.memory_mb, spec.disk_gb)
        alloc = Allocation(instance_uuid=spec.instance_uuid, host=state.host, vcpus=spec.vcpus,
                           memory_mb=spec.memory_mb, disk_gb=spec.disk_gb)
        try:
            await self.db.write(lambda s: s.merge(alloc))
        except BaseException:
            self._release(spec.instance_uuid)
            raise
        log.debug("host selected", instance=spec.instance_uuid, host=state.host)
        return {"host": state.host, "node": state.host}

    async def release(self, instance_uuid: str) -> str | None:
        host = self._release(instance_uuid)

        def work(s: Session) -> None:
            row = s.get(Allocation, instance_uuid)
            if row is not None:
                s.delete(row)

        await self.db.write(work)
        return host

    # -- bus -------------------------------------------------------------------
    async def handle(self, msg: Message) -> Any:
        a = msg.args
        if msg.method == "select_destinations":
            return await self.select_destinations(RequestSpec.from_dict(a["spec"]))
        if msg.method == "release":
            return await self.release(a["instance_uuid"])
        if msg.method == "host_update":
            state = self._host(a["host"])
            if "resources" in a:
                r = a["resources"]
                self._update_node(a["host"], r["vcpus"], r["memory_mb"], r["local_gb"],
                                  r["hypervisor_type"], r.get("supported_instances", []))
            if "availability_zone" in a:
                state.availability_zone = a["availability_zone"]
            if "disabled" in a:
                state.disabled = bool(a["disabled"])
            if a.get("heartbeat"):
                state.last_seen = time.monotonic()
            return None
        if msg.method == "host_usage":
            return {h: {"vcpus_used": s.vcpus_used, "memory_mb_used": s.memory_mb_used,
                        "disk_gb_used": s.disk_gb_used, "running_vms": s.num_instances}
                    for h, s in self.hosts.items()}
        raise ValueError(f"scheduler has no method {msg.method}")
