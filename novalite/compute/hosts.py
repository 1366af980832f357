"""Hosts as the API shows them: compute services, hypervisors, zones and usage."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session, select

from novalite.config import Config
from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import ComputeNode, Flavor, FlavorExtraSpec, Instance, Service, utcnow
from novalite.exceptions import BadRequest, NotFound
from novalite.rpc import current_context
from novalite.rpc.scheduler import SchedulerClient


class HostAPI:
    """Services, hypervisors, flavors listing and limits."""

    def __init__(self, db: Database, cfg: Config, scheduler: SchedulerClient,
                 flavor_cache: dict[str, Any] | None = None) -> None:
        self.db = db
        self.cfg = cfg
        self.scheduler = scheduler
        self.flavor_cache = flavor_cache if flavor_cache is not None else {}

    def is_up(self, svc: Service) -> bool:
        if svc.forced_down or svc.updated_at is None:
            return False
        age = (utcnow() - svc.updated_at).total_seconds()
        return age < self.cfg.compute.service_down_time

    async def services(self, filters: dict[str, str]) -> list[Service]:
        def work(s: Session) -> list[Service]:
            q = select(Service)
            if filters.get("host"):
                q = q.where(Service.host == filters["host"])
            if filters.get("binary"):
                q = q.where(Service.binary == filters["binary"])
            return list(s.exec(q.order_by(Service.id)).all())  # type: ignore[arg-type]

        return await self.db.read(work)

    async def set_service(self, match: dict[str, Any], values: dict[str, Any]) -> Service:
        def work(s: Session) -> Service | None:
            q = select(Service)
            if "id" in match:
                q = q.where(Service.uuid == match["id"])
            else:
                q = q.where(Service.host == match["host"], Service.binary == match["binary"])
            svc = s.exec(q).first()
            if svc is None:
                return None
            for k, v in values.items():
                setattr(svc, k, v)
            s.add(svc)
            return svc

        svc = await self.db.write(work)
        if svc is None:
            raise NotFound(f"Service {match.get('id') or match.get('host')} not found.")
        if svc.binary == "nova-compute":
            await self.scheduler.host_update(current_context(), svc.host,
                                             disabled=svc.disabled or svc.forced_down)
        return svc

    async def hypervisors(self) -> list[tuple[ComputeNode, Service | None]]:
        def work(s: Session) -> list[tuple[ComputeNode, Service | None]]:
            nodes = s.exec(select(ComputeNode).order_by(ComputeNode.id)).all()  # type: ignore[arg-type]
            services = {x.host: x for x in s.exec(select(Service).where(
                Service.binary == "nova-compute")).all()}
            return [(n, services.get(n.host)) for n in nodes]

        return await self.db.read(work)

    async def usage(self) -> dict[str, dict[str, int]]:
        return await self.scheduler.host_usage(current_context())

    async def project_usage(self, project_id: str) -> dict[str, int]:
        def work(s: Session) -> dict[str, int]:
            rows = s.exec(select(Instance).where(Instance.project_id == project_id,
                                                 Instance.deleted == 0)).all()
            return {"instances": len(rows), "cores": sum(r.vcpus for r in rows),
                    "ram": sum(r.memory_mb for r in rows)}

        return await self.db.read(work)

    # -- flavors ------------------------------------------------------------------
    async def flavors(self, ctx: AuthContext, query: dict[str, str]
                      ) -> list[tuple[Flavor, dict[str, str]]]:
        is_public = str(query.get("is_public", "true")).lower()
        min_ram = _int(query.get("minRam"), "minRam")
        min_disk = _int(query.get("minDisk"), "minDisk")
        limit = _int(query.get("limit"), "limit")

        def work(s: Session) -> list[tuple[Flavor, dict[str, str]]]:
            q = select(Flavor).where(Flavor.disabled == False)  # noqa: E712
            if is_public in ("true", "1", "yes", "t") or not ctx.is_admin:
                if is_public not in ("none",) or not ctx.is_admin:
                    q = q.where(Flavor.is_public == True)  # noqa: E712
            elif is_public in ("false", "0", "no", "f"):
                q = q.where(Flavor.is_public == False)  # noqa: E712
            if min_ram is not None:
                q = q.where(Flavor.memory_mb >= min_ram)
            if min_disk is not None:
                q = q.where(Flavor.root_gb >= min_disk)
            flavors = list(s.exec(q.order_by(Flavor.memory_mb, Flavor.flavorid)).all())  # type: ignore[arg-type]
            specs: dict[int, dict[str, str]] = {}
            for e in s.exec(select(FlavorExtraSpec)).all():
                specs.setdefault(e.flavor_id, {})[e.key] = e.value
            return [(f, specs.get(f.id or 0, {})) for f in flavors]

        found = await self.db.read(work)
        if query.get("marker"):
            ids = [f.flavorid for f, _ in found]
            if query["marker"] not in ids:
                raise BadRequest(f"marker [{query['marker']}] not found")
            found = found[ids.index(query["marker"]) + 1 :]
        return found[:limit] if limit is not None else found

    async def create_flavor(self, body: dict[str, Any]) -> tuple[Flavor, dict[str, str]]:
        import uuid

        flavor = Flavor(
            flavorid=str(body.get("id") or uuid.uuid4()), name=body["name"],
            memory_mb=int(body["ram"]), vcpus=int(body["vcpus"]), root_gb=int(body["disk"]),
            ephemeral_gb=int(body.get("OS-FLV-EXT-DATA:ephemeral", 0)),
            swap=int(body.get("swap") or 0), rxtx_factor=float(body.get("rxtx_factor", 1.0)),
            is_public=bool(body.get("os-flavor-access:is_public", True)),
            description=body.get("description"))

        def work(s: Session) -> Flavor:
            clash = s.exec(select(Flavor).where(
                (Flavor.name == flavor.name) | (Flavor.flavorid == flavor.flavorid))).first()
            if clash is not None:
                from novalite.exceptions import Conflict

                raise Conflict(f"Flavor with name {flavor.name} or ID {flavor.flavorid} "
                               "already exists.")
            s.add(flavor)
            return flavor

        try:
            return await self.db.write(work), {}
        finally:
            self.flavor_cache.clear()

    async def delete_flavor(self, flavor_id: str) -> None:
        def work(s: Session) -> bool:
            flavor = s.exec(select(Flavor).where(Flavor.flavorid == flavor_id)).first()
            if flavor is None:
                return False
            for e in s.exec(select(FlavorExtraSpec).where(
                    FlavorExtraSpec.flavor_id == flavor.id)).all():
                s.delete(e)
            s.delete(flavor)
            return True

        found = await self.db.write(work)
        self.flavor_cache.clear()  # after the commit: no boot re-caches the old row
        if not found:
            raise NotFound(f"Flavor {flavor_id} could not be found.")

    async def set_extra_specs(self, flavor: Flavor, specs: dict[str, str]) -> None:
        def work(s: Session) -> None:
            for key, value in specs.items():
                s.merge(FlavorExtraSpec(flavor_id=flavor.id or 0, key=key, value=str(value)))

        await self.db.write(work)
        self.flavor_cache.clear()

    async def delete_extra_spec(self, flavor: Flavor, key: str) -> None:
        def work(s: Session) -> bool:
            row = s.get(FlavorExtraSpec, (flavor.id, key))
            if row is None:
                return False
            s.delete(row)
            return True

        found = await self.db.write(work)
        self.flavor_cache.clear()
        if not found:
            raise NotFound(f"Flavor {flavor.flavorid} has no extra specs with key {key}.")


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Invalid {name} filter [{value}]") from None


def service_time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
