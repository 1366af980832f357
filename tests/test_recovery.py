"""Nothing lost, nothing stuck: kill -9 during a boot storm, then a restart.

Every server the API accepted (202) is there after the restart, none stays in
BUILD: each is ACTIVE, or ERROR with a fault saying why; the resources the
scheduler counts as used are exactly those of the servers that run, and the
quota counts every server that exists. A user can delete the failed ones.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for

pytestmark = pytest.mark.backends("sqlite")

STORM, WORKERS, HOSTS = 200, 20, 20
CONFIG: dict[str, dict[str, Any]] = {
    "compute": {"hosts": HOSTS},
    "quota": {"instances": 1000, "cores": 1000, "ram": 10_000_000},
}


def _storm(server: RunningServer, image: str, accepted: list[str], stop: threading.Event
           ) -> list[threading.Thread]:
    """WORKERS threads booting STORM servers between them until ``stop`` (or the end)."""
    token = server.token()
    counter = iter(range(STORM))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"X-Auth-Token": token}) as c:
            while not stop.is_set():
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                try:
                    r = c.post("/compute/v2.1/servers", json={"server": {
                        "name": f"storm-{n}", "imageRef": image, "flavorRef": "1"}})
                except httpx.HTTPError:  # the service was killed under this request
                    return
                if r.status_code == 202:
                    with lock:
                        accepted.append(r.json()["server"]["id"])

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    return threads


def _servers(c: httpx.Client) -> list[dict[str, Any]]:
    r = c.get("/compute/v2.1/servers/detail", params={"all_tenants": "1", "limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["servers"]  # type: ignore[no-any-return]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"


@pytest.mark.parametrize("kill_after", [1, 150])  # at once, and deep in the storm
def test_kill_9_during_a_boot_storm_leaves_no_server_stuck(state: Path, kill_after: int
                                                           ) -> None:
    """The service is killed once ``kill_after`` boots were accepted, the others in
    flight (accepted, being scheduled, building on their hosts)."""
    server = start(state, config=CONFIG)
    try:
        c = server.client()
        image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
        accepted: list[str] = []
        stop = threading.Event()
        threads = _storm(server, image, accepted, stop)
        wait_for(lambda: len(accepted) >= kill_after, timeout=120, interval=0.005)
        server.stop(signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(60)
        c.close()
    finally:
        server.stop(signal.SIGKILL)
    server = start(state, config=CONFIG)
    try:
        c = server.client()
        servers = _servers(c)
        by_id = {s["id"]: s for s in servers}
        # Nothing lost: every accepted server is there.
        assert set(accepted) <= set(by_id), set(accepted) - set(by_id)
        # Nothing stuck: not at once, not later.
        stuck = [s["id"] for s in servers if s["status"] == "BUILD"]
        assert not stuck, f"{len(stuck)} of {len(servers)} servers stuck in BUILD"
        assert all(s["OS-EXT-STS:task_state"] is None for s in servers)
        failed = [s for s in servers if s["status"] == "ERROR"]
        for s in failed:
            fault = s.get("fault") or c.get(f"/compute/v2.1/servers/{s['id']}").json()[
                "server"].get("fault")
            assert fault and "service stopped" in fault["message"], s
        active = [s for s in servers if s["status"] == "ACTIVE"]
        assert len(active) + len(failed) == len(servers)
        print(f"\nkill -9 after {kill_after} boots: {len(accepted)} accepted, {len(servers)} "
              f"recorded, {len(active)} active, {len(failed)} error, {len(stuck)} stuck")
        # Claims: the hosts' used resources are exactly the running servers'.
        with server.client("2.87") as old:  # statistics went in 2.88
            stats = old.get("/compute/v2.1/os-hypervisors/statistics").json()[
                "hypervisor_statistics"]
        flavor = c.get("/compute/v2.1/flavors/1").json()["flavor"]
        assert stats["vcpus_used"] == len(active) * flavor["vcpus"]
        assert stats["memory_mb_used"] == len(active) * flavor["ram"]
        # Quota: every server that exists counts, and no more.
        project = c.get("/identity/v3/projects", params={"name": "admin"}).json()[
            "projects"][0]["id"]
        usage = c.get(f"/compute/v2.1/os-quota-sets/{project}/detail").json()["quota_set"]
        assert usage["instances"]["in_use"] == len(servers)
        # A user can act on a failed server: it deletes.
        for s in failed[:5]:
            assert c.delete(f"/compute/v2.1/servers/{s['id']}").status_code == 204
        for s in failed[:5]:
            wait_for(lambda sid=s["id"]: c.get(f"/compute/v2.1/servers/{sid}").status_code
                     == 404)
        # A second restart finds nothing left to reconcile.
        c.close()
        server.stop()
        server = start(state, config=CONFIG)
        c = server.client()
        assert not [s for s in _servers(c) if s["status"] == "BUILD"]
        assert "instances reconciled at start" not in server.log().rsplit(
            "novalite starting", 1)[-1]
        c.close()
    finally:
        server.stop()


def test_a_build_past_instance_build_timeout_goes_to_error(tmp_path: Path) -> None:
    """A build that never finishes (the fake driver's spawn hangs) is ERROR after
    ``[compute] instance_build_timeout``, with Nova's fault, its claim released."""
    server = start(tmp_path / "state", config={
        "compute": {"instance_build_timeout": 2.0, "build_check_interval": 0.5},
        "fake": {"spawn_delay": 3600.0}})
    try:
        c = server.client()
        image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
        sid = c.post("/compute/v2.1/servers", json={"server": {
            "name": "slow", "imageRef": image, "flavorRef": "1"}}).json()["server"]["id"]
        server_body = wait_for(lambda: (lambda b: b if b["status"] == "ERROR" else None)(
            c.get(f"/compute/v2.1/servers/{sid}").json()["server"]), timeout=20)
        assert server_body["fault"]["message"] == "Instance build timed out. Set to error state."
        with server.client("2.87") as old:  # statistics went in 2.88
            stats = old.get("/compute/v2.1/os-hypervisors/statistics").json()[
                "hypervisor_statistics"]
        assert stats["vcpus_used"] == 0
    finally:
        server.stop()
