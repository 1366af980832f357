"""The compute host's part of shelve, shelve offload and unshelve: the snapshot
written by the driver and uploaded over HTTP as the caller (as createImage's), the
guest destroyed on offload, the boot from the snapshot on unshelve, and the
snapshot deleted once the server runs again."""

from __future__ import annotations

import os
import traceback
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
import trio

from novalite import rpc, states
from novalite.compute.host.image_cache import ImageCache
from novalite.context import RequestContext
from novalite.metadata.proxy import MetadataProxy
from novalite.rpc.conductor import ConductorClient
from novalite.virt.driver import Driver, PowerState

log = structlog.get_logger("novalite.compute.shelve")


class ShelveHost:
    """The ``compute.<host>`` methods of shelving (mixed into ComputeManager)."""

    host: str
    driver: Driver
    conductor: ConductorClient
    cache: ImageCache
    metadata: MetadataProxy | None
    shutdown_timeout: float
    _locks: dict[str, trio.Lock]

    def event(self, context: RequestContext, uuid: str, name: str
              ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def update(self, context: RequestContext, uuid: str, **values: Any) -> Any:
        raise NotImplementedError

    async def _power_or_none(self, uuid: str) -> PowerState | None:
        raise NotImplementedError

    async def _spawn(self, instance: dict[str, Any], image: dict[str, Any] | None,
                     kernel: dict[str, Any] | None, ramdisk: dict[str, Any] | None,
                     token: str = "", admin_pass: str | None = None) -> int | None:
        raise NotImplementedError

    async def _forget_guest(self, uuid: str) -> None:
        await self.driver.destroy(uuid)
        self.cache.release(uuid)
        if self.metadata is not None:
            self.metadata.close(uuid)

    async def _delete_image(self, token: str, image_id: str) -> None:
        try:
            with trio.fail_after(30):
                await self.cache.api.delete(token, image_id)
        except Exception as exc:  # already gone, or protected meanwhile
            log.warning("shelved image not deleted", image=image_id,
                        error=str(exc) or type(exc).__name__)

    @rpc.method
    async def shelve_instance(self, context: RequestContext, uuid: str, image_id: str,
                              offload: bool) -> None:
        """Power off, snapshot into ``image_id``, and (``offload``) destroy the guest."""
        dest = self.cache.snapshot_path(image_id)
        token = context.auth_token
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_shelve_instance"):
                    if await self._power_or_none(uuid) not in (PowerState.SHUTDOWN, None) \
                            and self.driver.capabilities.get("supports_power_off"):
                        await self.driver.power_off(uuid, self.shutdown_timeout)
                    await self.update(context, uuid,
                                      task_state=states.SHELVING_IMAGE_UPLOADING)
                    disk_format, container_format = await self.driver.snapshot(uuid, dest)
                    await self.cache.api.upload(token, image_id, dest, disk_format,
                                                container_format)
                    if offload:
                        await self._forget_guest(uuid)
            except Exception as exc:
                log.warning("shelve failed", instance=uuid, error=str(exc))
                with trio.CancelScope(shield=True):
                    if os.path.exists(dest):
                        os.unlink(dest)
                    await self._delete_image(token, image_id)
                    power = await self._power_or_none(uuid)
                    await self.update(context, uuid, task_state=None,
                                      power_state=int(power or 0))
                    await self.conductor.instance_fault(
                        context, uuid, f"Shelve failed: {exc}"[:255], self.host,
                        traceback.format_exc())
                return
            if os.path.exists(dest):
                os.unlink(dest)
            power = await self._power_or_none(uuid)
        await self.conductor.shelve_done(context, uuid, self.host, offload, int(power or 0))
        log.info("instance shelved", instance=uuid, offloaded=offload)

    @rpc.method
    async def shelve_offload_instance(self, context: RequestContext, uuid: str) -> None:
        """Destroy a SHELVED server's guest; the conductor releases its resources."""
        async with self._locks[uuid]:
            async with self.event(context, uuid, "compute_shelve_offload_instance"):
                await self._forget_guest(uuid)
        await self.conductor.shelve_done(context, uuid, self.host, True)

    @rpc.method
    async def unshelve_on_host(self, context: RequestContext, uuid: str,
                               image_id: str) -> None:
        """Unshelve a server SHELVED here: power it on; its snapshot is deleted."""
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_unshelve_instance"):
                    await self.driver.power_on(uuid)
            except Exception as exc:
                await self.update(context, uuid, task_state=None)
                await self.conductor.instance_fault(context, uuid,
                                                    f"Unshelve failed: {exc}"[:255],
                                                    self.host, traceback.format_exc())
                return
            power = await self._power_or_none(uuid)
        await self.conductor.unshelve_done(context, uuid, self.host, int(power or 0))
        if image_id:
            await self._delete_image(context.auth_token, image_id)

    @rpc.method
    async def unshelve_instance(self, context: RequestContext, instance: dict[str, Any],
                                image: dict[str, Any] | None) -> None:
        """Boot a SHELVED_OFFLOADED server here from its snapshot ``image``; the
        snapshot is deleted once the server runs."""
        uuid = instance["uuid"]
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_unshelve_instance"):
                    await self._spawn(instance, image, None, None,
                                      token=context.auth_token)
            except Exception as exc:
                with trio.CancelScope(shield=True):
                    await self._forget_guest(uuid)
                    await self.conductor.unshelve_failed(context, uuid, self.host,
                                                         str(exc) or type(exc).__name__)
                return
            power = await self._power_or_none(uuid)
        await self.conductor.unshelve_done(context, uuid, self.host, int(power or 0))
        if image is not None:
            await self._delete_image(context.auth_token, image["id"])
        log.info("instance unshelved", instance=uuid, host=self.host)
