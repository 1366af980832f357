"""Security groups, Neutron's model: a ``default`` group per project (made on the
project's first use) that lets all traffic out and lets in only members of the
same group; rules by direction, protocol, port range, remote IP prefix or remote
group (ethertype IPv4 or IPv6).

:func:`port_rules` resolves a port's rules to plain data for its compute host,
remote groups expanded to their members' addresses; :func:`ports_affected`
names the ports whose resolved rules change when a group's rules or members do.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlmodel import Session, col, select

from novalite.db.models import IPAllocation, Port, SecurityGroup, SecurityGroupRule, utcnow
from novalite.network.errors import InvalidInput, NeutronBadRequest, NeutronConflict

DEFAULT = "default"
#: Protocol names Neutron takes and their IP protocol numbers.
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}
#: The fields two rules are compared on for Neutron's duplicate check.
_IDENTITY = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
             "remote_ip_prefix", "remote_group_id")


def ensure_default(s: Session, project_id: str) -> SecurityGroup:
    """The project's ``default`` group, made with Neutron's rules on first use."""
    found = s.exec(select(SecurityGroup).where(SecurityGroup.project_id == project_id,
                                               SecurityGroup.name == DEFAULT)).first()
    if found is not None:
        return found
    group = SecurityGroup(project_id=project_id, name=DEFAULT,
                          description="Default security group")
    s.add(group)
    s.flush()
    for direction, remote in (("egress", None), ("ingress", group.id)):
        s.add(SecurityGroupRule(security_group_id=group.id, project_id=project_id,
                                direction=direction, ethertype="IPv4",
                                remote_group_id=remote))
    s.flush()
    return group


def _port(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"'{value}' is not an integer for {name}")
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"'{value}' is not an integer for {name}") from None
    return number


def check_rule(body: dict[str, Any]) -> dict[str, Any]:
    """A rule's fields from a create body, normalized and checked as Neutron does."""
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise InvalidInput(f"'{direction}' is not in ['ingress', 'egress'] for direction")
    ethertype = body.get("ethertype") or "IPv4"
    if ethertype not in ("IPv4", "IPv6"):
        raise NeutronBadRequest("SecurityGroupRuleInvalidEtherType",
                                f"Security group rule for ethertype '{ethertype}' not "
                                "supported. Allowed values are ['IPv4', 'IPv6'].")
    protocol = body.get("protocol")
    if protocol is not None:
        protocol = str(protocol).lower()
        if protocol.isdigit():
            number = int(protocol)
            if not 0 <= number <= 255:
                raise NeutronBadRequest("SecurityGroupRuleInvalidProtocol",
                                        f"Security group rule protocol {protocol} not "
                                        "supported.")
            names = {v: k for k, v in PROTOCOLS.items()}
            protocol = names.get(number, protocol)
        elif protocol in ("any", ""):
            protocol = None
        elif protocol not in PROTOCOLS:
            raise NeutronBadRequest("SecurityGroupRuleInvalidProtocol",
                                    f"Security group rule protocol {protocol} not supported. "
                                    f"Only protocol values {sorted(PROTOCOLS)} and integer "
                                    "representations [0 to 255] are supported.")
    low = _port(body.get("port_range_min"), "port_range_min")
    high = _port(body.get("port_range_max"), "port_range_max")
    if (low is not None or high is not None) and protocol is None:
        raise NeutronBadRequest("SecurityGroupProtocolRequiredWithPorts",
                                "Must also specify protocol if port range is given.")
    if protocol in ("tcp", "udp", "sctp"):
        if low is not None and high is None:
            high = low
        for value in (low, high):
            if value is not None and not 1 <= value <= 65535:
                raise NeutronBadRequest("SecurityGroupInvalidPortValue",
                                        f"Invalid value for port {value}.")
        if low is not None and high is not None and low > high:
            raise NeutronBadRequest("SecurityGroupInvalidPortRange",
                                    "For TCP/UDP protocols, port_range_min must be <= "
                                    "port_range_max")
    elif protocol in ("icmp", "icmpv6"):
        for value, field in ((low, "type"), (high, "code")):
            if value is not None and not 0 <= value <= 255:
                raise NeutronBadRequest("SecurityGroupInvalidIcmpValue",
                                        f"Invalid value for ICMP {field} (port_range_"
                                        f"{'min' if field == 'type' else 'max'}) {value}. "
                                        "It must be 0 to 255.")
        if low is None and high is not None:
            raise NeutronBadRequest("SecurityGroupMissingIcmpType",
                                    f"ICMP code (port-range-max) {high} is provided but "
                                    "ICMP type (port-range-min) is missing.")
    prefix = body.get("remote_ip_prefix")
    remote_group = body.get("remote_group_id")
    if prefix is not None and remote_group is not None:
        raise NeutronBadRequest("SecurityGroupRemoteGroupAndRemoteIpPrefix",
                                "Only remote_ip_prefix or remote_group_id may be provided.")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise InvalidInput(f"'{prefix}' is not a valid IP subnet") from None
        if f"IPv{net.version}" != ethertype:
            raise NeutronBadRequest("SecurityGroupRuleParameterConflict",
                                    f"Conflicting value ethertype {ethertype} for CIDR "
                                    f"{prefix}")
        # Kept as given (an address with its prefix length, as Neutron keeps it);
        # matched and enforced as its network (:func:`normalized_cidr`).
        prefix = str(ipaddress.ip_interface(str(prefix)))
    return {"direction": direction, "ethertype": ethertype, "protocol": protocol,
            "port_range_min": low, "port_range_max": high, "remote_ip_prefix": prefix,
            "remote_group_id": remote_group,
            "description": str(body.get("description") or "")}


def normalized_cidr(prefix: str | None) -> str | None:
    """The network of a rule's ``remote_ip_prefix`` (Neutron's ``normalized_cidr``:
    10.2.3.0/24 for 10.2.3.124/24), what is matched and enforced."""
    return str(ipaddress.ip_network(prefix, strict=False)) if prefix else None


def check_duplicate(s: Session, group_id: str, fields: dict[str, Any]) -> None:
    """Neutron's 409 for a rule that exists already in the group (prefixes compared as
    their networks)."""
    wanted = {**fields, "remote_ip_prefix": normalized_cidr(fields["remote_ip_prefix"])}
    for rule in s.exec(select(SecurityGroupRule).where(
            SecurityGroupRule.security_group_id == group_id)).all():
        have = {k: getattr(rule, k) for k in _IDENTITY}
        have["remote_ip_prefix"] = normalized_cidr(have["remote_ip_prefix"])
        if all(have[k] == wanted[k] for k in _IDENTITY):
            raise NeutronConflict("SecurityGroupRuleExists",
                                  f"Security group rule already exists. Rule id is {rule.id}.")


def _members(s: Session, group_ids: set[str]) -> dict[str, list[str]]:
    """group id -> the addresses of the ports in it."""
    out: dict[str, list[str]] = {g: [] for g in group_ids}
    if not group_ids:
        return out
    ports = [p for p in s.exec(select(Port)).all()
             if group_ids.intersection(p.security_group_ids)]
    if not ports:
        return out
    addresses: dict[str, list[str]] = {}
    for row in s.exec(select(IPAllocation).where(
            col(IPAllocation.port_id).in_([p.id for p in ports]))).all():
        addresses.setdefault(row.port_id, []).append(row.address)
    for port in ports:
        for g in group_ids.intersection(port.security_group_ids):
            out[g].extend(addresses.get(port.id, []))
    return {g: sorted(set(a), key=ipaddress.ip_address) for g, a in out.items()}


def port_rules(s: Session, group_ids: list[str]) -> list[dict[str, Any]]:
    """The rules a port in ``group_ids`` carries, as plain data for its compute host."""
    if not group_ids:
        return []
    rules = s.exec(select(SecurityGroupRule).where(
        col(SecurityGroupRule.security_group_id).in_(group_ids))).all()
    remote = {r.remote_group_id for r in rules if r.remote_group_id}
    members = _members(s, remote)
    out = []
    for r in sorted(rules, key=lambda r: (r.direction, r.created_at, r.id)):
        out.append({"direction": r.direction, "ethertype": r.ethertype,
                    "protocol": r.protocol, "port_range_min": r.port_range_min,
                    "port_range_max": r.port_range_max,
                    "remote_ip_prefix": normalized_cidr(r.remote_ip_prefix),
                    "remote_group_id": r.remote_group_id,
                    "remote_group_addresses": list(members.get(r.remote_group_id or "", []))})
    return out


def ports_affected(s: Session, group_ids: set[str]) -> list[Port]:
    """Bound ports whose resolved rules depend on ``group_ids``: ports in those groups,
    and ports of groups with a rule naming one of them as its remote group."""
    referring = set(s.exec(select(SecurityGroupRule.security_group_id).where(
        col(SecurityGroupRule.remote_group_id).in_(group_ids))).all()) if group_ids else set()
    wanted = group_ids | referring
    return [p for p in s.exec(select(Port).where(Port.binding_host != "")).all()
            if wanted.intersection(p.security_group_ids)]


def touch(group: SecurityGroup) -> None:
    group.updated_at = utcnow()
