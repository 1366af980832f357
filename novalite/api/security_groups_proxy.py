"""Nova's deprecated security-group proxy: ``/os-security-groups`` and
``/os-security-group-rules``, served up to microversion 2.35 (404 from 2.36, as
Nova) over the same Neutron-model groups the network API serves.

Like Nova's proxy, each handler checks the request as Nova does (its messages), then
asks the Neutron subset (:class:`~novalite.network.service.NetworkAPI`) with a
Neutron body, and answers Nova's view: a group's ingress rules only, each with
``from_port``/``to_port`` (``-1`` for any ICMP type or code, ``1``-``65535`` for any
TCP/UDP port), and either ``ip_range {cidr}`` or the remote ``group {name,
tenant_id}``. Neutron's answers map as Nova maps them: a conflict on create is a
403, on delete a 400.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import uuid
from typing import Any

from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.query import proxied_page
from novalite.exceptions import BadRequest, Conflict, Forbidden, NotFound
from novalite.network.service import NetworkAPI
from novalite.network.views import nova_ports

router = Router()
RULE = "os_compute_api:os-security-groups:"
GROUPS = "/v2.1/os-security-groups"
RULES = "/v2.1/os-security-group-rules"
#: The protocols Nova's proxy takes for a rule (any case).
PROTOCOLS = ("TCP", "UDP", "ICMP")
ANY_CIDR = "0.0.0.0/0"


def _api(call: ApiCall) -> NetworkAPI:
    return call.services.compute.network


def _proxy_gone(call: ApiCall) -> None:
    """A proxy to Neutron up to 2.35; gone from 2.36 (Nova)."""
    if call.mv("2.36"):
        raise NotFound("The resource could not be found.")


def _check_id(value: Any) -> str:
    """Nova's ``validate_id``: a UUID (with or without dashes, any case), else a 400."""
    if isinstance(value, str):
        bare = value.lower().removeprefix("urn:uuid:").strip("{}").replace("-", "")
        try:
            if uuid.UUID(value).hex == bare:
                return value
        except ValueError:
            pass
    raise BadRequest("Security group id should be uuid")


def _from_body(body: Any, key: str) -> dict[str, Any]:
    if not body:
        raise BadRequest("The request body can't be empty")
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, dict):
        raise BadRequest(f"Missing parameter {key}")
    return value


def _check_text(value: Any, name: str) -> str:
    """Nova's ``validate_property``: a string of at most 255 characters."""
    if not isinstance(value, str):
        raise BadRequest(f"{name} is not a string or unicode")
    if len(value) > 255:
        raise BadRequest(f"{name} has more than 255 characters.")
    return value


# -- views ---------------------------------------------------------------------------
def _rule_view(rule: dict[str, Any], remote: dict[str, Any] | None) -> dict[str, Any]:
    """A Neutron rule as Nova shows it; ``remote``: the remote group's name and
    tenant_id for a remote-group rule."""
    protocol = rule["protocol"]
    low, high = nova_ports(protocol, rule["port_range_min"], rule["port_range_max"])
    view = {"id": rule["id"], "parent_group_id": rule["security_group_id"],
            "ip_protocol": protocol, "from_port": low, "to_port": high,
            "group": {}, "ip_range": {}}
    if rule["remote_group_id"]:
        view["group"] = remote or {}
    else:
        view["ip_range"] = {"cidr": rule["remote_ip_prefix"] or ANY_CIDR}
    return view


async def _remotes(call: ApiCall, groups: list[dict[str, Any]]
                   ) -> dict[str, dict[str, Any]]:
    """Remote group id -> ``{name, tenant_id}`` for the rules of ``groups``; a remote
    group the caller cannot see is left out (its rules are not shown, as in Nova)."""
    out = {g["id"]: {"name": g["name"], "tenant_id": g["tenant_id"]} for g in groups}
    for group in groups:
        for rule in group["security_group_rules"]:
            remote = rule["remote_group_id"]
            if remote and remote not in out:
                try:
                    found = await _api(call).get_group(call.ctx, remote)
                except NotFound:
                    continue
                out[remote] = {"name": found["name"], "tenant_id": found["tenant_id"]}
    return out


def _group_view(group: dict[str, Any], remotes: dict[str, dict[str, Any]]
                ) -> dict[str, Any]:
    rules = [_rule_view(r, remotes.get(r["remote_group_id"] or ""))
             for r in group["security_group_rules"] if r["direction"] == "ingress"
             and (not r["remote_group_id"] or r["remote_group_id"] in remotes)]
    return {"id": group["id"], "name": group["name"], "description": group["description"],
            "tenant_id": group["tenant_id"], "rules": rules}


async def _one(call: ApiCall, group_id: str) -> dict[str, Any]:
    group = await _api(call).get_group(call.ctx, _check_id(group_id))
    return _group_view(group, await _remotes(call, [group]))


# -- groups --------------------------------------------------------------------------
@router.route("GET", GROUPS, rule=RULE + "get")
async def list_groups(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    every = call.ctx.is_admin and "all_tenants" in call.query
    groups = proxied_page(call, await _api(call).list_groups(call.ctx, {}, every_project=every))
    remotes = await _remotes(call, groups)
    views = [_group_view(g, remotes) for g in groups]
    return {"security_groups": sorted(views, key=lambda v: (v["tenant_id"], v["name"]))}


@router.route("GET", GROUPS + "/{group_id}", rule=RULE + "show")
async def show_group(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    return {"security_group": await _one(call, call.params["group_id"])}


@router.route("POST", GROUPS, rule=RULE + "create")
async def create_group(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    data = _from_body(call.body, "security_group")
    body = {"name": _check_text(data.get("name"), "name"),
            "description": _check_text(data.get("description"), "description")}
    try:
        group = await _api(call).create_group(call.ctx, {"security_group": body})
    except Conflict as exc:  # Nova: Neutron's 409 is SecurityGroupLimitExceeded, a 403
        raise Forbidden(exc.message) from None
    return {"security_group": _group_view(group, await _remotes(call, [group]))}


@router.route("PUT", GROUPS + "/{group_id}", rule=RULE + "update")
async def update_group(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    group_id = _check_id(call.params["group_id"])
    await _api(call).get_group(call.ctx, group_id)
    data = _from_body(call.body, "security_group")
    body = {"name": _check_text(data.get("name"), "name"),
            "description": _check_text(data.get("description"), "description")}
    try:
        group = await _api(call).update_group(call.ctx, group_id, {"security_group": body})
    except Conflict as exc:
        raise BadRequest(exc.message) from None
    return {"security_group": _group_view(group, await _remotes(call, [group]))}


@router.route("DELETE", GROUPS + "/", rule=None)
async def delete_without_id(call: ApiCall) -> Reply:
    """``DELETE /os-security-groups/`` (no id): Nova maps no such route, a 404."""
    raise NotFound("The resource could not be found.")


@router.route("DELETE", GROUPS + "/{group_id}", rule=RULE + "delete")
async def delete_group(call: ApiCall) -> Reply:
    _proxy_gone(call)
    group_id = _check_id(call.params["group_id"])
    await _api(call).get_group(call.ctx, group_id)
    try:
        await _api(call).delete_group(call.ctx, group_id)
    except Conflict as exc:  # Nova: Neutron's 409 (in use, the default group) is a 400
        raise BadRequest(exc.message) from None
    return Reply(202)


# -- rules ---------------------------------------------------------------------------
def _cidr(value: Any) -> str:
    """Nova's ``parse_cidr``: ``0.0.0.0/0`` when not given, else a valid prefix."""
    if not value:
        return ANY_CIDR
    try:
        text = urllib.parse.unquote(value)
        ipaddress.ip_network(text, strict=False)
        if not text.split("/", 1)[1:] or not text.split("/", 1)[1]:
            raise ValueError(text)
    except (TypeError, ValueError, AttributeError):
        raise BadRequest(f"{value} is not a valid IP network.") from None
    return text


def _ports(protocol: Any, low: Any, high: Any, remote_group: bool
           ) -> dict[str, Any] | None:
    """Nova's ingress rule from its fields: protocol and ports checked, or None when a
    CIDR rule lacks them (a remote-group rule without them opens every port)."""
    upper = protocol.upper() if isinstance(protocol, str) else ""
    if remote_group and low is None and high is None:
        if upper == "ICMP":
            low = high = -1
        elif upper in ("TCP", "UDP"):
            low, high = 1, 65535
    if not protocol or low is None or high is None:
        return {} if remote_group else None
    protocol = str(protocol)
    upper = protocol.upper()
    try:
        low, high = int(low), int(high)
    except (TypeError, ValueError):
        reason = ("Type and Code must be integers for ICMP protocol type" if upper == "ICMP"
                  else "To and From ports must be integers")
        raise BadRequest(f"Invalid input received: {reason}") from None
    if upper not in PROTOCOLS:
        raise BadRequest(f"Invalid IP protocol {protocol}.")
    if upper in ("TCP", "UDP") and low > high:
        raise BadRequest(f"Invalid port range {low}:{high}. Former value cannot be greater "
                         "than the later")
    if upper in ("TCP", "UDP") and (low < 1 or high > 65535):
        raise BadRequest(f"Invalid port range {low}:{high}. Valid {upper} ports should be "
                         "between 1-65535")
    if upper == "ICMP" and not (-1 <= low <= 255 and -1 <= high <= 255):
        raise BadRequest(f"Invalid port range {low}:{high}. For ICMP, the type:code must "
                         "be valid")
    return {"protocol": protocol, "from_port": low, "to_port": high}


def _exists(group: dict[str, Any], new: dict[str, Any]) -> bool:
    """Nova's duplicate check, on the group's ingress rules in Nova's form."""
    for rule in group["security_group_rules"]:
        if rule["direction"] != "ingress":
            continue
        old = _rule_view(rule, None)
        have = {"group_id": rule["remote_group_id"], "cidr": _cidr(rule["remote_ip_prefix"]),
                "from_port": old["from_port"], "to_port": old["to_port"],
                "protocol": rule["protocol"]}
        if all(have[k] == new.get(k) for k in have):
            return True
    return False


@router.route("POST", RULES, rule=RULE + "rule:create")
async def create_rule(call: ApiCall) -> dict[str, Any]:
    _proxy_gone(call)
    data = _from_body(call.body, "security_group_rule")
    parent_id = _check_id(data.get("parent_group_id"))
    parent = await _api(call).get_group(call.ctx, parent_id)
    remote_id = data.get("group_id")
    remote: dict[str, Any] | None = None
    if remote_id is not None:
        found = await _api(call).get_group(call.ctx, _check_id(remote_id))
        remote = {"name": found["name"], "tenant_id": found["tenant_id"]}
        new = _ports(data.get("ip_protocol"), data.get("from_port"), data.get("to_port"),
                     True)
        assert new is not None
        new["group_id"] = remote_id
    else:
        cidr = _cidr(data.get("cidr"))
        new = _ports(data.get("ip_protocol"), data.get("from_port"), data.get("to_port"),
                     False)
        if new is None:
            raise BadRequest("Not enough parameters to build a valid rule.")
        new["cidr"] = cidr
        net, _, prefixlen = cidr.partition("/")
        if net not in ("0.0.0.0", "::") and prefixlen == "0":
            raise BadRequest(f"Bad prefix for network in cidr {cidr}")
    if _exists(parent, new):
        raise BadRequest(f"This rule already exists in group {parent['id']}")
    prefix = new.get("cidr")
    version = ipaddress.ip_network(prefix, strict=False).version if prefix else 4
    body: dict[str, Any] = {
        "security_group_id": parent["id"], "direction": "ingress",
        "ethertype": f"IPv{version}", "protocol": new.get("protocol"),
        "remote_ip_prefix": prefix, "remote_group_id": new.get("group_id")}
    for nova_key, neutron_key in (("from_port", "port_range_min"),
                                  ("to_port", "port_range_max")):
        if new.get(nova_key) not in (None, -1):
            body[neutron_key] = new[nova_key]
    try:
        rule = await _api(call).create_rule(call.ctx, {"security_group_rule": body})
    except Conflict as exc:  # Nova: Neutron's 409 is SecurityGroupLimitExceeded, a 403
        raise Forbidden(exc.message) from None
    return {"security_group_rule": _rule_view(rule, remote)}


@router.route("DELETE", RULES + "/{rule_id}", rule=RULE + "rule:delete")
async def delete_rule(call: ApiCall) -> Reply:
    _proxy_gone(call)
    rule_id = _check_id(call.params["rule_id"])
    rule = await _api(call).get_rule(call.ctx, rule_id)
    await _api(call).get_group(call.ctx, rule["security_group_id"])
    await _api(call).delete_rule(call.ctx, rule_id)
    return Reply(202)
