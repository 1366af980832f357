"""Hosts as the API shows them: compute services, hypervisors, zones and usage.

The conductor and the scheduler run in the control process beside the API: they are
listed as services (``nova-conductor``, ``nova-scheduler``) on that process's host,
with rows of their own (made on the first listing) so that an admin may disable
them as in Nova, and up while the process answers."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from sqlmodel import Session, select

from novalite.compute.flavors import FlavorAPI
from novalite.compute.usage import UsageAPI
from novalite.config import Config
from novalite.db.engine import Database
from novalite.db.models import ComputeNode, Instance, Service, utcnow
from novalite.exceptions import NotFound, NovaliteError
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
        #: Usage over a period, and the usage audit log.
        self.usage_api = UsageAPI(db)
        #: The host the control services run on.
        self.control_host = socket.gethostname()
        self._control_rows = False

    def is_up(self, svc: Service) -> bool:
        if svc.forced_down or svc.updated_at is None:
            return False
        if svc.binary in CONTROL_BINARIES and svc.host == self.control_host:
            return True  # in this process, which is answering
        age = (utcnow() - svc.updated_at).total_seconds()
        return age < self.cfg.compute.service_down_time

    async def _ensure_control_rows(self) -> None:
        """The conductor's and the scheduler's service rows, made once per process."""
        if self._control_rows:
            return

        def work(s: Session) -> None:
            for binary in CONTROL_BINARIES:
                svc = s.exec(select(Service).where(Service.host == self.control_host,
                                                   Service.binary == binary)).first()
                if svc is None:
                    svc = Service(host=self.control_host, binary=binary,
                                  topic=binary.removeprefix("nova-"),
                                  availability_zone="internal")
                svc.updated_at = utcnow()
                s.add(svc)

        await self.db.write(work)
        self._control_rows = True

    async def services(self, filters: dict[str, str]) -> list[Service]:
        """Every service (``host``/``binary`` narrow), compute and control."""
        await self._ensure_control_rows()

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

    async def instances_on(self, host: str) -> list[Instance]:
        """The live instances on a compute host."""
        return await self.db.read(lambda s: list(s.exec(select(Instance).where(
            Instance.host == host, Instance.deleted == 0).order_by(Instance.id)).all()))  # type: ignore[arg-type]

    async def host_resources(self, host: str) -> tuple[ComputeNode, list[Instance]]:
        """A compute host's node and its live instances (``os-hosts/{host}``)."""
        def work(s: Session) -> ComputeNode | None:
            return s.exec(select(ComputeNode).where(ComputeNode.host == host)).first()

        node = await self.db.read(work)
        if node is None:
            raise NotFound(f"Compute host {host} could not be found.")
        return node, await self.instances_on(host)

    def uptime(self, host: str) -> str:
        """The host's ``uptime`` line, as libvirt's driver answers it. Only the hosts this
        process runs are known (they are this machine); another is not supported."""
        if host not in self.cfg.host_names:
            raise NotImplementedByHost("The requested functionality is not supported.")
        try:
            with open("/proc/uptime") as f:
                seconds = int(float(f.read().split()[0]))
            with open("/proc/loadavg") as f:
                loads = f.read().split()[:3]
        except OSError:
            raise NotImplementedByHost("The requested functionality is not supported."
                                       ) from None
        days, rest = divmod(seconds, 86400)
        hours, minutes = rest // 3600, rest % 3600 // 60
        now = dt.datetime.now().strftime("%H:%M:%S")
        since = f"{days} day{'s' if days != 1 else ''}, " if days else ""
        return f" {now} up {since}{hours:2d}:{minutes:02d},  load average: {', '.join(loads)}"

    async def usage(self) -> dict[str, dict[str, int]]:
        return await self.scheduler.host_usage(current_context())

    async def project_usage(self, project_id: str) -> dict[str, int]:
        def work(s: Session) -> dict[str, int]:
            rows = s.exec(select(Instance).where(Instance.project_id == project_id,
                                                 Instance.deleted == 0)).all()
            return {"instances": len(rows), "cores": sum(r.vcpus for r in rows),
                    "ram": sum(r.memory_mb for r in rows)}

        return await self.db.read(work)

#: The services of the control process besides the API.
CONTROL_BINARIES = ("nova-conductor", "nova-scheduler")


class NotImplementedByHost(NovaliteError):
    """The requested functionality is not supported."""

    code = 501
    title = "notImplemented"


def service_time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
