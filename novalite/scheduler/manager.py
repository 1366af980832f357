"""The scheduler actor: filter, weigh, and claim in one step.

It owns the resource view of every host in memory, rebuilt from the database
(compute nodes, services, allocations, server-group memberships, aggregates)
at start. :meth:`select_destinations` runs the filters and weighers and records
the claims without awaiting between the choice and the claim, so two concurrent
boots can never take the same last slot, nor the same anti-affinity host; the
claims are then made durable as ``allocations`` rows.

Several instances (a multi-create) are placed by one call, all or none: each is
chosen and claimed in turn, seeing the claims of the ones before it, and if one
finds no host every claim of the call is released.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict
from typing import Any

import structlog
from sqlmodel import Session, col, select

from novalite import rpc
from novalite.config import Config
from novalite.context import RequestContext
from novalite.db.engine import Database
from novalite.db.models import (
    Aggregate,
    AggregateHost,
    AggregateMetadata,
    Allocation,
    ComputeNode,
    InstanceGroup,
    InstanceGroupMember,
    Service,
)
from novalite.exceptions import NoValidHost
from novalite.scheduler import plugins
from novalite.scheduler.filters import Filter
from novalite.scheduler.host_state import HostState, RequestSpec
from novalite.scheduler.weighers import Weigher

log = structlog.get_logger("novalite.scheduler")

RATIOS = ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio")

#: A claim: (host, vcpus, memory_mb, disk_gb, server group uuid or None)
Claim = tuple[str, int, int, int, str | None]


class SchedulerManager:
    """Handles the ``scheduler`` topic: its ``@rpc.method`` methods are what
    :class:`~novalite.rpc.scheduler.SchedulerClient` sends."""

    def __init__(self, db: Database, cfg: Config) -> None:
        self.db = db
        self.cfg = cfg
        self.hosts: dict[str, HostState] = {}
        self.claims: dict[str, Claim] = {}
        #: server group uuid -> host -> how many of its members the host holds
        self.group_hosts: dict[str, dict[str, int]] = {}
        #: host -> aggregates' (zone, metadata) as last loaded
        self._host_aggregates: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.hosts_with_failed_builds: set[str] = set()
        self.options: dict[str, Any] = {**asdict(cfg.scheduler),
                                        "service_down_time": cfg.compute.service_down_time,
                                        "hosts_with_failed_builds":
                                            self.hosts_with_failed_builds}
        self.options["isolated_hosts"] = set(cfg.scheduler.isolated_hosts)
        self.options["isolated_images"] = set(cfg.scheduler.isolated_images)
        # Built-in and third-party filters/weighers load alike, through entry points.
        self.filters: list[Filter] = [plugins.load("filter", name)(self.options)
                                      for name in cfg.scheduler.enabled_filters]
        self.weighers: list[Weigher] = [plugins.load("weigher", name)(self.options)
                                        for name in cfg.scheduler.weighers]
        self.subset_size = cfg.scheduler.host_subset_size

    # -- state -----------------------------------------------------------------
    async def load(self) -> None:
        """Rebuild the in-memory view from the database."""

        def work(s: Session) -> tuple[Any, ...]:
            members = s.exec(select(InstanceGroupMember.instance_uuid, InstanceGroup.uuid)
                             .join(InstanceGroup,
                                   col(InstanceGroup.id) == InstanceGroupMember.group_id)).all()
            return (list(s.exec(select(ComputeNode)).all()),
                    list(s.exec(select(Service).where(Service.binary == "nova-compute")).all()),
                    list(s.exec(select(Allocation)).all()), dict(members),
                    _aggregates_in(s))

        nodes, services, allocations, groups, aggregates = await self.db.read(work)
        for node in nodes:
            self._update_node(node.host, {
                "vcpus": node.vcpus, "memory_mb": node.memory_mb, "local_gb": node.local_gb,
                "hypervisor_type": node.hypervisor_type,
                "hypervisor_version": node.hypervisor_version, "cpu_info": node.cpu_info,
                "supported_instances": node.supported_instances})
        for svc in services:
            state = self._host(svc.host)
            state.disabled = svc.disabled or svc.forced_down
            state.service_zone = state.availability_zone = svc.availability_zone
        for a in allocations:
            self._claim(a.host, a.instance_uuid, a.vcpus, a.memory_mb, a.disk_gb,
                        groups.get(a.instance_uuid))
        self.set_aggregates(aggregates)

    def _host(self, host: str) -> HostState:
        state = self.hosts.get(host)
        if state is None:
            sc = self.cfg.scheduler
            state = self.hosts[host] = HostState(
                host, cpu_allocation_ratio=sc.cpu_allocation_ratio,
                ram_allocation_ratio=sc.ram_allocation_ratio,
                disk_allocation_ratio=sc.disk_allocation_ratio)
            self._apply_aggregates(state)
        return state

    def _update_node(self, host: str, r: dict[str, Any]) -> None:
        state = self._host(host)
        state.vcpus, state.memory_mb, state.local_gb = r["vcpus"], r["memory_mb"], r["local_gb"]
        state.hypervisor_type = r["hypervisor_type"]
        state.hypervisor_version = int(r.get("hypervisor_version") or 0)
        state.cpu_info = dict(r.get("cpu_info") or {})
        state.supported_instances = tuple(tuple(x) for x in r.get("supported_instances", []))
        state.recompute()

    def set_aggregates(self, aggregates: list[dict[str, Any]]) -> None:
        """Take the aggregates (id, hosts, metadata): zones, metadata and ratio overrides."""
        by_host: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for agg in aggregates:
            for host in agg["hosts"]:
                by_host.setdefault(host, []).append((agg["id"], dict(agg["metadata"])))
        before = set(self._host_aggregates)
        self._host_aggregates = by_host
        for host in before | set(by_host):
            if host in by_host or host in self.hosts:
                self._apply_aggregates(self._host(host))

    def _apply_aggregates(self, state: HostState) -> None:
        aggs = self._host_aggregates.get(state.host, [])
        metadata: dict[str, set[str]] = {}
        for _id, md in aggs:
            for key, value in md.items():
                metadata.setdefault(key, set()).add(value)
        state.aggregates = [i for i, _ in aggs]
        state.aggregate_metadata = metadata
        zones = metadata.get("availability_zone")
        state.availability_zone = min(zones) if zones else state.service_zone
        sc = self.cfg.scheduler
        for key in RATIOS:
            ratio = getattr(sc, key)
            values = []
            for v in metadata.get(key, ()):
                try:
                    if float(v) > 0:
                        values.append(float(v))
                except ValueError:
                    log.warning("aggregate metadata is not a number; ignored", key=key,
                                value=v, host=state.host)
            setattr(state, key, min(values) if values else ratio)
        state.recompute()

    def _claim(self, host: str, uuid: str, vcpus: int, memory_mb: int, disk_gb: int,
               group: str | None = None) -> None:
        if uuid in self.claims:
            self._release(uuid)
        self._host(host).claim(uuid, vcpus, memory_mb, disk_gb)
        self.claims[uuid] = (host, vcpus, memory_mb, disk_gb, group)
        if group:
            counts = self.group_hosts.setdefault(group, {})
            counts[host] = counts.get(host, 0) + 1

    def _release(self, uuid: str) -> str | None:
        claim = self.claims.pop(uuid, None)
        if claim is None:
            return None
        host, vcpus, memory_mb, disk_gb, group = claim
        self._host(host).release(uuid, vcpus, memory_mb, disk_gb)
        if group and group in self.group_hosts:
            counts = self.group_hosts[group]
            counts[host] -= 1
            if counts[host] <= 0:
                del counts[host]
            if not counts:
                del self.group_hosts[group]
        return host

    # -- choosing --------------------------------------------------------------
    def choose(self, spec: RequestSpec) -> HostState:
        """Filter, then weigh; raises NoValidHost saying how many hosts each filter removed."""
        if spec.group:
            spec.group_hosts = dict(self.group_hosts.get(spec.group["uuid"], {}))
        candidates = list(self.hosts.values())
        removed: list[str] = []
        if spec.ignore_hosts:
            ignore = set(spec.ignore_hosts)
            candidates = [h for h in candidates if h.host not in ignore]
            removed.append(f"{len(self.hosts) - len(candidates)} host(s) already tried")
        if spec.requested_host:
            before = len(candidates)
            candidates = [h for h in candidates if h.host == spec.requested_host]
            if len(candidates) < before:
                removed.append(f"the requested host left out {before - len(candidates)}")
            if spec.force_host and candidates:
                return candidates[0]
        for f in self.filters:
            if not candidates:
                break
            if not f.applies(spec):
                continue
            before = len(candidates)
            candidates = f.filter_all(candidates, spec)
            if len(candidates) < before:
                removed.append(f"{f.name} removed {before - len(candidates)}")
        if not candidates:
            why = "; ".join(removed) or "no compute hosts are registered"
            log.debug("no valid host", instance=spec.instance_uuid, filters=removed,
                      hosts=len(self.hosts))
            raise NoValidHost(f"No valid host was found. {why} "
                              f"(of {len(self.hosts)} host(s)).")
        if len(candidates) == 1:
            return candidates[0]
        totals = self.weigh(candidates, spec)
        if totals is None:
            return candidates[0]
        if self.subset_size == 1:
            best = max(totals)
            top = [i for i, t in enumerate(totals) if t == best]
        else:
            order = sorted(range(len(totals)), key=totals.__getitem__, reverse=True)
            top = order[: self.subset_size]
        return candidates[top[0] if len(top) == 1 else random.choice(top)]

    def weigh(self, hosts: list[HostState], spec: RequestSpec) -> list[float] | None:
        """Each host's total: the sum over weighers of multiplier × normalized weight.

        Nova's normalization maps each weigher's min..max onto 0..1; the min's
        offset is the same for every host, so it is left out (the order is Nova's).
        None when no weigher applies."""
        totals: list[float] | None = None
        for w in self.weighers:
            if w.multiplier == 0 or not w.applies(spec):
                continue
            values = w.weigh_all(hosts, spec)
            lo, hi = min(values), max(values)
            if hi == lo:
                continue
            scale = w.multiplier / (hi - lo)
            if totals is None:
                totals = [v * scale for v in values]
            else:
                totals = [t + v * scale for t, v in zip(totals, values, strict=True)]
        return totals

    async def select_destinations(self, spec: RequestSpec | None = None, persist: bool = True,
                                  specs: list[RequestSpec] | None = None) -> Any:
        """Choose a host for each spec and claim the resources on it, all or none.

        With ``spec``: returns one destination; with ``specs``: a list, in order.
        A destination is ``{"host", "node", "allocation"}``. The claims are in memory
        at once; their ``Allocation`` rows are written here, or, with ``persist=False``,
        by the caller in its own transaction (the conductor writes them with the host
        assignment, and releases the claims if that fails).
        """
        todo = [spec] if spec is not None else list(specs or [])
        dests: list[dict[str, Any]] = []
        # Choice and claim, for every instance, before the first await.
        try:
            for index, one in enumerate(todo):
                try:
                    state = self.choose(one)
                except NoValidHost as exc:
                    if len(todo) > 1:
                        raise NoValidHost(f"{exc.message} Placing instance {index + 1} of "
                                          f"{len(todo)} of a multi-create; none was placed."
                                          ) from None
                    raise
                group = one.group["uuid"] if one.group else None
                self._claim(state.host, one.instance_uuid, one.vcpus, one.memory_mb,
                            one.disk_gb, group)
                alloc = {"instance_uuid": one.instance_uuid, "host": state.host,
                         "vcpus": one.vcpus, "memory_mb": one.memory_mb,
                         "disk_gb": one.disk_gb}
                dests.append({"host": state.host, "node": state.host, "allocation": alloc})
        except NoValidHost:
            for d in dests:
                self._release(d["allocation"]["instance_uuid"])
            raise
        if persist:
            def work(s: Session) -> None:
                for d in dests:
                    s.merge(Allocation(**d["allocation"]))

            try:
                await self.db.write(work)
            except BaseException:
                for d in dests:
                    self._release(d["allocation"]["instance_uuid"])
                raise
        log.debug("hosts selected", placed={d["allocation"]["instance_uuid"]: d["host"]
                                            for d in dests})
        return dests[0] if spec is not None else dests

    async def release(self, instance_uuid: str) -> str | None:
        host = self._release(instance_uuid)

        def work(s: Session) -> None:
            row = s.get(Allocation, instance_uuid)
            if row is not None:
                s.delete(row)

        await self.db.write(work)
        return host

    def build_result(self, host: str, success: bool) -> None:
        """Count a host's failed builds since its last success (BuildFailureWeigher)."""
        state = self._host(host)
        if success:
            state.failed_builds = 0
            self.hosts_with_failed_builds.discard(host)
        else:
            state.failed_builds += 1
            self.hosts_with_failed_builds.add(host)

    def host_update(self, a: dict[str, Any]) -> None:
        state = self._host(a["host"])
        if "resources" in a:
            self._update_node(a["host"], a["resources"])
        if "availability_zone" in a and a["availability_zone"] != state.service_zone:
            state.service_zone = a["availability_zone"]
            self._apply_aggregates(state)
        if "disabled" in a:
            state.disabled = bool(a["disabled"])
        if a.get("heartbeat"):
            state.last_seen = time.monotonic()

    async def reload_aggregates(self) -> None:
        self.set_aggregates(await self.db.read(_aggregates_in))

    # -- the scheduler topic (novalite.rpc.scheduler.SchedulerClient) -------------------
    # Wire names of their own where the in-process method of that name takes no context.
    @rpc.method(name="select_destinations")
    async def select_destinations_for(self, ctx: RequestContext, specs: list[dict[str, Any]],
                                      persist: bool = True) -> list[dict[str, Any]]:
        dests: list[dict[str, Any]] = await self.select_destinations(
            None, persist, specs=[RequestSpec.from_dict(x) for x in specs])
        return dests

    @rpc.method(name="release")
    async def release_for(self, ctx: RequestContext, instance_uuid: str) -> str | None:
        return await self.release(instance_uuid)

    # -- moves: resize and cold migration ----------------------------------------------
    @rpc.method
    async def move_claim(self, ctx: RequestContext, spec: dict[str, Any],
                         migration_uuid: str) -> dict[str, Any]:
        """Choose a destination for a resize or cold migration and claim the new
        flavor's resources there for the instance, moving its old claim on the source
        to ``migration_uuid`` (as Nova moves the source allocation to the migration
        consumer), in one step. Raises NoValidHost (nothing claimed, nothing moved)."""
        request = RequestSpec.from_dict(spec)
        uuid = request.instance_uuid
        state = self.choose(request)
        old = self.claims.get(uuid)
        if old is not None:
            self._release(uuid)
            self._claim(old[0], migration_uuid, old[1], old[2], old[3], None)
        group = request.group["uuid"] if request.group else (old[4] if old else None)
        self._claim(state.host, uuid, request.vcpus, request.memory_mb, request.disk_gb, group)
        rows = [Allocation(instance_uuid=uuid, host=state.host, vcpus=request.vcpus,
                           memory_mb=request.memory_mb, disk_gb=request.disk_gb)]
        if old is not None:
            rows.append(Allocation(instance_uuid=migration_uuid, host=old[0], vcpus=old[1],
                                   memory_mb=old[2], disk_gb=old[3]))

        def work(s: Session) -> None:
            for row in rows:
                s.merge(row)

        try:
            await self.db.write(work)
        except BaseException:
            self._revert_move(uuid, migration_uuid)
            raise
        return {"host": state.host, "node": state.host}

    def _revert_move(self, uuid: str, migration_uuid: str) -> Claim | None:
        current = self.claims.get(uuid)
        self._release(uuid)
        old = self.claims.get(migration_uuid)
        if old is None:
            return None
        self._release(migration_uuid)
        self._claim(old[0], uuid, old[1], old[2], old[3], current[4] if current else None)
        return old

    @rpc.method
    async def revert_move_claim(self, ctx: RequestContext, instance_uuid: str,
                                migration_uuid: str) -> None:
        """A resize or cold migration reverted or failed: drop the destination's claim
        and give the source's (held by ``migration_uuid``) back to the instance."""
        old = self._revert_move(instance_uuid, migration_uuid)

        def work(s: Session) -> None:
            for key in (instance_uuid, migration_uuid):
                row = s.get(Allocation, key)
                if row is not None:
                    s.delete(row)
            if old is not None:
                s.flush()
                s.add(Allocation(instance_uuid=instance_uuid, host=old[0], vcpus=old[1],
                                 memory_mb=old[2], disk_gb=old[3]))

        await self.db.write(work)

    @rpc.method(name="host_update")
    async def host_update_for(self, ctx: RequestContext, **update: Any) -> None:
        self.host_update(update)

    @rpc.method
    async def hosts_update(self, ctx: RequestContext, updates: list[dict[str, Any]]) -> None:
        for one in updates:
            self.host_update(one)

    @rpc.method(name="build_result")
    async def build_result_for(self, ctx: RequestContext, host: str, success: bool) -> None:
        self.build_result(host, bool(success))

    @rpc.method
    async def aggregates_changed(self, ctx: RequestContext) -> None:
        await self.reload_aggregates()

    @rpc.method
    async def host_usage(self, ctx: RequestContext) -> dict[str, dict[str, int]]:
        return {h: {"vcpus_used": s.vcpus_used, "memory_mb_used": s.memory_mb_used,
                    "disk_gb_used": s.disk_gb_used, "running_vms": s.num_instances}
                for h, s in self.hosts.items()}


def _aggregates_in(s: Session) -> list[dict[str, Any]]:
    """Every aggregate as plain data: id, hosts, metadata."""
    out: dict[int, dict[str, Any]] = {}
    for agg in s.exec(select(Aggregate)).all():
        out[agg.id or 0] = {"id": agg.id, "hosts": [], "metadata": {}}
    for row in s.exec(select(AggregateHost)).all():
        if row.aggregate_id in out:
            out[row.aggregate_id]["hosts"].append(row.host)
    for md in s.exec(select(AggregateMetadata)).all():
        if md.aggregate_id in out:
            out[md.aggregate_id]["metadata"][md.key] = md.value
    return list(out.values())
