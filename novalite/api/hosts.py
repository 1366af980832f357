"""``/os-hosts`` (Nova's ``hosts.py``, gone from 2.43): the hosts of the services, a
compute host's resources by project; enabling a host, its maintenance mode and its
power actions are answered as by libvirt's driver (not supported), after Nova's
checks of the body and the host."""

from __future__ import annotations

from typing import Any

from novalite.api import query, schemas
from novalite.api.framework import ApiCall, Router
from novalite.compute.hosts import NotImplementedByHost
from novalite.exceptions import NotFound

router = Router()
RULE = "os_compute_api:os-hosts:"
_STATES = ["enable", "disable", "Enable", "Disable", "ENABLE", "DISABLE"]
HOST_UPDATE = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": _STATES},
                   "maintenance_mode": {"type": "string", "enum": _STATES}},
    "anyOf": [{"required": ["status"]}, {"required": ["maintenance_mode"]}],
    "additionalProperties": False,
}


def _deprecated(call: ApiCall) -> None:
    if call.mv("2.43"):
        raise NotFound("The resource could not be found.")


async def _zones(call: ApiCall) -> dict[str, str]:
    found: Any = await call.services.compute.aggregates.zone_hosts()
    return {zh.host: zh.zone for zh in found}


@router.route("GET", "/v2.1/os-hosts", rule=RULE + "list")
async def list_hosts(call: ApiCall) -> dict[str, Any]:
    _deprecated(call)
    zone = query.last(query.validate(call, {"zone": query.ANY}, strict=False), "zone")
    zones = await _zones(call)
    hosts = []
    for svc in await call.services.hosts.services({}):
        if svc.disabled:
            continue
        svc_zone = zones.get(svc.host, svc.availability_zone) \
            if svc.binary == "nova-compute" else "internal"
        if zone and svc_zone != zone:
            continue
        hosts.append({"host_name": svc.host, "service": svc.topic, "zone": svc_zone})
    return {"hosts": hosts}


def _resource(host: str, project: str, cpu: int, memory_mb: int, disk_gb: int
              ) -> dict[str, Any]:
    return {"resource": {"host": host, "project": project, "cpu": cpu,
                         "memory_mb": memory_mb, "disk_gb": disk_gb}}


@router.route("GET", "/v2.1/os-hosts/{host}", rule=RULE + "show")
async def show_host(call: ApiCall) -> dict[str, Any]:
    _deprecated(call)
    host = call.params["host"]
    node, instances = await call.services.hosts.host_resources(host)
    used = (await call.services.hosts.usage()).get(host, {})
    out = [_resource(host, "(total)", node.vcpus, node.memory_mb, node.local_gb),
           _resource(host, "(used_now)", used.get("vcpus_used", 0),
                     used.get("memory_mb_used", 0), used.get("disk_gb_used", 0)),
           _resource(host, "(used_max)", sum(i.vcpus for i in instances),
                     sum(i.memory_mb for i in instances),
                     sum(i.root_gb + i.ephemeral_gb for i in instances))]
    by_project: dict[str, list[int]] = {}
    for inst in instances:
        totals = by_project.setdefault(inst.project_id, [0, 0, 0])
        totals[0] += inst.vcpus
        totals[1] += inst.memory_mb
        totals[2] += inst.root_gb + inst.ephemeral_gb
    out += [_resource(host, project, *totals) for project, totals in by_project.items()]
    return {"host": out}


async def _existing_compute_host(call: ApiCall, host: str) -> None:
    if not await call.services.hosts.services({"host": host, "binary": "nova-compute"}):
        raise NotFound(f"Compute host {host} could not be found.")


@router.route("PUT", "/v2.1/os-hosts/{host}", rule=RULE + "update")
async def update_host(call: ApiCall) -> dict[str, Any]:
    _deprecated(call)
    schemas.validate(call.body, HOST_UPDATE)
    await _existing_compute_host(call, call.params["host"])
    raise NotImplementedByHost("The requested functionality is not supported.")


async def _power_action(call: ApiCall) -> dict[str, Any]:
    _deprecated(call)
    await _existing_compute_host(call, call.params["host"])
    raise NotImplementedByHost("The requested functionality is not supported.")


@router.route("GET", "/v2.1/os-hosts/{host}/startup", rule=RULE + "start")
async def startup_host(call: ApiCall) -> dict[str, Any]:
    return await _power_action(call)


@router.route("GET", "/v2.1/os-hosts/{host}/shutdown", rule=RULE + "shutdown")
async def shutdown_host(call: ApiCall) -> dict[str, Any]:
    return await _power_action(call)


@router.route("GET", "/v2.1/os-hosts/{host}/reboot", rule=RULE + "reboot")
async def reboot_host(call: ApiCall) -> dict[str, Any]:
    return await _power_action(call)
