"""Reconciliation: no instance is left in a state nobody will finish.

A build or an operation in flight is owned by a task of this process. When the
process dies (kill -9, power loss), or a database outage makes a task give up
before it could record how its work ended, the instance's record still says
"building" or names a task state, and nothing will ever move it on. This module
finds such records and puts each in a state a user can act on, as Nova's
``_init_instance`` and ``_check_instance_build_time`` do:

- at start (:func:`reconcile_at_start`, before the scheduler loads its claims and
  before the API listens): every instance still building goes to ERROR with a
  fault saying why and its claim released; an instance without a host in another
  task state has the task state cleared, or its delete finished. Instances with a
  host in other task states are left to their compute host's adoption.
- while running (:func:`fail_stuck_builds`): instances building for longer than
  ``[compute] instance_build_timeout``, and after a database outage the hostless
  builds the outage stranded, go to ERROR the same way; the conductor runs it
  (:meth:`~novalite.conductor.manager.ConductorManager.watch_builds`).

ERROR rather than a new scheduling attempt: the request's scheduler hints and the
caller's token are not stored, so a rebuilt request could place the server where
the caller did not ask. The fault says what happened; deleting the server frees its
quota, and a new boot is one command.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio
from sqlalchemy import and_, or_
from sqlalchemy import delete as sa_delete
from sqlmodel import Session, col, select

from novalite import states
from novalite.context import RequestContext
from novalite.db import queries
from novalite.db.engine import Database
from novalite.db.models import (
    Allocation,
    Instance,
    InstanceAction,
    InstanceFault,
    utcnow,
)
from novalite.network import ports as network_ports
from novalite.virt.driver import InstanceNotFound, NotSupported
from novalite.volume import api as volume_api

log = structlog.get_logger("novalite.conductor")

#: Faults the reconciliation records (the message a user sees in ``server show``).
STOPPED_BEFORE_SCHEDULING = ("The service stopped before this instance was scheduled; it "
                             "was not built. Delete it and create it again.")
STOPPED_WHILE_BUILDING = ("The service stopped while this instance was being built on "
                          "{host}; the build did not finish.")
BUILD_TIMED_OUT = "Instance build timed out. Set to error state."
LOST_ON_BUS = ("The connection to the message broker was lost before this instance was "
               "scheduled, and the request with it; it was not built. Delete it and create "
               "it again.")
LOST_ON_HOST_BUS = ("The connection to the message broker was lost while this instance was "
                    "to be built on {host}, and the request with it; it was not built. "
                    "Delete it and create it again.")
#: Task states of operations one compute host carries out alone, from one cast: when
#: the broker lost that cast, nothing will ever end them (resizes, migrations, shelves
#: and snapshots involve more than one step and are left to their own checks).
SETTLED_WHEN_LOST = frozenset((
    states.POWERING_OFF, states.POWERING_ON, states.REBOOTING, states.REBOOT_PENDING,
    states.REBOOT_STARTED, states.REBOOTING_HARD, states.REBOOT_PENDING_HARD,
    states.REBOOT_STARTED_HARD, states.PAUSING, states.UNPAUSING, states.SUSPENDING,
    states.RESUMING, states.RESCUING, states.UNRESCUING, states.DELETING))
LOST_IN_OUTAGE = ("A database outage interrupted this build before it was scheduled; it "
                  "was not built. Delete it and create it again.")


@dataclass
class Reconciled:
    """What one reconciliation changed: instance uuids by outcome."""

    failed: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.failed or self.cleared or self.deleted)


def _fail(s: Session, inst: Instance, message: str) -> None:
    """ERROR with a fault and a failed build event; its claim goes (the caller tells the
    scheduler when it runs)."""
    now = utcnow()
    inst.vm_state, inst.task_state, inst.updated_at = states.ERROR, None, now
    s.add(inst)
    s.add(InstanceFault(instance_uuid=inst.uuid, code=500, message=message[:255],
                        details=message, host=inst.host))
    s.execute(sa_delete(Allocation).where(col(Allocation.instance_uuid) == inst.uuid))
    action = s.exec(select(InstanceAction).where(
        InstanceAction.instance_uuid == inst.uuid,
        InstanceAction.action == "create")).first()
    if action is not None:
        queries.record_event(s, inst.uuid, action.request_id,
                             "conductor_schedule_and_build_instances", inst.host,
                             result="Error", details=message)


def _finish_delete(s: Session, inst: Instance) -> None:
    now = utcnow()
    network_ports.release_instance(s, inst.uuid)
    s.execute(sa_delete(Allocation).where(col(Allocation.instance_uuid) == inst.uuid))
    inst.vm_state, inst.task_state, inst.power_state = states.DELETED, None, 0
    inst.terminated_at = inst.deleted_at = inst.updated_at = now
    inst.deleted = inst.id or 1
    s.add(inst)


async def reconcile_at_start(db: Database, in_flight: Collection[str] = ()) -> Reconciled:
    """After a restart nothing is in flight: finish every record a dead task left.

    Run before the scheduler loads its claims (the released ones are gone by then)
    and before the API or any compute host starts; or by a control process that takes
    over the control lease from a dead one (:mod:`novalite.conductor.lease`), which
    passes the builds its own conductor has ``in_flight`` (left alone)."""

    def work(s: Session) -> Reconciled:
        done = Reconciled()
        unfinished = s.exec(select(Instance).where(
            Instance.deleted == 0,
            or_(col(Instance.vm_state) == states.BUILDING,
                and_(col(Instance.task_state).is_not(None), col(Instance.host).is_(None))))
        ).all()
        for inst in unfinished:
            if inst.uuid in in_flight:
                continue
            if inst.vm_state == states.BUILDING:
                _fail(s, inst, STOPPED_WHILE_BUILDING.format(host=inst.host) if inst.host
                      else STOPPED_BEFORE_SCHEDULING)
                done.failed.append(inst.uuid)
            elif inst.task_state == states.DELETING:
                _finish_delete(s, inst)
                done.deleted.append(inst.uuid)
            else:
                inst.task_state, inst.updated_at = None, utcnow()
                s.add(inst)
                done.cleared.append(inst.uuid)
        return done

    done = await db.write(work)
    volumes = await db.write(volume_api.reconcile)  # no attach is half done either
    if volumes:
        log.warning("volumes reconciled at start", volumes=volumes)
    if done:
        log.warning("instances reconciled at start", failed=len(done.failed),
                    cleared=len(done.cleared), deleted=len(done.deleted),
                    instances=done.failed + done.cleared + done.deleted)
    return done


async def fail_stuck_builds(db: Database, *, older_than: dt.datetime, message: str,
                            in_flight: Collection[str] = (), hostless_only: bool = False
                            ) -> list[str]:
    """Set to ERROR (fault ``message``, claim row dropped) the instances still building
    whose record has not changed since ``older_than`` and that no task of this
    conductor is working on (``in_flight``); ``hostless_only``: only those never
    scheduled. Returns their uuids; the caller releases their claims in the scheduler."""

    def work(s: Session) -> list[str]:
        query = select(Instance).where(Instance.deleted == 0,
                                       Instance.vm_state == states.BUILDING,
                                       col(Instance.updated_at) < older_than)
        if hostless_only:
            query = query.where(col(Instance.host).is_(None))
        failed = []
        for inst in s.exec(query).all():
            if inst.uuid not in in_flight:
                _fail(s, inst, message)
                failed.append(inst.uuid)
        return failed

    failed: list[str] = await db.write(work)
    if failed:
        log.warning("stuck builds set to error", count=len(failed), reason=message,
                    instances=failed)
    return failed


async def finish_interrupted_detaches(db: Database, compute: Callable[[str], Any], *,
                                      retry: float = 5.0) -> None:
    """Have each compute host finish the detaches :func:`reconcile_at_start` left
    (an attach or a detach a kill interrupted): the guest may hold the disk or not,
    and the driver's detach is a no-op when it does not. Each finished one releases
    its attachment (the volume ``available``); a host that does not answer yet (not
    started, down, the broker away) is asked again every ``retry`` seconds until it
    does. Run once after the start's reconciliation; returns when all are done."""
    pending = await db.read(volume_api.interrupted_detaches)
    if pending:
        log.warning("finishing detaches a stop interrupted", volumes=[
            p["volume_id"] for p in pending])
    context = RequestContext.system()
    while pending:
        left = []
        for item in pending:
            try:
                await compute(item["host"]).detach_volume(
                    context, item["instance_uuid"], item["volume_id"])
            except (InstanceNotFound, NotSupported):
                pass  # no guest, or a driver that never had the disk: nothing to undo
            except Exception as exc:
                log.info("interrupted detach not finished yet; will retry",
                         volume=item["volume_id"], host=item["host"],
                         error=f"{type(exc).__name__}: {exc}")
                left.append(item)
                continue
            await db.write(functools.partial(_release, item))
            log.warning("interrupted detach finished", volume=item["volume_id"],
                        instance=item["instance_uuid"])
        pending = left
        if pending:
            await trio.sleep(retry)


async def operations_maybe_lost(db: Database, before: dt.datetime
                                 ) -> dict[str, list[str]]:
    """After the broker lost its queues: host -> the instances on it whose build or
    single-host operation (:data:`SETTLED_WHEN_LOST`) was last recorded before
    ``before``, whose cast may have been lost with the queues."""

    def work(s: Session) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for inst in s.exec(select(Instance).where(
                Instance.deleted == 0, col(Instance.host).is_not(None),
                col(Instance.updated_at) < before,
                or_(col(Instance.vm_state) == states.BUILDING,
                    col(Instance.task_state).in_(SETTLED_WHEN_LOST)))).all():
            out.setdefault(str(inst.host), []).append(inst.uuid)
        return out

    return await db.read(work)


async def settle_lost_operations(db: Database, host: str, uuids: Collection[str],
                                 before: dt.datetime) -> Reconciled:
    """The instances of ``uuids`` (on ``host``, which has no operation in flight for
    them) still as :func:`operations_maybe_lost` found them: a build goes to ERROR with
    a fault; a delete is returned in ``deleted`` for the caller to send again; any
    other operation has its task state cleared (the server as it was: the user
    can ask again, and power sync shows what the guest is)."""

    def work(s: Session) -> Reconciled:
        done = Reconciled()
        for inst in s.exec(select(Instance).where(
                col(Instance.uuid).in_(list(uuids)), Instance.host == host,
                Instance.deleted == 0, col(Instance.updated_at) < before)).all():
            if inst.vm_state == states.BUILDING:
                _fail(s, inst, LOST_ON_HOST_BUS.format(host=host))
                done.failed.append(inst.uuid)
            elif inst.task_state == states.DELETING:
                done.deleted.append(inst.uuid)
            elif inst.task_state in SETTLED_WHEN_LOST:
                inst.task_state, inst.updated_at = None, utcnow()
                s.add(inst)
                done.cleared.append(inst.uuid)
        return done

    done: Reconciled = await db.write(work)
    if done:
        log.warning("operations lost with the broker's queues settled", host=host,
                    failed=done.failed, cleared=done.cleared, deleted_again=done.deleted)
    return done


def _release(item: dict[str, str], s: Session) -> None:
    volume_api.release_attachment(s, item["attachment_id"], item["volume_id"])


def as_utc(timestamp: float) -> dt.datetime:
    """A ``time.time()`` value as the naive UTC datetime the records hold."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(tzinfo=None)


__all__ = ["BUILD_TIMED_OUT", "LOST_IN_OUTAGE", "Reconciled", "as_utc", "fail_stuck_builds",
           "finish_interrupted_detaches", "operations_maybe_lost", "reconcile_at_start",
           "settle_lost_operations"]
