"""The compute host's part of a resize or cold migration (driver contract 1.4,
capability ``supports_resize``): each step runs the driver and reports to the
conductor (:mod:`novalite.conductor.tasks.migrate`), which casts the next step to
the next host. No database, no other host's address: the disk travels as the
driver's ``disk_info``."""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
import trio

from novalite import rpc, states
from novalite.compute.host.image_cache import ImageCache
from novalite.context import RequestContext
from novalite.rpc.conductor import ConductorClient
from novalite.virt.driver import (
    Driver,
    DriverError,
    ImageInfo,
    InstanceSpec,
    NetworkInfo,
    PowerState,
)

log = structlog.get_logger("novalite.compute.resize")


def _sized(instance: dict[str, Any], flavor: dict[str, Any] | None) -> dict[str, Any]:
    """The instance payload with ``flavor``'s sizes, if given."""
    payload = dict(instance)
    if flavor is not None:
        payload.update(vcpus=int(flavor.get("vcpus") or 0),
                       memory_mb=int(flavor.get("memory_mb") or 0),
                       root_gb=int(flavor.get("root_gb") or 0),
                       ephemeral_gb=int(flavor.get("ephemeral_gb") or 0),
                       swap_mb=int(flavor.get("swap") or 0),
                       flavor_name=str(flavor.get("name") or ""),
                       extra_specs=dict(flavor.get("extra_specs") or {}))
    return payload


def _spec(instance: dict[str, Any], flavor: dict[str, Any] | None = None) -> Any:
    """The driver's InstanceSpec of ``instance`` with ``flavor``'s sizes, if given."""
    from novalite.compute.host.manager import spec_from_payload

    return spec_from_payload(_sized(instance, flavor))


def _moves_disks(driver: Driver) -> bool:
    """Whether the driver takes a disk from another host (contract 1.6: its
    finish_migration gets the image fetched here)."""
    major, _, minor = str(getattr(driver, "contract_version", "1.0")).partition(".")
    return (int(major), int(minor or 0)) >= (1, 6)


class ResizeHost:
    """The ``compute.<host>`` methods of resize and cold migration (mixed into
    :class:`~novalite.compute.host.manager.ComputeManager`)."""

    host: str
    driver: Driver
    conductor: ConductorClient
    _locks: dict[str, trio.Lock]
    cache: ImageCache
    #: uuid -> the host port pre_live_migration forwards to the guest's port 22 here
    #: (None: none), until the guest arrives.
    _ssh_ports: dict[str, int | None]
    #: Guests moved to another host (source) / from another host (destination) by a
    #: resize or cold migration not yet confirmed or reverted.
    _moved_out: set[str]
    _moved_in: set[str]
    metadata: Any

    async def _open_metadata(self, instance: dict[str, Any], bridged: bool = False
                             ) -> str | None:
        raise NotImplementedError

    def event(self, context: RequestContext, uuid: str, name: str
              ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def update(self, context: RequestContext, uuid: str, **values: Any) -> Any:
        raise NotImplementedError

    async def _power_or_none(self, uuid: str) -> PowerState | None:
        raise NotImplementedError

    async def _spawn(self, instance: dict[str, Any], image: dict[str, Any] | None,
                     kernel: dict[str, Any] | None, ramdisk: dict[str, Any] | None,
                     token: str = "", admin_pass: str | None = None,
                     launch: Callable[[InstanceSpec, ImageInfo, list[NetworkInfo]],
                                      Awaitable[None]] | None = None,
                     root_volume: dict[str, Any] | None = None) -> int | None:
        raise NotImplementedError


    async def _move_failed(self, context: RequestContext, uuid: str,
                           migration_id: int, exc: Exception, rolled_back: bool) -> None:
        log.warning("resize step failed", instance=uuid, host=self.host, error=str(exc))
        await self.conductor.resize_failed(context, uuid, migration_id, self.host,
                                           f"{type(exc).__name__}: {exc}"
                                           if not isinstance(exc, DriverError) else str(exc),
                                           rolled_back)
        if not isinstance(exc, DriverError):
            log.error("resize step crashed", instance=uuid, traceback=traceback.format_exc())

    @rpc.method
    async def resize_instance(self, context: RequestContext,
                              instance: dict[str, Any], migration_id: int,
                              flavor: dict[str, Any], dest_host: str) -> None:
        """On the source: power off and get the disk ready for ``dest_host``."""
        uuid = instance["uuid"]
        async with self._locks[uuid]:
            await self.conductor.resize_step(context, uuid, migration_id, "migrating",
                                             self.host)
            try:
                async with self.event(context, uuid, "compute_resize_instance"):
                    disk_info = await self.driver.migrate_disk_and_power_off(
                        uuid, dest_host, _spec(instance, flavor))
            except Exception as exc:
                running = await self._power_or_none(uuid) == PowerState.RUNNING
                await self._move_failed(context, uuid, migration_id, exc,
                                        rolled_back=running or
                                        instance["vm_state"] == states.STOPPED)
                return
            if dest_host != self.host:
                self._moved_out.add(uuid)
        await self.conductor.resize_step(context, uuid, migration_id, "migrated", self.host,
                                         disk_info)

    @rpc.method
    async def finish_resize(self, context: RequestContext,
                            instance: dict[str, Any], migration_id: int,
                            flavor: dict[str, Any], disk_info: dict[str, Any],
                            source_host: str) -> None:
        """On the destination: create the guest from the source's disk, new sizes. From
        another host (a contract 1.6 driver) the guest is made here as a spawn makes
        it: its image fetched into this host's cache, this host's network for it."""
        uuid = instance["uuid"]
        power_on = instance["vm_state"] != states.STOPPED
        moving = source_host != self.host and _moves_disks(self.driver)
        finished: dict[str, Any] = {}
        async with self._locks[uuid]:
            await self.update(context, uuid, task_state=states.RESIZE_FINISH)
            try:
                async with self.event(context, uuid, "compute_finish_resize"):
                    if moving:
                        finished["ssh_host_port"] = await self._move_in(
                            context, _sized(instance, flavor), disk_info, power_on)
                    else:
                        network = [NetworkInfo(network=a["network"], address=a["address"],
                                               cidr=a["cidr"], gateway=a["gateway"],
                                               mac=a["mac"])
                                   for a in instance.get("addresses") or []]
                        await self.driver.finish_migration(
                            _spec(instance, flavor), disk_info, network, power_on)
            except Exception as exc:
                if moving:
                    with trio.CancelScope(shield=True):
                        await self._left_here(uuid)
                await self._move_failed(context, uuid, migration_id, exc, rolled_back=False)
                return
            power = await self._power_or_none(uuid)
        if moving:
            self._moved_in.add(uuid)
        finished["power_state"] = int(power or 0)
        await self.conductor.resize_step(context, uuid, migration_id, "finished", self.host,
                                         finished)
        log.info("instance resized", instance=uuid, source=source_host, dest=self.host)

    async def _move_in(self, context: RequestContext, instance: dict[str, Any],
                       disk_info: dict[str, Any], power_on: bool) -> int | None:
        """finish_resize from another host: the guest made here by the driver from the
        source's disks; returns the host port forwarded to its port 22, if any."""
        images = await self.conductor.image_payloads(context, instance["image_ref"])

        async def finish(spec: InstanceSpec, image: ImageInfo,
                         network: list[NetworkInfo]) -> None:
            await self.driver.finish_migration(spec, disk_info, network, power_on,
                                               image=image)

        return await self._spawn(instance, images["image"], images.get("kernel"),
                                 images.get("ramdisk"), token=context.auth_token,
                                 launch=finish)

    async def _left_here(self, uuid: str) -> None:
        """A guest that is not (or no longer) on this host after a move: what the host
        held for it (the image reference, the metadata relay) released."""
        self.cache.release(uuid)
        if self.metadata is not None:
            self.metadata.close(uuid, owner=self.host)

    @rpc.method
    async def confirm_resize(self, context: RequestContext, uuid: str,
                             migration_id: int) -> None:
        """On the source: remove what was kept of the old guest (and, when it moved to
        another host, what this host held for it)."""
        async with self._locks[uuid]:
            async with self.event(context, uuid, "compute_confirm_resize"):
                await self.driver.confirm_migration(uuid)
            if uuid in self._moved_out:
                self._moved_out.discard(uuid)
                await self._left_here(uuid)
        await self.conductor.resize_step(context, uuid, migration_id, "confirmed", self.host)

    @rpc.method
    async def revert_resize(self, context: RequestContext, uuid: str,
                            migration_id: int) -> None:
        """On the destination: destroy the new guest (the source brings the old back)."""
        async with self._locks[uuid]:
            power = await self._power_or_none(uuid)
            async with self.event(context, uuid, "compute_revert_resize"):
                await self.driver.destroy(uuid)
            if uuid in self._moved_in:
                self._moved_in.discard(uuid)
                await self._left_here(uuid)
        await self.conductor.resize_step(context, uuid, migration_id, "dest_reverted",
                                         self.host,
                                         {"power_on": power in (PowerState.RUNNING, None)})

    @rpc.method
    async def finish_revert_resize(self, context: RequestContext,
                                   instance: dict[str, Any], migration_id: int,
                                   power_on: bool) -> None:
        """On the source: the old guest back, as it was."""
        uuid = instance["uuid"]
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_finish_revert_resize"):
                    await self.driver.finish_revert_migration(uuid, power_on)
                if uuid in self._moved_out:  # back from another host: its relay here again
                    self._moved_out.discard(uuid)
                    await self._open_metadata(instance)
            except Exception as exc:
                await self._move_failed(context, uuid, migration_id, exc, rolled_back=False)
                return
            power = await self._power_or_none(uuid)
        await self.conductor.resize_step(context, uuid, migration_id, "reverted", self.host,
                                         {"power_state": int(power or 0),
                                          "stopped": power != PowerState.RUNNING})

    # -- live migration (capability supports_live_migration) ---------------------------
    @rpc.method
    async def pre_live_migration(self, context: RequestContext, instance: dict[str, Any],
                                 migration_id: int) -> None:
        """On the destination: fetch the image and let the driver get ready to receive
        the guest (contract 1.5); reports ``prepared`` with what the source needs."""
        uuid = instance["uuid"]
        prepared: dict[str, Any] = {}

        async def prepare(spec: InstanceSpec, image: ImageInfo,
                          network: list[NetworkInfo]) -> None:
            prepared.update(await self.driver.pre_live_migration(spec, image, network))

        if type(self.driver).pre_live_migration is Driver.pre_live_migration:
            # A contract 1.4 driver: nothing to prepare here.
            await self.conductor.live_step(context, uuid, migration_id, "prepared",
                                           self.host, {})
            return
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_pre_live_migration"):
                    images = await self.conductor.image_payloads(context,
                                                                 instance["image_ref"])
                    self._ssh_ports[uuid] = await self._spawn(
                        instance, images["image"], images.get("kernel"),
                        images.get("ramdisk"), token=context.auth_token, launch=prepare)
            except Exception as exc:
                with trio.CancelScope(shield=True):
                    await self._release_here(uuid)
                    await self.conductor.live_failed(context, uuid, migration_id, self.host,
                                                     str(exc) or type(exc).__name__)
                return
        await self.conductor.live_step(context, uuid, migration_id, "prepared", self.host,
                                       prepared)

    @rpc.method
    async def rollback_live_migration_at_destination(self, context: RequestContext,
                                                     uuid: str, migration_id: int) -> None:
        """On the destination: the move failed; remove what was made for it here."""
        async with self._locks[uuid]:
            await self._release_here(uuid)
        log.info("live migration rolled back at destination", instance=uuid, host=self.host)

    @rpc.method
    async def rollback_live_migration(self, context: RequestContext, uuid: str,
                                      migration_id: int) -> None:
        """On the source: the destination failed after the guest was sent; the guest
        runs here again (contract 1.5), its power state recorded."""
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_rollback_live_migration"):
                    await self.driver.rollback_live_migration(uuid)
            finally:
                power = await self._power_or_none(uuid)
                if power is not None:
                    await self.update(context, uuid, power_state=int(power))
        log.info("live migration rolled back at source", instance=uuid, host=self.host)

    async def _release_here(self, uuid: str) -> None:
        """What pre_live_migration made on this host, gone (the driver's part, the
        image reference, the bridge ports)."""
        try:
            await self.driver.rollback_live_migration_at_destination(uuid)
        except Exception as exc:  # logged; the guest runs on the source anyway
            log.warning("rollback at destination failed", instance=uuid, error=str(exc))
        self.cache.release(uuid)
        self._ssh_ports.pop(uuid, None)

    @rpc.method
    async def live_migration(self, context: RequestContext, instance: dict[str, Any],
                             migration_id: int, dest_host: str,
                             dest_data: dict[str, Any] | None = None) -> None:
        """On the source: move the running guest to ``dest_host`` (``dest_data``: what
        the destination's driver returned from pre_live_migration)."""
        uuid = instance["uuid"]
        extra = {"migrate_data": dest_data} if dest_data else {}
        async with self._locks[uuid]:
            await self.conductor.live_step(context, uuid, migration_id, "running", self.host)
            try:
                async with self.event(context, uuid, "compute_live_migration"):
                    data = await self.driver.live_migration(uuid, dest_host, _spec(instance),
                                                            **extra)
            except Exception as exc:
                await self.conductor.live_failed(context, uuid, migration_id, self.host,
                                                 str(exc) or type(exc).__name__)
                return
        await self.conductor.live_step(context, uuid, migration_id, "migrated", self.host,
                                       data)

    @rpc.method
    async def post_live_migration_at_destination(self, context: RequestContext,
                                                 instance: dict[str, Any],
                                                 migration_id: int,
                                                 migrate_data: dict[str, Any]) -> None:
        """On the destination: the guest runs here now."""
        uuid = instance["uuid"]
        network = [NetworkInfo(network=a["network"], address=a["address"], cidr=a["cidr"],
                               gateway=a["gateway"], mac=a["mac"])
                   for a in instance.get("addresses") or []]
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid,
                                      "compute_post_live_migration_at_destination"):
                    await self.driver.post_live_migration_at_destination(
                        _spec(instance), migrate_data, network)
            except Exception as exc:
                with trio.CancelScope(shield=True):
                    await self._release_here(uuid)
                    await self.conductor.live_failed(context, uuid, migration_id, self.host,
                                                     str(exc) or type(exc).__name__)
                return
            power = await self._power_or_none(uuid)
        arrived: dict[str, Any] = {"power_state": int(power or 0)}
        if uuid in self._ssh_ports:  # the guest's port 22 is forwarded from this host now
            arrived["ssh_host_port"] = self._ssh_ports.pop(uuid)
        await self.conductor.live_step(context, uuid, migration_id, "arrived", self.host,
                                       arrived)

    @rpc.method
    async def post_live_migration(self, context: RequestContext, uuid: str,
                                  migration_id: int) -> None:
        """On the source, after the destination runs the guest: clean up here."""
        async with self._locks[uuid]:
            async with self.event(context, uuid, "compute_post_live_migration"):
                await self.driver.post_live_migration(uuid)
        self.cache.release(uuid)
        await self.conductor.live_step(context, uuid, migration_id, "completed", self.host)
