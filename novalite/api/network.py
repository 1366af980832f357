"""The Neutron v2.0 subset, mounted at ``/network`` (the catalog's ``network``
endpoint): networks, subnets, ports, security groups and their rules, and the
extensions list. Each route checks its Neutron policy rule and calls
:class:`~novalite.network.service.NetworkAPI`; errors answer in Neutron's body
(``style="neutron"``). Floating IPs and routers are not served: like a Neutron
without the ``router`` extension, their URLs are 404.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from novalite.api.framework import (
    ApiCall,
    Authenticator,
    Call,
    Reply,
    Router,
    Services,
    starlette_routes,
)
from novalite.network.service import NetworkAPI

router = Router()
V2 = "/v2.0"

#: The extensions novalite's Neutron has, as Neutron lists them.
EXTENSIONS = (
    ("security-group", "security-group",
     "The security groups extension."),
    ("port-security", "Port Security",
     "Provides port security"),
    ("binding", "Port Binding",
     "Expose port bindings of a virtual port to external application"),
    ("network-mtu", "Network MTU",
     "Provides MTU attribute for a network resource."),
    ("standard-attr-description", "standard-attr-description",
     "Extension to add descriptions to standard attributes"),
    ("standard-attr-timestamp", "Resource timestamps",
     "Adds created_at and updated_at fields to all Neutron resources that have Neutron "
     "standard attributes."),
    ("project-id", "project_id field enabled",
     "Extension that indicates that project_id field is enabled."),
    ("quotas", "Quota management support",
     "Expose functions for quotas management per project"),
    ("quota_details", "Quota details management support",
     "Expose functions for quotas usage statistics per project"),
    ("external-net", "Neutron external network",
     "Adds external network attribute to network resource."),
)


def _api(call: ApiCall) -> NetworkAPI:
    return call.services.compute.network


@router.public("GET", "/")
async def versions(call: Call) -> dict[str, Any]:
    return {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{call.services.base_url}/network/v2.0/"}]}]}


@router.route("GET", V2 + "/", rule=None)
async def resources(call: ApiCall) -> dict[str, Any]:
    base = f"{call.services.base_url}/network/v2.0"
    return {"resources": [
        {"name": name, "collection": name + "s",
         "links": [{"rel": "self", "href": f"{base}/{name}s"}]}
        for name in ("network", "subnet", "port", "security_group", "security_group_rule")]}


@router.route("GET", V2 + "/extensions", rule=None)
async def list_extensions(call: ApiCall) -> dict[str, Any]:
    return {"extensions": [{"alias": a, "name": n, "description": d, "links": [],
                            "updated": "2013-01-01T10:00:00-00:00"}
                           for a, n, d in EXTENSIONS]}


@router.route("GET", V2 + "/extensions/{alias}", rule=None)
async def show_extension(call: ApiCall) -> dict[str, Any]:
    for a, n, d in EXTENSIONS:
        if a == call.params["alias"]:
            return {"extension": {"alias": a, "name": n, "description": d, "links": [],
                                  "updated": "2013-01-01T10:00:00-00:00"}}
    from novalite.exceptions import NotFound

    raise NotFound(f"Extension with alias {call.params['alias']} does not exist")


# -- networks ------------------------------------------------------------------------
@router.route("GET", V2 + "/networks", rule="get_network")
async def list_networks(call: ApiCall) -> dict[str, Any]:
    return {"networks": await _api(call).list_networks(call.ctx, call.query)}


@router.route("GET", V2 + "/networks/{id}", rule="get_network")
async def show_network(call: ApiCall) -> dict[str, Any]:
    return {"network": await _api(call).get_network(call.ctx, call.params["id"])}


@router.route("POST", V2 + "/networks", rule="create_network")
async def create_network(call: ApiCall) -> Reply:
    return Reply(201, {"network": await _api(call).create_network(call.ctx, call.body)})


@router.route("PUT", V2 + "/networks/{id}", rule="update_network")
async def update_network(call: ApiCall) -> dict[str, Any]:
    return {"network": await _api(call).update_network(call.ctx, call.params["id"],
                                                       call.body)}


@router.route("DELETE", V2 + "/networks/{id}", rule="delete_network")
async def delete_network(call: ApiCall) -> Reply:
    await _api(call).delete_network(call.ctx, call.params["id"])
    return Reply(204)


# -- subnets -------------------------------------------------------------------------
@router.route("GET", V2 + "/subnets", rule="get_subnet")
async def list_subnets(call: ApiCall) -> dict[str, Any]:
    return {"subnets": await _api(call).list_subnets(call.ctx, call.query)}


@router.route("GET", V2 + "/subnets/{id}", rule="get_subnet")
async def show_subnet(call: ApiCall) -> dict[str, Any]:
    return {"subnet": await _api(call).get_subnet(call.ctx, call.params["id"])}


@router.route("POST", V2 + "/subnets", rule="create_subnet")
async def create_subnet(call: ApiCall) -> Reply:
    return Reply(201, {"subnet": await _api(call).create_subnet(call.ctx, call.body)})


@router.route("PUT", V2 + "/subnets/{id}", rule="update_subnet")
async def update_subnet(call: ApiCall) -> dict[str, Any]:
    return {"subnet": await _api(call).update_subnet(call.ctx, call.params["id"],
                                                     call.body)}


@router.route("DELETE", V2 + "/subnets/{id}", rule="delete_subnet")
async def delete_subnet(call: ApiCall) -> Reply:
    await _api(call).delete_subnet(call.ctx, call.params["id"])
    return Reply(204)


# -- ports ---------------------------------------------------------------------------
@router.route("GET", V2 + "/ports", rule="get_port")
async def list_ports(call: ApiCall) -> dict[str, Any]:
    return {"ports": await _api(call).list_ports(call.ctx, call.query)}


@router.route("GET", V2 + "/ports/{id}", rule="get_port")
async def show_port(call: ApiCall) -> dict[str, Any]:
    return {"port": await _api(call).get_port(call.ctx, call.params["id"])}


@router.route("POST", V2 + "/ports", rule="create_port")
async def create_port(call: ApiCall) -> Reply:
    return Reply(201, {"port": await _api(call).create_port(call.ctx, call.body)})


@router.route("PUT", V2 + "/ports/{id}", rule="update_port")
async def update_port(call: ApiCall) -> dict[str, Any]:
    return {"port": await _api(call).update_port(call.ctx, call.params["id"], call.body)}


@router.route("DELETE", V2 + "/ports/{id}", rule="delete_port")
async def delete_port(call: ApiCall) -> Reply:
    await _api(call).delete_port(call.ctx, call.params["id"])
    return Reply(204)


# -- security groups -----------------------------------------------------------------
@router.route("GET", V2 + "/security-groups", rule="get_security_group")
async def list_groups(call: ApiCall) -> dict[str, Any]:
    return {"security_groups": await _api(call).list_groups(call.ctx, call.query)}


@router.route("GET", V2 + "/security-groups/{id}", rule="get_security_group")
async def show_group(call: ApiCall) -> dict[str, Any]:
    return {"security_group": await _api(call).get_group(call.ctx, call.params["id"])}


@router.route("POST", V2 + "/security-groups", rule="create_security_group")
async def create_group(call: ApiCall) -> Reply:
    return Reply(201, {"security_group": await _api(call).create_group(call.ctx,
                                                                       call.body)})


@router.route("PUT", V2 + "/security-groups/{id}", rule="update_security_group")
async def update_group(call: ApiCall) -> dict[str, Any]:
    return {"security_group": await _api(call).update_group(call.ctx, call.params["id"],
                                                            call.body)}


@router.route("DELETE", V2 + "/security-groups/{id}", rule="delete_security_group")
async def delete_group(call: ApiCall) -> Reply:
    await _api(call).delete_group(call.ctx, call.params["id"])
    return Reply(204)


@router.route("GET", V2 + "/security-group-rules", rule="get_security_group_rule")
async def list_rules(call: ApiCall) -> dict[str, Any]:
    return {"security_group_rules": await _api(call).list_rules(call.ctx, call.query)}


@router.route("GET", V2 + "/security-group-rules/{id}", rule="get_security_group_rule")
async def show_rule(call: ApiCall) -> dict[str, Any]:
    return {"security_group_rule": await _api(call).get_rule(call.ctx, call.params["id"])}


@router.route("POST", V2 + "/security-group-rules", rule="create_security_group_rule")
async def create_rule(call: ApiCall) -> Reply:
    return Reply(201, {"security_group_rule": await _api(call).create_rule(call.ctx,
                                                                           call.body)})


@router.route("DELETE", V2 + "/security-group-rules/{id}",
              rule="delete_security_group_rule")
async def delete_rule(call: ApiCall) -> Reply:
    await _api(call).delete_rule(call.ctx, call.params["id"])
    return Reply(204)


#: Neutron's default quotas, as answered (novalite enforces none of them).
QUOTAS = {"network": 100, "subnet": 100, "port": 500, "security_group": 10,
          "security_group_rule": 100, "router": 10, "floatingip": 50, "rbac_policy": 10,
          "subnetpool": -1}


def _quota_project(call: ApiCall) -> str:
    project = call.params["project_id"]
    if project != call.ctx.project_id and not call.ctx.is_admin:
        from novalite.exceptions import Forbidden

        raise Forbidden("Only admins may read another project's quotas.")
    return project


@router.route("GET", V2 + "/quotas/{project_id}", rule="get_quota")
async def show_quota(call: ApiCall) -> dict[str, Any]:
    _quota_project(call)
    return {"quota": dict(QUOTAS)}


@router.route("GET", V2 + "/quotas/{project_id}/details", rule="get_quota")
async def show_quota_details(call: ApiCall) -> dict[str, Any]:
    project = _quota_project(call)
    api, only = _api(call), {"project_id": project}
    used = {"network": len(await api.list_networks(call.ctx, only)),
            "subnet": len(await api.list_subnets(call.ctx, only)),
            "port": len(await api.list_ports(call.ctx, only)),
            "security_group": len(await api.list_groups(call.ctx, only)),
            "security_group_rule": len(await api.list_rules(call.ctx, only))}
    return {"quota": {k: {"limit": v, "used": used.get(k, 0), "reserved": 0}
                      for k, v in QUOTAS.items()}}


def routes(services: Services, authenticate: Authenticator) -> list[Route]:
    """The routes under ``/network``, errors in Neutron's shape."""
    return starlette_routes([router], services, authenticate=authenticate, style="neutron")
