"""One request id follows the work: from the HTTP response header through every actor's log.

The API answers each request with ``x-openstack-request-id: req-...``; every message
sent on that request's behalf carries it, and each actor's log lines name it (and
the actor, ``actor``). Followed here through a boot (API, conductor, scheduler,
compute), a console-log call, an aggregate change and the host calls of the
admin API, on the fake driver, in the service's JSON log.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import boot, wait_status

API = "/compute/v2.1"
HOST = "compute-a"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start(tmp_path_factory.mktemp("request-id"), config={
        "compute": {"hosts": [HOST]}, "logging": {"format": "json", "level": "debug"}})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def c(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


def request_id(r: httpx.Response) -> str:
    rid = r.headers["x-openstack-request-id"]
    assert rid.startswith("req-") and r.headers.get("x-compute-request-id") == rid
    return str(rid)


def lines_of(srv: RunningServer, rid: str) -> list[dict[str, Any]]:
    return [e for e in srv.log_events() if e.get("request_id") == rid]


def actors(lines: list[dict[str, Any]]) -> set[str]:
    """Who logged: each actor by its topic, the HTTP layer as ``api``."""
    return {e.get("actor") or ("api" if e["event"] == "request" else "?") for e in lines}


def wait_actors(srv: RunningServer, rid: str, wanted: set[str]) -> list[dict[str, Any]]:
    """The request's lines once every actor in ``wanted`` has logged under it."""
    return wait_for(lambda: (lambda lines: lines if wanted <= actors(lines) else None)(
        lines_of(srv, rid)), timeout=10)  # type: ignore[no-any-return]


def test_a_boot_is_followed_from_the_response_header_to_the_hypervisor(
        srv: RunningServer, c: httpx.Client) -> None:
    body = {"server": {"name": "traced", "imageRef": _image(c), "flavorRef": "1"}}
    r = c.post(f"{API}/servers", json=body)
    assert r.status_code == 202, r.text
    rid, sid = request_id(r), r.json()["server"]["id"]
    wait_status(c, sid, "ACTIVE")
    lines = wait_actors(srv, rid, {"api", "conductor", "scheduler", f"compute.{HOST}"})
    events = {(e.get("actor"), e["event"]) for e in lines}
    assert (None, "request") in events and (None, "servers accepted") in events
    assert ("scheduler", "hosts selected") in events
    assert (f"compute.{HOST}", "instance spawned") in events
    methods = {(e["actor"], e["method"]) for e in lines if e["event"] == "rpc message"}
    assert {("conductor", "schedule_and_build"), ("scheduler", "select_destinations"),
            (f"compute.{HOST}", "build_and_run_instance"),
            ("conductor", "instance_update")} <= methods
    # Every line about this server, whoever logged it, carries the boot's request id.
    about = [e for e in srv.log_events()
             if e.get("instance") == sid or sid in (e.get("ids") or ())
             or sid in (e.get("placed") or {})]
    assert about and all(e.get("request_id") == rid for e in about), about


def test_a_console_log_call_reaches_the_compute_host_with_its_request_id(
        srv: RunningServer, c: httpx.Client) -> None:
    sid = boot(c, "console")
    wait_status(c, sid, "ACTIVE")
    r = c.post(f"{API}/servers/{sid}/action", json={"os-getConsoleOutput": {}})
    assert r.status_code == 200, r.text
    rid = request_id(r)
    lines = wait_actors(srv, rid, {"api", f"compute.{HOST}"})
    assert (f"compute.{HOST}", "get_console_output") in {
        (e.get("actor"), e.get("method")) for e in lines}


def test_an_aggregate_change_reaches_the_scheduler_with_its_request_id(
        srv: RunningServer, c: httpx.Client) -> None:
    r = c.post(f"{API}/os-aggregates", json={"aggregate": {"name": "traced"}})
    assert r.status_code == 200, r.text
    aid = r.json()["aggregate"]["id"]
    r = c.post(f"{API}/os-aggregates/{aid}/action", json={"add_host": {"host": HOST}})
    assert r.status_code == 200, r.text
    rid = request_id(r)
    lines = wait_actors(srv, rid, {"api", "scheduler"})
    assert ("scheduler", "aggregates_changed") in {
        (e.get("actor"), e.get("method")) for e in lines}


def test_host_calls_of_the_admin_api_carry_their_request_id(
        srv: RunningServer, c: httpx.Client) -> None:
    r = c.get(f"{API}/os-hypervisors/detail")  # what each host has claimed: the scheduler's
    assert r.status_code == 200, r.text
    rid = request_id(r)
    assert ("scheduler", "host_usage") in {
        (e.get("actor"), e.get("method")) for e in wait_actors(srv, rid, {"api", "scheduler"})}
    r = c.put(f"{API}/os-services/disable", json={"host": HOST, "binary": "nova-compute"})
    assert r.status_code == 200, r.text
    rid = request_id(r)
    assert ("scheduler", "host_update") in {
        (e.get("actor"), e.get("method")) for e in wait_actors(srv, rid, {"api", "scheduler"})}
    c.put(f"{API}/os-services/enable", json={"host": HOST, "binary": "nova-compute"})


def test_periodic_tasks_have_request_ids_of_their_own(srv: RunningServer) -> None:
    """The service's own work (heartbeats, power sync) runs under system request ids."""
    beats = wait_for(lambda: [e for e in srv.log_events() if e.get("actor") == "conductor"
                              and e.get("method") == "service_report_many"], timeout=10)
    assert all(str(e.get("request_id", "")).startswith("req-") for e in beats)


def _image(c: httpx.Client) -> str:
    return str(c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"])
