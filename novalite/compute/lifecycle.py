"""Rebuild, rescue/unrescue, createBackup, soft delete (restore, forceDelete) and
trigger_crash_dump: the business rules (issue 20, part A).

:class:`ServerLifecycle` is mixed into :class:`~novalite.compute.api.ComputeAPI`.
Each action checks Nova's states (``check_instance_state``) and the lock, moves the
record to its task state and records the instance action in one transaction, then
casts the work to the instance's host; the 409s carry Nova's messages.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from novalite import states
from novalite.compute.actions import bus_context
from novalite.console import tokens as console_tokens
from novalite.context import AuthContext
from novalite.db import queries
from novalite.db.models import Image, Instance, InstanceAction, KeyPair, utcnow
from novalite.exceptions import (
    BadRequest,
    Conflict,
    InstanceInvalidState,
    QuotaExceeded,
)

if TYPE_CHECKING:
    from novalite.compute.actions import ServerActions

    _Base = ServerActions
else:
    _Base = object

#: action -> (allowed vm_states, allowed task_states), as Nova's check_instance_state.
LIFECYCLE_STATES: dict[str, tuple[tuple[str, ...], tuple[str | None, ...]]] = {
    "rebuild": ((states.ACTIVE, states.STOPPED, states.ERROR), (None,)),
    "rescue": ((states.ACTIVE, states.STOPPED, states.ERROR), (None,)),
    "unrescue": ((states.RESCUED,), (None,)),
    "createBackup": ((states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED),
                     (None,)),
    "restore": ((states.SOFT_DELETED,), (None,)),
    "trigger_crash_dump": ((states.ACTIVE, states.PAUSED, states.RESCUED, states.ERROR),
                           (None,)),
}


def _invalid(uuid: str, label: str, vm_state: str, task_state: str | None,
             vm_ok: tuple[str, ...]) -> InstanceInvalidState:
    if vm_state not in vm_ok:
        return InstanceInvalidState(f"Cannot '{label}' instance {uuid} while it is in "
                                    f"vm_state {vm_state}")
    return InstanceInvalidState(f"Cannot '{label}' instance {uuid} while it is in "
                                f"task_state {task_state}")


class ServerLifecycle(_Base):
    """Rebuild, rescue, backup, soft delete and crash dumps; needs ComputeAPI's ``get``,
    ``db``, ``cfg``, ``rpc``, ``glance`` and ``quotas``."""

    async def _transition(self, ctx: AuthContext, request_id: str, inst: Any, label: str,
                          task_state: str | None,
                          change: Callable[[Session, Instance], None] | None = None,
                          capability: str | None = None) -> Instance:
        """Check the lock, the states and the host's ``capability``, then set
        ``task_state``, apply ``change`` and record the instance action ``label``, in
        one transaction (a concurrent action loses with Nova's 409)."""
        vm_ok, task_ok = LIFECYCLE_STATES[label]
        self._check_lock(ctx, inst)
        if inst.vm_state not in vm_ok or inst.task_state not in task_ok:
            raise _invalid(inst.uuid, label, inst.vm_state, inst.task_state, vm_ok)
        if not inst.host:
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid}: it has no "
                                       "host")
        if capability and not (await self.host_capabilities(inst.host)).get(capability):
            raise self._unsupported(inst.host, f"Action '{label}'")

        def work(s: Session) -> Instance | None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            if row.vm_state not in vm_ok or row.task_state not in task_ok:
                return None
            if change is not None:
                change(s, row)
            row.task_state = task_state
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action=label, request_id=request_id,
                                 user_id=ctx.user_id, project_id=ctx.project_id))
            return row

        row = await self.db.write(work)
        if row is None:
            fresh = (await self.get(ctx, inst.uuid)).instance
            raise _invalid(inst.uuid, label, fresh.vm_state, fresh.task_state, vm_ok)
        return row

    async def _image_for(self, ctx: AuthContext, image_ref: str, inst: Any
                         ) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
        """The image ``image_ref`` if the caller may boot the server from it:
        (its id, an external Glance's payloads or None, its properties)."""
        if self.glance is not None:
            image: Any = await self.glance.get(image_ref, ctx.token)
            payloads = await self.glance.payloads(image, ctx.token) if image else None
        else:
            image = await self.db.read(lambda s: queries.image(s, image_ref))
            payloads = None
            if image is not None and not ctx.is_admin and image.visibility not in (
                    "public", "community") and image.owner != ctx.project_id:
                image = None  # another project's private image: as if there were none
        if image is None:
            raise BadRequest(f"Image {image_ref} could not be found.")
        if image.status != "active":
            raise BadRequest(f"Image {image_ref} is not active.")
        if inst.memory_mb < (image.min_ram or 0):
            raise BadRequest("Flavor's memory is too small for requested image.")
        if inst.root_gb and inst.root_gb < (image.min_disk or 0):
            raise BadRequest("Flavor's disk is too small for requested image.")
        return str(image.id), payloads, dict(image.properties or {})

    # -- rebuild -----------------------------------------------------------------------
    async def rebuild(self, ctx: AuthContext, request_id: str, server_id: str,
                      args: dict[str, Any]) -> tuple[Instance, str]:
        """Rebuild the server from ``args["imageRef"]`` (validated by the route for its
        microversion); ``args`` may replace ``name``, ``metadata``, ``description``,
        ``accessIPv4``/``accessIPv6``, ``personality``, ``key_name`` (None: none),
        ``user_data`` (None: none), ``hostname``. Returns (instance, admin password)."""
        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        vm_ok, task_ok = LIFECYCLE_STATES["rebuild"]
        if inst.vm_state not in vm_ok or inst.task_state not in task_ok:
            raise _invalid(inst.uuid, "rebuild", inst.vm_state, inst.task_state, vm_ok)
        image_ref = str(args["imageRef"]).rsplit("/", 1)[-1]
        image_id, payloads, _props = await self._image_for(ctx, image_ref, inst)
        metadata = args.get("metadata")
        quotas = getattr(self, "quotas", None)
        if metadata is not None and quotas is not None:
            limit = (await quotas.limits(ctx.project_id))["metadata_items"]
            if 0 <= limit < len(metadata):
                raise QuotaExceeded("Quota exceeded for metadata_items: Requested "
                                    f"{len(metadata)}, but already used 0 of {limit} "
                                    "metadata_items")
        key_data: str | None = None
        if args.get("key_name") is not None:
            key = await self.db.read(lambda s: s.exec(select(KeyPair).where(
                KeyPair.user_id == ctx.user_id, KeyPair.name == args["key_name"])).first())
            if key is None:
                raise BadRequest("Invalid key_name provided.")
            key_data = key.public_key
        if args.get("user_data") is not None:
            try:
                base64.b64decode(args["user_data"], validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("User data needs to be valid base 64.") from None
        admin_pass = args.get("adminPass") or secrets.token_urlsafe(9)

        def change(s: Session, row: Instance) -> None:
            row.image_ref = image_id
            fields = {"name": "display_name", "description": "display_description",
                      "accessIPv4": "access_ip_v4", "accessIPv6": "access_ip_v6",
                      "hostname": "hostname", "user_data": "user_data",
                      "personality": "injected_files"}
            for key, column in fields.items():
                if key in args:
                    setattr(row, column, args[key])
            if metadata is not None:
                row.metadata_ = dict(metadata)
            if "OS-DCF:diskConfig" in args:
                row.auto_disk_config = args["OS-DCF:diskConfig"] == "AUTO"
            if "key_name" in args:
                row.key_name, row.key_data = args["key_name"], key_data
            console_tokens.delete_for_instance(s, row.uuid)  # the old guest's consoles

        row = await self._transition(ctx, request_id, inst, "rebuild", states.REBUILDING,
                                     change)
        await self.rpc.compute(str(row.host)).rebuild_instance(
            bus_context(ctx, request_id), row.uuid, image_id,
            admin_pass if row.config_drive else None, payloads)
        return row, admin_pass

    # -- rescue ------------------------------------------------------------------------
    async def rescue(self, ctx: AuthContext, request_id: str, server_id: str,
                     admin_pass: str | None, rescue_image_ref: str | None) -> str:
        """Rescue the server with ``rescue_image_ref`` (default: its own image); returns
        the admin password. A stable device rescue (the image's ``hw_rescue_device`` /
        ``hw_rescue_bus``) needs a host that supports it."""
        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        vm_ok, task_ok = LIFECYCLE_STATES["rescue"]
        if inst.vm_state not in vm_ok or inst.task_state not in task_ok:
            raise _invalid(inst.uuid, "rescue", inst.vm_state, inst.task_state, vm_ok)
        image_id, payloads, props = await self._image_for(
            ctx, rescue_image_ref or inst.image_ref, inst)
        if inst.host and any(props.get(k) for k in ("hw_rescue_device", "hw_rescue_bus")) \
                and not (await self.host_capabilities(inst.host)).get(
                    "supports_stable_rescue"):
            raise BadRequest(f"Instance {inst.uuid} cannot be rescued: Stable device rescue "
                             "is not supported by this hypervisor.")
        row = await self._transition(ctx, request_id, inst, "rescue", states.RESCUING,
                                     capability="supports_rescue")
        await self.rpc.compute(str(row.host)).rescue_instance(
            bus_context(ctx, request_id), row.uuid, image_id, payloads)
        return admin_pass or secrets.token_urlsafe(9)

    async def unrescue(self, ctx: AuthContext, request_id: str, server_id: str) -> None:
        inst = (await self.get(ctx, server_id)).instance
        row = await self._transition(ctx, request_id, inst, "unrescue", states.UNRESCUING,
                                     capability="supports_rescue")
        await self.rpc.compute(str(row.host)).unrescue_instance(
            bus_context(ctx, request_id), row.uuid)

    # -- backup ------------------------------------------------------------------------
    async def backup(self, ctx: AuthContext, request_id: str, server_id: str, name: str,
                     backup_type: str, rotation: int, metadata: dict[str, str]) -> str:
        """createBackup: a snapshot image with Nova's ``image_type=backup``,
        ``backup_type`` and ``instance_uuid``; after it is stored the oldest backups of
        that type beyond ``rotation`` are deleted. Returns the new image's id."""
        from novalite.image.fields import snapshot_image

        inst = (await self.get(ctx, server_id)).instance
        quotas = getattr(self, "quotas", None)
        if quotas is not None and metadata:
            limit = (await quotas.limits(ctx.project_id))["metadata_items"]
            if 0 <= limit < len(metadata):
                raise QuotaExceeded("Image metadata limit exceeded")
        if self.glance is not None:
            raise Conflict("createBackup is not available with an external image service")
        backup_props = {"image_type": "backup", "backup_type": backup_type}
        image_id = ""

        def change(s: Session, row: Instance) -> None:
            nonlocal image_id
            image = snapshot_image(s.get(Image, row.image_ref), name=name,
                                   instance_uuid=row.uuid, image_ref=row.image_ref,
                                   project_id=row.project_id, user_id=ctx.user_id,
                                   root_gb=row.root_gb, metadata=metadata)
            image.properties = {**image.properties, **backup_props}
            s.add(image)
            image_id = image.id

        row = await self._transition(ctx, request_id, inst, "createBackup",
                                     states.IMAGE_BACKUP, change,
                                     capability="supports_snapshot")
        await self.rpc.compute(str(row.host)).backup_instance(
            bus_context(ctx, request_id), row.uuid, image_id, backup_type, rotation)
        return image_id

    # -- soft delete -------------------------------------------------------------------
    async def soft_delete(self, ctx: AuthContext, request_id: str, inst: Any) -> bool:
        """DELETE with ``[DEFAULT] reclaim_instance_interval`` set: the server becomes
        SOFT_DELETED (restorable until reclaimed). False when it cannot be (no host):
        the caller deletes it at once."""
        from novalite.compute.api import _compute_up

        if not inst.host or inst.vm_state in (states.SOFT_DELETED, states.BUILDING):
            return False
        down_time = self.cfg.compute.service_down_time

        def work(s: Session) -> Instance | None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            if row.task_state is not None or row.deleted or row.host is None \
                    or not _compute_up(s, row.host, down_time):
                return None  # deleted at once, as the host's being down allows
            row.task_state = states.SOFT_DELETING
            row.deleted_at = row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action="delete", request_id=request_id,
                                 user_id=ctx.user_id, project_id=ctx.project_id))
            console_tokens.delete_for_instance(s, row.uuid)
            return row

        row = await self.db.write(work)
        if row is None:
            return False
        await self.rpc.compute(str(row.host)).soft_delete_instance(
            bus_context(ctx, request_id), row.uuid)
        return True

    async def restore(self, ctx: AuthContext, request_id: str, server_id: str) -> None:
        """restore: a SOFT_DELETED server comes back (powered on, ACTIVE)."""
        inst = (await self.get(ctx, server_id)).instance

        def change(s: Session, row: Instance) -> None:
            row.deleted_at = None

        row = await self._transition(ctx, request_id, inst, "restore", states.RESTORING,
                                     change)
        await self.rpc.compute(str(row.host)).restore_instance(
            bus_context(ctx, request_id), row.uuid)

    async def force_delete(self, ctx: AuthContext, request_id: str, server_id: str) -> None:
        """forceDelete: delete a SOFT_DELETED server now."""
        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        if inst.vm_state != states.SOFT_DELETED or inst.task_state is not None:
            raise _invalid(inst.uuid, "forceDelete", inst.vm_state, inst.task_state,
                           (states.SOFT_DELETED,))
        await self.delete(ctx, request_id, server_id, force=True)

    async def delete(self, ctx: AuthContext, request_id: str, server_id: str, *,
                     force: bool = False) -> None:
        raise NotImplementedError

    # -- crash dump --------------------------------------------------------------------
    async def trigger_crash_dump(self, ctx: AuthContext, request_id: str,
                                 server_id: str) -> None:
        """trigger_crash_dump (2.17): an NMI to the guest; 400 where the hypervisor
        cannot (Nova's TriggerCrashDumpNotSupported)."""
        inst = (await self.get(ctx, server_id)).instance
        if inst.host and not (await self.host_capabilities(inst.host)).get(
                "supports_trigger_crash_dump"):
            raise BadRequest("Triggering crash dump is not supported")
        row = await self._transition(ctx, request_id, inst, "trigger_crash_dump", None)
        await self.rpc.compute(str(row.host)).trigger_crash_dump(
            bus_context(ctx, request_id), row.uuid)
