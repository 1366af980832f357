"""Networking without Neutron: fixed addresses from one default network.

``networks: "auto"`` gives each server one address of ``[network] cidr``
(default 10.0.0.0/24): the first is the gateway, the rest are handed out lowest
first. The ``fixed_ips`` table's primary key makes double allocation
impossible; an address is released when its server is deleted.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlmodel import Session, select

from novalite.db.models import FixedIP
from novalite.exceptions import Conflict


class Network:
    """The default network and its address pool."""

    def __init__(self, name: str, cidr: str) -> None:
        self.name = name
        self.net = ipaddress.ip_network(cidr)
        hosts = list(self.net.hosts())
        self.gateway = str(hosts[0])
        self.pool = [str(h) for h in hosts[1:]]

    def allocate(self, s: Session, instance_uuid: str) -> dict[str, Any]:
        """Allocate the lowest free address to ``instance_uuid`` (inside the caller's session)."""
        used = set(s.exec(select(FixedIP.address).where(FixedIP.network == self.name)).all())
        for address in self.pool:
            if address not in used:
                ip = ipaddress.ip_address(address)
                mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in ip.packed[-3:])
                s.add(FixedIP(address=address, network=self.name, instance_uuid=instance_uuid,
                              mac=mac))
                s.flush()
                return {"network": self.name, "address": address, "cidr": str(self.net),
                        "gateway": self.gateway, "mac": mac, "version": 4}
        raise Conflict(f"No more IP addresses available on network {self.name} "
                       f"({self.net})")

    @staticmethod
    def release(s: Session, instance_uuid: str) -> None:
        for row in s.exec(select(FixedIP).where(FixedIP.instance_uuid == instance_uuid)).all():
            s.delete(row)
