"""Nova's networking on a server: ``os-security-groups`` of a server, the
``addSecurityGroup``/``removeSecurityGroup`` actions, ``os-interface`` (the server's
ports) and the ``os-networks``/``os-tenant-networks`` proxies to Neutron's networks
(up to 2.35)."""

from __future__ import annotations

from typing import Any

from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.server_actions import server_actions
from novalite.exceptions import BadRequest, Conflict, NotFound

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


@router.route("POST", SERVER + "/os-interface", rule=IF_RULE + "create")
async def attach_interface(call: ApiCall) -> Reply:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    raise Conflict(f"Network interfaces cannot be attached to instance "
                   f"{record.instance.uuid}: hot-plugging is not supported by this "
                   "hypervisor. Boot the server with the network instead.")


@router.route("DELETE", SERVER + "/os-interface/{port_id}", rule=IF_RULE + "delete")
async def detach_interface(call: ApiCall) -> Reply:
    await show_interface(call)  # 404 for a port the server does not have
    raise Conflict(f"Network interfaces cannot be detached from instance "
                   f"{call.params['server_id']}: hot-plugging is not supported by this "
                   "hypervisor.")


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
