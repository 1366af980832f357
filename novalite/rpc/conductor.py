"""The typed client of the ``conductor`` topic (Nova's ``conductor/rpcapi.py``).

The conductor does two jobs: it runs builds (schedule, reschedule, fail) for the
compute API, and it is the database proxy of compute hosts, which never touch the
database themselves (DESIGN.md boundary 1). Its handler is
:class:`~novalite.conductor.manager.ConductorManager`.

Instances and images cross as plain-data payloads
(:func:`~novalite.conductor.manager.instance_payload`,
:func:`~novalite.conductor.manager.image_payload`).
"""

from __future__ import annotations

from typing import Any

from novalite.context import RequestContext
from novalite.rpc.client import DEFAULT_TIMEOUT, RpcClient
from novalite.rpc.transport import Transport

TOPIC = "conductor"

class ConductorClient:
    """Sends to the conductor. ``timeout`` bounds every call of this client (the batched
    periodic tasks of many hosts use a longer one)."""

    def __init__(self, transport: Transport, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._rpc = RpcClient(transport, TOPIC, timeout)

    # -- builds (from the compute API) ---------------------------------------------------
    async def schedule_and_build(self, ctx: RequestContext, instance_uuid: str,
                                 spec: dict[str, Any], networks: str = "auto") -> None:
        """Place the instance and cast its build to the chosen host (cast).

        ``spec`` is the boot's request spec (a
        :class:`~novalite.scheduler.host_state.RequestSpec` dict; with an external
        Glance its ``glance_images`` too). A build that finds no host, or fails on
        every host it may try, puts the instance in ERROR with a fault.

        Example::

            await conductor.schedule_and_build(ctx, inst.uuid, spec, networks="auto")
        """
        await self._rpc.cast(ctx, "schedule_and_build", {
            "instance_uuid": instance_uuid, "spec": spec, "networks": networks})

    async def schedule_and_build_instances(self, ctx: RequestContext,
                                           builds: list[dict[str, Any]],
                                           networks: str = "auto") -> None:
        """Place a multi-create with one scheduler call, all or none, then build each
        (cast). ``builds`` are ``{"instance_uuid", "spec"}``."""
        await self._rpc.cast(ctx, "schedule_and_build_instances",
                             {"builds": builds, "networks": networks})

    # -- resize and cold migration (novalite.conductor.tasks.migrate) -----------------------
    async def migrate_server(self, ctx: RequestContext, instance_uuid: str,
                             migration_id: int, spec: dict[str, Any]) -> None:
        """Place a recorded resize or cold migration (``spec``: the request spec with
        the new flavor's sizes) and start it on the source (cast). No valid host: the
        migration is ``error``, the instance as it was with a fault.

        Example::

            await conductor.migrate_server(ctx, inst.uuid, migration.id, spec)
        """
        await self._rpc.cast(ctx, "migrate_server", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "spec": spec})

    async def confirm_resize(self, ctx: RequestContext, instance_uuid: str,
                             migration_id: int) -> None:
        """confirmResize: the source removes the old guest, its claim is released (cast)."""
        await self._rpc.cast(ctx, "confirm_resize", {"instance_uuid": instance_uuid,
                                                     "migration_id": migration_id})

    async def revert_resize(self, ctx: RequestContext, instance_uuid: str,
                            migration_id: int) -> None:
        """revertResize: back to the source host and the old flavor (cast)."""
        await self._rpc.cast(ctx, "revert_resize", {"instance_uuid": instance_uuid,
                                                    "migration_id": migration_id})

    async def resize_step(self, ctx: RequestContext, instance_uuid: str, migration_id: int,
                          step: str, host: str, data: dict[str, Any] | None = None) -> None:
        """A compute host finished its part of a move (``migrating``, ``migrated``,
        ``finished``, ``confirmed``, ``dest_reverted``, ``reverted``): recorded, and the
        next step cast to the next host."""
        await self._rpc.call(ctx, "resize_step", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "step": step,
            "host": host, "data": data})

    async def resize_failed(self, ctx: RequestContext, instance_uuid: str, migration_id: int,
                            host: str, message: str, rolled_back: bool) -> None:
        """A step of a move failed on ``host``: migration ``error``, claims back on the
        source, a fault; the instance ERROR unless ``rolled_back``."""
        await self._rpc.call(ctx, "resize_failed", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "host": host,
            "message": message, "rolled_back": rolled_back})

    async def live_migrate_server(self, ctx: RequestContext, instance_uuid: str,
                                  migration_id: int, spec: dict[str, Any]) -> None:
        """Place a recorded live migration and start it on the source (cast)."""
        await self._rpc.cast(ctx, "live_migrate_server", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "spec": spec})

    async def live_step(self, ctx: RequestContext, instance_uuid: str, migration_id: int,
                        step: str, host: str, data: dict[str, Any] | None = None) -> None:
        """A compute host's part of a live migration is done (``running``,
        ``migrated``, ``arrived``, ``completed``): recorded, the next step cast."""
        await self._rpc.call(ctx, "live_step", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "step": step,
            "host": host, "data": data})

    async def live_failed(self, ctx: RequestContext, instance_uuid: str, migration_id: int,
                          host: str, message: str) -> None:
        """A live migration failed on ``host``; the guest runs on the source."""
        await self._rpc.call(ctx, "live_failed", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "host": host,
            "message": message})

    async def evacuate_server(self, ctx: RequestContext, instance_uuid: str,
                              migration_id: int, spec: dict[str, Any],
                              admin_pass: str | None, stop: bool) -> None:
        """Place a recorded evacuation and have the new host rebuild the server (cast)."""
        await self._rpc.cast(ctx, "evacuate_server", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "spec": spec,
            "admin_pass": admin_pass, "stop": stop})

    async def evacuate_done(self, ctx: RequestContext, instance_uuid: str,
                            migration_id: int, host: str, error: str | None) -> None:
        """The new host rebuilt the evacuated server (``error`` None) or failed."""
        await self._rpc.call(ctx, "evacuate_done", {
            "instance_uuid": instance_uuid, "migration_id": migration_id, "host": host,
            "error": error})

    async def evacuated_from(self, ctx: RequestContext, host: str) -> list[str]:
        """The instances evacuated from ``host`` whose guests it has still to remove."""
        found: list[str] = await self._rpc.call(ctx, "evacuated_from", {"host": host})
        return found

    async def evacuation_cleaned(self, ctx: RequestContext, host: str, uuid: str) -> None:
        """``host`` removed the guest of evacuated ``uuid``: its migration completed."""
        await self._rpc.call(ctx, "evacuation_cleaned", {"host": host, "uuid": uuid})

    # -- shelving (novalite.conductor.tasks.shelve) -----------------------------------------
    async def unshelve_instance(self, ctx: RequestContext, instance_uuid: str,
                                image_id: str, spec: dict[str, Any]) -> None:
        """Place a SHELVED_OFFLOADED server (``spec``: its request spec, with the zone
        or host asked for) and boot it from its snapshot ``image_id`` there (cast)."""
        await self._rpc.cast(ctx, "unshelve_instance", {
            "uuid": instance_uuid, "image_id": image_id, "spec": spec})

    async def shelve_done(self, ctx: RequestContext, uuid: str, host: str, offloaded: bool,
                          power_state: int = 0) -> None:
        """The snapshot is stored: SHELVED, or (``offloaded``: the guest destroyed)
        SHELVED_OFFLOADED with the host's resources released."""
        await self._rpc.call(ctx, "shelve_done", {"uuid": uuid, "host": host,
                                                  "offloaded": offloaded,
                                                  "power_state": power_state})

    async def unshelve_done(self, ctx: RequestContext, uuid: str, host: str,
                            power_state: int) -> None:
        """The server runs again on ``host``: ACTIVE."""
        await self._rpc.call(ctx, "unshelve_done", {"uuid": uuid, "host": host,
                                                    "power_state": power_state})

    async def unshelve_failed(self, ctx: RequestContext, uuid: str, host: str,
                              message: str) -> None:
        """The boot from the snapshot failed on ``host``: SHELVED_OFFLOADED again, with
        a fault."""
        await self._rpc.call(ctx, "unshelve_failed", {"uuid": uuid, "host": host,
                                                      "message": message})

    # -- builds (from compute hosts) -----------------------------------------------------
    async def build_failed(self, ctx: RequestContext, instance_uuid: str, host: str,
                           reason: str, spec: dict[str, Any], tried: list[str],
                           networks: str, reschedule: bool) -> None:
        """A build failed on ``host`` (the guest is already cleaned up): release its
        claim, record the fault, and build again on another host when ``reschedule``
        (and attempts remain), else put the instance in ERROR."""
        await self._rpc.call(ctx, "build_failed", {
            "instance_uuid": instance_uuid, "host": host, "reason": reason, "spec": spec,
            "tried": tried, "networks": networks, "reschedule": reschedule})

    # -- instance records ------------------------------------------------------------------
    async def instance_update(self, ctx: RequestContext, uuid: str, values: dict[str, Any],
                              *, expected_task_state: list[str | None] | None = None,
                              event: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Set ``values`` on the instance's record (``"now"`` for ``launched_at`` or
        ``terminated_at`` means the conductor's clock; ``metadata_`` the metadata).

        ``event`` (``event``, ``host``, and ``phase`` or ``result`` and ``details``, as
        :meth:`action_event` takes them) is recorded in the same transaction. With
        ``expected_task_state`` given and not met, nothing changes.

        Returns the instance's state after the change (``uuid``, ``vm_state``,
        ``task_state``, ``power_state``, ``deleted``, ``metadata``), None if there is
        no such instance.

        Example::

            state = await conductor.instance_update(ctx, uuid, {"task_state": "spawning"})
        """
        result: dict[str, Any] | None = await self._rpc.call(ctx, "instance_update", {
            "uuid": uuid, "values": values, "expected_task_state": expected_task_state,
            "event": event})
        return result

    async def instance_get(self, ctx: RequestContext, uuid: str) -> dict[str, Any] | None:
        """The instance's payload, None if there is no such record."""
        result: dict[str, Any] | None = await self._rpc.call(ctx, "instance_get",
                                                             {"uuid": uuid})
        return result

    async def image_payloads(self, ctx: RequestContext, image_id: str) -> dict[str, Any]:
        """The image ``image_id`` as a build carries it: ``{"image": ..., "kernel": ...,
        "ramdisk": ...}`` (payloads, or None where there is none), for a rebuild or a
        rescue on a compute host."""
        result: dict[str, Any] = await self._rpc.call(ctx, "image_payloads",
                                                      {"image_id": image_id})
        return result

    async def instances_on_host(self, ctx: RequestContext, host: str, *,
                                brief: bool = False) -> list[dict[str, Any]]:
        """The live instances of ``host`` as payloads; ``brief``: only ``uuid``,
        ``vm_state``, ``task_state`` and ``power_state``."""
        result: list[dict[str, Any]] = await self._rpc.call(
            ctx, "instances_on_host", {"host": host, "brief": brief})
        return result

    async def instances_on_hosts(self, ctx: RequestContext, hosts: list[str], *,
                                 brief: bool = False) -> dict[str, list[dict[str, Any]]]:
        """:meth:`instances_on_host` for many hosts at once, by host (hosts without
        instances are left out)."""
        result: dict[str, list[dict[str, Any]]] = await self._rpc.call(
            ctx, "instances_on_hosts", {"hosts": hosts, "brief": brief})
        return result

    async def instance_destroyed(self, ctx: RequestContext, uuid: str,
                                 host: str | None) -> None:
        """The guest is gone: soft-delete the record, free its address and its claim."""
        await self._rpc.call(ctx, "instance_destroyed", {"uuid": uuid, "host": host})

    async def action_event(self, ctx: RequestContext, uuid: str, event: str,
                           host: str | None, *, result: str | None = None,
                           details: str | None = None, phase: str = "finish") -> None:
        """Record an event of the instance's action of this request (``ctx.request_id``):
        its start (``phase="start"``) or its finish with ``result`` ("Success",
        "Error") and ``details``, as ``server action show`` lists them."""
        await self._rpc.call(ctx, "action_event", {
            "uuid": uuid, "event": event, "host": host, "result": result,
            "details": details, "phase": phase})

    async def instance_fault(self, ctx: RequestContext, uuid: str, message: str,
                             host: str | None, details: str = "") -> None:
        """Record a fault on the instance (``server show`` displays the latest)."""
        await self._rpc.call(ctx, "instance_fault", {
            "uuid": uuid, "message": message, "host": host, "details": details})

    # -- hosts -------------------------------------------------------------------------------
    async def service_report(self, ctx: RequestContext, host: str, binary: str,
                             availability_zone: str) -> dict[str, Any]:
        """A service's heartbeat (creating its record the first time).

        Returns ``{"disabled", "forced_down"}`` as the record says."""
        result: dict[str, Any] = await self._rpc.call(ctx, "service_report", {
            "host": host, "binary": binary, "availability_zone": availability_zone})
        return result

    async def service_report_many(self, ctx: RequestContext,
                                  reports: list[dict[str, Any]]) -> None:
        """The heartbeats of many services in one transaction; each report is
        ``{"host", "binary", "availability_zone"}``."""
        await self._rpc.call(ctx, "service_report_many", {"reports": reports})

    async def compute_node_update(self, ctx: RequestContext, host: str,
                                  resources: dict[str, Any]) -> None:
        """A host's capacity report (a driver's
        :class:`~novalite.virt.driver.HostResources` as a dict, ``supported_instances``
        as lists); the scheduler is told too."""
        await self._rpc.call(ctx, "compute_node_update", {"host": host,
                                                          "resources": resources})

    async def compute_node_update_many(self, ctx: RequestContext,
                                       nodes: list[dict[str, Any]]) -> None:
        """Many hosts' :meth:`compute_node_update` in one transaction; each node is
        ``{"host", "resources"}``."""
        await self._rpc.call(ctx, "compute_node_update_many", {"nodes": nodes})


__all__ = ["TOPIC", "ConductorClient"]
