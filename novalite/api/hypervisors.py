"""``/os-hypervisors``: the compute nodes, their resources and usage (Nova's
``hypervisors.py``; the statistics are gone from 2.88)."""

from __future__ import annotations

from typing import Any

from novalite.api.framework import ApiCall, Router
from novalite.db.models import ComputeNode, Service
from novalite.exceptions import NotFound

router = Router()
RULE = "os_compute_api:os-hypervisors:"


def hypervisor_view(call: ApiCall, node: ComputeNode, svc: Service | None,
                    used: dict[str, int], detail: bool) -> dict[str, Any]:
    up = svc is not None and call.services.hosts.is_up(svc)
    body: dict[str, Any] = {
        "id": node.uuid if call.mv("2.53") else node.id,
        "hypervisor_hostname": node.hypervisor_hostname,
        "state": "up" if up else "down",
        "status": "disabled" if svc is not None and svc.disabled else "enabled",
    }
    if not detail:
        return body
    body.update({"hypervisor_type": node.hypervisor_type,
                 "hypervisor_version": node.hypervisor_version, "host_ip": node.host_ip,
                 "service": {"host": node.host,
                             "id": (svc.uuid if call.mv("2.53") else svc.id) if svc else None,
                             "disabled_reason": svc.disabled_reason if svc else None}})
    if not call.mv("2.88"):
        vcpus_used = used.get("vcpus_used", 0)
        mem_used = used.get("memory_mb_used", 0)
        disk_used = used.get("disk_gb_used", 0)
        body.update({
            "vcpus": node.vcpus, "memory_mb": node.memory_mb, "local_gb": node.local_gb,
            "vcpus_used": vcpus_used, "memory_mb_used": mem_used, "local_gb_used": disk_used,
            "free_ram_mb": node.memory_mb - mem_used, "free_disk_gb": node.local_gb - disk_used,
            "current_workload": 0, "running_vms": used.get("running_vms", 0),
            "disk_available_least": node.local_gb - disk_used,
            "cpu_info": node.cpu_info if call.mv("2.28") else str(node.cpu_info)})
    else:
        body["uptime"] = None
    return body


async def _list(call: ApiCall, detail: bool) -> dict[str, Any]:
    hosts = call.services.hosts
    usage = await hosts.usage()
    return {"hypervisors": [hypervisor_view(call, node, svc, usage.get(node.host, {}), detail)
                            for node, svc in await hosts.hypervisors()]}


@router.route("GET", "/v2.1/os-hypervisors", rule=RULE + "list")
async def list_hypervisors(call: ApiCall) -> dict[str, Any]:
    return await _list(call, False)


@router.route("GET", "/v2.1/os-hypervisors/detail", rule=RULE + "list")
async def detail_hypervisors(call: ApiCall) -> dict[str, Any]:
    return await _list(call, True)


@router.route("GET", "/v2.1/os-hypervisors/{hypervisor_id}", rule=RULE + "show")
async def show_hypervisor(call: ApiCall) -> dict[str, Any]:
    hosts = call.services.hosts
    usage = await hosts.usage()
    hid = call.params["hypervisor_id"]
    for node, svc in await hosts.hypervisors():
        if hid in (node.uuid, str(node.id)):
            return {"hypervisor": hypervisor_view(call, node, svc, usage.get(node.host, {}),
                                                  True)}
    raise NotFound(f"Hypervisor with ID '{hid}' could not be found.")


@router.route("GET", "/v2.1/os-hypervisors/statistics", rule=RULE + "statistics")
async def hypervisor_stats(call: ApiCall) -> dict[str, Any]:
    if call.mv("2.88"):
        raise NotFound("The resource could not be found.")
    hosts = call.services.hosts
    usage = await hosts.usage()
    nodes = await hosts.hypervisors()
    totals = {k: 0 for k in ("count", "vcpus", "memory_mb", "local_gb", "vcpus_used",
                             "memory_mb_used", "local_gb_used", "free_ram_mb",
                             "free_disk_gb", "current_workload", "running_vms",
                             "disk_available_least")}
    for node, _ in nodes:
        u = usage.get(node.host, {})
        totals["count"] += 1
        totals["vcpus"] += node.vcpus
        totals["memory_mb"] += node.memory_mb
        totals["local_gb"] += node.local_gb
        totals["vcpus_used"] += u.get("vcpus_used", 0)
        totals["memory_mb_used"] += u.get("memory_mb_used", 0)
        totals["local_gb_used"] += u.get("disk_gb_used", 0)
        totals["running_vms"] += u.get("running_vms", 0)
    totals["free_ram_mb"] = totals["memory_mb"] - totals["memory_mb_used"]
    totals["free_disk_gb"] = totals["local_gb"] - totals["local_gb_used"]
    totals["disk_available_least"] = totals["free_disk_gb"]
    return {"hypervisor_statistics": totals}
