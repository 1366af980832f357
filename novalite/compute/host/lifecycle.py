"""The compute actor's part of rebuild, rescue, backup, soft delete and crash dumps
(issue 20, part A): the ``compute.<host>`` methods mixed into
:class:`~novalite.compute.host.manager.ComputeManager`.

As the rest of the actor, it never touches the database: it reads instances and
images through the conductor and records states, events and faults through it.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import structlog
import trio

from novalite import rpc, states
from novalite.context import RequestContext
from novalite.virt.driver import (
    DriverError,
    ImageInfo,
    InstanceSpec,
    NetworkInfo,
    PowerState,
)

if TYPE_CHECKING:
    from novalite.compute.host.consoles import ConsoleRelay
    from novalite.compute.host.image_cache import ImageCache
    from novalite.metadata.proxy import MetadataProxy
    from novalite.rpc.conductor import ConductorClient
    from novalite.virt.driver import Driver

log = structlog.get_logger("novalite.compute")

#: Image properties that ask for a stable device rescue (Nova 2.87's rule).
STABLE_RESCUE_PROPERTIES = ("hw_rescue_device", "hw_rescue_bus")


def image_info(image: dict[str, Any], path: str) -> ImageInfo:
    """The driver's view of an image payload fetched to ``path``."""
    return ImageInfo(id=image["id"], name=image["name"], disk_format=image["disk_format"],
                     container_format=image["container_format"], path=path,
                     size=image["size"], properties=image["properties"])


def is_stable_rescue(image: dict[str, Any]) -> bool:
    """Whether the rescue image asks for a stable device rescue."""
    return any((image.get("properties") or {}).get(k) for k in STABLE_RESCUE_PROPERTIES)


class LifecycleHandlers:
    """Rebuild, rescue/unrescue, backup, soft delete/restore and trigger_crash_dump."""

    if TYPE_CHECKING:
        host: str
        driver: Driver
        conductor: ConductorClient
        cache: ImageCache
        consoles: ConsoleRelay | None
        metadata: MetadataProxy | None
        shutdown_timeout: float
        _locks: dict[str, trio.Lock]

        async def update(self, context: RequestContext, uuid: str, **values: Any) -> Any: ...

        def event(self, context: RequestContext, uuid: str, name: str
                  ) -> AbstractAsyncContextManager[None]: ...

        async def _spawn(self, instance: dict[str, Any], image: dict[str, Any] | None,
                         kernel: dict[str, Any] | None, ramdisk: dict[str, Any] | None,
                         token: str = "", admin_pass: str | None = None,
                         launch: Callable[[InstanceSpec, ImageInfo, list[NetworkInfo]],
                                          Awaitable[None]] | None = None) -> int | None: ...

        async def _power_or_none(self, uuid: str) -> PowerState | None: ...

        async def snapshot_instance(self, context: RequestContext, uuid: str,
                                    image_id: str) -> None: ...

    async def _images(self, context: RequestContext, image_id: str,
                      glance_images: dict[str, Any] | None) -> dict[str, Any]:
        return glance_images or await self.conductor.image_payloads(context, image_id)

    async def _failed(self, context: RequestContext, uuid: str, what: str,
                      exc: BaseException, vm_state: str | None = states.ERROR) -> None:
        """Record a failed operation: the state Nova leaves, and the fault."""
        log.warning(f"{what} failed", instance=uuid, error=str(exc))
        with trio.CancelScope(shield=True):
            values: dict[str, Any] = {"task_state": None}
            if vm_state is not None:
                values["vm_state"] = vm_state
            power = await self._power_or_none(uuid)
            if power is not None:
                values["power_state"] = int(power)
            await self.update(context, uuid, **values)
            await self.conductor.instance_fault(context, uuid, f"{what} failed: {exc}"[:255],
                                                self.host, traceback.format_exc())

    # -- rebuild -----------------------------------------------------------------------
    @rpc.method
    async def rebuild_instance(self, context: RequestContext, uuid: str, image_id: str,
                               admin_pass: str | None,
                               glance_images: dict[str, Any] | None = None,
                               evacuation: dict[str, Any] | None = None) -> None:
        """Rebuild from ``image_id``: the driver's own rebuild, else destroy and spawn.
        ``evacuation``: the server's old host is down; it is rebuilt here (spawned: this
        host has no guest of it) and the conductor told."""
        if self.consoles is not None:  # the old guest's console sessions end
            self.consoles.revoke_instance(uuid)
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_rebuild_instance"):
                    instance = await self.conductor.instance_get(context, uuid)
                    if instance is None or instance["deleted"]:
                        return
                    was_stopped = instance["vm_state"] == states.STOPPED
                    if evacuation is not None:
                        was_stopped = was_stopped or bool(evacuation.get("stop"))
                    images = await self._images(context, image_id, glance_images)
                    await self.update(context, uuid,
                                      task_state=states.REBUILD_BLOCK_DEVICE_MAPPING)
                    in_place = bool(self.driver.capabilities.get("supports_rebuild")) \
                        and evacuation is None
                    if not in_place:
                        await self.driver.destroy(uuid)  # the old disk goes with the guest
                    if self.metadata is not None:
                        self.metadata.close(uuid)
                    self.cache.release(uuid)
                    await self.update(context, uuid, task_state=states.REBUILD_SPAWNING)
                    ssh_port = await self._spawn(
                        instance, images["image"], images.get("kernel"),
                        images.get("ramdisk"), token=context.auth_token,
                        admin_pass=admin_pass,
                        launch=self.driver.rebuild if in_place else None)
                    if was_stopped:  # Nova: a stopped server is stopped after its rebuild
                        await self.driver.power_off(uuid, self.shutdown_timeout)
            except Exception as exc:
                await self._failed(context, uuid, "Rebuild", exc)
                if evacuation is not None:
                    with trio.CancelScope(shield=True):
                        await self.conductor.evacuate_done(
                            context, uuid, int(evacuation["migration_id"]), self.host,
                            str(exc) or type(exc).__name__)
                return
            power = await self._power_or_none(uuid)
            values: dict[str, Any] = {
                "vm_state": states.STOPPED if was_stopped else states.ACTIVE,
                "task_state": None, "launched_at": "now",
                "power_state": int(power if power is not None else PowerState.NOSTATE)}
            metadata = dict(instance.get("metadata") or {})
            if ssh_port is not None:
                values["metadata_"] = {**metadata, "ssh_host_port": str(ssh_port)}
            elif "ssh_host_port" in metadata:
                metadata.pop("ssh_host_port")
                values["metadata_"] = metadata
            await self.update(context, uuid, **values)
            log.info("instance rebuilt", instance=uuid, image=image_id)
            if evacuation is not None:
                await self.conductor.evacuate_done(
                    context, uuid, int(evacuation["migration_id"]), self.host, None)
                # An older evacuation away from this host: its guest here went above.
                await self.conductor.evacuation_cleaned(context, self.host, uuid)

    # -- rescue ------------------------------------------------------------------------
    @rpc.method
    async def rescue_instance(self, context: RequestContext, uuid: str, image_id: str,
                              glance_images: dict[str, Any] | None = None) -> None:
        """Boot the rescue image with the guest's own disk attached second."""
        from novalite.compute.host.manager import spec_from_payload

        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_rescue_instance"):
                    instance = await self.conductor.instance_get(context, uuid)
                    if instance is None or instance["deleted"]:
                        return
                    image = (await self._images(context, image_id, glance_images))["image"]
                    if image is None:
                        raise DriverError(f"rescue image {image_id} not found")
                    path = await self.cache.fetch(image, uuid, context.auth_token)
                    network = [NetworkInfo(network=a["network"], address=a["address"],
                                           cidr=a["cidr"], gateway=a["gateway"],
                                           mac=a["mac"]) for a in instance["addresses"]]
                    await self.driver.rescue(spec_from_payload(instance),
                                             image_info(image, path), network,
                                             stable=is_stable_rescue(image))
            except Exception as exc:
                await self._failed(context, uuid, "Rescue", exc)
                return
            power = await self._power_or_none(uuid)
            await self.update(context, uuid, vm_state=states.RESCUED, task_state=None,
                              power_state=int(power if power is not None
                                              else PowerState.RUNNING))
            log.info("instance rescued", instance=uuid, rescue_image=image_id)

    @rpc.method
    async def unrescue_instance(self, context: RequestContext, uuid: str) -> None:
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_unrescue_instance"):
                    await self.driver.unrescue(uuid)
            except Exception as exc:
                await self._failed(context, uuid, "Unrescue", exc)
                return
            power = await self._power_or_none(uuid)
            await self.update(context, uuid, vm_state=states.ACTIVE, task_state=None,
                              power_state=int(power if power is not None
                                              else PowerState.RUNNING))
            log.info("instance unrescued", instance=uuid)

    # -- backup ------------------------------------------------------------------------
    @rpc.method
    async def backup_instance(self, context: RequestContext, uuid: str, image_id: str,
                              backup_type: str, rotation: int) -> None:
        """A snapshot as createImage takes it, then Nova's rotation: this server's
        backups of ``backup_type``, newest first, beyond ``rotation`` are deleted."""
        await self.snapshot_instance(context, uuid, image_id)
        token = context.auth_token
        try:
            async with self.event(context, uuid, "compute_backup_instance"):
                backups = [i for i in await self.cache.api.list_images(token)
                           if i.get("instance_uuid") == uuid
                           and i.get("image_type") == "backup"
                           and i.get("backup_type") == backup_type]
                if image_id not in {i["id"] for i in backups if i.get("status") == "active"}:
                    return  # the snapshot failed (and was deleted): nothing rotates
                backups.sort(key=lambda i: (i.get("created_at") or "", i["id"] == image_id),
                             reverse=True)
                log.info("backup stored", instance=uuid, image=image_id, type=backup_type)
                for old in backups[rotation:]:
                    log.info("rotating out backup", instance=uuid, image=old["id"])
                    await self.cache.api.delete(token, old["id"])
        except Exception as exc:
            log.warning("backup rotation failed", instance=uuid, error=str(exc))

    # -- soft delete -------------------------------------------------------------------
    @rpc.method
    async def soft_delete_instance(self, context: RequestContext, uuid: str) -> None:
        """Power the guest off (its disk stays) and set SOFT_DELETED."""
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_soft_delete_instance"):
                    power = await self._power_or_none(uuid)
                    if power not in (None, PowerState.SHUTDOWN):
                        await self.driver.power_off(uuid, self.shutdown_timeout)
            except Exception as exc:
                await self._failed(context, uuid, "Soft delete", exc)
                return
            power = await self._power_or_none(uuid)
            await self.update(context, uuid, vm_state=states.SOFT_DELETED, task_state=None,
                              power_state=int(power if power is not None
                                              else PowerState.SHUTDOWN))
            log.info("instance soft-deleted", instance=uuid)

    @rpc.method
    async def restore_instance(self, context: RequestContext, uuid: str) -> None:
        """Power a soft-deleted guest on again: ACTIVE."""
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_restore_instance"):
                    if await self._power_or_none(uuid) != PowerState.RUNNING:
                        await self.driver.power_on(uuid)
            except Exception as exc:
                await self._failed(context, uuid, "Restore", exc)
                return
            power = await self._power_or_none(uuid)
            await self.update(context, uuid, vm_state=states.ACTIVE, task_state=None,
                              power_state=int(power if power is not None
                                              else PowerState.RUNNING))
            log.info("instance restored", instance=uuid)

    # -- crash dump --------------------------------------------------------------------
    @rpc.method
    async def trigger_crash_dump(self, context: RequestContext, uuid: str) -> None:
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_trigger_crash_dump"):
                    await self.driver.trigger_crash_dump(uuid)
            except Exception as exc:
                await self._failed(context, uuid, "Trigger crash dump", exc, vm_state=None)
                return
            log.info("crash dump triggered (NMI sent)", instance=uuid)


__all__ = ["STABLE_RESCUE_PROPERTIES", "LifecycleHandlers", "image_info", "is_stable_rescue"]
