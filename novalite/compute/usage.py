"""Usage of projects over a period (``os-simple-tenant-usage``) and the instance usage
audit log (``os-instance_usage_audit_log``), counted from the instance records as
Nova counts them: an instance is billed from its launch (or the period's start) to
its termination (or the period's end)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from novalite.db.engine import Database
from novalite.db.models import Instance, Service, utcnow
from novalite.exceptions import BadRequest

_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def parse_time(text: str | None) -> dt.datetime:
    """Nova's ``_parse_datetime`` for ``start``/``end`` (naive UTC); none is now."""
    if not text:
        return utcnow()
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise BadRequest("Invalid datetime string: Datetime is in invalid format")


def _hours(inst: Instance, start: dt.datetime, stop: dt.datetime) -> float:
    launched, terminated = inst.launched_at, inst.terminated_at
    if terminated is not None and terminated < start:
        return 0
    if launched is None or launched > stop:
        return 0
    begin = max(launched, start)
    end = min(stop, terminated) if terminated is not None else stop
    return (end - begin).total_seconds() / 3600.0


@dataclass
class UsagePeriod:
    """Usage per project (in order of first appearance) and every server's usage."""

    tenants: list[dict[str, Any]]
    servers: list[dict[str, Any]]


class UsageAPI:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def period(self, start: dt.datetime, stop: dt.datetime, *,
                     project_id: str | None = None, detailed: bool = True,
                     limit: int | None = None, marker: str | None = None) -> UsagePeriod:
        """The usage of the instances active in [start, stop], paged by instance
        (``marker`` an instance uuid, deleted ones included)."""
        def work(s: Session) -> list[Instance]:
            q = select(Instance).where(
                or_(col(Instance.terminated_at).is_(None), col(Instance.terminated_at) > start),
                col(Instance.launched_at) < stop)
            if project_id is not None:
                q = q.where(Instance.project_id == project_id)
            rows = list(s.exec(q.order_by(col(Instance.created_at), col(Instance.id))).all())
            if marker is not None:
                uuids = [r.uuid for r in rows]
                if marker not in uuids:
                    if s.exec(select(Instance).where(Instance.uuid == marker)).first() is None:
                        raise BadRequest(f"Marker {marker} could not be found.")
                    rows = []
                else:
                    rows = rows[uuids.index(marker) + 1:]
            return rows[:limit] if limit is not None else rows

        instances = await self.db.read(work)
        return _summarize(instances, start, stop, detailed)

    async def audit_log(self, before: dt.datetime | None = None) -> dict[str, Any]:
        """Nova's audit log of the last completed month before ``before``: novalite runs
        no usage audit task (Nova's ``instance_usage_audit`` is off by default), so
        every compute host is listed as not run."""
        begin, end = last_completed_month(before or utcnow())
        hosts = await self.db.read(lambda s: sorted(set(s.exec(select(Service.host).where(
            Service.binary == "nova-compute")).all())))
        return {"period_beginning": str(begin), "period_ending": str(end),
                "num_hosts": len(hosts), "num_hosts_done": 0, "num_hosts_running": 0,
                "num_hosts_not_run": len(hosts), "hosts_not_run": hosts,
                "total_instances": 0, "total_errors": 0,
                "overall_status": ("ALL" if not hosts else f"0 of {len(hosts)}")
                + " hosts done. 0 errors.",
                "log": {}}


def last_completed_month(before: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Nova's ``last_completed_audit_period`` with its default unit, the month."""
    end = dt.datetime(before.year, before.month, 1)
    if end >= before:
        end = _month_before(end)
    return _month_before(end), end


def _month_before(day: dt.datetime) -> dt.datetime:
    if day.month == 1:
        return dt.datetime(day.year - 1, 12, 1)
    return dt.datetime(day.year, day.month - 1, 1)


def _summarize(instances: Iterable[Instance], start: dt.datetime, stop: dt.datetime,
               detailed: bool) -> UsagePeriod:
    tenants: dict[str, dict[str, Any]] = {}
    servers = []
    now = utcnow()
    for inst in instances:
        flavor = inst.flavor or {}
        hours = _hours(inst, start, stop)
        started = inst.launched_at or inst.created_at
        ended = inst.terminated_at
        info = {
            "hours": hours, "flavor": flavor.get("name", ""), "instance_id": inst.uuid,
            "name": inst.display_name, "tenant_id": inst.project_id,
            "memory_mb": int(flavor.get("memory_mb", inst.memory_mb)),
            "local_gb": int(flavor.get("root_gb", 0)) + int(flavor.get("ephemeral_gb", 0)),
            "vcpus": int(flavor.get("vcpus", inst.vcpus)),
            "started_at": started.isoformat(), "ended_at": ended.isoformat() if ended else None,
            "state": "terminated" if ended else inst.vm_state,
            "uptime": int(((ended or now) - started).total_seconds()),
        }
        summary = tenants.get(inst.project_id)
        if summary is None:
            summary = tenants[inst.project_id] = {
                "tenant_id": inst.project_id, "total_local_gb_usage": 0,
                "total_vcpus_usage": 0, "total_memory_mb_usage": 0, "total_hours": 0,
                "start": start.isoformat(), "stop": stop.isoformat()}
            if detailed:
                summary["server_usages"] = []
        summary["total_local_gb_usage"] += info["local_gb"] * hours
        summary["total_vcpus_usage"] += info["vcpus"] * hours
        summary["total_memory_mb_usage"] += info["memory_mb"] * hours
        summary["total_hours"] += hours
        servers.append(info)
        if detailed:
            summary["server_usages"].append(info)
    return UsagePeriod(list(tenants.values()), servers)
