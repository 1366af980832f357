"""Nova's networking on a server: ``os-security-groups`` of a server, the
``addSecurityGroup``/``removeSecurityGroup`` actions, ``os-interface`` (the server's
ports) and the ``os-networks``/``os-tenant-networks`` proxies to Neutron's networks
(up to 2.35)."""

from __future__ import annotations

import uuid
from typing import Any

from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.server_actions import server_actions
from novalite.compute import interfaces
from novalite.exceptions import BadRequest, NotFound

router = Router()
SERVER = "/v2.1/servers/{server_id}"
SG_RULE = "os_compute_api:os-security-groups:"
IF_RULE = "os_compute_api:os-attach-interfaces:"

_GROUP_ARGS = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1,
                                                         "maxLength": 255}},
               "required": ["name"], "additionalProperties": False}


@router.route("GET", SERVER + "/os-security-groups", rule=SG_RULE + "list")
async def server_security_groups(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    return {"security_groups": await call.services.compute.network.server_groups(
        call.ctx, record.instance)}


async def _change_group(call: ApiCall, args: Any, add: bool) -> Reply:
    if not isinstance(args, dict) or not isinstance(args.get("name"), str) \
            or not args["name"].strip():
        raise BadRequest("Security group name cannot be empty")
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    await call.services.compute.network.change_server_group(
        call.ctx, record.instance, args["name"].strip(), add)
    return Reply(202)


@server_actions.action("addSecurityGroup", rule=SG_RULE + "add")
async def add_security_group(call: ApiCall, args: Any) -> Reply:
    return await _change_group(call, args, True)


@server_actions.action("removeSecurityGroup", rule=SG_RULE + "remove")
async def remove_security_group(call: ApiCall, args: Any) -> Reply:
    return await _change_group(call, args, False)


def _attachment(port: dict[str, Any]) -> dict[str, Any]:
    return {"port_state": port["status"], "port_id": port["id"], "net_id": port["network_id"],
            "mac_addr": port["mac_address"], "fixed_ips": port["fixed_ips"]}


@router.route("GET", SERVER + "/os-interface", rule=IF_RULE + "list")
async def list_interfaces(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    ports = await call.services.compute.network.server_ports(call.ctx, record.instance.uuid)
    return {"interfaceAttachments": [_attachment(p) for p in ports]}


@router.route("GET", SERVER + "/os-interface/{port_id}", rule=IF_RULE + "show")
async def show_interface(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    ports = await call.services.compute.network.server_ports(call.ctx, record.instance.uuid)
    for port in ports:
        if port["id"] == call.params["port_id"]:
            return {"interfaceAttachment": _attachment(port)}
    raise NotFound(f"Instance {record.instance.uuid} is not attached to port "
                   f"{call.params['port_id']}")


INTERFACE_ATTACHMENT: dict[str, Any] = {
    "type": "object",
    "properties": {"interfaceAttachment": {"type": "object", "properties": {
        "net_id": {"type": "string"},
        "port_id": {"type": "string"},
        "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "properties": {"ip_address": {"type": "string"}},
            "required": ["ip_address"], "additionalProperties": False}},
        "tag": {"type": "string", "maxLength": 60},
    }, "additionalProperties": False}},
    "additionalProperties": False,
}


@router.route("POST", SERVER + "/os-interface", rule=IF_RULE + "create",
              body=INTERFACE_ATTACHMENT)
async def attach_interface(call: ApiCall) -> dict[str, Any]:
    """Nova's attach: a port given or made on ``net_id`` (else the default network),
    hot-plugged into the guest; 200 with the attachment."""
    body = (call.body or {}).get("interfaceAttachment") or {}
    if "tag" in body:
        if not call.mv("2.49"):
            raise BadRequest("Additional properties are not allowed ('tag' was unexpected)")
        raise BadRequest("Tagged network interface attach is not supported.")
    for name in ("net_id", "port_id"):
        value = body.get(name)
        if value is not None:
            try:
                uuid.UUID(value)
            except ValueError:
                raise BadRequest(f"Invalid input for field/attribute {name}. Value: "
                                 f"{value}. '{value}' is not a 'uuid'") from None
    if body.get("net_id") and body.get("port_id"):
        raise BadRequest("Must not input both network_id and port_id")
    fixed = [f["ip_address"] for f in body.get("fixed_ips") or []]
    if fixed and not body.get("net_id"):
        raise BadRequest("Must input network_id when request IP address")
    port = await interfaces.attach(call.services.compute, call.ctx, call.params["server_id"],
                                   body.get("net_id"), body.get("port_id"),
                                   fixed[0] if fixed else None)
    return {"interfaceAttachment": _attachment(port)}


@router.route("DELETE", SERVER + "/os-interface/{port_id}", rule=IF_RULE + "delete")
async def detach_interface(call: ApiCall) -> Reply:
    """Nova's detach: the guest lets the NIC go, then the port is freed; 202."""
    await show_interface(call)  # 404 for a port the server does not have
    await interfaces.detach(call.services.compute, call.ctx, call.params["server_id"],
                            call.params["port_id"])
    return Reply(status=202)


def _proxy_gone(call: ApiCall) -> None:
    """``os-networks`` is a proxy to Neutron up to 2.35; gone from 2.36 (Nova)."""
    if call.mv("2.36"):
        raise NotFound("The resource could not be found.")


@router.route("GET", "/v2.1/os-networks", rule="os_compute_api:os-networks:list")
async def list_networks(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    return {"networks": await call.services.compute.network.nova_networks(call.ctx)}


@router.route("GET", "/v2.1/os-networks/{network_id}", rule="os_compute_api:os-networks:view")
async def show_network(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    for net in await call.services.compute.network.nova_networks(call.ctx):
        if net["id"] == call.params["network_id"]:
            return {"network": net}
    raise NotFound(f"Network {call.params['network_id']} could not be found.")


@router.route("GET", "/v2.1/os-tenant-networks", rule="os_compute_api:os-tenant-networks:list")
async def list_tenant_networks(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    return {"networks": await call.services.compute.network.tenant_networks(call.ctx)}


@router.route("GET", "/v2.1/os-tenant-networks/{network_id}",
              rule="os_compute_api:os-tenant-networks:show")
async def show_tenant_network(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    for net in await call.services.compute.network.tenant_networks(call.ctx):
        if net["id"] == call.params["network_id"]:
            return {"network": net}
    raise NotFound(f"Network {call.params['network_id']} could not be found.")
