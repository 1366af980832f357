"""Nova's deprecated security-group proxy (``/os-security-groups``,
``/os-security-group-rules``) over real HTTP, fake driver: Nova's bodies and
messages up to 2.35, 404 from 2.36, and one store with the Neutron API (a group or
rule made on either side is seen on the other)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer
from tests.test_server_filters import Member, make_member

N = "/network/v2.0"
SG = "/compute/v2.1/os-security-groups"
RULES = "/compute/v2.1/os-security-group-rules"
PROXY = "compute 2.35"


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client("2.35") as client:
        yield client


def _member(server: RunningServer) -> Member:
    m = make_member(server, secrets.token_hex(3))
    m.client.headers["OpenStack-API-Version"] = PROXY
    return m


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Iterator[Member]:
    m = _member(server)
    yield m
    m.client.close()


@pytest.fixture(scope="module")
def bob(server: RunningServer) -> Iterator[Member]:
    m = _member(server)
    yield m
    m.client.close()


def nova_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    (body,) = r.json().values()
    assert body["code"] == status
    return str(body["message"])


def make_group(c: httpx.Client, **extra: Any) -> dict[str, Any]:
    body = {"name": f"sg-{secrets.token_hex(3)}", "description": "proxy group", **extra}
    r = c.post(SG, json={"security_group": body})
    assert r.status_code == 200, r.text
    group: dict[str, Any] = r.json()["security_group"]
    return group


def add_rule(c: httpx.Client, parent: str, **fields: Any) -> httpx.Response:
    return c.post(RULES, json={"security_group_rule": {"parent_group_id": parent, **fields}})


def neutron_rules(c: httpx.Client, group_id: str) -> list[dict[str, Any]]:
    r = c.get(f"{N}/security-groups/{group_id}")
    assert r.status_code == 200, r.text
    return list(r.json()["security_group"]["security_group_rules"])


def test_create_show_list_update_delete(alice: Member) -> None:
    c = alice.client
    group = make_group(c, name="web", description="web servers")
    assert group == {"id": group["id"], "name": "web", "description": "web servers",
                     "tenant_id": alice.project_id, "rules": []}
    assert c.get(f"{SG}/{group['id']}").json()["security_group"] == group

    listed = c.get(SG).json()["security_groups"]
    names = [g["name"] for g in listed]
    assert "default" in names and "web" in names
    assert names == sorted(names)  # Nova sorts by (tenant_id, name)
    default = next(g for g in listed if g["name"] == "default")
    # The default group lets in its own members: one rule per ingress rule, by group.
    assert [(r["ip_protocol"], r["group"], r["ip_range"]) for r in default["rules"]] == [
        (None, {"name": "default", "tenant_id": alice.project_id}, {})]

    r = c.put(f"{SG}/{group['id']}", json={"security_group": {
        "name": "web2", "description": "renamed"}})
    assert r.status_code == 200, r.text
    assert r.json()["security_group"]["name"] == "web2"
    assert c.get(f"{N}/security-groups/{group['id']}").json()["security_group"][
        "description"] == "renamed"

    assert c.delete(f"{SG}/{group['id']}").status_code == 202
    assert "could not be found" in nova_error(c.get(f"{SG}/{group['id']}"), 404)
    assert c.get(f"{N}/security-groups/{group['id']}").status_code == 404


def test_one_store_with_the_neutron_api(alice: Member) -> None:
    c = alice.client
    made_here = make_group(c)
    neutron_ids = [g["id"] for g in c.get(f"{N}/security-groups").json()["security_groups"]]
    assert made_here["id"] in neutron_ids

    r = c.post(f"{N}/security-groups", json={"security_group": {"name": "from-neutron"}})
    assert r.status_code == 201, r.text
    theirs = r.json()["security_group"]
    shown = c.get(f"{SG}/{theirs['id']}").json()["security_group"]
    assert shown["name"] == "from-neutron" and shown["rules"] == []  # egress not shown
    assert theirs["id"] in [g["id"] for g in c.get(SG).json()["security_groups"]]


def test_a_rule_made_here_is_a_neutron_ingress_rule(alice: Member) -> None:
    c = alice.client
    group = make_group(c)
    r = add_rule(c, group["id"], ip_protocol="tcp", from_port=22, to_port=22,
                 cidr="10.0.0.0/24")
    assert r.status_code == 200, r.text
    rule = r.json()["security_group_rule"]
    assert rule == {"id": rule["id"], "parent_group_id": group["id"], "ip_protocol": "tcp",
                    "from_port": 22, "to_port": 22, "ip_range": {"cidr": "10.0.0.0/24"},
                    "group": {}}
    (neutron,) = [x for x in neutron_rules(c, group["id"]) if x["id"] == rule["id"]]
    assert (neutron["direction"], neutron["ethertype"], neutron["protocol"],
            neutron["port_range_min"], neutron["port_range_max"],
            neutron["remote_ip_prefix"], neutron["remote_group_id"]) == \
        ("ingress", "IPv4", "tcp", 22, 22, "10.0.0.0/24", None)
    assert c.get(f"{SG}/{group['id']}").json()["security_group"]["rules"] == [rule]

    # ICMP -1/-1 is any type and code; no cidr is 0.0.0.0/0.
    r = add_rule(c, group["id"], ip_protocol="icmp", from_port=-1, to_port=-1)
    assert r.status_code == 200, r.text
    icmp = r.json()["security_group_rule"]
    assert (icmp["from_port"], icmp["to_port"], icmp["ip_range"]) == \
        (-1, -1, {"cidr": "0.0.0.0/0"})
    (neutron,) = [x for x in neutron_rules(c, group["id"]) if x["id"] == icmp["id"]]
    assert (neutron["protocol"], neutron["port_range_min"], neutron["port_range_max"],
            neutron["remote_ip_prefix"]) == ("icmp", None, None, "0.0.0.0/0")

    # A remote-group rule: the group's name and project, every port when none is given.
    peer = make_group(c, name=f"peer-{secrets.token_hex(2)}")
    r = add_rule(c, group["id"], ip_protocol="udp", group_id=peer["id"])
    assert r.status_code == 200, r.text
    by_group = r.json()["security_group_rule"]
    assert by_group["group"] == {"name": peer["name"], "tenant_id": alice.project_id}
    assert (by_group["ip_range"], by_group["from_port"], by_group["to_port"]) == \
        ({}, 1, 65535)
    (neutron,) = [x for x in neutron_rules(c, group["id"]) if x["id"] == by_group["id"]]
    assert (neutron["remote_group_id"], neutron["remote_ip_prefix"]) == (peer["id"], None)

    assert c.delete(f"{RULES}/{rule['id']}").status_code == 202
    assert rule["id"] not in [x["id"] for x in neutron_rules(c, group["id"])]
    assert "could not be found" in nova_error(c.delete(f"{RULES}/{rule['id']}"), 404)


def test_a_neutron_rule_shows_here_in_novas_form(alice: Member) -> None:
    c = alice.client
    group = make_group(c)
    r = c.post(f"{N}/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp"}})
    assert r.status_code == 201, r.text
    rule_id = r.json()["security_group_rule"]["id"]
    (rule,) = c.get(f"{SG}/{group['id']}").json()["security_group"]["rules"]
    assert rule == {"id": rule_id, "parent_group_id": group["id"], "ip_protocol": "tcp",
                    "from_port": 1, "to_port": 65535, "ip_range": {"cidr": "0.0.0.0/0"},
                    "group": {}}
    assert c.delete(f"{RULES}/{rule_id}").status_code == 202
    assert c.get(f"{N}/security-group-rules/{rule_id}").status_code == 404


def test_gone_from_2_36(alice: Member) -> None:
    c = alice.client
    group = make_group(c)
    newer = {"OpenStack-API-Version": "compute 2.36"}
    for method, url in (("GET", SG), ("POST", SG), ("GET", f"{SG}/{group['id']}"),
                        ("PUT", f"{SG}/{group['id']}"), ("DELETE", f"{SG}/{group['id']}"),
                        ("POST", RULES), ("DELETE", f"{RULES}/{group['id']}")):
        r = c.request(method, url, headers=newer, json={} if method in ("POST", "PUT")
                      else None)
        assert nova_error(r, 404) == "The resource could not be found.", (method, url)
    assert c.get(f"{SG}/{group['id']}").status_code == 200  # still there at 2.35


def test_bad_groups_answer_novas_400s(alice: Member) -> None:
    c = alice.client
    assert nova_error(c.post(SG, json={}), 400) == "The request body can't be empty"
    assert nova_error(c.post(SG, json={"group": {}}), 400) == \
        "Missing parameter security_group"
    assert nova_error(c.post(SG, json={"security_group": {"description": "d"}}), 400) == \
        "name is not a string or unicode"
    assert nova_error(c.post(SG, json={"security_group": {"name": "n"}}), 400) == \
        "description is not a string or unicode"
    assert nova_error(c.post(SG, json={"security_group": {
        "name": "x" * 256, "description": "d"}}), 400) == "name has more than 255 characters."
    assert nova_error(c.get(f"{SG}/not-a-uuid"), 400) == "Security group id should be uuid"
    missing = "6a5b6c7d-0000-4000-8000-000000000000"
    assert nova_error(c.get(f"{SG}/{missing}"), 404)
    assert nova_error(c.put(f"{SG}/{missing}", json={"security_group": {
        "name": "a", "description": "b"}}), 404)
    assert nova_error(c.delete(f"{SG}/{missing}"), 404)
    assert nova_error(c.delete(f"{SG}/"), 404) == "The resource could not be found."
    # Neutron refuses a second "default": Nova answers its 409 as a 403.
    assert nova_error(c.post(SG, json={"security_group": {
        "name": "default", "description": "d"}}), 403)


def test_bad_rules_answer_novas_400s(alice: Member) -> None:
    c = alice.client
    gid = make_group(c)["id"]

    def bad(**fields: Any) -> str:
        return nova_error(add_rule(c, gid, **fields), 400)

    assert bad(ip_protocol="tcp", from_port=22, to_port=21) == \
        "Invalid port range 22:21. Former value cannot be greater than the later"
    assert bad(ip_protocol="tcp", from_port=22, to_port=65536) == \
        "Invalid port range 22:65536. Valid TCP ports should be between 1-65535"
    assert bad(ip_protocol="icmp", from_port=-2, to_port=0) == \
        "Invalid port range -2:0. For ICMP, the type:code must be valid"
    assert bad(ip_protocol="tcp", from_port="a", to_port=22) == \
        "Invalid input received: To and From ports must be integers"
    assert bad(ip_protocol="gre", from_port=1, to_port=2) == "Invalid IP protocol gre."
    assert bad(ip_protocol="tcp", from_port=22, to_port=22, cidr="10.0.0.300/24") == \
        "10.0.0.300/24 is not a valid IP network."
    assert bad(ip_protocol="tcp", from_port=22, to_port=22, cidr="10.1.0.0/0") == \
        "Bad prefix for network in cidr 10.1.0.0/0"
    assert bad(ip_protocol="tcp") == "Not enough parameters to build a valid rule."
    assert nova_error(c.post(RULES, json={"security_group_rule": {
        "parent_group_id": "nope", "ip_protocol": "tcp", "from_port": 1, "to_port": 2}}),
        400) == "Security group id should be uuid"
    missing = "6a5b6c7d-0000-4000-8000-000000000000"
    assert nova_error(add_rule(c, missing, ip_protocol="tcp", from_port=1, to_port=2), 404)
    assert nova_error(add_rule(c, gid, group_id=missing), 404)
    assert nova_error(c.delete(f"{RULES}/{missing}"), 404)

    assert add_rule(c, gid, ip_protocol="tcp", from_port=80, to_port=80).status_code == 200
    assert bad(ip_protocol="tcp", from_port=80, to_port=80) == \
        f"This rule already exists in group {gid}"


def test_a_group_in_use_or_default_is_not_deleted(alice: Member) -> None:
    c = alice.client
    group = make_group(c)
    net = c.get(f"{N}/networks", params={"name": "private"}).json()["networks"][0]
    r = c.post(f"{N}/ports", json={"port": {"network_id": net["id"],
                                           "security_groups": [group["id"]]}})
    assert r.status_code == 201, r.text
    assert "in use" in nova_error(c.delete(f"{SG}/{group['id']}"), 400)
    assert c.delete(f"{N}/ports/{r.json()['port']['id']}").status_code == 204
    assert c.delete(f"{SG}/{group['id']}").status_code == 202

    default = next(g for g in c.get(SG).json()["security_groups"] if g["name"] == "default")
    assert nova_error(c.delete(f"{SG}/{default['id']}"), 400)


def test_another_projects_group_is_not_found(alice: Member, bob: Member,
                                             admin: httpx.Client) -> None:
    group = make_group(alice.client)
    gid = group["id"]
    b = bob.client
    assert nova_error(b.get(f"{SG}/{gid}"), 404)
    assert nova_error(b.put(f"{SG}/{gid}", json={"security_group": {
        "name": "mine", "description": "now"}}), 404)
    assert nova_error(b.delete(f"{SG}/{gid}"), 404)
    assert nova_error(add_rule(b, gid, ip_protocol="tcp", from_port=1, to_port=2), 404)
    assert gid not in [g["id"] for g in b.get(SG).json()["security_groups"]]
    # all_tenants is for admins: ignored for a member, every project's for an admin.
    assert gid not in [g["id"] for g in b.get(SG, params={"all_tenants": 1}).json()[
        "security_groups"]]
    assert gid not in [g["id"] for g in admin.get(SG).json()["security_groups"]]
    assert gid in [g["id"] for g in admin.get(SG, params={"all_tenants": 1}).json()[
        "security_groups"]]


def test_a_cidr_is_kept_as_given_and_matched_as_its_network(alice: Member) -> None:
    """Neutron keeps ``remote_ip_prefix`` as given and shows its network as
    ``normalized_cidr``; the same network given another way is the same rule (Neutron's
    conflict, which Nova's proxy answers 403)."""
    c = alice.client
    group = make_group(c)
    r = add_rule(c, group["id"], ip_protocol="tcp", from_port=22, to_port=22,
                 cidr="10.2.3.124/24")
    assert r.status_code == 200, r.text
    assert r.json()["security_group_rule"]["ip_range"] == {"cidr": "10.2.3.124/24"}
    (rule,) = [x for x in neutron_rules(c, group["id"]) if x["protocol"] == "tcp"]
    assert (rule["remote_ip_prefix"], rule["normalized_cidr"]) == \
        ("10.2.3.124/24", "10.2.3.0/24")
    r = add_rule(c, group["id"], ip_protocol="tcp", from_port=22, to_port=22,
                 cidr="10.2.3.0/24")
    assert "already exists" in nova_error(r, 403)


def test_a_servers_groups_show_rules_in_novas_form(alice: Member) -> None:
    """``GET /servers/{id}/os-security-groups``: a remote-group rule names the remote
    group (not its own), a rule without a prefix shows 0.0.0.0/0, any port 1-65535."""
    from tests.helpers import boot, wait_status

    c = alice.client
    web, admins = make_group(c, name="web"), make_group(c, name="admins")
    assert add_rule(c, web["id"], ip_protocol="tcp", from_port=1, to_port=65535,
                    group_id=admins["id"]).status_code == 200
    r = c.post(f"{N}/security-group-rules", json={"security_group_rule": {
        "security_group_id": web["id"], "direction": "ingress", "protocol": "udp"}})
    assert r.status_code == 201, r.text
    sid = boot(c, "sg-view", security_groups=[{"name": "web"}])
    wait_status(c, sid, "ACTIVE")
    try:
        r = c.get(f"/compute/v2.1/servers/{sid}/os-security-groups")
        assert r.status_code == 200, r.text
        (shown,) = r.json()["security_groups"]
        rules = {x["ip_protocol"]: x for x in shown["rules"]}
        assert rules["tcp"]["group"] == {"name": "admins", "tenant_id": alice.project_id}
        assert rules["tcp"]["ip_range"] == {}
        assert (rules["udp"]["from_port"], rules["udp"]["to_port"]) == (1, 65535)
        assert rules["udp"]["ip_range"] == {"cidr": "0.0.0.0/0"}
    finally:
        assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
