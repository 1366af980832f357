"""HTTP routes of the compute API v2.1, mounted at ``/compute``.

Each handler turns HTTP into a call on :class:`~novalite.compute.api.ComputeAPI`
or :class:`~novalite.compute.hosts.HostAPI` and the result into Nova's JSON.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from novalite.api import keypair_routes, quota_routes, scheduler_routes, schemas, views
from novalite.api.framework import (
    ApiCall,
    Authenticator,
    Reply,
    Version,
    guarded,
    make_route,
)
from novalite.compute.api import ComputeAPI
from novalite.compute.hosts import HostAPI, require_admin, service_time
from novalite.exceptions import BadRequest, NotFound

VERSION_UPDATED = "2013-07-23T11:33:21Z"




def routes(compute: ComputeAPI, hosts: HostAPI, authenticate: Authenticator,
           max_version: Version) -> list[Route]:
    base = compute.cfg.public_url

    def version_doc() -> dict[str, Any]:
        return {"id": "v2.1", "status": "CURRENT", "version": str(max_version),
                "min_version": "2.1", "updated": VERSION_UPDATED,
                "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}]}

    async def root(request: Request) -> Response:
        return JSONResponse({"versions": [version_doc()]})

    async def v21(request: Request) -> Response:
        return JSONResponse({"version": version_doc()})

    # -- servers -------------------------------------------------------------------
    async def list_servers(call: ApiCall) -> dict[str, Any]:
        records = await compute.list(call.ctx, dict(call.query),  # type: ignore[arg-type]
                                     strict_status=call.mv("2.38"))
        out: dict[str, Any] = {"servers": [views.server_brief(base, r) for r in records]}
        _next_link(call, out, "servers", [r.instance.uuid for r in records])
        return out

    async def detail_servers(call: ApiCall) -> dict[str, Any]:
        records = await compute.list(call.ctx, dict(call.query),  # type: ignore[arg-type]
                                     strict_status=call.mv("2.38"))
        out: dict[str, Any] = {"servers": [views.server_detail(call, base, r) for r in records]}
        _next_link(call, out, "servers/detail", [r.instance.uuid for r in records])
        return out

    def _next_link(call: ApiCall, out: dict[str, Any], path: str, ids: list[str]) -> None:
        limit = call.query.get("limit")
        if limit and ids and len(ids) >= int(limit):
            out["servers_links"] = [{"rel": "next", "href": f"{base}/compute/v2.1/{path}"
                                     f"?limit={limit}&marker={ids[-1]}"}]

    async def show_server(call: ApiCall) -> dict[str, Any]:
        record = await compute.get(call.ctx, call.params["server_id"])  # type: ignore[arg-type]
        return {"server": views.server_detail(call, base, record, show=True)}

    async def create_server(call: ApiCall) -> Reply:
        body = schemas.validate(call.body, schemas.SERVER_CREATE)
        server = body["server"]
        networks = server.get("networks")
        if networks is None:
            networks = "auto"  # friendlier than Nova's 400 (CLIENTS.md §4)
        elif isinstance(networks, list):
            networks = "auto" if networks else "none"
        hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
        instances, admin_pass = await compute.create(
            call.ctx, call.request_id, server, networks, hints)  # type: ignore[arg-type]
        if str(server.get("return_reservation_id", "")).lower() in ("true", "1"):
            return Reply(202, {"reservation_id": instances[0].reservation_id})
        first = instances[0]
        return Reply(202, {"server": {
            "id": first.uuid, "links": views.links(base, "servers", first.uuid),
            "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
            "adminPass": admin_pass}})

    async def update_server(call: ApiCall) -> dict[str, Any]:
        body = schemas.validate(call.body, schemas.SERVER_UPDATE)["server"]
        values = {k: v for k, v in body.items() if k in ("name", "description")}
        record = await compute.update(call.ctx, call.params["server_id"], values)  # type: ignore[arg-type]
        return {"server": views.server_detail(call, base, record, show=True)}

    async def delete_server(call: ApiCall) -> Reply:
        await compute.delete(call.ctx, call.request_id, call.params["server_id"])  # type: ignore[arg-type]
        return Reply(204)

    async def server_action(call: ApiCall) -> Any:
        body = call.body
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("Malformed request body: expected one action")
        name, args = next(iter(body.items()))
        sid = call.params["server_id"]
        ctx, rid = call.ctx, call.request_id
        if name == "reboot":
            rtype = (args or {}).get("type") if isinstance(args, dict) else None
            if not isinstance(rtype, str) or rtype.upper() not in ("SOFT", "HARD"):
                raise BadRequest(f"Invalid input for field/attribute type. Value: {rtype}. "
                                 "'type' must be one of 'HARD', 'SOFT'")
            rtype = rtype.upper()
            await compute.power_action(ctx, rid, sid, f"reboot_{rtype.lower()}", rtype)  # type: ignore[arg-type]
            return Reply(202)
        simple = {"os-stop": "stop", "os-start": "start", "pause": "pause",
                  "unpause": "unpause", "suspend": "suspend", "resume": "resume"}
        if name in simple:
            await compute.power_action(ctx, rid, sid, simple[name])  # type: ignore[arg-type]
            return Reply(202)
        if name in ("lock", "unlock"):
            reason = (args or {}).get("locked_reason") if isinstance(args, dict) else None
            await compute.set_lock(ctx, rid, sid, name == "lock", reason)  # type: ignore[arg-type]
            return Reply(202)
        if name == "createImage":
            if not isinstance(args, dict) or not isinstance(args.get("name"), str) \
                    or not args["name"].strip() or len(args["name"]) > 255:
                raise BadRequest("Invalid input for field/attribute name: createImage needs "
                                 "a 'name' of 1-255 characters")
            metadata = args.get("metadata") or {}
            if not isinstance(metadata, dict) or not all(
                    isinstance(v, str) for v in metadata.values()):
                raise BadRequest("Invalid input for field/attribute metadata: expected an "
                                 "object of strings")
            image_id = await compute.snapshot(ctx, rid, sid, args["name"], metadata)  # type: ignore[arg-type]
            if call.mv("2.45"):
                return Reply(202, {"image_id": image_id})
            return Reply(202, headers={"Location": f"{base}/image/v2/images/{image_id}"})
        if name == "os-getConsoleOutput":
            length = (args or {}).get("length") if isinstance(args, dict) else None
            if length is not None:
                try:
                    length = int(length)
                    if length < -1:
                        raise ValueError
                except (TypeError, ValueError):
                    raise BadRequest(f"Invalid input for field/attribute length. Value: "
                                     f"{length}. not a valid integer >= -1") from None
                if length == -1:
                    length = None
            output = await compute.console_output(ctx, sid, length)  # type: ignore[arg-type]
            return {"output": output}
        raise BadRequest(f"There is no such action: {name}")

    # -- instance actions --------------------------------------------------------------
    async def list_actions(call: ApiCall) -> dict[str, Any]:
        actions = await compute.actions(call.ctx, call.params["server_id"])  # type: ignore[arg-type]
        return {"instanceActions": [views.action_view(call, a) for a in actions]}

    async def show_action(call: ApiCall) -> dict[str, Any]:
        action, events = await compute.action_with_events(
            call.ctx, call.params["server_id"], call.params["request_id"])  # type: ignore[arg-type]
        return {"instanceAction": views.action_view(call, action, events)}

    # -- flavors -----------------------------------------------------------------------
    async def list_flavors(call: ApiCall) -> dict[str, Any]:
        found = await hosts.flavors(call.ctx, dict(call.query))  # type: ignore[arg-type]
        return {"flavors": [views.flavor_view(call, base, f, None, detail=False)
                            for f, _ in found]}

    async def detail_flavors(call: ApiCall) -> dict[str, Any]:
        found = await hosts.flavors(call.ctx, dict(call.query))  # type: ignore[arg-type]
        return {"flavors": [views.flavor_view(call, base, f, s) for f, s in found]}

    async def show_flavor(call: ApiCall) -> dict[str, Any]:
        flavor, specs = await compute.flavor(call.ctx, call.params["flavor_id"])  # type: ignore[arg-type]
        return {"flavor": views.flavor_view(call, base, flavor, specs)}

    async def create_flavor(call: ApiCall) -> dict[str, Any]:
        require_admin(call.ctx, "os_compute_api:os-flavor-manage:create")  # type: ignore[arg-type]
        body = schemas.validate(call.body, schemas.FLAVOR_CREATE)["flavor"]
        flavor, specs = await hosts.create_flavor(body)
        return {"flavor": views.flavor_view(call, base, flavor, specs)}

    async def delete_flavor(call: ApiCall) -> Reply:
        require_admin(call.ctx, "os_compute_api:os-flavor-manage:delete")  # type: ignore[arg-type]
        await hosts.delete_flavor(call.params["flavor_id"])
        return Reply(202)

    async def get_extra_specs(call: ApiCall) -> dict[str, Any]:
        _, specs = await compute.flavor(call.ctx, call.params["flavor_id"])  # type: ignore[arg-type]
        return {"extra_specs": specs}

    async def set_extra_specs(call: ApiCall) -> dict[str, Any]:
        require_admin(call.ctx, "os_compute_api:os-flavor-extra-specs:create")  # type: ignore[arg-type]
        specs = (call.body or {}).get("extra_specs") if isinstance(call.body, dict) else None
        if not isinstance(specs, dict) or not all(isinstance(v, str | int | float)
                                                  for v in specs.values()):
            raise BadRequest("Invalid input for field/attribute extra_specs: expected an "
                             "object of strings")
        flavor, _ = await compute.flavor(call.ctx, call.params["flavor_id"])  # type: ignore[arg-type]
        await hosts.set_extra_specs(flavor, {k: str(v) for k, v in specs.items()})
        return {"extra_specs": {k: str(v) for k, v in specs.items()}}

    async def delete_extra_spec(call: ApiCall) -> Reply:
        require_admin(call.ctx, "os_compute_api:os-flavor-extra-specs:delete")  # type: ignore[arg-type]
        flavor, _ = await compute.flavor(call.ctx, call.params["flavor_id"])  # type: ignore[arg-type]
        await hosts.delete_extra_spec(flavor, call.params["key"])
        return Reply(200)

    # -- services, hypervisors, zones, limits --------------------------------------------
    def service_view(call: ApiCall, svc: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": svc.uuid if call.mv("2.53") else svc.id, "binary": svc.binary,
            "host": svc.host, "zone": svc.availability_zone if svc.binary == "nova-compute"
            else "internal", "status": "disabled" if svc.disabled else "enabled",
            "state": "up" if hosts.is_up(svc) else "down",
            "updated_at": service_time(svc.updated_at), "disabled_reason": svc.disabled_reason,
        }
        if call.mv("2.11"):
            body["forced_down"] = svc.forced_down
        return body

    async def list_services(call: ApiCall) -> dict[str, Any]:
        require_admin(call.ctx, "os_compute_api:os-services:list")  # type: ignore[arg-type]
        found = await hosts.services(dict(call.query))
        return {"services": [service_view(call, s) for s in found]}

    async def update_service_legacy(call: ApiCall) -> dict[str, Any]:
        require_admin(call.ctx, "os_compute_api:os-services:update")  # type: ignore[arg-type]
        body = call.body if isinstance(call.body, dict) else {}
        action = call.params["action"]
        if not body.get("host") or not body.get("binary"):
            raise BadRequest("Invalid input: 'host' and 'binary' are required")
        values: dict[str, Any] = {}
        if action == "enable":
            values = {"disabled": False, "disabled_reason": None}
        elif action in ("disable", "disable-log-reason"):
            values = {"disabled": True, "disabled_reason": body.get("disabled_reason")}
        elif action == "force-down":
            values = {"forced_down": bool(body.get("forced_down"))}
        else:
            raise NotFound(f"Unknown action {action}")
        svc = await hosts.set_service({"host": body["host"], "binary": body["binary"]}, values)
        out = {"host": svc.host, "binary": svc.binary,
               "status": "disabled" if svc.disabled else "enabled"}
        if svc.disabled_reason and action == "disable-log-reason":
            out["disabled_reason"] = svc.disabled_reason
        return {"service": out}

    async def update_service(call: ApiCall) -> dict[str, Any]:
        if call.params["service_id"] in ("enable", "disable", "disable-log-reason",
                                         "force-down"):
            call.params["action"] = call.params["service_id"]
            return await update_service_legacy(call)
        require_admin(call.ctx, "os_compute_api:os-services:update")  # type: ignore[arg-type]
        body = call.body if isinstance(call.body, dict) else {}
        values: dict[str, Any] = {}
        if "status" in body:
            if body["status"] not in ("enabled", "disabled"):
                raise BadRequest(f"Invalid input for field/attribute status. Value: "
                                 f"{body['status']}. must be 'enabled' or 'disabled'")
            values["disabled"] = body["status"] == "disabled"
            values["disabled_reason"] = body.get("disabled_reason") if values["disabled"] else None
        if "forced_down" in body:
            values["forced_down"] = bool(body["forced_down"])
        if not values:
            raise BadRequest("No updates were requested: give status and/or forced_down")
        svc = await hosts.set_service({"id": call.params["service_id"]}, values)
        return {"service": service_view(call, svc)}

    async def list_hypervisors(call: ApiCall, detail: bool = False) -> dict[str, Any]:
        require_admin(call.ctx, "os_compute_api:os-hypervisors:list")  # type: ignore[arg-type]
        usage = await hosts.usage()
        out = []
        for node, svc in await hosts.hypervisors():
            out.append(_hypervisor(call, node, svc, usage.get(node.host, {}), detail))
        return {"hypervisors": out}

    async def detail_hypervisors(call: ApiCall) -> dict[str, Any]:
        return await list_hypervisors(call, True)

    async def show_hypervisor(call: ApiCall) -> dict[str, Any]:
        require_admin(call.ctx, "os_compute_api:os-hypervisors:show")  # type: ignore[arg-type]
        usage = await hosts.usage()
        hid = call.params["hypervisor_id"]
        for node, svc in await hosts.hypervisors():
            if hid in (node.uuid, str(node.id)):
                return {"hypervisor": _hypervisor(call, node, svc, usage.get(node.host, {}),
                                                  True)}
        raise NotFound(f"Hypervisor with ID '{hid}' could not be found.")

    def _hypervisor(call: ApiCall, node: Any, svc: Any, used: dict[str, int],
                    detail: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": node.uuid if call.mv("2.53") else node.id,
            "hypervisor_hostname": node.hypervisor_hostname,
            "state": "up" if svc is not None and hosts.is_up(svc) else "down",
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

    async def hypervisor_stats(call: ApiCall) -> dict[str, Any]:
        require_admin(call.ctx, "os_compute_api:os-hypervisors:statistics")  # type: ignore[arg-type]
        if call.mv("2.88"):
            raise NotFound("The resource could not be found.")
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

    kw: dict[str, Any] = {"authenticate": authenticate, "max_version": max_version}
    table = [
        ("/v2.1/servers", "GET", list_servers, "os_compute_api:servers:index"), ("/v2.1/servers", "POST", create_server, "os_compute_api:servers:create"),
        ("/v2.1/servers/detail", "GET", detail_servers, "os_compute_api:servers:detail"),
        ("/v2.1/servers/{server_id}", "GET", show_server, "os_compute_api:servers:show"),
        ("/v2.1/servers/{server_id}", "PUT", update_server, "os_compute_api:servers:update"),
        ("/v2.1/servers/{server_id}", "DELETE", delete_server, "os_compute_api:servers:delete"),
        ("/v2.1/servers/{server_id}/action", "POST", server_action, "os_compute_api:servers:action"),
        ("/v2.1/servers/{server_id}/os-instance-actions", "GET", list_actions, "os_compute_api:os-instance-actions:list"),
        ("/v2.1/servers/{server_id}/os-instance-actions/{request_id}", "GET", show_action, "os_compute_api:os-instance-actions:show"),
        ("/v2.1/flavors", "GET", list_flavors, "os_compute_api:flavors:index"), ("/v2.1/flavors", "POST", create_flavor, "os_compute_api:os-flavor-manage:create"),
        ("/v2.1/flavors/detail", "GET", detail_flavors, "os_compute_api:flavors:index"),
        ("/v2.1/flavors/{flavor_id}", "GET", show_flavor, "os_compute_api:flavors:index"),
        ("/v2.1/flavors/{flavor_id}", "DELETE", delete_flavor, "os_compute_api:os-flavor-manage:delete"),
        ("/v2.1/flavors/{flavor_id}/os-extra_specs", "GET", get_extra_specs, "os_compute_api:os-flavor-extra-specs:index"),
        ("/v2.1/flavors/{flavor_id}/os-extra_specs", "POST", set_extra_specs, "os_compute_api:os-flavor-extra-specs:create"),
        ("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", "DELETE", delete_extra_spec, "os_compute_api:os-flavor-extra-specs:delete"),
        ("/v2.1/os-services", "GET", list_services, "os_compute_api:os-services:list"),
        ("/v2.1/os-services/{service_id}", "PUT", update_service, "os_compute_api:os-services:update"),
        ("/v2.1/os-hypervisors", "GET", list_hypervisors, "os_compute_api:os-hypervisors:list"),
        ("/v2.1/os-hypervisors/detail", "GET", detail_hypervisors, "os_compute_api:os-hypervisors:list"),
        ("/v2.1/os-hypervisors/statistics", "GET", hypervisor_stats, "os_compute_api:os-hypervisors:statistics"),
        ("/v2.1/os-hypervisors/{hypervisor_id}", "GET", show_hypervisor, "os_compute_api:os-hypervisors:show"),
    ]
    out = [Route("/", root, methods=["GET"]), Route("/v2.1", v21, methods=["GET"]), Route("/v2.1/", v21, methods=["GET"])]
    table += keypair_routes.table(compute.keypairs) + quota_routes.table(compute.quotas)
    table += scheduler_routes.table(compute.groups, compute.aggregates, compute.cfg.compute.availability_zone)
    # Every route passes its policy rule (novalite.policy) before its handler runs.
    out += [make_route(path, method, guarded(rule, handler), **kw)
            for path, method, handler, rule in table]
    # novaclient may use URLs with the project id after v2.1 (CLIENTS.md §7).
    out += [make_route(path.replace("/v2.1/", "/v2.1/{project_id}/", 1), method,
                       guarded(rule, handler), **kw)
            for path, method, handler, rule in table]
    return out
