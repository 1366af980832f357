"""Rebuild, rescue/unrescue, createBackup, soft delete (restore, forceDelete) and
trigger_crash_dump, over real HTTP on the fake driver: each action's states, history
and answers as Nova gives them, and its 409 in the wrong state."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, demo_image, wait_gone, wait_status
from tests.test_server_filters import make_member

API = "/compute/v2.1"
#: Seconds a deleted server stays SOFT_DELETED in this module's service.
RECLAIM = 3


def at(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


def act(c: httpx.Client, sid: str, body: dict[str, Any], version: str = "2.96"
        ) -> httpx.Response:
    return c.post(f"{API}/servers/{sid}/action", json=body, headers=at(version))


def message(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(next(iter(r.json().values()))["message"])


def console(c: httpx.Client, sid: str) -> str:
    r = act(c, sid, {"os-getConsoleOutput": {}})
    assert r.status_code == 200, r.text
    return str(r.json()["output"])


def show(c: httpx.Client, sid: str, version: str = "2.96") -> dict[str, Any]:
    r = c.get(f"{API}/servers/{sid}", headers=at(version))
    assert r.status_code == 200, r.text
    return dict(r.json()["server"])


def events(c: httpx.Client, sid: str, action: str) -> list[tuple[str, str]]:
    actions = c.get(f"{API}/servers/{sid}/os-instance-actions").json()["instanceActions"]
    request_id = next(a["request_id"] for a in actions if a["action"] == action)
    found = c.get(f"{API}/servers/{sid}/os-instance-actions/{request_id}",
                  headers=at("2.51")).json()["instanceAction"]
    return [(e["event"], e["result"]) for e in found["events"]]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory,
        session_db_config: dict[str, dict[str, Any]]) -> Iterator[RunningServer]:
    """Soft delete on (reclaimed after RECLAIM seconds), fake driver on one host."""
    s = start(tmp_path_factory.mktemp("rebuild"),
              config={**session_db_config, "DEFAULT": {"reclaim_instance_interval": RECLAIM}})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def c(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


@pytest.fixture(scope="module")
def other_image(c: httpx.Client) -> str:
    """A second bootable image (the demo image's data under another name)."""
    data = c.get(f"/image/v2/images/{demo_image(c)}/file").content
    r = c.post("/image/v2/images", json={"name": "second", "disk_format": "raw",
                                          "container_format": "bare",
                                          "visibility": "public"})
    assert r.status_code == 201, r.text
    image_id = str(r.json()["id"])
    r = c.put(f"/image/v2/images/{image_id}/file", content=data,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    return image_id


@pytest.fixture(scope="module")
def keypair(c: httpx.Client) -> str:
    name = f"k-{secrets.token_hex(3)}"
    r = c.post(f"{API}/os-keypairs", json={"keypair": {"name": name}}, headers=at("2.91"))
    assert r.status_code in (200, 201), r.text
    return name


def _server(c: httpx.Client, **extra: Any) -> str:
    sid = boot(c, f"lc-{secrets.token_hex(3)}", **extra)
    wait_status(c, sid, "ACTIVE")
    return sid


def _purge(c: httpx.Client, sid: str) -> None:
    c.delete(f"{API}/servers/{sid}")
    wait_for(lambda: show(c, sid)["status"] in ("SOFT_DELETED", "DELETED")
             if c.get(f"{API}/servers/{sid}").status_code == 200 else True, 15)
    if c.get(f"{API}/servers/{sid}").status_code == 200:
        act(c, sid, {"forceDelete": None})
    wait_gone(c, sid)


def test_rebuild_replaces_the_image_and_the_fields_keeping_id_and_addresses(
        c: httpx.Client, other_image: str, keypair: str) -> None:
    sid = _server(c, metadata={"old": "1"}, user_data="b2xk")
    before = show(c, sid)
    r = act(c, sid, {"rebuild": {
        "imageRef": other_image, "name": "rebuilt", "metadata": {"new": "2"},
        "description": "again", "key_name": keypair, "user_data": "bmV3",
        "hostname": "rebuilt-host", "adminPass": "s3cret-pass"}})
    assert r.status_code == 202, r.text
    answer = r.json()["server"]
    assert answer["id"] == sid and answer["status"] == "REBUILD"
    assert answer["image"]["id"] == other_image
    assert (answer["name"], answer["metadata"]) == ("rebuilt", {"new": "2"})
    assert answer["adminPass"] == "s3cret-pass"
    assert (answer["key_name"], answer["user_data"]) == (keypair, "bmV3")  # 2.54, 2.57
    after = wait_status(c, sid, "ACTIVE")
    assert after["addresses"] == before["addresses"]
    assert after["OS-EXT-SRV-ATTR:hostname"] == "rebuilt-host"
    assert after["description"] == "again" and after["key_name"] == keypair
    assert after["OS-EXT-SRV-ATTR:user_data"] == "bmV3"
    assert "booting image second" in console(c, sid)
    assert ("compute_rebuild_instance", "Success") in events(c, sid, "rebuild")
    # Below 2.54 a key_name is refused, as Nova's schema refuses it
    r = act(c, sid, {"rebuild": {"imageRef": other_image, "key_name": keypair}}, "2.53")
    assert "Additional properties are not allowed" in message(r, 400)
    # the key can be dropped (2.54: key_name null)
    r = act(c, sid, {"rebuild": {"imageRef": other_image, "key_name": None}}, "2.54")
    assert r.status_code == 202, r.text
    assert wait_status(c, sid, "ACTIVE")["key_name"] is None
    _purge(c, sid)


def test_rebuild_of_a_stopped_server_leaves_it_stopped(c: httpx.Client,
                                                       other_image: str) -> None:
    sid = _server(c)
    assert act(c, sid, {"os-stop": None}).status_code == 202
    wait_status(c, sid, "SHUTOFF")
    r = act(c, sid, {"rebuild": {"imageRef": other_image}}, "2.1")
    assert r.status_code == 202, r.text
    assert "key_name" not in r.json()["server"]  # the reduced view below 2.75
    shown = wait_status(c, sid, "SHUTOFF")
    assert shown["image"]["id"] == other_image
    _purge(c, sid)


def test_rebuild_refused_in_the_wrong_state_when_locked_or_with_a_bad_image(
        c: httpx.Client, other_image: str) -> None:
    sid = _server(c)
    assert act(c, sid, {"pause": None}).status_code == 202
    wait_status(c, sid, "PAUSED")
    r = act(c, sid, {"rebuild": {"imageRef": other_image}})
    assert message(r, 409) == f"Cannot 'rebuild' instance {sid} while it is in vm_state paused"
    assert act(c, sid, {"unpause": None}).status_code == 202
    wait_status(c, sid, "ACTIVE")
    r = act(c, sid, {"rebuild": {"imageRef": "00000000-0000-0000-0000-000000000000"}})
    assert "could not be found" in message(r, 400)
    r = act(c, sid, {"rebuild": {"imageRef": "not-an-image"}})
    assert message(r, 400) == "Invalid imageRef provided."
    _purge(c, sid)


def test_rescue_boots_the_rescue_image_and_unrescue_the_own_disk(
        c: httpx.Client, other_image: str) -> None:
    sid = _server(c)
    r = act(c, sid, {"rescue": {"adminPass": "rescue-pw", "rescue_image_ref": other_image}})
    assert r.status_code == 200, r.text
    assert r.json() == {"adminPass": "rescue-pw"}
    wait_status(c, sid, "RESCUE")
    assert "rescue: booting image second, disk of the guest second" in console(c, sid)
    r = act(c, sid, {"rescue": None})
    assert message(r, 409) == f"Cannot 'rescue' instance {sid} while it is in vm_state rescued"
    assert act(c, sid, {"unrescue": None}).status_code == 202
    wait_status(c, sid, "ACTIVE")
    assert "unrescue: booting the guest's own disk" in console(c, sid)
    r = act(c, sid, {"unrescue": None})
    assert message(r, 409) == f"Cannot 'unrescue' instance {sid} while it is in vm_state active"
    # no body: the server's own image, and a generated password
    r = act(c, sid, {"rescue": None})
    assert r.status_code == 200 and r.json()["adminPass"]
    wait_status(c, sid, "RESCUE")
    assert ("compute_rescue_instance", "Success") in events(c, sid, "rescue")
    assert act(c, sid, {"unrescue": None}).status_code == 202
    wait_status(c, sid, "ACTIVE")
    _purge(c, sid)


def test_stable_device_rescue_for_an_image_that_asks(c: httpx.Client,
                                                     other_image: str) -> None:
    r = c.patch(f"/image/v2/images/{other_image}",
                json=[{"op": "add", "path": "/hw_rescue_device", "value": "disk"}],
                headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert r.status_code == 200, r.text
    sid = _server(c)
    try:
        r = act(c, sid, {"rescue": {"rescue_image_ref": other_image}}, "2.87")
        assert r.status_code == 200, r.text
        wait_status(c, sid, "RESCUE")
        assert "rescue: booting image second, stable device" in console(c, sid)
    finally:
        c.patch(f"/image/v2/images/{other_image}",
                json=[{"op": "remove", "path": "/hw_rescue_device"}],
                headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert act(c, sid, {"unrescue": None}).status_code == 202
    wait_status(c, sid, "ACTIVE")
    _purge(c, sid)


def test_a_failed_rescue_or_rebuild_is_error_with_a_fault(c: httpx.Client,
                                                          other_image: str) -> None:
    sid = _server(c, metadata={"fake_fail_actions": "rescue,rebuild"})
    assert act(c, sid, {"rescue": None}).status_code == 200
    shown = wait_status(c, sid, "ERROR")
    assert "Rescue failed: fake rescue failure" in shown["fault"]["message"]
    assert ("compute_rescue_instance", "Error") in events(c, sid, "rescue")
    # a server in ERROR may be rebuilt (Nova's states); this one fails again
    assert act(c, sid, {"rebuild": {"imageRef": other_image}}).status_code == 202
    shown = wait_status(c, sid, "ERROR")
    assert "Rebuild failed: fake rebuild failure" in shown["fault"]["message"]
    _purge(c, sid)


def _backups(c: httpx.Client, sid: str) -> list[dict[str, Any]]:
    images = c.get("/image/v2/images").json()["images"]
    return [i for i in images if i.get("instance_uuid") == sid
            and i.get("image_type") == "backup"]


def test_create_backup_keeps_the_newest_of_its_type(c: httpx.Client) -> None:
    sid = _server(c)
    made = []
    for n in range(3):
        r = act(c, sid, {"createBackup": {"name": f"b{n}", "backup_type": "daily",
                                          "rotation": 2}}, "2.45")
        assert r.status_code == 202, r.text
        made.append(r.json()["image_id"])
        wait_status(c, sid, "ACTIVE")
    wait_for(lambda: {i["id"] for i in _backups(c, sid)} == set(made[1:]), 15)
    kept = _backups(c, sid)
    assert all(i["backup_type"] == "daily" and i["status"] == "active" for i in kept)
    # below 2.45: the Location header, no body
    r = act(c, sid, {"createBackup": {"name": "w", "backup_type": "weekly", "rotation": 1}},
            "2.44")
    assert r.status_code == 202 and "/image/v2/images/" in r.headers["location"]
    wait_status(c, sid, "ACTIVE")
    wait_for(lambda: len(_backups(c, sid)) == 3, 15)  # another type rotates apart
    assert ("compute_backup_instance", "Success") in events(c, sid, "createBackup")
    r = act(c, sid, {"createBackup": {"name": "x", "backup_type": "daily"}})
    assert "'rotation' is a required property" in message(r, 400)
    assert act(c, sid, {"rescue": None}).status_code == 200
    wait_status(c, sid, "RESCUE")
    r = act(c, sid, {"createBackup": {"name": "x", "backup_type": "daily", "rotation": 1}})
    assert message(r, 409) == (f"Cannot 'createBackup' instance {sid} while it is in "
                               "vm_state rescued")
    for image in _backups(c, sid):
        c.delete(f"/image/v2/images/{image['id']}")
    _purge(c, sid)


def test_soft_delete_restore_force_delete_and_reclaim(c: httpx.Client) -> None:
    sid = _server(c)
    r = act(c, sid, {"restore": None})
    assert message(r, 409) == f"Cannot 'restore' instance {sid} while it is in vm_state active"
    assert c.delete(f"{API}/servers/{sid}").status_code == 204
    wait_status(c, sid, "SOFT_DELETED")
    assert act(c, sid, {"restore": None}).status_code == 202
    shown = wait_status(c, sid, "ACTIVE")
    assert shown["OS-EXT-STS:power_state"] == 1
    assert [a["action"] for a in c.get(f"{API}/servers/{sid}/os-instance-actions").json()[
        "instanceActions"]][:2] == ["restore", "delete"]
    r = act(c, sid, {"forceDelete": None})
    assert message(r, 409) == (f"Cannot 'forceDelete' instance {sid} while it is in "
                               "vm_state active")
    assert c.delete(f"{API}/servers/{sid}").status_code == 204
    wait_status(c, sid, "SOFT_DELETED")
    assert act(c, sid, {"forceDelete": None}).status_code == 202
    wait_gone(c, sid)
    # left SOFT_DELETED, it is reclaimed after reclaim_instance_interval
    sid = _server(c)
    assert c.delete(f"{API}/servers/{sid}").status_code == 204
    wait_status(c, sid, "SOFT_DELETED")
    wait_gone(c, sid, timeout=RECLAIM * 3 + 15)


def test_trigger_crash_dump(c: httpx.Client) -> None:
    sid = _server(c)
    r = act(c, sid, {"trigger_crash_dump": None}, "2.16")
    assert r.status_code == 404, r.text
    r = act(c, sid, {"trigger_crash_dump": None}, "2.17")
    assert r.status_code == 202, r.text
    wait_for(lambda: "NMI received" in console(c, sid), 10)
    assert ("compute_trigger_crash_dump", "Success") in events(c, sid, "trigger_crash_dump")
    assert act(c, sid, {"os-stop": None}).status_code == 202
    wait_status(c, sid, "SHUTOFF")
    r = act(c, sid, {"trigger_crash_dump": None}, "2.17")
    assert message(r, 409) == (f"Cannot 'trigger_crash_dump' instance {sid} while it is in "
                               "vm_state stopped")
    _purge(c, sid)


def test_a_member_may_act_on_its_server_but_not_while_it_is_locked(
        srv: RunningServer, c: httpx.Client, other_image: str) -> None:
    m = make_member(srv, secrets.token_hex(3))
    try:
        sid = _server(m.client)
        r = act(m.client, sid, {"rebuild": {"imageRef": other_image}})
        assert r.status_code == 202, r.text
        wait_status(m.client, sid, "ACTIVE")
        assert act(c, sid, {"lock": None}).status_code == 202
        for body in ({"rebuild": {"imageRef": other_image}}, {"rescue": None},
                     {"createBackup": {"name": "b", "backup_type": "d", "rotation": 1}}):
            assert message(act(m.client, sid, body), 409) == f"Instance {sid} is locked"
        assert act(c, sid, {"unlock": None}).status_code == 202
        _purge(m.client, sid)
    finally:
        m.client.close()
