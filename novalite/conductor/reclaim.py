"""Reclaiming soft-deleted servers (Nova's ``_reclaim_queued_deletes``).

With ``[DEFAULT] reclaim_instance_interval`` above 0, DELETE leaves a server
SOFT_DELETED (restorable); once it has been so for that many seconds, this task
deletes it for good: task_state ``deleting``, then the host's terminate, as a
DELETE of an ordinary server.
"""

from __future__ import annotations

import datetime as dt

import structlog
import trio
from sqlmodel import Session, col, select

from novalite import states
from novalite.context import RequestContext
from novalite.db.engine import Database
from novalite.db.models import Instance, utcnow
from novalite.exceptions import DatabaseUnavailable
from novalite.rpc.compute import ComputeClient
from novalite.rpc.transport import Transport

log = structlog.get_logger("novalite.conductor")


async def reclaim_once(db: Database, transport: Transport, interval: float) -> list[str]:
    """Delete the servers SOFT_DELETED longer than ``interval`` seconds; their uuids."""
    cutoff = utcnow() - dt.timedelta(seconds=interval)

    def work(s: Session) -> list[tuple[str, str | None]]:
        rows = s.exec(select(Instance).where(
            Instance.vm_state == states.SOFT_DELETED, col(Instance.task_state).is_(None),
            Instance.deleted == 0, col(Instance.deleted_at) <= cutoff)).all()
        for row in rows:
            row.task_state = states.DELETING
            row.updated_at = utcnow()
            s.add(row)
        return [(r.uuid, r.host) for r in rows]

    found = await db.write(work)
    context = RequestContext.system()
    for uuid, host in found:
        log.info("reclaiming soft-deleted instance", instance=uuid, host=host)
        await ComputeClient(transport, str(host)).terminate_instance(context, uuid)
    return [uuid for uuid, _ in found]


async def watch_soft_deleted(db: Database, transport: Transport, interval: float) -> None:
    """Until cancelled: reclaim, every ``interval`` seconds (at most a minute apart)."""
    if interval <= 0:
        return
    while True:
        await trio.sleep(min(interval, 60.0))
        try:
            await reclaim_once(db, transport, interval)
        except DatabaseUnavailable:
            log.warning("reclaim skipped: the database is unavailable")
        except Exception:
            log.exception("reclaiming soft-deleted instances failed")
