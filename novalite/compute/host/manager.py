"""The compute actor: one per host, driving its hypervisor driver.

It never touches the database: every record it reads or writes goes through
the conductor's RPC client (DESIGN.md boundary 1). Operations on one instance
are serialized by a per-instance lock, as Nova's compute manager does.

Periodic tasks: the service heartbeat, power-state sync (the hypervisor's word
wins: a guest that powered itself off becomes SHUTOFF), and resource reports.
At start the actor adopts the guests its driver still finds and reconciles
their states with the records.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import socket
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import structlog
import trio

from novalite import metrics, rpc, states
from novalite.compute.host.consoles import OPENERS, ConsoleRelay
from novalite.compute.host.image_cache import ImageCache
from novalite.compute.host.lifecycle import LifecycleHandlers
from novalite.compute.host.resize import ResizeHost
from novalite.compute.host.shelve import ShelveHost
from novalite.context import RequestContext
from novalite.metadata import configdrive
from novalite.metadata.content import InstanceData, config_drive_files
from novalite.metadata.proxy import Guest, MetadataProxy
from novalite.network.host import HostNetwork, Port
from novalite.rpc.conductor import ConductorClient
from novalite.virt.driver import (
    Driver,
    DriverError,
    HostResources,
    ImageInfo,
    InstanceNotFound,
    InstanceSpec,
    LifecycleEvent,
    NetworkInfo,
    NotSupported,
    PowerState,
    SpawnFailed,
    VolumeConnection,
)

log = structlog.get_logger("novalite.compute")

#: vm_state to set after a successful action, and the power state expected.
_DONE = {
    "stop": (states.STOPPED, PowerState.SHUTDOWN),
    "start": (states.ACTIVE, PowerState.RUNNING),
    "reboot": (states.ACTIVE, PowerState.RUNNING),
    "pause": (states.PAUSED, PowerState.PAUSED),
    "unpause": (states.ACTIVE, PowerState.RUNNING),
    "suspend": (states.SUSPENDED, PowerState.SUSPENDED),
    "resume": (states.ACTIVE, PowerState.RUNNING),
}


class ComputeManager(LifecycleHandlers, ResizeHost, ShelveHost):
    """Handles the ``compute.<host>`` topic: its ``@rpc.method`` methods are what
    :class:`~novalite.rpc.compute.ComputeClient` sends."""

    def __init__(self, host: str, driver: Driver, conductor: ConductorClient, *,
                 availability_zone: str,
                 image_cache: ImageCache, shutdown_timeout: float,
                 events: trio.MemorySendChannel[LifecycleEvent] | None = None,
                 consoles: ConsoleRelay | None = None,
                 metadata: MetadataProxy | None = None, dhcp_domain: str = "novalocal",
                 network: HostNetwork | None = None) -> None:
        self.host = host
        #: This host's bridges and rules (None: guests on user-mode networking).
        self.network = network
        #: The console relay of this process (None: this host serves no consoles).
        self.consoles = consoles
        #: The guests' metadata relay (None: no metadata service for this host's guests).
        self.metadata = metadata
        self.dhcp_domain = dhcp_domain
        self.driver = driver
        self.conductor = conductor
        self.az = availability_zone
        self.cache = image_cache
        self.shutdown_timeout = shutdown_timeout
        self._locks: dict[str, trio.Lock] = defaultdict(trio.Lock)
        self._ssh_ports: dict[str, int | None] = {}
        self._moved_out: set[str] = set()
        self._moved_in: set[str] = set()
        # Many hosts in one process share one event queue (novalite.compute.host.fleet).
        if events is None:
            self._events_send, self._events_recv = trio.open_memory_channel[
                LifecycleEvent](1000)
        else:
            self._events_send = events

    # -- plumbing ----------------------------------------------------------------
    def emit_event(self, event: LifecycleEvent) -> None:
        """Given to the driver: lifecycle events queue here and sync power state at once."""
        try:
            self._events_send.send_nowait(event)
        except trio.WouldBlock:
            log.warning("lifecycle event dropped: queue full", instance=event.uuid)

    async def update(self, context: RequestContext, uuid: str, **values: Any) -> Any:
        return await self.conductor.instance_update(context, uuid, values)

    @asynccontextmanager
    async def event(self, context: RequestContext, uuid: str, name: str
                    ) -> AsyncIterator[None]:
        """Record an instance action event around an operation, as Nova's wrap_instance_event."""
        await self.conductor.action_event(context, uuid, name, self.host, phase="start")
        try:
            yield
        except Exception as exc:
            await self.conductor.action_event(context, uuid, name, self.host, result="Error",
                                              details=f"{type(exc).__name__}: {exc}")
            raise
        await self.conductor.action_event(context, uuid, name, self.host, result="Success")

    # -- start -------------------------------------------------------------------
    async def start(self) -> None:
        await self.driver.init_host()
        ctx = RequestContext.system()
        await self.report_service(ctx)
        await self.report_resources(ctx)
        await self.adopt(ctx)

    async def run_driver(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                         ) -> None:
        """The driver's background task (``Driver.run``), for the life of this actor.

        Started with ``nursery.start`` after :meth:`start`, before the actor reports
        ready; cancelled at shutdown, before ``cleanup_host``.
        """
        await self.driver.run(task_status=task_status)

    async def adopt(self, ctx: RequestContext,
                    records: list[dict[str, Any]] | None = None) -> None:
        """Reconcile the records of this host's instances (fetched when not given)
        with what the driver finds."""
        if records is None:
            records = await self.conductor.instances_on_host(ctx, self.host)
        guests = set(await self.driver.list_instances())
        known = {r["uuid"] for r in records}
        for record in records:
            self.cache.adopt(record.get("image_ref"), record["uuid"])
            if record["uuid"] in guests:  # the guest asks its metadata at the same socket
                await self._open_metadata(record, bridged=self.network is not None and record[
                    "uuid"] in self.network.instances(self.host))
            await self.sync_power_state(ctx, record, adopting=True)
        evacuated = set(await self.conductor.evacuated_from(ctx, self.host)) if \
            guests - known else set()
        for uuid in sorted(guests - known):
            if uuid in evacuated:  # rebuilt on another host while this one was down
                log.info("removing the guest of an instance evacuated from this host",
                         instance=uuid)
                await self.driver.destroy(uuid)
                self.cache.release(uuid)
                await self.conductor.evacuation_cleaned(ctx, self.host, uuid)
                continue
            log.warning("guest on this host has no instance record; left alone", instance=uuid)
        if self.network is not None:  # ports of instances deleted while the service was down
            for uuid in sorted(self.network.instances(self.host) - known - guests):
                await self.network.unplug_instance(uuid)
        if records:
            log.info("adopted guests", host=self.host, count=len(guests & known))

    async def report_service(self, ctx: RequestContext) -> None:
        await self.conductor.service_report(ctx, self.host, "nova-compute", self.az)

    async def report_resources(self, ctx: RequestContext) -> None:
        data = self.resource_report(await self.driver.get_available_resource())
        await self.conductor.compute_node_update(ctx, self.host, data)

    def resource_report(self, res: HostResources) -> dict[str, Any]:
        """What this host reports of itself: the driver's resources and capabilities,
        and whether it enforces security groups on its ports (a bridge); the network
        service sends rule updates only to hosts that do."""
        data = asdict(res)
        data["supported_instances"] = [list(x) for x in res.supported_instances]
        data["capabilities"] = {**self.driver.capabilities,
                                "port_filtering": self.network is not None}
        return data

    # -- periodic tasks ------------------------------------------------------------
    async def periodic(self, interval: float, fn: Any) -> None:
        # Hosts start together; a random phase keeps N hosts' tasks from firing at once.
        await trio.sleep(random.uniform(0, interval))
        while True:
            try:
                await fn()
            except Exception:
                log.exception("periodic task failed", host=self.host, task=fn.__name__)
            await trio.sleep(interval)

    async def sync_all(self) -> None:
        ctx = RequestContext.system()
        for record in await self.conductor.instances_on_host(ctx, self.host, brief=True):
            await self.sync_power_state(ctx, record)

    async def sync_power_state(self, ctx: RequestContext, record: dict[str, Any],
                               adopting: bool = False) -> None:
        """Make the record follow the hypervisor (Nova's _sync_instance_power_state)."""
        uuid = record["uuid"]
        if record["task_state"] is not None and not adopting:
            return  # an operation is in flight; it will set the state itself
        if record["vm_state"] in (states.BUILDING, states.DELETED):
            if adopting and record["vm_state"] == states.BUILDING:
                await self.update(ctx, uuid, vm_state=states.ERROR, task_state=None)
                await self.conductor.instance_fault(
                    ctx, uuid, "The service stopped while this instance was being built",
                    self.host)
            return
        reason = None
        try:
            info = await self.driver.get_info(uuid)
            power, reason = info.state, getattr(info, "reason", None)
        except InstanceNotFound:
            power = PowerState.NOSTATE
        values: dict[str, Any] = {}
        if adopting and record["task_state"] is not None:
            values["task_state"] = None
        if int(power) != record["power_state"]:
            values["power_state"] = int(power)
        vm_state = record["vm_state"]
        if power in (PowerState.SHUTDOWN, PowerState.NOSTATE, PowerState.CRASHED) and vm_state in (
            states.ACTIVE, states.PAUSED, states.SUSPENDED
        ):
            if not (vm_state == states.SUSPENDED and power == PowerState.SHUTDOWN):
                values["vm_state"] = states.STOPPED
        elif power == PowerState.RUNNING and vm_state == states.STOPPED:
            values["vm_state"] = states.ACTIVE
        elif power == PowerState.PAUSED and vm_state == states.ACTIVE:
            values["vm_state"] = states.PAUSED
        if values:
            log.info("power state synced", instance=uuid, power_state=int(power),
                     **{k: v for k, v in values.items() if k == "vm_state"})
            await self.update(ctx, uuid, **values)
            if power == PowerState.CRASHED and values.get("vm_state") == states.STOPPED:
                # A guest that died on its own: the driver's reason is the server's fault.
                await self.conductor.instance_fault(
                    ctx, uuid, f"The guest crashed: {reason or 'no reason given'}", self.host)

    async def watch_events(self) -> None:
        async for event in self._events_recv:
            ctx = RequestContext.system()
            record = await self.conductor.instance_get(ctx, event.uuid)
            if record and record["host"] == self.host and not record["deleted"]:
                await self.sync_power_state(ctx, record)

    # -- the compute.<host> topic (novalite.rpc.compute.ComputeClient) -------------------
    @rpc.method
    async def build_and_run_instance(self, context: RequestContext, instance: dict[str, Any],
                                         image: dict[str, Any] | None,
                                         kernel: dict[str, Any] | None,
                                         ramdisk: dict[str, Any] | None, spec: dict[str, Any],
                                         tried: list[str], networks: str) -> None:
        uuid = instance["uuid"]
        # The action event rides on the state updates: one conductor write per step.
        event = {"event": "compute_build_and_run_instance", "host": self.host}
        started = time.monotonic()
        async with self._locks[uuid]:
            try:
                current = await self.conductor.instance_update(context, uuid, {
                    "task_state": states.SPAWNING}, event={**event, "phase": "start"})
                if current is None or current["deleted"]:
                    raise SpawnFailed("instance was deleted during the build")
                ssh_port = await self._spawn(instance, image, kernel, ramdisk,
                                             token=context.auth_token,
                                             admin_pass=spec.get("admin_password"),
                                             root_volume=spec.get("root_volume"))
            except Exception as exc:
                reschedule = isinstance(exc, SpawnFailed)
                metrics.BUILDS.labels("failed").inc()
                metrics.BUILD_SECONDS.labels("failed").observe(time.monotonic() - started)
                if not isinstance(exc, DriverError):
                    log.exception("spawn crashed", instance=uuid)
                with trio.CancelScope(shield=True):
                    await self.conductor.action_event(
                        context, uuid, event["event"], self.host, result="Error",
                        details=f"{type(exc).__name__}: {exc}")
                    await self.driver.destroy(uuid)
                    self.cache.release(uuid)
                    if self.network is not None:
                        await self.network.unplug_instance(uuid)
                    if self.metadata is not None:
                        self.metadata.close(uuid)
                    await self.conductor.build_failed(
                        context, uuid, self.host, str(exc) or type(exc).__name__, spec, tried,
                        networks, reschedule)
                return
            info = await self.driver.get_info(uuid)
            values: dict[str, Any] = {"vm_state": states.ACTIVE, "task_state": None,
                                      "power_state": int(info.state), "launched_at": "now"}
            if ssh_port is not None:  # shown as server metadata: ssh -p PORT 127.0.0.1
                values["metadata_"] = {**(current or {}).get("metadata", {}),
                                       "ssh_host_port": str(ssh_port)}
            await self.conductor.instance_update(context, uuid, values,
                                                 event={**event, "result": "Success"})
            metrics.BUILDS.labels("success").inc()
            metrics.BUILD_SECONDS.labels("success").observe(time.monotonic() - started)
            log.info("instance spawned", instance=uuid, host=self.host)

    async def _open_metadata(self, instance: dict[str, Any], bridged: bool = False
                             ) -> str | None:
        """Open the guest's metadata relay socket when its driver (or, ``bridged``, the
        host network) can connect it; its path."""
        if self.metadata is None or not instance.get("addresses") or not (
                bridged or self.driver.capabilities.get("supports_metadata_socket")):
            return None
        return await self.metadata.open(Guest(instance["uuid"], instance["project_id"],
                                              instance["addresses"][0]["address"]),
                                        owner=self.host)

    async def _config_drive(self, instance: dict[str, Any], directory: str,
                            admin_pass: str | None) -> str | None:
        """Build the guest's config drive in ``directory`` when it has one; its path."""
        if not instance.get("config_drive"):
            return None
        if not self.driver.capabilities.get("supports_config_drive"):
            log.warning("the driver attaches no config drive; the guest has none",
                        instance=instance["uuid"], driver=self.driver.name)
            return None
        data = InstanceData.from_payload(instance, dhcp_domain=self.dhcp_domain)
        path = os.path.join(directory, "config-drive.iso")
        try:
            await configdrive.build(config_drive_files(data, admin_pass), path)
        except configdrive.ConfigDriveError as exc:
            raise SpawnFailed(str(exc)) from None
        return path

    async def _spawn(self, instance: dict[str, Any], image: dict[str, Any] | None,
                     kernel: dict[str, Any] | None, ramdisk: dict[str, Any] | None,
                     token: str = "", admin_pass: str | None = None,
                     launch: Callable[[InstanceSpec, ImageInfo, list[NetworkInfo]],
                                      Awaitable[None]] | None = None,
                     root_volume: dict[str, Any] | None = None) -> int | None:
        """Fetch the images and spawn (or ``launch``: the driver's rebuild); returns the
        host port forwarded to port 22, if any. ``root_volume``: boot from this volume
        (a VolumeConnection as a dict)."""
        if root_volume is not None and \
                not type(self.driver).capabilities.get("supports_boot_from_volume"):
            raise SpawnFailed(f"{self.driver.name} on host {self.host} cannot boot from a "
                              "volume")
        if image is None:
            raise DriverError(f"image {instance['image_ref']} not found")
        uuid = instance["uuid"]
        path = await self.cache.fetch(image, uuid, token)
        kernel_path = await self.cache.fetch(kernel, uuid, token) if kernel else None
        ramdisk_path = await self.cache.fetch(ramdisk, uuid, token) if ramdisk else None
        image_info = ImageInfo(id=image["id"], name=image["name"],
                               disk_format=image["disk_format"],
                               container_format=image["container_format"], path=path,
                               size=image["size"], properties=image["properties"],
                               kernel_path=kernel_path, ramdisk_path=ramdisk_path)
        bridged = self.network is not None and any(
            a.get("bridge") and a.get("port_id") for a in instance["addresses"])
        # On a bridge the host reaches the guest's own address: nothing to forward.
        ssh_port = None if bridged else self._ssh_forward_port(instance)
        metadata_socket = await self._open_metadata(instance, bridged)
        network = [self._network_info(a, ssh_port if i == 0 else None,
                                      metadata_socket if i == 0 else None)
                   for i, a in enumerate(instance["addresses"])]
        work = await trio.to_thread.run_sync(tempfile.mkdtemp, None, "novalite-build-")
        try:
            await self._plug(instance, network)
            drive = await self._config_drive(instance, work, admin_pass)
            spec = dataclasses.replace(
                spec_from_payload(instance), config_drive=drive,
                root_volume=VolumeConnection(**root_volume) if root_volume else None)
            await (launch or self.driver.spawn)(spec, image_info, network)
        finally:
            await trio.to_thread.run_sync(shutil.rmtree, work, True)
        return ssh_port

    def _network_info(self, a: dict[str, Any], ssh_port: int | None,
                      metadata_socket: str | None) -> NetworkInfo:
        """One address of the build as the driver sees it: on its port's bridge when the
        host network runs (the host relays metadata then), else user-mode."""
        bridge = a.get("bridge") if self.network is not None and a.get("port_id") else None
        return NetworkInfo(
            network=a["network"], address=a["address"], cidr=a["cidr"],
            gateway=a["gateway"], mac=a["mac"],
            ssh_host_port=None if bridge else ssh_port,
            metadata_socket=None if bridge else metadata_socket,
            port_id=a.get("port_id"), network_id=a.get("network_id"), bridge=bridge,
            dns=list(a.get("dns") or []), mtu=a.get("mtu"),
            security_rules=[dict(r) for r in a.get("security_rules") or []],
            security_group_ids=list(a.get("security_group_ids") or []),
            port_security_enabled=bool(a.get("port_security_enabled", True)))

    async def _plug(self, instance: dict[str, Any], network: list[NetworkInfo]) -> None:
        """Put the guest's bridged ports on their bridges before the driver spawns it."""
        if self.network is None:
            return
        kind = "veth" if self.driver.hypervisor_type == "lxc" else "tap"
        socket_path = None
        for n in network:
            if not n.bridge:
                continue
            if self.metadata is not None and socket_path is None:
                socket_path = self.metadata.socket_path(instance["uuid"])
            await self.network.plug(Port.from_info(
                n, instance["uuid"], instance.get("hostname") or instance["name"], kind,
                metadata_socket=socket_path, host=self.host))
            socket_path = ""  # the first interface's guest asks the metadata service

    def _ssh_forward_port(self, instance: dict[str, Any]) -> int | None:
        """A free host port for the guest's port 22, when its metadata asks
        (``ssh_forward=true``), it has an address and the driver can forward."""
        wanted = str((instance.get("metadata") or {}).get("ssh_forward", "")).lower()
        if wanted not in ("1", "true", "yes", "on") or not instance["addresses"]:
            return None
        if not self.driver.capabilities.get("supports_ssh_forward"):
            return None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    @rpc.method
    async def operations_in_flight(self, context: RequestContext, uuids: list[str]
                                   ) -> list[str]:
        """Which of ``uuids`` have an operation running or waiting here (holding or
        queued on the instance's lock): the conductor's check after the broker lost
        its queues, before it settles what no host is doing."""
        busy = []
        for uuid in uuids:
            lock = self._locks.get(uuid)
            if lock is not None and (lock.locked() or lock.statistics().tasks_waiting):
                busy.append(uuid)
        return busy

    @rpc.method
    async def terminate_instance(self, context: RequestContext, uuid: str) -> None:
        if self.consoles is not None:
            self.consoles.revoke_instance(uuid)
        async with self._locks[uuid]:
            try:
                await self.driver.destroy(uuid)
            except Exception as exc:
                log.exception("destroy failed", instance=uuid)
                await self.update(context, uuid, vm_state=states.ERROR, task_state=None)
                await self.conductor.instance_fault(
                    context, uuid, f"Failed to delete the guest: {exc}", self.host)
                return
            if self.network is not None:
                await self.network.unplug_instance(uuid)
            await self.conductor.instance_destroyed(context, uuid, self.host)
        self.cache.release(uuid)
        if self.metadata is not None:
            self.metadata.close(uuid)
        self._locks.pop(uuid, None)
        log.info("instance deleted", instance=uuid)

    @rpc.method
    async def power_action(self, context: RequestContext, uuid: str, action: str,
                               reboot_type: str = "SOFT") -> None:
        """stop, start, reboot, pause, unpause, suspend, resume."""
        event = {"stop": "compute_stop_instance", "start": "compute_start_instance",
                 "reboot": "compute_reboot_instance"}.get(action, f"compute_{action}_instance")
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, event):
                    if action == "stop":
                        await self.driver.power_off(uuid, self.shutdown_timeout)
                    elif action == "start":
                        await self.driver.power_on(uuid)
                    elif action == "reboot":
                        await self.driver.reboot(uuid, reboot_type)
                    else:
                        await getattr(self.driver, action)(uuid)
            except Exception as exc:
                log.warning("action failed", instance=uuid, action=action, error=str(exc))
                info_state = await self._power_or_none(uuid)
                values: dict[str, Any] = {"task_state": None}
                if info_state is not None:
                    values["power_state"] = int(info_state)
                await self.update(context, uuid, **values)
                await self.conductor.instance_fault(context, uuid, f"{action} failed: {exc}",
                                                    self.host, traceback.format_exc())
                return
            vm_state, _expected = _DONE[action]
            power = await self._power_or_none(uuid)
            await self.update(context, uuid, vm_state=vm_state, task_state=None,
                              power_state=int(power if power is not None else _expected))

    async def _power_or_none(self, uuid: str) -> PowerState | None:
        try:
            return (await self.driver.get_info(uuid)).state
        except DriverError:
            return None

    @rpc.method
    async def snapshot_instance(self, context: RequestContext, uuid: str,
                                image_id: str) -> None:
        """createImage: the driver writes the guest's disk (or rootfs) to a file, which
        this host uploads over HTTP, as the caller, as the data of the queued image
        ``image_id`` (the image API hashes it and makes it active)."""
        dest = self.cache.snapshot_path(image_id)
        token = context.auth_token
        async with self._locks[uuid]:
            try:
                async with self.event(context, uuid, "compute_snapshot_instance"):
                    disk_format, container_format = await self.driver.snapshot(uuid, dest)
                    await self.cache.api.upload(token, image_id, dest, disk_format,
                                                container_format)
                if os.path.exists(dest):
                    os.unlink(dest)
            except Exception as exc:
                log.warning("snapshot failed", instance=uuid, image=image_id, error=str(exc))
                with trio.CancelScope(shield=True):
                    if os.path.exists(dest):
                        os.unlink(dest)
                    try:  # as Nova does: the failed snapshot's image is deleted
                        with trio.fail_after(30):
                            await self.cache.api.delete(token, image_id)
                    except Exception as gone:  # already gone, or protected meanwhile
                        log.warning("snapshot image not deleted", image=image_id,
                                    error=str(gone) or type(gone).__name__)
                    await self.update(context, uuid, task_state=None)
                    await self.conductor.instance_fault(
                        context, uuid, f"Snapshot failed: {exc}"[:255], self.host,
                        traceback.format_exc())
                return
            await self.update(context, uuid, task_state=None)
            log.info("snapshot stored", instance=uuid, image=image_id)

    @rpc.method
    async def update_port_security(self, context: RequestContext, port_id: str,
                                   security_rules: list[dict[str, Any]]) -> bool:
        """A port's security group rules changed: enforce them at once on this host.
        False when the port is not on this host's bridges (user-mode networking filters
        nothing: logged)."""
        applied = False
        if self.network is not None:
            applied = await self.network.update_port_security(port_id, security_rules)
        if not applied:
            log.info("port security not applied: the port is not on this host's bridges",
                     port=port_id, rules=len(security_rules))
        return applied

    @rpc.method
    async def get_console_output(self, context: RequestContext, uuid: str) -> str:
        return await self.driver.get_console_output(uuid)

    @rpc.method
    async def get_console(self, context: RequestContext, uuid: str, console_type: str,
                          token_hash: str, expires: float) -> dict[str, Any]:
        """Grant a console token (by its hash) the guest's ``console_type`` console until
        ``expires``; returns where the console proxy connects (host, port)."""
        if self.consoles is None or console_type not in OPENERS:
            raise NotSupported(f"{console_type} consoles are not served by host {self.host}")
        capability = {"novnc": "supports_vnc_console",
                      "serial": "supports_serial_console"}[console_type]
        if not type(self.driver).capabilities.get(capability):
            raise NotSupported(f"{self.driver.name} has no {console_type} console")
        await self.driver.get_info(uuid)  # InstanceNotFound when the guest is gone
        return self.consoles.grant(self.host, uuid, console_type, token_hash, expires)

    # -- volumes (contract 1.4) ----------------------------------------------------------
    @rpc.method
    async def attach_volume(self, context: RequestContext, uuid: str,
                            volume: dict[str, Any]) -> None:
        """Hot-plug a volume (its data a path on this machine) into the guest."""
        if not type(self.driver).capabilities.get("supports_attach_volume"):
            raise NotSupported(f"{self.driver.name} cannot attach volumes")
        async with self._locks[uuid]:
            async with self.event(context, uuid, "compute_attach_volume"):
                await self.driver.attach_volume(uuid, VolumeConnection(**volume))
        log.info("volume attached", instance=uuid, volume=volume["volume_id"])

    @rpc.method
    async def attach_interface(self, context: RequestContext, uuid: str, hostname: str,
                               address: dict[str, Any]) -> None:
        """A NIC for a port attached to the guest: its tap on the bridge first when this
        host runs bridges (removed again if the driver refuses)."""
        if not type(self.driver).capabilities.get("supports_attach_interface"):
            raise NotSupported(f"{self.driver.name} does not support attaching interfaces")
        info = self._network_info(address, None, None)
        async with self._locks[uuid]:
            async with self.event(context, uuid, "compute_attach_interface"):
                await self._plug({"uuid": uuid, "name": hostname, "hostname": hostname},
                                 [info])
                try:
                    await self.driver.attach_interface(uuid, info)
                except BaseException:
                    with trio.CancelScope(shield=True):
                        if info.bridge and info.port_id and self.network is not None:
                            await self.network.unplug(info.port_id)
                    raise

    @rpc.method
    async def detach_interface(self, context: RequestContext, uuid: str,
                               address: dict[str, Any]) -> None:
        """The guest's NIC of a port removed, then its device on the bridge."""
        if not type(self.driver).capabilities.get("supports_attach_interface"):
            raise NotSupported(f"{self.driver.name} does not support detaching interfaces")
        info = self._network_info(address, None, None)
        async with self._locks[uuid]:
            async with self.event(context, uuid, "compute_detach_interface"):
                await self.driver.detach_interface(uuid, info)
                if info.bridge and info.port_id and self.network is not None:
                    await self.network.unplug(info.port_id)

    @rpc.method
    async def detach_volume(self, context: RequestContext, uuid: str, volume_id: str) -> None:
        """Unplug a volume from the guest, once the guest released it."""
        if not type(self.driver).capabilities.get("supports_attach_volume"):
            raise NotSupported(f"{self.driver.name} cannot detach volumes")
        async with self._locks[uuid]:
            async with self.event(context, uuid, "compute_detach_volume"):
                await self.driver.detach_volume(uuid, volume_id)
        log.info("volume detached", instance=uuid, volume=volume_id)

    @rpc.method
    async def extend_volume(self, context: RequestContext, uuid: str, volume_id: str,
                            new_size: int) -> None:
        if not type(self.driver).capabilities.get("supports_extend_volume"):
            raise NotSupported(f"{self.driver.name} cannot extend attached volumes")
        async with self._locks[uuid]:
            await self.driver.extend_volume(uuid, volume_id, new_size)


def spec_from_payload(instance: dict[str, Any]) -> InstanceSpec:
    return InstanceSpec(
        uuid=instance["uuid"], name=instance["name"], hostname=instance["hostname"],
        vcpus=instance["vcpus"], memory_mb=instance["memory_mb"], root_gb=instance["root_gb"],
        ephemeral_gb=instance["ephemeral_gb"], swap_mb=instance["swap_mb"],
        flavor_name=instance["flavor_name"], key_data=instance["key_data"],
        user_data=instance["user_data"], metadata=instance["metadata"],
        extra={"extra_specs": instance.get("extra_specs", {})},
    )
