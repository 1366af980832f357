"""Hosts as the API shows them: compute services, hypervisors, zones and usage."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session, select

from novalite.compute.flavors import FlavorAPI
from novalite.config import Config
from novalite.db.engine import Database
from novalite.db.models import ComputeNode, Instance, Service, utcnow
from novalite.exceptions import BadRequest, NotFound
from novalite.rpc import current_context
from novalite.rpc.scheduler import SchedulerClient


class HostAPI:
    """Services, hypervisors and hosts; flavors through :attr:`flavor_api`."""

    def __init__(self, db: Database, cfg: Config, scheduler: SchedulerClient,
                 flavor_cache: dict[str, Any] | None = None) -> None:
        self.db = db
        self.cfg = cfg
        self.scheduler = scheduler
        self.flavor_cache = flavor_cache if flavor_cache is not None else {}
        #: Flavors, their access lists and extra specs.
        self.flavor_api = FlavorAPI(db, self.flavor_cache)

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

def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Invalid {name} filter [{value}]") from None


def service_time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
