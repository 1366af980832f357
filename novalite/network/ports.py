"""Ports of servers: allocated by the conductor at build, released at delete, and
described to the compute host as plain data (:func:`port_info`).

``networks: "auto"`` puts a server on the default network (``[network] name`` and
``cidr``, created shared at first start by :func:`ensure_default_network`);
``"none"`` gives it no port; a list of requests (``{"network_id", "fixed_ip"}`` or
``{"port_id"}``, checked by the API first) gives one port per request, in order.
A port novalite created for a boot is deleted with the server; a port the user
created and gave to the boot is unbound and kept, as Neutron does.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlmodel import Session, col, select

from novalite.config import Config
from novalite.db.models import (
    ComputeNode,
    FixedIP,
    Instance,
    IPAllocation,
    NetworkRecord,
    Port,
    SecurityGroup,
    Subnet,
    utcnow,
)
from novalite.network import DEFAULT_MTU, bridge_name, ipam
from novalite.network import security_groups as sg
from novalite.network.errors import NeutronNotFound


def port_info(s: Session, port: Port) -> list[dict[str, Any]]:
    """A port as its compute host and the server's views read it: one dict per
    fixed IP (the seam with ``novalite.network.host``; see the package docstring)."""
    net = s.get(NetworkRecord, port.network_id)
    rules = sg.port_rules(s, list(port.security_group_ids)) \
        if port.port_security_enabled else []
    groups = [s.get(SecurityGroup, g) for g in port.security_group_ids]
    names = [g.name for g in groups if g is not None]
    out = []
    for alloc in s.exec(select(IPAllocation).where(IPAllocation.port_id == port.id)).all():
        sub = s.get(Subnet, alloc.subnet_id)
        if sub is None:
            continue
        out.append({"network": net.name if net else "", "network_id": port.network_id,
                    "port_id": port.id, "bridge": bridge_name(port.network_id),
                    "address": alloc.address, "cidr": sub.cidr,
                    "gateway": sub.gateway_ip or "", "mac": port.mac_address, "version": 4,
                    "dns": list(sub.dns_nameservers), "mtu": net.mtu if net else DEFAULT_MTU,
                    "security_group_ids": list(port.security_group_ids),
                    "security_group_names": names,
                    "security_rules": rules if port.port_security_enabled else [],
                    "port_security_enabled": port.port_security_enabled})
    return out


def default_network(s: Session, name: str) -> NetworkRecord | None:
    """The shared network ``networks: "auto"`` boots on (``[network] name``)."""
    return s.exec(select(NetworkRecord).where(NetworkRecord.name == name,
                                              NetworkRecord.shared == True)  # noqa: E712
                  .order_by(col(NetworkRecord.created_at))).first()


def ensure_default_network(s: Session, cfg: Config) -> NetworkRecord:
    """Create the default network and its subnet on first start (the gateway is the
    first address, as nova-network's was); adopt addresses of the fixed_ips table
    (servers booted before networks existed) as ports on it."""
    net = default_network(s, cfg.network.name)
    if net is None:
        cidr = ipaddress.IPv4Network(cfg.network.cidr)
        hosts = list(cidr.hosts())
        net = NetworkRecord(name=cfg.network.name, project_id="", shared=True,
                            description="novalite's default network")
        s.add(net)
        s.flush()
        s.add(Subnet(network_id=net.id, project_id="", name=f"{cfg.network.name}-subnet",
                     cidr=str(cidr), gateway_ip=str(hosts[0]),
                     allocation_pools=ipam.default_pools(cidr, str(hosts[0]))))
        s.flush()
    sub = s.exec(select(Subnet).where(Subnet.network_id == net.id)).first()
    for old in s.exec(select(FixedIP)).all():
        if sub is not None:
            port = Port(network_id=net.id, project_id="", mac_address=old.mac,
                        device_id=old.instance_uuid, device_owner="compute:nova",
                        nova_created=True)
            s.add(port)
            s.flush()
            s.add(IPAllocation(subnet_id=sub.id, address=old.address, network_id=net.id,
                               port_id=port.id))
        s.delete(old)
    return net


def allocate_for_instance(s: Session, instance: dict[str, Any], networks: str,
                          spec: dict[str, Any], host: str, default_name: str
                          ) -> list[dict[str, Any]]:
    """Create (or bind) the server's ports on ``host``; its ``addresses``."""
    uuid, project = instance["uuid"], instance["project_id"]
    owner = f"compute:{instance.get('availability_zone') or 'nova'}"
    requests: list[dict[str, Any]] = list(spec.get("requested_networks") or [])
    if networks == "none":
        return []
    if not requests:  # "auto"
        net = default_network(s, default_name)
        if net is None:
            return []
        requests = [{"network_id": net.id, "fixed_ip": None}]
    group_ids = list(spec.get("security_group_ids") or [])
    if not group_ids:
        group_ids = [sg.ensure_default(s, project).id]
    ports: list[Port] = []
    for req in requests:
        if req.get("port_id"):
            port = s.get(Port, req["port_id"])
            if port is None:
                raise NeutronNotFound("Port", req["port_id"])
            port.device_id, port.device_owner = uuid, owner
        else:
            found = s.get(NetworkRecord, req["network_id"])
            if found is None:
                raise NeutronNotFound("Network", req["network_id"])
            from novalite.network.records import new_port

            fixed = [{"ip_address": req["fixed_ip"]}] if req.get("fixed_ip") else None
            port = new_port(s, found, project, {"device_id": uuid, "device_owner": owner,
                                                "fixed_ips": fixed},
                            group_ids=group_ids)
            port.nova_created = True
        port.binding_host = host
        port.updated_at = utcnow()
        s.add(port)
        ports.append(port)
    s.flush()
    return [a for p in ports for a in port_info(s, p)]


def bind_to(s: Session, instance_uuid: str, host: str
            ) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Bind the server's ports to ``host`` (its build goes there); the rule updates
    their groups' other members need (:func:`security_pushes`)."""
    ports = s.exec(select(Port).where(Port.device_id == instance_uuid)).all()
    groups: set[str] = set()
    for port in ports:
        if port.binding_host != host:
            port.binding_host = host
            s.add(port)
        groups.update(port.security_group_ids)
    return security_pushes(s, groups, {p.id for p in ports})


def free_port(s: Session, port: Port) -> None:
    """A port its server no longer has: deleted when Nova made it, else unbound (the
    user's, kept with its addresses)."""
    if port.nova_created:
        ipam.release_port(s, port.id)
        s.delete(port)
    else:
        port.device_id = port.device_owner = port.binding_host = ""
        port.updated_at = utcnow()
        s.add(port)


def release_instance(s: Session, instance_uuid: str
                     ) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The server is gone: delete the ports made for it, unbind the ones it was given,
    and free the fixed_ips rows of servers from before networks existed. Returns the
    rule updates the other members of its groups need."""
    ports = s.exec(select(Port).where(Port.device_id == instance_uuid)).all()
    groups = {g for p in ports for g in p.security_group_ids}
    for port in ports:
        free_port(s, port)
    for row in s.exec(select(FixedIP).where(FixedIP.instance_uuid == instance_uuid)).all():
        s.delete(row)
    return security_pushes(s, groups)


def bound_ports(s: Session, host: str) -> list[dict[str, Any]]:
    """Every port bound to ``host``, as :func:`port_info` (for a compute host that
    rebuilds its network at start)."""
    return [a for p in s.exec(select(Port).where(Port.binding_host == host)).all()
            for a in port_info(s, p)]


def _filtering(s: Session, hosts: set[str]) -> dict[str, bool]:
    """Whether each host filters its ports (it said so in its resource report: a host on
    user-mode networking filters nothing, so its ports need no rule updates, and a
    security group of hundreds of members would cost hundreds of casts per boot).
    A host that has not reported is taken to filter."""
    out: dict[str, bool] = {}
    names = sorted(hosts - {""})
    for i in range(0, len(names), 500):
        for host, caps in s.exec(select(ComputeNode.host, ComputeNode.capabilities).where(
                col(ComputeNode.host).in_(names[i:i + 500]))).all():
            out[host] = bool((caps or {}).get("port_filtering", True))
    return out


def refresh_addresses(s: Session, instance_uuid: str) -> None:
    """Rewrite a server's ``addresses`` (what its views and compute host read) from
    its ports."""
    inst = s.exec(select(Instance).where(Instance.uuid == instance_uuid)).first()
    if inst is None:
        return
    ports = s.exec(select(Port).where(Port.device_id == instance_uuid)
                   .order_by(col(Port.created_at))).all()
    inst.addresses = [a for p in ports for a in port_info(s, p)]
    s.add(inst)


def security_pushes(s: Session, group_ids: set[str], skip: set[str] | None = None
                    ) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(host, port id, rules) of each bound port whose rules depend on ``group_ids``
    (their rules or members changed): what to cast as ``update_port_security``. The
    servers' ``addresses`` are rewritten too, so a compute host that rebuilds its
    ports at start reads the rules in force."""
    s.flush()
    ports = [p for p in sg.ports_affected(s, group_ids) if p.id not in (skip or set())]
    filtering = _filtering(s, {p.binding_host for p in ports})
    ports = [p for p in ports if filtering.get(p.binding_host, True)]
    for device in dict.fromkeys(p.device_id for p in ports if p.device_id):
        refresh_addresses(s, device)
    return [(p.binding_host, p.id, sg.port_rules(s, list(p.security_group_ids))
             if p.port_security_enabled else []) for p in ports]
