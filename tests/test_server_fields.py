"""What ``POST``/``PUT /servers`` honour and refuse per microversion, and a server's
metadata, tags, addresses, reset state, diagnostics and history, over real HTTP on
both databases: a field is either kept and shown or refused with Nova's 400."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer
from tests.helpers import boot, demo_image, wait_gone, wait_status
from tests.test_server_filters import Member, make_member

API = "/compute/v2.1"


def at(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


def create(c: httpx.Client, version: str = "2.96", **server: Any) -> httpx.Response:
    body = {"server": {"name": server.pop("name", "fld"), "imageRef": demo_image(c),
                       "flavorRef": "1", "networks": "none", **server}}
    older = tuple(map(int, version.split("."))) < (2, 37)
    if older and body["server"]["networks"] == "none":
        body["server"]["networks"] = []
    return c.post(f"{API}/servers", json=body, headers=at(version))


def message(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(next(iter(r.json().values()))["message"])


@pytest.fixture(scope="module")
def c(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def member(server: RunningServer) -> Iterator[Member]:
    m = make_member(server, secrets.token_hex(3))
    yield m
    m.client.close()


@pytest.fixture(scope="module")
def vm(c: httpx.Client) -> Iterator[str]:
    sid = boot(c, f"fields-{secrets.token_hex(3)}", tags=["one"])
    wait_status(c, sid, "ACTIVE")
    yield sid
    c.delete(f"{API}/servers/{sid}")
    wait_gone(c, sid)


def _gone(c: httpx.Client, *sids: str) -> None:
    for sid in sids:
        c.delete(f"{API}/servers/{sid}")
    for sid in sids:
        wait_gone(c, sid)


def test_create_keeps_and_shows_the_fields_of_its_microversion(c: httpx.Client) -> None:
    r = create(c, name="kept", hostname="kept-host", tags=["a", "b"],
               accessIPv4="198.51.100.7",
               accessIPv6="2001:0db8:0000:0000:0000:0000:198.51.100.7", description="d")
    assert r.status_code == 202, r.text
    assert r.headers["location"].endswith(r.json()["server"]["id"])
    sid = r.json()["server"]["id"]
    shown = c.get(f"{API}/servers/{sid}").json()["server"]
    assert shown["OS-EXT-SRV-ATTR:hostname"] == "kept-host"
    assert shown["tags"] == ["a", "b"]
    # IPv6 in canonical form (RFC 5952), as Nova keeps it
    assert (shown["accessIPv4"], shown["accessIPv6"]) == ("198.51.100.7", "2001:db8::c633:6407")
    assert shown["description"] == "d"
    # no field of a higher microversion at a lower one
    old = c.get(f"{API}/servers/{sid}", headers=at("2.25")).json()["server"]
    assert "tags" not in old and "locked_reason" not in old and "description" in old
    assert "description" not in c.get(f"{API}/servers/{sid}", headers=at("2.18")
                                      ).json()["server"]
    # below 2.19 the description is the name, as Nova stores it
    r = create(c, version="2.18", name="old-style")
    old_id = r.json()["server"]["id"]
    assert c.get(f"{API}/servers/{old_id}").json()["server"]["description"] == "old-style"
    _gone(c, sid, old_id)


@pytest.mark.parametrize("version,field,value", [
    ("2.89", "hostname", "h1"),
    ("2.51", "tags", ["x"]),
    ("2.18", "description", "d"),
    ("2.73", "host", "compute-a"),
    ("2.57", "personality", [{"path": "/etc/x", "contents": "eA=="}]),
    ("2.96", "trusted_image_certificates", ["x"]),
])
def test_fields_above_their_microversion_are_refused(c: httpx.Client, version: str,
                                                      field: str, value: Any) -> None:
    r = create(c, version=version, **{field: value})
    assert message(r, 400) == f"Additional properties are not allowed ('{field}' was " \
        "unexpected)"


@pytest.mark.parametrize("fields,expected", [
    ({"flavorRef": "no-such-flavor"}, "Flavor no-such-flavor could not be found."),
    ({"accessIPv4": "300.1.1.1"}, "'300.1.1.1' is not a 'ipv4'"),
    ({"accessIPv6": "192.0.2.1"}, "'192.0.2.1' is not a 'ipv6'"),
    ({"security_groups": [{"name": "web"}]}, "Security group web not found."),
    ({"networks": [{"uuid": "not-a-uuid"}]}, "'not-a-uuid' is not a 'uuid'"),
    ({"networks": [{"uuid": "9c5c4ae4-41f3-4b85-a8a2-4bbb5d1c2f6e"}]},
     "Network 9c5c4ae4-41f3-4b85-a8a2-4bbb5d1c2f6e could not be found."),
    ({"networks": [{"port": "9c5c4ae4-41f3-4b85-a8a2-4bbb5d1c2f6e"}]},
     "Port id 9c5c4ae4-41f3-4b85-a8a2-4bbb5d1c2f6e could not be found."),
    ({"tags": ["a/b"]}, "'a/b' does not match '^[^,/]*$'"),
    ({"tags": [f"t{i}" for i in range(51)]}, "tags"),
    ({"hostname": "one", "max_count": 2}, "Unable to allocate a single hostname"),
    ({"metadata": {"bad/key": "v"}}, "'bad/key' does not match any of the regexes"),
    ({"host": "no-such-host"}, "Compute host no-such-host could not be found."),
    ({"availability_zone": "nova:compute-a", "host": "compute-a"}, "mutually exclusive"),
])
def test_bad_create_fields_are_400(c: httpx.Client, fields: dict[str, Any],
                                   expected: str) -> None:
    assert expected in message(create(c, **fields), 400)


def test_old_microversions_networks_and_personality(c: httpx.Client) -> None:
    r = create(c, version="2.36", networks=[{"uuid": "nope"}])
    assert message(r, 400) == "Bad networks format: network uuid is not in proper format " \
        "(nope)"
    files = [{"path": f"/etc/f{i}", "contents": "eA=="} for i in range(6)]
    assert message(create(c, version="2.56", personality=files), 403) == \
        "Personality file limit exceeded"
    assert "is not a 'base64'" in message(create(c, version="2.56", personality=[
        {"path": "/etc/x", "contents": "!!"}]), 400)
    r = create(c, version="2.56", personality=[{"path": "/etc/motd", "contents":
                                                base64.b64encode(b"hi").decode()}],
               security_groups=[{"name": "default"}])
    assert r.status_code == 202, r.text
    _gone(c, r.json()["server"]["id"])


def test_key_name_of_another_user_is_400(c: httpx.Client, member: Member) -> None:
    r = member.client.post(f"{API}/os-keypairs", json={"keypair": {"name": "mine"}},
                           headers=at("2.91"))
    assert r.status_code in (200, 201), r.text
    assert message(create(c, key_name="mine"), 400) == "Invalid key_name provided."


def test_requested_and_forced_hosts_are_an_admins(c: httpx.Client, member: Member) -> None:
    made = []
    for fields, host in (({"host": "compute-b"}, "compute-b"),
                         ({"hypervisor_hostname": "compute-a"}, "compute-a"),
                         ({"availability_zone": "nova:compute-a"}, "compute-a"),
                         ({"availability_zone": "nova:compute-b:compute-b"}, "compute-b")):
        r = create(c, **fields)
        assert r.status_code == 202, r.text
        made.append(r.json()["server"]["id"])
        shown = wait_status(c, made[-1], "ACTIVE")
        assert shown["OS-EXT-SRV-ATTR:host"] == host, fields
    assert "requested_destination" in message(create(member.client, host="compute-a"), 403)
    assert "forced_host" in message(create(member.client,
                                           availability_zone="nova:compute-a"), 403)
    _gone(c, *made)


def test_update_answers_per_microversion(c: httpx.Client, vm: str) -> None:
    r = c.put(f"{API}/servers/{vm}", json={"server": {"name": "renamed"}}, headers=at("2.74"))
    assert r.status_code == 200, r.text
    reduced = r.json()["server"]
    assert reduced["name"] == "renamed"
    for absent in ("OS-EXT-STS:vm_state", "key_name", "OS-EXT-AZ:availability_zone",
                   "config_drive", "OS-EXT-SRV-ATTR:host", "security_groups",
                   "OS-SRV-USG:launched_at", "os-extended-volumes:volumes_attached"):
        assert absent not in reduced, absent
    for present in ("tags", "locked_reason", "description", "accessIPv4", "addresses"):
        assert present in reduced, present
    r = c.put(f"{API}/servers/{vm}", json={"server": {
        "accessIPv4": "203.0.113.4", "hostname": "new-host", "description": None}})
    full = r.json()["server"]
    assert full["OS-EXT-STS:vm_state"] == "active" and full["accessIPv4"] == "203.0.113.4"
    assert full["OS-EXT-SRV-ATTR:hostname"] == "new-host" and full["description"] is None
    assert "hostname" in message(c.put(f"{API}/servers/{vm}", json={
        "server": {"hostname": "x"}}, headers=at("2.89")), 400)
    assert "ipv6" in message(c.put(f"{API}/servers/{vm}", json={
        "server": {"accessIPv6": "nope"}}), 400)


def test_metadata_items(c: httpx.Client, vm: str) -> None:
    base = f"{API}/servers/{vm}/metadata"
    assert c.put(base, json={"metadata": {"a": "1", "b": "2"}}).json() == {
        "metadata": {"a": "1", "b": "2"}}
    assert c.post(base, json={"metadata": {"c": "3"}}).json()["metadata"] == {
        "a": "1", "b": "2", "c": "3"}
    assert c.get(f"{base}/b").json() == {"meta": {"b": "2"}}
    assert c.put(f"{base}/b", json={"meta": {"b": "two"}}).json() == {"meta": {"b": "two"}}
    assert message(c.put(f"{base}/b", json={"meta": {"x": "1"}}), 400) == \
        "Request body and URI mismatch"
    assert message(c.put(f"{base}/b", json={"meta": {"b": "1", "c": "2"}}), 400) == \
        "Request body contains too many items"
    assert c.delete(f"{base}/a").status_code == 204
    assert message(c.delete(f"{base}/a"), 404) == "Metadata item was not found"
    assert message(c.get(f"{base}/a"), 404) == "Metadata item was not found"
    assert c.get(base).json() == {"metadata": {"b": "two", "c": "3"}}
    assert c.get(f"{API}/servers/{vm}").json()["server"]["metadata"] == {"b": "two", "c": "3"}
    assert "does not match any of the regexes" in message(
        c.post(base, json={"metadata": {"a/b": "1"}}), 400)
    assert message(c.post(base, json={"metadata": {"k": "v" * 256}}), 400)
    # the metadata_items quota counts the whole set
    too_many = {f"k{i}": "v" for i in range(129)}
    assert message(c.put(base, json={"metadata": too_many}), 403) == \
        "Maximum number of metadata items exceeds 128"


def test_tags(c: httpx.Client, vm: str) -> None:
    base = f"{API}/servers/{vm}/tags"
    assert c.get(base).json() == {"tags": ["one"]}
    assert c.put(base, json={"tags": ["x", "y"]}).json() == {"tags": ["x", "y"]}
    r = c.put(f"{base}/z")
    assert r.status_code == 201 and r.headers["location"].endswith(f"/servers/{vm}/tags/z")
    assert c.put(f"{base}/z").status_code == 204
    assert c.get(f"{base}/z").status_code == 204
    assert message(c.get(f"{base}/nope"), 404) == f"Server {vm} has no tag 'nope'"
    assert c.delete(f"{base}/x").status_code == 204
    assert message(c.delete(f"{base}/x"), 404) == f"Instance {vm} has no tag 'x'"
    assert "is invalid" in message(c.put(f"{base}/{'t' * 61}"), 400)
    assert message(c.put(base, json={"tags": [f"t{i}" for i in range(51)]}), 400)
    assert c.put(base, json={"tags": [f"t{i}" for i in range(50)]}).status_code == 200
    assert message(c.put(f"{base}/one-more"), 400) == \
        "The number of tags exceeded the per-server limit 50"
    assert c.delete(base).status_code == 204
    assert c.get(base).json() == {"tags": []}
    assert c.get(base, headers=at("2.25")).status_code == 404


def test_ips(c: httpx.Client, vm: str) -> None:
    addresses = c.get(f"{API}/servers/{vm}/ips").json()["addresses"]
    network, items = next(iter(addresses.items()))
    assert set(items[0]) == {"version", "addr"}
    assert c.get(f"{API}/servers/{vm}/ips/{network}").json() == {network: items}
    assert message(c.get(f"{API}/servers/{vm}/ips/elsewhere"), 404) == \
        "Instance is not a member of specified network"


def test_reset_state_diagnostics_and_history(c: httpx.Client, member: Member) -> None:
    sid = boot(c, "reset-me")
    wait_status(c, sid, "ACTIVE")
    diag = c.get(f"{API}/servers/{sid}/diagnostics", headers=at("2.48")).json()
    assert diag["state"] == "running" and diag["driver"] == "libvirt"
    assert diag["num_cpus"] == len(diag["cpu_details"]) and diag["memory_details"]["maximum"]
    assert diag["num_nics"] == len(diag["nic_details"])
    assert message(member.client.get(f"{API}/servers/{sid}/diagnostics"), 403)
    act = f"{API}/servers/{sid}/action"
    assert "state" in message(c.post(act, json={"os-resetState": {"state": "paused"}}), 400)
    assert c.post(act, json={"os-resetState": {"state": "error"}}).status_code == 202
    assert c.get(f"{API}/servers/{sid}").json()["server"]["status"] == "ERROR"
    actions = c.get(f"{API}/servers/{sid}/os-instance-actions").json()["instanceActions"]
    assert actions[0]["action"] == "resetState"
    assert c.post(act, json={"os-resetState": {"state": "active"}}).status_code == 202
    assert message(c.post(act, json={"createImage": {"name": "s", "metadata": {
        "bad/key": "v"}}}), 400)
    c.delete(f"{API}/servers/{sid}")
    wait_gone(c, sid)
    # a deleted server's history: from 2.21
    assert c.get(f"{API}/servers/{sid}/os-instance-actions", headers=at("2.20")
                 ).status_code == 404
    history = c.get(f"{API}/servers/{sid}/os-instance-actions", headers=at("2.21"))
    assert history.status_code == 200
    assert history.json()["instanceActions"][0]["action"] == "delete"
    request_id = history.json()["instanceActions"][0]["request_id"]
    assert c.get(f"{API}/servers/{sid}/os-instance-actions/{request_id}",
                 headers=at("2.21")).status_code == 200
