"""The conductor actor: builds (schedule, reschedule, fail) and all database work for compute.

Compute actors never touch the database (DESIGN.md boundary 1): they call the
conductor (:class:`~novalite.rpc.conductor.ConductorClient`) with plain data, and
the conductor reads and writes. Its ``@rpc.method`` methods are its topic.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
import trio
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlmodel import Session, col, select

from novalite import rpc, states
from novalite.conductor import recovery
from novalite.conductor.tasks.migrate import MigrationTasks
from novalite.conductor.tasks.shelve import ShelveTasks
from novalite.config import Config
from novalite.context import RequestContext
from novalite.db import queries
from novalite.db.engine import Database
from novalite.db.models import (
    ComputeNode,
    Image,
    ImageRow,
    Instance,
    InstanceFault,
    InstanceRow,
    Service,
    utcnow,
)
from novalite.exceptions import DatabaseUnavailable, NoValidHost
from novalite.image.glance_client import image_api_url
from novalite.network import ports as network_ports
from novalite.rpc.compute import ComputeClient
from novalite.rpc.errors import BusError, RemoteError
from novalite.rpc.scheduler import SchedulerClient
from novalite.rpc.transport import Transport

log = structlog.get_logger("novalite.conductor")
T = TypeVar("T")

#: Seconds the conductor keeps trying to record a build's progress or failure while the
#: database is unavailable, beyond the database layer's own retries (a restarting
#: server is back within it); after that the build-timeout check has the last word.
RECORD_PATIENCE = 300.0
#: The same for what a compute host asks by call: within the call's timeout (60 s), so
#: an outage the database comes back from is a slower call, not a failed build.
CALL_PATIENCE = 45.0
#: Seconds after the broker connection is back before the builds it lost are failed:
#: messages the broker kept are redelivered and taken (in flight) well within it.
BUS_GRACE = 5.0


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def instance_payload(inst: Instance | InstanceRow) -> dict[str, Any]:
    """The plain-data form of an instance that crosses the bus."""
    return {
        "uuid": inst.uuid, "name": inst.display_name, "hostname": inst.hostname,
        "project_id": inst.project_id, "user_id": inst.user_id, "host": inst.host,
        "vcpus": inst.vcpus, "memory_mb": inst.memory_mb, "root_gb": inst.root_gb,
        "ephemeral_gb": inst.ephemeral_gb, "swap_mb": int(inst.flavor.get("swap", 0) or 0),
        "flavor_name": inst.flavor.get("name", ""), "image_ref": inst.image_ref,
        "key_data": inst.key_data, "user_data": inst.user_data,
        "metadata": dict(inst.metadata_), "vm_state": inst.vm_state,
        "task_state": inst.task_state, "power_state": inst.power_state,
        "addresses": list(inst.addresses), "deleted": bool(inst.deleted),
        "extra_specs": dict(inst.flavor.get("extra_specs", {})),
        # What the metadata and the config drive tell the guest (novalite.metadata).
        "id": inst.id, "key_name": inst.key_name,
        "availability_zone": inst.availability_zone, "launch_index": inst.launch_index,
        "reservation_id": inst.reservation_id, "config_drive": inst.config_drive,
    }


def _state(row: dict[str, Any]) -> dict[str, Any]:
    """The state an instance_update reports (plain data: ``deleted`` as a bool)."""
    return {name: bool(row[name]) if name == "deleted" else row[name]
            for name in queries.STATE_COLUMNS}


def image_payload(image: Image | ImageRow | None, api_url: str) -> dict[str, Any] | None:
    """The image as a build carries it to the compute host, which downloads its data
    from ``url`` (under the image API's base URL ``api_url``) with the caller's token."""
    if image is None:
        return None
    return {"id": image.id, "name": image.name or "", "disk_format": image.disk_format or "raw",
            "container_format": image.container_format or "bare", "size": image.size or 0,
            "url": f"{api_url}/v2/images/{image.id}/file", "checksum": image.checksum,
            "properties": dict(image.properties),
            "os_hash_algo": image.os_hash_algo, "os_hash_value": image.os_hash_value}


class ConductorManager(MigrationTasks, ShelveTasks):
    """Handles the ``conductor`` topic."""

    def __init__(self, db: Database, cfg: Config, transport: Transport) -> None:
        self.db = db
        self.cfg = cfg
        self.transport = transport
        self.scheduler = SchedulerClient(transport)
        self.default_network = cfg.network.name
        self.image_api_url = image_api_url(cfg)
        #: Hosts with failed builds the scheduler counts (BuildFailureWeigher): only a
        #: success on one of these needs telling, to start its count over.
        self._failing_hosts: set[str] = set()
        #: Instances a task of this conductor is scheduling or failing right now (the
        #: reconciliation leaves them alone).
        self.in_flight: set[str] = set()
        #: Each database outage or lost broker connection that ended, for watch_builds:
        #: (when it started, the fault to record, seconds to wait before reconciling).
        self._outages_send, self._outages = trio.open_memory_channel[
            tuple[float, str, float]](16)
        db.on_recovered.append(self._outage_over)
        transport.on_reconnected.append(self._bus_back)

    def compute(self, host: str) -> ComputeClient:
        """The client of the compute host ``host``."""
        return ComputeClient(self.transport, host)

    # -- builds ----------------------------------------------------------------
    @rpc.method
    async def schedule_and_build(self, context: RequestContext, instance_uuid: str,
                                     spec: dict[str, Any], tried: list[str] | None = None,
                                     networks: str = "auto", last_error: str = "") -> None:
        self.in_flight.add(instance_uuid)
        try:
            await self._schedule_and_build(context, instance_uuid, spec, tried, networks,
                                           last_error)
        finally:
            self.in_flight.discard(instance_uuid)

    async def _schedule_and_build(self, context: RequestContext, instance_uuid: str,
                                  spec: dict[str, Any], tried: list[str] | None,
                                  networks: str, last_error: str) -> None:
        tried = list(tried or [])
        attempt = len(tried) + 1
        if attempt > self.cfg.scheduler.max_attempts:
            await self._build_error(instance_uuid, context,
                                    f"Exceeded maximum number of retries. Exhausted all hosts "
                                    f"available for retrying build failures for instance "
                                    f"{instance_uuid}. Last error: {last_error}", None)
            return
        spec = {**spec, "ignore_hosts": tried}
        try:
            [dest] = await self.scheduler.select_destinations(context, [spec], persist=False)
        except NoValidHost as exc:
            message = f"{exc.message} Last build error: {last_error}" if tried else exc.message
            await self._build_error(instance_uuid, context, message, None)
            return
        except Exception as exc:  # the scheduler failed: the server must not stay BUILD
            await self._build_error(instance_uuid, context, _describe(exc), None)
            return
        try:
            await self._build_on(context, instance_uuid, spec, dest, tried, networks)
        except Exception as exc:  # its claim is released; the server must not stay BUILD
            log.exception("build failed before reaching its host", instance=instance_uuid)
            await self._build_error(instance_uuid, context, f"{type(exc).__name__}: {exc}",
                                    None)

    @rpc.method
    async def schedule_and_build_instances(self, context: RequestContext,
                                           builds: list[dict[str, Any]],
                                           networks: str = "auto") -> None:
        """Place a multi-create with one scheduler call, all or none, then build each."""
        uuids = {b["instance_uuid"] for b in builds}
        self.in_flight |= uuids
        try:
            await self._schedule_and_build_instances(context, builds, networks)
        finally:
            self.in_flight -= uuids

    async def _schedule_and_build_instances(self, context: RequestContext,
                                            builds: list[dict[str, Any]],
                                            networks: str) -> None:
        specs = [{**b["spec"], "ignore_hosts": []} for b in builds]
        try:
            dests = await self.scheduler.select_destinations(context, specs, persist=False)
        except Exception as exc:
            message = exc.message if isinstance(exc, NoValidHost) else _describe(exc)
            for b in builds:
                await self._build_error(b["instance_uuid"], context, message, None)
            return
        for spec, dest in zip(specs, dests, strict=True):
            try:
                await self._build_on(context, spec["instance_uuid"], spec, dest, [], networks)
            except Exception as exc:  # this one's claim is released; the others go on
                log.exception("build failed before reaching its host",
                              instance=spec["instance_uuid"])
                await self._build_error(spec["instance_uuid"], context,
                                        f"{type(exc).__name__}: {exc}", None)

    async def _build_on(self, context: RequestContext, instance_uuid: str,
                        spec: dict[str, Any], dest: dict[str, Any], tried: list[str],
                        networks: str) -> None:
        """Record the scheduler's choice (host and allocation) and cast the build there."""
        host = dest["host"]

        def work(s: Session
                 ) -> tuple[InstanceRow, ImageRow | None, list[ImageRow | None]] | None:
            row = queries.instance(s, instance_uuid)
            if row is None or row["deleted"] or row["task_state"] == states.DELETING \
                    or row["vm_state"] != states.BUILDING:  # deleted, or reconciled to ERROR
                return None
            # The scheduler claimed in memory; the claim's row lands with the host choice.
            queries.put_allocation(s, dest["allocation"])
            changes: dict[str, Any] = {"host": host, "node": host,
                                       "task_state": states.NETWORKING, "updated_at": utcnow()}
            if not row["addresses"] and networks != "none":
                changes["addresses"] = network_ports.allocate_for_instance(
                    s, row, networks, spec, host, self.default_network)
            pushes[:] = network_ports.bind_to(s, instance_uuid, host)
            queries.update_instance(s, instance_uuid, changes)
            image = queries.image(s, row["image_ref"])
            extras = []
            if image is not None:
                for key in ("kernel_id", "ramdisk_id"):
                    extras.append(queries.image(s, image.properties.get(key)))
            return InstanceRow({**row, **changes}), image, extras

        pushes: list[tuple[str, str, list[dict[str, Any]]]] = []
        try:  # while the database is unavailable the claim waits, then the build goes on
            found = await self._patiently(lambda: self.db.write(work))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.scheduler.release(context, instance_uuid)
            raise
        if found is None:  # deleted while scheduling
            await self._patiently(lambda: self.scheduler.release(context, instance_uuid))
            return
        inst, image, extras = found
        await self.push_port_security(context, pushes)
        images = spec.get("glance_images") or {  # an external Glance's, or our own records
            "image": image_payload(image, self.image_api_url),
            "kernel": image_payload(extras[0], self.image_api_url) if extras else None,
            "ramdisk": image_payload(extras[1], self.image_api_url) if len(extras) > 1
            else None}
        await self.compute(host).build_and_run_instance(
            context, instance_payload(inst), images["image"], images["kernel"],
            images["ramdisk"], spec, tried + [host], networks)

    async def push_port_security(self, context: RequestContext,
                                 pushes: list[tuple[str, str, list[dict[str, Any]]]]) -> None:
        """Cast each port's new rules to its compute host (a security group's members
        changed: a port joined or left it)."""
        for host, port_id, rules in pushes:
            try:
                await self.compute(host).update_port_security(context, port_id, rules)
            except rpc.UnknownTopic:
                log.warning("port security not sent: compute host not served", host=host,
                            port=port_id)

    @rpc.method
    async def build_failed(self, context: RequestContext, instance_uuid: str, host: str,
                           reason: str, spec: dict[str, Any], tried: list[str],
                           networks: str, reschedule: bool) -> None:
        self.in_flight.add(instance_uuid)
        try:
            await self._patiently(lambda: self.scheduler.release(context, instance_uuid))
            self._failing_hosts.add(host)
            await self.scheduler.build_result(context, host, success=False)
            await self._fault(instance_uuid, reason, host, "")
            if reschedule:
                log.info("rescheduling build", instance=instance_uuid, failed_host=host,
                         reason=reason)
                await self._schedule_and_build(context, instance_uuid, spec, tried, networks,
                                               last_error=reason)
            else:
                await self._build_error(instance_uuid, context, reason, host)
        finally:
            self.in_flight.discard(instance_uuid)

    async def _build_error(self, uuid: str, context: RequestContext, message: str,
                           host: str | None) -> None:
        log.warning("build failed", instance=uuid, reason=message)

        def work(s: Session) -> None:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            if inst is None or inst.deleted:
                return
            inst.vm_state, inst.task_state = states.ERROR, None
            inst.updated_at = utcnow()
            s.add(inst)
            s.add(InstanceFault(instance_uuid=uuid, code=500, message=message[:255],
                                details=message, host=host))
            queries.record_event(s, uuid, context.request_id,
                                 "conductor_schedule_and_build_instances", host,
                                 result="Error", details=message)

        await self._patiently(lambda: self.db.write(work))

    async def _fault(self, uuid: str, message: str, host: str | None, details: str,
                     patience: float = RECORD_PATIENCE) -> None:
        await self._patiently(lambda: self.db.write(lambda s: s.add(InstanceFault(
            instance_uuid=uuid, code=500, message=message[:255], details=details or message,
            host=host))), patience)

    async def _patiently(self, step: Callable[[], Awaitable[T]],
                         patience: float = RECORD_PATIENCE) -> T:
        """``step()``, tried again while the database is unavailable (up to
        :data:`RECORD_PATIENCE` seconds): what a build records must not be lost to an
        outage the database layer's own retries did not ride out."""
        deadline = time.monotonic() + patience
        delay = 0.5
        while True:
            try:
                return await step()
            except DatabaseUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("database unavailable; trying again", delay=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- reconciliation (novalite.conductor.recovery) --------------------------------
    def _outage_over(self, started: float) -> None:
        try:
            self._outages_send.send_nowait((started, recovery.LOST_IN_OUTAGE, 0.0))
        except trio.WouldBlock:  # one pending reconciliation covers them all
            pass

    def _bus_back(self, lost: float) -> None:
        """The broker connection is back: a build cast to this topic before a broker
        restart is gone with its queue. After :data:`BUS_GRACE` (what the broker kept is
        redelivered and taken by then), hostless builds from before the loss that no
        conductor task carries go to ERROR, as after a database outage."""
        try:
            self._outages_send.send_nowait((lost, recovery.LOST_ON_BUS, BUS_GRACE))
        except trio.WouldBlock:
            pass

    async def watch_builds(self) -> None:
        """Until cancelled: every ``[compute] build_check_interval`` seconds, builds older
        than ``instance_build_timeout`` go to ERROR; after a database outage, at once,
        the builds it stranded before they were scheduled."""
        timeout = self.cfg.compute.instance_build_timeout
        while True:
            outage: tuple[float, str, float] | None = None
            with trio.move_on_after(self.cfg.compute.build_check_interval):
                outage = await self._outages.receive()
            try:
                if outage is not None:
                    started, message, grace = outage
                    await trio.sleep(grace)
                    await self._fail_stuck(older_than=recovery.as_utc(started),
                                           message=message, hostless_only=True)
                    if message == recovery.LOST_ON_BUS:
                        await self._settle_lost_casts(
                            before=utcnow() - dt.timedelta(seconds=grace))
                if timeout > 0:
                    await self._fail_stuck(
                        older_than=utcnow() - dt.timedelta(seconds=timeout),
                        message=recovery.BUILD_TIMED_OUT)
            except DatabaseUnavailable:
                log.warning("build check skipped: the database is unavailable")
            except Exception:
                log.exception("build check failed")

    async def finish_interrupted_detaches(self) -> None:
        """The detaches the start's reconciliation left, finished by their compute
        hosts (:func:`novalite.conductor.recovery.finish_interrupted_detaches`)."""
        try:
            await recovery.finish_interrupted_detaches(self.db, self.compute)
        except Exception:
            log.exception("interrupted detaches not finished; an admin can force-detach")

    async def _settle_lost_casts(self, before: dt.datetime) -> None:
        """The broker came back without its queues: a build or a single-host operation
        cast to a compute host before then may be gone. Each host with such instances
        is asked which it is still working on (while it reconnects, again every 2 s,
        for up to twice ``service_down_time``; a host that stays away settles them
        itself when it starts and adopts its guests); the others are settled
        (:func:`novalite.conductor.recovery.settle_lost_operations`), and a lost
        delete is sent again."""
        pending = await recovery.operations_maybe_lost(self.db, before)
        context = RequestContext.system()
        deadline = time.monotonic() + 2 * self.cfg.compute.service_down_time
        while pending:
            for host, uuids in list(pending.items()):
                try:
                    busy = await self.compute(host).operations_in_flight(context, uuids)
                except (BusError, RemoteError):
                    continue
                del pending[host]
                done = await recovery.settle_lost_operations(
                    self.db, host, set(uuids) - set(busy), before)
                for uuid in done.failed:
                    await self.scheduler.release(context, uuid)
                for uuid in done.deleted:
                    await self.compute(host).terminate_instance(context, uuid)
            if not pending or time.monotonic() > deadline:
                break
            await trio.sleep(2.0)
        if pending:
            log.warning("hosts did not answer after the broker came back; their own start "
                        "settles their instances", hosts=sorted(pending))

    async def watch_soft_deleted(self) -> None:
        """Until cancelled: reclaim servers soft-deleted longer than ``[DEFAULT]
        reclaim_instance_interval`` (novalite.conductor.reclaim; returns at once when 0)."""
        from novalite.conductor.reclaim import watch_soft_deleted

        await watch_soft_deleted(self.db, self.transport,
                                 self.cfg.DEFAULT.reclaim_instance_interval)

    async def _fail_stuck(self, **kwargs: Any) -> None:
        failed = await recovery.fail_stuck_builds(self.db, in_flight=self.in_flight, **kwargs)
        context = RequestContext.system()
        for uuid in failed:
            await self.scheduler.release(context, uuid)

    # -- instance records for compute --------------------------------------------
    @rpc.method
    async def instance_update(self, context: RequestContext, uuid: str,
                                  values: dict[str, Any],
                                  expected_task_state: list[str | None] | None = None,
                                  event: dict[str, Any] | None = None,
                                  ) -> dict[str, Any] | None:
        """Set ``values`` on the record; ``event`` (as for ``action_event``: ``event``,
        ``host``, ``phase``, ``result``, ``details``) is recorded in the same transaction.

        Returns the instance's state after the change (``uuid``, ``vm_state``,
        ``task_state``, ``power_state``, ``deleted``, ``metadata``), None if there is
        no such instance; with ``expected_task_state`` given and not met, nothing
        changes and the state is returned as it is."""
        request_id = context.request_id
        built_on: list[str] = []

        def work(s: Session) -> dict[str, Any] | None:
            # Statements on the table, not the ORM: the hottest write of every boot.
            built_on.clear()
            row = queries.instance_state(s, uuid)
            if row is None:
                return None
            if event is not None:
                queries.record_event(s, uuid, request_id, **event)
                if event.get("event") == "compute_build_and_run_instance" \
                        and event.get("result") == "Success" and event.get("host"):
                    built_on.append(event["host"])
            if expected_task_state is not None and row["task_state"] not in expected_task_state:
                return _state(row)
            changes: dict[str, Any] = {}
            for key, value in values.items():
                if key in ("launched_at", "terminated_at") and value == "now":
                    value = utcnow()
                changes["metadata" if key == "metadata_" else key] = value
            changes["updated_at"] = utcnow()
            queries.update_instance(s, uuid, changes)
            return _state({**row, **changes})

        result = await self._patiently(lambda: self.db.write(work), CALL_PATIENCE)
        for host in built_on:  # a build succeeded: the host's failure count starts over
            if host in self._failing_hosts:
                self._failing_hosts.discard(host)
                await self.scheduler.build_result(context, host, success=True)
        return result

    @rpc.method
    async def instance_get(self, context: RequestContext, uuid: str) -> dict[str, Any] | None:
        def work(s: Session) -> dict[str, Any] | None:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            return instance_payload(inst) if inst else None

        return await self.db.read(work)

    @rpc.method
    async def image_payloads(self, context: RequestContext, image_id: str) -> dict[str, Any]:
        """An image with its kernel and ramdisk, as a build carries them (rebuild, rescue)."""
        def work(s: Session) -> dict[str, Any]:
            image = queries.image(s, image_id)
            extras = [queries.image(s, image.properties.get(key)) if image is not None
                      else None for key in ("kernel_id", "ramdisk_id")]
            return {"image": image_payload(image, self.image_api_url),
                    "kernel": image_payload(extras[0], self.image_api_url),
                    "ramdisk": image_payload(extras[1], self.image_api_url)}

        return await self.db.read(work)

    @rpc.method
    async def instances_on_host(self, context: RequestContext, host: str,
                                brief: bool = False) -> list[dict[str, Any]]:
        """The host's live instances; ``brief``: only the state columns power sync needs."""

        def work(s: Session) -> list[dict[str, Any]]:
            if brief:
                brief_rows = s.exec(select(col(Instance.uuid), col(Instance.vm_state),
                                           col(Instance.task_state), col(Instance.power_state))
                                    .where(Instance.host == host, Instance.deleted == 0)).all()
                return [dict(zip(("uuid", "vm_state", "task_state", "power_state"), r,
                                 strict=True)) for r in brief_rows]
            rows = s.exec(select(Instance).where(Instance.host == host,
                                                 Instance.deleted == 0)).all()
            return [instance_payload(i) for i in rows]

        return await self.db.read(work)

    @rpc.method
    async def instance_destroyed(self, context: RequestContext, uuid: str,
                                 host: str | None) -> None:
        """The guest is gone: soft-delete the record, free its address and its claim."""

        def work(s: Session) -> None:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            if inst is None:
                return
            pushes[:] = network_ports.release_instance(s, uuid)
            if not inst.deleted:
                now = utcnow()
                inst.vm_state, inst.task_state = states.DELETED, None
                inst.power_state = 0
                inst.terminated_at = inst.deleted_at = inst.updated_at = now
                inst.deleted = inst.id or 1
                s.add(inst)
            queries.record_event(s, uuid, context.request_id,
                                 "compute_terminate_instance", host, result="Success")

        pushes: list[tuple[str, str, list[dict[str, Any]]]] = []
        await self._patiently(lambda: self.db.write(work), CALL_PATIENCE)
        await self.push_port_security(context, pushes)
        await self.scheduler.release(context, uuid)

    @rpc.method
    async def action_event(self, context: RequestContext, uuid: str, event: str,
                           host: str | None, result: str | None = None,
                           details: str | None = None, phase: str = "finish") -> None:
        request_id = context.request_id

        await self._patiently(lambda: self.db.write(lambda s: queries.record_event(
            s, uuid, request_id, event, host, phase, result, details)), CALL_PATIENCE)

    @rpc.method
    async def instance_fault(self, context: RequestContext, uuid: str, message: str,
                             host: str | None, details: str = "") -> None:
        await self._fault(uuid, message, host, details, CALL_PATIENCE)

    # -- hosts -------------------------------------------------------------------
    @rpc.method
    async def service_report(self, context: RequestContext, host: str, binary: str,
                             availability_zone: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            svc = s.exec(select(Service).where(Service.host == host,
                                               Service.binary == binary)).first()
            if svc is None:
                svc = Service(host=host, binary=binary, topic=binary.removeprefix("nova-"),
                              availability_zone=availability_zone)
            svc.report_count += 1
            svc.updated_at = utcnow()
            svc.availability_zone = availability_zone
            s.add(svc)
            return {"disabled": svc.disabled, "forced_down": svc.forced_down}

        result = await self.db.write(work)
        if binary == "nova-compute":
            await self.scheduler.host_update(
                context, host, heartbeat=True,
                disabled=result["disabled"] or result["forced_down"],
                availability_zone=availability_zone)
        return result

    # -- hosts, batched (novalite.compute.host.fleet: thousands of hosts in one process) -----
    @rpc.method
    async def service_report_many(self, context: RequestContext,
                                  reports: list[dict[str, Any]]) -> None:
        """The heartbeats of many hosts in one transaction (bulk updates, no row objects)."""
        now = utcnow()

        def work(s: Session) -> dict[str, tuple[bool, bool]]:
            known = {row[0] for row in s.execute(
                sa_select(col(Service.host)).where(col(Service.binary) == "nova-compute"))}
            by_zone: dict[tuple[str, str], list[str]] = {}
            for r in reports:
                if r["host"] in known:
                    by_zone.setdefault((r["binary"], r["availability_zone"]), []).append(
                        r["host"])
                else:
                    s.add(Service(host=r["host"], binary=r["binary"],
                                  topic=r["binary"].removeprefix("nova-"), report_count=1,
                                  availability_zone=r["availability_zone"], updated_at=now))
            for (binary, zone), hosts in by_zone.items():
                for i in range(0, len(hosts), 500):
                    s.execute(sa_update(Service).where(
                        col(Service.binary) == binary,
                        col(Service.host).in_(hosts[i:i + 500]))
                        .values(report_count=Service.report_count + 1, updated_at=now,
                                availability_zone=zone))
            s.flush()
            return {h: (bool(d), bool(f)) for h, d, f in s.execute(
                sa_select(col(Service.host), col(Service.disabled), col(Service.forced_down))
                .where(col(Service.binary) == "nova-compute"))}

        flags = await self.db.write(work)
        updates = [{"host": r["host"], "heartbeat": True,
                    "disabled": any(flags.get(r["host"], (False, False))),
                    "availability_zone": r["availability_zone"]}
                   for r in reports if r["binary"] == "nova-compute"]
        if updates:
            await self.scheduler.hosts_update(context, updates)

    @rpc.method
    async def compute_node_update_many(self, context: RequestContext,
                                       nodes: list[dict[str, Any]]) -> None:
        """Many hosts' capacity reports (``host``, ``resources``) in one transaction."""

        def work(s: Session) -> None:
            hosts = [n["host"] for n in nodes]
            existing: dict[str, ComputeNode] = {}
            for i in range(0, len(hosts), 500):
                for node in s.exec(select(ComputeNode).where(
                        ComputeNode.host.in_(hosts[i:i + 500]))).all():  # type: ignore[attr-defined]
                    existing[node.host] = node
            for item in nodes:
                r = item["resources"]
                node = existing.get(item["host"]) or ComputeNode(
                    host=item["host"], hypervisor_hostname=r["hypervisor_hostname"],
                    hypervisor_type=r["hypervisor_type"])
                for key in ("hypervisor_hostname", "hypervisor_type", "hypervisor_version",
                            "vcpus", "memory_mb", "local_gb", "cpu_info",
                            "supported_instances"):
                    setattr(node, key, r[key])
                node.capabilities = r.get("capabilities")
                node.updated_at = utcnow()
                s.add(node)

        await self.db.write(work)
        await self.scheduler.hosts_update(context, [
            {"host": n["host"], "resources": n["resources"]} for n in nodes])

    @rpc.method
    async def instances_on_hosts(self, context: RequestContext, hosts: list[str],
                                 brief: bool = False) -> dict[str, list[dict[str, Any]]]:
        """Live instances of many hosts by host (``brief``: the power-sync columns)."""
        wanted = set(hosts)

        def work(s: Session) -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = {}
            if brief:
                for host, *rest in s.execute(sa_select(
                        col(Instance.host), col(Instance.uuid), col(Instance.vm_state),
                        col(Instance.task_state), col(Instance.power_state)).where(
                        col(Instance.host).is_not(None), col(Instance.deleted) == 0)):
                    if host in wanted:
                        out.setdefault(host, []).append(dict(zip(
                            ("uuid", "vm_state", "task_state", "power_state"), rest,
                            strict=True)))
                return out
            for inst in s.exec(select(Instance).where(Instance.host.is_not(None),  # type: ignore[union-attr]
                                                      Instance.deleted == 0)).all():
                if inst.host in wanted:
                    out.setdefault(inst.host, []).append(instance_payload(inst))
            return out

        return await self.db.read(work)

    @rpc.method
    async def compute_node_update(self, context: RequestContext, host: str,
                                  resources: dict[str, Any]) -> None:
        def work(s: Session) -> None:
            node = s.exec(select(ComputeNode).where(ComputeNode.host == host)).first()
            if node is None:
                node = ComputeNode(host=host, hypervisor_hostname=resources["hypervisor_hostname"],
                                   hypervisor_type=resources["hypervisor_type"])
            for key in ("hypervisor_hostname", "hypervisor_type", "hypervisor_version", "vcpus",
                        "memory_mb", "local_gb", "cpu_info", "supported_instances"):
                setattr(node, key, resources[key])
            node.capabilities = resources.get("capabilities")
            node.updated_at = utcnow()
            s.add(node)

        await self.db.write(work)
        await self.scheduler.host_update(context, host, resources=resources)


def _describe(exc: Exception) -> str:
    """An error of another actor as a fault message: ``Type: message``."""
    return str(exc) if isinstance(exc, rpc.RemoteError) else f"{type(exc).__name__}: {exc}"


__all__ = ["ConductorManager", "image_payload", "instance_payload"]
