"""The actions on a server: power and lock actions, snapshots, console output, history.

:class:`ServerActions` is one half of :class:`~novalite.compute.api.ComputeAPI` (the
other: create, list, show, update, delete); ``ACTIONS`` is the state table that
decides, as Nova's ``check_instance_state``, which action a server may take when.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from novalite import states
from novalite.config import Config
from novalite.context import AuthContext, RequestContext
from novalite.db.engine import Database
from novalite.db.models import (
    ComputeNode,
    Image,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    utcnow,
)
from novalite.exceptions import (
    Conflict,
    InstanceInvalidState,
    NotFound,
    NovaliteError,
    QuotaExceeded,
)
from novalite.rpc import Clients, RemoteError, current_context
from novalite.virt.driver import DriverError, InstanceNotFound

if TYPE_CHECKING:
    from novalite.compute.api import ServerRecord
    from novalite.db.models import InstanceRow
    from novalite.image.glance_client import GlanceClient

#: What Nova strips from console output: control characters but tab and newline.
_UNPRINTABLE = re.compile("[\x00-\x08\x0B-\x1F]")

#: action -> (allowed vm_states, allowed task_states, driver capability)
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str | None, ...], str | None]] = {
    "stop": ((states.ACTIVE, states.ERROR), (None,), "supports_power_off"),
    "start": ((states.STOPPED,), (None,), "supports_power_off"),
    "reboot_soft": ((states.ACTIVE,), (None, states.REBOOTING), "supports_reboot"),
    "reboot_hard": ((states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED,
                     states.ERROR), (None, states.REBOOTING, states.REBOOTING_HARD),
                    "supports_reboot"),
    "pause": ((states.ACTIVE,), (None,), "supports_pause"),
    "unpause": ((states.PAUSED,), (None,), "supports_pause"),
    "suspend": ((states.ACTIVE,), (None,), "supports_suspend"),
    "resume": ((states.SUSPENDED,), (None,), "supports_suspend"),
    "createImage": ((states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED), (None,),
                    "supports_snapshot"),
}
#: action -> task_state set while the compute host works on it
TASK_FOR = {
    "stop": states.POWERING_OFF, "start": states.POWERING_ON, "reboot_soft": states.REBOOTING,
    "reboot_hard": states.REBOOTING_HARD, "pause": states.PAUSING,
    "unpause": states.UNPAUSING, "suspend": states.SUSPENDING, "resume": states.RESUMING,
    "createImage": states.IMAGE_SNAPSHOT,
}


def bus_context(ctx: AuthContext, request_id: str) -> RequestContext:
    """The request context of a call: with the caller's token, with which a compute host
    reaches the image API as the caller (image download, snapshot upload)."""
    return RequestContext.from_auth(ctx, request_id)



class ServerActions:
    """Actions on existing servers; mixed into ComputeAPI, which provides ``get``."""

    db: Database
    cfg: Config
    rpc: Clients
    #: An external Glance ([glance] api_servers), or None for the embedded one.
    glance: GlanceClient | None

    async def get(self, ctx: AuthContext, server_id: str) -> ServerRecord:
        raise NotImplementedError

    def _check_lock(self, ctx: AuthContext, inst: Instance | InstanceRow) -> None:
        if inst.locked and not ctx.is_admin:
            raise Conflict(f"Instance {inst.uuid} is locked")

    async def host_capabilities(self, host: str) -> dict[str, bool]:
        """The driver capabilities ``host`` last reported ({} before its first report)."""
        found = await self.db.read(lambda s: s.exec(
            select(ComputeNode.capabilities).where(ComputeNode.host == host)).first())
        return dict(found or {})

    def _unsupported(self, host: str, what: str) -> Conflict:
        return Conflict(f"{what} is not supported by this hypervisor (host {host})")

    async def _check_state(self, inst: Instance | InstanceRow, action: str,
                           label: str) -> None:
        vm_ok, task_ok, capability = ACTIONS[action]
        if inst.vm_state not in vm_ok:
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid} while it is in "
                                       f"vm_state {inst.vm_state}")
        if inst.task_state not in task_ok:
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid} while it is in "
                                       f"task_state {inst.task_state}")
        if capability and inst.host and \
                not (await self.host_capabilities(inst.host)).get(capability):
            raise self._unsupported(inst.host, f"Action '{label}'")
        if not inst.host:
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid}: it has no host")

    async def power_action(self, ctx: AuthContext, request_id: str, server_id: str,
                           action: str, reboot_type: str = "SOFT") -> None:
        """stop, start, reboot_soft, reboot_hard, pause, unpause, suspend, resume."""
        record = await self.get(ctx, server_id)
        inst = record.instance
        label = "reboot" if action.startswith("reboot") else action
        self._check_lock(ctx, inst)
        await self._check_state(inst, action, label)
        nova_action = {"reboot_soft": "reboot", "reboot_hard": "reboot"}.get(action, action)
        vm_ok, task_ok, _ = ACTIONS[action]

        def work(s: Session) -> bool:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            if row.vm_state not in vm_ok or row.task_state not in task_ok:
                return False
            row.task_state = TASK_FOR[action]
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action=nova_action,
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id))
            return True

        if not await self.db.write(work):
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid} while it is in "
                                       f"task_state {inst.task_state}")
        await self.rpc.compute(str(inst.host)).power_action(
            bus_context(ctx, request_id), inst.uuid, label, reboot_type)

    async def snapshot(self, ctx: AuthContext, request_id: str, server_id: str, name: str,
                       metadata: dict[str, str]) -> str:
        """createImage: record a queued snapshot image, set task_state image_snapshot and
        cast the snapshot to the instance's host; returns the new image's id."""
        from novalite.image.fields import snapshot_image

        glance = self.glance
        inst = (await self.get(ctx, server_id)).instance
        quotas = getattr(self, "quotas", None)
        if quotas is not None and metadata:
            limit = (await quotas.limits(ctx.project_id))["metadata_items"]
            if 0 <= limit < len(metadata):
                raise QuotaExceeded("Image metadata limit exceeded")
        self._check_lock(ctx, inst)
        await self._check_state(inst, "createImage", "createImage")
        vm_ok, task_ok, _ = ACTIONS["createImage"]
        external_id = None
        context = bus_context(ctx, request_id)
        if glance is not None:  # the record is made in the external Glance, as the caller
            source = await glance.get(inst.image_ref, ctx.token)
            record = snapshot_image(source, name=name, instance_uuid=inst.uuid,
                                    image_ref=inst.image_ref, project_id=inst.project_id,
                                    user_id=ctx.user_id, root_gb=inst.root_gb,
                                    metadata=metadata)
            external_id = await glance.create_image(ctx.token, {
                "name": name, "visibility": "private", "min_disk": record.min_disk,
                "min_ram": record.min_ram, **record.properties})

        def work(s: Session) -> str | None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            if row.vm_state not in vm_ok or row.task_state not in task_ok:
                return None
            if external_id is not None:
                image_id = external_id
            else:
                image = snapshot_image(s.get(Image, row.image_ref), name=name,
                                       instance_uuid=row.uuid, image_ref=row.image_ref,
                                       project_id=row.project_id, user_id=ctx.user_id,
                                       root_gb=row.root_gb, metadata=metadata)
                s.add(image)
                image_id = image.id
            row.task_state = TASK_FOR["createImage"]
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action="createImage",
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id))
            return image_id

        image_id = await self.db.write(work)
        if image_id is None:
            if glance is not None and external_id is not None:
                await glance.delete(ctx.token, external_id)
            raise InstanceInvalidState(f"Cannot 'createImage' instance {inst.uuid} while it "
                                       f"is in task_state {inst.task_state}")
        await self.rpc.compute(str(inst.host)).snapshot_instance(context, inst.uuid, image_id)
        return image_id

    async def set_lock(self, ctx: AuthContext, request_id: str, server_id: str, locked: bool,
                       reason: str | None = None) -> None:
        record = await self.get(ctx, server_id)

        def work(s: Session) -> None:
            row = s.exec(select(Instance).where(Instance.uuid == record.instance.uuid)).one()
            row.locked = locked
            row.locked_by = ("admin" if ctx.is_admin else "owner") if locked else None
            row.locked_reason = reason if locked else None
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action="lock" if locked else "unlock",
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id))

        await self.db.write(work)

    async def console_output(self, ctx: AuthContext, server_id: str, length: int | None) -> str:
        inst = (await self.get(ctx, server_id)).instance
        if not inst.host or inst.vm_state == states.BUILDING:
            raise InstanceInvalidState(f"Instance {inst.uuid} is not ready: it is in vm_state "
                                       f"{inst.vm_state}")
        if not (await self.host_capabilities(inst.host)).get("supports_console_output"):
            raise self._unsupported(inst.host, "Console output")
        try:
            output = await self.rpc.compute(str(inst.host)).get_console_output(
                current_context(ctx), inst.uuid)
        except InstanceNotFound:
            raise Conflict(f"Guest of instance {inst.uuid} is not running") from None
        except (RemoteError, DriverError, NovaliteError) as exc:
            message = exc.message if isinstance(exc, RemoteError) else str(exc)
            raise Conflict(f"Cannot get console output: {message}") from None
        if length is not None:  # Nova's _tail_log: the last ``length`` of its '\n' parts
            output = "\n".join(output.split("\n")[-length:]) if length else ""
        return _UNPRINTABLE.sub("", output)

    async def reset_state(self, ctx: AuthContext, request_id: str, server_id: str,
                          state: str) -> None:
        """os-resetState: set vm_state ``active`` or ``error`` and clear the task, recorded
        as the instance action ``resetState`` (Nova's admin action)."""
        inst = (await self.get(ctx, server_id)).instance

        def work(s: Session) -> None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            row.vm_state = {"active": states.ACTIVE, "error": states.ERROR}[state]
            row.task_state = None
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action="resetState",
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id, finish_time=utcnow()))

        await self.db.write(work)

    async def diagnostics(self, ctx: AuthContext, server_id: str) -> dict[str, Any]:
        """What is known of a server's guest: its state, the host's driver and
        hypervisor, vCPUs, memory, NICs and disks (counters the drivers do not report
        are None)."""
        inst = (await self.get(ctx, server_id)).instance
        if not inst.host or inst.vm_state == states.BUILDING:
            raise InstanceInvalidState(f"Instance {inst.uuid} is not ready: it is in vm_state "
                                       f"{inst.vm_state}")
        node = await self.db.read(lambda s: s.exec(
            select(ComputeNode).where(ComputeNode.host == inst.host)).first())
        return {"instance": inst, "hypervisor_type": node.hypervisor_type if node else None}

    async def _server_any(self, ctx: AuthContext, server_id: str) -> Instance:
        """The caller's server, deleted ones too (instance actions from 2.21)."""
        def work(s: Session) -> Instance | None:
            rows = s.exec(select(Instance).where(Instance.uuid == server_id)
                          .order_by(Instance.deleted)).all()  # type: ignore[arg-type]
            for inst in rows:
                if ctx.is_admin or inst.project_id == ctx.project_id:
                    return inst
            return None

        found = await self.db.read(work)
        if found is None:
            raise NotFound(f"Instance {server_id} could not be found.")
        return found

    async def actions(self, ctx: AuthContext, server_id: str, *,
                      read_deleted: bool = False) -> list[InstanceAction]:
        """The server's actions, newest first; ``read_deleted``: a deleted server's too
        (Nova from 2.21)."""
        inst = await self._server_any(ctx, server_id) if read_deleted \
            else (await self.get(ctx, server_id)).instance
        return await self.db.read(lambda s: list(s.exec(
            select(InstanceAction).where(InstanceAction.instance_uuid == inst.uuid)
            .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())).all()))  # type: ignore[attr-defined, union-attr]

    async def action_with_events(self, ctx: AuthContext, server_id: str, request_id: str, *,
                                 read_deleted: bool = False
                                 ) -> tuple[InstanceAction, list[InstanceActionEvent]]:
        match = [a for a in await self.actions(ctx, server_id, read_deleted=read_deleted)
                 if a.request_id == request_id]
        if not match:
            raise NotFound(f"Action {request_id} not found")
        action = match[0]
        events = await self.db.read(lambda s: list(s.exec(
            select(InstanceActionEvent).where(InstanceActionEvent.action_id == action.id)
            .order_by(InstanceActionEvent.id)).all()))  # type: ignore[arg-type]
        return action, events
