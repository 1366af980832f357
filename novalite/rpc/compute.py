"""The typed client of a compute host's topic, ``compute.<host>`` (Nova's ``compute/rpcapi.py``).

One client per host: ``ComputeClient(transport, host)`` is cheap to make. The
compute actor (:class:`~novalite.compute.host.manager.ComputeManager`) records what
happens through the conductor; these messages only start the work, except
:meth:`ComputeClient.get_console_output` and :meth:`ComputeClient.get_console`, which
answer.
"""

from __future__ import annotations

from typing import Any

from novalite.context import RequestContext
from novalite.rpc.client import DEFAULT_TIMEOUT, RpcClient
from novalite.rpc.transport import Transport

#: Seconds to wait for a guest's console output.
CONSOLE_TIMEOUT = 30.0
#: Seconds to wait for a volume to be hot-plugged or released by the guest.
VOLUME_TIMEOUT = 90.0


def topic(host: str) -> str:
    """The topic of the compute host ``host``."""
    return f"compute.{host}"


class ComputeClient:
    """Sends to the compute actor of one host."""

    __slots__ = ("_rpc", "host")

    def __init__(self, transport: Transport, host: str,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self._rpc = RpcClient(transport, topic(host), timeout)

    async def build_and_run_instance(self, ctx: RequestContext, instance: dict[str, Any],
                                     image: dict[str, Any] | None,
                                     kernel: dict[str, Any] | None,
                                     ramdisk: dict[str, Any] | None, spec: dict[str, Any],
                                     tried: list[str], networks: str) -> None:
        """Build the instance on this host (cast): fetch its images, spawn the guest,
        and record each step through the conductor.

        ``instance`` is the conductor's instance payload; ``image``, ``kernel`` and
        ``ramdisk`` the image payloads (kernel and ramdisk may be None; image None
        fails the build). ``spec`` and ``tried`` (the hosts tried so far, this one
        last) come back to the conductor with a failure so that it can reschedule;
        ``networks`` is the boot's ``networks`` choice ("auto", "none").

        Example::

            await ComputeClient(transport, "host1").build_and_run_instance(
                ctx, instance, image, None, None, spec, ["host1"], "auto")
        """
        await self._rpc.cast(ctx, "build_and_run_instance", {
            "instance": instance, "image": image, "kernel": kernel, "ramdisk": ramdisk,
            "spec": spec, "tried": tried, "networks": networks})

    async def update_port_security(self, ctx: RequestContext, port_id: str,
                                   security_rules: list[dict[str, Any]]) -> None:
        """A port on this host has new security rules (cast): its groups' rules or the
        members of a remote group changed. ``security_rules`` are resolved as
        ``NetworkInfo.security_rules`` are (remote groups expanded to addresses); the
        host applies them to the running guest's port at once."""
        await self._rpc.cast(ctx, "update_port_security", {
            "port_id": port_id, "security_rules": security_rules})

    async def terminate_instance(self, ctx: RequestContext, uuid: str) -> None:
        """Destroy the guest (cast); the conductor then soft-deletes the record and
        frees its address and claim (or records a fault if the guest resists)."""
        await self._rpc.cast(ctx, "terminate_instance", {"uuid": uuid})

    async def operations_in_flight(self, ctx: RequestContext, uuids: list[str]
                                   ) -> list[str]:
        """Which of ``uuids`` have an operation running or queued on this host (call).
        Example: ``busy = await ComputeClient(transport, host).operations_in_flight(ctx,
        [uuid])``."""
        busy: list[str] = await self._rpc.call(ctx, "operations_in_flight",
                                               {"uuids": uuids}, timeout=10)
        return busy

    async def power_action(self, ctx: RequestContext, uuid: str, action: str,
                           reboot_type: str = "SOFT") -> None:
        """Run a power action on the guest (cast): ``stop``, ``start``, ``reboot`` (of
        ``reboot_type`` SOFT or HARD), ``pause``, ``unpause``, ``suspend``, ``resume``;
        the record's task_state is cleared when it is done, a fault recorded if it
        fails."""
        await self._rpc.cast(ctx, "power_action", {"uuid": uuid, "action": action,
                                                   "reboot_type": reboot_type})

    async def snapshot_instance(self, ctx: RequestContext, uuid: str, image_id: str) -> None:
        """Snapshot the guest's disk into the queued image ``image_id`` (cast); the
        image is deleted again if the snapshot fails."""
        await self._rpc.cast(ctx, "snapshot_instance", {"uuid": uuid, "image_id": image_id})

    async def rebuild_instance(self, ctx: RequestContext, uuid: str, image_id: str,
                               admin_pass: str | None,
                               glance_images: dict[str, Any] | None = None,
                               evacuation: dict[str, Any] | None = None) -> None:
        """Rebuild the guest from ``image_id`` (cast): its old disk is dropped, the
        instance keeps its id and addresses; task_state goes rebuilding →
        rebuild_block_device_mapping → rebuild_spawning → None, a stopped server stays
        stopped, a failure is ERROR with a fault. ``glance_images`` are the payloads
        of an external Glance (else the host asks the conductor). ``evacuation``
        (``{"migration_id", "stop"}``): an evacuation to this host, reported to the
        conductor when done; ``stop`` leaves the server stopped.

        Example::

            await ComputeClient(transport, inst.host).rebuild_instance(
                ctx, uuid, new_image_id, "s3cret")
        """
        await self._rpc.cast(ctx, "rebuild_instance", {
            "uuid": uuid, "image_id": image_id, "admin_pass": admin_pass,
            "glance_images": glance_images, "evacuation": evacuation})

    async def rescue_instance(self, ctx: RequestContext, uuid: str, image_id: str,
                              glance_images: dict[str, Any] | None = None) -> None:
        """Boot the guest from the rescue image ``image_id`` with its own disk second
        (cast); the instance becomes RESCUED (or ERROR with a fault)."""
        await self._rpc.cast(ctx, "rescue_instance", {
            "uuid": uuid, "image_id": image_id, "glance_images": glance_images})

    async def unrescue_instance(self, ctx: RequestContext, uuid: str) -> None:
        """Boot the rescued guest from its own disk again (cast); ACTIVE after."""
        await self._rpc.cast(ctx, "unrescue_instance", {"uuid": uuid})

    async def backup_instance(self, ctx: RequestContext, uuid: str, image_id: str,
                              backup_type: str, rotation: int) -> None:
        """Snapshot the guest into the queued image ``image_id`` (cast), then delete the
        oldest backups of this server of ``backup_type`` beyond ``rotation``."""
        await self._rpc.cast(ctx, "backup_instance", {
            "uuid": uuid, "image_id": image_id, "backup_type": backup_type,
            "rotation": rotation})

    async def soft_delete_instance(self, ctx: RequestContext, uuid: str) -> None:
        """Power the guest off and set the instance SOFT_DELETED (cast); its disk is
        kept until it is restored, force-deleted or reclaimed."""
        await self._rpc.cast(ctx, "soft_delete_instance", {"uuid": uuid})

    async def restore_instance(self, ctx: RequestContext, uuid: str) -> None:
        """Power a SOFT_DELETED guest on again (cast); ACTIVE after."""
        await self._rpc.cast(ctx, "restore_instance", {"uuid": uuid})

    async def trigger_crash_dump(self, ctx: RequestContext, uuid: str) -> None:
        """Inject an NMI into the guest (cast); a failure is recorded as a fault."""
        await self._rpc.cast(ctx, "trigger_crash_dump", {"uuid": uuid})

    # -- resize and cold migration (novalite.conductor.tasks.migrate), all casts ----------
    async def resize_instance(self, ctx: RequestContext, instance: dict[str, Any],
                              migration_id: int, flavor: dict[str, Any],
                              dest_host: str) -> None:
        """On the source: power the guest off and make its disk ready for ``dest_host``
        with ``flavor`` (the new flavor snapshot); reports ``migrated`` (with the
        driver's disk_info) to the conductor."""
        await self._rpc.cast(ctx, "resize_instance", {
            "instance": instance, "migration_id": migration_id, "flavor": flavor,
            "dest_host": dest_host})

    async def finish_resize(self, ctx: RequestContext, instance: dict[str, Any],
                            migration_id: int, flavor: dict[str, Any],
                            disk_info: dict[str, Any], source_host: str) -> None:
        """On the destination: create the guest from ``disk_info`` with ``flavor``'s
        sizes; reports ``finished``."""
        await self._rpc.cast(ctx, "finish_resize", {
            "instance": instance, "migration_id": migration_id, "flavor": flavor,
            "disk_info": disk_info, "source_host": source_host})

    async def confirm_resize(self, ctx: RequestContext, uuid: str, migration_id: int) -> None:
        """On the source: remove the old guest; reports ``confirmed``."""
        await self._rpc.cast(ctx, "confirm_resize", {"uuid": uuid,
                                                     "migration_id": migration_id})

    async def revert_resize(self, ctx: RequestContext, uuid: str, migration_id: int) -> None:
        """On the destination: destroy the new guest; reports ``dest_reverted``."""
        await self._rpc.cast(ctx, "revert_resize", {"uuid": uuid,
                                                    "migration_id": migration_id})

    async def finish_revert_resize(self, ctx: RequestContext, instance: dict[str, Any],
                                   migration_id: int, power_on: bool) -> None:
        """On the source: bring the old guest back; reports ``reverted``."""
        await self._rpc.cast(ctx, "finish_revert_resize", {
            "instance": instance, "migration_id": migration_id, "power_on": power_on})

    # -- live migration, all casts -------------------------------------------------------
    async def pre_live_migration(self, ctx: RequestContext, instance: dict[str, Any],
                                 migration_id: int) -> None:
        """On the destination: get ready to receive the guest; reports ``prepared``
        (with the driver's data for the source) or ``live_failed``."""
        await self._rpc.cast(ctx, "pre_live_migration", {
            "instance": instance, "migration_id": migration_id})

    async def live_migration(self, ctx: RequestContext, instance: dict[str, Any],
                             migration_id: int, dest_host: str,
                             dest_data: dict[str, Any] | None = None) -> None:
        """On the source: move the running guest to ``dest_host`` (``dest_data``: what
        the destination's pre_live_migration returned); reports ``migrated`` (with the
        driver's migrate_data) or ``live_failed``."""
        await self._rpc.cast(ctx, "live_migration", {
            "instance": instance, "migration_id": migration_id, "dest_host": dest_host,
            "dest_data": dest_data or {}})

    async def rollback_live_migration(self, ctx: RequestContext, uuid: str,
                                      migration_id: int) -> None:
        """On the source: the destination failed after the guest was sent; run it here."""
        await self._rpc.cast(ctx, "rollback_live_migration", {
            "uuid": uuid, "migration_id": migration_id})

    async def rollback_live_migration_at_destination(self, ctx: RequestContext, uuid: str,
                                                     migration_id: int) -> None:
        """On the destination: the move failed; remove what pre_live_migration made."""
        await self._rpc.cast(ctx, "rollback_live_migration_at_destination", {
            "uuid": uuid, "migration_id": migration_id})

    async def post_live_migration_at_destination(self, ctx: RequestContext,
                                                 instance: dict[str, Any],
                                                 migration_id: int,
                                                 migrate_data: dict[str, Any]) -> None:
        """On the destination: take the guest over; reports ``arrived``."""
        await self._rpc.cast(ctx, "post_live_migration_at_destination", {
            "instance": instance, "migration_id": migration_id,
            "migrate_data": migrate_data})

    async def post_live_migration(self, ctx: RequestContext, uuid: str,
                                  migration_id: int) -> None:
        """On the source: clean up after the move; reports ``completed``."""
        await self._rpc.cast(ctx, "post_live_migration", {"uuid": uuid,
                                                          "migration_id": migration_id})

    # -- shelving (novalite.compute.host.shelve), all casts ---------------------------------
    async def shelve_instance(self, ctx: RequestContext, uuid: str, image_id: str,
                              offload: bool) -> None:
        """Power off, snapshot into the queued image ``image_id`` (uploaded as the
        caller) and, ``offload``, destroy the guest; reports ``shelve_done``."""
        await self._rpc.cast(ctx, "shelve_instance", {"uuid": uuid, "image_id": image_id,
                                                      "offload": offload})

    async def shelve_offload_instance(self, ctx: RequestContext, uuid: str) -> None:
        """Destroy a SHELVED server's guest; reports ``shelve_done`` (offloaded)."""
        await self._rpc.cast(ctx, "shelve_offload_instance", {"uuid": uuid})

    async def unshelve_on_host(self, ctx: RequestContext, uuid: str, image_id: str) -> None:
        """Power a SHELVED (not offloaded) server on; its snapshot ``image_id`` is
        deleted."""
        await self._rpc.cast(ctx, "unshelve_on_host", {"uuid": uuid, "image_id": image_id})

    async def unshelve_instance(self, ctx: RequestContext, instance: dict[str, Any],
                                image: dict[str, Any] | None) -> None:
        """Boot a SHELVED_OFFLOADED server here from its snapshot ``image`` (a payload as
        builds carry it); the snapshot is deleted once it runs."""
        await self._rpc.cast(ctx, "unshelve_instance", {"instance": instance,
                                                        "image": image})

    async def get_console_output(self, ctx: RequestContext, uuid: str) -> str:
        """The guest's console log, as the driver keeps it.

        Raises :class:`~novalite.virt.driver.InstanceNotFound` when the hypervisor has
        no such guest, another :class:`~novalite.virt.driver.DriverError` when the
        driver fails, :class:`~novalite.rpc.errors.CallTimeout` after
        :data:`CONSOLE_TIMEOUT` seconds.

        Example::

            text = await ComputeClient(transport, inst.host).get_console_output(ctx, uuid)
        """
        result: str = await self._rpc.call(ctx, "get_console_output", {"uuid": uuid},
                                           timeout=CONSOLE_TIMEOUT)
        return result

    async def get_console(self, ctx: RequestContext, uuid: str, console_type: str,
                          token_hash: str, expires: float) -> dict[str, Any]:
        """Grant a console token: the host lets the token whose SHA-256 is
        ``token_hash`` open the guest's ``console_type`` console ("novnc" or
        "serial") until ``expires`` (Unix time), and answers where the console proxy
        connects: ``{"host": ..., "port": ...}`` (its console relay, see
        :mod:`novalite.console.relay`).

        Raises :class:`~novalite.virt.driver.NotSupported` when the host's driver has
        no such console, :class:`~novalite.virt.driver.InstanceNotFound` when the
        guest is gone, :class:`~novalite.rpc.errors.CallTimeout` after
        :data:`CONSOLE_TIMEOUT` seconds.

        Example::

            where = await ComputeClient(transport, inst.host).get_console(
                ctx, uuid, "serial", token_hash(token), time.time() + 600)
        """
        result: dict[str, Any] = await self._rpc.call(
            ctx, "get_console", {"uuid": uuid, "console_type": console_type,
                                 "token_hash": token_hash, "expires": expires},
            timeout=CONSOLE_TIMEOUT)
        return result

    async def attach_volume(self, ctx: RequestContext, uuid: str, volume: dict[str, Any]
                            ) -> None:
        """Hot-plug a volume into the guest and wait for it (call). ``volume`` is a
        :class:`~novalite.virt.driver.VolumeConnection` as a dict (``volume_id``,
        ``path`` on the compute host, ``size`` in bytes, ``device``).

        Raises :class:`~novalite.virt.driver.NotSupported` when the host's driver
        cannot, :class:`~novalite.virt.driver.InstanceNotFound`, another
        :class:`~novalite.virt.driver.DriverError` when the hypervisor refuses,
        :class:`~novalite.rpc.errors.CallTimeout` after :data:`VOLUME_TIMEOUT` seconds.

        Example::

            await ComputeClient(transport, inst.host).attach_volume(
                ctx, uuid, {"volume_id": vid, "path": path, "size": 1 << 30,
                            "device": "/dev/vdb"})
        """
        await self._rpc.call(ctx, "attach_volume", {"uuid": uuid, "volume": volume},
                             timeout=VOLUME_TIMEOUT)

    async def detach_volume(self, ctx: RequestContext, uuid: str, volume_id: str) -> None:
        """Unplug the volume from the guest and wait until the guest released it (call);
        raises as :meth:`attach_volume`. Example:
        ``await ComputeClient(transport, host).detach_volume(ctx, uuid, vid)``."""
        await self._rpc.call(ctx, "detach_volume", {"uuid": uuid, "volume_id": volume_id},
                             timeout=VOLUME_TIMEOUT)

    async def attach_interface(self, ctx: RequestContext, uuid: str, hostname: str,
                               address: dict[str, Any]) -> None:
        """Give the guest a NIC for a port (call; ``address``: the port's address as
        the instance's ``addresses`` hold it), on its bridge when the host runs
        bridges; answers once the guest has it. Raises as :meth:`attach_volume`.
        Example: ``await ComputeClient(transport, host).attach_interface(ctx, uuid,
        "vm1", address)``."""
        await self._rpc.call(ctx, "attach_interface", {
            "uuid": uuid, "hostname": hostname, "address": address}, timeout=VOLUME_TIMEOUT)

    async def detach_interface(self, ctx: RequestContext, uuid: str,
                               address: dict[str, Any]) -> None:
        """Remove the guest's NIC of that port and its host device (call); answers once
        the guest let it go. Raises as :meth:`attach_volume`. Example:
        ``await ComputeClient(transport, host).detach_interface(ctx, uuid, address)``."""
        await self._rpc.call(ctx, "detach_interface", {"uuid": uuid, "address": address},
                             timeout=VOLUME_TIMEOUT)

    async def extend_volume(self, ctx: RequestContext, uuid: str, volume_id: str,
                            new_size: int) -> None:
        """Tell the guest an attached volume grew to ``new_size`` bytes (call)."""
        await self._rpc.call(ctx, "extend_volume", {"uuid": uuid, "volume_id": volume_id,
                                                    "new_size": new_size},
                             timeout=VOLUME_TIMEOUT)


__all__ = ["CONSOLE_TIMEOUT", "VOLUME_TIMEOUT", "ComputeClient", "topic"]
