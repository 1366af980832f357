"""A compute host shares nothing with the control process but HTTP and the bus.

It downloads image data from the image API over HTTP with the caller's token
(even from the embedded one, in the same process), uploads snapshots the same
way, deletes a failed snapshot's image through the image API, and the compute
API answers "not supported by this hypervisor" from the capabilities the
instance's own host reported.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, wait_gone, wait_status


def _image(c: httpx.Client, image_id: str) -> dict[str, Any]:
    return c.get(f"/image/v2/images/{image_id}").json()  # type: ignore[no-any-return]


def _database(srv: RunningServer, db_config: dict[str, Any]) -> sqlalchemy.Engine:
    url = db_config.get("database", {}).get("connection") or \
        f"sqlite:///{srv.state_path / 'novalite.sqlite'}"
    return sqlalchemy.create_engine(url)


def test_boot_downloads_the_image_over_http_from_the_embedded_image_api(
        server: RunningServer) -> None:
    c = server.client()
    data = b"\xeb\xfe" + os.urandom(4094)
    image = c.post("/image/v2/images", json={"name": "over-http", "disk_format": "raw",
                                             "container_format": "bare"}).json()["id"]
    assert c.put(f"/image/v2/images/{image}/file", content=data, headers={
        "Content-Type": "application/octet-stream"}).status_code == 204
    sids = [boot(c, f"http-{i}", imageRef=image, networks="none") for i in range(2)]
    for sid in sids:
        wait_status(c, sid, "ACTIVE")
    fetched = [e for e in server.log_events()
               if e["event"] == "image fetched into cache" and e["image"] == image]
    # one fetch per image, over HTTP from the image API, verified
    assert len(fetched) == 1, fetched
    assert fetched[0]["url"] == f"{server.url}/image/v2/images/{image}/file"
    assert fetched[0]["verified"] == "sha512" and fetched[0]["size"] == len(data)
    cached = server.state_path / "image-cache" / image
    assert cached.read_bytes() == data
    # a copy of its own, not a link to the image store's file
    assert os.stat(cached).st_ino != os.stat(server.state_path / "images" / image).st_ino
    for sid in sids:
        c.delete(f"/compute/v2.1/servers/{sid}")
    for sid in sids:
        wait_gone(c, sid)
    c.delete(f"/image/v2/images/{image}")


def test_snapshot_is_uploaded_over_http_and_active_with_its_hashes(
        server: RunningServer) -> None:
    c = server.client()
    sid = boot(c, "snap-http", networks="none")
    wait_status(c, sid, "ACTIVE")
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"createImage": {"name": "s"}})
    assert r.status_code == 202, r.text
    snap_id = r.json()["image_id"]
    shown = wait_for(lambda: (lambda i: i if i["status"] == "active" else None)(
        _image(c, snap_id)), 15)
    data = c.get(f"/image/v2/images/{snap_id}/file").content
    assert json.loads(data)["fake_snapshot_of"] == sid  # what the driver wrote
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["disk_format"] == "raw" and shown["container_format"] == "bare"
    wait_status(c, sid, "ACTIVE")  # task_state cleared
    # the host's local copy is gone once uploaded
    assert not list((server.state_path / "image-cache" / ".snapshots").glob(snap_id + "*"))
    c.delete(f"/image/v2/images/{snap_id}")
    c.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(c, sid)


def test_failed_snapshot_upload_deletes_its_image(tmp_path: Path,
                                                  db_config: dict[str, Any]) -> None:
    # No image storage for the project: the image API refuses the snapshot's data.
    srv = start(tmp_path / "state", config={**db_config, "compute": {"hosts": ["h1"]},
                                            "image": {"storage_quota_mb": 0}})
    try:
        c = srv.client()
        sid = boot(c, "snap-fails", networks="none")
        wait_status(c, sid, "ACTIVE")
        r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"createImage": {"name": "x"}})
        assert r.status_code == 202, r.text
        snap_id = r.json()["image_id"]
        wait_for(lambda: c.get(f"/image/v2/images/{snap_id}").status_code == 404, 15)
        wait_status(c, sid, "ACTIVE")
        actions = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
        snap = [a for a in actions["instanceActions"] if a["action"] == "createImage"][0]
        detail = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/"
                       f"{snap['request_id']}").json()["instanceAction"]
        assert [(e["event"], e["result"]) for e in detail["events"]] == [
            ("compute_snapshot_instance", "Error")]
        assert "HTTP 413" in detail["events"][0]["details"]  # the image API's answer
        assert not list((srv.state_path / "image-cache" / ".snapshots").iterdir())
    finally:
        srv.stop()


def test_capabilities_come_from_the_instances_own_host_record(
        tmp_path: Path, db_config: dict[str, Any]) -> None:
    srv = start(tmp_path / "state", config={**db_config, "compute": {"hosts": ["h1"]}})
    engine = _database(srv, db_config)
    try:
        c = srv.client()
        sid = boot(c, "caps", networks="none")
        wait_status(c, sid, "ACTIVE")
        with engine.connect() as conn:
            reported = conn.execute(sqlalchemy.text(
                "SELECT capabilities FROM compute_nodes WHERE host = 'h1'")).scalar_one()
        caps = json.loads(reported) if isinstance(reported, str) else reported
        assert caps["supports_pause"] is True and caps["supports_snapshot"] is True
        # The host now says it cannot pause nor show console output.
        less = {k: v for k, v in caps.items()
                if k not in ("supports_pause", "supports_console_output")}
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(
                "UPDATE compute_nodes SET capabilities = :caps WHERE host = 'h1'"),
                {"caps": json.dumps(less)})
        r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"pause": None})
        assert r.status_code == 409, r.text
        assert "not supported by this hypervisor (host h1)" in r.text
        r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}})
        assert r.status_code == 409, r.text
        assert wait_status(c, sid, "ACTIVE")["OS-EXT-STS:task_state"] is None
        # what the host still supports works
        r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"suspend": None})
        assert r.status_code == 202, r.text
        wait_status(c, sid, "SUSPENDED")
        c.delete(f"/compute/v2.1/servers/{sid}")
        wait_gone(c, sid)
    finally:
        engine.dispose()
        srv.stop()
