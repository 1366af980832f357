"""The Nova side of volumes (``os-volume_attachments``, Nova's ``compute/api.py``
attach/detach): the state rules, Cinder's attachment records, and the compute
host's hot-plug over the bus.

An attach records the volume ``attaching`` and its attachment ``attaching`` in one
write, asks the server's compute host to hot-plug the volume (a call: the answer
comes when the guest has the disk), then records ``in-use``/``attached``; a
failure undoes the records (``available`` again) and answers the error. A service
killed between the two writes leaves ``attaching``, which
:func:`novalite.volume.api.reconcile` undoes at the next start. The volume's data
reaches the compute host as a path on its machine (the ``file`` backend is local;
a compute host on another machine would be handed an export, see
:mod:`novalite.volume.backends`).
"""

from __future__ import annotations

import builtins
import string
from typing import Any

import structlog
from sqlmodel import Session, select

from novalite import states as vm_states
from novalite.context import AuthContext
from novalite.db.models import Volume, VolumeAttachment, utcnow
from novalite.exceptions import BadRequest, Conflict, InstanceInvalidState, NotFound
from novalite.rpc import Clients, RemoteError, current_context
from novalite.virt.driver import DriverError, InstanceNotFound, NotSupported
from novalite.volume import states
from novalite.volume.api import VolumeAPI, release_attachment

log = structlog.get_logger("novalite.volume")

#: The vm_states in which Nova attaches and detaches volumes (task_state None).
ATTACH_STATES = (vm_states.ACTIVE, vm_states.PAUSED, vm_states.STOPPED,
                 vm_states.SUSPENDED)


def _next_device(taken: builtins.list[str | None]) -> str:
    """The first free ``/dev/vdX`` after the root disk (``vda``), as Nova picks."""
    used = {str(d).rsplit("/", 1)[-1] for d in taken if d}
    for letter in string.ascii_lowercase[1:]:
        if f"vd{letter}" not in used:
            return f"/dev/vd{letter}"
    raise BadRequest("No free disk device names for prefix 'vd'")


class ServerVolumes:
    """Attach, detach and list the volumes of servers."""

    def __init__(self, volumes: VolumeAPI, rpc: Clients) -> None:
        self.volumes = volumes
        self.db = volumes.db
        self.rpc = rpc

    async def list(self, instance_uuid: str) -> builtins.list[VolumeAttachment]:
        """The server's attachments (attached ones, and those on their way)."""
        return await self.db.read(lambda s: list(s.exec(select(VolumeAttachment).where(
            VolumeAttachment.instance_uuid == instance_uuid)).all()))

    async def get(self, instance_uuid: str, volume_id: str) -> VolumeAttachment:
        for att in await self.list(instance_uuid):
            if att.volume_id == volume_id:
                return att
        raise NotFound(f"Volume {volume_id} is not attached to the instance "
                       f"{instance_uuid}")

    @staticmethod
    def _check_server(inst: Any, action: str, capabilities: dict[str, bool]) -> None:
        if inst.vm_state not in ATTACH_STATES:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is "
                                       f"in vm_state {inst.vm_state}")
        if inst.task_state is not None:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is "
                                       f"in task_state {inst.task_state}")
        if not inst.host:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid}: it has no "
                                       "host")
        if not capabilities.get("supports_attach_volume"):
            raise Conflict(f"Action '{action}' is not supported by this hypervisor "
                           f"(host {inst.host})")

    async def attach(self, ctx: AuthContext, inst: Any, capabilities: dict[str, bool],
                     volume_id: str, *, device: str | None = None,
                     delete_on_termination: bool = False, tag: str | None = None
                     ) -> VolumeAttachment:
        """Attach the caller's available volume to the running server ``inst``."""
        self._check_server(inst, "attach_volume", capabilities)
        vol = (await self.volumes.get(ctx, volume_id)).volume  # 404 for another project's

        def mark(s: Session) -> tuple[VolumeAttachment, Volume]:
            row = s.get(Volume, volume_id)
            if row is None:
                raise NotFound(f"Volume {volume_id} could not be found.")
            if row.status != states.AVAILABLE:
                raise BadRequest(f"Invalid volume: volume {volume_id} status must be "
                                 f"'available'. Currently in '{row.status}'")
            taken = [a.device for a in s.exec(select(VolumeAttachment).where(
                VolumeAttachment.instance_uuid == inst.uuid)).all()]
            name = device or _next_device(taken)
            if name in taken:
                raise Conflict(f"The supplied device path ({name}) is in use.")
            row.status, row.updated_at = states.ATTACHING, utcnow()
            s.add(row)
            att = VolumeAttachment(volume_id=volume_id, instance_uuid=inst.uuid,
                                   attached_host=inst.host, device=name,
                                   delete_on_termination=delete_on_termination, tag=tag)
            s.add(att)
            return att, row

        att, vol = await self.db.write(mark)
        assert vol.provider_location
        connection = {"volume_id": vol.id, "path": self.volumes.backend.path(
            vol.provider_location), "size": vol.size * 1024 ** 3, "device": att.device}
        try:
            await self.rpc.compute(str(inst.host)).attach_volume(
                current_context(ctx), inst.uuid, connection)
        except BaseException as exc:
            await self._undo_attach(att.id, vol.id)
            raise host_refusal(exc, inst, "attach_volume") from None

        def done(s: Session) -> VolumeAttachment:
            row, a = s.get(Volume, vol.id), s.get(VolumeAttachment, att.id)
            assert row is not None and a is not None
            row.status, row.updated_at = states.IN_USE, utcnow()
            a.attach_status, a.attached_at = states.ATTACHED, utcnow()
            s.add(row)
            s.add(a)
            return a

        att = await self.db.write(done)
        log.info("volume attached", volume=vol.id, instance=inst.uuid, device=att.device)
        return att

    async def _undo_attach(self, attachment_id: str, volume_id: str) -> None:
        import trio

        def undo(s: Session) -> None:
            att = s.get(VolumeAttachment, attachment_id)
            if att is not None:
                s.delete(att)
            row = s.get(Volume, volume_id)
            if row is not None:
                row.status = states.AVAILABLE
                s.add(row)

        with trio.CancelScope(shield=True):
            await self.db.write(undo)

    async def detach(self, ctx: AuthContext, inst: Any, capabilities: dict[str, bool],
                     volume_id: str) -> None:
        """Detach a volume from the server (not its root volume)."""
        att = await self.get(inst.uuid, volume_id)
        if att.boot_index == 0:
            raise BadRequest("Cannot detach a root device volume")
        self._check_server(inst, "detach_volume", capabilities)
        if att.attach_status != states.ATTACHED:
            raise BadRequest(f"Invalid volume: Volume {volume_id} is {att.attach_status}")
        await self._set(att.id, volume_id, states.DETACHING, states.DETACHING)
        try:
            await self.rpc.compute(str(inst.host)).detach_volume(current_context(ctx),
                                                                 inst.uuid, volume_id)
        except BaseException as exc:
            import trio

            with trio.CancelScope(shield=True):
                await self._set(att.id, volume_id, states.ATTACHED, states.IN_USE)
            raise host_refusal(exc, inst, "detach_volume") from None
        await self.release(att.id, volume_id)
        log.info("volume detached", volume=volume_id, instance=inst.uuid)

    async def _set(self, attachment_id: str, volume_id: str, attach_status: str,
                   status: str) -> None:
        def work(s: Session) -> None:
            att, row = s.get(VolumeAttachment, attachment_id), s.get(Volume, volume_id)
            if att is not None:
                att.attach_status = attach_status
                s.add(att)
            if row is not None:
                row.status, row.updated_at = status, utcnow()
                s.add(row)

        await self.db.write(work)

    async def set_delete_on_termination(self, attachment_id: str, value: bool) -> None:
        def work(s: Session) -> None:
            row = s.get(VolumeAttachment, attachment_id)
            if row is not None:
                row.delete_on_termination = value
                s.add(row)

        await self.db.write(work)

    async def release(self, attachment_id: str, volume_id: str) -> None:
        """Forget an attachment; the volume is ``available`` unless another holds it."""
        await self.db.write(lambda s: release_attachment(s, attachment_id, volume_id))

    async def release_instance(self, instance_uuid: str) -> None:
        """A deleted server's volumes: deleted if ``delete_on_termination``, else
        ``available`` again with their data (the guest is gone with its disks)."""
        for att in await self.list(instance_uuid):
            await self.release(att.id, att.volume_id)
            if att.delete_on_termination:
                vid = att.volume_id
                vol = await self.db.read(lambda s: s.get(Volume, vid))  # noqa: B023
                if vol is not None:
                    await self.volumes.destroy(vol)


def host_refusal(exc: BaseException, inst: Any, action: str) -> BaseException:
    """The API's error for a hot-plug (of a volume or, see
    :mod:`novalite.compute.interfaces`, a NIC) its compute host refused; the records
    are already undone."""
    if isinstance(exc, NotSupported):
        return Conflict(f"Action '{action}' is not supported by this hypervisor "
                        f"(host {inst.host})")
    if isinstance(exc, InstanceNotFound):
        return InstanceInvalidState(f"Instance {inst.uuid} is not ready")
    if isinstance(exc, (DriverError, RemoteError)):
        message = exc.message if isinstance(exc, RemoteError) else str(exc)
        return Conflict(f"Cannot '{action}' instance {inst.uuid}: {message}")
    return exc
