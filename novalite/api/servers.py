"""``/servers``: list, show, create, update and delete (Nova's ``servers.py``).

The actions posted to ``/servers/{id}/action`` are in
:mod:`novalite.api.server_actions`; a server's history in
:mod:`novalite.api.instance_actions`.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas, views
from novalite.api.framework import ApiCall, Reply, Router

router = Router()
RULE = "os_compute_api:servers:"


def _next_link(call: ApiCall, out: dict[str, Any], path: str, ids: list[str]) -> None:
    limit = call.query.get("limit")
    if limit and ids and len(ids) >= int(limit):
        out["servers_links"] = [{"rel": "next",
                                 "href": f"{call.services.base_url}/compute/v2.1/{path}"
                                 f"?limit={limit}&marker={ids[-1]}"}]


@router.route("GET", "/v2.1/servers", rule=RULE + "index")
async def list_servers(call: ApiCall) -> dict[str, Any]:
    base = call.services.base_url
    records = await call.services.compute.list(call.ctx, dict(call.query),
                                               strict_status=call.mv("2.38"))
    out: dict[str, Any] = {"servers": [views.server_brief(base, r) for r in records]}
    _next_link(call, out, "servers", [r.instance.uuid for r in records])
    return out


@router.route("GET", "/v2.1/servers/detail", rule=RULE + "detail")
async def detail_servers(call: ApiCall) -> dict[str, Any]:
    base = call.services.base_url
    records = await call.services.compute.list(call.ctx, dict(call.query),
                                               strict_status=call.mv("2.38"))
    out: dict[str, Any] = {"servers": [views.server_detail(call, base, r) for r in records]}
    _next_link(call, out, "servers/detail", [r.instance.uuid for r in records])
    return out


@router.route("GET", "/v2.1/servers/{server_id}", rule=RULE + "show")
async def show_server(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    return {"server": views.server_detail(call, call.services.base_url, record, show=True)}


@router.route("POST", "/v2.1/servers", rule=RULE + "create")
async def create_server(call: ApiCall) -> Reply:
    body = schemas.validate(call.body, schemas.SERVER_CREATE)
    server = body["server"]
    networks = server.get("networks")
    if networks is None:
        networks = "auto"  # friendlier than Nova's 400 (CLIENTS.md §4)
    elif isinstance(networks, list):
        networks = "auto" if networks else "none"
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    instances, admin_pass = await call.services.compute.create(
        call.ctx, call.request_id, server, networks, hints)
    if str(server.get("return_reservation_id", "")).lower() in ("true", "1"):
        return Reply(202, {"reservation_id": instances[0].reservation_id})
    first = instances[0]
    return Reply(202, {"server": {
        "id": first.uuid, "links": views.links(call.services.base_url, "servers", first.uuid),
        "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
        "adminPass": admin_pass}})


@router.route("PUT", "/v2.1/servers/{server_id}", rule=RULE + "update")
async def update_server(call: ApiCall) -> dict[str, Any]:
    body = schemas.validate(call.body, schemas.SERVER_UPDATE)["server"]
    values = {k: v for k, v in body.items() if k in ("name", "description")}
    record = await call.services.compute.update(call.ctx, call.params["server_id"], values)
    return {"server": views.server_detail(call, call.services.base_url, record, show=True)}


@router.route("DELETE", "/v2.1/servers/{server_id}", rule=RULE + "delete")
async def delete_server(call: ApiCall) -> Reply:
    await call.services.compute.delete(call.ctx, call.request_id, call.params["server_id"])
    return Reply(204)
