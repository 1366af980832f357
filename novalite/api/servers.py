"""``/servers``: list, show, create, update and delete (Nova's ``servers.py``).

The actions posted to ``/servers/{id}/action`` are in
:mod:`novalite.api.server_actions`; a server's history in
:mod:`novalite.api.instance_actions`; its metadata, tags and addresses in
:mod:`novalite.api.server_metadata`, :mod:`novalite.api.server_tags` and
:mod:`novalite.api.ips`. How a list request's query becomes a search is
:mod:`novalite.api.server_query`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any

from novalite.api import schemas, server_query, views
from novalite.api.framework import ApiCall, Reply, Router
from novalite.compute.api import Destination, is_uuid
from novalite.exceptions import BadRequest, QuotaExceeded
from novalite.policy import authorize

router = Router()
RULE = "os_compute_api:servers:"
#: The microversions at which POST /servers's schema changes (schemas.server_create).
CREATE_VERSIONS = ("2.19", "2.37", "2.42", "2.52", "2.57", "2.74", "2.90", "2.94")
#: Nova's injected-file limits (quota defaults; dropped from the API at 2.57).
INJECTED_FILES, INJECTED_PATH_BYTES, INJECTED_CONTENT_BYTES = 5, 255, 10240


def _next_link(call: ApiCall, out: dict[str, Any], path: str, ids: list[str],
               limit: int | None) -> None:
    if limit and ids and len(ids) >= limit:
        out["servers_links"] = [{"rel": "next",
                                 "href": f"{call.services.base_url}/compute/v2.1/{path}"
                                 f"?limit={limit}&marker={ids[-1]}"}]


async def _list(call: ApiCall, detail: bool) -> dict[str, Any]:
    base = call.services.base_url
    search = server_query.search_from(call, detail)
    if search is None:
        return {"servers": []}
    records = await call.services.compute.list(call.ctx, search)
    if detail:
        servers = [views.server_detail(call, base, r) for r in records]
    else:
        servers = [views.server_brief(base, r) for r in records]
    out: dict[str, Any] = {"servers": servers}
    _next_link(call, out, "servers/detail" if detail else "servers",
               [r.instance.uuid for r in records],
               int(call.query["limit"]) if "limit" in call.query else None)
    return out


@router.route("GET", "/v2.1/servers", rule=RULE + "index")
async def list_servers(call: ApiCall) -> dict[str, Any]:
    return await _list(call, detail=False)


@router.route("GET", "/v2.1/servers/detail", rule=RULE + "detail")
async def detail_servers(call: ApiCall) -> dict[str, Any]:
    return await _list(call, detail=True)


@router.route("GET", "/v2.1/servers/{server_id}", rule=RULE + "show")
async def show_server(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    return {"server": views.server_detail(call, call.services.base_url, record, show=True)}


def check_access_ips(server: dict[str, Any]) -> None:
    """accessIPv4/accessIPv6 must be addresses of their version (Nova's ``format``);
    they are kept in canonical form (RFC 5952 for IPv6), as Nova's column type does."""
    for key, kind, version in (("accessIPv4", "ipv4", 4), ("accessIPv6", "ipv6", 6)):
        value = server.get(key)
        if value is None:
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            address = None
        if address is None or address.version != version:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                             f"'{value}' is not a '{kind}'")
        server[key] = str(address)


def _networks(call: ApiCall, requested: Any) -> tuple[str, list[dict[str, Any]]]:
    """``auto``, ``none`` or ``requested`` with the NICs asked for (each ``{"uuid",
    "fixed_ip"}`` or ``{"port"}``, checked for form here, for existence by the compute
    API layer)."""
    if requested is None:
        return "auto", []  # friendlier than Nova's 400 from 2.37 (CLIENTS.md §4)
    if isinstance(requested, str):
        return requested, []
    if not requested:
        return "none", []
    nics: list[dict[str, Any]] = []
    for net in requested:
        port = net.get("port")
        if port:
            if not is_uuid(str(port)):
                raise BadRequest(f"Invalid input for field/attribute port. Value: {port}. "
                                 f"'{port}' is not a 'uuid'")
            nics.append({"port": str(port)})
            continue
        if "uuid" not in net:
            raise BadRequest("Bad network format: missing 'uuid'")
        if not is_uuid(str(net["uuid"])):
            if call.mv("2.37"):
                raise BadRequest(f"Invalid input for field/attribute uuid. Value: "
                                 f"{net['uuid']}. '{net['uuid']}' is not a 'uuid'")
            raise BadRequest("Bad networks format: network uuid is not in proper format "
                             f"({net['uuid']})")
        fixed = net.get("fixed_ip")
        if fixed is not None:
            try:
                ipaddress.ip_address(str(fixed))
            except ValueError:
                raise BadRequest(f"Invalid fixed IP address ({fixed})") from None
        nics.append({"uuid": str(net["uuid"]), "fixed_ip": fixed})
    return "requested", nics


def _personality(files: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """``personality`` files (below 2.57), checked as Nova checks them: base64 contents,
    at most 5 files, paths of at most 255 bytes, contents of at most 10240 bytes."""
    out = []
    for item in files or []:
        path, contents = item.get("path", ""), item.get("contents", "")
        try:
            data = base64.b64decode(contents, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"Invalid input for field/attribute contents. Value: "
                             f"{contents}. '{contents}' is not a 'base64'") from None
        if len(path.encode()) > INJECTED_PATH_BYTES:
            raise QuotaExceeded("Personality file path exceeds maximum "
                                f"{INJECTED_PATH_BYTES}")
        if len(data) > INJECTED_CONTENT_BYTES:
            raise QuotaExceeded("Personality file content exceeds maximum "
                                f"{INJECTED_CONTENT_BYTES}")
        out.append({"path": path, "contents": contents})
    if len(out) > INJECTED_FILES:
        raise QuotaExceeded("Personality file limit exceeded")
    return out


def _destination(call: ApiCall, server: dict[str, Any]
                 ) -> tuple[str | None, Destination | None]:
    """The availability zone and the requested destination: ``az:host``, ``az:host:node``
    or ``az::node`` (admin: forced, Nova's ``parse_availability_zone``), or 2.74's
    ``host``/``hypervisor_hostname`` (admin: requested, the filters still apply)."""
    az = server.get("availability_zone") or None
    host = node = None
    if az and ":" in az:
        parts = az.split(":")
        if len(parts) == 2:
            az, host = parts
        elif len(parts) == 3:
            az, host, node = parts
        else:
            raise BadRequest("Unable to parse availability_zone")
        az, host, node = az or None, host or None, node or None
    if host or node:
        authorize(call.ctx, RULE + "create:forced_host")
    requested_host = server.get("host")
    requested_node = server.get("hypervisor_hostname")
    if requested_host or requested_node:
        authorize(call.ctx, "compute:servers:create:requested_destination")
        if host or node:
            raise BadRequest("One mechanism with host and/or hypervisor_hostname and another "
                             "mechanism with zone:host:node are mutually exclusive.")
        return az, Destination(requested_host, requested_node, force=False)
    if host or node:
        return az, Destination(host, node, force=True)
    return az, None


@router.route("POST", "/v2.1/servers", rule=RULE + "create", body=lambda v: (
    schemas.server_create(tuple(v >= since for since in CREATE_VERSIONS))))
async def create_server(call: ApiCall) -> Reply:
    body = call.body
    server = dict(body["server"])
    check_access_ips(server)
    networks, server["requested_networks"] = _networks(call, server.get("networks"))
    if not call.mv("2.19"):
        server["description"] = server["name"]  # Nova's description below 2.19
    if "personality" in server:
        server["personality"] = _personality(server["personality"])
    if server.get("hostname") and int(server.get("max_count", 1)) > 1:
        raise BadRequest("Unable to allocate a single hostname to multiple instances")
    az, destination = _destination(call, server)
    server["availability_zone"] = az
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    instances, admin_pass = await call.services.compute.create(
        call.ctx, call.request_id, server, networks, hints, destination=destination)
    if str(server.get("return_reservation_id", "")).lower() in ("true", "1"):
        return Reply(202, {"reservation_id": instances[0].reservation_id})
    first = instances[0]
    return Reply(202, {"server": {
        "id": first.uuid, "links": views.links(call.services.base_url, "servers", first.uuid),
        "OS-DCF:diskConfig": "AUTO" if first.auto_disk_config else "MANUAL",
        "security_groups": [
            {"name": g.get("name")} for g in server.get("security_groups") or []
            if g.get("name")] or [{"name": "default"}],
        "adminPass": admin_pass}}, headers={
        "Location": f"{call.services.base_url}/compute/v2.1/servers/{first.uuid}"})


@router.route("PUT", "/v2.1/servers/{server_id}", rule=RULE + "update", body=lambda v: (
    schemas.server_update(v >= "2.19", v >= "2.90", v >= "2.94")))
async def update_server(call: ApiCall) -> dict[str, Any]:
    body = call.body["server"]
    check_access_ips(body)
    fields = {"name": "display_name", "description": "display_description",
              "hostname": "hostname", "accessIPv4": "access_ip_v4",
              "accessIPv6": "access_ip_v6"}
    values = {column: body[key] for key, column in fields.items() if key in body}
    if "OS-DCF:diskConfig" in body:
        values["auto_disk_config"] = body["OS-DCF:diskConfig"] == "AUTO"
    record = await call.services.compute.update(call.ctx, call.params["server_id"], values)
    # Below 2.75 Nova answers a reduced view; from 2.75 the whole show view.
    full = call.mv("2.75")
    return {"server": views.server_detail(call, call.services.base_url, record, show=True,
                                          full=full)}


@router.route("DELETE", "/v2.1/servers/{server_id}", rule=RULE + "delete")
async def delete_server(call: ApiCall) -> Reply:
    await call.services.compute.delete(call.ctx, call.request_id, call.params["server_id"])
    return Reply(204)


