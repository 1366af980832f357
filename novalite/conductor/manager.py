"""The conductor actor: builds (schedule, reschedule, fail) and all database work for compute.

Compute actors never touch the database (DESIGN.md boundary 1): they call the
conductor over the bus with plain data, and the conductor reads and writes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from sqlmodel import Session, select

from novalite import states
from novalite.bus import Bus, Message, RemoteError
from novalite.config import Config
from novalite.db.engine import Database
from novalite.db.models import (
    ComputeNode,
    Image,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    InstanceFault,
    Service,
    utcnow,
)
from novalite.network import Network

log = structlog.get_logger("novalite.conductor")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def instance_payload(inst: Instance) -> dict[str, Any]:
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
    }


def image_payload(image: Image | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {"id": image.id, "name": image.name or "", "disk_format": image.disk_format or "raw",
            "container_format": image.container_format or "bare", "size": image.size or 0,
            "path": image.path, "checksum": image.checksum, "properties": dict(image.properties)}


class ConductorManager:
    """Handles the ``conductor`` topic."""

    def __init__(self, db: Database, cfg: Config, bus: Bus) -> None:
        self.db = db
        self.cfg = cfg
        self.bus = bus
        self.network = Network(cfg.network.name, cfg.network.cidr)

    async def handle(self, msg: Message) -> Any:
        method = getattr(self, f"rpc_{msg.method}", None)
        if method is None:
            raise ValueError(f"conductor has no method {msg.method}")
        return await method(msg.context, **msg.args)

    # -- builds ----------------------------------------------------------------
    async def rpc_schedule_and_build(self, context: dict[str, Any], instance_uuid: str,
                                     spec: dict[str, Any], tried: list[str] | None = None,
                                     networks: str = "auto", last_error: str = "") -> None:
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
            dest = await self.bus.call("scheduler", "select_destinations", context, spec=spec)
        except RemoteError as exc:
            message = exc.message if exc.exc_type == "NoValidHost" else str(exc)
            if tried and exc.exc_type == "NoValidHost":
                message = f"{message} Last build error: {last_error}"
            await self._build_error(instance_uuid, context, message, None)
            return
        host = dest["host"]

        def work(s: Session) -> tuple[Instance, Image | None, list[Image | None]] | None:
            inst = s.exec(select(Instance).where(Instance.uuid == instance_uuid)).first()
            if inst is None or inst.deleted or inst.task_state == states.DELETING:
                return None
            inst.host, inst.node = host, host
            inst.task_state = states.NETWORKING
            if not inst.addresses and networks == "auto":
                inst.addresses = [self.network.allocate(s, instance_uuid)]
            inst.updated_at = utcnow()
            s.add(inst)
            image = s.get(Image, inst.image_ref)
            extras = []
            if image is not None:
                for key in ("kernel_id", "ramdisk_id"):
                    ref = image.properties.get(key)
                    extras.append(s.get(Image, ref) if ref else None)
            return inst, image, extras

        found = await self.db.write(work)
        if found is None:  # deleted while scheduling
            await self.bus.call("scheduler", "release", context, instance_uuid=instance_uuid)
            return
        inst, image, extras = found
        await self.bus.cast(f"compute.{host}", "build_and_run_instance", context,
                            instance=instance_payload(inst), image=image_payload(image),
                            kernel=image_payload(extras[0]) if extras else None,
                            ramdisk=image_payload(extras[1]) if len(extras) > 1 else None,
                            spec=spec, tried=tried + [host], networks=networks)

    async def rpc_build_failed(self, context: dict[str, Any], instance_uuid: str, host: str,
                               reason: str, spec: dict[str, Any], tried: list[str],
                               networks: str, reschedule: bool) -> None:
        await self.bus.call("scheduler", "release", context, instance_uuid=instance_uuid)
        await self._fault(instance_uuid, reason, host, "")
        if reschedule:
            log.info("rescheduling build", instance=instance_uuid, failed_host=host,
                     reason=reason)
            await self.rpc_schedule_and_build(context, instance_uuid, spec, tried, networks,
                                              last_error=reason)
        else:
            await self._build_error(instance_uuid, context, reason, host)

    async def _build_error(self, uuid: str, context: dict[str, Any], message: str,
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
            _event(s, uuid, context.get("request_id", ""), "conductor_schedule_and_build_instances",
                   host, "Error", message)

        await self.db.write(work)

    async def _fault(self, uuid: str, message: str, host: str | None, details: str) -> None:
        await self.db.write(lambda s: s.add(InstanceFault(
            instance_uuid=uuid, code=500, message=message[:255], details=details or message,
            host=host)))

    # -- instance records for compute --------------------------------------------
    async def rpc_instance_update(self, context: dict[str, Any], uuid: str,
                                  values: dict[str, Any],
                                  expected_task_state: list[str | None] | None = None
                                  ) -> dict[str, Any] | None:
        def work(s: Session) -> dict[str, Any] | None:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            if inst is None:
                return None
            if expected_task_state is not None and inst.task_state not in expected_task_state:
                return instance_payload(inst)
            for key, value in values.items():
                if key in ("launched_at", "terminated_at") and value == "now":
                    value = utcnow()
                setattr(inst, key, value)
            inst.updated_at = utcnow()
            s.add(inst)
            return instance_payload(inst)

        return await self.db.write(work)

    async def rpc_instance_get(self, context: dict[str, Any], uuid: str) -> dict[str, Any] | None:
        def work(s: Session) -> dict[str, Any] | None:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            return instance_payload(inst) if inst else None

        return await self.db.read(work)

    async def rpc_instances_on_host(self, context: dict[str, Any], host: str
                                    ) -> list[dict[str, Any]]:
        def work(s: Session) -> list[dict[str, Any]]:
            rows = s.exec(select(Instance).where(Instance.host == host,
                                                 Instance.deleted == 0)).all()
            return [instance_payload(i) for i in rows]

        return await self.db.read(work)

    async def rpc_instance_destroyed(self, context: dict[str, Any], uuid: str,
                                     host: str | None) -> None:
        """The guest is gone: soft-delete the record, free its address and its claim."""

        def work(s: Session) -> None:
            inst = s.exec(select(Instance).where(Instance.uuid == uuid)).first()
            if inst is None:
                return
            Network.release(s, uuid)
            if not inst.deleted:
                now = utcnow()
                inst.vm_state, inst.task_state = states.DELETED, None
                inst.power_state = 0
                inst.terminated_at = inst.deleted_at = inst.updated_at = now
                inst.deleted = inst.id or 1
                s.add(inst)
            _event(s, uuid, context.get("request_id", ""), "compute_terminate_instance", host,
                   "Success", None)

        await self.db.write(work)
        await self.bus.call("scheduler", "release", context, instance_uuid=uuid)

    async def rpc_action_event(self, context: dict[str, Any], uuid: str, event: str,
                               host: str | None, result: str | None = None,
                               details: str | None = None, phase: str = "finish") -> None:
        request_id = context.get("request_id", "")

        def work(s: Session) -> None:
            if phase == "start":
                action = _action(s, uuid, request_id)
                if action is not None:
                    s.add(InstanceActionEvent(action_id=action.id or 0, event=event, host=host))
            else:
                _event(s, uuid, request_id, event, host, result or "Success", details)

        await self.db.write(work)

    async def rpc_instance_fault(self, context: dict[str, Any], uuid: str, message: str,
                                 host: str | None, details: str = "") -> None:
        await self._fault(uuid, message, host, details)

    # -- hosts -------------------------------------------------------------------
    async def rpc_service_report(self, context: dict[str, Any], host: str, binary: str,
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
            await self.bus.cast("scheduler", "host_update", context, host=host, heartbeat=True,
                                disabled=result["disabled"] or result["forced_down"],
                                availability_zone=availability_zone)
        return result

    async def rpc_compute_node_update(self, context: dict[str, Any], host: str,
                                      resources: dict[str, Any]) -> None:
        def work(s: Session) -> None:
            node = s.exec(select(ComputeNode).where(ComputeNode.host == host)).first()
            if node is None:
                node = ComputeNode(host=host, hypervisor_hostname=resources["hypervisor_hostname"],
                                   hypervisor_type=resources["hypervisor_type"])
            for key in ("hypervisor_hostname", "hypervisor_type", "hypervisor_version", "vcpus",
                        "memory_mb", "local_gb", "cpu_info", "supported_instances"):
                setattr(node, key, resources[key])
            node.updated_at = utcnow()
            s.add(node)

        await self.db.write(work)
        await self.bus.cast("scheduler", "host_update", context, host=host, resources=resources)


def _action(s: Session, uuid: str, request_id: str) -> InstanceAction | None:
    return s.exec(select(InstanceAction).where(InstanceAction.instance_uuid == uuid,
                                               InstanceAction.request_id == request_id)).first()


def _event(s: Session, uuid: str, request_id: str, event: str, host: str | None, result: str,
           details: str | None) -> None:
    action = _action(s, uuid, request_id)
    if action is None:
        return
    row = s.exec(select(InstanceActionEvent).where(
        InstanceActionEvent.action_id == action.id, InstanceActionEvent.event == event,
        InstanceActionEvent.finish_time.is_(None))).first()  # type: ignore[union-attr]
    now = utcnow()
    if row is None:
        row = InstanceActionEvent(action_id=action.id or 0, event=event, start_time=now,
                                  host=host)
    row.finish_time = now
    row.result = result
    if result == "Error":
        row.traceback = details
        action.message = "Error"
        s.add(action)
    row.details = details if result == "Error" else None
    action.updated_at = now
    s.add(row)


__all__ = ["ConductorManager", "image_payload", "instance_payload"]
