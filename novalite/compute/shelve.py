"""Shelve, shelve offload and unshelve: the compute API's rules (Nova's
``compute/api.py`` shelve, shelve_offload, unshelve).

Shelving snapshots the server into the image service (an image named
``<server>-shelved``, uploaded by its compute host over HTTP as the caller, as
createImage's), then, at once with ``[DEFAULT] shelved_offload_time = 0`` or after
that many seconds, destroys the guest and releases its host's resources
(SHELVED_OFFLOADED, no host). Unshelving a SHELVED server powers it on where it
is; a SHELVED_OFFLOADED one is scheduled again (to an availability zone from 2.77,
a host from 2.91) and booted from the snapshot, which is deleted once it runs.
The server keeps its fixed address while offloaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from novalite import states
from novalite.config import Config
from novalite.context import AuthContext
from novalite.db import queries
from novalite.db.engine import Database
from novalite.db.models import (
    Image,
    Instance,
    InstanceAction,
    InstanceSystemMetadata,
    utcnow,
)
from novalite.exceptions import BadRequest, Conflict, InstanceInvalidState
from novalite.rpc import Clients

if TYPE_CHECKING:
    from novalite.compute.api import ServerRecord

#: action -> allowed vm_states (task_state must be None), as Nova's check_instance_state.
SHELVE_STATES: dict[str, tuple[str, ...]] = {
    "shelve": (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED),
    "shelveOffload": (states.SHELVED,),
    "unshelve": (states.SHELVED, states.SHELVED_OFFLOADED),
}
#: The system metadata key naming the shelved snapshot (Nova's).
SHELVED_IMAGE = "shelved_image_id"


def _check(inst: Any, action: str) -> None:
    if inst.vm_state not in SHELVE_STATES[action]:
        raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is in "
                                   f"vm_state {inst.vm_state}")
    if inst.task_state is not None:
        raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is in "
                                   f"task_state {inst.task_state}")


def set_system_metadata(s: Session, uuid: str, items: dict[str, str | None]) -> None:
    """Set (or, with None, remove) items of the instance's system metadata."""
    rows = {r.key: r for r in s.exec(select(InstanceSystemMetadata).where(
        InstanceSystemMetadata.instance_uuid == uuid,
        InstanceSystemMetadata.key.in_(list(items)))).all()}  # type: ignore[attr-defined]
    for key, value in items.items():
        row = rows.get(key)
        if value is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(InstanceSystemMetadata(instance_uuid=uuid, key=key, value=value))
        else:
            row.value = value
            s.add(row)


def system_metadata(s: Session, uuid: str) -> dict[str, str]:
    return {r.key: r.value for r in s.exec(select(InstanceSystemMetadata).where(
        InstanceSystemMetadata.instance_uuid == uuid)).all()}


class ShelveActions:
    """shelve, shelveOffload, unshelve (mixed into ComputeAPI)."""

    db: Database
    cfg: Config
    rpc: Clients

    async def get(self, ctx: AuthContext, server_id: str) -> ServerRecord:
        raise NotImplementedError

    def _check_lock(self, ctx: AuthContext, inst: Any) -> None:
        raise NotImplementedError

    async def host_capabilities(self, host: str) -> dict[str, bool]:
        raise NotImplementedError

    def _unsupported(self, host: str, what: str) -> Conflict:
        raise NotImplementedError

    def _record(self, ctx: AuthContext, request_id: str, uuid: str, action: str,
                task_state: str, extra: Any = None) -> Any:
        """A write step: state re-checked, task_state set, the action recorded;
        ``extra(s, row)`` runs in the same transaction (its result is returned)."""

        def work(s: Session) -> Any:
            row = s.exec(select(Instance).where(Instance.uuid == uuid)).one()
            if row.vm_state not in SHELVE_STATES[action] or row.task_state is not None:
                return False
            result = extra(s, row) if extra is not None else True
            row.task_state = task_state
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=uuid, action=action, request_id=request_id,
                                 user_id=ctx.user_id, project_id=ctx.project_id))
            return result

        return work

    async def shelve(self, ctx: AuthContext, request_id: str, server_id: str) -> None:
        from novalite.compute.actions import bus_context
        from novalite.image.fields import snapshot_image

        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        _check(inst, "shelve")
        if not inst.host or not (await self.host_capabilities(inst.host)).get(
                "supports_snapshot"):
            raise self._unsupported(str(inst.host), "Action 'shelve'")
        if getattr(self, "glance", None) is not None:
            raise Conflict("Shelving needs the embedded image service; this novalite uses "
                           "an external Glance")

        def extra(s: Session, row: Instance) -> str:
            image: Image = snapshot_image(
                s.get(Image, row.image_ref), name=f"{row.display_name}-shelved",
                instance_uuid=row.uuid, image_ref=row.image_ref, project_id=row.project_id,
                user_id=ctx.user_id, root_gb=row.root_gb, metadata={})
            s.add(image)
            set_system_metadata(s, row.uuid, {
                SHELVED_IMAGE: image.id, "shelved_at": utcnow().isoformat(),
                "shelved_host": row.host or ""})
            return image.id

        image_id = await self.db.write(self._record(ctx, request_id, inst.uuid, "shelve",
                                                    states.SHELVING, extra))
        if not image_id:
            raise InstanceInvalidState(f"Cannot 'shelve' instance {inst.uuid} while it is in "
                                       f"task_state {inst.task_state}")
        offload = self.cfg.DEFAULT.shelved_offload_time == 0
        await self.rpc.compute(str(inst.host)).shelve_instance(
            bus_context(ctx, request_id), inst.uuid, image_id, offload)

    async def shelve_offload(self, ctx: AuthContext, request_id: str, server_id: str) -> None:
        from novalite.compute.actions import bus_context

        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        _check(inst, "shelveOffload")
        if not await self.db.write(self._record(ctx, request_id, inst.uuid, "shelveOffload",
                                                states.SHELVING_OFFLOADING)):
            raise InstanceInvalidState(f"Cannot 'shelveOffload' instance {inst.uuid} while "
                                       f"it is in task_state {inst.task_state}")
        await self.rpc.compute(str(inst.host)).shelve_offload_instance(
            bus_context(ctx, request_id), inst.uuid)

    async def unshelve(self, ctx: AuthContext, request_id: str, server_id: str, *,
                       availability_zone: str | None = None, host: str | None = None,
                       unpin_az: bool = False) -> None:
        """Unshelve; ``availability_zone`` (2.77), ``host`` (2.91, admins) apply to a
        SHELVED_OFFLOADED server only, as in Nova; ``unpin_az``: 2.91's
        ``availability_zone: null`` (any zone)."""
        from novalite.compute.actions import bus_context

        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        _check(inst, "unshelve")
        offloaded = inst.vm_state == states.SHELVED_OFFLOADED
        if (availability_zone or host or unpin_az) and not offloaded:
            raise Conflict(f"The server {inst.uuid} is not SHELVED_OFFLOADED: an "
                           "availability_zone or host may be given only to unshelve a "
                           "shelved offloaded server")
        if availability_zone and availability_zone != self.cfg.compute.availability_zone \
                and availability_zone not in await self.aggregates.zone_names():  # type: ignore[attr-defined]
            raise BadRequest(f"The requested availability zone is not available: "
                             f"{availability_zone}")
        if host is not None:
            host = await self._destination_host_named(host)  # type: ignore[attr-defined]

        def extra(s: Session, row: Instance) -> dict[str, Any]:
            if availability_zone:
                row.availability_zone = availability_zone
            sysmeta = system_metadata(s, row.uuid)
            image_id = sysmeta.get(SHELVED_IMAGE, "")
            image = queries.image(s, image_id) if image_id else None
            return {"image_id": image_id, "properties": dict(image.properties)
                    if image is not None else {}, "flavor": dict(row.flavor)}

        found = await self.db.write(self._record(ctx, request_id, inst.uuid, "unshelve",
                                                 states.UNSHELVING, extra))
        if not found:
            raise InstanceInvalidState(f"Cannot 'unshelve' instance {inst.uuid} while it is "
                                       f"in task_state {inst.task_state}")
        context = bus_context(ctx, request_id)
        if not offloaded:
            await self.rpc.compute(str(inst.host)).unshelve_on_host(
                context, inst.uuid, found["image_id"])
            return
        flavor = found["flavor"]
        spec = {"instance_uuid": inst.uuid, "vcpus": int(flavor.get("vcpus") or 0),
                "memory_mb": int(flavor.get("memory_mb") or 0),
                "disk_gb": int(flavor.get("root_gb") or 0)
                + int(flavor.get("ephemeral_gb") or 0)
                + (int(flavor.get("swap") or 0) + 1023) // 1024,
                "availability_zone": availability_zone or None,
                "image_properties": found["properties"], "image_id": found["image_id"],
                "extra_specs": dict(flavor.get("extra_specs") or {}),
                "project_id": inst.project_id, "requested_host": host}
        await self.rpc.conductor.unshelve_instance(context, inst.uuid, found["image_id"],
                                                   spec)


__all__ = ["SHELVED_IMAGE", "SHELVE_STATES", "ShelveActions", "set_system_metadata",
           "system_metadata"]
