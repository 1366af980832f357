"""The OpenAPI documents (``<mount>/openapi.json``) and the fuzzer that runs on them.

The documents are generated from the routers, so every route is in them, and a
body is described by the schema that validates it: what the document says a body
must be is what the service refuses with a 400 otherwise. schemathesis then
fuzzes every operation of every mount against a service of the test's own over
HTTP with an admin token, on a small budget (the bench, bench/fuzz_api.py, has a
larger one): the service's log must show no 5xx answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from novalite.api.app import MOUNTS
from novalite.api.flavors import FLAVOR_CREATE_V255
from novalite.api.schemas import server_create
from novalite.testing.fuzz import fuzz, schemathesis_bin
from novalite.testing.server import RunningServer, start


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start(tmp_path_factory.mktemp("openapi"), timeout=120)  # a loaded machine
    try:
        yield server
    finally:
        server.stop()


def _operations(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def test_each_mount_documents_every_route(srv: RunningServer) -> None:
    for prefix, routers in MOUNTS:
        r = httpx.get(f"{srv.url}{prefix}/openapi.json", timeout=30)
        assert r.status_code == 200, prefix
        doc = r.json()
        assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": prefix}]
        expected = {(s.method, re.sub(r"\{(\w+):\w+\}", r"{\1}", s.path))
                    for router in routers for s in [*router.specs, *router.public_specs]}
        assert _operations(doc) == expected, prefix
        for path, ops in doc["paths"].items():
            for op in ops.values():
                named = {p["name"] for p in op["parameters"] if p["in"] == "path"}
                assert named == set(re.findall(r"\{(\w+)\}", path)), path


def test_a_body_is_described_by_the_schema_that_validates_it(srv: RunningServer) -> None:
    doc = httpx.get(f"{srv.url}/compute/openapi.json", timeout=30).json()
    create = doc["paths"]["/v2.1/flavors"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema == FLAVOR_CREATE_V255  # the schema of the highest microversion
    boot = doc["paths"]["/v2.1/servers"]["post"]["requestBody"]["content"]
    assert boot["application/json"]["schema"] == server_create((True,) * 8)
    headers = {p["name"] for p in create["parameters"] if p["in"] == "header"}
    assert headers == {"OpenStack-API-Version", "X-OpenStack-Nova-API-Version"}
    assert create["security"] == [{"token": []}]
    actions = doc["paths"]["/v2.1/servers/{server_id}/action"]["post"]["requestBody"]
    names = {next(iter(choice["required"]))
             for choice in actions["content"]["application/json"]["schema"]["oneOf"]}
    assert {"os-stop", "reboot", "resize", "createImage"} <= names
    token = doc["paths"]["/v2.1/flavors"]["get"]
    assert token["security"] == [{"token": []}]
    # What the schema refuses, the service refuses, with Nova's 400.
    with srv.client() as c:
        r = c.post("/compute/v2.1/flavors", json={"flavor": {
            "name": "x", "ram": 1, "vcpus": 1, "disk": 0, "color": "red"}})
        assert r.status_code == 400
        assert "color" in r.json()["badRequest"]["message"]
    identity = httpx.get(f"{srv.url}/identity/openapi.json", timeout=30).json()
    assert identity["paths"]["/v3/auth/tokens"]["post"]["security"] == []
    # A route given its schema with the document: Keystone's project fields are typed
    # ("enabled": "no" was taken as true before).
    with srv.client() as c:
        r = c.post("/identity/v3/projects", json={"project": {"name": "typed",
                                                              "enabled": "no"}})
        assert r.status_code == 400 and "enabled" in r.json()["error"]["message"]
        assert c.get("/identity/v3/projects", params={"name": "typed"}).json()[
            "projects"] == []


def test_the_fuzzer_finds_no_server_error_on_any_route(srv: RunningServer) -> None:
    """schemathesis over every operation of every mount, two generated requests each
    (plus what it tries on top): the service's log shows no 5xx."""
    schemathesis_bin()  # installed with the test extras: a missing one is a failure
    result = fuzz(srv, max_examples=2, seed=18, timeout=300)
    documented = sum(len(ops) for prefix, _ in MOUNTS for ops in httpx.get(
        f"{srv.url}{prefix}/openapi.json", timeout=30).json()["paths"].values())
    # Every operation (242 at this writing); a little slack for one schemathesis cannot
    # serialize in some version of it.
    assert result.operations >= documented - 2, result.output[-3000:]
    assert result.server_errors == [], result.server_errors
    assert result.requests >= result.operations
    srv.token(fresh=True)  # a fuzzed identity request may have revoked the old one
    assert httpx.get(f"{srv.url}/", timeout=10).status_code in (200, 300)
    print(f"fuzzer: {result.operations} operations, {result.requests} requests, "
          f"{len(result.server_errors)} server errors, {result.seconds:.1f} s")
