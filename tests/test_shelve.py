"""Shelve, shelve offload and unshelve through the API on fake hosts: the snapshot in
the image service, the host's resources freed and taken again, the disk's contents
back after unshelve, and the snapshot gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, wait_status
from tests.test_flavors import make_member, mv
from tests.test_resize import action, host_of, usage

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start(tmp_path_factory.mktemp("shelve") / "state", config={
        "compute": {"hosts": ["host-a", "host-b"]},
        "quota": {"instances": -1, "cores": -1, "ram": -1}})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def c(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


def shelved_images(c: httpx.Client, name: str) -> list[dict]:
    return c.get("/image/v2/images", params={"name": f"{name}-shelved"}).json()["images"]


def test_shelve_offloads_and_unshelve_brings_the_disk_back(c: httpx.Client) -> None:
    sid = boot(c, "sleepy")
    wait_status(c, sid, "ACTIVE")
    host = host_of(c, sid)
    console = action(c, sid, {"os-getConsoleOutput": {}}).json()["output"]
    before = usage(c)
    assert action(c, sid, {"shelve": None}).status_code == 202
    server = wait_status(c, sid, "SHELVED_OFFLOADED")
    assert server["OS-EXT-SRV-ATTR:host"] is None
    assert usage(c)[host]["memory_mb_used"] == before[host]["memory_mb_used"] - 512
    assert usage(c)[host]["running_vms"] == before[host]["running_vms"] - 1
    [image] = shelved_images(c, "sleepy")
    assert image["status"] == "active" and image["image_type"] == "snapshot"
    assert action(c, sid, {"shelve": None}).status_code == 409
    assert action(c, sid, {"os-stop": None}).status_code == 409
    assert action(c, sid, {"unshelve": None}).status_code == 202
    server = wait_status(c, sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] in ("host-a", "host-b")
    after = action(c, sid, {"os-getConsoleOutput": {}}).json()["output"]
    assert after.startswith(console)  # the snapshot's "disk", then the new boot
    assert "booting image sleepy-shelved" in after
    wait_for(lambda: not shelved_images(c, "sleepy"), 10)  # deleted once it runs
    history = [a["action"] for a in c.get(
        f"/compute/v2.1/servers/{sid}/os-instance-actions").json()["instanceActions"]]
    assert history[:2] == ["unshelve", "shelve"]
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_unshelve_arguments_per_microversion(c: httpx.Client, srv: RunningServer) -> None:
    sid = boot(c, "zoned")
    wait_status(c, sid, "ACTIVE")
    r = action(c, sid, {"unshelve": None})
    assert r.status_code == 409
    assert next(iter(r.json().values()))["message"] == (
        f"Cannot 'unshelve' instance {sid} while it is in vm_state active")
    assert action(c, sid, {"shelve": None}).status_code == 202
    wait_status(c, sid, "SHELVED_OFFLOADED")
    assert action(c, sid, {"unshelve": {"availability_zone": "nova"}}, "2.76"
                  ).status_code == 400
    assert action(c, sid, {"unshelve": {"availability_zone": "nowhere"}}, "2.77"
                  ).status_code == 400
    assert action(c, sid, {"unshelve": {"host": "host-b"}}, "2.90").status_code == 400
    member = make_member(srv)
    try:  # a named host is for admins (and the server is not the member's anyway)
        assert member.client.post(f"/compute/v2.1/servers/{sid}/action",
                                  json={"unshelve": {"host": "host-b"}},
                                  headers=mv("2.91")).status_code in (403, 404)
    finally:
        member.client.close()
    assert action(c, sid, {"unshelve": {"host": "nohost"}}, "2.91").status_code == 400
    assert action(c, sid, {"unshelve": {"host": "host-b"}}, "2.91").status_code == 202
    server = wait_status(c, sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == "host-b"
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_shelved_without_offload_then_offloaded_by_an_admin(tmp_path: Path) -> None:
    server = start(tmp_path / "state", config={"DEFAULT": {"shelved_offload_time": -1}})
    try:
        with server.client() as c:
            sid = boot(c, "kept")
            wait_status(c, sid, "ACTIVE")
            host = host_of(c, sid)
            before = usage(c)
            assert action(c, sid, {"shelve": None}).status_code == 202
            shelved = wait_status(c, sid, "SHELVED")
            assert shelved["OS-EXT-SRV-ATTR:host"] == host  # still holds its host
            assert usage(c) == before
            assert action(c, sid, {"unshelve": {"availability_zone": "nova"}}, "2.77"
                          ).status_code == 409  # only for SHELVED_OFFLOADED
            assert action(c, sid, {"unshelve": None}).status_code == 202
            wait_status(c, sid, "ACTIVE")
            wait_for(lambda: not shelved_images(c, "kept"), 10)
            assert action(c, sid, {"shelve": None}).status_code == 202
            wait_status(c, sid, "SHELVED")
            assert action(c, sid, {"shelveOffload": None}).status_code == 202
            wait_status(c, sid, "SHELVED_OFFLOADED")
            assert usage(c)[host]["running_vms"] == before[host]["running_vms"] - 1
    finally:
        server.stop()
