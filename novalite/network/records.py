"""Loading and checking networking records inside a session: project scoping (another
project's resource is not found; admins see all; a shared network and its subnets are
seen by everyone), request body fields as Neutron checks them, list filters, and
making ports (:func:`new_port`)."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlmodel import Session, col, select

from novalite.context import AuthContext
from novalite.db.models import (
    NetworkRecord,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from novalite.exceptions import BadRequest, Forbidden
from novalite.network import ipam
from novalite.network import security_groups as sg
from novalite.network.errors import (
    InvalidInput,
    NeutronBadRequest,
    NeutronConflict,
    NeutronNotFound,
)


def visible(ctx: AuthContext, project_id: str, shared: bool = False) -> bool:
    return ctx.is_admin or shared or project_id == ctx.project_id


def owner_project(ctx: AuthContext, body: dict[str, Any]) -> str:
    """The owner of a new resource: the caller's project, or (admins) the one named."""
    wanted = body.get("project_id") or body.get("tenant_id")
    if wanted and wanted != ctx.project_id:
        if not ctx.is_admin:
            raise Forbidden("Only admins may create resources of another project.")
        return str(wanted)
    return ctx.project_id


def string_field(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > 255:
        raise InvalidInput(f"'{value}' is not a valid string of at most 255 characters "
                           f"for {key}")
    return value


def bool_field(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidInput(f"'{value}' cannot be converted to boolean for {key}")
    return value


def body_of(body: Any, kind: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(kind), dict):
        raise BadRequest(f"Resource body required: {{\"{kind}\": {{...}}}}")
    inner: dict[str, Any] = body[kind]
    unknown = set(inner) - allowed
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    return inner


def network_of(s: Session, ctx: AuthContext, network_id: str) -> NetworkRecord:
    net = s.get(NetworkRecord, network_id)
    if net is None or not visible(ctx, net.project_id, net.shared):
        raise NeutronNotFound("Network", network_id)
    return net


def subnets_of(s: Session, network_ids: list[str]) -> dict[str, list[Subnet]]:
    out: dict[str, list[Subnet]] = {n: [] for n in network_ids}
    if network_ids:
        for sub in s.exec(select(Subnet).where(col(Subnet.network_id).in_(network_ids))
                          .order_by(col(Subnet.created_at))).all():
            out[sub.network_id].append(sub)
    return out


def group_of(s: Session, ctx: AuthContext, group_id: str) -> SecurityGroup:
    group = s.get(SecurityGroup, group_id)
    if group is None or not visible(ctx, group.project_id):
        raise NeutronNotFound("SecurityGroup", group_id)
    return group


def find_group(s: Session, project_id: str, name_or_id: str) -> SecurityGroup | None:
    """A project's group by id or by name (Nova's ``security_groups`` take either)."""
    if name_or_id == sg.DEFAULT:
        return sg.ensure_default(s, project_id)
    group = s.get(SecurityGroup, name_or_id)
    if group is not None and group.project_id == project_id:
        return group
    found = s.exec(select(SecurityGroup).where(SecurityGroup.project_id == project_id,
                                               SecurityGroup.name == name_or_id)).all()
    if len(found) > 1:
        raise BadRequest(f"Multiple security groups found matching '{name_or_id}'. Use "
                         "an ID to be more specific.")
    return found[0] if found else None


def list_filters(query: Any, keys: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in keys:
        values = query.getlist(key) if hasattr(query, "getlist") else (
            [query[key]] if key in query else [])
        if values:
            out[key] = values
    return out


def matches(view: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, wanted in filters.items():
        value = view.get(key)
        if isinstance(value, bool):
            value = str(value).lower()
            wanted = [w.lower() for w in wanted]
        if str(value) not in wanted and value not in wanted:
            return False
    return True


def fixed_ip_matches(fixed: list[dict[str, str]], wanted: str) -> bool:
    """``fixed_ips=ip_address=10.0.0.3`` / ``subnet_id=...`` (Neutron's list filter)."""
    key, _, value = wanted.partition("=")
    if key == "ip_address_substr":
        return any(value in f["ip_address"] for f in fixed)
    return any(f.get(key) == value for f in fixed)


def rules_of(s: Session, group_ids: list[str]) -> dict[str, list[SecurityGroupRule]]:
    out: dict[str, list[SecurityGroupRule]] = {g: [] for g in group_ids}
    if group_ids:
        for rule in s.exec(select(SecurityGroupRule).where(
                col(SecurityGroupRule.security_group_id).in_(group_ids))
                .order_by(col(SecurityGroupRule.created_at))).all():
            out[rule.security_group_id].append(rule)
    return out


def group_ids_of(s: Session, project_id: str, wanted: Any) -> list[str]:
    if not isinstance(wanted, list):
        raise InvalidInput("security_groups must be a list of ids")
    out = []
    for gid in wanted:
        group = s.get(SecurityGroup, str(gid))
        if group is None or group.project_id != project_id:
            raise NeutronNotFound("SecurityGroup", str(gid))
        if group.id not in out:
            out.append(group.id)
    return out


def assign_fixed_ips(s: Session, net: NetworkRecord | None, port: Port, wanted: Any) -> None:
    """Give the port its ``fixed_ips`` (each ``{"subnet_id"}``, ``{"ip_address"}`` or
    both), or one address of the network's first subnet when none are asked for."""
    if net is None:
        raise NeutronNotFound("Network", port.network_id)
    subs = subnets_of(s, [net.id])[net.id]
    if wanted is None:
        if subs:
            ipam.allocate(s, subs[0], port.id)
        return
    if not isinstance(wanted, list):
        raise InvalidInput("fixed_ips must be a list")
    for item in wanted:
        if not isinstance(item, dict) or not set(item) <= {"subnet_id", "ip_address"}:
            raise InvalidInput(f"Invalid data format for fixed IP: '{item}'")
        sub = None
        if item.get("subnet_id"):
            sub = next((x for x in subs if x.id == item["subnet_id"]), None)
            if sub is None:
                raise NeutronBadRequest("InvalidInput", f"Invalid input for operation: "
                                        f"Failed to create port on network {net.id}, "
                                        "because fixed_ips included invalid subnet "
                                        f"{item['subnet_id']}.")
        address = item.get("ip_address")
        if address is not None:
            ip = ipam.parse_ip(address)
            if sub is None:
                sub = next((x for x in subs if ip in ipaddress.ip_network(x.cidr)), None)
            if sub is None:
                raise NeutronBadRequest("InvalidIpForNetwork",
                                        f"IP address {address} is not a valid IP for any of "
                                        "the subnets on the specified network.")
        if sub is None:
            raise InvalidInput(f"Invalid data format for fixed IP: '{item}'")
        ipam.allocate(s, sub, port.id, None if address is None else str(address))


def new_port(s: Session, net: NetworkRecord, project_id: str, data: dict[str, Any],
             *, group_ids: list[str] | None = None) -> Port:
    """A port on ``net`` with its fixed IPs (asked for or the next free), a MAC and
    security groups (given, or the owner's ``default``)."""
    mac = data.get("mac_address")
    if mac is not None:
        mac = str(mac).lower()
        parts = mac.split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef"
                                                           for c in p) for p in parts) \
                or int(parts[0], 16) & 1:
            raise InvalidInput(f"'{mac}' is not a valid MAC address")
        if s.exec(select(Port.id).where(Port.mac_address == mac)).first() is not None:
            raise NeutronConflict("MacAddressInUse", f"Unable to complete operation for "
                                  f"network {net.id}. The mac address {mac} is in use.")
    if group_ids is None:
        if "security_groups" in data:
            group_ids = group_ids_of(s, project_id, data["security_groups"])
        else:
            group_ids = [sg.ensure_default(s, project_id).id]
    port = Port(network_id=net.id, project_id=project_id, name=string_field(data, "name"),
                description=string_field(data, "description"),
                mac_address=mac or ipam.new_mac(s),
                admin_state_up=bool_field(data, "admin_state_up", True),
                device_id=string_field(data, "device_id"),
                device_owner=string_field(data, "device_owner"),
                port_security_enabled=bool_field(data, "port_security_enabled", True),
                security_group_ids=group_ids)
    s.add(port)
    s.flush()
    assign_fixed_ips(s, net, port, data.get("fixed_ips"))
    return port
