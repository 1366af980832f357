"""evacuate (Nova's os-evacuate) on the fake driver: a server of a compute host that is
down is rebuilt on another host. Through the API, as an admin would: the host forced down (os-services 2.11+),
Nova's microversion shapes (2.14, 2.29/2.68, 2.95) and errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, wait_status
from tests.test_flavors import mv

CONFIG: dict[str, dict[str, Any]] = {"compute": {"hosts": ["ev-a", "ev-b"]}}


@pytest.fixture
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start(tmp_path_factory.mktemp("evacuate") / "state", config=CONFIG, timeout=60)
    try:
        yield server
    finally:
        server.stop()


def evacuate(c: httpx.Client, sid: str, body: dict[str, Any], version: str = "2.96"
             ) -> httpx.Response:
    return c.post(f"/compute/v2.1/servers/{sid}/action", json={"evacuate": body},
                  headers=mv(version))


def force_down(c: httpx.Client, host: str, down: bool) -> None:
    services = c.get("/compute/v2.1/os-services", params={"host": host,
                                                          "binary": "nova-compute"},
                     headers=mv("2.53")).json()["services"]
    r = c.put(f"/compute/v2.1/os-services/{services[0]['id']}",
              json={"forced_down": down}, headers=mv("2.53"))
    assert r.status_code == 200, r.text


def migrations(c: httpx.Client, sid: str) -> list[dict[str, Any]]:
    return list(c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid},
                      headers=mv("2.80")).json()["migrations"])


def test_evacuate_rebuilds_the_server_of_a_dead_host_elsewhere(srv: RunningServer) -> None:
    with srv.client() as c:
        sid = boot(c, "evacuee")
        first = wait_status(c, sid, "ACTIVE")
        source = first["OS-EXT-SRV-ATTR:host"]
        other = "ev-b" if source == "ev-a" else "ev-a"
        # The host is alive: Nova's 409.
        r = evacuate(c, sid, {})
        assert r.status_code == 409
        assert f"Compute service of {source} is still in use." in r.text
        force_down(c, source, True)
        try:
            # Shapes: onSharedStorage required before 2.14 and refused from it; force
            # only from 2.29 to 2.67; shared storage is none here; the same host is 400.
            assert evacuate(c, sid, {}, "2.13").status_code == 400
            assert evacuate(c, sid, {"onSharedStorage": False}, "2.14").status_code == 400
            assert evacuate(c, sid, {"onSharedStorage": True}, "2.13").status_code == 400
            assert evacuate(c, sid, {"host": other, "force": True}, "2.68").status_code \
                == 400
            assert evacuate(c, sid, {"host": source}).status_code == 400
            assert evacuate(c, sid, {"host": "no-such-host"}).status_code == 400
            member = c.post(f"/compute/v2.1/servers/{sid}/action",
                            json={"evacuate": {}}, headers={**mv("2.96"),
                                                            "X-Auth-Token": "bad"})
            assert member.status_code == 401
            # Before 2.14 the answer carries the admin password.
            r = evacuate(c, sid, {"onSharedStorage": False, "adminPass": "s3cret"}, "2.13")
            assert r.status_code == 200, r.text
            assert r.json() == {"adminPass": "s3cret"}
            server = wait_status(c, sid, "ACTIVE")
            assert server["OS-EXT-SRV-ATTR:host"] == other
            m = wait_for(lambda: (found := migrations(c, sid)[0])["status"] == "done"
                         and found, 15)
            assert m["migration_type"] == "evacuation"
            assert (m["source_compute"], m["dest_compute"]) == (source, other)
            actions = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
            assert actions["instanceActions"][0]["action"] == "evacuate"
            # A second evacuation, from 2.95: the server is left stopped.
            force_down(c, other, True)
            force_down(c, source, False)
            r = evacuate(c, sid, {"host": source})
            assert (r.status_code, r.content) == (200, b"")
            server = wait_status(c, sid, "SHUTOFF")
            assert server["OS-EXT-SRV-ATTR:host"] == source
        finally:
            force_down(c, source, False)
            force_down(c, other, False)
    # Rebuilt back on its first host, whose stale guest went in the rebuild: that
    # evacuation is completed; the other host removes its stale guest when its service
    # starts again (ComputeManager.adopt), which this test does not wait for.
    with srv.client() as c:
        done = wait_for(lambda: sorted(m["status"] for m in migrations(c, sid))
                        == ["completed", "done"] and migrations(c, sid), 15)
        assert {m["status"]: m["source_compute"] for m in done} == {
            "completed": source, "done": other}
        assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
