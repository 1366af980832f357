"""What a project may boot: a private flavor only once it is shared with the project, and
an image of another project only when that image is ``shared`` with it (Glance members).
Either refused is Nova's 400 "could not be found", with nothing created."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from novalite.testing.server import RunningServer
from tests.helpers import demo_image, wait_gone, wait_status
from tests.test_flavors import Member, make_member, new_flavor


@pytest.fixture
def c(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def member(server: RunningServer) -> Iterator[Member]:
    m = make_member(server)
    yield m
    m.client.close()


def _servers(client: httpx.Client) -> set[str]:
    return {s["id"] for s in client.get("/compute/v2.1/servers").json()["servers"]}


def _boot(client: httpx.Client, image: str, flavor: str) -> httpx.Response:
    return client.post("/compute/v2.1/servers", json={"server": {
        "name": f"acc-{secrets.token_hex(3)}", "imageRef": image, "flavorRef": flavor,
        "networks": "none"}}, headers={"OpenStack-API-Version": "compute 2.37"})


def test_a_private_flavor_boots_only_once_shared(c: httpx.Client, member: Member) -> None:
    private = new_flavor(c, **{"os-flavor-access:is_public": False})
    image = demo_image(c)
    before = _servers(member.client)
    r = _boot(member.client, image, private["id"])
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"] == f"Flavor {private['id']} could not be found."
    assert _servers(member.client) == before
    share = {"addTenantAccess": {"tenant": member.project_id}}
    assert c.post(f"/compute/v2.1/flavors/{private['id']}/action", json=share
                  ).status_code == 200
    r = _boot(member.client, image, private["id"])
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_status(member.client, sid, "ACTIVE")
    member.client.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(member.client, sid)
    c.delete(f"/compute/v2.1/flavors/{private['id']}")


def test_a_shared_image_boots_for_its_members_only(c: httpx.Client, member: Member,
                                                   server: RunningServer) -> None:
    data = c.get(f"/image/v2/images/{demo_image(c)}/file").content
    image = c.post("/image/v2/images", json={
        "name": f"shared-{secrets.token_hex(3)}", "disk_format": "raw",
        "container_format": "bare", "visibility": "shared"}).json()
    assert c.put(f"/image/v2/images/{image['id']}/file", content=data, headers={
        "Content-Type": "application/octet-stream"}).status_code == 204
    r = _boot(member.client, image["id"], "1")
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"] == f"Image {image['id']} could not be found."
    assert c.post(f"/image/v2/images/{image['id']}/members",
                  json={"member": member.project_id}).status_code == 200
    r = _boot(member.client, image["id"], "1")
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_status(member.client, sid, "ACTIVE")
    member.client.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(member.client, sid)
    c.delete(f"/image/v2/images/{image['id']}")
