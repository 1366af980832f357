"""Shelve offload and unshelve, as the conductor runs them (Nova's
``conductor/manager.py`` unshelve_instance): the records of each step, the
scheduler's claim released on offload and taken again on unshelve."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
import trio
from sqlmodel import Session, select

from novalite import rpc, states
from novalite.compute.shelve import SHELVED_IMAGE, set_system_metadata
from novalite.config import Config
from novalite.context import RequestContext
from novalite.db import queries
from novalite.db.engine import Database
from novalite.db.models import Instance, InstanceFault, InstanceRow, utcnow
from novalite.exceptions import NoValidHost
from novalite.rpc.compute import ComputeClient
from novalite.rpc.scheduler import SchedulerClient
from novalite.rpc.transport import Transport

log = structlog.get_logger("novalite.conductor.shelve")
T = TypeVar("T")

#: What an offloaded server no longer has.
_OFFLOADED = {"vm_state": states.SHELVED_OFFLOADED, "task_state": None, "host": None,
              "node": None, "power_state": 0}
_SHELVED_KEYS = (SHELVED_IMAGE, "shelved_at", "shelved_host")


class ShelveTasks:
    """The conductor's shelve methods (mixed into ConductorManager)."""

    db: Database
    cfg: Config
    transport: Transport
    scheduler: SchedulerClient
    image_api_url: str

    def compute(self, host: str) -> ComputeClient:
        raise NotImplementedError

    async def _patiently(self, step: Callable[[], Awaitable[T]],
                         patience: float = 300.0) -> T:
        raise NotImplementedError

    async def _shelve_record(self, context: RequestContext, uuid: str,
                             values: dict[str, Any], *, event: dict[str, Any] | None = None,
                             fault: tuple[str, str | None] | None = None,
                             forget_image: bool = False) -> None:
        def work(s: Session) -> None:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            if inst is None or inst.deleted:
                return
            for key, value in values.items():
                setattr(inst, key, value)
            inst.updated_at = utcnow()
            s.add(inst)
            if forget_image:
                set_system_metadata(s, uuid, dict.fromkeys(_SHELVED_KEYS))
            if event is not None:
                queries.record_event(s, uuid, context.request_id, **event)
            if fault is not None:
                s.add(InstanceFault(instance_uuid=uuid, code=500, message=fault[0][:255],
                                    details=fault[0], host=fault[1]))

        await self._patiently(lambda: self.db.write(work))

    # -- from compute hosts ------------------------------------------------------------
    @rpc.method
    async def shelve_done(self, context: RequestContext, uuid: str, host: str,
                          offloaded: bool, power_state: int = 0) -> None:
        """The snapshot is stored (and, ``offloaded``, the guest destroyed): SHELVED,
        or SHELVED_OFFLOADED with the host's claim released."""
        if offloaded:
            await self.scheduler.release(context, uuid)
            await self._shelve_record(context, uuid, dict(_OFFLOADED))
            return
        await self._shelve_record(context, uuid, {"vm_state": states.SHELVED,
                                                  "task_state": None,
                                                  "power_state": power_state})
        delay = self.cfg.DEFAULT.shelved_offload_time
        if delay > 0:
            from novalite.rpc.client import RpcClient
            from novalite.rpc.conductor import TOPIC

            await RpcClient(self.transport, TOPIC, 60.0).cast(
                context, "offload_after", {"uuid": uuid, "host": host, "delay": delay})

    @rpc.method
    async def offload_after(self, context: RequestContext, uuid: str, host: str,
                            delay: float) -> None:
        """``[DEFAULT] shelved_offload_time``: offload a server still SHELVED after
        ``delay`` seconds (cast to itself)."""
        await trio.sleep(delay)

        def work(s: Session) -> bool:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            if inst is None or inst.deleted or inst.vm_state != states.SHELVED \
                    or inst.task_state is not None or inst.host != host:
                return False
            inst.task_state = states.SHELVING_OFFLOADING
            s.add(inst)
            return True

        if await self.db.write(work):
            await self.compute(host).shelve_offload_instance(context, uuid)

    @rpc.method
    async def unshelve_done(self, context: RequestContext, uuid: str, host: str,
                            power_state: int) -> None:
        """The server runs again from its snapshot (or was powered on where it was)."""
        await self._shelve_record(context, uuid, {
            "vm_state": states.ACTIVE, "task_state": None, "power_state": power_state},
            forget_image=True)

    @rpc.method
    async def unshelve_failed(self, context: RequestContext, uuid: str, host: str,
                              message: str) -> None:
        """The boot from the snapshot failed on ``host`` (cleaned up there): back to
        SHELVED_OFFLOADED, its claim released, with the fault."""
        await self.scheduler.release(context, uuid)
        await self._shelve_record(context, uuid, dict(_OFFLOADED), fault=(message, host))

    # -- from the compute API ----------------------------------------------------------
    @rpc.method
    async def unshelve_instance(self, context: RequestContext, uuid: str, image_id: str,
                                spec: dict[str, Any]) -> None:
        """Place a SHELVED_OFFLOADED server again and boot it from ``image_id`` there."""
        from novalite.conductor.manager import image_payload, instance_payload

        event = "conductor_unshelve_instance"
        try:
            [dest] = await self.scheduler.select_destinations(context, [spec], persist=False)
        except Exception as exc:
            message = exc.message if isinstance(exc, NoValidHost) else str(exc)
            await self._shelve_record(context, uuid, {"task_state": None},
                                      fault=(message, None),
                                      event={"event": event, "host": None, "result": "Error",
                                             "details": message})
            return
        host = dest["host"]

        def work(s: Session) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
            row = queries.instance(s, uuid)
            if row is None or row["deleted"] or row["task_state"] != states.UNSHELVING:
                return None
            queries.put_allocation(s, dest["allocation"])
            changes = {"host": host, "node": host, "task_state": states.SPAWNING,
                       "updated_at": utcnow()}
            queries.update_instance(s, uuid, changes)
            queries.record_event(s, uuid, context.request_id, event, None,
                                 result="Success")
            return (instance_payload(InstanceRow({**row, **changes})),
                    image_payload(queries.image(s, image_id), self.image_api_url))

        try:
            found = await self._patiently(lambda: self.db.write(work))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.scheduler.release(context, uuid)
            raise
        if found is None:
            await self.scheduler.release(context, uuid)
            return
        instance, image = found
        await self.compute(host).unshelve_instance(context, instance, image)


__all__ = ["ShelveTasks"]
