"""The Neutron v2.0 subset and Nova's networking, over real HTTP on both databases
(fake driver): networks, subnets, ports and security groups with Neutron's bodies
and errors, project scoping, and servers booted on networks and ports."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer
from tests.helpers import boot, wait_gone, wait_status
from tests.test_server_filters import Member, make_member

N = "/network/v2.0"
API = "/compute/v2.1"


@pytest.fixture(scope="module")
def c(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def member(server: RunningServer) -> Iterator[Member]:
    m = make_member(server, secrets.token_hex(3))
    yield m
    m.client.close()


def neutron_error(r: httpx.Response, status: int, kind: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()["NeutronError"]
    assert set(body) == {"type", "message", "detail"}
    if kind is not None:
        assert body["type"] == kind, body
    return str(body["message"])


def nova_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(next(iter(r.json().values()))["message"])


def make_network(c: httpx.Client, cidr: str, **extra: Any) -> tuple[str, str]:
    r = c.post(f"{N}/networks", json={"network": {"name": f"net-{secrets.token_hex(3)}",
                                                  **extra}})
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    r = c.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "cidr": cidr,
                                                "ip_version": 4}})
    assert r.status_code == 201, r.text
    return net["id"], r.json()["subnet"]["id"]


def test_catalog_names_the_network_endpoint(c: httpx.Client, server: RunningServer) -> None:
    r = c.get("/identity/v3/auth/catalog")
    catalog = {s["type"]: s for s in r.json()["catalog"]}
    assert catalog["network"]["endpoints"][0]["url"] == f"{server.url}/network"
    assert c.get("/network/").json()["versions"][0]["id"] == "v2.0"


def test_the_default_network_exists_shared_with_its_subnet(c: httpx.Client,
                                                           member: Member) -> None:
    nets = member.client.get(f"{N}/networks", params={"name": "private"}).json()["networks"]
    assert len(nets) == 1
    net = nets[0]
    assert net["shared"] is True and net["router:external"] is False
    assert net["status"] == "ACTIVE" and net["admin_state_up"] is True and net["mtu"] == 1500
    sub = member.client.get(f"{N}/subnets/{net['subnets'][0]}").json()["subnet"]
    assert sub["cidr"] == "10.0.0.0/24" and sub["gateway_ip"] == "10.0.0.1"
    assert sub["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert sub["enable_dhcp"] is True and sub["ip_version"] == 4


def test_extensions_list_only_what_exists(c: httpx.Client) -> None:
    aliases = {e["alias"] for e in c.get(f"{N}/extensions").json()["extensions"]}
    assert {"security-group", "port-security"} <= aliases
    assert "router" not in aliases
    for path in ("floatingips", "routers"):
        neutron_error(c.get(f"{N}/{path}"), 404)


def test_network_crud_and_errors(c: httpx.Client) -> None:
    net_id, sub_id = make_network(c, "192.168.77.0/24")
    r = c.put(f"{N}/networks/{net_id}", json={"network": {"name": "renamed"}})
    assert r.status_code == 200 and r.json()["network"]["name"] == "renamed"
    assert r.json()["network"]["subnets"] == [sub_id]
    # Overlapping CIDRs in one network are refused.
    r = c.post(f"{N}/subnets", json={"subnet": {"network_id": net_id,
                                                "cidr": "192.168.77.128/25"}})
    assert "overlaps with another subnet" in neutron_error(r, 400)
    r = c.post(f"{N}/subnets", json={"subnet": {"network_id": net_id, "cidr": "nope"}})
    neutron_error(r, 400, "InvalidInput")
    neutron_error(c.get(f"{N}/networks/{secrets.token_hex(16)}"), 404, "NetworkNotFound")
    assert c.delete(f"{N}/networks/{net_id}").status_code == 204
    neutron_error(c.get(f"{N}/subnets/{sub_id}"), 404, "SubnetNotFound")


def test_ports_with_fixed_ips_and_filters(c: httpx.Client) -> None:
    net_id, sub_id = make_network(c, "192.168.78.0/24")
    r = c.post(f"{N}/ports", json={"port": {"network_id": net_id, "fixed_ips": [
        {"ip_address": "192.168.78.50"}]}})
    assert r.status_code == 201, r.text
    port = r.json()["port"]
    assert port["fixed_ips"] == [{"subnet_id": sub_id, "ip_address": "192.168.78.50"}]
    assert port["mac_address"].startswith("fa:16:3e:") and port["status"] == "DOWN"
    assert len(port["security_groups"]) == 1  # the project's default group
    r = c.post(f"{N}/ports", json={"port": {"network_id": net_id, "fixed_ips": [
        {"ip_address": "192.168.78.50"}]}})
    neutron_error(r, 409, "IpAddressAlreadyAllocated")
    r = c.post(f"{N}/ports", json={"port": {"network_id": net_id, "fixed_ips": [
        {"ip_address": "10.9.9.9"}]}})
    neutron_error(r, 400, "InvalidIpForNetwork")
    other = c.post(f"{N}/ports", json={"port": {"network_id": net_id}}).json()["port"]
    assert other["fixed_ips"][0]["ip_address"] == "192.168.78.2"
    listed = c.get(f"{N}/ports", params={"network_id": net_id}).json()["ports"]
    assert {p["id"] for p in listed} == {port["id"], other["id"]}
    by_ip = c.get(f"{N}/ports", params={"fixed_ips": "ip_address=192.168.78.50"}).json()
    assert [p["id"] for p in by_ip["ports"]] == [port["id"]]
    r = c.put(f"{N}/ports/{port['id']}", json={"port": {"name": "web"}})
    assert r.json()["port"]["name"] == "web"
    for p in (port, other):
        assert c.delete(f"{N}/ports/{p['id']}").status_code == 204
    neutron_error(c.get(f"{N}/ports/{port['id']}"), 404, "PortNotFound")
    assert c.delete(f"{N}/networks/{net_id}").status_code == 204


def test_default_security_group_and_rules(c: httpx.Client, member: Member,
                                         server: RunningServer) -> None:
    groups = member.client.get(f"{N}/security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    default = groups[0]
    rules = {(r["direction"], r["remote_group_id"]) for r in default["security_group_rules"]}
    assert rules == {("egress", None), ("ingress", default["id"])}
    rule = {"security_group_id": default["id"], "direction": "ingress",
            "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
            "remote_ip_prefix": "0.0.0.0/0"}
    r = member.client.post(f"{N}/security-group-rules", json={"security_group_rule": rule})
    assert r.status_code == 201, r.text
    rule_id = r.json()["security_group_rule"]["id"]
    r = member.client.post(f"{N}/security-group-rules", json={"security_group_rule": rule})
    neutron_error(r, 409, "SecurityGroupRuleExists")
    bad = {**rule, "port_range_min": 80, "port_range_max": 22}
    r = member.client.post(f"{N}/security-group-rules", json={"security_group_rule": bad})
    neutron_error(r, 400, "SecurityGroupInvalidPortRange")
    bad = {**rule, "port_range_max": 70000, "port_range_min": 1}
    r = member.client.post(f"{N}/security-group-rules", json={"security_group_rule": bad})
    neutron_error(r, 400, "SecurityGroupInvalidPortValue")
    # Another project's group and rule are not found; the admin sees them.
    assert c.get(f"{N}/security-group-rules/{rule_id}").status_code == 200  # admin
    other = make_member(server, secrets.token_hex(3)).client
    r = other.get(f"{N}/security-group-rules/{rule_id}")
    neutron_error(r, 404, "SecurityGroupRuleNotFound")
    r = other.get(f"{N}/security-groups/{default['id']}")
    neutron_error(r, 404, "SecurityGroupNotFound")
    other.close()
    assert member.client.delete(f"{N}/security-group-rules/{rule_id}").status_code == 204
    r = member.client.post(f"{N}/security-groups", json={"security_group": {"name": "web"}})
    assert r.status_code == 201
    web = r.json()["security_group"]
    assert [x["direction"] for x in web["security_group_rules"]] == ["egress"]
    assert member.client.delete(f"{N}/security-groups/{web['id']}").status_code == 204


def test_another_projects_network_is_not_found(c: httpx.Client, member: Member) -> None:
    net_id, sub_id = make_network(c, "192.168.79.0/24")
    neutron_error(member.client.get(f"{N}/networks/{net_id}"), 404, "NetworkNotFound")
    neutron_error(member.client.get(f"{N}/subnets/{sub_id}"), 404, "SubnetNotFound")
    assert net_id not in {n["id"] for n in member.client.get(f"{N}/networks").json()[
        "networks"]}
    r = member.client.post(f"{API}/servers", json={"server": {
        "name": "x", "imageRef": demo(member.client), "flavorRef": "1",
        "networks": [{"uuid": net_id}]}})
    assert f"Network {net_id} could not be found" in nova_error(r, 400)
    assert c.delete(f"{N}/networks/{net_id}").status_code == 204


def demo(c: httpx.Client) -> str:
    return str(c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"])


def test_boot_on_networks_ports_and_fixed_ips(c: httpx.Client) -> None:
    net_id, sub_id = make_network(c, "192.168.80.0/24")
    port = c.post(f"{N}/ports", json={"port": {"network_id": net_id}}).json()["port"]
    # Unknown network, malformed uuid, address outside the subnet, address in use.
    r = c.post(f"{API}/servers", json={"server": {
        "name": "x", "imageRef": demo(c), "flavorRef": "1",
        "networks": [{"uuid": "3f1e0b4e-0000-4000-8000-000000000000"}]}})
    assert "could not be found" in nova_error(r, 400)
    r = c.post(f"{API}/servers", json={"server": {
        "name": "x", "imageRef": demo(c), "flavorRef": "1", "networks": [{"uuid": "zz"}]}})
    nova_error(r, 400)
    r = c.post(f"{API}/servers", json={"server": {
        "name": "x", "imageRef": demo(c), "flavorRef": "1",
        "networks": [{"uuid": net_id, "fixed_ip": "10.1.2.3"}]}})
    assert "not a valid ip" in nova_error(r, 400)
    r = c.post(f"{API}/servers", json={"server": {
        "name": "x", "imageRef": demo(c), "flavorRef": "1",
        "networks": [{"uuid": net_id, "fixed_ip": port["fixed_ips"][0]["ip_address"]}]}})
    assert "already in use" in nova_error(r, 400)
    r = c.post(f"{API}/servers", json={"server": {
        "name": "x", "imageRef": demo(c), "flavorRef": "1", "networks": "auto",
        "security_groups": [{"name": "no-such-group"}]}})
    assert "no-such-group" in nova_error(r, 400)
    # Two NICs: a fixed IP on the new network and the port made beforehand.
    sid = boot(c, "nics", networks=[{"uuid": net_id, "fixed_ip": "192.168.80.9"},
                                    {"port": port["id"]}])
    server = wait_status(c, sid, "ACTIVE")
    name = c.get(f"{N}/networks/{net_id}").json()["network"]["name"]
    addresses = server["addresses"][name]
    assert {a["addr"] for a in addresses} == {"192.168.80.9",
                                              port["fixed_ips"][0]["ip_address"]}
    assert all(a["OS-EXT-IPS:type"] == "fixed" for a in addresses)
    assert port["mac_address"] in {a["OS-EXT-IPS-MAC:mac_addr"] for a in addresses}
    ips = c.get(f"{API}/servers/{sid}/ips").json()["addresses"]
    assert {a["addr"] for a in ips[name]} == {a["addr"] for a in addresses}
    ports = c.get(f"{N}/ports", params={"device_id": sid}).json()["ports"]
    assert len(ports) == 2
    assert all(p["status"] == "ACTIVE" and p["device_owner"] == "compute:nova"
               for p in ports)
    interfaces = c.get(f"{API}/servers/{sid}/os-interface").json()["interfaceAttachments"]
    assert {i["port_id"] for i in interfaces} == {p["id"] for p in ports}
    one = c.get(f"{API}/servers/{sid}/os-interface/{port['id']}").json()
    assert one["interfaceAttachment"]["mac_addr"] == port["mac_address"]
    # The fake driver hot-plugs (tests/test_interfaces.py has the details).
    r = c.post(f"{API}/servers/{sid}/os-interface",
               json={"interfaceAttachment": {"net_id": net_id}})
    assert r.status_code == 200, r.text
    added = r.json()["interfaceAttachment"]["port_id"]
    assert c.delete(f"{API}/servers/{sid}/os-interface/{added}").status_code == 202
    # A port in use cannot be given to another boot.
    r = c.post(f"{API}/servers", json={"server": {
        "name": "y", "imageRef": demo(c), "flavorRef": "1", "networks": [
            {"port": port["id"]}]}})
    nova_error(r, 409)
    c.delete(f"{API}/servers/{sid}")
    wait_gone(c, sid)
    # The port made for the boot is gone; the one given to it is kept, unbound.
    left = c.get(f"{N}/ports", params={"network_id": net_id}).json()["ports"]
    assert [(p["id"], p["device_id"], p["status"]) for p in left] == [
        (port["id"], "", "DOWN")]
    assert c.delete(f"{N}/ports/{port['id']}").status_code == 204
    assert c.delete(f"{N}/networks/{net_id}").status_code == 204


def test_auto_none_and_security_group_actions(c: httpx.Client, member: Member) -> None:
    mc = member.client
    r = mc.post(f"{N}/security-groups", json={"security_group": {"name": "web"}})
    web = r.json()["security_group"]
    sid = boot(mc, "sg", networks="auto", security_groups=[{"name": "web"}])
    shown = wait_status(mc, sid, "ACTIVE")
    assert list(shown["addresses"]) == ["private"]
    assert shown["addresses"]["private"][0]["addr"].startswith("10.0.0.")
    assert shown["security_groups"] == [{"name": "web"}]
    groups = mc.get(f"{API}/servers/{sid}/os-security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["web"]
    port = mc.get(f"{N}/ports", params={"device_id": sid}).json()["ports"][0]
    assert port["security_groups"] == [web["id"]]
    r = mc.post(f"{API}/servers/{sid}/action", json={"addSecurityGroup": {"name": "default"}})
    assert r.status_code == 202, r.text
    # (The rules reach a host that enforces them: tests/drivers/test_bridge_api.py.)
    groups = mc.get(f"{API}/servers/{sid}/os-security-groups").json()["security_groups"]
    assert sorted(g["name"] for g in groups) == ["default", "web"]
    r = mc.post(f"{API}/servers/{sid}/action", json={"removeSecurityGroup": {"name": "web"}})
    assert r.status_code == 202, r.text
    groups = mc.get(f"{API}/servers/{sid}/os-security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    r = mc.post(f"{API}/servers/{sid}/action", json={"removeSecurityGroup": {"name": "web"}})
    nova_error(r, 400)
    r = mc.post(f"{API}/servers/{sid}/action", json={"addSecurityGroup": {"name": "nope"}})
    nova_error(r, 404)
    r = mc.delete(f"{N}/security-groups/{web['id']}")
    assert r.status_code == 204, r.text  # no port is in it any more
    none = boot(mc, "nonet", networks="none")
    assert wait_status(mc, none, "ACTIVE")["addresses"] == {}
    for s in (sid, none):
        mc.delete(f"{API}/servers/{s}")
        wait_gone(mc, s)
    neutron_error(mc.get(f"{N}/ports/{port['id']}"), 404, "PortNotFound")


def test_os_networks_proxy_until_2_35(c: httpx.Client) -> None:
    r = c.get(f"{API}/os-networks", headers={"OpenStack-API-Version": "compute 2.35"})
    assert r.status_code == 200, r.text
    nets = {n["label"]: n for n in r.json()["networks"]}
    assert nets["private"]["cidr"] is None and "id" in nets["private"]
    r = c.get(f"{API}/os-networks/{nets['private']['id']}",
              headers={"OpenStack-API-Version": "compute 2.35"})
    assert r.json()["network"]["label"] == "private"
    r = c.get(f"{API}/os-networks", headers={"OpenStack-API-Version": "compute 2.36"})
    nova_error(r, 404)
    r = c.get(f"{API}/os-tenant-networks", headers={"OpenStack-API-Version": "compute 2.35"})
    tenant = {n["label"]: n for n in r.json()["networks"]}
    assert tenant["private"]["cidr"] == "10.0.0.0/24"
    r = c.get(f"{API}/os-tenant-networks", headers={"OpenStack-API-Version": "compute 2.36"})
    nova_error(r, 404)


def test_quotas_answer_neutrons_defaults_with_usage(c: httpx.Client, member: Member) -> None:
    r = member.client.get(f"{N}/quotas/{member.project_id}")
    assert r.status_code == 200 and r.json()["quota"]["port"] == 500
    member.client.get(f"{N}/security-groups")  # the default group is made on first use
    details = member.client.get(f"{N}/quotas/{member.project_id}/details").json()["quota"]
    assert details["security_group"]["used"] == 1
    assert member.client.get(f"{N}/quotas/{secrets.token_hex(16)}").status_code == 403


def test_hosts_that_filter_nothing_get_no_rule_updates(
        member: Member, server: RunningServer) -> None:
    """Members joining and leaving the default group change the other members' rules;
    the update goes to each member's host only where the host enforces rules (a
    bridge: tests/drivers/test_bridge_api.py). The fake driver's hosts run user-mode
    networking and filter nothing, and say so in their resource report: nothing is
    sent to them (a group of hundreds of members made each boot cost hundreds of
    casts)."""
    mc = member.client

    def pushes(port_id: str) -> int:
        return len([e for e in server.log_events() if e.get("port") == port_id
                    and "port security" in e.get("event", "")])

    first = boot(mc, "member-a", networks="auto")
    wait_status(mc, first, "ACTIVE")
    port = mc.get(f"{N}/ports", params={"device_id": first}).json()["ports"][0]
    second = boot(mc, "member-b", networks="auto")
    wait_status(mc, second, "ACTIVE")
    mc.delete(f"{API}/servers/{second}")
    wait_gone(mc, second)
    mc.delete(f"{API}/servers/{first}")
    wait_gone(mc, first)
    assert pushes(port["id"]) == 0
