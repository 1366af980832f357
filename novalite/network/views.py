"""Neutron's (and Nova's os-networks) views of the networking records: plain dicts."""

from __future__ import annotations

from typing import Any

from novalite.db.models import NetworkRecord, Port, SecurityGroup, SecurityGroupRule, Subnet
from novalite.network.security_groups import normalized_cidr

_TIME = "%Y-%m-%dT%H:%M:%SZ"


def _times(row: Any) -> dict[str, Any]:
    return {"created_at": row.created_at.strftime(_TIME),
            "updated_at": row.updated_at.strftime(_TIME), "revision_number": 0, "tags": []}


def network_view(net: NetworkRecord, subnet_ids: list[str]) -> dict[str, Any]:
    return {"id": net.id, "name": net.name, "tenant_id": net.project_id,
            "project_id": net.project_id, "description": net.description,
            "admin_state_up": net.admin_state_up, "shared": net.shared,
            "router:external": False, "mtu": net.mtu, "status": "ACTIVE",
            "subnets": subnet_ids, "port_security_enabled": True,
            "availability_zone_hints": [], "availability_zones": ["nova"],
            "ipv4_address_scope": None, "ipv6_address_scope": None,
            "is_default": False, **_times(net)}


def subnet_view(sub: Subnet) -> dict[str, Any]:
    return {"id": sub.id, "name": sub.name, "network_id": sub.network_id,
            "tenant_id": sub.project_id, "project_id": sub.project_id,
            "description": sub.description, "cidr": sub.cidr, "ip_version": sub.ip_version,
            "gateway_ip": sub.gateway_ip, "allocation_pools": list(sub.allocation_pools),
            "dns_nameservers": list(sub.dns_nameservers), "host_routes": [],
            "enable_dhcp": sub.enable_dhcp, "ipv6_ra_mode": None,
            "ipv6_address_mode": None, "subnetpool_id": None, "service_types": [],
            **_times(sub)}


def port_view(port: Port, fixed: list[dict[str, str]]) -> dict[str, Any]:
    return {"id": port.id, "name": port.name, "network_id": port.network_id,
            "tenant_id": port.project_id, "project_id": port.project_id,
            "description": port.description, "mac_address": port.mac_address,
            "admin_state_up": port.admin_state_up,
            "status": "ACTIVE" if port.binding_host else "DOWN",
            "device_id": port.device_id, "device_owner": port.device_owner,
            "fixed_ips": fixed, "security_groups": list(port.security_group_ids),
            "port_security_enabled": port.port_security_enabled,
            "binding:host_id": port.binding_host, "binding:vif_type":
                "bridge" if port.binding_host else "unbound",
            "binding:vnic_type": "normal", "binding:profile": {}, "binding:vif_details": {},
            "allowed_address_pairs": [], "extra_dhcp_opts": [], **_times(port)}


def rule_view(rule: SecurityGroupRule) -> dict[str, Any]:
    return {"id": rule.id, "security_group_id": rule.security_group_id,
            "tenant_id": rule.project_id, "project_id": rule.project_id,
            "direction": rule.direction, "ethertype": rule.ethertype,
            "protocol": rule.protocol, "port_range_min": rule.port_range_min,
            "port_range_max": rule.port_range_max, "remote_ip_prefix": rule.remote_ip_prefix,
            "remote_group_id": rule.remote_group_id, "remote_address_group_id": None,
            "normalized_cidr": normalized_cidr(rule.remote_ip_prefix),
            "description": rule.description,
            **_times(rule)}


def group_view(group: SecurityGroup, rules: list[SecurityGroupRule]) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "description": group.description,
            "tenant_id": group.project_id, "project_id": group.project_id,
            "stateful": True, "shared": False,
            "security_group_rules": [rule_view(r) for r in rules], **_times(group)}


def nova_network_view(net: dict[str, Any], subnets: list[dict[str, Any]]) -> dict[str, Any]:
    """One network as Nova's ``os-networks`` shows a Neutron network (Nova's
    ``network_dict``: id and label, everything nova-network had as null)."""
    keys = ("bridge", "bridge_interface", "broadcast", "cidr", "cidr_v6", "created_at",
            "deleted", "deleted_at", "dhcp_server", "dhcp_start", "dns1", "dns2",
            "enable_dhcp", "gateway", "gateway_v6", "host", "injected", "mtu",
            "multi_host", "netmask", "netmask_v6", "priority", "project_id", "rxtx_base",
            "share_address", "updated_at", "vlan", "vpn_private_address",
            "vpn_public_address", "vpn_public_port")
    out: dict[str, Any] = dict.fromkeys(keys)
    out.update({"id": net["id"], "label": net["name"]})
    return out


def nova_ports(protocol: str | None, low: int | None, high: int | None
               ) -> tuple[int | None, int | None]:
    """A rule's port range as Nova shows it: a rule of a protocol for any port is
    1-65535 for TCP and UDP, -1/-1 (any type and code) for the others."""
    if protocol and low is None and high is None:
        return (1, 65535) if protocol.upper() in ("TCP", "UDP") else (-1, -1)
    return low, high


def nova_rule(rule: SecurityGroupRule, group: SecurityGroup,
              remote: SecurityGroup | None) -> dict[str, Any]:
    """An ingress rule as Nova's proxy shows it: any port of TCP/UDP as 1-65535, any
    ICMP type as -1; ``ip_range`` (0.0.0.0/0 when the rule names none) or, for a rule
    whose remote is a group, that group's ``name`` and ``tenant_id``."""
    low, high = nova_ports(rule.protocol, rule.port_range_min, rule.port_range_max)
    view: dict[str, Any] = {"id": rule.id, "parent_group_id": group.id,
                            "ip_protocol": rule.protocol, "from_port": low, "to_port": high,
                            "ip_range": {}, "group": {}}
    if rule.remote_group_id:
        if remote is not None:
            view["group"] = {"name": remote.name, "tenant_id": remote.project_id}
    else:
        view["ip_range"] = {"cidr": rule.remote_ip_prefix or "0.0.0.0/0"}
    return view

