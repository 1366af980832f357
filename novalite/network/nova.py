"""What Nova asks of the network: a boot's ``networks`` and ``security_groups``
checked (with Nova's 400s), a server's security groups and ports, the
``addSecurityGroup``/``removeSecurityGroup`` actions and the ``os-networks`` proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import Session, col, select

from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import (
    Instance,
    InstanceRow,
    NetworkRecord,
    Port,
    SecurityGroup,
)
from novalite.exceptions import BadRequest, Conflict, NotFound
from novalite.network import ipam
from novalite.network import security_groups as sg
from novalite.network.errors import NeutronConflict, NeutronNotFound
from novalite.network.ports import default_network, free_port, port_info, refresh_addresses
from novalite.network.records import find_group, new_port, rules_of, subnets_of, visible
from novalite.network.views import nova_network_view, nova_rule, port_view

T = TypeVar("T")


class Conflict409(NeutronConflict):
    """A port given to a boot is bound to another server (Nova's PortInUse, 409)."""

    def __init__(self, message: str) -> None:
        super().__init__("PortInUse", message)


def _check_fixed_ip(s: Session, network_id: str, subs: list[Any], fixed: str) -> None:
    """Nova's 400s for a fixed IP asked of a network: not an address, outside its
    subnets (or their network or broadcast address), or taken."""
    try:
        ip = ipaddress.ip_address(fixed)
    except ValueError:
        raise BadRequest(f"Invalid fixed IP address ({fixed})") from None
    sub = next((x for x in subs if ip in ipaddress.ip_network(x.cidr)), None)
    if sub is None or ip in (ipaddress.ip_network(sub.cidr).network_address,
                             ipaddress.ip_network(sub.cidr).broadcast_address):
        raise BadRequest(f"Fixed IP address {fixed} is not a valid ip address for the "
                         f"network {network_id}.")
    if ipam.holder(s, sub.id, str(ip)) or sub.gateway_ip == str(ip):
        raise BadRequest(f"Fixed IP address {fixed} is already in use on instance.")


class NovaNetworking:
    """Nova's side of networking, mixed into :class:`~novalite.network.service.NetworkAPI`."""

    db: Database

    if TYPE_CHECKING:  # NetworkAPI's own
        async def _write(self, ctx: AuthContext, fn: Callable[[Session], T],
                         groups: Callable[[], set[str]] | None = None) -> T: ...

        async def list_networks(self, ctx: AuthContext, query: Any
                                ) -> list[dict[str, Any]]: ...

        async def list_subnets(self, ctx: AuthContext, query: Any
                               ) -> list[dict[str, Any]]: ...

    # -- Nova's view of networking ---------------------------------------------------
    async def server_groups(self, ctx: AuthContext, instance: Instance | InstanceRow
                            ) -> list[dict[str, Any]]:
        """The security groups of a server's ports (Nova's ``os-security-groups``)."""
        def work(s: Session) -> list[dict[str, Any]]:
            ids: list[str] = []
            for port in s.exec(select(Port).where(Port.device_id == instance.uuid)).all():
                ids.extend(g for g in port.security_group_ids if g not in ids)
            groups = [s.get(SecurityGroup, g) for g in ids]
            rules = rules_of(s, ids)
            out = []
            for g in groups:
                if g is None:
                    continue
                out.append({"id": g.id, "name": g.name, "description": g.description,
                            "tenant_id": g.project_id,
                            "rules": [nova_rule(r, g, s.get(SecurityGroup, r.remote_group_id)
                                                if r.remote_group_id else None)
                                      for r in rules[g.id] if r.direction == "ingress"]})
            return out

        return await self.db.read(work)


    async def change_server_group(self, ctx: AuthContext, instance: Instance | InstanceRow,
                                  name: str, add: bool) -> None:
        """``addSecurityGroup``/``removeSecurityGroup``: every port of the server."""
        touched: set[str] = set()

        def work(s: Session) -> None:
            group = find_group(s, instance.project_id, name)
            if group is None:
                raise NeutronNotFound("SecurityGroup", name)
            ports = s.exec(select(Port).where(Port.device_id == instance.uuid)).all()
            if not ports:
                raise BadRequest("No ports found for the instance: it has no network "
                                 "interface to add a security group to.")
            if add and all(group.id in p.security_group_ids for p in ports):
                raise BadRequest(f"Security group {name} is already associated with the "
                                 f"instance {instance.uuid}")
            if not add and not any(group.id in p.security_group_ids for p in ports):
                raise BadRequest(f"Security group {name} not associated with the instance "
                                 f"{instance.uuid}")
            for port in ports:
                current = list(port.security_group_ids)
                if add and group.id not in current:
                    current.append(group.id)
                elif not add and group.id in current:
                    current.remove(group.id)
                port.security_group_ids = current
                touched.update(current)
                s.add(port)
            touched.add(group.id)
            refresh_addresses(s, instance.uuid)

        await self._write(ctx, work, lambda: touched)


    async def server_ports(self, ctx: AuthContext, instance_uuid: str
                           ) -> list[dict[str, Any]]:
        """The ports of a server as Neutron shows them (``os-interface``)."""
        def work(s: Session) -> list[dict[str, Any]]:
            ports = s.exec(select(Port).where(Port.device_id == instance_uuid)
                           .order_by(col(Port.created_at))).all()
            fixed = ipam.fixed_ips(s, [p.id for p in ports])
            return [port_view(p, fixed[p.id]) for p in ports]

        return await self.db.read(work)


    async def attach_port(self, ctx: AuthContext, instance: Instance | InstanceRow,
                          net_id: str | None, port_id: str | None, fixed_ip: str | None,
                          default_name: str) -> tuple[str, list[dict[str, Any]]]:
        """``os-interface`` attach, the network's part: bind the caller's free port, or
        make one (Nova-made: deleted at detach) on ``net_id`` (else the default
        network) with ``fixed_ip`` if given, bound to the server's host. Returns the
        port's id and its addresses as its compute host reads them. Nova's answers:
        404 for a port or network the caller cannot see, 409 for a port in use, 400
        for a fixed IP outside the network or taken."""
        touched: set[str] = set()
        owner = f"compute:{getattr(instance, 'availability_zone', None) or 'nova'}"

        def work(s: Session) -> tuple[str, list[dict[str, Any]]]:
            if port_id:
                port = s.get(Port, port_id)
                if port is None or not visible(ctx, port.project_id):
                    raise NotFound(f"Port {port_id} could not be found.")
                if port.device_id:
                    raise Conflict(f"Port {port_id} is still in use.")
                port.device_id, port.device_owner = instance.uuid, owner
            else:
                net = s.get(NetworkRecord, net_id) if net_id else \
                    default_network(s, default_name)
                if net is None or not visible(ctx, net.project_id, net.shared):
                    raise NotFound(f"Network {net_id} could not be found.")
                subs = subnets_of(s, [net.id])[net.id]
                if not subs:
                    raise BadRequest(f"Network {net.id} requires a subnet in order to "
                                     "attach an interface.")
                if fixed_ip:
                    _check_fixed_ip(s, net.id, subs, fixed_ip)
                port = new_port(s, net, instance.project_id, {
                    "device_id": instance.uuid, "device_owner": owner,
                    "fixed_ips": [{"ip_address": fixed_ip}] if fixed_ip else None})
                port.nova_created = True
            port.binding_host = instance.host or ""
            s.add(port)
            s.flush()
            refresh_addresses(s, instance.uuid)
            touched.update(port.security_group_ids)
            return port.id, port_info(s, port)

        return await self._write(ctx, work, lambda: touched)

    async def detach_port(self, ctx: AuthContext, instance_uuid: str, port_id: str) -> None:
        """``os-interface`` detach, the network's part (after the guest let the NIC
        go): a port Nova made is deleted, a port the user gave is free again."""
        touched: set[str] = set()

        def work(s: Session) -> None:
            port = s.get(Port, port_id)
            if port is None or port.device_id != instance_uuid:
                return
            touched.update(port.security_group_ids)
            free_port(s, port)
            s.flush()
            refresh_addresses(s, instance_uuid)

        await self._write(ctx, work, lambda: touched)

    async def resolve_boot(self, ctx: AuthContext, requested: list[dict[str, Any]] | None,
                           groups: list[str], count: int) -> tuple[list[dict[str, Any]],
                                                                     list[str]]:
        """Check a boot's ``networks`` (each ``{"uuid", "fixed_ip"}`` or ``{"port"}``) and
        ``security_groups`` (names or ids) as Nova does, with its 400s; returns the
        requests with network ids resolved, and the security group ids."""
        if not requested and groups in ([], [sg.DEFAULT]):
            return [], []  # the conductor puts the port in the project's default group

        def work(s: Session) -> tuple[list[dict[str, Any]], list[str]]:
            group_ids = []
            for name in groups or [sg.DEFAULT]:
                group = find_group(s, ctx.project_id, name)
                if group is None:
                    raise BadRequest(f"Security group {name} not found.")
                if group.id not in group_ids:
                    group_ids.append(group.id)
            out: list[dict[str, Any]] = []
            for req in requested or []:
                if req.get("port"):
                    port = s.get(Port, req["port"])
                    if port is None or not visible(ctx, port.project_id):
                        raise BadRequest(f"Port id {req['port']} could not be found.")
                    if port.device_id:
                        raise Conflict409(f"Port {port.id} is still in use.")
                    if count > 1:
                        raise BadRequest("Multiple instances cannot be booted with a "
                                         "given port")
                    out.append({"port_id": port.id, "network_id": port.network_id})
                    continue
                net = s.get(NetworkRecord, req["uuid"])
                if net is None or not visible(ctx, net.project_id, net.shared):
                    raise BadRequest(f"Network {req['uuid']} could not be found.")
                subs = subnets_of(s, [net.id])[net.id]
                if not subs:
                    raise BadRequest(f"Network {net.id} requires a subnet in order to boot "
                                     "instances on.")
                fixed = req.get("fixed_ip")
                if fixed:
                    if count > 1:
                        raise BadRequest("Multiple instances cannot be booted with a "
                                         "given fixed IP")
                    _check_fixed_ip(s, net.id, subs, fixed)
                out.append({"network_id": net.id, "fixed_ip": fixed or None})
            return out, group_ids

        return await self.db.write(work)


    async def tenant_networks(self, ctx: AuthContext) -> list[dict[str, Any]]:
        """The networks the caller may boot on, as Nova's ``os-tenant-networks`` shows
        them: id, label and the first subnet's CIDR."""
        nets = await self.list_networks(ctx, {})
        subnets = {x["id"]: x for x in await self.list_subnets(ctx, {})}
        return [{"id": n["id"], "label": n["name"],
                 "cidr": next((subnets[i]["cidr"] for i in n["subnets"] if i in subnets),
                              None)} for n in nets]

    async def nova_networks(self, ctx: AuthContext) -> list[dict[str, Any]]:
        """Neutron's networks as Nova's ``os-networks`` proxy lists them."""
        nets = await self.list_networks(ctx, {})
        subnets = {x["id"]: x for x in await self.list_subnets(ctx, {})}
        return [nova_network_view(n, [subnets[i] for i in n["subnets"] if i in subnets])
                for n in nets]
