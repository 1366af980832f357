"""Boot data through the compute API (user data, config drive, adminPass, the server
password) and the metadata service on its own listener, with the fake driver.

The metadata service answers only requests a compute host relayed and signed; here the
test signs them itself with the configured shared secret, as a compute host on another
machine would. The relay from inside a real guest is tested in
tests/drivers/test_qemu_metadata.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.metadata.proxy import sign
from novalite.testing.server import RunningServer, start
from tests.helpers import boot, demo_image, wait_status

SECRET = "metadata-test-secret"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start(tmp_path_factory.mktemp("metadata-api"), config={
        "metadata": {"metadata_proxy_shared_secret": SECRET, "dhcp_domain": "example.org"}})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def c(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


@pytest.fixture(scope="module")
def md_url(srv: RunningServer) -> str:
    for event in srv.log_events():
        if event.get("actor") == "metadata" and event.get("url"):
            return str(event["url"])
    raise AssertionError("the metadata service did not say where it listens")


def md(md_url: str, path: str, instance: str | None, project: str | None,
       signature: str | None = None, method: str = "GET", body: bytes = b"") -> httpx.Response:
    headers = {}
    if instance is not None:
        headers["X-Instance-ID"] = instance
        headers["X-Instance-ID-Signature"] = signature or sign(SECRET, instance)
    if project is not None:
        headers["X-Tenant-ID"] = project
    return httpx.request(method, md_url + path, headers=headers, content=body, timeout=10)


def count_servers(c: httpx.Client) -> int:
    return len(c.get("/compute/v2.1/servers").json()["servers"])


@pytest.mark.parametrize(("extra", "message"), [
    ({"user_data": "not base64!"}, "User data needs to be valid base 64."),
    ({"user_data": base64.b64encode(b"x" * 65536).decode()}, "is too long"),
    ({"config_drive": "maybe"}, "Invalid input for field/attribute config_drive"),
    ({"config_drive": 5}, "Invalid input for field/attribute config_drive"),
])
def test_bad_boot_data_is_a_400_and_creates_nothing(c: httpx.Client, extra: dict[str, Any],
                                                     message: str) -> None:
    before = count_servers(c)
    body = {"server": {"name": "bad", "imageRef": demo_image(c), "flavorRef": "1", **extra}}
    r = c.post("/compute/v2.1/servers", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["badRequest"]["message"]
    assert count_servers(c) == before


def test_boot_data_reaches_the_metadata_service(c: httpx.Client, md_url: str) -> None:
    key = c.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "mdkey"}},
                 headers={"OpenStack-API-Version": "compute 2.91"})  # generated
    assert key.status_code in (200, 201), key.text
    public_key = key.json()["keypair"]["public_key"]
    user_data = b"#!/bin/sh\necho hello from user data\n"
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "Web Server_1", "imageRef": demo_image(c), "flavorRef": "1",
        "key_name": "mdkey", "user_data": base64.b64encode(user_data).decode(),
        "metadata": {"role": "web"}, "adminPass": "Chosen-Pass-1", "config_drive": True}})
    assert r.status_code == 202, r.text
    assert r.json()["server"]["adminPass"] == "Chosen-Pass-1", "the adminPass given is used"
    sid = r.json()["server"]["id"]
    server = wait_status(c, sid, "ACTIVE")
    assert server["config_drive"] == "True"
    assert server["OS-EXT-SRV-ATTR:user_data"] == base64.b64encode(user_data).decode()
    project = server["tenant_id"]

    meta = md(md_url, "/openstack/latest/meta_data.json", sid, project)
    assert meta.status_code == 200, meta.text
    assert meta.headers["content-type"].startswith("application/json")
    data = meta.json()
    assert data["uuid"] == sid and data["name"] == "Web Server_1"
    assert data["hostname"] == "web-server-1.example.org", "sanitized as Nova does"
    assert data["public_keys"] == {"mdkey": public_key}
    assert data["keys"] == [{"name": "mdkey", "type": "ssh", "data": public_key}]
    assert data["meta"] == {"role": "web"} and data["project_id"] == project
    assert data["launch_index"] == 0 and data["availability_zone"] == "nova"
    assert len(base64.b64decode(data["random_seed"])) == 512
    assert "admin_pass" not in data, "the admin password is on the config drive only"
    assert md(md_url, "/openstack/latest/user_data", sid, project).content == user_data
    listing = md(md_url, "/openstack/latest", sid, project).text.splitlines()
    assert listing == ["meta_data.json", "user_data", "password", "vendor_data.json",
                       "network_data.json", "vendor_data2.json"]
    assert "2012-08-10" in md(md_url, "/openstack", sid, project).text.splitlines()
    assert md(md_url, "/openstack/2012-08-10/meta_data.json", sid, project).json().get(
        "random_seed") is None, "dated versions have their own content"
    network = md(md_url, "/openstack/latest/network_data.json", sid, project).json()
    address = server["addresses"]["private"][0]["addr"]
    assert network["networks"][0]["ip_address"] == address

    # The EC2 tree.
    assert md(md_url, "/latest/meta-data/hostname", sid, project).text \
        == "web-server-1.example.org"
    assert md(md_url, "/latest/meta-data/local-ipv4", sid, project).text == address
    assert md(md_url, "/latest/meta-data/public-keys/", sid, project).text == "0=mdkey"
    assert md(md_url, "/latest/meta-data/public-keys/0/openssh-key", sid,
              project).text == public_key
    assert md(md_url, "/latest/meta-data/placement/availability-zone", sid,
              project).text == "nova"
    assert md(md_url, "/2009-04-04/user-data", sid, project).content == user_data
    assert md(md_url, "/latest/meta-data/no-such-thing", sid, project).status_code == 404

    # The guest posts its encrypted password once; its owner reads it, and clears it.
    assert c.get(f"/compute/v2.1/servers/{sid}/os-server-password").json() == {"password": ""}
    secret = base64.b64encode(b"e" * 600).decode()
    r = md(md_url, "/openstack/latest/password", sid, project, method="POST",
           body=secret.encode())
    assert r.status_code == 200, r.text
    assert md(md_url, "/openstack/latest/password", sid, project).text == secret
    again = md(md_url, "/openstack/latest/password", sid, project, method="POST", body=b"x")
    assert again.status_code == 409
    assert c.get(f"/compute/v2.1/servers/{sid}/os-server-password").json() \
        == {"password": secret}
    assert c.delete(f"/compute/v2.1/servers/{sid}/os-server-password").status_code == 204
    assert c.get(f"/compute/v2.1/servers/{sid}/os-server-password").json() == {"password": ""}
    too_long = md(md_url, "/openstack/latest/password", sid, project, method="POST",
                  body=b"x" * 1021)
    assert too_long.status_code == 400

    # changePassword: no novalite driver has a guest agent (Nova's 501).
    r = c.post(f"/compute/v2.1/servers/{sid}/action",
               json={"changePassword": {"adminPass": "new"}})
    assert r.status_code == 501, r.text
    assert r.json()["notImplemented"]["message"] == "Unable to set password on instance"


def test_metadata_refuses_requests_no_compute_host_signed(c: httpx.Client,
                                                          md_url: str) -> None:
    sid = boot(c, "md-refuse")
    project = wait_status(c, sid, "ACTIVE")["tenant_id"]
    path = "/openstack/latest/meta_data.json"
    r = md(md_url, path, None, None)
    assert r.status_code == 400 and "X-Instance-ID header is missing" in r.text
    r = md(md_url, path, sid, project, signature=sign("guessed", sid))
    assert r.status_code == 403 and r.text == "Invalid proxy request signature."
    assert md(md_url, path, sid, "another-project").status_code == 404
    assert md(md_url, path, sid, project).status_code == 200


def test_image_property_makes_the_config_drive_mandatory(c: httpx.Client) -> None:
    r = c.post("/image/v2/images", json={"name": "cd-mandatory", "disk_format": "raw",
                                          "container_format": "bare",
                                          "img_config_drive": "mandatory"})
    assert r.status_code == 201, r.text
    image = r.json()["id"]
    r = c.put(f"/image/v2/images/{image}/file", content=b"\0" * 512,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "cd", "imageRef": image, "flavorRef": "1"}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    assert c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["config_drive"] == "True"
    plain = boot(c, "no-cd")
    assert c.get(f"/compute/v2.1/servers/{plain}").json()["server"]["config_drive"] == ""
