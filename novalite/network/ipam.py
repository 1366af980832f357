"""Addresses: subnets' allocation pools, fixed IPs of ports, MAC addresses.

An address is held by one row of ``ip_allocations`` whose primary key is
(subnet, address): two ports can never hold the same address, whatever races.
Addresses are handed out lowest first from the subnet's allocation pools; the
gateway is never in a pool.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

from sqlmodel import Session, col, select

from novalite.db.models import IPAllocation, NetworkRecord, Port, Subnet
from novalite.network.errors import InvalidInput, NeutronBadRequest, NeutronConflict


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    """``cidr`` as an IPv4 network (host bits must be zero); 400 otherwise."""
    try:
        net = ipaddress.ip_network(str(cidr), strict=True)
    except ValueError:
        raise InvalidInput(f"'{cidr}' is not a valid IP subnet") from None
    if net.version != 4:
        raise InvalidInput("only IPv4 subnets (ip_version 4) are supported")
    if net.prefixlen > 30:
        raise InvalidInput(f"'{cidr}' is too small: a subnet needs at least a /30")
    return net


def parse_ip(value: Any, field: str = "ip_address") -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        raise InvalidInput(f"'{value}' is not a valid IP address") from None
    if ip.version != 4:
        raise InvalidInput(f"'{value}' is not a valid IPv4 address for {field}")
    assert isinstance(ip, ipaddress.IPv4Address)
    return ip


def default_pools(net: ipaddress.IPv4Network, gateway: str | None) -> list[dict[str, str]]:
    """Neutron's default allocation pools: every host address but the gateway."""
    hosts = list(net.hosts())
    if gateway is None:
        return [{"start": str(hosts[0]), "end": str(hosts[-1])}]
    gw = ipaddress.IPv4Address(gateway)
    pools = []
    below = [h for h in hosts if h < gw]
    above = [h for h in hosts if h > gw]
    for part in (below, above):
        if part:
            pools.append({"start": str(part[0]), "end": str(part[-1])})
    return pools


def check_pools(net: ipaddress.IPv4Network, pools: Any, gateway: str | None
                ) -> list[dict[str, str]]:
    """User-given ``allocation_pools``, checked as Neutron checks them."""
    if not isinstance(pools, list):
        raise InvalidInput("allocation_pools must be a list")
    out = []
    ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for pool in pools:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise InvalidInput("each allocation pool is {\"start\": ..., \"end\": ...}")
        start, end = parse_ip(pool["start"]), parse_ip(pool["end"])
        if start not in net or end not in net or start > end \
                or start == net.network_address or end == net.broadcast_address:
            raise NeutronBadRequest("InvalidAllocationPool",
                                    f"The allocation pool {start}-{end} spans beyond the "
                                    f"subnet cidr {net}.")
        if gateway is not None and start <= ipaddress.IPv4Address(gateway) <= end:
            raise NeutronConflict("GatewayConflictWithAllocationPools",
                                  f"Gateway ip {gateway} conflicts with allocation pool "
                                  f"{start}-{end}.")
        for a, b in ranges:
            if start <= b and a <= end:
                raise NeutronBadRequest("OverlappingAllocationPools",
                                        f"Found overlapping allocation pools: {a}-{b} and "
                                        f"{start}-{end} for subnet {net}.")
        ranges.append((start, end))
        out.append({"start": str(start), "end": str(end)})
    return out


def in_pools(subnet: Subnet, address: str) -> bool:
    ip = ipaddress.IPv4Address(address)
    return any(ipaddress.IPv4Address(p["start"]) <= ip <= ipaddress.IPv4Address(p["end"])
               for p in subnet.allocation_pools)


def new_mac(s: Session) -> str:
    """A free MAC in Neutron's (and Nova's) ``fa:16:3e`` prefix."""
    while True:
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
        if s.exec(select(Port.id).where(Port.mac_address == mac)).first() is None:
            return mac


def holder(s: Session, subnet_id: str, address: str) -> str | None:
    """The port holding ``address`` on the subnet, if any."""
    return s.exec(select(IPAllocation.port_id).where(IPAllocation.subnet_id == subnet_id,
                                                     IPAllocation.address == address)).first()


def allocate(s: Session, subnet: Subnet, port_id: str, address: str | None = None
             ) -> str:
    """Give ``port_id`` ``address`` (checked: inside the subnet, not the gateway, free)
    or the lowest free address of the subnet's pools; 409 when none is left."""
    net = ipaddress.IPv4Network(subnet.cidr)
    if address is not None:
        ip = parse_ip(address)
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise InvalidInput(f"IP address {address} is not a valid IP for the specified "
                               "subnet")
        if subnet.gateway_ip == str(ip):
            raise NeutronConflict("IpAddressInUse",
                                  f"IP address {ip} already allocated in subnet {subnet.id}")
        if holder(s, subnet.id, str(ip)) is not None:
            raise NeutronConflict("IpAddressAlreadyAllocated",
                                  f"IP address {ip} already allocated in subnet {subnet.id}")
        chosen = str(ip)
    else:
        used = {ipaddress.IPv4Address(a) for a in s.exec(
            select(IPAllocation.address).where(IPAllocation.subnet_id == subnet.id)).all()}
        chosen = ""
        for pool in subnet.allocation_pools:
            ip = ipaddress.IPv4Address(pool["start"])
            end = ipaddress.IPv4Address(pool["end"])
            while ip <= end:
                if ip not in used:
                    chosen = str(ip)
                    break
                ip += 1
            if chosen:
                break
        if not chosen:
            net_row = s.get(NetworkRecord, subnet.network_id)
            label = net_row.name if net_row is not None and net_row.name \
                else subnet.network_id
            raise NeutronConflict("IpAddressGenerationFailure",
                                  f"No more IP addresses available on network {label} "
                                  f"({subnet.cidr}).")
    s.add(IPAllocation(subnet_id=subnet.id, address=chosen, network_id=subnet.network_id,
                       port_id=port_id))
    s.flush()
    return chosen


def fixed_ips(s: Session, port_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """port id -> its ``fixed_ips`` (``[{"subnet_id", "ip_address"}]``)."""
    out: dict[str, list[dict[str, str]]] = {p: [] for p in port_ids}
    if not port_ids:
        return out
    rows = s.exec(select(IPAllocation).where(col(IPAllocation.port_id).in_(port_ids))).all()
    for row in sorted(rows, key=lambda r: ipaddress.ip_address(r.address)):
        out[row.port_id].append({"subnet_id": row.subnet_id, "ip_address": row.address})
    return out


def release_port(s: Session, port_id: str) -> None:
    for row in s.exec(select(IPAllocation).where(IPAllocation.port_id == port_id)).all():
        s.delete(row)
