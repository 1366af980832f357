"""``/os-hypervisors``: the compute nodes, their resources and usage (Nova's
``hypervisors.py``): paging from 2.33; from 2.53 uuids for ids, the hostname
search and the servers as query parameters (the ``/search``, ``/servers`` routes
are gone), unknown query parameters refused; from 2.88 no statistics, no
``/uptime`` and no resource figures, ``uptime`` in the detail instead."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from novalite.api import query
from novalite.api.framework import ApiCall, Router
from novalite.compute.hosts import NotImplementedByHost
from novalite.db.models import ComputeNode, Instance, Service
from novalite.exceptions import BadRequest, NotFound

router = Router()
RULE = "os_compute_api:os-hypervisors:"
_GONE = "The resource could not be found."
_PAGING = {"limit": query.NON_NEGATIVE_INT, "marker": query.ANY}
_FQDN = {"type": "string", "minLength": 1, "maxLength": 255}
_BOOL_ONE = query.single(query.BOOLEAN["items"])
_INDEX_V253 = {"limit": query.single(query.NON_NEGATIVE_INT["items"]),
               "marker": query.single({"type": "string"}),
               "hypervisor_hostname_pattern": query.single(_FQDN),
               "with_servers": _BOOL_ONE}
_SHOW_V253 = {"with_servers": _BOOL_ONE}

Node = tuple[ComputeNode, Service | None]


def hypervisor_view(call: ApiCall, node: ComputeNode, svc: Service | None,
                    used: dict[str, int], detail: bool,
                    servers: list[Instance] | None = None) -> dict[str, Any]:
    up = svc is not None and call.services.hosts.is_up(svc)
    body: dict[str, Any] = {
        "id": node.uuid if call.mv("2.53") else node.id,
        "hypervisor_hostname": node.hypervisor_hostname,
        "state": "up" if up else "down",
        "status": "disabled" if svc is not None and svc.disabled else "enabled",
    }
    if detail:
        body.update({"hypervisor_type": node.hypervisor_type,
                     "hypervisor_version": node.hypervisor_version, "host_ip": node.host_ip,
                     "service": {"host": node.host,
                                 "id": (svc.uuid if call.mv("2.53") else svc.id)
                                 if svc else None,
                                 "disabled_reason": svc.disabled_reason if svc else None}})
    if detail and not call.mv("2.88"):
        vcpus_used = used.get("vcpus_used", 0)
        mem_used = used.get("memory_mb_used", 0)
        disk_used = used.get("disk_gb_used", 0)
        body.update({
            "vcpus": node.vcpus, "memory_mb": node.memory_mb, "local_gb": node.local_gb,
            "vcpus_used": vcpus_used, "memory_mb_used": mem_used, "local_gb_used": disk_used,
            "free_ram_mb": node.memory_mb - mem_used, "free_disk_gb": node.local_gb - disk_used,
            "current_workload": 0, "running_vms": used.get("running_vms", 0),
            "disk_available_least": node.local_gb - disk_used,
            "cpu_info": node.cpu_info if call.mv("2.28") else json.dumps(node.cpu_info)})
    if detail and call.mv("2.88"):
        try:
            body["uptime"] = call.services.hosts.uptime(node.host)
        except NotImplementedByHost:
            body["uptime"] = None
    if servers:
        body["servers"] = [{"name": f"instance-{i.id or 0:08x}", "uuid": i.uuid}
                           for i in servers]
    elif servers is not None and call.mv("2.75"):
        body["servers"] = []
    return body


async def _nodes(call: ApiCall, pattern: str | None = None) -> list[Node]:
    nodes = await call.services.hosts.hypervisors()
    if pattern is None:
        return nodes
    found = [(n, s) for n, s in nodes if pattern in n.hypervisor_hostname]
    if not found:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return found


async def _list(call: ApiCall, detail: bool) -> dict[str, Any]:
    if call.mv("2.53"):
        params = query.validate(call, _INDEX_V253, strict=True)
    else:
        params = query.validate(call, _PAGING if call.mv("2.33") else {}, strict=False)
    limit_text, marker = query.last(params, "limit"), query.last(params, "marker")
    pattern = query.last(params, "hypervisor_hostname_pattern")
    with_servers = query.truthy(query.last(params, "with_servers"))
    if pattern is not None and (limit_text is not None or marker):
        raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query "
                         "parameter is not supported.")
    nodes = await _nodes(call, pattern)
    if marker:
        ids = [n.uuid if call.mv("2.53") else str(n.id) for n, _ in nodes]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        nodes = nodes[ids.index(marker) + 1:]
    limit = int(limit_text) if limit_text is not None else None
    if limit is not None:
        nodes = nodes[:limit]
    hosts = call.services.hosts
    usage = await hosts.usage() if detail else {}
    out: dict[str, Any] = {"hypervisors": [
        hypervisor_view(call, node, svc, usage.get(node.host, {}), detail,
                        await hosts.instances_on(node.host) if with_servers else None)
        for node, svc in nodes if svc is not None]}
    if call.mv("2.33") and pattern is None and limit and len(nodes) == limit:
        args = {k: v[-1] for k, v in params.items()}
        last = nodes[-1][0]
        args["marker"] = last.uuid if call.mv("2.53") else str(last.id)
        path = "os-hypervisors/detail" if detail else "os-hypervisors"
        out["hypervisors_links"] = [{"rel": "next", "href": f"{call.services.base_url}"
                                     f"/compute/v2.1/{path}?{urlencode(args)}"}]
    return out


@router.route("GET", "/v2.1/os-hypervisors", rule=RULE + "list")
async def list_hypervisors(call: ApiCall) -> dict[str, Any]:
    return await _list(call, False)


@router.route("GET", "/v2.1/os-hypervisors/detail", rule=RULE + "list-detail")
async def detail_hypervisors(call: ApiCall) -> dict[str, Any]:
    return await _list(call, True)


async def _find(call: ApiCall, hid: str) -> Node:
    """The node by id: a uuid from 2.53 (else 400), an integer before (else 404)."""
    if call.mv("2.53"):
        try:
            uuid.UUID(hid)
        except ValueError:
            raise BadRequest(f"Invalid uuid {hid}") from None
    elif not hid.lstrip("-").isdigit():
        raise NotFound(f"Hypervisor with ID '{hid}' could not be found.")
    for node, svc in await call.services.hosts.hypervisors():
        if hid == (node.uuid if call.mv("2.53") else str(node.id)) and svc is not None:
            return node, svc
    raise NotFound(f"Hypervisor with ID '{hid}' could not be found.")


@router.route("GET", "/v2.1/os-hypervisors/{hypervisor_id}", rule=RULE + "show")
async def show_hypervisor(call: ApiCall) -> dict[str, Any]:
    with_servers = False
    if call.mv("2.53"):
        params = query.validate(call, _SHOW_V253, strict=True)
        with_servers = query.truthy(query.last(params, "with_servers"))
    node, svc = await _find(call, call.params["hypervisor_id"])
    hosts = call.services.hosts
    usage = await hosts.usage()
    servers = await hosts.instances_on(node.host) if with_servers else None
    return {"hypervisor": hypervisor_view(call, node, svc, usage.get(node.host, {}), True,
                                          servers)}


@router.route("GET", "/v2.1/os-hypervisors/{hypervisor_id}/uptime", rule=RULE + "uptime")
async def hypervisor_uptime(call: ApiCall) -> dict[str, Any]:
    if call.mv("2.88"):
        raise NotFound(_GONE)
    node, svc = await _find(call, call.params["hypervisor_id"])
    uptime = call.services.hosts.uptime(node.host)
    return {"hypervisor": {**hypervisor_view(call, node, svc, {}, False), "uptime": uptime}}


@router.route("GET", "/v2.1/os-hypervisors/{pattern}/search", rule=RULE + "search")
async def search_hypervisors(call: ApiCall) -> dict[str, Any]:
    if call.mv("2.53"):
        raise NotFound(_GONE)
    return {"hypervisors": [hypervisor_view(call, n, s, {}, False)
                            for n, s in await _nodes(call, call.params["pattern"])
                            if s is not None]}


@router.route("GET", "/v2.1/os-hypervisors/{pattern}/servers", rule=RULE + "servers")
async def hypervisor_servers(call: ApiCall) -> dict[str, Any]:
    if call.mv("2.53"):
        raise NotFound(_GONE)
    hosts = call.services.hosts
    return {"hypervisors": [
        hypervisor_view(call, n, s, {}, False, await hosts.instances_on(n.host))
        for n, s in await _nodes(call, call.params["pattern"]) if s is not None]}


@router.route("GET", "/v2.1/os-hypervisors/statistics", rule=RULE + "statistics")
async def hypervisor_stats(call: ApiCall) -> dict[str, Any]:
    if call.mv("2.88"):
        raise NotFound(_GONE)
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
