"""Glance v2 as Tempest and the clients use it beyond create/upload: image sharing
(members), deactivation, admin ownership, the schema documents, and the edges
(an image without data, an empty image id), over real HTTP.

Three people: alice (member of p1) owns the images, bob (member of p2) is the
project she shares with, rita (reader of p1); and the admin.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer

PASSWORD = "members-pass-1"
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"


@dataclass
class Person:
    project_id: str
    user_id: str
    client: httpx.Client


def make_people(server: RunningServer, spec: tuple[tuple[str, str, str], ...]
                ) -> dict[str, Person]:
    """Users (name, project, role) in projects of their own, each with a client."""
    tag = secrets.token_hex(3)
    admin = server.client()
    projects: dict[str, str] = {}
    out = {}
    for user, project, role in spec:
        if project not in projects:
            r = admin.post("/identity/v3/projects",
                           json={"project": {"name": f"{project}-{tag}"}})
            assert r.status_code == 201, r.text
            projects[project] = r.json()["project"]["id"]
        r = admin.post("/identity/v3/users", json={"user": {
            "name": f"{user}-{tag}", "password": PASSWORD,
            "default_project_id": projects[project]}})
        assert r.status_code == 201, r.text
        uid = r.json()["user"]["id"]
        role_id = admin.get("/identity/v3/roles", params={"name": role}).json()["roles"][0]["id"]
        r = admin.put(f"/identity/v3/projects/{projects[project]}/users/{uid}/roles/{role_id}")
        assert r.status_code == 204, r.text
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": f"{user}-{tag}", "domain": {"name": "Default"}, "password": PASSWORD}}}}}
        r = httpx.post(f"{server.url}/identity/v3/auth/tokens", json=body, timeout=10)
        assert r.status_code == 201, r.text
        client = httpx.Client(base_url=server.url, timeout=30,
                              headers={"X-Auth-Token": r.headers["x-subject-token"]})
        out[user] = Person(projects[project], uid, client)
    out["admin"] = Person("", "", admin)
    return out


@pytest.fixture(scope="module")
def people(server: RunningServer) -> Iterator[dict[str, Person]]:
    found = make_people(server, (("alice", "p1", "member"), ("bob", "p2", "member"),
                                 ("rita", "p1", "reader")))
    yield found
    for person in found.values():
        person.client.close()


def create(c: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    r = c.post("/image/v2/images", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def listed(c: httpx.Client, **params: str) -> list[str]:
    r = c.get("/image/v2/images", params=params)
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["images"]]


def members_url(image_id: str, member: str | None = None) -> str:
    url = f"/image/v2/images/{image_id}/members"
    return f"{url}/{member}" if member else url


# -- sharing ---------------------------------------------------------------------------


def test_sharing_an_image_member_answers_and_listing(people: dict[str, Person]) -> None:
    alice, bob, rita = people["alice"].client, people["bob"].client, people["rita"].client
    bob_project = people["bob"].project_id
    image = create(alice, name="shared-one")  # Glance's default visibility: shared
    assert image["visibility"] == "shared"
    # bob cannot see it before it is shared with him
    assert bob.get(f"/image/v2/images/{image['id']}").status_code == 404

    r = alice.post(members_url(image["id"]), json={"member": bob_project})
    assert r.status_code == 200, r.text
    member = r.json()
    assert member["member_id"] == bob_project and member["image_id"] == image["id"]
    assert member["status"] == "pending" and member["schema"] == "/v2/schemas/member"

    # shared: bob sees the image by id at once, but lists it only once he accepts
    assert bob.get(f"/image/v2/images/{image['id']}").status_code == 200
    assert image["id"] not in listed(bob)
    assert listed(bob, visibility="shared", member_status="pending") == [image["id"]]
    assert image["id"] in listed(bob, visibility="shared", member_status="all")
    r = bob.put(members_url(image["id"], bob_project), json={"status": "accepted"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert image["id"] in listed(bob)
    assert image["id"] not in listed(bob, visibility="shared", member_status="pending")
    r = bob.put(members_url(image["id"], bob_project), json={"status": "rejected"})
    assert r.status_code == 200
    assert image["id"] not in listed(bob)
    assert image["id"] in listed(bob, member_status="rejected")
    assert bob.get("/image/v2/images", params={"member_status": "maybe"}).status_code == 400

    # the owner, a reader of her project and the member read the membership
    for who in (alice, rita, bob):
        r = who.get(members_url(image["id"]))
        assert r.status_code == 200, r.text
        assert [m["member_id"] for m in r.json()["members"]] == [bob_project]
        assert r.json()["schema"] == "/v2/schemas/members"
        r = who.get(members_url(image["id"], bob_project))
        assert r.status_code == 200 and r.json()["status"] == "rejected"

    # removing the member takes the image away from bob
    assert bob.delete(members_url(image["id"], bob_project)).status_code == 403
    assert alice.delete(members_url(image["id"], bob_project)).status_code == 204
    assert bob.get(f"/image/v2/images/{image['id']}").status_code == 404
    assert image["id"] not in listed(bob, member_status="all", visibility="shared")
    assert alice.get(members_url(image["id"], bob_project)).status_code == 404


def test_member_rules_and_errors_are_glances(people: dict[str, Person]) -> None:
    alice, bob, rita = people["alice"].client, people["bob"].client, people["rita"].client
    admin = people["admin"].client
    bob_project = people["bob"].project_id
    image = create(alice, name="share-rules")
    url = members_url(image["id"])
    assert alice.post(url, json={}).json()["message"] == "Member to be added not specified"
    assert alice.post(url, json={"member": ""}).status_code == 400
    assert rita.post(url, json={"member": bob_project}).status_code == 403  # a reader
    assert alice.post(url, json={"member": bob_project}).status_code == 200
    r = alice.post(url, json={"member": bob_project})
    assert r.status_code == 409
    assert r.json() == {"code": "409 Conflict", "title": "Conflict", "message":
                        f"Member {bob_project} is duplicated for image {image['id']}"}
    # the owner cannot answer for the member; the member cannot add members
    r = alice.put(members_url(image["id"], bob_project), json={"status": "accepted"})
    assert r.status_code == 403
    assert image["id"] not in listed(bob)
    assert bob.post(url, json={"member": "someone-else"}).status_code == 403
    r = bob.put(members_url(image["id"], bob_project), json={"status": "notavalidstatus"})
    assert r.status_code == 400
    assert bob.put(members_url(image["id"], bob_project), json={}).status_code == 400
    # an admin may answer for anyone
    r = admin.put(members_url(image["id"], bob_project), json={"status": "accepted"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    # another member's membership is not revealed to a member
    assert alice.post(url, json={"member": "third-project"}).status_code == 200
    assert bob.get(members_url(image["id"], "third-project")).status_code == 404
    assert [m["member_id"] for m in bob.get(url).json()["members"]] == [bob_project]
    assert len(alice.get(url).json()["members"]) == 2

    # only shared images have members
    private = create(alice, name="private-one", visibility="private")
    r = alice.post(members_url(private["id"]), json={"member": bob_project})
    assert r.status_code == 403 and "Only shared images have members" in r.json()["message"]
    assert alice.get(members_url(private["id"])).status_code == 403
    # unknown image
    assert alice.get(members_url("no-such-image")).status_code == 404

    # deleting the image removes its memberships with it
    assert alice.delete(f"/image/v2/images/{image['id']}").status_code == 204
    assert image["id"] not in listed(bob, visibility="shared", member_status="all")


# -- deactivate / reactivate -----------------------------------------------------------


def test_deactivated_image_data_is_only_for_admins(people: dict[str, Person]) -> None:
    alice, bob = people["alice"].client, people["bob"].client
    admin = people["admin"].client
    image = create(alice, name="deact", visibility="private")
    url = f"/image/v2/images/{image['id']}"
    # a queued image cannot be deactivated
    r = alice.post(url + "/actions/deactivate")
    assert r.status_code == 403 and "status 'queued'" in r.json()["message"]
    data = b"x" * 1024
    r = alice.put(url + "/file", content=data,
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    # another project cannot see it, a reader of the project cannot change it
    assert bob.post(url + "/actions/deactivate").status_code == 404
    assert people["rita"].client.post(url + "/actions/deactivate").status_code == 403

    assert alice.post(url + "/actions/deactivate").status_code == 204
    assert alice.post(url + "/actions/deactivate").status_code == 204  # again: no-op
    assert alice.get(url).json()["status"] == "deactivated"
    r = alice.get(url + "/file")
    assert r.status_code == 403 and "deactivated" in r.json()["message"]
    r = admin.get(url + "/file")
    assert r.status_code == 200 and r.content == data

    assert alice.post(url + "/actions/reactivate").status_code == 204
    assert alice.get(url).json()["status"] == "active"
    r = alice.get(url + "/file")
    assert r.status_code == 200 and r.content == data
    assert alice.post(url + "/actions/reactivate").status_code == 204  # active: no-op


# -- owner, data of a queued image, empty ids ----------------------------------------------


def test_admin_sets_the_owner_others_cannot(people: dict[str, Person]) -> None:
    alice, admin = people["alice"].client, people["admin"].client
    bob_project = people["bob"].project_id
    image = create(admin, name="given-away", owner="some-project-id")
    assert image["owner"] == "some-project-id"
    r = admin.patch(f"/image/v2/images/{image['id']}", headers={"Content-Type": PATCH_TYPE},
                    json=[{"op": "replace", "path": "/owner", "value": bob_project}])
    assert r.status_code == 200 and r.json()["owner"] == bob_project
    assert people["bob"].client.get(f"/image/v2/images/{image['id']}").status_code == 200
    r = alice.post("/image/v2/images", json={"name": "x", "owner": bob_project})
    assert r.status_code == 403
    assert r.json()["message"] == f"You are not permitted to create images owned by " \
                                  f"'{bob_project}'."
    own = create(alice, name="mine", owner=people["alice"].project_id)
    assert own["owner"] == people["alice"].project_id
    r = alice.patch(f"/image/v2/images/{own['id']}", headers={"Content-Type": PATCH_TYPE},
                    json=[{"op": "replace", "path": "/owner", "value": bob_project}])
    assert r.status_code == 403
    assert alice.get(f"/image/v2/images/{own['id']}").json()["owner"] == \
        people["alice"].project_id


def test_file_of_an_image_without_data_is_no_content(people: dict[str, Person]) -> None:
    alice = people["alice"].client
    image = create(alice, name="no-data-yet")
    r = alice.get(f"/image/v2/images/{image['id']}/file")
    assert r.status_code == 204 and r.content == b""


def test_empty_image_id_is_not_found_not_the_list(people: dict[str, Person]) -> None:
    alice = people["alice"].client
    for method in ("GET", "DELETE"):
        r = alice.request(method, "/image/v2/images/")
        assert r.status_code == 404, (method, r.status_code, r.text)
        assert r.json()["title"] == "Not Found"


# -- schemas and versions -----------------------------------------------------------------


@pytest.mark.parametrize("name,title", [
    ("image", "image"), ("images", "images"), ("member", "member"), ("members", "members"),
    ("metadefs/namespace", "namespace"), ("metadefs/namespaces", "namespaces"),
    ("metadefs/resource_type", "resource_type_association"),
    ("metadefs/resource_types", "resource_type_associations"),
    ("metadefs/object", "object"), ("metadefs/objects", "objects"),
    ("metadefs/property", "property"), ("metadefs/properties", "properties"),
    ("metadefs/tag", "tag"), ("metadefs/tags", "tags"),
])
def test_schema_documents(people: dict[str, Person], name: str, title: str) -> None:
    r = people["rita"].client.get(f"/image/v2/schemas/{name}")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == title


def test_image_schema_describes_the_image_view(people: dict[str, Person]) -> None:
    alice = people["alice"].client
    schema = alice.get("/image/v2/schemas/image").json()
    image = create(alice, name="schema-check", hw_disk_bus="virtio")
    core = {k for k in image if k in schema["properties"]}
    assert {"id", "name", "status", "visibility", "owner", "checksum", "size", "tags",
            "os_hash_value", "self", "file", "schema"} <= core
    assert schema["additionalProperties"] == {"type": "string"}  # hw_disk_bus and friends
    assert schema["properties"]["status"]["enum"][0] == "queued"
    assert alice.get("/image/v2/schemas/nothing").status_code == 404
    assert httpx.get(f"{alice.base_url}/image/v2/schemas/image").status_code == 401


def test_image_versions_at_versions(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/image/versions", timeout=10)
    assert r.status_code == 200
    assert [v["id"] for v in r.json()["versions"]] == ["v2.16"]
    assert httpx.get(f"{server.url}/image/", timeout=10).status_code == 300
