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
import trio
from sqlmodel import Session, col, select

from novalite.config import Config
from novalite.context import AuthContext, RequestContext
from novalite.db.engine import Database
from novalite.db.models import (
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
from novalite.network import ports as network_ports
from novalite.network import security_groups as sg
from novalite.network.errors import (
    InvalidInput,
    NeutronBadRequest,
    NeutronConflict,
    NeutronNotFound,
)
from novalite.network.nova import NovaNetworking
from novalite.network.ports import refresh_addresses
from novalite.network.records import (
    assign_fixed_ips,
    body_of,
    bool_field,
    fixed_ip_matches,
    group_ids_of,
    group_of,
    list_filters,
    matches,
    network_of,
    new_port,
    owner_project,
    rules_of,
    string_field,
    subnets_of,
    visible,
)
from novalite.network.views import (
    group_view,
    network_view,
    port_view,
    rule_view,
    subnet_view,
)
from novalite.rpc import Clients, UnknownTopic

log = structlog.get_logger("novalite.network")
T = TypeVar("T")
#: Ports' rule pushes in flight at once (one RPC call each).
PUSH_CONCURRENCY = 32

class NetworkAPI(NovaNetworking):
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
                pushes.extend(network_ports.security_pushes(s, groups()))
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
        if self.rpc is None or not pushes:
            return
        rpc = self.rpc
        limiter = trio.CapacityLimiter(PUSH_CONCURRENCY)

        async def one(host: str, port_id: str, rules: list[dict[str, Any]]) -> None:
            async with limiter:
                try:
                    await rpc.compute(host).update_port_security(context, port_id, rules)
                except UnknownTopic:
                    log.warning("compute host not reachable for port security", host=host,
                                port=port_id)
                except Exception as exc:  # the rules are stored: the host's next start
                    log.warning("port security push failed", host=host, port=port_id,
                                error=str(exc) or type(exc).__name__)

        # Side by side: a host applies the ports that arrive together in one transaction.
        async with trio.open_nursery() as nursery:
            for host, port_id, rules in pushes:
                nursery.start_soon(one, host, port_id, rules)

    # -- networks --------------------------------------------------------------------
    async def list_networks(self, ctx: AuthContext, query: Any) -> list[dict[str, Any]]:
        filters = list_filters(query, ("id", "name", "shared", "status", "tenant_id",
                                   "project_id", "admin_state_up", "router:external"))

        def work(s: Session) -> list[dict[str, Any]]:
            nets = [n for n in s.exec(select(NetworkRecord).order_by(
                col(NetworkRecord.created_at))).all() if visible(ctx, n.project_id, n.shared)]
            subs = subnets_of(s, [n.id for n in nets])
            views = [network_view(n, [x.id for x in subs[n.id]]) for n in nets]
            return [v for v in views if matches(v, filters)]

        return await self.db.read(work)

    async def get_network(self, ctx: AuthContext, network_id: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            net = network_of(s, ctx, network_id)
            return network_view(net, [x.id for x in subnets_of(s, [net.id])[net.id]])

        return await self.db.read(work)

    async def create_network(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = body_of(body, "network", {"name", "admin_state_up", "shared", "mtu",
                                       "description", "project_id", "tenant_id",
                                       "router:external", "port_security_enabled",
                                       "availability_zone_hints"})
        if bool_field(data, "shared", False) and not ctx.is_admin:
            raise Forbidden("(rule:create_network and rule:create_network:shared) is "
                            "disallowed by policy")
        if bool_field(data, "router:external", False):
            raise InvalidInput("external networks (router:external) are not supported")
        mtu = data.get("mtu", DEFAULT_MTU)
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 9000:
            raise InvalidInput(f"'{mtu}' is not a valid mtu (68 to 9000)")
        net = NetworkRecord(name=string_field(data, "name"), project_id=owner_project(ctx, data),
                            description=string_field(data, "description"),
                            shared=bool_field(data, "shared", False),
                            admin_state_up=bool_field(data, "admin_state_up", True), mtu=mtu)

        def work(s: Session) -> dict[str, Any]:
            s.add(net)
            s.flush()
            return network_view(net, [])

        return await self.db.write(work)

    async def update_network(self, ctx: AuthContext, network_id: str, body: Any
                             ) -> dict[str, Any]:
        data = body_of(body, "network", {"name", "admin_state_up", "shared", "description",
                                       "mtu", "port_security_enabled"})

        def work(s: Session) -> dict[str, Any]:
            net = network_of(s, ctx, network_id)
            if net.project_id != ctx.project_id and not ctx.is_admin:
                raise NeutronNotFound("Network", network_id)
            if "shared" in data:
                if not ctx.is_admin:
                    raise Forbidden("(rule:update_network and rule:update_network:shared) "
                                    "is disallowed by policy")
                net.shared = bool_field(data, "shared", net.shared)
            for key in ("name", "description"):
                if key in data:
                    setattr(net, key, string_field(data, key))
            if "admin_state_up" in data:
                net.admin_state_up = bool_field(data, "admin_state_up", True)
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
        filters = list_filters(query, ("id", "name", "network_id", "cidr", "ip_version",
                                   "gateway_ip", "tenant_id", "project_id", "enable_dhcp"))

        def work(s: Session) -> list[dict[str, Any]]:
            nets = {n.id: n for n in s.exec(select(NetworkRecord)).all()}
            out = []
            for sub in s.exec(select(Subnet).order_by(col(Subnet.created_at))).all():
                net = nets.get(sub.network_id)
                if net is None or not visible(ctx, sub.project_id, net.shared):
                    continue
                view = subnet_view(sub)
                if matches(view, filters):
                    out.append(view)
            return out

        return await self.db.read(work)

    def _subnet(self, s: Session, ctx: AuthContext, subnet_id: str) -> Subnet:
        sub = s.get(Subnet, subnet_id)
        if sub is not None:
            net = s.get(NetworkRecord, sub.network_id)
            if net is not None and visible(ctx, sub.project_id, net.shared):
                return sub
        raise NeutronNotFound("Subnet", subnet_id)

    async def get_subnet(self, ctx: AuthContext, subnet_id: str) -> dict[str, Any]:
        return await self.db.read(lambda s: subnet_view(self._subnet(s, ctx, subnet_id)))

    async def create_subnet(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = body_of(body, "subnet", {"name", "network_id", "cidr", "ip_version",
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
        project = owner_project(ctx, data)

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
            sub = Subnet(network_id=net.id, project_id=project, name=string_field(data, "name"),
                         description=string_field(data, "description"), cidr=str(net_addr),
                         gateway_ip=gateway, allocation_pools=pools, dns_nameservers=dns,
                         enable_dhcp=bool_field(data, "enable_dhcp", True))
            s.add(sub)
            s.flush()
            return subnet_view(sub)

        return await self.db.write(work)

    async def update_subnet(self, ctx: AuthContext, subnet_id: str, body: Any
                            ) -> dict[str, Any]:
        data = body_of(body, "subnet", {"name", "description", "dns_nameservers",
                                      "enable_dhcp", "gateway_ip"})

        def work(s: Session) -> dict[str, Any]:
            sub = self._subnet(s, ctx, subnet_id)
            if sub.project_id != ctx.project_id and not ctx.is_admin:
                raise NeutronNotFound("Subnet", subnet_id)
            for key in ("name", "description"):
                if key in data:
                    setattr(sub, key, string_field(data, key))
            if "enable_dhcp" in data:
                sub.enable_dhcp = bool_field(data, "enable_dhcp", True)
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
        if port is None or not visible(ctx, port.project_id):
            raise NeutronNotFound("Port", port_id)
        return port

    async def list_ports(self, ctx: AuthContext, query: Any) -> list[dict[str, Any]]:
        filters = list_filters(query, ("id", "name", "network_id", "device_id", "device_owner",
                                   "mac_address", "tenant_id", "project_id", "status"))
        fixed_filters = [v for v in (query.getlist("fixed_ips")
                                     if hasattr(query, "getlist") else [])]

        def work(s: Session) -> list[dict[str, Any]]:
            stmt = select(Port).order_by(col(Port.created_at))
            if "device_id" in filters:
                stmt = stmt.where(col(Port.device_id).in_(filters["device_id"]))
            ports = [p for p in s.exec(stmt).all() if visible(ctx, p.project_id)]
            fixed = ipam.fixed_ips(s, [p.id for p in ports])
            out = []
            for p in ports:
                view = port_view(p, fixed[p.id])
                if not matches(view, filters):
                    continue
                if fixed_filters and not all(fixed_ip_matches(view["fixed_ips"], f)
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
        data = body_of(body, "port", {"name", "network_id", "fixed_ips", "mac_address",
                                    "admin_state_up", "device_id", "device_owner",
                                    "security_groups", "description", "project_id",
                                    "tenant_id", "port_security_enabled",
                                    "binding:vnic_type"})
        if "network_id" not in data:
            raise BadRequest("Failed to parse request. Required attribute 'network_id' not "
                             "specified")
        project = owner_project(ctx, data)

        def work(s: Session) -> dict[str, Any]:
            net = network_of(s, ctx, str(data["network_id"]))
            port = new_port(s, net, project, data)
            return port_view(port, ipam.fixed_ips(s, [port.id])[port.id])

        return await self._write(ctx, work)

    async def update_port(self, ctx: AuthContext, port_id: str, body: Any) -> dict[str, Any]:
        data = body_of(body, "port", {"name", "description", "admin_state_up",
                                    "security_groups", "port_security_enabled",
                                    "device_id", "device_owner", "fixed_ips"})
        touched: set[str] = set()

        def work(s: Session) -> dict[str, Any]:
            port = self._port(s, ctx, port_id)
            for key in ("name", "description", "device_owner"):
                if key in data:
                    setattr(port, key, string_field(data, key))
            if "device_id" in data:
                if port.nova_created or (port.binding_host and
                                         data["device_id"] != port.device_id):
                    raise NeutronConflict("PortInUse", f"Unable to complete operation on "
                                          f"port {port.id} for network {port.network_id}. "
                                          f"Port already has an attached device "
                                          f"{port.device_id}.")
                port.device_id = string_field(data, "device_id")
            if "admin_state_up" in data:
                port.admin_state_up = bool_field(data, "admin_state_up", True)
            if "port_security_enabled" in data:
                port.port_security_enabled = bool_field(data, "port_security_enabled", True)
            if "security_groups" in data:
                groups = group_ids_of(s, port.project_id, data["security_groups"])
                touched.update(groups, port.security_group_ids)
                port.security_group_ids = groups
            if "fixed_ips" in data:
                ipam.release_port(s, port.id)
                s.flush()
                assign_fixed_ips(s, s.get(NetworkRecord, port.network_id), port,
                                  data["fixed_ips"])
                touched.update(port.security_group_ids)
            port.updated_at = utcnow()
            s.add(port)
            s.flush()
            if port.device_id:
                refresh_addresses(s, port.device_id)
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
    async def list_groups(self, ctx: AuthContext, query: Any, *,
                          every_project: bool = False) -> list[dict[str, Any]]:
        """The caller's groups; an admin's list holds other projects' groups only when
        it names a project or an id, or asks for ``every_project`` (Nova's
        ``all_tenants``) (a deviation from Neutron, where every project's ``default``
        makes ``openstack security group rule create ... default`` ambiguous for an
        admin)."""
        filters = list_filters(query, ("id", "name", "tenant_id", "project_id"))
        everyone = ctx.is_admin and (every_project or
                                     bool({"id", "tenant_id", "project_id"} & set(filters)))

        def work(s: Session) -> list[dict[str, Any]]:
            sg.ensure_default(s, ctx.project_id)
            groups = [g for g in s.exec(select(SecurityGroup).order_by(
                col(SecurityGroup.created_at))).all()
                if g.project_id == ctx.project_id or everyone]
            rules = rules_of(s, [g.id for g in groups])
            views = [group_view(g, rules[g.id]) for g in groups]
            return [v for v in views if matches(v, filters)]

        return await self.db.write(work)

    async def get_group(self, ctx: AuthContext, group_id: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            sg.ensure_default(s, ctx.project_id)
            group = group_of(s, ctx, group_id)
            return group_view(group, rules_of(s, [group.id])[group.id])

        return await self.db.write(work)

    async def create_group(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = body_of(body, "security_group", {"name", "description", "project_id",
                                              "tenant_id", "stateful"})
        name = string_field(data, "name")
        if name == sg.DEFAULT:
            raise NeutronConflict("SecurityGroupDefaultAlreadyExists",
                                  "Default security group already exists.")
        project = owner_project(ctx, data)

        def work(s: Session) -> dict[str, Any]:
            sg.ensure_default(s, project)
            group = SecurityGroup(project_id=project, name=name,
                                  description=string_field(data, "description"))
            s.add(group)
            s.flush()
            for ethertype in ("IPv4",):  # Neutron: a new group lets everything out
                s.add(SecurityGroupRule(security_group_id=group.id, project_id=project,
                                        direction="egress", ethertype=ethertype))
            s.flush()
            return group_view(group, rules_of(s, [group.id])[group.id])

        return await self.db.write(work)

    async def update_group(self, ctx: AuthContext, group_id: str, body: Any
                           ) -> dict[str, Any]:
        data = body_of(body, "security_group", {"name", "description"})

        def work(s: Session) -> dict[str, Any]:
            group = group_of(s, ctx, group_id)
            if "name" in data:
                name = string_field(data, "name")
                if group.name == sg.DEFAULT and name != sg.DEFAULT:
                    raise NeutronConflict("SecurityGroupCannotUpdateDefault",
                                          "Updating default security group not allowed.")
                group.name = name
            if "description" in data:
                group.description = string_field(data, "description")
            sg.touch(group)
            s.add(group)
            s.flush()
            return group_view(group, rules_of(s, [group.id])[group.id])

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
        filters = list_filters(query, ("id", "security_group_id", "direction", "ethertype",
                                   "protocol", "tenant_id", "project_id"))

        def work(s: Session) -> list[dict[str, Any]]:
            sg.ensure_default(s, ctx.project_id)
            rules = s.exec(select(SecurityGroupRule).order_by(
                col(SecurityGroupRule.created_at))).all()
            views = [rule_view(r) for r in rules if visible(ctx, r.project_id)]
            return [v for v in views if matches(v, filters)]

        return await self.db.write(work)

    async def get_rule(self, ctx: AuthContext, rule_id: str) -> dict[str, Any]:
        def work(s: Session) -> dict[str, Any]:
            rule = s.get(SecurityGroupRule, rule_id)
            if rule is None or not visible(ctx, rule.project_id):
                raise NeutronNotFound("SecurityGroupRule", rule_id)
            return rule_view(rule)

        return await self.db.read(work)

    async def create_rule(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        data = body_of(body, "security_group_rule", {
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
            if rule is None or not visible(ctx, rule.project_id):
                raise NeutronNotFound("SecurityGroupRule", rule_id)
            touched.add(rule.security_group_id)
            s.delete(rule)

        await self._write(ctx, work, lambda: touched)


