"""Host aggregates (``os-aggregates``) and availability zones (``os-availability-zone``).

An aggregate groups hosts and carries metadata: the AggregateInstanceExtraSpecsFilter
matches flavors on it, ``cpu/ram/disk_allocation_ratio`` override the ratios for
its hosts, and ``availability_zone`` puts its hosts in that zone (a host is in at
most one zone; hosts in no zoned aggregate are in ``[compute] availability_zone``).
Every change is handed to the scheduler before the request returns, so the
next boot sees it.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from novalite.config import Config
from novalite.db.engine import Database
from novalite.db.models import Aggregate, AggregateHost, AggregateMetadata, Service, utcnow
from novalite.exceptions import BadRequest, Conflict, NotFound
from novalite.rpc import current_context
from novalite.rpc.scheduler import SchedulerClient

AZ_KEY = "availability_zone"


@dataclass
class AggregateRecord:
    aggregate: Aggregate
    hosts: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def availability_zone(self) -> str | None:
        return self.metadata.get(AZ_KEY)


@dataclass
class ZoneHost:
    """A compute service as os-availability-zone detail shows it."""

    host: str
    zone: str
    service: Service


class AggregateAPI:
    """Business rules of os-aggregates and of the zones they define."""

    def __init__(self, db: Database, cfg: Config, scheduler: SchedulerClient) -> None:
        self.db = db
        self.cfg = cfg
        self.scheduler = scheduler

    # -- reading -------------------------------------------------------------------
    def _record(self, s: Session, agg: Aggregate) -> AggregateRecord:
        hosts = [h.host for h in s.exec(select(AggregateHost).where(
            AggregateHost.aggregate_id == agg.id).order_by(col(AggregateHost.host))).all()]
        metadata = {m.key: m.value for m in s.exec(select(AggregateMetadata).where(
            AggregateMetadata.aggregate_id == agg.id)).all()}
        return AggregateRecord(agg, hosts, metadata)

    def _find(self, s: Session, aggregate_id: str) -> Aggregate:
        agg = None
        if str(aggregate_id).isdigit() and len(str(aggregate_id)) < 19:  # fits 64 bits
            agg = s.get(Aggregate, int(aggregate_id))
        if agg is None:
            raise NotFound(f"Aggregate {aggregate_id} could not be found.")
        return agg

    async def list(self) -> list[AggregateRecord]:
        def work(s: Session) -> list[AggregateRecord]:
            return [self._record(s, a) for a in
                    s.exec(select(Aggregate).order_by(Aggregate.id)).all()]  # type: ignore[arg-type]

        return await self.db.read(work)

    async def get(self, aggregate_id: str) -> AggregateRecord:
        return await self.db.read(lambda s: self._record(s, self._find(s, aggregate_id)))

    # -- writing -------------------------------------------------------------------
    async def _write(self, fn: Any) -> AggregateRecord:
        record: AggregateRecord = await self.db.write(fn)
        await self.scheduler.aggregates_changed(current_context())
        return record

    def _check_name(self, s: Session, name: str, own_id: int | None = None) -> None:
        clash = s.exec(select(Aggregate).where(Aggregate.name == name)).first()
        if clash is not None and clash.id != own_id:
            raise Conflict(f"Aggregate {name} already exists.")

    def _check_zone(self, s: Session, agg_id: int, zone: str | None,
                    hosts: builtins.list[str]) -> None:
        """A host is in one zone at most: refuse a zone its other aggregates contradict."""
        if not zone:
            return
        if zone == "internal":
            raise BadRequest("Invalid availability zone name: internal is reserved")
        others = s.exec(select(AggregateHost.host, AggregateMetadata.value)
                        .join(AggregateMetadata,
                              col(AggregateMetadata.aggregate_id) == AggregateHost.aggregate_id)
                        .where(AggregateMetadata.key == AZ_KEY,
                               AggregateHost.aggregate_id != agg_id)).all()
        clash = sorted({z for h, z in others if h in hosts and z != zone})
        if clash:
            raise BadRequest(f"Cannot add host to aggregate {agg_id}. Reason: One or more "
                             f"hosts already in availability zone(s) {clash}.")

    async def create(self, name: str, zone: str | None) -> AggregateRecord:
        def work(s: Session) -> AggregateRecord:
            self._check_name(s, name)
            agg = Aggregate(name=name)
            s.add(agg)
            s.flush()
            if zone:
                self._check_zone(s, agg.id or 0, zone, [])
                s.add(AggregateMetadata(aggregate_id=agg.id or 0, key=AZ_KEY, value=zone))
            return AggregateRecord(agg, [], {AZ_KEY: zone} if zone else {})

        return await self._write(work)

    async def update(self, aggregate_id: str, values: dict[str, Any]) -> AggregateRecord:
        def work(s: Session) -> AggregateRecord:
            agg = self._find(s, aggregate_id)
            if "name" in values:
                self._check_name(s, values["name"], agg.id)
                agg.name = values["name"]
            if "availability_zone" in values:
                self._set_metadata(s, agg, {AZ_KEY: values["availability_zone"]})
            agg.updated_at = utcnow()
            s.add(agg)
            s.flush()
            return self._record(s, agg)

        return await self._write(work)

    async def delete(self, aggregate_id: str) -> None:
        def work(s: Session) -> AggregateRecord:
            agg = self._find(s, aggregate_id)
            record = self._record(s, agg)
            if record.hosts:
                raise BadRequest(f"Invalid aggregate action: delete for aggregate "
                                 f"{aggregate_id}. Reason: Host aggregate is not empty.")
            for m in s.exec(select(AggregateMetadata).where(
                    AggregateMetadata.aggregate_id == agg.id)).all():
                s.delete(m)
            s.delete(agg)
            return record

        await self._write(work)

    async def add_host(self, aggregate_id: str, host: str) -> AggregateRecord:
        def work(s: Session) -> AggregateRecord:
            agg = self._find(s, aggregate_id)
            if s.exec(select(Service).where(Service.host == host,
                                            Service.binary == "nova-compute")).first() is None:
                raise NotFound(f"Compute host {host} could not be found.")
            record = self._record(s, agg)
            if host in record.hosts:
                raise Conflict(f"Aggregate {aggregate_id} already has host {host}.")
            self._check_zone(s, agg.id or 0, record.availability_zone, [host])
            s.add(AggregateHost(aggregate_id=agg.id or 0, host=host))
            agg.updated_at = utcnow()
            s.add(agg)
            s.flush()
            return self._record(s, agg)

        return await self._write(work)

    async def remove_host(self, aggregate_id: str, host: str) -> AggregateRecord:
        def work(s: Session) -> AggregateRecord:
            agg = self._find(s, aggregate_id)
            row = s.get(AggregateHost, (agg.id, host))
            if row is None:
                raise NotFound(f"Aggregate {aggregate_id} has no host {host}.")
            s.delete(row)
            agg.updated_at = utcnow()
            s.add(agg)
            s.flush()
            return self._record(s, agg)

        return await self._write(work)

    def _set_metadata(self, s: Session, agg: Aggregate, metadata: dict[str, Any]) -> None:
        if AZ_KEY in metadata:
            hosts = [h.host for h in s.exec(select(AggregateHost).where(
                AggregateHost.aggregate_id == agg.id)).all()]
            self._check_zone(s, agg.id or 0, metadata[AZ_KEY], hosts)
        for key, value in metadata.items():
            row = s.get(AggregateMetadata, (agg.id, key))
            if value is None:
                if row is not None:
                    s.delete(row)
                continue
            row = row or AggregateMetadata(aggregate_id=agg.id or 0, key=key)
            row.value = str(value)
            s.add(row)

    async def set_metadata(self, aggregate_id: str, metadata: dict[str, Any]
                           ) -> AggregateRecord:
        def work(s: Session) -> AggregateRecord:
            agg = self._find(s, aggregate_id)
            self._set_metadata(s, agg, metadata)
            agg.updated_at = utcnow()
            s.add(agg)
            s.flush()
            return self._record(s, agg)

        return await self._write(work)

    # -- zones -----------------------------------------------------------------------
    async def zone_hosts(self) -> builtins.list[ZoneHost]:
        """Every compute service with its zone (its aggregate's, else the default)."""

        def work(s: Session) -> builtins.list[ZoneHost]:
            zones = dict(s.exec(select(AggregateHost.host, AggregateMetadata.value)
                                .join(AggregateMetadata, col(AggregateMetadata.aggregate_id)
                                      == AggregateHost.aggregate_id)
                                .where(AggregateMetadata.key == AZ_KEY)).all())
            services = s.exec(select(Service).where(Service.binary == "nova-compute")
                              .order_by(col(Service.host))).all()
            return [ZoneHost(svc.host, zones.get(svc.host) or svc.availability_zone, svc)
                    for svc in services]

        return await self.db.read(work)

    async def zone_names(self) -> set[str]:
        """Zones a boot may ask for: those with a compute host, and the default."""
        return {z.zone for z in await self.zone_hosts()} | {self.cfg.compute.availability_zone}
