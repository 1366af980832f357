"""Networking: nova-network's flat DHCP networks and the Neutron v2.0 subset.

The model and its rules (:mod:`.ipam`: networks, subnets, ports and their fixed
IPs; :mod:`.security_groups`: groups and rules resolved to addresses;
:mod:`.service`: the Neutron API layer) live here, beside the database. What a
compute host does with a port (bridge, tap, dnsmasq, nftables) lives in
``novalite.network.host``, which imports nothing of the database: this module
keeps no database imports either, so importing the host part stays clean.

A port reaches a compute host as plain data, one dict per interface in the
instance's ``addresses`` (:func:`port_info`): ``port_id``, ``network_id``,
``network`` (its name), ``bridge``, ``mac``, ``address``, ``cidr``,
``gateway``, ``dns``, ``mtu``, ``version``, ``security_group_ids`` and
``security_rules`` (each rule a dict with ``direction``, ``ethertype``,
``protocol``, ``port_range_min``, ``port_range_max``, ``remote_ip_prefix``,
``remote_group_id`` and ``remote_group_addresses``, remote groups already
expanded to their members' addresses).
"""

from __future__ import annotations

from typing import Any

#: The MTU of every network (no overlay: the host's Ethernet MTU).
DEFAULT_MTU = 1500


def bridge_name(network_id: str) -> str:
    """The Linux bridge of a network on every compute host: ``nlbr-<8 of its id>``."""
    return "nlbr-" + network_id[:8]


def network_fields(address: dict[str, Any]) -> dict[str, Any]:
    """The contract 1.4 fields of ``NetworkInfo`` from one entry of an instance's
    ``addresses`` (an entry from before networks existed has none of them)."""
    return {"port_id": address.get("port_id", ""),
            "network_id": address.get("network_id", ""),
            "bridge": address.get("bridge", ""),
            "dns": list(address.get("dns") or []),
            "mtu": int(address.get("mtu") or DEFAULT_MTU),
            "security_group_ids": list(address.get("security_group_ids") or []),
            "security_rules": [dict(r) for r in address.get("security_rules") or []],
            "port_security_enabled": bool(address.get("port_security_enabled", True))}
