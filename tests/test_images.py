"""The image service as clients use it (Glance v2), over real HTTP against a real service.

Image data are real files of real formats made with ``qemu-img``. Failure paths
(format mismatch, checksum mismatch, interrupted upload, crash mid-upload, quota)
are checked by what a user sees: the image's status, the error body, and that no
partial data stays on disk.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import wait_gone, wait_status
from tests.test_conform_glance import check_import_task

PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
CLIENTS = Path(__file__).resolve().parent.parent / ".venv-clients" / "bin"


# -- helpers -------------------------------------------------------------------------


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A raw disk with data in it and a qcow2 made from it (qemu-img), 4 MiB virtual."""
    d = tmp_path_factory.mktemp("image-files")
    raw = d / "disk.raw"
    qemu_img("create", "-f", "raw", str(raw), "4M")
    with open(raw, "r+b") as f:  # some recognisable content, so the qcow2 has clusters
        f.write(b"novalite" * 4096)
        f.seek(3 << 20)
        f.write(os.urandom(65536))
    qcow2 = d / "disk.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2))
    return {"raw": raw, "qcow2": qcow2}


def create(c: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    r = c.post("/image/v2/images", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def upload(c: httpx.Client, image_id: str, data: bytes, **headers: str) -> httpx.Response:
    return c.put(f"/image/v2/images/{image_id}/file", content=data,
                 headers={"Content-Type": "application/octet-stream", **headers})


def show(c: httpx.Client, image_id: str) -> dict[str, Any]:
    r = c.get(f"/image/v2/images/{image_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def patch(c: httpx.Client, image_id: str, ops: list[dict[str, Any]],
          media: str = PATCH_TYPE) -> httpx.Response:
    return c.patch(f"/image/v2/images/{image_id}", content=json.dumps(ops),
                   headers={"Content-Type": media})


def no_partial_files(srv: RunningServer) -> bool:
    store = srv.state_path / "images"
    return not any(p.name.endswith(".part") for p in store.iterdir()) if store.exists() \
        else True


# -- create, upload, download -----------------------------------------------------------


def test_create_with_properties_is_queued_and_shows_them(server: RunningServer) -> None:
    with server.client() as c:
        image = create(c, name="props", disk_format="qcow2", container_format="bare",
                       min_disk=2, min_ram=256, visibility="private", protected=False,
                       hypervisor_type="qemu", architecture="x86_64", hw_disk_bus="virtio",
                       tags=["a", "b"])
        assert image["status"] == "queued" and image["size"] is None
        shown = show(c, image["id"])
        assert shown["min_disk"] == 2 and shown["min_ram"] == 256
        assert shown["visibility"] == "private" and shown["tags"] == ["a", "b"]
        assert shown["hypervisor_type"] == "qemu" and shown["hw_disk_bus"] == "virtio"
        r = c.post("/image/v2/images", json={"name": "x", "disk_format": "floppy"})
        assert r.status_code == 400 and "disk_format" in r.json()["message"]
        r = c.post("/image/v2/images", json={"name": "x", "checksum": "abc"})
        assert r.status_code == 403
        assert r.json() == {"code": "403 Forbidden", "title": "Forbidden",
                            "message": "Attribute 'checksum' is read-only."}
        r = c.get("/image/v2/images/no-such-image")
        assert r.status_code == 404 and r.json()["title"] == "Not Found"


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_upload_computes_hashes_sizes_and_downloads_verified(
        server: RunningServer, files: dict[str, Path], fmt: str) -> None:
    data = files[fmt].read_bytes()
    with server.client() as c:
        image = create(c, name=f"up-{fmt}", disk_format=fmt)
        r = upload(c, image["id"], data)
        assert r.status_code == 204, r.text
        shown = show(c, image["id"])
        assert shown["status"] == "active"
        assert shown["size"] == len(data)
        assert shown["checksum"] == hashlib.md5(data).hexdigest()
        assert shown["os_hash_algo"] == "sha512"
        assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
        assert shown["virtual_size"] == 4 << 20  # qcow2: from its header; raw: its size
        r = c.get(f"/image/v2/images/{image['id']}/file")
        assert r.status_code == 200 and r.content == data
        assert r.headers["content-md5"] == shown["checksum"]
        r = upload(c, image["id"], data)  # an active image takes no more data
        assert r.status_code == 409


def test_disk_format_that_does_not_match_the_data_is_refused(
        server: RunningServer, files: dict[str, Path]) -> None:
    with server.client() as c:
        as_raw = create(c, name="qcow2-as-raw", disk_format="raw")
        r = upload(c, as_raw["id"], files["qcow2"].read_bytes())
        assert r.status_code == 400
        assert "disk_format is raw but the uploaded data is a qcow2 image" in r.json()["message"]
        assert show(c, as_raw["id"])["status"] == "queued"
        as_qcow2 = create(c, name="raw-as-qcow2", disk_format="qcow2")
        r = upload(c, as_qcow2["id"], files["raw"].read_bytes())
        assert r.status_code == 400
        assert "disk_format is qcow2 but the uploaded data is not qcow2" in r.json()["message"]
        assert show(c, as_qcow2["id"])["status"] == "queued"
    assert no_partial_files(server)


def test_content_md5_mismatch_leaves_image_queued_without_data(
        server: RunningServer, files: dict[str, Path]) -> None:
    data = files["raw"].read_bytes()
    with server.client() as c:
        image = create(c, name="bad-md5")
        r = upload(c, image["id"], data, **{"Content-MD5": "0" * 32})
        assert r.status_code == 400
        assert "Content-MD5 mismatch" in r.json()["message"]
        shown = show(c, image["id"])
        assert shown["status"] == "queued" and shown["size"] is None
        assert not (server.state_path / "images" / image["id"]).exists()
        r = upload(c, image["id"], data, **{"Content-MD5": hashlib.md5(data).hexdigest()})
        assert r.status_code == 204
    assert no_partial_files(server)


def _send_partial_upload(srv: RunningServer, image_id: str, declared: int, sent: bytes
                         ) -> socket.socket:
    host, port = srv.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: {host}\r\n"
            f"X-Auth-Token: {srv.token()}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    sock.sendall(head + sent)
    return sock


def test_interrupted_upload_short_of_its_content_length_is_discarded(
        server: RunningServer) -> None:
    with server.client() as c:
        image = create(c, name="interrupted")
        sock = _send_partial_upload(server, image["id"], 10 << 20, b"x" * (1 << 20))
        wait_for(lambda: show(c, image["id"])["status"] == "saving", 10)
        sock.close()  # the connection drops with 9 MiB still owed
        wait_for(lambda: show(c, image["id"])["status"] == "queued", 10)
        assert show(c, image["id"])["size"] is None
    assert no_partial_files(server)
    wait_for(lambda: "data stream ended early" in server.log(), 10)


# -- patch, tags, delete ------------------------------------------------------------------


def test_json_patch_changes_properties_and_refuses_read_only(server: RunningServer) -> None:
    with server.client() as c:
        image = create(c, name="patch-me", os_distro="debian")
        r = patch(c, image["id"], [{"op": "replace", "path": "/name", "value": "patched"},
                                   {"op": "add", "path": "/hw_vif_model", "value": "virtio"},
                                   {"op": "remove", "path": "/os_distro"},
                                   {"op": "replace", "path": "/min_ram", "value": 512}])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["name"] == "patched" and body["hw_vif_model"] == "virtio"
        assert "os_distro" not in body and body["min_ram"] == 512
        r = patch(c, image["id"], [{"op": "replace", "path": "/status", "value": "active"}])
        assert r.status_code == 403 and r.json()["message"] == "Attribute 'status' is read-only."
        r = patch(c, image["id"], [{"op": "replace", "path": "/name", "value": "x"}],
                  media="application/json")
        assert r.status_code == 415
        r = patch(c, image["id"], [{"op": "remove", "path": "/no_such_property"}])
        assert r.status_code == 400


def test_tags_are_added_removed_and_filter_the_list(server: RunningServer) -> None:
    with server.client() as c:
        image = create(c, name="tagged")
        assert c.put(f"/image/v2/images/{image['id']}/tags/gold").status_code == 204
        assert c.put(f"/image/v2/images/{image['id']}/tags/fast").status_code == 204
        assert show(c, image["id"])["tags"] == ["fast", "gold"]
        found = c.get("/image/v2/images", params=[("tag", "gold"), ("tag", "fast")]).json()
        assert [i["id"] for i in found["images"]] == [image["id"]]
        assert c.delete(f"/image/v2/images/{image['id']}/tags/gold").status_code == 204
        assert c.delete(f"/image/v2/images/{image['id']}/tags/gold").status_code == 404
        gold = c.get("/image/v2/images", params={"tag": "gold"}).json()["images"]
        assert image["id"] not in {i["id"] for i in gold}


def test_protected_image_cannot_be_deleted(server: RunningServer) -> None:
    with server.client() as c:
        image = create(c, name="keep-me", protected=True)
        r = c.delete(f"/image/v2/images/{image['id']}")
        assert r.status_code == 403 and "protected" in r.json()["message"]
        r = patch(c, image["id"], [{"op": "replace", "path": "/protected", "value": False}])
        assert r.status_code == 200
        assert c.delete(f"/image/v2/images/{image['id']}").status_code == 204
        assert c.get(f"/image/v2/images/{image['id']}").status_code == 404


def test_filters_sorting_and_paging(server: RunningServer, files: dict[str, Path]) -> None:
    prefix = f"pg-{os.urandom(3).hex()}"
    with server.client() as c:
        made = [create(c, name=f"{prefix}-{n}", disk_format="qcow2" if n in "bd" else "raw")
                for n in "cadbe"]
        assert upload(c, made[0]["id"], files["raw"].read_bytes()).status_code == 204
        ids = ",".join(i["id"] for i in made)

        def names(**params: Any) -> list[str]:
            body = c.get("/image/v2/images", params={"id": f"in:{ids}", **params}).json()
            return [i["name"].removeprefix(prefix + "-") for i in body["images"]]

        assert names(sort_key="name", sort_dir="asc") == list("abcde")
        assert names(sort="name:desc") == list("edcba")
        assert names(disk_format="qcow2", sort_key="name", sort_dir="asc") == ["b", "d"]
        assert names(status="active") == ["c"]
        assert names(name=f"{prefix}-e") == ["e"]
        assert names(visibility="shared", sort="name:asc") == list("abcde")
        owner = made[0]["owner"]
        assert len(names(owner=owner)) == 5
        # paging: limit + next link, followed to the end
        seen: list[str] = []
        url: str | None = f"/image/v2/images?id=in:{ids}&sort=name:asc&limit=2"
        while url:
            body = c.get(url).json()
            seen += [i["name"].removeprefix(prefix + "-") for i in body["images"]]
            url = "/image" + body["next"] if body.get("next") else None
        assert seen == list("abcde")
        assert c.get("/image/v2/images", params={"sort_key": "bogus"}).status_code == 400
        assert c.get("/image/v2/images", params={"marker": "nope"}).status_code == 400


# -- quota ----------------------------------------------------------------------------


def test_storage_quota_per_project(tmp_path: Path, db_config: dict[str, Any],
                                   files: dict[str, Path]) -> None:
    srv = start(tmp_path / "state", config={**db_config, "image": {"storage_quota_mb": 6}})
    try:
        data = files["raw"].read_bytes()  # 4 MiB
        with srv.client() as c:
            first = create(c, name="q1")
            assert upload(c, first["id"], data).status_code == 204
            second = create(c, name="q2")
            r = upload(c, second["id"], data)
            assert r.status_code == 413
            assert "exceeds the quota" in r.json()["message"]
            assert show(c, second["id"])["status"] == "queued"
            assert c.delete(f"/image/v2/images/{first['id']}").status_code == 204
            assert upload(c, second["id"], data).status_code == 204
        assert no_partial_files(srv)
    finally:
        srv.stop()


# -- a crash mid-upload ------------------------------------------------------------------


def test_crash_during_upload_leaves_nothing_half_written(tmp_path: Path,
                                                         db_config: dict[str, Any]) -> None:
    state = tmp_path / "state"
    srv = start(state, config=db_config)
    try:
        with srv.client() as c:
            image = create(c, name="crashy")
            sock = _send_partial_upload(srv, image["id"], 64 << 20, b"y" * (8 << 20))
            wait_for(lambda: list((state / "images").glob("*.part")), 10)
            srv.stop(sig=9)
            sock.close()
        assert list((state / "images").glob("*.part"))  # the crash left a partial file
        srv = start(state, port=int(srv.url.rsplit(":", 1)[1]), config=db_config)
        with srv.client() as c:
            shown = show(c, image["id"])
            assert shown["status"] == "queued" and shown["size"] is None
        assert no_partial_files(srv)
    finally:
        srv.stop()


# -- web-download import -----------------------------------------------------------------


class _SlowFiles(http.server.BaseHTTPRequestHandler):
    """Serves the files in ``files`` (path -> bytes) in 1 MiB pieces, ``delay`` apart."""

    files: dict[str, bytes] = {}
    delay = 0.0

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 1 << 20):
            self.wfile.write(data[i:i + (1 << 20)])
            time.sleep(self.delay)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, type[_SlowFiles]]]:
    handler = type("Handler", (_SlowFiles,), {"files": {}, "delay": 0.0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def loopback_imports(tmp_path: Path) -> Iterator[RunningServer]:
    """A service whose web-download may fetch from 127.0.0.1 on any port (refused by
    default: [import_filtering_opts])."""
    srv = start(tmp_path / "state", config={"import_filtering_opts": {
        "allowed_hosts": ["127.0.0.1"], "allowed_ports": []}})
    try:
        yield srv
    finally:
        srv.stop()


def test_web_download_import_streams_with_progress(
        loopback_imports: RunningServer, files: dict[str, Path],
        web: tuple[str, type[_SlowFiles]]) -> None:
    base, handler = web
    qcow2 = files["qcow2"].read_bytes()
    big = os.urandom(1 << 20) * 20
    handler.files.update({"/disk.qcow2": qcow2, "/big.raw": big})
    with loopback_imports.client() as c:
        info = c.get("/image/v2/info/import").json()
        assert "web-download" in info["import-methods"]["value"]
        image = create(c, name="from-web", disk_format="qcow2")
        r = c.post(f"/image/v2/images/{image['id']}/import",
                   json={"method": {"name": "web-download", "uri": f"{base}/disk.qcow2"}})
        assert r.status_code == 202, r.text
        done = wait_for(lambda: (s := show(c, image["id"]))["status"] == "active" and s, 20)
        assert done["checksum"] == hashlib.md5(qcow2).hexdigest()
        assert done["virtual_size"] == 4 << 20
        assert done["os_glance_import_method"] == "web-download"
        # a slow download shows its progress on the image while it runs
        handler.delay = 0.15
        slow = create(c, name="from-web-slow")
        c.post(f"/image/v2/images/{slow['id']}/import",
               json={"method": {"name": "web-download", "uri": f"{base}/big.raw"}})
        mid = wait_for(lambda: (s := show(c, slow["id"]))["status"] == "importing"
                       and 0 < int(s["os_glance_import_bytes"] or 0) < len(big) and s, 20)
        assert mid["os_glance_import_total"] == str(len(big))
        wait_for(lambda: show(c, slow["id"])["status"] == "active", 30)
        # a failed download leaves the image queued and says why
        missing = create(c, name="from-web-404")
        c.post(f"/image/v2/images/{missing['id']}/import",
               json={"method": {"name": "web-download", "uri": f"{base}/nope"}})
        failed = wait_for(lambda: (s := show(c, missing["id"])).get(
            "os_glance_failed_import") and s, 20)
        assert failed["status"] == "queued" and "HTTP 404" in failed["os_glance_import_error"]
        r = c.post(f"/image/v2/images/{missing['id']}/import",
                   json={"method": {"name": "glance-direct"}})
        assert r.status_code == 400
        handler.delay = 0.0
        check_import_task(c, base, handler.files)  # Glance's tasks, on the same service


# -- server snapshots ----------------------------------------------------------------


def test_create_image_snapshots_a_server(server: RunningServer, files: dict[str, Path]) -> None:
    with server.client() as c:
        source = create(c, name="snap-source", hypervisor_type="fake", architecture="x86_64",
                        hw_disk_bus="virtio", visibility="shared")
        assert upload(c, source["id"], files["raw"].read_bytes()).status_code == 204
        r = c.post("/compute/v2.1/servers", json={"server": {
            "name": "snap-vm", "imageRef": source["id"], "flavorRef": "1", "networks": "none"}})
        sid = r.json()["server"]["id"]
        wait_status(c, sid, "ACTIVE")
        r = c.post(f"/compute/v2.1/servers/{sid}/action",
                   json={"createImage": {"name": "snap-1", "metadata": {"purpose": "test"}}})
        assert r.status_code == 202, r.text
        image_id = r.json()["image_id"]
        snap = wait_for(lambda: (s := show(c, image_id))["status"] == "active" and s, 15)
        assert snap["image_type"] == "snapshot" and snap["instance_uuid"] == sid
        assert snap["hypervisor_type"] == "fake" and snap["architecture"] == "x86_64"
        assert snap["hw_disk_bus"] == "virtio" and snap["purpose"] == "test"
        assert snap["base_image_ref"] == source["id"] and snap["size"] > 0
        assert snap["visibility"] == "private"
        server_after = wait_status(c, sid, "ACTIVE")
        assert server_after["OS-EXT-STS:task_state"] is None
        actions = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
        snap_action = [a for a in actions["instanceActions"] if a["action"] == "createImage"][0]
        detail = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/"
                       f"{snap_action['request_id']}").json()["instanceAction"]
        assert [(e["event"], e["result"]) for e in detail["events"]] == [
            ("compute_snapshot_instance", "Success")]
        # before 2.45 the image is named by a Location header
        with server.client("2.44") as old:
            r = old.post(f"/compute/v2.1/servers/{sid}/action",
                         json={"createImage": {"name": "snap-2",
                                               "metadata": {"image_type": "test"}}})
            assert r.status_code == 202 and not r.content
            old_id = r.headers["location"].rsplit("/", 1)[1]
        snap2 = wait_for(lambda: (s := show(c, old_id))["status"] == "active" and s, 15)
        assert snap2["image_type"] == "test"  # the request's metadata wins, as in Nova
        # the snapshot boots on the same kind of host
        r = c.post("/compute/v2.1/servers", json={"server": {
            "name": "from-snap", "imageRef": image_id, "flavorRef": "1", "networks": "none"}})
        sid2 = r.json()["server"]["id"]
        wait_status(c, sid2, "ACTIVE")
        for s in (sid, sid2):
            c.delete(f"/compute/v2.1/servers/{s}")
        for s in (sid, sid2):
            wait_gone(c, s)


# -- the compute hosts' image cache ----------------------------------------------------


def test_image_cache_fetches_once_verifies_and_prunes(tmp_path: Path, db_config: dict[str, Any],
                                                      files: dict[str, Path]) -> None:
    srv = start(tmp_path / "state", config={
        **db_config, "compute": {"hosts": ["h1"]},
        "image": {"cache_max_age": 1.0, "cache_prune_interval": 0.5}})
    cache = srv.state_path / "image-cache"
    try:
        with srv.client() as c:
            image = create(c, name="cached", visibility="shared")
            assert upload(c, image["id"], files["raw"].read_bytes()).status_code == 204
            r = c.post("/compute/v2.1/servers", json={"server": {
                "name": "many", "imageRef": image["id"], "flavorRef": "1", "networks": "none",
                "min_count": 4, "max_count": 4}})
            assert r.status_code == 202, r.text
            servers = [s for s in c.get("/compute/v2.1/servers",
                                        params={"name": "^many"}).json()["servers"]]
            assert len(servers) == 4
            for s in servers:
                wait_status(c, s["id"], "ACTIVE")
            fetched = [e for e in srv.log_events()
                       if e["event"] == "image fetched into cache" and e["image"] == image["id"]]
            assert len(fetched) == 1 and fetched[0]["verified"] == "sha512"
            time.sleep(2.0)  # older than cache_max_age, but in use: kept
            assert (cache / image["id"]).exists()
            for s in servers:
                c.delete(f"/compute/v2.1/servers/{s['id']}")
            for s in servers:
                wait_gone(c, s["id"])
            wait_for(lambda: not (cache / image["id"]).exists(), 10)
            # data that no longer matches its hash never reaches a guest
            bad = create(c, name="corrupt", visibility="shared")
            assert upload(c, bad["id"], files["raw"].read_bytes()).status_code == 204
            with open(srv.state_path / "images" / bad["id"], "r+b") as f:
                f.write(b"CORRUPT!")
            r = c.post("/compute/v2.1/servers", json={"server": {
                "name": "victim", "imageRef": bad["id"], "flavorRef": "1", "networks": "none"}})
            sid = r.json()["server"]["id"]
            failed = wait_status(c, sid, "ERROR", timeout=30)
            assert "failed verification" in failed["fault"]["message"] or \
                "failed verification" in srv.log()
            with pytest.raises(httpx.HTTPError):
                with httpx.Client(base_url=srv.url, timeout=10) as raw:
                    raw.get(f"/image/v2/images/{bad['id']}/file",
                            headers={"X-Auth-Token": srv.token()}).read()
    finally:
        srv.stop()


# -- the real OpenStack client ------------------------------------------------------------


@pytest.mark.backends("sqlite")
@pytest.mark.skipif(not (CLIENTS / "openstack").exists(),
                    reason="the real OpenStack clients are not installed (.venv-clients)")
def test_openstackclient_image_commands(server: RunningServer, files: dict[str, Path],
                                        tmp_path: Path) -> None:
    def osc(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(server.env)
        proc = subprocess.run([str(CLIENTS / "openstack"), *args], env=env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{args} failed:\n{proc.stderr}"
        return proc.stdout

    created = json.loads(osc("image", "create", "--file", str(files["qcow2"]),
                             "--disk-format", "qcow2", "--container-format", "bare",
                             "--property", "hypervisor_type=fake", "-f", "json", "osc-img"))
    image_id = created["id"]
    osc("image", "set", "--property", "os_distro=cirros", "--property", "hw_rng=yes",
        "osc-img")
    shown = json.loads(osc("image", "show", "-f", "json", "osc-img"))
    assert shown["status"] == "active" and shown["disk_format"] == "qcow2"
    assert shown["checksum"] == hashlib.md5(files["qcow2"].read_bytes()).hexdigest()
    assert shown["properties"]["os_distro"] == "cirros"
    listed = json.loads(osc("image", "list", "-f", "json"))
    assert "osc-img" in {i["Name"] for i in listed}
    saved = tmp_path / "saved.qcow2"
    osc("image", "save", "--file", str(saved), "osc-img")
    assert saved.read_bytes() == files["qcow2"].read_bytes()
    osc("server", "create", "--flavor", "m1.tiny", "--image", "demo", "--nic", "none",
        "--wait", "osc-snap-vm")
    snap = json.loads(osc("server", "image", "create", "--name", "osc-snap", "--wait",
                          "-f", "json", "osc-snap-vm"))
    assert snap["status"] == "active" and snap["name"] == "osc-snap"
    osc("server", "delete", "--wait", "osc-snap-vm")
    osc("image", "delete", "osc-img", "osc-snap")
    names = {i["Name"] for i in json.loads(osc("image", "list", "-f", "json"))}
    assert not names & {"osc-img", "osc-snap"}
    assert image_id not in {i["ID"] for i in json.loads(osc("image", "list", "-f", "json"))}
