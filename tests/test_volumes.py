"""Block storage through the API on the fake driver: Cinder's volumes, snapshots,
types, quotas and limits; Nova's os-volume_attachments; states, errors and scoping."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, wait_gone, wait_status

PASSWORD = "volume-pass-1"


def cinder(server: RunningServer, token: str, project_id: str) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/volume/v3/{project_id}", timeout=30,
                        headers={"X-Auth-Token": token})


def project_id_of(server: RunningServer, token: str) -> str:
    r = httpx.get(f"{server.url}/identity/v3/auth/tokens", timeout=10,
                  headers={"X-Auth-Token": token, "X-Subject-Token": token})
    return str(r.json()["token"]["project"]["id"])


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A service of this module's own (its volume files under its state path)."""
    s = start(tmp_path_factory.mktemp("volumes"), config={
        "volume": {"quota_volumes": 6, "quota_gigabytes": 20}})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def admin(srv: RunningServer) -> httpx.Client:
    return cinder(srv, srv.token(), project_id_of(srv, srv.token()))


@pytest.fixture(scope="module")
def member(srv: RunningServer) -> tuple[httpx.Client, httpx.Client]:
    """A member of a new project: its (cinder, compute) clients."""
    a = srv.client()
    tag = secrets.token_hex(3)
    pid = a.post("/identity/v3/projects", json={"project": {"name": f"vp-{tag}"}}
                 ).json()["project"]["id"]
    uid = a.post("/identity/v3/users", json={"user": {
        "name": f"vu-{tag}", "password": PASSWORD, "default_project_id": pid}}
                 ).json()["user"]["id"]
    role = a.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
    assert a.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/{role}").status_code == 204
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": f"vu-{tag}", "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"id": pid}}}}
    token = httpx.post(f"{srv.url}/identity/v3/auth/tokens", json=body,
                       timeout=10).headers["x-subject-token"]
    compute = httpx.Client(base_url=srv.url, timeout=30, headers={
        "X-Auth-Token": token, "OpenStack-API-Version": "compute 2.96"})
    return cinder(srv, token, pid), compute


def create(c: httpx.Client, size: int = 1, **extra: Any) -> dict[str, Any]:
    r = c.post("/volumes", json={"volume": {"size": size, **extra}})
    assert r.status_code == 202, r.text
    volume: dict[str, Any] = r.json()["volume"]
    return volume


def status(c: httpx.Client, vid: str) -> str:
    return str(c.get(f"/volumes/{vid}").json()["volume"]["status"])


def test_the_catalog_names_the_block_storage_endpoint(srv: RunningServer) -> None:
    token = srv.token()
    r = httpx.get(f"{srv.url}/identity/v3/auth/tokens", timeout=10,
                  headers={"X-Auth-Token": token, "X-Subject-Token": token})
    catalog = {e["type"]: e for e in r.json()["token"]["catalog"]}
    pid = r.json()["token"]["project"]["id"]
    for kind in ("volumev3", "block-storage"):
        assert catalog[kind]["endpoints"][0]["url"] == f"{srv.url}/volume/v3/{pid}"
    assert httpx.get(f"{srv.url}/volume/v3/").json()["versions"][0]["id"] == "v3.0"


def test_volume_lifecycle_create_show_update_extend_delete(admin: httpx.Client,
                                                           srv: RunningServer) -> None:
    vol = create(admin, 1, name="v1", metadata={"k": "v"})
    assert vol["status"] == "available" and vol["size"] == 1 and vol["name"] == "v1"
    files = list((srv.state_path / "volumes").iterdir())
    assert any(vol["id"] in f.name for f in files)
    path = next(f for f in files if vol["id"] in f.name)
    assert path.stat().st_size == 1 << 30 and path.stat().st_blocks == 0  # sparse
    listed = admin.get("/volumes", params={"name": "v1"}).json()["volumes"]
    assert [v["id"] for v in listed] == [vol["id"]]
    assert admin.get("/volumes/detail", params={"metadata": "{'k': 'v'}"}).json()[
        "volumes"][0]["id"] == vol["id"]
    assert admin.get("/volumes/detail", params={"metadata": "{'k': 'x'}"}).json()[
        "volumes"] == []
    r = admin.put(f"/volumes/{vol['id']}", json={"volume": {"name": "v1b",
                                                             "description": "d"}})
    assert r.status_code == 200 and r.json()["volume"]["name"] == "v1b"
    r = admin.post(f"/volumes/{vol['id']}/action", json={"os-extend": {"new_size": 2}})
    assert r.status_code == 202, r.text
    assert admin.get(f"/volumes/{vol['id']}").json()["volume"]["size"] == 2
    assert path.stat().st_size == 2 << 30
    r = admin.post(f"/volumes/{vol['id']}/action", json={"os-extend": {"new_size": 1}})
    assert r.status_code == 400 and "badRequest" in r.json()
    assert admin.delete(f"/volumes/{vol['id']}").status_code == 202
    assert admin.get(f"/volumes/{vol['id']}").status_code == 404
    assert admin.get(f"/volumes/{vol['id']}").json()["itemNotFound"]["code"] == 404
    assert not path.exists()  # its data discarded with it


def test_bad_sizes_are_400_and_quota_is_413(admin: httpx.Client) -> None:
    for size in (0, -1, "x"):
        r = admin.post("/volumes", json={"volume": {"size": size}})
        assert r.status_code == 400, (size, r.text)
        assert "badRequest" in r.json()
    r = admin.post("/volumes", json={"volume": {"size": 21}})
    assert r.status_code == 413 and "overLimit" in r.json(), r.text
    limits = admin.get("/limits").json()["limits"]["absolute"]
    assert limits["maxTotalVolumeGigabytes"] == 20 and limits["maxTotalVolumes"] == 6


def test_snapshot_and_volumes_from_snapshot_and_volume_keep_the_data(
        admin: httpx.Client, srv: RunningServer) -> None:
    vol = create(admin, 1)
    path = next(f for f in (srv.state_path / "volumes").iterdir() if vol["id"] in f.name)
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(b"novalite-volume-marker")
    r = admin.post("/snapshots", json={"snapshot": {"volume_id": vol["id"], "name": "s1"}})
    assert r.status_code == 202, r.text
    snap = r.json()["snapshot"]
    assert snap["status"] == "available" and snap["size"] == 1
    assert admin.get("/snapshots").json()["snapshots"][0]["id"] == snap["id"]
    from_snap = create(admin, None, snapshot_id=snap["id"])
    from_vol = create(admin, 2, source_volid=vol["id"])
    for made in (from_snap, from_vol):
        data = next(f for f in (srv.state_path / "volumes").iterdir()
                    if made["id"] in f.name).read_bytes()[4096:4096 + 22]
        assert data == b"novalite-volume-marker"
    # A volume with snapshots is not deleted; its snapshot first.
    assert admin.delete(f"/volumes/{vol['id']}").status_code == 400
    assert admin.delete(f"/snapshots/{snap['id']}").status_code == 202
    for v in (vol, from_snap, from_vol):
        assert admin.delete(f"/volumes/{v['id']}").status_code == 202


def test_types_and_quotas(admin: httpx.Client, srv: RunningServer) -> None:
    types = admin.get("/types").json()["volume_types"]
    assert len(types) == 1 and admin.get("/types/default").status_code == 200
    pid = project_id_of(srv, srv.token())
    r = admin.get(f"/os-quota-sets/{pid}", params={"usage": "True"})
    assert r.json()["quota_set"]["volumes"]["limit"] == 6
    r = admin.put(f"/os-quota-sets/{pid}", json={"quota_set": {"snapshots": 3}})
    assert r.status_code == 200 and r.json()["quota_set"]["snapshots"] == 3
    assert admin.get(f"/os-quota-sets/{pid}").json()["quota_set"]["snapshots"] == 3


def test_another_projects_volume_is_404_and_members_cannot_list_all(
        admin: httpx.Client, member: tuple[httpx.Client, httpx.Client]) -> None:
    mine = create(admin, 1, name="admins")
    c, compute = member
    assert c.get(f"/volumes/{mine['id']}").status_code == 404
    assert c.delete(f"/volumes/{mine['id']}").status_code == 404
    assert c.get("/volumes").json()["volumes"] == []
    assert c.get("/volumes", params={"all_tenants": "1"}).status_code == 403
    theirs = create(c, 1)
    seen = {v["id"] for v in admin.get("/volumes", params={"all_tenants": "1"}
                                       ).json()["volumes"]}
    assert {mine["id"], theirs["id"]} <= seen
    assert theirs["id"] not in {v["id"] for v in admin.get("/volumes").json()["volumes"]}
    assert c.delete(f"/volumes/{theirs['id']}").status_code == 202
    assert admin.delete(f"/volumes/{mine['id']}").status_code == 202


def test_attach_detach_through_nova(admin: httpx.Client, srv: RunningServer,
                                    member: tuple[httpx.Client, httpx.Client]) -> None:
    c = srv.client()
    sid = boot(c, "vol-vm")
    wait_status(c, sid, "ACTIVE")
    vol = create(admin, 1)
    url = f"/compute/v2.1/servers/{sid}/os-volume_attachments"
    r = c.post(url, json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 200, r.text
    att = r.json()["volumeAttachment"]
    assert att["device"] == "/dev/vdb" and att["volumeId"] == vol["id"]
    assert status(admin, vol["id"]) == "in-use"
    shown = admin.get(f"/volumes/{vol['id']}").json()["volume"]["attachments"]
    assert [a["server_id"] for a in shown] == [sid]
    server = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
    assert server["os-extended-volumes:volumes_attached"] == [
        {"id": vol["id"], "delete_on_termination": False}]
    assert [a["volumeId"] for a in c.get(url).json()["volumeAttachments"]] == [vol["id"]]
    # in use: not deleted (Cinder's 400), not attached twice
    r = admin.delete(f"/volumes/{vol['id']}")
    assert r.status_code == 400 and "badRequest" in r.json()
    assert c.post(url, json={"volumeAttachment": {"volumeId": vol["id"]}}
                  ).status_code == 400
    # another project's server and volume are 404
    _, other = member
    assert other.post(url, json={"volumeAttachment": {"volumeId": vol["id"]}}
                      ).status_code == 404
    # a swap is refused
    second = create(admin, 1)
    r = c.put(f"{url}/{vol['id']}", json={"volumeAttachment": {"volumeId": second["id"]}})
    assert r.status_code == 409, r.text
    # stopped: still attachable/detachable as in Nova; building or deleting: 409
    assert c.delete(f"{url}/{vol['id']}").status_code == 202
    assert status(admin, vol["id"]) == "available"
    assert c.get(url).json()["volumeAttachments"] == []
    # delete_on_termination: the server's deletion deletes it, the other is available
    r = c.post(url, json={"volumeAttachment": {"volumeId": vol["id"],
                                               "delete_on_termination": True}})
    assert r.status_code == 200, r.text
    assert c.post(url, json={"volumeAttachment": {"volumeId": second["id"]}}
                  ).json()["volumeAttachment"]["device"] == "/dev/vdc"
    assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_gone(c, sid)
    assert admin.get(f"/volumes/{vol['id']}").status_code == 404
    assert status(admin, second["id"]) == "available"
    assert admin.delete(f"/volumes/{second['id']}").status_code == 202


def test_attach_to_a_server_in_the_wrong_state_is_409(admin: httpx.Client,
                                                      srv: RunningServer) -> None:
    c = srv.client()
    sid = boot(c, "vol-err", metadata={"fake_fail_spawn": "1"})
    wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"]
             == "ERROR", 15)
    vol = create(admin, 1)
    r = c.post(f"/compute/v2.1/servers/{sid}/os-volume_attachments",
               json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 409, r.text
    assert status(admin, vol["id"]) == "available"
    c.delete(f"/compute/v2.1/servers/{sid}")
    assert admin.delete(f"/volumes/{vol['id']}").status_code == 202


def test_boot_from_volume_made_from_an_image(srv: RunningServer, admin: httpx.Client) -> None:
    c = srv.client()
    image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "bfv", "flavorRef": "1", "block_device_mapping_v2": [{
            "boot_index": 0, "uuid": image, "source_type": "image",
            "destination_type": "volume", "volume_size": 1}]}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = wait_status(c, sid, "ACTIVE")
    [attached] = server["os-extended-volumes:volumes_attached"]
    vid = attached["id"]
    vol = admin.get(f"/volumes/{vid}").json()["volume"]
    assert vol["status"] == "in-use" and vol["bootable"] == "true"
    assert vol["volume_image_metadata"]["image_id"] == image
    assert vol["attachments"][0]["device"] == "/dev/vda"
    # The image's bytes are the volume's.
    data = (srv.state_path / "volumes" / f"volume-{vid}").read_bytes()[:512]
    demo = c.get(f"/image/v2/images/{image}/file").content[:512]
    assert data == demo
    # The root volume is not detached; the server's deletion keeps it (not
    # delete_on_termination), available with its data.
    url = f"/compute/v2.1/servers/{sid}/os-volume_attachments/{vid}"
    r = c.delete(url)
    assert r.status_code == 400 and "root device" in r.json()["badRequest"]["message"]
    assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_gone(c, sid)
    assert status(admin, vid) == "available"
    # Boot again from that very volume, deleted with the server this time.
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "bfv2", "flavorRef": "1", "block_device_mapping_v2": [{
            "boot_index": 0, "uuid": vid, "source_type": "volume",
            "destination_type": "volume", "delete_on_termination": True}]}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_status(c, sid, "ACTIVE")
    assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_gone(c, sid)
    assert admin.get(f"/volumes/{vid}").status_code == 404


def test_other_volume_mappings_at_boot_are_refused_never_dropped(srv: RunningServer) -> None:
    c = srv.client()
    image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "bdm", "flavorRef": "1", "imageRef": image, "block_device_mapping_v2": [{
            "boot_index": 1, "source_type": "blank", "destination_type": "volume",
            "volume_size": 1}]}})
    assert r.status_code == 400, r.text
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "bdm", "flavorRef": "1", "block_device_mapping_v2": [{
            "boot_index": 0, "source_type": "image", "uuid": image,
            "destination_type": "volume", "volume_size": 21}]}})
    assert r.status_code == 413, r.text  # beyond the gigabytes quota


def test_kill_mid_attach_leaves_the_volume_available(tmp_path: Path) -> None:
    """A service killed while an attach was recorded as ``attaching`` finds the volume
    ``available`` (or attached) at its next start, never stuck."""
    import sqlite3

    s = start(tmp_path / "state")
    try:
        c = cinder(s, s.token(), project_id_of(s, s.token()))
        vol = create(c, 1)
    finally:
        s.stop(9)
    db = next((tmp_path / "state").glob("*.sqlite*"))
    with sqlite3.connect(db) as conn:  # the records a kill between the two writes leaves
        conn.execute("UPDATE volumes SET status='attaching' WHERE id=?", (vol["id"],))
        conn.execute("INSERT INTO volume_attachments (id, volume_id, instance_uuid, "
                     "attach_status, delete_on_termination, created_at) VALUES "
                     "('a1', ?, 'i1', 'attaching', 0, '2026-01-01 00:00:00')", (vol["id"],))
    s = start(tmp_path / "state", port=None)
    try:
        c = cinder(s, s.token(), project_id_of(s, s.token()))
        shown = c.get(f"/volumes/{vol['id']}").json()["volume"]
        assert shown["status"] == "available" and shown["attachments"] == []
    finally:
        s.stop()


def test_openstackclient_volume_create_list_and_server_add_volume(srv: RunningServer) -> None:
    from tests.test_real_clients import CLIENTS, osc

    if not (CLIENTS / "openstack").exists():
        pytest.skip("the real OpenStack clients are not installed")
    import json

    made = json.loads(osc(srv, "volume", "create", "--size", "1", "-f", "json", "osc-v1"))
    assert made["status"] == "available" and made["size"] == 1
    listed = json.loads(osc(srv, "volume", "list", "-f", "json"))
    assert "osc-v1" in [v["Name"] for v in listed]
    osc(srv, "server", "create", "--flavor", "m1.tiny", "--image", "demo", "--wait",
        "osc-vol-vm")
    osc(srv, "server", "add", "volume", "osc-vol-vm", "osc-v1")
    shown = json.loads(osc(srv, "volume", "show", "-f", "json", "osc-v1"))
    assert shown["status"] == "in-use"
    osc(srv, "server", "remove", "volume", "osc-vol-vm", "osc-v1")
    assert json.loads(osc(srv, "volume", "show", "-f", "json", "osc-v1"))["status"] == \
        "available"
    osc(srv, "server", "delete", "--wait", "osc-vol-vm")
    osc(srv, "volume", "delete", "osc-v1")
    # --boot-from-volume: the server's root disk is a new 1 GiB volume made from the image
    booted = json.loads(osc(srv, "server", "create", "--flavor", "m1.tiny", "--image", "demo",
                            "--boot-from-volume", "1", "--wait", "-f", "json", "osc-bfv"))
    assert booted["status"] == "ACTIVE"
    server = json.loads(osc(srv, "server", "show", "-f", "json", "osc-bfv"))
    assert len(server["volumes_attached"]) == 1, server
    osc(srv, "server", "delete", "--wait", "osc-bfv")


def test_extend_in_use_from_3_42_and_admins_force_detach(admin: httpx.Client,
                                                         srv: RunningServer) -> None:
    c = srv.client()
    sid = boot(c, "vol-extend")
    wait_status(c, sid, "ACTIVE")
    vol = create(admin, 1)
    url = f"/compute/v2.1/servers/{sid}/os-volume_attachments"
    assert c.post(url, json={"volumeAttachment": {"volumeId": vol["id"]}}
                  ).status_code == 200
    action = f"/volumes/{vol['id']}/action"
    r = admin.post(action, json={"os-extend": {"new_size": 2}})
    assert r.status_code == 400, r.text  # attached: only from 3.42
    r = admin.post(action, json={"os-extend": {"new_size": 2}},
                   headers={"OpenStack-API-Version": "volume 3.42"})
    assert r.status_code == 202, r.text
    shown = admin.get(f"/volumes/{vol['id']}").json()["volume"]
    assert shown["size"] == 2 and shown["status"] == "in-use"
    # The host died: an admin forgets the attachment without asking it.
    assert admin.post(action, json={"os-force_detach": {}}).status_code == 202
    assert status(admin, vol["id"]) == "available"
    assert c.get(url).json()["volumeAttachments"] == []
    assert admin.delete(f"/volumes/{vol['id']}").status_code == 202
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_microversion_header_pages_summary_quota_keys_reserve_and_nova_proxy(
        admin: httpx.Client, srv: RunningServer) -> None:
    """What Tempest's volume tests rely on: the version header, paged and sorted
    lists, the summary, every quota key Cinder shows (``per_volume_gigabytes``
    enforced), the legacy reserve, and Nova's ``os-volumes`` proxy until 2.35."""
    r = admin.get("/volumes", headers={"OpenStack-API-Version": "volume 3.12"})
    assert r.headers["OpenStack-API-Version"] == "volume 3.12"
    assert admin.get("/volumes", headers={"OpenStack-API-Version": "volume 3.99"}
                     ).status_code == 404
    # Other tests' volumes share the project: these two carry metadata of their own.
    only = {"metadata": repr({"pages": "a-and-b"})}
    a = create(admin, 1, name="page-a", metadata={"pages": "a-and-b"})
    b = create(admin, 2, name="page-b", metadata={"pages": "a-and-b"})
    page = admin.get("/volumes", params={"limit": 1, "sort": "name:asc", **only}).json()
    assert [v["name"] for v in page["volumes"]] == ["page-a"]
    assert f"marker={a['id']}" in page["volumes_links"][0]["href"]
    rest = admin.get("/volumes/detail", params={"marker": a["id"], "sort": "name:asc",
                                                **only})
    assert [v["id"] for v in rest.json()["volumes"]][:1] == [b["id"]]
    assert admin.get("/volumes", params={"marker": "nope"}).status_code == 404
    assert admin.get("/volumes", params={"sort": "bogus:asc"}).status_code == 400
    assert admin.get("/volumes", params={"limit": "x"}).status_code == 400
    summary = admin.get("/volumes/summary", headers={
        "OpenStack-API-Version": "volume 3.12"}).json()["volume-summary"]
    assert summary["total_count"] >= 2 and summary["total_size"] >= 3

    pid = project_id_of(srv, srv.token())
    quota = admin.get(f"/os-quota-sets/{pid}").json()["quota_set"]
    assert {"backups", "backup_gigabytes", "groups", "per_volume_gigabytes"} <= set(quota)
    assert admin.put(f"/os-quota-sets/{pid}", json={"quota_set": {
        "per_volume_gigabytes": 1}}).status_code == 200
    r = admin.post("/volumes", json={"volume": {"size": 2}})
    assert r.status_code == 413 and "larger than maximum allowed" in r.text
    assert admin.delete(f"/os-quota-sets/{pid}").status_code == 200
    assert admin.get(f"/os-quota-sets/{pid}").json()["quota_set"][
        "per_volume_gigabytes"] == -1

    action = f"/volumes/{a['id']}/action"
    assert admin.post(action, json={"os-reserve": None}).status_code == 202
    assert status(admin, a["id"]) == "attaching"
    assert admin.post(action, json={"os-reserve": None}).status_code == 400
    assert admin.post(action, json={"os-unreserve": None}).status_code == 202
    assert status(admin, a["id"]) == "available"

    nova = srv.client("2.35")
    r = nova.post("/compute/v2.1/os-volumes", json={"volume": {"size": 1,
                                                               "display_name": "nv"}})
    assert r.status_code == 200, r.text
    proxied = r.json()["volume"]
    assert proxied["displayName"] == "nv" and proxied["attachments"] == [{}]
    assert srv.client("2.36").get(f"/compute/v2.1/os-volumes/{proxied['id']}"
                                  ).status_code == 404
    assert nova.delete(f"/compute/v2.1/os-volumes/{proxied['id']}").status_code == 202
    for v in (a, b):
        assert admin.delete(f"/volumes/{v['id']}").status_code == 202
