"""Flavors over HTTP as Nova serves them: creation rules, private flavors and their
access lists, extra specs by key with Nova's checks, and the microversioned views."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from novalite.testing.server import RunningServer

PASSWORD = "flavor-pass-1"


@dataclass
class Member:
    project_id: str
    client: httpx.Client


def make_member(server: RunningServer, role: str = "member") -> Member:
    """A user with ``role`` in a project of its own."""
    tag = secrets.token_hex(3)
    admin = server.client()
    pid = admin.post("/identity/v3/projects", json={"project": {"name": f"fp-{tag}"}}
                     ).json()["project"]["id"]
    uid = admin.post("/identity/v3/users", json={"user": {
        "name": f"fu-{tag}", "password": PASSWORD, "default_project_id": pid}}).json()["user"]["id"]
    role_id = admin.get("/identity/v3/roles", params={"name": role}).json()["roles"][0]["id"]
    assert admin.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/{role_id}"
                     ).status_code == 204
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": f"fu-{tag}", "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": f"fp-{tag}", "domain": {"name": "Default"}}}}}
    token = httpx.post(f"{server.url}/identity/v3/auth/tokens", json=body, timeout=10)
    assert token.status_code == 201, token.text
    return Member(pid, httpx.Client(base_url=server.url, timeout=30, headers={
        "X-Auth-Token": token.headers["x-subject-token"]}))


@pytest.fixture
def c(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def member(server: RunningServer) -> Iterator[Member]:
    m = make_member(server)
    yield m
    m.client.close()


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


def new_flavor(c: httpx.Client, **extra: object) -> dict:
    body = {"flavor": {"name": f"f-{secrets.token_hex(4)}", "ram": 64, "vcpus": 1, "disk": 1,
                       **extra}}
    r = c.post("/compute/v2.1/flavors", json=body)
    assert r.status_code == 200, r.text
    return r.json()["flavor"]  # type: ignore[no-any-return]


def test_create_takes_string_booleans_numbers_and_ids_as_nova(c: httpx.Client) -> None:
    f = new_flavor(c, id=12345, ram="128", **{"os-flavor-access:is_public": "False"})
    assert f["id"] == "12345" and f["ram"] == 128
    assert f["os-flavor-access:is_public"] is False
    assert c.get("/compute/v2.1/flavors/12345").json()["flavor"]["name"] == f["name"]
    generated = new_flavor(c, id=None)
    assert len(generated["id"]) == 36
    for value in ("True", "yes", "1", True):
        assert new_flavor(c, **{"os-flavor-access:is_public": value}
                          )["os-flavor-access:is_public"] is True
    # Refused as Nova refuses: a bad boolean, a bad id, a clash, an unknown field, 2^31.
    base = {"name": f"x-{secrets.token_hex(4)}", "ram": 64, "vcpus": 1, "disk": 1}
    for bad in ({"os-flavor-access:is_public": "maybe"}, {"id": " lead"}, {"id": "a/b"},
                {"frobnicate": 1}, {"ram": "2147483648"}, {"ram": 0}, {"rxtx_factor": 0}):
        r = c.post("/compute/v2.1/flavors", json={"flavor": {**base, **bad}})
        assert r.status_code == 400, (bad, r.text)
    r = c.post("/compute/v2.1/flavors", json={"flavor": {**base, "id": "12345"}})
    assert r.status_code == 409 and "ID 12345 already exists" in r.json()["conflict"]["message"]
    r = c.post("/compute/v2.1/flavors", json={"flavor": {**base, "name": f["name"]}})
    assert r.status_code == 409
    # description only from 2.55
    r = c.post("/compute/v2.1/flavors", json={"flavor": {**base, "description": "d"}},
               headers=mv("2.54"))
    assert r.status_code == 400
    assert c.delete("/compute/v2.1/flavors/12345").status_code == 202
    assert c.get("/compute/v2.1/flavors/12345").status_code == 404


def test_views_per_microversion_and_description_update(c: httpx.Client) -> None:
    f = new_flavor(c, description="first")
    url = f"/compute/v2.1/flavors/{f['id']}"
    assert c.post(f"{url}/os-extra_specs", json={"extra_specs": {"k": "v"}}).status_code == 200
    old = c.get(url, headers=mv("2.54")).json()["flavor"]
    assert "description" not in old and "extra_specs" not in old and old["swap"] == ""
    at261 = c.get(url, headers=mv("2.61")).json()["flavor"]
    assert at261["extra_specs"] == {"k": "v"} and at261["description"] == "first"
    assert c.get(url, headers=mv("2.75")).json()["flavor"]["swap"] == 0
    r = c.put(url, json={"flavor": {"description": "second"}}, headers=mv("2.55"))
    assert r.status_code == 200 and r.json()["flavor"]["description"] == "second"
    assert c.put(url, json={"flavor": {"description": "x"}}, headers=mv("2.54")
                 ).status_code == 404
    assert c.put(url, json={"flavor": {"name": "x"}}).status_code == 400
    c.delete(url)


def test_list_filters_sorting_paging_and_query_rules(c: httpx.Client) -> None:
    small = new_flavor(c, ram=3)
    listed = c.get("/compute/v2.1/flavors/detail", params={"minRam": 1, "sort_key": "memory_mb"}
                   ).json()["flavors"]
    assert listed[0]["id"] == small["id"]
    rams = [f["ram"] for f in c.get("/compute/v2.1/flavors/detail", params={
        "sort_key": "memory_mb", "sort_dir": "desc"}).json()["flavors"]]
    assert rams == sorted(rams, reverse=True)
    assert all(f["ram"] >= 2048 for f in c.get("/compute/v2.1/flavors/detail", params={
        "minRam": 2048}).json()["flavors"])
    page = c.get("/compute/v2.1/flavors", params={"limit": 2}).json()
    assert len(page["flavors"]) == 2 and "marker=" in page["flavors_links"][0]["href"]
    after = c.get("/compute/v2.1/flavors", params={"limit": 2, "marker": page["flavors"][1]["id"]}
                  ).json()["flavors"]
    assert not {f["id"] for f in after} & {f["id"] for f in page["flavors"]}
    for params in ({"minRam": "x"}, {"is_public": "maybe"}, {"sort_key": "colour"},
                   {"limit": "-1"}, {"marker": "no-such-flavor"}):
        assert c.get("/compute/v2.1/flavors", params=params).status_code == 400, params
    # An unknown parameter: dropped before 2.75, refused from 2.75.
    assert c.get("/compute/v2.1/flavors", params={"colour": "red"}, headers=mv("2.74")
                 ).status_code == 200
    r = c.get("/compute/v2.1/flavors", params={"colour": "red"}, headers=mv("2.75"))
    assert r.status_code == 400 and "colour" in r.text
    c.delete(f"/compute/v2.1/flavors/{small['id']}")


def test_private_flavors_are_seen_by_their_projects_only(c: httpx.Client, member: Member
                                                         ) -> None:
    private = new_flavor(c, **{"os-flavor-access:is_public": False})
    public = new_flavor(c)
    url = f"/compute/v2.1/flavors/{private['id']}"
    mine = member.client
    assert mine.get(url).status_code == 404
    assert private["id"] not in {f["id"] for f in mine.get("/compute/v2.1/flavors").json()[
        "flavors"]}
    # admins choose with is_public: the default lists public ones only
    listed = {f["id"] for f in c.get("/compute/v2.1/flavors").json()["flavors"]}
    assert public["id"] in listed and private["id"] not in listed
    listed = {f["id"] for f in c.get("/compute/v2.1/flavors", params={"is_public": "false"}
                                     ).json()["flavors"]}
    assert private["id"] in listed and public["id"] not in listed
    assert private["id"] in {f["id"] for f in c.get("/compute/v2.1/flavors", params={
        "is_public": "None"}).json()["flavors"]}

    add = {"addTenantAccess": {"tenant": member.project_id}}
    r = c.post(f"{url}/action", json=add)
    assert r.status_code == 200, r.text
    assert r.json() == {"flavor_access": [{"flavor_id": private["id"],
                                           "tenant_id": member.project_id}]}
    assert c.post(f"{url}/action", json=add).status_code == 409
    assert c.get(f"{url}/os-flavor-access").json()["flavor_access"][0]["tenant_id"] == \
        member.project_id
    assert mine.get(url).status_code == 200
    assert private["id"] in {f["id"] for f in mine.get("/compute/v2.1/flavors").json()[
        "flavors"]}
    # only admins manage access; a public flavor has no list and takes none (2.7)
    assert mine.post(f"{url}/action", json=add).status_code == 403
    assert mine.get(f"{url}/os-flavor-access").status_code == 403
    public_url = f"/compute/v2.1/flavors/{public['id']}"
    assert c.get(f"{public_url}/os-flavor-access").status_code == 404
    assert c.post(f"{public_url}/action", json=add, headers=mv("2.7")).status_code == 409
    assert c.post(f"{url}/action", json={"addTenantAccess": {"tenant": "no-such-project"}}
                  ).status_code == 400
    assert c.post(f"{url}/action", json={"addTenantAccess": {}}).status_code == 400

    remove = {"removeTenantAccess": {"tenant": member.project_id}}
    assert c.post(f"{url}/action", json=remove).json() == {"flavor_access": []}
    assert c.post(f"{url}/action", json=remove).status_code == 404
    assert mine.get(url).status_code == 404
    c.delete(url)
    c.delete(public_url)


def test_extra_specs_by_key_with_novas_checks(c: httpx.Client, member: Member) -> None:
    f = new_flavor(c)
    url = f"/compute/v2.1/flavors/{f['id']}/os-extra_specs"
    r = c.post(url, json={"extra_specs": {"hw:cpu_policy": "shared", "foo:bar": "baz",
                                          "n": 1}})
    assert r.status_code == 200 and r.json()["extra_specs"]["n"] == 1
    assert c.get(url).json()["extra_specs"] == {"hw:cpu_policy": "shared", "foo:bar": "baz",
                                                 "n": "1"}
    assert c.get(f"{url}/foo:bar").json() == {"foo:bar": "baz"}
    assert member.client.get(f"{url}/foo:bar").json() == {"foo:bar": "baz"}
    assert c.put(f"{url}/foo:bar", json={"foo:bar": "qux"}).json() == {"foo:bar": "qux"}
    assert c.get(f"{url}/foo:bar").json() == {"foo:bar": "qux"}
    # a key and body that disagree, two keys, a non-admin, an unknown key
    assert c.put(f"{url}/foo:bar", json={"other": "x"}).status_code == 400
    assert c.put(f"{url}/foo:bar", json={"foo:bar": "x", "b": "y"}).status_code == 400
    assert member.client.put(f"{url}/foo:bar", json={"foo:bar": "x"}).status_code == 403
    assert c.get(f"{url}/nope").status_code == 404
    # from 2.86 keys in Nova's namespaces and their values are checked
    for bad in ({"hw:cpu_policy": "sometimes"}, {"hw:not_a_thing": "1"},
                {"hw:numa_nodes": "two"}, {"bad key!": "x"}, {"k": "x" * 256}):
        assert c.post(url, json={"extra_specs": bad}, headers=mv("2.86")).status_code == 400, bad
    assert c.post(url, json={"extra_specs": {"hw:not_a_thing": "1"}}, headers=mv("2.85")
                  ).status_code == 200
    assert c.delete(f"{url}/foo:bar").status_code == 200
    assert c.delete(f"{url}/foo:bar").status_code == 404
    assert c.get(f"{url}/foo:bar").status_code == 404
    c.delete(f"/compute/v2.1/flavors/{f['id']}")
