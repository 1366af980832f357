"""Prometheus metrics at /metrics: who may scrape, what is there, and that it moves."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from novalite.testing.server import RunningServer, start
from tests.helpers import boot, wait_status

pytestmark = pytest.mark.backends("sqlite")


def scrape(srv: RunningServer, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                       float]:
    """{(sample name, sorted labels): value} of one scrape with the admin token."""
    r = httpx.get(f"{srv.url}/metrics", headers={"X-Auth-Token": srv.token(), **headers})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_builds_bus_and_instances_are_counted(server: RunningServer) -> None:
    route = "/compute/v2.1/servers/{server_id}"
    before = scrape(server)
    with server.client() as c:
        sid = boot(c, f"metrics-{secrets.token_hex(3)}")
        wait_status(c, sid, "ACTIVE")
        for _ in range(3):
            assert c.get(f"/compute/v2.1/servers/{sid}").status_code == 200
        assert c.get("/compute/v2.1/servers/nope").status_code == 404
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Requests by route template (never the URL sent), method and status, with latencies.
    assert moved("novalite_http_requests_total", route=route, method="GET",
                 status="200") >= 3
    assert moved("novalite_http_requests_total", route=route, method="GET", status="404") == 1
    assert moved("novalite_http_request_duration_seconds_count", route=route,
                 method="GET") >= 4
    assert moved("novalite_http_requests_total", route="/compute/v2.1/servers",
                 method="POST", status="202") == 1
    # The build, the bus traffic it took, and the instance by host and state.
    assert moved("novalite_builds_total", outcome="success") == 1
    assert moved("novalite_build_duration_seconds_count", outcome="success") == 1
    assert moved("novalite_rpc_messages_total", topic="conductor", kind="cast") >= 1
    host_casts = sum(moved("novalite_rpc_messages_total", topic=f"compute.{h}", kind="cast")
                     for h in ("compute-a", "compute-b"))
    assert host_casts >= 1
    assert ("novalite_rpc_inbox_depth", (("topic", "conductor"),)) in after
    assert sum(v for (n, labels), v in after.items()
               if n == "novalite_instances" and ("vm_state", "active") in labels) >= 1
    # Connections and descriptors.
    assert value(after, "novalite_http_open_connections") >= 1
    assert value(after, "process_open_fds") > 0
    assert value(after, "process_max_fds") > 0


def test_only_an_admin_may_scrape(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    with server.client() as admin:
        tag = secrets.token_hex(3)
        project = admin.post("/identity/v3/projects", json={"project": {
            "name": f"m-{tag}"}}).json()["project"]
        user = admin.post("/identity/v3/users", json={"user": {
            "name": f"m-{tag}", "password": "pw-metrics",
            "default_project_id": project["id"]}}).json()["user"]
        role = admin.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]
        admin.put(f"/identity/v3/projects/{project['id']}/users/{user['id']}/roles/"
                  f"{role['id']}")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": f"m-{tag}", "domain": {"name": "Default"}, "password": "pw-metrics"}}}}}
    token = httpx.post(f"{server.url}/identity/v3/auth/tokens",
                       json=body).headers["x-subject-token"]
    r = httpx.get(f"{server.url}/metrics", headers={"X-Auth-Token": token})
    assert r.status_code == 403
    assert r.json()["forbidden"]["code"] == 403


@pytest.fixture
def open_on_loopback(tmp_path: Path) -> Iterator[RunningServer]:
    srv = start(tmp_path / "state", config={"metrics": {"loopback_without_token": True}})
    try:
        yield srv
    finally:
        srv.stop()


def test_loopback_scrapes_without_a_token_when_configured(open_on_loopback: RunningServer
                                                          ) -> None:
    r = httpx.get(f"{open_on_loopback.url}/metrics")
    assert r.status_code == 200
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"novalite_http_requests", "novalite_rpc_messages", "novalite_builds",
            "novalite_db_retries", "process_open_fds"} <= names
