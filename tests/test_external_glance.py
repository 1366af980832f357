"""An external Glance serves the images: ``[glance] api_servers``.

The external Keystone and Glance are a second, real ``novalite serve`` (its
embedded Keystone v3 and Glance v2 over HTTP); the service under test keeps no
image records, looks images up there with the caller's token and its compute
host downloads the data, verifying the checksum; snapshots are uploaded there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from novalite.testing.server import ADMIN_PASSWORD, RunningServer, start, wait_for
from tests.helpers import wait_gone, wait_status


@pytest.fixture(scope="module")
def keystone_and_glance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start(tmp_path_factory.mktemp("keystone-glance"))
    try:
        yield srv
    finally:
        srv.stop()


def test_boots_from_the_external_glance_and_serves_no_images_itself(
        keystone_and_glance: RunningServer, tmp_path: Path) -> None:
    ext = keystone_and_glance
    data = b"\xeb\xfe" + bytes(510)  # a 512-byte image of our own
    c = ext.client()
    image = c.post("/image/v2/images", json={"name": "ext-image", "disk_format": "raw",
                                             "container_format": "bare"}).json()["id"]
    assert c.put(f"/image/v2/images/{image}/file", content=data, headers={
        "Content-Type": "application/octet-stream"}).status_code == 204
    nova = start(tmp_path / "nova", config={
        "keystone_authtoken": {"auth_url": f"{ext.url}/identity/v3", "username": "admin",
                               "password": ADMIN_PASSWORD, "project_name": "admin"},
        "glance": {"api_servers": [f"{ext.url}/image"]}})
    try:
        api = httpx.Client(base_url=nova.url, timeout=30, headers={
            "X-Auth-Token": ext.token(), "OpenStack-API-Version": "compute 2.96"})
        assert api.get("/image/v2/images").status_code == 404  # no embedded Glance
        r = api.post("/compute/v2.1/servers", json={"server": {
            "name": "from-glance", "imageRef": image, "flavorRef": "1"}})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        server = wait_status(api, sid, "ACTIVE")
        assert server["image"]["id"] == image
        cached = list((tmp_path / "nova").rglob(image))
        assert cached and hashlib.md5(cached[0].read_bytes()).digest() == \
            hashlib.md5(data).digest()  # downloaded and verified
        missing = api.post("/compute/v2.1/servers", json={"server": {
            "name": "x", "flavorRef": "1", "imageRef": "0b9d3f7e-0000-4000-8000-000000000000"}})
        assert missing.status_code == 400 and "could not be found" in missing.text
        # createImage: the snapshot lands in the external Glance, inheriting properties
        snap = api.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"createImage": {"name": "snap-ext", "metadata": {"k": "v"}}})
        assert snap.status_code == 202, snap.text
        snap_id = snap.json()["image_id"]
        shown = wait_for(lambda: (lambda i: i if i["status"] == "active" else None)(
            c.get(f"/image/v2/images/{snap_id}").json()))
        assert shown["image_type"] == "snapshot" and shown["instance_uuid"] == sid
        assert shown["base_image_ref"] == image and shown["k"] == "v"
        assert c.get(f"/image/v2/images/{snap_id}/file").content  # the data arrived
        wait_status(api, sid, "ACTIVE")  # task_state cleared
        c.delete(f"/image/v2/images/{snap_id}")
        assert api.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
        wait_gone(api, sid)
    finally:
        nova.stop()
    c.delete(f"/image/v2/images/{image}")
