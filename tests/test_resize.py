"""Resize, cold migration, confirm and revert through the API on fake hosts, with the
host usage hypervisors report and the migration records os-migrations lists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, wait_status
from tests.test_flavors import make_member, mv, new_flavor

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Three fake hosts; a move never stays on its host (Nova's default), so every
    resize here crosses hosts. Live migrations take a second, and fail to host-c."""
    server = start(tmp_path_factory.mktemp("resize") / "state", config={
        "compute": {"hosts": ["host-a", "host-b", "host-c"]},
        "fake": {"live_migration_delay": 1.0, "fail_live_migration_to": ["host-c"]},
        "DEFAULT": {"allow_resize_to_same_host": False},
        "quota": {"instances": -1, "cores": -1, "ram": -1}})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def c(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


def usage(c: httpx.Client) -> dict[str, dict[str, Any]]:
    hypervisors = c.get("/compute/v2.1/os-hypervisors/detail", headers=mv("2.87")).json()
    return {h["hypervisor_hostname"]: h for h in hypervisors["hypervisors"]}


def action(c: httpx.Client, sid: str, body: dict[str, Any], version: str = "2.96"
           ) -> httpx.Response:
    return c.post(f"/compute/v2.1/servers/{sid}/action", json=body, headers=mv(version))


def host_of(c: httpx.Client, sid: str) -> str:
    return str(c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["OS-EXT-SRV-ATTR:host"])


def test_resize_confirm_moves_the_server_and_its_usage(c: httpx.Client) -> None:
    sid = boot(c, "grow")
    wait_status(c, sid, "ACTIVE")
    source = host_of(c, sid)
    before = usage(c)
    assert action(c, sid, {"resize": {"flavorRef": "2"}}).status_code == 202
    server = wait_status(c, sid, "VERIFY_RESIZE")
    dest = server["OS-EXT-SRV-ATTR:host"]
    assert dest != source
    assert server["flavor"]["original_name"] == "m1.small" and server["flavor"]["ram"] == 2048
    during = usage(c)  # both claims held until the confirm
    assert during[source]["memory_mb_used"] == before[source]["memory_mb_used"]
    assert during[dest]["memory_mb_used"] == before[dest]["memory_mb_used"] + 2048
    out = action(c, sid, {"os-getConsoleOutput": {}}).json()["output"]
    assert f"disk from {source} on {dest}: 1 vCPUs, 2048 MiB, 20 GiB" in out
    assert "booting image" in out  # the same "disk": its boot lines came along
    assert action(c, sid, {"confirmResize": None}).status_code == 204
    wait_status(c, sid, "ACTIVE")
    after = usage(c)
    assert after[source]["memory_mb_used"] == before[source]["memory_mb_used"] - 512
    assert after[dest]["memory_mb_used"] == before[dest]["memory_mb_used"] + 2048
    actions = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
    assert [a["action"] for a in actions["instanceActions"]][:2] == ["confirmResize", "resize"]
    migrations = c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid},
                       headers=mv("2.80")).json()["migrations"]
    assert len(migrations) == 1
    m = migrations[0]
    assert (m["status"], m["migration_type"], m["source_compute"], m["dest_compute"]) == (
        "confirmed", "resize", source, dest)
    assert m["old_instance_type_id"] != m["new_instance_type_id"]
    assert m["uuid"] and m["project_id"] and m["user_id"]
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_revert_goes_back_to_the_old_host_and_flavor(c: httpx.Client) -> None:
    sid = boot(c, "back")
    wait_status(c, sid, "ACTIVE")
    source = host_of(c, sid)
    before = usage(c)
    assert action(c, sid, {"resize": {"flavorRef": "2"}}).status_code == 202
    wait_status(c, sid, "VERIFY_RESIZE")
    assert action(c, sid, {"revertResize": None}).status_code == 202
    server = wait_status(c, sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == source
    assert server["flavor"]["original_name"] == "m1.tiny"
    assert {h: u["memory_mb_used"] for h, u in usage(c).items()} == {
        h: u["memory_mb_used"] for h, u in before.items()}
    m = c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid},
              headers=mv("2.22")).json()["migrations"][0]
    assert m["status"] == "reverted"
    assert "migration_type" not in m  # 2.23 added it
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_a_flavor_that_fits_nowhere_moves_nothing(c: httpx.Client) -> None:
    huge = new_flavor(c, ram=10_000_000, disk=2)
    sid = boot(c, "huge")
    wait_status(c, sid, "ACTIVE")
    source = host_of(c, sid)
    before = usage(c)
    assert action(c, sid, {"resize": {"flavorRef": huge["id"]}}).status_code == 202

    def failed() -> dict[str, Any] | None:
        m = c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid}
                  ).json()["migrations"]
        return m[0] if m and m[0]["status"] == "error" else None

    wait_for(failed, 15)
    server = wait_status(c, sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == source
    assert server["flavor"]["original_name"] == "m1.tiny"
    assert usage(c) == before
    actions = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/"
                    + c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
                    ["instanceActions"][0]["request_id"]).json()["instanceAction"]
    assert actions["events"][0]["result"] == "Error"
    assert "No valid host" in actions["events"][0]["details"]
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_wrong_states_and_refusals(c: httpx.Client, srv: RunningServer) -> None:
    sid = boot(c, "states", flavorRef="2")
    wait_status(c, sid, "ACTIVE")
    r = action(c, sid, {"confirmResize": None})
    assert r.status_code == 409
    assert next(iter(r.json().values()))["message"] == (
        f"Cannot 'confirmResize' instance {sid} while it is in vm_state active")
    assert action(c, sid, {"revertResize": None}).status_code == 409
    r = action(c, sid, {"resize": {"flavorRef": "2"}})
    assert (r.status_code, r.json()["badRequest"]["message"]) == (
        400, "When resizing, instances must change flavor!")
    assert action(c, sid, {"resize": {"flavorRef": "nope"}}).status_code == 400
    assert action(c, sid, {"resize": {}}).status_code == 400
    # a smaller root disk: refused as Nova's drivers refuse it, the server untouched
    assert action(c, sid, {"resize": {"flavorRef": "1"}}).status_code == 202
    wait_for(lambda: c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid}
                           ).json()["migrations"][0]["status"] == "error", 15)
    server = wait_status(c, sid, "ACTIVE")
    assert "fault" not in server  # Nova shows faults of ERROR servers only
    latest = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()[
        "instanceActions"][0]
    events = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{latest['request_id']}"
                   ).json()["instanceAction"]["events"]
    assert events[0]["details"] == "Resize error: Unable to resize disk down."
    assert server["flavor"]["original_name"] == "m1.small"
    # members may resize their servers, not migrate them nor list migrations
    member = make_member(srv)
    try:
        assert member.client.post("/compute/v2.1/servers/x/action", json={"migrate": None}
                                  ).status_code == 403
        assert member.client.get("/compute/v2.1/os-migrations").status_code == 403
    finally:
        member.client.close()
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_cold_migrate_to_a_named_host(c: httpx.Client) -> None:
    sid = boot(c, "cold")
    wait_status(c, sid, "ACTIVE")
    source = host_of(c, sid)
    other = "host-b" if source == "host-a" else "host-a"
    assert action(c, sid, {"migrate": {"host": other}}, "2.55").status_code == 400
    r = action(c, sid, {"migrate": {"host": source}}, "2.56")
    assert r.status_code == 400
    assert action(c, sid, {"migrate": {"host": other}}, "2.56").status_code == 202
    server = wait_status(c, sid, "VERIFY_RESIZE")
    assert server["OS-EXT-SRV-ATTR:host"] == other
    assert server["flavor"]["original_name"] == "m1.tiny"
    assert action(c, sid, {"confirmResize": None}).status_code == 204
    wait_status(c, sid, "ACTIVE")
    m = c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid},
              headers=mv("2.23")).json()["migrations"][0]
    assert (m["migration_type"], m["status"], m["dest_compute"]) == (
        "migration", "confirmed", other)
    # /servers/{id}/migrations lists live migrations in progress only (2.23)
    assert c.get(f"/compute/v2.1/servers/{sid}/migrations", headers=mv("2.22")
                 ).status_code == 404
    assert c.get(f"/compute/v2.1/servers/{sid}/migrations", headers=mv("2.23")
                 ).json() == {"migrations": []}
    assert c.get(f"/compute/v2.1/servers/{sid}/migrations/{m['id']}", headers=mv("2.23")
                 ).status_code == 404
    r = c.post(f"/compute/v2.1/servers/{sid}/migrations/{m['id']}/action",
               json={"force_complete": None}, headers=mv("2.22"))
    assert r.status_code == 409
    assert c.delete(f"/compute/v2.1/servers/{sid}/migrations/{m['id']}", headers=mv("2.24")
                    ).status_code == 409
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_os_migrations_paging_and_filters(c: httpx.Client) -> None:
    everything = c.get("/compute/v2.1/os-migrations", headers=mv("2.59")).json()["migrations"]
    assert len(everything) >= 2
    first = c.get("/compute/v2.1/os-migrations", params={"limit": 1}, headers=mv("2.59")
                  ).json()
    assert [m["uuid"] for m in first["migrations"]] == [everything[0]["uuid"]]
    assert "marker=" in first["migrations_links"][0]["href"]
    nxt = c.get("/compute/v2.1/os-migrations", params={
        "limit": 1, "marker": everything[0]["uuid"]}, headers=mv("2.59")).json()
    assert [m["uuid"] for m in nxt["migrations"]] == [everything[1]["uuid"]]
    assert c.get("/compute/v2.1/os-migrations", params={"marker": "nope"},
                 headers=mv("2.59")).status_code == 400
    assert c.get("/compute/v2.1/os-migrations", params={"bogus": 1}, headers=mv("2.59")
                 ).status_code == 400
    typed = c.get("/compute/v2.1/os-migrations", params={"migration_type": "migration"},
                  headers=mv("2.59")).json()["migrations"]
    assert typed and {m["migration_type"] for m in typed} == {"migration"}
    assert c.get("/compute/v2.1/os-migrations", params={"changes-before": "2000-01-01"},
                 headers=mv("2.66")).json()["migrations"] == []
    assert c.get("/compute/v2.1/os-migrations", params={"project_id": "none"},
                 headers=mv("2.80")).json()["migrations"] == []


def test_resize_confirms_itself_after_the_window(tmp_path: Path) -> None:
    server = start(tmp_path / "state", config={
        "DEFAULT": {"resize_confirm_window": 1}})
    try:
        with server.client() as c:
            sid = boot(c, "auto")
            wait_status(c, sid, "ACTIVE")
            assert action(c, sid, {"resize": {"flavorRef": "2"}}).status_code == 202
            server_view = wait_status(c, sid, "ACTIVE", timeout=20)  # same host allowed
            assert server_view["flavor"]["original_name"] == "m1.small"
            # The record says confirmed once the confirmation's last step is done.
            m = wait_for(lambda: next(
                (m for m in c.get("/compute/v2.1/os-migrations").json()["migrations"][:1]
                 if m["status"] == "confirmed"), None))
            assert m["source_compute"] == m["dest_compute"]
    finally:
        server.stop()


def test_live_migration_keeps_the_guest_running(c: httpx.Client) -> None:
    sid = boot(c, "live")
    wait_status(c, sid, "ACTIVE")
    source = host_of(c, sid)
    other = "host-b" if source == "host-a" else "host-a"
    before = usage(c)
    body = {"os-migrateLive": {"host": other, "block_migration": "auto"}}
    assert action(c, sid, body, "2.24").status_code == 400  # "auto" from 2.25
    assert action(c, sid, body).status_code == 202
    migrating = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
    assert migrating["status"] == "MIGRATING"
    assert action(c, sid, {"os-stop": None}).status_code == 409

    def running() -> dict[str, Any] | None:
        found = c.get(f"/compute/v2.1/servers/{sid}/migrations").json()["migrations"]
        return found[0] if found and found[0]["status"] == "running" else None

    m = wait_for(running, 10)
    assert m["server_uuid"] == sid and m["dest_compute"] == other
    shown = c.get(f"/compute/v2.1/servers/{sid}/migrations/{m['id']}").json()["migration"]
    assert shown["id"] == m["id"]
    url = f"/compute/v2.1/servers/{sid}/migrations/{m['id']}"
    assert c.post(url + "/action", json={"force_complete": None}).status_code == 202
    assert c.delete(url).status_code == 409
    server = wait_status(c, sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == other
    out = action(c, sid, {"os-getConsoleOutput": {}}).json()["output"]
    assert f"live-migrated from {source} to {other} without a restart" in out
    assert out.count("booting image") == 1  # never restarted
    assert usage(c)[source]["memory_mb_used"] == before[source]["memory_mb_used"] - 512
    assert usage(c)[other]["memory_mb_used"] == before[other]["memory_mb_used"] + 512
    listed = c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid}
                   ).json()["migrations"][0]
    assert (listed["migration_type"], listed["status"]) == ("live-migration", "completed")
    assert c.get(f"/compute/v2.1/servers/{sid}/migrations").json() == {"migrations": []}
    # a failed live migration: the guest keeps running on its host
    here = other
    assert action(c, sid, {"os-migrateLive": {"host": "host-c", "block_migration": False}}
                  ).status_code == 202
    wait_for(lambda: c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid}
                           ).json()["migrations"][0]["status"] == "error", 15)
    server = wait_status(c, sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == here
    assert usage(c)["host-c"]["memory_mb_used"] == before["host-c"]["memory_mb_used"]
    assert action(c, sid, {"os-migrateLive": {"host": here, "block_migration": False}}
                  ).status_code == 400
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_resize_beyond_the_quota_is_refused(c: httpx.Client, srv: RunningServer) -> None:
    member = make_member(srv)
    try:
        assert c.put(f"/compute/v2.1/os-quota-sets/{member.project_id}",
                     json={"quota_set": {"ram": 1024, "cores": 2}}).status_code == 200
        sid = boot(member.client, "small")
        wait_status(member.client, sid, "ACTIVE")
        r = action(member.client, sid, {"resize": {"flavorRef": "2"}})
        assert r.status_code == 403
        assert r.json()["forbidden"]["message"] == (
            "Quota exceeded for ram: Requested 1536, but already used 512 of 1024 ram")
        assert c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"] == "ACTIVE"
        member.client.delete(f"/compute/v2.1/servers/{sid}")
    finally:
        member.client.close()


def test_deleting_a_resized_server_confirms_first(c: httpx.Client) -> None:
    sid = boot(c, "gone")
    wait_status(c, sid, "ACTIVE")
    before = usage(c)
    source = host_of(c, sid)
    assert action(c, sid, {"resize": {"flavorRef": "2"}}).status_code == 202
    wait_status(c, sid, "VERIFY_RESIZE")
    assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 15)
    wait_for(lambda: usage(c)[source]["memory_mb_used"]
             == before[source]["memory_mb_used"] - 512, 15)
    wait_for(lambda: c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid}
                           ).json()["migrations"][0]["status"] == "confirmed", 15)
