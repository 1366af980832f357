"""Projects, roles, isolation, key pairs and quotas, over real HTTP.

Two projects and an admin: a member of each project, and a reader of the first.
Another project's resources are 404 (never 403) on every path; a reader reads
and cannot change; a member cannot reach the admin APIs.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from novalite.testing.server import RunningServer, wait_for
from tests.helpers import boot, demo_image, wait_gone, wait_status

PASSWORD = "tenant-pass-1"


@dataclass
class Person:
    name: str
    project: str
    project_id: str
    user_id: str
    client: httpx.Client


def login(server: RunningServer, user: str, project: str) -> httpx.Response:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    return httpx.post(f"{server.url}/identity/v3/auth/tokens", json=body, timeout=10)


@pytest.fixture(scope="module")
def people(server: RunningServer) -> Iterator[dict[str, Person]]:
    """alice (member, p1), bob (member, p2), rita (reader, p1): new names each run."""
    tag = secrets.token_hex(3)
    admin = server.client()
    ids = {}
    for p in ("p1", "p2"):
        r = admin.post("/identity/v3/projects", json={"project": {"name": f"{p}-{tag}"}})
        assert r.status_code == 201, r.text
        ids[p] = r.json()["project"]["id"]
    out = {}
    for user, project, role in (("alice", "p1", "member"), ("bob", "p2", "member"),
                                ("rita", "p1", "reader")):
        r = admin.post("/identity/v3/users", json={"user": {
            "name": f"{user}-{tag}", "password": PASSWORD, "default_project_id": ids[project]}})
        assert r.status_code == 201, r.text
        uid = r.json()["user"]["id"]
        role_id = admin.get("/identity/v3/roles", params={"name": role}).json()["roles"][0]["id"]
        r = admin.put(f"/identity/v3/projects/{ids[project]}/users/{uid}/roles/{role_id}")
        assert r.status_code == 204, r.text
        token = login(server, f"{user}-{tag}", f"{project}-{tag}")
        assert token.status_code == 201, token.text
        client = httpx.Client(base_url=server.url, timeout=30, headers={
            "X-Auth-Token": token.headers["x-subject-token"],
            "OpenStack-API-Version": "compute 2.96"})
        out[user] = Person(f"{user}-{tag}", f"{project}-{tag}", ids[project], uid, client)
    out["admin"] = Person("admin", "admin", "", "", admin)
    yield out
    for person in out.values():
        person.client.close()


def test_identity_admin_api_shapes(server: RunningServer, people: dict[str, Person]) -> None:
    admin = people["admin"].client
    alice = people["alice"]
    projects = admin.get("/identity/v3/projects", params={"name": alice.project}).json()
    assert [p["id"] for p in projects["projects"]] == [alice.project_id]
    assert projects["projects"][0]["domain_id"] == "default"
    user = admin.get(f"/identity/v3/users/{alice.user_id}").json()["user"]
    assert user["name"] == alice.name and "password" not in user
    grants = admin.get(f"/identity/v3/projects/{alice.project_id}/users/{alice.user_id}/roles")
    assert [r["name"] for r in grants.json()["roles"]] == ["member"]
    mine = alice.client.get("/identity/v3/auth/projects").json()["projects"]
    assert [p["name"] for p in mine] == [alice.project]
    dup = admin.post("/identity/v3/projects", json={"project": {"name": alice.project}})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == 409
    # a member is not an identity administrator
    r = alice.client.get("/identity/v3/users")
    assert r.status_code == 403 and r.json()["error"]["title"] == "Forbidden"


def test_other_projects_servers_are_404_on_every_path(people: dict[str, Person]) -> None:
    alice, bob = people["alice"].client, people["bob"].client
    sid = boot(alice, "iso-vm")
    wait_status(alice, sid, "ACTIVE")
    paths = [
        ("GET", f"/compute/v2.1/servers/{sid}", None),
        ("PUT", f"/compute/v2.1/servers/{sid}", {"server": {"name": "stolen"}}),
        ("GET", f"/compute/v2.1/servers/{sid}/os-instance-actions", None),
        ("GET", f"/compute/v2.1/servers/{sid}/metadata", None),
        ("POST", f"/compute/v2.1/servers/{sid}/metadata", {"metadata": {"k": "v"}}),
        ("DELETE", f"/compute/v2.1/servers/{sid}/metadata/k", None),
        ("GET", f"/compute/v2.1/servers/{sid}/tags", None),
        ("PUT", f"/compute/v2.1/servers/{sid}/tags/t", None),
        ("GET", f"/compute/v2.1/servers/{sid}/ips", None),
        ("DELETE", f"/compute/v2.1/servers/{sid}", None),
    ]
    actions = [{"os-stop": None}, {"os-start": None}, {"reboot": {"type": "HARD"}},
               {"pause": None}, {"unpause": None}, {"suspend": None}, {"resume": None},
               {"lock": None}, {"unlock": None}, {"os-getConsoleOutput": {"length": 5}}]
    paths += [("POST", f"/compute/v2.1/servers/{sid}/action", a) for a in actions]
    leaks = []
    for method, path, body in paths:
        r = bob.request(method, path, json=body)
        if r.status_code != 404 or "itemNotFound" not in r.json():
            leaks.append((method, path, body, r.status_code))
    assert leaks == []
    for listing in ("/compute/v2.1/servers", "/compute/v2.1/servers/detail"):
        for params in ({}, {"name": "iso-vm"}, {"project_id": people["alice"].project_id}):
            assert sid not in [s["id"] for s in bob.get(listing, params=params)
                               .json()["servers"]]
        # all_tenants is an admin's: refused to a member, as in Nova (never a leak)
        r = bob.get(listing, params={"all_tenants": "1"})
        assert r.status_code == 403 and sid not in r.text
    # untouched by all of that
    assert wait_status(alice, sid, "ACTIVE")["name"] == "iso-vm"
    assert alice.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_gone(alice, sid)


def test_reader_reads_and_cannot_change(people: dict[str, Person]) -> None:
    alice, rita = people["alice"].client, people["rita"].client
    sid = boot(alice, "read-vm")
    wait_status(alice, sid, "ACTIVE")
    assert rita.get(f"/compute/v2.1/servers/{sid}").json()["server"]["id"] == sid
    assert sid in [s["id"] for s in rita.get("/compute/v2.1/servers").json()["servers"]]
    assert rita.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").status_code == 200
    for method, path, body in (
            ("POST", f"/compute/v2.1/servers/{sid}/action", {"os-stop": None}),
            ("PUT", f"/compute/v2.1/servers/{sid}", {"server": {"name": "x"}}),
            ("DELETE", f"/compute/v2.1/servers/{sid}", None),
            ("POST", "/compute/v2.1/servers", {"server": {"name": "r", "flavorRef": "1",
                                                         "imageRef": demo_image(rita)}}),
            ("POST", "/compute/v2.1/os-keypairs", {"keypair": {"name": "k"}})):
        r = rita.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["forbidden"]["message"].startswith("Policy doesn't allow")
    alice.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(alice, sid)


@pytest.mark.parametrize("method,path", [
    ("GET", "/compute/v2.1/os-services"), ("GET", "/compute/v2.1/os-hypervisors"),
    ("GET", "/compute/v2.1/os-hypervisors/statistics"),
    ("POST", "/compute/v2.1/flavors"), ("DELETE", "/compute/v2.1/flavors/1"),
    ("PUT", "/compute/v2.1/os-quota-sets/x"), ("GET", "/identity/v3/projects"),
])
def test_member_gets_403_from_admin_apis(people: dict[str, Person], method: str,
                                         path: str) -> None:
    r = people["alice"].client.request(method, path, json={})
    assert r.status_code == 403, r.text


def _ssh_key(tmp_path: Path, kind: str = "ed25519") -> str:
    key = tmp_path / f"id_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text()


def test_keypairs_are_per_user_validated_and_fingerprinted(people: dict[str, Person],
                                                           tmp_path: Path) -> None:
    alice, bob = people["alice"].client, people["bob"].client
    pub = _ssh_key(tmp_path)
    r = alice.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "k1",
                                                                  "public_key": pub}})
    assert r.status_code == 201, r.text
    kp = r.json()["keypair"]
    expected = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f",
                               str(tmp_path / "id_ed25519.pub")],
                              capture_output=True, text=True).stdout.split()[1]
    assert "MD5:" + kp["fingerprint"] == expected and kp["type"] == "ssh"
    assert [k["keypair"]["name"] for k in alice.get("/compute/v2.1/os-keypairs")
            .json()["keypairs"]] == ["k1"]
    assert bob.get("/compute/v2.1/os-keypairs").json()["keypairs"] == []
    assert bob.get("/compute/v2.1/os-keypairs/k1").status_code == 404
    assert bob.delete("/compute/v2.1/os-keypairs/k1").status_code == 404
    dup = alice.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "k1",
                                                                    "public_key": pub}})
    assert dup.status_code == 409
    for bad in ("ssh-rsa AAAA", "not a key", "ssh-ed25519 " + "QUFB" * 10):
        r = alice.post("/compute/v2.1/os-keypairs",
                       json={"keypair": {"name": "bad", "public_key": bad}})
        assert r.status_code == 400 and "Keypair data is invalid" in r.text, r.text
    # a server records its key; an unknown key is a 400
    sid = boot(alice, "keyed", key_name="k1")
    assert wait_status(alice, sid, "ACTIVE")["key_name"] == "k1"
    r = alice.post("/compute/v2.1/servers", json={"server": {
        "name": "x", "flavorRef": "1", "imageRef": demo_image(alice), "key_name": "nope"}})
    assert r.status_code == 400 and "Invalid key_name" in r.text
    # before 2.92 a key without public_key is generated; its private half is returned once
    gen = alice.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "gen"}},
                     headers={"OpenStack-API-Version": "compute 2.10"})
    assert gen.status_code == 201 and "PRIVATE KEY" in gen.json()["keypair"]["private_key"]
    assert "private_key" not in alice.get("/compute/v2.1/os-keypairs/gen").json()["keypair"]
    assert alice.delete("/compute/v2.1/os-keypairs/gen").status_code == 204
    alice.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(alice, sid)
    assert alice.delete("/compute/v2.1/os-keypairs/k1").status_code == 204


def test_quotas_refuse_before_writing_and_shrink_multi_create(
        people: dict[str, Person]) -> None:
    admin, bob = people["admin"].client, people["bob"]
    r = admin.put(f"/compute/v2.1/os-quota-sets/{bob.project_id}",
                  json={"quota_set": {"instances": 2}})
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == 2
    c = bob.client
    shown = c.get(f"/compute/v2.1/os-quota-sets/{bob.project_id}").json()["quota_set"]
    defaults = c.get(f"/compute/v2.1/os-quota-sets/{bob.project_id}/defaults").json()
    assert shown["instances"] == 2 and "floating_ips" not in shown
    assert shown["cores"] == defaults["quota_set"]["cores"]  # not overridden
    assert c.get(f"/compute/v2.1/os-quota-sets/{people['alice'].project_id}").status_code == 403
    body = {"server": {"name": "q", "flavorRef": "1", "imageRef": demo_image(c),
                       "min_count": 3}}
    r = c.post("/compute/v2.1/servers", json=body)
    assert r.status_code == 403, r.text
    assert r.json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 3, but already used 0 of 2 instances")
    assert c.get("/compute/v2.1/servers").json()["servers"] == []  # nothing written
    body["server"].update(min_count=1, max_count=5)
    assert c.post("/compute/v2.1/servers", json=body).status_code == 202
    servers = wait_for(lambda: c.get("/compute/v2.1/servers").json()["servers"])
    assert len(servers) == 2
    limits = c.get("/compute/v2.1/limits").json()["limits"]["absolute"]
    assert limits["maxTotalInstances"] == 2 and limits["totalInstancesUsed"] == 2
    detail = c.get(f"/compute/v2.1/os-quota-sets/{bob.project_id}/detail").json()
    assert detail["quota_set"]["instances"] == {"limit": 2, "in_use": 2, "reserved": 0}
    for s in servers:
        c.delete(f"/compute/v2.1/servers/{s['id']}")
    for s in servers:
        wait_gone(c, s["id"])
    assert admin.delete(f"/compute/v2.1/os-quota-sets/{bob.project_id}").status_code == 202
    assert c.get(f"/compute/v2.1/os-quota-sets/{bob.project_id}").json()[
        "quota_set"]["instances"] == defaults["quota_set"]["instances"]


def test_concurrent_boots_cannot_pass_a_quota_together(server: RunningServer,
                                                       people: dict[str, Person]) -> None:
    admin, alice = people["admin"].client, people["alice"]
    admin.put(f"/compute/v2.1/os-quota-sets/{alice.project_id}",
              json={"quota_set": {"instances": 10}})
    image = demo_image(alice.client)
    codes: list[int] = []

    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                     headers=dict(alice.client.headers)) as http:
            async def one(i: int) -> None:
                r = await http.post("/compute/v2.1/servers", json={"server": {
                    "name": f"race-{i}", "flavorRef": "42", "imageRef": image}})
                codes.append(r.status_code)

            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(one, i)

    trio.run(main)
    assert sorted(codes) == [202] * 10 + [403] * 40
    c = alice.client
    servers = c.get("/compute/v2.1/servers", params={"name": "^race-"}).json()["servers"]
    assert len(servers) == 10
    for s in servers:
        c.delete(f"/compute/v2.1/servers/{s['id']}")
    for s in servers:
        wait_gone(c, s["id"])


def test_revoked_role_and_disabled_user_take_effect_at_once(server: RunningServer,
                                                            people: dict[str, Person]) -> None:
    admin, rita = people["admin"].client, people["rita"]
    assert rita.client.get("/compute/v2.1/servers").status_code == 200
    role = admin.get("/identity/v3/roles", params={"name": "reader"}).json()["roles"][0]["id"]
    grant = f"/identity/v3/projects/{rita.project_id}/users/{rita.user_id}/roles/{role}"
    assert admin.delete(grant).status_code == 204
    assert rita.client.get("/compute/v2.1/servers").status_code == 401
    assert login(server, rita.name, rita.project).status_code == 401
    assert admin.put(grant).status_code == 204
    token = login(server, rita.name, rita.project)
    assert token.status_code == 201
    rita.client.headers["X-Auth-Token"] = token.headers["x-subject-token"]
    assert rita.client.get("/compute/v2.1/servers").status_code == 200
    r = admin.patch(f"/identity/v3/users/{rita.user_id}", json={"user": {"enabled": False}})
    assert r.status_code == 200
    assert rita.client.get("/compute/v2.1/servers").status_code == 401
    admin.patch(f"/identity/v3/users/{rita.user_id}", json={"user": {"enabled": True}})


def test_other_projects_private_images_are_404(people: dict[str, Person]) -> None:
    alice, bob = people["alice"].client, people["bob"].client
    r = bob.post("/image/v2/images", json={"name": "bobs", "disk_format": "raw",
                                           "container_format": "bare"})
    assert r.status_code == 201, r.text
    image = r.json()["id"]
    assert bob.put(f"/image/v2/images/{image}/file", content=b"\0" * 512,
                   headers={"Content-Type": "application/octet-stream"}).status_code == 204
    assert alice.get(f"/image/v2/images/{image}").status_code == 404
    assert alice.get(f"/image/v2/images/{image}/file").status_code == 404
    assert alice.delete(f"/image/v2/images/{image}").status_code == 404
    assert image not in [i["id"] for i in alice.get("/image/v2/images").json()["images"]]
    boot = alice.post("/compute/v2.1/servers", json={"server": {
        "name": "x", "flavorRef": "1", "imageRef": image}})
    assert boot.status_code == 400 and "could not be found" in boot.text
    # a reader of p1 cannot upload images either
    assert people["rita"].client.post("/image/v2/images", json={
        "name": "r", "disk_format": "raw", "container_format": "bare"}).status_code == 403
    assert bob.delete(f"/image/v2/images/{image}").status_code == 204
