"""The Neutron v2.0 subset's rules: networks, subnets, ports, security groups and
rules, scoped by project as the compute API is (another project's resource is not
found; an admin sees all; a shared network and its subnets are seen by everyone).

Each method returns Neutron's view of the resource (plain dicts); routes wrap them
in ``{"network": ...}``. When a security group's rules or members change, every
bound port whose resolved rules change is sent to its compute host
(``compute.<host>.update_port_security``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from sqlmodel import Session, col, select

from novalite.config import Config
from novalite.context import AuthContext, RequestContext
from novalite.db.engine import Database
from novalite.db.models import (
    Instance,
    InstanceRow,
    IPAllocation,
    NetworkRecord,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    utcnow,
)
from novalite.exceptions import BadRequest, Forbidden
from novalite.network import DEFAULT_MTU, ipam
from novalite.network import security_groups as sg
from novalite.network.errors import (
    InvalidInput,
    NeutronBadRequest,
    NeutronConflict,
    NeutronNotFound,
)
from novalite.network.ports import port_info
from novalite.rpc import Clients, UnknownTopic

log = structlog.get_logger("novalite.network")
T = TypeVar("T")

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
            "normalized_cidr": rule.remote_ip_prefix, "description": rule.description,
            **_times(rule)}


def group_view(group: SecurityGroup, rules: list[SecurityGroupRule]) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "description": group.description,
            "tenant_id": group.project_id, "project_id": group.project_id,
            "stateful": True, "shared": False,
            "security_group_rules": [rule_view(r) for r in rules], **_times(group)}


def _visible(ctx: AuthContext, project_id: str, shared: bool = False) -> bool:
    return ctx.is_admin or shared or project_id == ctx.project_id


def _project(ctx: AuthContext, body: dict[str, Any]) -> str:
    """The owner of a new resource: the caller's project, or (admins) the one named."""
    wanted = body.get("project_id") or body.get("tenant_id")
    if wanted and wanted != ctx.project_id:
        if not ctx.is_admin:
            raise Forbidden("Only admins may create resources of another project.")
        return str(wanted)
    return ctx.project_id


def _string(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > 255:
        raise InvalidInput(f"'{value}' is not a valid string of at most 255 characters "
                           f"for {key}")
    return value


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidInput(f"'{value}' cannot be converted to boolean for {key}")
    return value


def _only(body: Any, kind: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(kind), dict):
        raise BadRequest(f"Resource body required: {{\"{kind}\": {{...}}}}")
    inner: dict[str, Any] = body[kind]
    unknown = set(inner) - allowed
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    return inner


def network_of(s: Session, ctx: AuthContext, network_id: str) -> NetworkRecord:
    net = s.get(NetworkRecord, network_id)
    if net is None or not _visible(ctx, net.project_id, net.shared):
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
    if group is None or not _visible(ctx, group.project_id):
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


def _filters(query: Any, keys: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in keys:
        values = query.getlist(key) if hasattr(query, "getlist") else (
            [query[key]] if key in query else [])
        if values:
            out[key] = values
    return out


def _match(view: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, wanted in filters.items():
        value = view.get(key)
        if isinstance(value, bool):
            value = str(value).lower()
            wanted = [w.lower() for w in wanted]
        if str(value) not in wanted and value not in wanted:
            return False
    return True


class NetworkAPI:
    """The Neutron subset over the database; casts port security to compute hosts."""

    def __init__(self, db: Database, cfg: Config, rpc: Clients | None) -> None:
        self.db = db
        self.cfg = cfg
        self.rpc = rpc

    async def _write(self, ctx: AuthContext, fn: Callable[[Session], T],
                     groups: Callable[[], set[str]] | None = None) -> T:
        """Run ``fn`` in a write; then push new rules to the ports ``groups()`` touch."""
        pushes: list[tuple[str, str, list[dict[str, Any]]]] = []

        def work(s: Session) -> T:
            result = fn(s)
            pushes.clear()
            if groups is not None:
                s.flush()
                for port in sg.ports_affected(s, groups()):
                    pushes.append((port.binding_host, port.id,
                                   sg.port_rules(s, list(port.security_group_ids))))
            return result

        result = await self.db.write(work)
        await self.push(RequestContext(request_id="req-network", user_id=ctx.user_id,
                                       project_id=ctx.project_id, roles=tuple(ctx.roles)),
                        pushes)
        return result

    async def push(self, context: RequestContext,
                   pushes: list[tuple[str, str, list[dict[str, Any]]]]) -> None:
        """Cast each port's rules to its compute host (a host gone is skipped: it
        reads the rules again when it rebuilds its ports at start)."""
        if self.rpc is None:
            return
        for host, port_id, rules in pushes:
            try:
                await self.rpc.compute(host).update_port_security(context, port_id, rules)
            except UnknownTopic:
                log.warning("compute host not reachable for port security", host=host,
                            port=port_id)

    # -- networks --------------------------------------------------------------------
    async def list_networks(self, ctx: AuthContext, query: Any) -> list[dict[str, Any]]:
        filters = _filters(query, ("id", "name", "shared", "status", "tenant_id",
                                   "project_id", "admin_state_up", "router:external"))

        def work(s: Session) -> list[dict[str, Any]]:
            nets = [n for n in s.exec(select(NetworkRecord).order_by(
                col(NetworkRecord.created_at))).all() if _visible(ctx, n.project_id, n.shared)]
            subs = subnets_of(s, [n.id for n in nets])
            views = [network_view(n, [x.id for x in subs[n.id]]) for n in nets]
            return [v for v in views if _match(v, filters)]

        return await self.db.read(work)

    async def get_network(self, ctx: AuthContext, network_id: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            net = network_of(s, ctx, network_id)
            return network_view(net, [x.id for x in subnets_of(s, [net.id])[net.id]])

        return await self.db.read(work)

    async def create_network(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = _only(body, "network", {"name", "admin_state_up", "shared", "mtu",
                                       "description", "project_id", "tenant_id",
                                       "router:external", "port_security_enabled",
                                       "availability_zone_hints"})
        if _bool(data, "shared", False) and not ctx.is_admin:
            raise Forbidden("(rule:create_network and rule:create_network:shared) is "
                            "disallowed by policy")
        if _bool(data, "router:external", False):
            raise InvalidInput("external networks (router:external) are not supported")
        mtu = data.get("mtu", DEFAULT_MTU)
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 9000:
            raise InvalidInput(f"'{mtu}' is not a valid mtu (68 to 9000)")
        net = NetworkRecord(name=_string(data, "name"), project_id=_project(ctx, data),
                            description=_string(data, "description"),
                            shared=_bool(data, "shared", False),
                            admin_state_up=_bool(data, "admin_state_up", True), mtu=mtu)

        def work(s: Session) -> dict[str, Any]:
            s.add(net)
            s.flush()
            return network_view(net, [])

        return await self.db.write(work)

    async def update_network(self, ctx: AuthContext, network_id: str, body: Any
                             ) -> dict[str, Any]:
        data = _only(body, "network", {"name", "admin_state_up", "shared", "description",
                                       "mtu", "port_security_enabled"})

        def work(s: Session) -> dict[str, Any]:
            net = network_of(s, ctx, network_id)
            if net.project_id != ctx.project_id and not ctx.is_admin:
                raise NeutronNotFound("Network", network_id)
            if "shared" in data:
                if not ctx.is_admin:
                    raise Forbidden("(rule:update_network and rule:update_network:shared) "
                                    "is disallowed by policy")
                net.shared = _bool(data, "shared", net.shared)
            for key in ("name", "description"):
                if key in data:
                    setattr(net, key, _string(data, key))
            if "admin_state_up" in data:
                net.admin_state_up = _bool(data, "admin_state_up", True)
            if "mtu" in data:
                mtu = data["mtu"]
                if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 9000:
                    raise InvalidInput(f"'{mtu}' is not a valid mtu (68 to 9000)")
                net.mtu = mtu
            net.updated_at = utcnow()
            s.add(net)
            s.flush()
            return network_view(net, [x.id for x in subnets_of(s, [net.id])[net.id]])

        return await self.db.write(work)

    async def delete_network(self, ctx: AuthContext, network_id: str) -> None:
        def work(s: Session) -> None:
            net = network_of(s, ctx, network_id)
            if net.project_id != ctx.project_id and not ctx.is_admin:
                raise NeutronNotFound("Network", network_id)
            if s.exec(select(Port.id).where(Port.network_id == net.id,
                                            Port.device_id != "")).first() is not None:
                raise NeutronConflict("NetworkInUse",
                                      f"Unable to complete operation on network {net.id}. "
                                      "There are one or more ports still in use on the "
                                      "network.")
            for port in s.exec(select(Port).where(Port.network_id == net.id)).all():
                ipam.release_port(s, port.id)
                s.delete(port)
            for sub in s.exec(select(Subnet).where(Subnet.network_id == net.id)).all():
                s.delete(sub)
            s.delete(net)

        await self.db.write(work)

    # -- subnets ---------------------------------------------------------------------
    async def list_subnets(self, ctx: AuthContext, query: Any) -> list[dict[str, Any]]:
        filters = _filters(query, ("id", "name", "network_id", "cidr", "ip_version",
                                   "gateway_ip", "tenant_id", "project_id", "enable_dhcp"))

        def work(s: Session) -> list[dict[str, Any]]:
            nets = {n.id: n for n in s.exec(select(NetworkRecord)).all()}
            out = []
            for sub in s.exec(select(Subnet).order_by(col(Subnet.created_at))).all():
                net = nets.get(sub.network_id)
                if net is None or not _visible(ctx, sub.project_id, net.shared):
                    continue
                view = subnet_view(sub)
                if _match(view, filters):
                    out.append(view)
            return out

        return await self.db.read(work)

    def _subnet(self, s: Session, ctx: AuthContext, subnet_id: str) -> Subnet:
        sub = s.get(Subnet, subnet_id)
        if sub is not None:
            net = s.get(NetworkRecord, sub.network_id)
            if net is not None and _visible(ctx, sub.project_id, net.shared):
                return sub
        raise NeutronNotFound("Subnet", subnet_id)

    async def get_subnet(self, ctx: AuthContext, subnet_id: str) -> dict[str, Any]:
        return await self.db.read(lambda s: subnet_view(self._subnet(s, ctx, subnet_id)))

    async def create_subnet(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = _only(body, "subnet", {"name", "network_id", "cidr", "ip_version",
                                      "gateway_ip", "allocation_pools", "dns_nameservers",
                                      "enable_dhcp", "description", "project_id",
                                      "tenant_id", "host_routes"})
        if data.get("ip_version", 4) not in (4, "4"):
            raise InvalidInput("only ip_version 4 is supported")
        if "cidr" not in data or "network_id" not in data:
            raise BadRequest("Failed to parse request. Required attributes 'network_id' "
                             "and 'cidr' must be specified")
        net_addr = ipam.parse_cidr(data["cidr"])
        hosts = list(net_addr.hosts())
        gateway: str | None
        if "gateway_ip" in data and data["gateway_ip"] is None:
            gateway = None
        elif data.get("gateway_ip") is not None:
            gw = ipam.parse_ip(data["gateway_ip"], "gateway_ip")
            if gw not in net_addr or gw in (net_addr.network_address,
                                            net_addr.broadcast_address):
                raise NeutronBadRequest("InvalidInput", "Invalid input for operation: "
                                        "Gateway is not valid on subnet.")
            gateway = str(gw)
        else:
            gateway = str(hosts[0])
        if data.get("allocation_pools"):
            pools = ipam.check_pools(net_addr, data["allocation_pools"], gateway)
        else:
            pools = ipam.default_pools(net_addr, gateway)
        dns = data.get("dns_nameservers") or []
        if not isinstance(dns, list):
            raise InvalidInput("dns_nameservers must be a list")
        dns = [str(ipam.parse_ip(d, "dns_nameservers")) for d in dns]
        if len(set(dns)) != len(dns):
            raise InvalidInput(f"Duplicate nameserver in {dns}")
        project = _project(ctx, data)

        def work(s: Session) -> dict[str, Any]:
            net = network_of(s, ctx, str(data["network_id"]))
            if net.project_id != ctx.project_id and not ctx.is_admin:
                raise Forbidden("(rule:create_subnet and rule:create_subnet:network_owner) "
                                "is disallowed by policy")
            for other in s.exec(select(Subnet).where(Subnet.network_id == net.id)).all():
                if ipaddress.ip_network(other.cidr).overlaps(net_addr):
                    raise NeutronBadRequest(
                        "InvalidInput", f"Invalid input for operation: Requested subnet with "
                        f"cidr: {net_addr} for network: {net.id} overlaps with another "
                        "subnet.")
            sub = Subnet(network_id=net.id, project_id=project, name=_string(data, "name"),
                         description=_string(data, "description"), cidr=str(net_addr),
                         gateway_ip=gateway, allocation_pools=pools, dns_nameservers=dns,
                         enable_dhcp=_bool(data, "enable_dhcp", True))
            s.add(sub)
            s.flush()
            return subnet_view(sub)

        return await self.db.write(work)

    async def update_subnet(self, ctx: AuthContext, subnet_id: str, body: Any
                            ) -> dict[str, Any]:
        data = _only(body, "subnet", {"name", "description", "dns_nameservers",
                                      "enable_dhcp", "gateway_ip"})

        def work(s: Session) -> dict[str, Any]:
            sub = self._subnet(s, ctx, subnet_id)
            if sub.project_id != ctx.project_id and not ctx.is_admin:
                raise NeutronNotFound("Subnet", subnet_id)
            for key in ("name", "description"):
                if key in data:
                    setattr(sub, key, _string(data, key))
            if "enable_dhcp" in data:
                sub.enable_dhcp = _bool(data, "enable_dhcp", True)
            if "dns_nameservers" in data:
                dns = data["dns_nameservers"] or []
                if not isinstance(dns, list):
                    raise InvalidInput("dns_nameservers must be a list")
                sub.dns_nameservers = [str(ipam.parse_ip(d, "dns_nameservers")) for d in dns]
            if "gateway_ip" in data and data["gateway_ip"] != sub.gateway_ip:
                raise InvalidInput("changing gateway_ip is not supported")
            sub.updated_at = utcnow()
            s.add(sub)
            s.flush()
            return subnet_view(sub)

        return await self.db.write(work)

    async def delete_subnet(self, ctx: AuthContext, subnet_id: str) -> None:
        def work(s: Session) -> None:
            sub = self._subnet(s, ctx, subnet_id)
            if sub.project_id != ctx.project_id and not ctx.is_admin:
                raise NeutronNotFound("Subnet", subnet_id)
            if s.exec(select(IPAllocation).where(IPAllocation.subnet_id == sub.id)).first():
                raise NeutronConflict("SubnetInUse",
                                      f"Unable to complete operation on subnet {sub.id}: "
                                      "One or more ports have an IP allocation from this "
                                      "subnet.")
            s.delete(sub)

        await self.db.write(work)

    # -- ports -----------------------------------------------------------------------
    def _port(self, s: Session, ctx: AuthContext, port_id: str) -> Port:
        port = s.get(Port, port_id)
        if port is None or not _visible(ctx, port.project_id):
            raise NeutronNotFound("Port", port_id)
        return port

    async def list_ports(self, ctx: AuthContext, query: Any) -> list[dict[str, Any]]:
        filters = _filters(query, ("id", "name", "network_id", "device_id", "device_owner",
                                   "mac_address", "tenant_id", "project_id", "status"))
        fixed_filters = [v for v in (query.getlist("fixed_ips")
                                     if hasattr(query, "getlist") else [])]

        def work(s: Session) -> list[dict[str, Any]]:
            stmt = select(Port).order_by(col(Port.created_at))
            if "device_id" in filters:
                stmt = stmt.where(col(Port.device_id).in_(filters["device_id"]))
            ports = [p for p in s.exec(stmt).all() if _visible(ctx, p.project_id)]
            fixed = ipam.fixed_ips(s, [p.id for p in ports])
            out = []
            for p in ports:
                view = port_view(p, fixed[p.id])
                if not _match(view, filters):
                    continue
                if fixed_filters and not all(_fixed_match(view["fixed_ips"], f)
                                             for f in fixed_filters):
                    continue
                out.append(view)
            return out

        return await self.db.read(work)

    async def get_port(self, ctx: AuthContext, port_id: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            port = self._port(s, ctx, port_id)
            return port_view(port, ipam.fixed_ips(s, [port.id])[port.id])

        return await self.db.read(work)

    async def create_port(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = _only(body, "port", {"name", "network_id", "fixed_ips", "mac_address",
                                    "admin_state_up", "device_id", "device_owner",
                                    "security_groups", "description", "project_id",
                                    "tenant_id", "port_security_enabled",
                                    "binding:vnic_type"})
        if "network_id" not in data:
            raise BadRequest("Failed to parse request. Required attribute 'network_id' not "
                             "specified")
        project = _project(ctx, data)

        def work(s: Session) -> dict[str, Any]:
            net = network_of(s, ctx, str(data["network_id"]))
            port = new_port(s, net, project, data)
            return port_view(port, ipam.fixed_ips(s, [port.id])[port.id])

        return await self._write(ctx, work)

    async def update_port(self, ctx: AuthContext, port_id: str, body: Any) -> dict[str, Any]:
        data = _only(body, "port", {"name", "description", "admin_state_up",
                                    "security_groups", "port_security_enabled",
                                    "device_id", "device_owner", "fixed_ips"})
        touched: set[str] = set()

        def work(s: Session) -> dict[str, Any]:
            port = self._port(s, ctx, port_id)
            for key in ("name", "description", "device_owner"):
                if key in data:
                    setattr(port, key, _string(data, key))
            if "device_id" in data:
                if port.nova_created or (port.binding_host and
                                         data["device_id"] != port.device_id):
                    raise NeutronConflict("PortInUse", f"Unable to complete operation on "
                                          f"port {port.id} for network {port.network_id}. "
                                          f"Port already has an attached device "
                                          f"{port.device_id}.")
                port.device_id = _string(data, "device_id")
            if "admin_state_up" in data:
                port.admin_state_up = _bool(data, "admin_state_up", True)
            if "port_security_enabled" in data:
                port.port_security_enabled = _bool(data, "port_security_enabled", True)
            if "security_groups" in data:
                groups = _group_ids(s, port.project_id, data["security_groups"])
                touched.update(groups, port.security_group_ids)
                port.security_group_ids = groups
            if "fixed_ips" in data:
                ipam.release_port(s, port.id)
                s.flush()
                _assign_fixed_ips(s, s.get(NetworkRecord, port.network_id), port,
                                  data["fixed_ips"])
                touched.update(port.security_group_ids)
            port.updated_at = utcnow()
            s.add(port)
            s.flush()
            if port.device_id:
                _refresh_addresses(s, port.device_id)
            return port_view(port, ipam.fixed_ips(s, [port.id])[port.id])

        return await self._write(ctx, work, lambda: touched)

    async def delete_port(self, ctx: AuthContext, port_id: str) -> None:
        touched: set[str] = set()

        def work(s: Session) -> None:
            port = self._port(s, ctx, port_id)
            if port.device_owner.startswith("compute:") and port.binding_host:
                raise NeutronConflict("PortInUse", f"Port {port.id} is attached to server "
                                      f"{port.device_id}: detach it first.")
            touched.update(port.security_group_ids)
            ipam.release_port(s, port.id)
            s.delete(port)

        await self._write(ctx, work, lambda: touched)

    # -- security groups -------------------------------------------------------------
    async def list_groups(self, ctx: AuthContext, query: Any) -> list[dict[str, Any]]:
        filters = _filters(query, ("id", "name", "tenant_id", "project_id"))

        def work(s: Session) -> list[dict[str, Any]]:
            sg.ensure_default(s, ctx.project_id)
            groups = [g for g in s.exec(select(SecurityGroup).order_by(
                col(SecurityGroup.created_at))).all() if _visible(ctx, g.project_id)]
            rules = _rules_of(s, [g.id for g in groups])
            views = [group_view(g, rules[g.id]) for g in groups]
            return [v for v in views if _match(v, filters)]

        return await self.db.write(work)

    async def get_group(self, ctx: AuthContext, group_id: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            sg.ensure_default(s, ctx.project_id)
            group = group_of(s, ctx, group_id)
            return group_view(group, _rules_of(s, [group.id])[group.id])

        return await self.db.write(work)

    async def create_group(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = _only(body, "security_group", {"name", "description", "project_id",
                                              "tenant_id", "stateful"})
        name = _string(data, "name")
        if name == sg.DEFAULT:
            raise NeutronConflict("SecurityGroupDefaultAlreadyExists",
                                  "Default security group already exists.")
        project = _project(ctx, data)

        def work(s: Session) -> dict[str, Any]:
            sg.ensure_default(s, project)
            group = SecurityGroup(project_id=project, name=name,
                                  description=_string(data, "description"))
            s.add(group)
            s.flush()
            for ethertype in ("IPv4",):  # Neutron: a new group lets everything out
                s.add(SecurityGroupRule(security_group_id=group.id, project_id=project,
                                        direction="egress", ethertype=ethertype))
            s.flush()
            return group_view(group, _rules_of(s, [group.id])[group.id])

        return await self.db.write(work)

    async def update_group(self, ctx: AuthContext, group_id: str, body: Any
                           ) -> dict[str, Any]:
        data = _only(body, "security_group", {"name", "description"})

        def work(s: Session) -> dict[str, Any]:
            group = group_of(s, ctx, group_id)
            if "name" in data:
                name = _string(data, "name")
                if group.name == sg.DEFAULT and name != sg.DEFAULT:
                    raise NeutronConflict("SecurityGroupCannotUpdateDefault",
                                          "Updating default security group not allowed.")
                group.name = name
            if "description" in data:
                group.description = _string(data, "description")
            sg.touch(group)
            s.add(group)
            s.flush()
            return group_view(group, _rules_of(s, [group.id])[group.id])

        return await self.db.write(work)

    async def delete_group(self, ctx: AuthContext, group_id: str) -> None:
        def work(s: Session) -> None:
            group = group_of(s, ctx, group_id)
            if group.name == sg.DEFAULT and not ctx.is_admin:
                raise NeutronConflict("SecurityGroupCannotRemoveDefault",
                                      "Removing default security group not allowed.")
            if any(group.id in p.security_group_ids for p in s.exec(select(Port)).all()):
                raise NeutronConflict("SecurityGroupInUse",
                                      f"Security Group {group.id} in use.")
            for rule in s.exec(select(SecurityGroupRule).where(
                    SecurityGroupRule.security_group_id == group.id)).all():
                s.delete(rule)
            s.delete(group)

        await self.db.write(work)

    async def list_rules(self, ctx: AuthContext, query: Any) -> list[dict[str, Any]]:
        filters = _filters(query, ("id", "security_group_id", "direction", "ethertype",
                                   "protocol", "tenant_id", "project_id"))

        def work(s: Session) -> list[dict[str, Any]]:
            sg.ensure_default(s, ctx.project_id)
            rules = s.exec(select(SecurityGroupRule).order_by(
                col(SecurityGroupRule.created_at))).all()
            views = [rule_view(r) for r in rules if _visible(ctx, r.project_id)]
            return [v for v in views if _match(v, filters)]

        return await self.db.write(work)

    async def get_rule(self, ctx: AuthContext, rule_id: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            rule = s.get(SecurityGroupRule, rule_id)
            if rule is None or not _visible(ctx, rule.project_id):
                raise NeutronNotFound("SecurityGroupRule", rule_id)
            return rule_view(rule)

        return await self.db.read(work)

    async def create_rule(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = _only(body, "security_group_rule", {
            "security_group_id", "direction", "ethertype", "protocol", "port_range_min",
            "port_range_max", "remote_ip_prefix", "remote_group_id", "description",
            "project_id", "tenant_id", "remote_address_group_id"})
        fields = sg.check_rule(data)
        group_id = str(data.get("security_group_id") or "")
        touched: set[str] = {group_id}

        def work(s: Session) -> dict[str, Any]:
            group = group_of(s, ctx, group_id)
            if fields["remote_group_id"]:
                group_of(s, ctx, str(fields["remote_group_id"]))
            sg.check_duplicate(s, group.id, fields)
            rule = SecurityGroupRule(security_group_id=group.id, project_id=group.project_id,
                                     **fields)
            s.add(rule)
            sg.touch(group)
            s.add(group)
            s.flush()
            return rule_view(rule)

        return await self._write(ctx, work, lambda: touched)

    async def delete_rule(self, ctx: AuthContext, rule_id: str) -> None:
        touched: set[str] = set()

        def work(s: Session) -> None:
            rule = s.get(SecurityGroupRule, rule_id)
            if rule is None or not _visible(ctx, rule.project_id):
                raise NeutronNotFound("SecurityGroupRule", rule_id)
            touched.add(rule.security_group_id)
            s.delete(rule)

        await self._write(ctx, work, lambda: touched)

    # -- Nova's view of networking ---------------------------------------------------
    async def server_groups(self, ctx: AuthContext, instance: Instance | InstanceRow
                            ) -> list[dict[str, Any]]:
        """The security groups of a server's ports (Nova's ``os-security-groups``)."""
        def work(s: Session) -> list[dict[str, Any]]:
            ids: list[str] = []
            for port in s.exec(select(Port).where(Port.device_id == instance.uuid)).all():
                ids.extend(g for g in port.security_group_ids if g not in ids)
            groups = [s.get(SecurityGroup, g) for g in ids]
            rules = _rules_of(s, ids)
            out = []
            for g in groups:
                if g is None:
                    continue
                out.append({"id": g.id, "name": g.name, "description": g.description,
                            "tenant_id": g.project_id,
                            "rules": [_nova_rule(r, g) for r in rules[g.id]
                                      if r.direction == "ingress"]})
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
            _refresh_addresses(s, instance.uuid)

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

    async def resolve_boot(self, ctx: AuthContext, requested: list[dict[str, Any]] | None,
                           groups: list[str], count: int) -> tuple[list[dict[str, Any]],
                                                                     list[str]]:
        """Check a boot's ``networks`` (each ``{"uuid", "fixed_ip"}`` or ``{"port"}``) and
        ``security_groups`` (names or ids) as Nova does, with its 400s; returns the
        requests with network ids resolved, and the security group ids."""
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
                    if port is None or not _visible(ctx, port.project_id):
                        raise BadRequest(f"Port id {req['port']} could not be found.")
                    if port.device_id:
                        raise Conflict409(f"Port {port.id} is still in use.")
                    if count > 1:
                        raise BadRequest("Multiple instances cannot be booted with a "
                                         "given port")
                    out.append({"port_id": port.id, "network_id": port.network_id})
                    continue
                net = s.get(NetworkRecord, req["uuid"])
                if net is None or not _visible(ctx, net.project_id, net.shared):
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
                    ip = ipaddress.ip_address(fixed)
                    sub = next((x for x in subs if ip in ipaddress.ip_network(x.cidr)), None)
                    if sub is None or ip in (ipaddress.ip_network(sub.cidr).network_address,
                                             ipaddress.ip_network(sub.cidr).broadcast_address):
                        raise BadRequest(f"Fixed IP address {fixed} is not a valid ip "
                                         f"address for the network {net.id}.")
                    if ipam.holder(s, sub.id, str(ip)) or sub.gateway_ip == str(ip):
                        raise BadRequest(f"Fixed IP address {fixed} is already in use on "
                                         "instance.")
                out.append({"network_id": net.id, "fixed_ip": fixed or None})
            return out, group_ids

        return await self.db.write(work)

    async def nova_networks(self, ctx: AuthContext) -> list[dict[str, Any]]:
        """Neutron's networks as Nova's ``os-networks`` proxy lists them."""
        nets = await self.list_networks(ctx, {})
        subnets = {x["id"]: x for x in await self.list_subnets(ctx, {})}
        return [nova_network_view(n, [subnets[i] for i in n["subnets"] if i in subnets])
                for n in nets]


class Conflict409(NeutronConflict):
    """A port given to a boot is bound to another server (Nova's PortInUse, 409)."""

    def __init__(self, message: str) -> None:
        super().__init__("PortInUse", message)


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


def _nova_rule(rule: SecurityGroupRule, group: SecurityGroup) -> dict[str, Any]:
    return {"id": rule.id, "parent_group_id": group.id,
            "ip_protocol": rule.protocol, "from_port": rule.port_range_min,
            "to_port": rule.port_range_max,
            "ip_range": {"cidr": rule.remote_ip_prefix} if rule.remote_ip_prefix else {},
            "group": {"name": group.name, "tenant_id": group.project_id}
            if rule.remote_group_id else {}}


def _fixed_match(fixed: list[dict[str, str]], wanted: str) -> bool:
    """``fixed_ips=ip_address=10.0.0.3`` / ``subnet_id=...`` (Neutron's list filter)."""
    key, _, value = wanted.partition("=")
    if key == "ip_address_substr":
        return any(value in f["ip_address"] for f in fixed)
    return any(f.get(key) == value for f in fixed)


def _rules_of(s: Session, group_ids: list[str]) -> dict[str, list[SecurityGroupRule]]:
    out: dict[str, list[SecurityGroupRule]] = {g: [] for g in group_ids}
    if group_ids:
        for rule in s.exec(select(SecurityGroupRule).where(
                col(SecurityGroupRule.security_group_id).in_(group_ids))
                .order_by(col(SecurityGroupRule.created_at))).all():
            out[rule.security_group_id].append(rule)
    return out


def _group_ids(s: Session, project_id: str, wanted: Any) -> list[str]:
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


def _assign_fixed_ips(s: Session, net: NetworkRecord | None, port: Port, wanted: Any) -> None:
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
            group_ids = _group_ids(s, project_id, data["security_groups"])
        else:
            group_ids = [sg.ensure_default(s, project_id).id]
    port = Port(network_id=net.id, project_id=project_id, name=_string(data, "name"),
                description=_string(data, "description"),
                mac_address=mac or ipam.new_mac(s),
                admin_state_up=_bool(data, "admin_state_up", True),
                device_id=_string(data, "device_id"),
                device_owner=_string(data, "device_owner"),
                port_security_enabled=_bool(data, "port_security_enabled", True),
                security_group_ids=group_ids)
    s.add(port)
    s.flush()
    _assign_fixed_ips(s, net, port, data.get("fixed_ips"))
    return port


def _refresh_addresses(s: Session, instance_uuid: str) -> None:
    """Rewrite a server's ``addresses`` (what its views and compute host read) from
    its ports."""
    inst = s.exec(select(Instance).where(Instance.uuid == instance_uuid)).first()
    if inst is None:
        return
    ports = s.exec(select(Port).where(Port.device_id == instance_uuid)
                   .order_by(col(Port.created_at))).all()
    inst.addresses = [a for p in ports for a in port_info(s, p)]
    s.add(inst)
