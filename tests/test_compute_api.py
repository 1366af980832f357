"""The compute API over real HTTP against a real `novalite serve` (fake driver)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, demo_image, wait_gone, wait_status


@pytest.fixture
def c(server: RunningServer) -> httpx.Client:
    return server.client()


def test_version_documents_advertise_microversions(server: RunningServer) -> None:
    doc = httpx.get(f"{server.url}/compute/v2.1").json()["version"]
    assert doc["id"] == "v2.1" and doc["status"] == "CURRENT"
    assert doc["min_version"] == "2.1" and doc["version"] == "2.96"
    listed = httpx.get(f"{server.url}/compute/").json()["versions"]
    assert [v["id"] for v in listed] == ["v2.0", "v2.1"]  # Nova lists v2.0 first
    assert {v["id"]: v for v in listed}["v2.1"]["version"] == "2.96"


def test_microversion_is_echoed_and_bounded(c: httpx.Client) -> None:
    r = c.get("/compute/v2.1/flavors", headers={"OpenStack-API-Version": "compute 2.61"})
    assert r.headers["OpenStack-API-Version"] == "compute 2.61"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.61"
    r = c.get("/compute/v2.1/flavors", headers={"OpenStack-API-Version": "compute 2.999"})
    assert r.status_code == 406


def test_requests_carry_a_request_id(c: httpx.Client) -> None:
    r = c.get("/compute/v2.1/servers")
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_boot_lifecycle_and_delete(c: httpx.Client) -> None:
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    sid = boot(c, "life1", metadata={"role": "test"}, user_data=user_data)
    server = wait_status(c, sid, "ACTIVE")
    assert server["OS-EXT-STS:power_state"] == 1
    assert server["metadata"] == {"role": "test"}
    assert server["addresses"]["private"][0]["addr"].startswith("10.0.0.")
    assert server["flavor"]["original_name"] == "m1.tiny"
    assert server["OS-EXT-SRV-ATTR:host"] in ("compute-a", "compute-b")
    for action, status in (({"os-stop": None}, "SHUTOFF"), ({"os-start": None}, "ACTIVE"),
                           ({"pause": None}, "PAUSED"), ({"unpause": None}, "ACTIVE"),
                           ({"suspend": None}, "SUSPENDED"), ({"resume": None}, "ACTIVE"),
                           ({"reboot": {"type": "SOFT"}}, "ACTIVE"),
                           ({"reboot": {"type": "HARD"}}, "ACTIVE")):
        r = c.post(f"/compute/v2.1/servers/{sid}/action", json=action)
        assert r.status_code == 202, r.text
        wait_status(c, sid, status)
    out = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}})
    assert out.status_code == 200 and "life1" in out.json()["output"]
    # Nova's tail: the last ``length`` parts of the output split at newlines (Tempest
    # checks exactly that count).
    full = out.json()["output"]
    tail = c.post(f"/compute/v2.1/servers/{sid}/action",
                  json={"os-getConsoleOutput": {"length": 3}}).json()["output"]
    assert len(tail.split("\n")) == 3 and full.endswith(tail)
    actions = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()["instanceActions"]
    assert actions[-1]["action"] == "create"  # newest first
    assert {"create", "stop", "start", "pause", "reboot"} <= {a["action"] for a in actions}
    create = [a for a in actions if a["action"] == "create"][0]
    detail = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{create['request_id']}")
    events = detail.json()["instanceAction"]["events"]
    assert [e["event"] for e in events] == ["compute_build_and_run_instance"]
    assert events[0]["result"] == "Success"
    assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_gone(c, sid)


def test_wrong_state_is_409_with_novas_message(c: httpx.Client) -> None:
    sid = boot(c, "state1")
    wait_status(c, sid, "ACTIVE")
    c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None})
    wait_status(c, sid, "SHUTOFF")
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None})
    assert r.status_code == 409
    assert r.json() == {"conflict": {"code": 409, "message":
                        f"Cannot 'stop' instance {sid} while it is in vm_state stopped"}}
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_lock_blocks_non_admin_changes_and_shows(c: httpx.Client) -> None:
    sid = boot(c, "lock1")
    wait_status(c, sid, "ACTIVE")
    assert c.post(f"/compute/v2.1/servers/{sid}/action", json={"lock": None}).status_code == 202
    server = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
    assert server["locked"] is True
    c.post(f"/compute/v2.1/servers/{sid}/action", json={"unlock": None})
    assert c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["locked"] is False
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_unknown_ids_and_names_are_404(c: httpx.Client) -> None:
    for path in ("/compute/v2.1/servers/vm-that-is-a-name",
                 "/compute/v2.1/servers/00000000-0000-0000-0000-000000000000",
                 "/compute/v2.1/flavors/m1.tiny", "/image/v2/images/demo"):
        r = c.get(path)
        assert r.status_code == 404, path
    body = c.get("/compute/v2.1/servers/nope").json()
    assert body["itemNotFound"]["code"] == 404


def test_bad_token_is_401(server: RunningServer) -> None:
    for headers in ({}, {"X-Auth-Token": "not-a-token"}):
        r = httpx.get(f"{server.url}/compute/v2.1/servers", headers=headers)
        assert r.status_code == 401
        assert r.json()["unauthorized"]["code"] == 401


def test_revoked_token_is_refused_at_once(server: RunningServer) -> None:
    token = server.token(fresh=True)
    headers = {"X-Auth-Token": token}
    assert httpx.get(f"{server.url}/compute/v2.1/servers", headers=headers).status_code == 200
    r = httpx.delete(f"{server.url}/identity/v3/auth/tokens",
                     headers={**headers, "X-Subject-Token": token})
    assert r.status_code == 204
    assert httpx.get(f"{server.url}/compute/v2.1/servers", headers=headers).status_code == 401
    server.token(fresh=True)


@pytest.mark.parametrize("body,field", [
    ({"server": {"flavorRef": "1"}}, "'name' is a required property"),
    ({"server": {"name": "x", "flavorRef": "1", "networks": "bogus"}}, "networks"),
    ({"server": {"name": "x", "flavorRef": "1", "min_count": 0}}, "min_count"),
    ({"server": {"name": "x", "flavorRef": "1", "metadata": {"a": 1}}}, "a"),
    ({"server": {"name": "x", "flavorRef": "1", "imageRef": "nope"}}, "imageRef"),
    ({"server": {"name": "x", "flavorRef": "999", "imageRef": "x"}}, ""),
    ({"nothing": 1}, "server"),
])
def test_bad_bodies_are_400_naming_the_field(c: httpx.Client, body: dict, field: str) -> None:
    if body.get("server", {}).get("imageRef") == "x":
        body["server"]["imageRef"] = demo_image(c)
    r = c.post("/compute/v2.1/servers", json=body)
    assert r.status_code in (400, 404), r.text
    message = next(iter(r.json().values()))["message"]
    assert field in message


def test_malformed_json_is_400(c: httpx.Client) -> None:
    r = c.post("/compute/v2.1/servers", content=b"{not json",
               headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"badRequest": {"code": 400, "message": "Malformed request body"}}


def test_list_filters(c: httpx.Client) -> None:
    a = boot(c, "filt-alpha")
    b = boot(c, "filt-beta")
    wait_status(c, a, "ACTIVE")
    wait_status(c, b, "ACTIVE")
    names = [s["name"] for s in c.get("/compute/v2.1/servers", params={"name": "^filt-al"})
             .json()["servers"]]
    assert names == ["filt-alpha"]
    c.post(f"/compute/v2.1/servers/{b}/action", json={"os-stop": None})
    wait_status(c, b, "SHUTOFF")
    shutoff = c.get("/compute/v2.1/servers/detail", params={"status": "SHUTOFF",
                                                             "name": "^filt-"}).json()
    assert [s["id"] for s in shutoff["servers"]] == [b]
    page = c.get("/compute/v2.1/servers", params={"limit": 1, "name": "^filt-"}).json()
    assert len(page["servers"]) == 1 and page["servers_links"][0]["rel"] == "next"
    rest = c.get("/compute/v2.1/servers", params={"marker": page["servers"][0]["id"],
                                                   "name": "^filt-"}).json()["servers"]
    assert len(rest) == 1
    bogus = c.get("/compute/v2.1/servers", params={"status": "BOGUS"})
    assert bogus.status_code == 400
    assert bogus.json()["badRequest"]["message"] == "Invalid status value"
    old = c.get("/compute/v2.1/servers", params={"status": "BOGUS"},
                headers={"OpenStack-API-Version": "compute 2.37"})
    assert old.status_code == 200 and old.json()["servers"] == []
    for sid in (a, b):
        c.delete(f"/compute/v2.1/servers/{sid}")


def test_multi_create_names_each_server(c: httpx.Client) -> None:
    sid = boot(c, "multi", min_count=2, max_count=3)

    def active() -> list[dict]:
        found = c.get("/compute/v2.1/servers/detail", params={"name": "^multi-"}).json()
        return [s for s in found["servers"] if s["status"] == "ACTIVE"]

    wait_for(lambda: len(active()) == 3)
    assert sorted(s["name"] for s in active()) == ["multi-1", "multi-2", "multi-3"]
    assert sid in {s["id"] for s in active()}
    for s in c.get("/compute/v2.1/servers", params={"name": "^multi-"}).json()["servers"]:
        c.delete(f"/compute/v2.1/servers/{s['id']}")


def test_failed_build_everywhere_ends_in_error_with_fault(c: httpx.Client) -> None:
    sid = boot(c, "doomed", metadata={"fake_fail_spawn": "1"})
    server = wait_status(c, sid, "ERROR")
    assert "fake spawn failure" in server["fault"]["message"] or \
        "retries" in server["fault"]["message"]
    assert server["fault"]["code"] == 500
    c.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(c, sid)


def test_flavors_and_microversion_shapes(c: httpx.Client) -> None:
    flavors = c.get("/compute/v2.1/flavors/detail", params={"is_public": "None"}).json()
    names = {f["name"] for f in flavors["flavors"]}
    assert {"m1.nano", "m1.micro", "m1.tiny", "m1.small", "m1.medium", "m1.large",
            "m1.xlarge"} <= names
    tiny = c.get("/compute/v2.1/flavors/1").json()["flavor"]
    assert (tiny["ram"], tiny["disk"], tiny["vcpus"]) == (512, 1, 1)
    old = c.get("/compute/v2.1/flavors/1", headers={"OpenStack-API-Version": "compute 2.1"})
    assert "extra_specs" not in old.json()["flavor"] and "description" not in old.json()["flavor"]
    sid = boot(c, "shape1")
    wait_status(c, sid, "ACTIVE")
    v21 = c.get(f"/compute/v2.1/servers/{sid}",
                headers={"OpenStack-API-Version": "compute 2.1"}).json()["server"]
    assert set(v21["flavor"]) == {"id", "links"}
    for later in ("locked", "description", "tags", "locked_reason", "pinned_availability_zone"):
        assert later not in v21
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_admin_views(c: httpx.Client) -> None:
    services = c.get("/compute/v2.1/os-services", params={"binary": "nova-compute"}).json()
    hosts = {s["host"]: s for s in services["services"]}
    assert set(hosts) == {"compute-a", "compute-b"}
    assert all(s["state"] == "up" and s["status"] == "enabled" for s in hosts.values())
    hyp = c.get("/compute/v2.1/os-hypervisors/detail",
                headers={"OpenStack-API-Version": "compute 2.28"}).json()["hypervisors"]
    assert {h["hypervisor_hostname"] for h in hyp} == {"compute-a", "compute-b"}
    stats = c.get("/compute/v2.1/os-hypervisors/statistics",
                  headers={"OpenStack-API-Version": "compute 2.1"}).json()
    assert stats["hypervisor_statistics"]["count"] == 2
    limits = c.get("/compute/v2.1/limits").json()["limits"]["absolute"]
    assert "totalInstancesUsed" in limits
    zones = c.get("/compute/v2.1/os-availability-zone").json()["availabilityZoneInfo"]
    assert zones[0]["zoneName"] == "nova"


def test_disabled_host_gets_no_new_servers(c: httpx.Client) -> None:
    services = c.get("/compute/v2.1/os-services").json()["services"]
    b = [s for s in services if s["host"] == "compute-b"][0]
    r = c.put(f"/compute/v2.1/os-services/{b['id']}",
              json={"status": "disabled", "disabled_reason": "maintenance"},
              headers={"OpenStack-API-Version": "compute 2.53"})
    assert r.status_code == 200 and r.json()["service"]["status"] == "disabled"
    try:
        ids = [boot(c, f"onlya-{i}") for i in range(3)]
        for sid in ids:
            assert wait_status(c, sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"] == "compute-a"
            c.delete(f"/compute/v2.1/servers/{sid}")
    finally:
        c.put(f"/compute/v2.1/os-services/{b['id']}", json={"status": "enabled"},
              headers={"OpenStack-API-Version": "compute 2.53"})


@pytest.mark.backends("sqlite")
def test_address_pool_exhausted_ends_in_error_not_stuck_in_build(tmp_path: Path) -> None:
    srv = start(tmp_path / "state", config={"network": {"cidr": "10.9.0.0/30"}})  # 1 address
    try:
        c = srv.client()
        first = boot(c, "net-1")
        assert wait_status(c, first, "ACTIVE")["addresses"]["private"][0]["addr"] == "10.9.0.2"
        second = boot(c, "net-2")
        server = wait_status(c, second, "ERROR")
        assert "No more IP addresses available on network private" in server["fault"]["message"]
        hypervisors = c.get("/compute/v2.1/os-hypervisors/detail",
                            headers={"OpenStack-API-Version": "compute 2.87"}).json()
        # only the first server is on a host; the failed build left nothing behind
        assert sum(h["running_vms"] for h in hypervisors["hypervisors"]) == 1
        c.delete(f"/compute/v2.1/servers/{second}")
        wait_gone(c, second)
    finally:
        srv.stop()
