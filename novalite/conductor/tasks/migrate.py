"""Resize and cold migration, orchestrated by the conductor (Nova's
``conductor/tasks/migrate.py`` and the resize half of its compute manager).

The flow, each step recorded on the instance, its action's events and its
``migrations`` row (``status`` as Nova's)::

    API        resize/migrate: migration "pre-migrating", task resize_prep
    conductor  scheduler.move_claim: new flavor claimed on the destination, the
               source's claim moved to the migration          (NoValidHost: rollback)
    source     migrate_disk_and_power_off                      "migrating", resize_migrating
    conductor  resize_migrated                                 "post-migrating", resize_migrated
    dest       finish_migration                                resize_finish
    conductor  resize_finished: host, flavor, vm_state resized "finished" (VERIFY_RESIZE)
    confirm    source confirm_migration, source claim released "confirmed", active
    revert     dest destroys, claims swapped back, source
               finish_revert_migration                         "reverted", active

Compute hosts talk only to the conductor, which casts each next step to the next
host: no host needs to know another's address, and the disk moves as the
driver's ``disk_info`` says (plain data: a URL of the source, not a shared path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
import trio
from sqlmodel import Session, select

from novalite import rpc, states
from novalite.config import Config
from novalite.context import RequestContext
from novalite.db import queries
from novalite.db.engine import Database
from novalite.db.models import Instance, InstanceFault, Migration, utcnow
from novalite.exceptions import NoValidHost
from novalite.rpc.compute import ComputeClient
from novalite.rpc.scheduler import SchedulerClient
from novalite.rpc.transport import Transport
from novalite.virt.driver import PowerState

T = TypeVar("T")

log = structlog.get_logger("novalite.conductor.migrate")

#: Instance columns that follow the flavor.
_SIZES = ("vcpus", "memory_mb", "root_gb", "ephemeral_gb")


def flavor_values(flavor: dict[str, Any]) -> dict[str, Any]:
    """The instance columns a flavor snapshot sets."""
    return {"flavor": flavor, **{k: int(flavor.get(k) or 0) for k in _SIZES}}


def migration_payload(m: Migration) -> dict[str, Any]:
    """The plain-data form of a migration that crosses the bus."""
    return {"id": m.id, "uuid": m.uuid, "instance_uuid": m.instance_uuid,
            "source_compute": m.source_compute, "dest_compute": m.dest_compute,
            "status": m.status, "migration_type": m.migration_type,
            "old_flavor": dict(m.old_flavor), "new_flavor": dict(m.new_flavor)}


class MigrationTasks:
    """The conductor's resize and cold migration methods (mixed into
    :class:`~novalite.conductor.manager.ConductorManager`)."""

    db: Database
    cfg: Config
    transport: Transport
    scheduler: SchedulerClient

    def compute(self, host: str) -> ComputeClient:
        raise NotImplementedError

    async def _patiently(self, step: Callable[[], Awaitable[T]],
                         patience: float = 300.0) -> T:
        raise NotImplementedError

    async def instance_get(self, context: RequestContext, uuid: str
                           ) -> dict[str, Any] | None:
        raise NotImplementedError


    async def _migration(self, migration_id: int) -> Migration:
        found = await self.db.read(lambda s: s.get(Migration, migration_id))
        if found is None:
            raise NoValidHost(f"Migration {migration_id} could not be found")
        return found

    async def _record_move(self, context: RequestContext, uuid: str,
                           migration_id: int, *, status: str | None = None,
                           migration: dict[str, Any] | None = None,
                           instance: dict[str, Any] | None = None,
                           event: dict[str, Any] | None = None,
                           fault: tuple[str, str | None] | None = None
                           ) -> tuple[dict[str, Any] | None, Migration | None]:
        """One transaction: the migration's status and fields, the instance's columns,
        an action event and a fault. Returns (instance payload, migration)."""
        from novalite.conductor.manager import instance_payload

        def work(s: Session) -> tuple[dict[str, Any] | None, Migration | None]:
            m = s.get(Migration, migration_id)
            if m is not None:
                if status is not None:
                    m.status = status
                for key, value in (migration or {}).items():
                    setattr(m, key, value)
                m.updated_at = utcnow()
                s.add(m)
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            if inst is not None and not inst.deleted:
                for key, value in (instance or {}).items():
                    setattr(inst, key, value)
                inst.updated_at = utcnow()
                s.add(inst)
            if event is not None:
                queries.record_event(s, uuid, context.request_id, **event)
            if fault is not None:
                s.add(InstanceFault(instance_uuid=uuid, code=500, message=fault[0][:255],
                                    details=fault[0], host=fault[1]))
            s.flush()
            payload = instance_payload(inst) if inst is not None and not inst.deleted \
                else None
            return payload, (Migration(**m.model_dump()) if m is not None else None)

        return await self._patiently(lambda: self.db.write(work))

    # -- from the compute API ----------------------------------------------------------
    @rpc.method
    async def migrate_server(self, context: RequestContext,
                             instance_uuid: str, migration_id: int,
                             spec: dict[str, Any]) -> None:
        """Place a resize or cold migration and cast its first step to the source
        (cast by the compute API, the migration recorded "pre-migrating")."""
        event = "conductor_migrate_server"
        migration = await self._migration(migration_id)
        old, new = migration.old_flavor, migration.new_flavor
        rollback = {"task_state": None}
        if int(new.get("root_gb") or 0) < int(old.get("root_gb") or 0):
            # Nova's drivers refuse it (libvirt: "Unable to resize disk down."); the
            # instance is rolled back, untouched, with the fault.
            message = "Resize error: Unable to resize disk down."
            await self._record_move(context, instance_uuid, migration_id, status="error",
                                    instance=rollback, fault=(message, None),
                                    event={"event": event, "host": None,
                                           "result": "Error", "details": message})
            return
        if not self.cfg.DEFAULT.allow_resize_to_same_host and migration.source_compute:
            spec = {**spec, "ignore_hosts": [migration.source_compute]}
        try:
            dest = await self.scheduler.move_claim(context, spec, migration.uuid)
        except Exception as exc:
            message = exc.message if isinstance(exc, NoValidHost) else str(exc)
            log.warning("no destination for a move", instance=instance_uuid, reason=message)
            await self._record_move(context, instance_uuid, migration_id, status="error",
                                    instance=rollback, fault=(message, None),
                                    event={"event": event, "host": None,
                                           "result": "Error", "details": message})
            return
        host = dest["host"]
        payload, _ = await self._record_move(
            context, instance_uuid, migration_id,
            migration={"dest_compute": host, "dest_node": dest["node"], "dest_host": host},
            event={"event": event, "host": None, "result": "Success"})
        if payload is None:  # deleted meanwhile
            await self.scheduler.revert_move_claim(context, instance_uuid, migration.uuid)
            return
        await self.compute(str(migration.source_compute)).resize_instance(
            context, payload, migration_id, new, host)

    @rpc.method
    async def confirm_resize(self, context: RequestContext,
                             instance_uuid: str, migration_id: int) -> None:
        """confirmResize (cast by the compute API): the source removes the old guest."""
        migration = await self._migration(migration_id)
        await self.compute(str(migration.source_compute)).confirm_resize(
            context, instance_uuid, migration_id)

    @rpc.method
    async def revert_resize(self, context: RequestContext,
                            instance_uuid: str, migration_id: int) -> None:
        """revertResize (cast by the compute API): the destination destroys its guest."""
        migration = await self._migration(migration_id)
        await self.compute(str(migration.dest_compute)).revert_resize(
            context, instance_uuid, migration_id)

    @rpc.method
    async def confirm_after(self, context: RequestContext,
                            instance_uuid: str, migration_id: int, delay: float) -> None:
        """``[DEFAULT] resize_confirm_window``: confirm the resize after ``delay``
        seconds if it still waits in VERIFY_RESIZE (cast to itself)."""
        await trio.sleep(delay)
        migration = await self._migration(migration_id)
        if migration.status != "finished":
            return

        def work(s: Session) -> bool:
            inst = s.exec(select(Instance).where(Instance.uuid == instance_uuid)).first()
            m = s.get(Migration, migration_id)
            if inst is None or inst.deleted or m is None or inst.vm_state != states.RESIZED \
                    or inst.task_state is not None or m.status != "finished":
                return False
            inst.task_state = states.RESIZE_CONFIRMING
            m.status = "confirming"
            s.add(inst)
            s.add(m)
            return True

        if await self.db.write(work):
            log.info("resize confirmed by itself", instance=instance_uuid,
                     window=delay)
            await self.confirm_resize(context, instance_uuid, migration_id)

    # -- from compute hosts ------------------------------------------------------------
    @rpc.method
    async def resize_step(self, context: RequestContext,
                          instance_uuid: str, migration_id: int, step: str,
                          host: str, data: dict[str, Any] | None = None) -> None:
        """A compute host finished its part of a move; record it and cast the next.

        ``step``: ``migrating`` (source starts), ``migrated`` (source powered off,
        ``data`` the driver's disk_info), ``finished`` (destination runs it, ``data``
        its ``power_state``), ``confirmed`` (source cleaned up), ``dest_reverted``
        (destination destroyed its guest), ``reverted`` (source runs the old guest,
        ``data`` its ``power_state``)."""
        data = data or {}
        uuid = instance_uuid
        if step == "migrating":
            await self._record_move(context, uuid, migration_id, status="migrating",
                                    instance={"task_state": states.RESIZE_MIGRATING})
        elif step == "migrated":
            payload, m = await self._record_move(
                context, uuid, migration_id, status="post-migrating",
                instance={"task_state": states.RESIZE_MIGRATED})
            if payload is None or m is None:
                return
            await self.compute(str(m.dest_compute)).finish_resize(
                context, payload, migration_id, m.new_flavor, data, str(m.source_compute))
        elif step == "finished":
            m = await self._migration(migration_id)
            await self._record_move(
                context, uuid, migration_id, status="finished",
                instance={"host": host, "node": host, **flavor_values(m.new_flavor),
                          "vm_state": states.RESIZED, "task_state": None,
                          "power_state": int(data.get("power_state") or 0),
                          **await self._ssh_port_moved(context, uuid, data)})
            window = self.cfg.DEFAULT.resize_confirm_window
            if window > 0:
                await self._rpc_self(context, "confirm_after", {
                    "instance_uuid": uuid, "migration_id": migration_id, "delay": window})
        elif step == "confirmed":
            m = await self._migration(migration_id)
            await self.scheduler.release(context, m.uuid)
            current = await self.instance_get(context, uuid) or {}
            running = current.get("power_state") == int(PowerState.RUNNING)
            confirming = current.get("task_state") in (states.RESIZE_CONFIRMING, None)
            await self._record_move(  # a server being deleted keeps its task_state
                context, uuid, migration_id, status="confirmed",
                instance={"vm_state": _after_move({"stopped": not running}),
                          "task_state": None} if confirming else None)
        elif step == "dest_reverted":
            m = await self._migration(migration_id)
            await self.scheduler.revert_move_claim(context, uuid, m.uuid)
            payload, _ = await self._record_move(
                context, uuid, migration_id,
                instance={"host": m.source_compute, "node": m.source_node,
                          **flavor_values(m.old_flavor)})
            if payload is not None:
                await self.compute(str(m.source_compute)).finish_revert_resize(
                    context, payload, migration_id, bool(data.get("power_on", True)))
        elif step == "reverted":
            await self._record_move(
                context, uuid, migration_id, status="reverted",
                instance={"vm_state": _after_move(data), "task_state": None,
                          "power_state": int(data.get("power_state") or 0)})
        else:
            raise ValueError(f"unknown resize step {step!r}")

    async def _ssh_port_moved(self, context: RequestContext, uuid: str,
                              data: dict[str, Any]) -> dict[str, Any]:
        """The instance's metadata with the host port forwarded to its port 22 on its
        new host, when ``data`` (a move's step) says the forward moved with the guest."""
        if "ssh_host_port" not in data:
            return {}
        metadata = dict((await self.instance_get(context, uuid) or {}).get("metadata") or {})
        metadata.pop("ssh_host_port", None)
        if data["ssh_host_port"] is not None:
            metadata["ssh_host_port"] = str(data["ssh_host_port"])
        return {"metadata_": metadata}

    @rpc.method
    async def resize_failed(self, context: RequestContext,
                            instance_uuid: str, migration_id: int, host: str,
                            message: str, rolled_back: bool) -> None:
        """A step of a move failed on ``host``: the migration is ``error``, the claims
        are given back to the source, and the instance keeps a fault; ``rolled_back``:
        the guest runs on the source as before (vm_state as it was), else ERROR."""
        m = await self._migration(migration_id)
        await self.scheduler.revert_move_claim(context, instance_uuid, m.uuid)
        values: dict[str, Any] = {"task_state": None, "host": m.source_compute,
                                  "node": m.source_node, **flavor_values(m.old_flavor)}
        if not rolled_back:
            values["vm_state"] = states.ERROR
        await self._record_move(context, instance_uuid, migration_id, status="error",
                                instance=values, fault=(message, host))

    # -- live migration ---------------------------------------------------------------
    @rpc.method
    async def live_migrate_server(self, context: RequestContext, instance_uuid: str,
                                  migration_id: int, spec: dict[str, Any]) -> None:
        """Place a live migration (never on its own host) and start it on the source
        (cast by the compute API; the migration recorded "accepted")."""
        event = "conductor_live_migrate_instance"
        migration = await self._migration(migration_id)
        spec = {**spec, "ignore_hosts": [str(migration.source_compute)]}
        if spec.get("requested_host") == migration.source_compute:
            spec["requested_host"] = None
        try:
            dest = await self.scheduler.move_claim(context, spec, migration.uuid)
        except Exception as exc:
            message = exc.message if isinstance(exc, NoValidHost) else str(exc)
            await self._record_move(context, instance_uuid, migration_id, status="error",
                                    instance={"task_state": None}, fault=(message, None),
                                    event={"event": event, "host": None,
                                           "result": "Error", "details": message})
            return
        host = dest["host"]
        payload, _ = await self._record_move(
            context, instance_uuid, migration_id, status="preparing",
            migration={"dest_compute": host, "dest_node": dest["node"], "dest_host": host},
            event={"event": event, "host": None, "result": "Success"})
        if payload is None:
            await self.scheduler.revert_move_claim(context, instance_uuid, migration.uuid)
            return
        await self.compute(host).pre_live_migration(context, payload, migration_id)

    @rpc.method
    async def live_step(self, context: RequestContext, instance_uuid: str,
                        migration_id: int, step: str, host: str,
                        data: dict[str, Any] | None = None) -> None:
        """A compute host's part of a live migration: ``prepared`` (destination ready,
        ``data`` its driver's data for the source: the source starts), ``running``
        (source started), ``migrated`` (source done, ``data`` the driver's
        migrate_data: cast to the destination), ``arrived`` (destination runs it: the
        source cleans up), ``completed`` (source cleaned up: its claim released)."""
        data = data or {}
        if step == "prepared":
            payload, m = await self._record_move(context, instance_uuid, migration_id)
            if m is None:
                return
            if payload is None:  # deleted meanwhile
                await self.compute(host).rollback_live_migration_at_destination(
                    context, instance_uuid, migration_id)
                await self.scheduler.revert_move_claim(context, instance_uuid, m.uuid)
                return
            await self.compute(str(m.source_compute)).live_migration(
                context, payload, migration_id, host, data)
        elif step == "running":
            await self._record_move(context, instance_uuid, migration_id, status="running")
        elif step == "migrated":
            payload, m = await self._record_move(context, instance_uuid, migration_id,
                                                 status="post-migrating")
            if payload is not None and m is not None:
                await self.compute(str(m.dest_compute)).post_live_migration_at_destination(
                    context, payload, migration_id, data)
        elif step == "arrived":
            m = await self._migration(migration_id)
            values: dict[str, Any] = {"host": host, "node": host, "task_state": None,
                                      "power_state": int(data.get("power_state") or 0),
                                      **await self._ssh_port_moved(context, instance_uuid,
                                                                   data)}
            await self._record_move(context, instance_uuid, migration_id, instance=values)
            await self.compute(str(m.source_compute)).post_live_migration(
                context, instance_uuid, migration_id)
        elif step == "completed":
            m = await self._migration(migration_id)
            await self.scheduler.release(context, m.uuid)
            await self._record_move(context, instance_uuid, migration_id, status="completed")
        else:
            raise ValueError(f"unknown live migration step {step!r}")

    @rpc.method
    async def live_failed(self, context: RequestContext, instance_uuid: str,
                          migration_id: int, host: str, message: str) -> None:
        """A live migration failed before the destination ran the guest: it keeps
        running on the source (ACTIVE), the migration is ``error``, the destination's
        claim dropped, a fault recorded."""
        m = await self._migration(migration_id)
        await self.scheduler.revert_move_claim(context, instance_uuid, m.uuid)
        await self._record_move(context, instance_uuid, migration_id, status="error",
                                instance={"task_state": None, "host": m.source_compute,
                                          "node": m.source_node},
                                fault=(message, host))
        if m.status == "post-migrating" and host == m.dest_compute:
            # The destination failed after the source sent the guest: it runs there no
            # more than here; the source runs it again (it removed its own part).
            await self.compute(str(m.source_compute)).rollback_live_migration(
                context, instance_uuid, migration_id)
        elif m.dest_compute and host != m.dest_compute:
            # The source failed after the destination got ready: it cleans up (a
            # destination that fails removes what it made itself).
            await self.compute(str(m.dest_compute)).rollback_live_migration_at_destination(
                context, instance_uuid, migration_id)

    # -- evacuation -------------------------------------------------------------------
    @rpc.method
    async def evacuate_server(self, context: RequestContext, instance_uuid: str,
                              migration_id: int, spec: dict[str, Any],
                              admin_pass: str | None, stop: bool) -> None:
        """Place an evacuation (never on the dead host) and have the new host rebuild
        the server from its image (cast by the compute API; the migration
        "accepted")."""
        event = "conductor_rebuild_server"
        migration = await self._migration(migration_id)
        spec = {**spec, "ignore_hosts": [str(migration.source_compute)]}
        try:
            dest = await self.scheduler.move_claim(context, spec, migration.uuid)
        except Exception as exc:
            message = exc.message if isinstance(exc, NoValidHost) else str(exc)
            await self._record_move(context, instance_uuid, migration_id, status="error",
                                    instance={"task_state": None}, fault=(message, None),
                                    event={"event": event, "host": None,
                                           "result": "Error", "details": message})
            return
        host = dest["host"]
        payload, _ = await self._record_move(
            context, instance_uuid, migration_id, status="pre-migrating",
            migration={"dest_compute": host, "dest_node": dest["node"], "dest_host": host},
            instance={"host": host, "node": dest["node"]},
            event={"event": event, "host": None, "result": "Success"})
        if payload is None:
            await self.scheduler.revert_move_claim(context, instance_uuid, migration.uuid)
            return
        await self.compute(host).rebuild_instance(
            context, instance_uuid, str(payload["image_ref"]), admin_pass,
            evacuation={"migration_id": migration_id, "stop": stop})

    @rpc.method
    async def evacuate_done(self, context: RequestContext, instance_uuid: str,
                            migration_id: int, host: str, error: str | None) -> None:
        """The new host rebuilt the server: the migration ``done`` (the dead host
        removes its guest when it comes back) and the old host's claim released; or it
        failed: ``failed``, the new host's claim given back (the server is in ERROR
        there, with the rebuild's fault)."""
        m = await self._migration(migration_id)
        if error is None:
            await self.scheduler.release(context, m.uuid)
            await self._record_move(context, instance_uuid, migration_id, status="done")
        else:
            await self.scheduler.revert_move_claim(context, instance_uuid, m.uuid)
            await self._record_move(context, instance_uuid, migration_id, status="failed")

    @rpc.method
    async def evacuated_from(self, context: RequestContext, host: str) -> list[str]:
        """The instances evacuated from ``host`` (migration ``done``) whose old guest
        it has still to remove, as Nova's compute does when it starts again."""
        def work(s: Session) -> list[str]:
            rows = s.exec(select(Migration).where(
                Migration.source_compute == host, Migration.status == "done",
                Migration.migration_type == "evacuation")).all()
            return sorted({str(m.instance_uuid) for m in rows})

        return await self.db.read(work)

    @rpc.method
    async def evacuation_cleaned(self, context: RequestContext, host: str,
                                 uuid: str) -> None:
        """``host`` removed its guest of the evacuated ``uuid``: ``completed``."""
        def work(s: Session) -> None:
            for m in s.exec(select(Migration).where(
                    Migration.source_compute == host, Migration.instance_uuid == uuid,
                    Migration.status == "done",
                    Migration.migration_type == "evacuation")).all():
                m.status = "completed"
                m.updated_at = utcnow()
                s.add(m)

        await self.db.write(work)

    async def _rpc_self(self, context: RequestContext, method: str,
                        args: dict[str, Any]) -> None:
        from novalite.rpc.client import RpcClient
        from novalite.rpc.conductor import TOPIC

        await RpcClient(self.transport, TOPIC, 60.0).cast(context, method, args)


def _after_move(data: dict[str, Any]) -> str:
    """The vm_state after a confirm or revert: STOPPED if the guest is off, else ACTIVE."""
    return states.STOPPED if data.get("stopped") else states.ACTIVE


__all__ = ["MigrationTasks", "flavor_values", "migration_payload"]
