"""Hostile input: malformed bodies and ids get a 4xx in the API's own error body, never a 5xx.

A generated battery: for each route family a valid body, then that body with each
value (one at a time, and a new key) replaced by something hostile - the wrong JSON
type, lone surrogates, NUL characters, integers past 64 bits, 10,000-level nesting,
over-long strings - and whole bodies that are not objects, not JSON, or not JSON by
Content-Type. Also: an over-size body is a 413, and a real fault (a table gone from
the database under the running service) is a JSON 500 whose traceback and request
id are in the log.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start

pytestmark = pytest.mark.backends("sqlite")

#: JSON fragments put in place of one value at a time (raw text: lone surrogates and
#: integers past 64 bits cannot be written by a JSON encoder that checks them).
HOSTILE = [
    "0", "-1", "1.5", "true", "null", "[]", "{}", '""',
    "99999999999999999999999", "-99999999999999999999999", "18446744073709551615",
    "1e400", '"\\ud800"', '"x\\udfff"', '"a\\u0000b"', '" padded "', '"\\u540d\\u524d"',
    '"' + "x" * 5000 + '"', "[" * 10000 + "]" * 10000, '{"a":' * 3000 + "1" + "}" * 3000,
]
#: Whole bodies in place of the valid one.
WHOLE = ["null", "[]", '"text"', "0", "{}", "{", "\xff\xfe", "[" * 10000 + "]" * 10000,
         '{"a": NaN}']
MARK = "\x01HOSTILE\x01"


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in ``value`` a hostile value can take (a value, or a new key)."""
    if isinstance(value, dict):
        yield (*path, "hostile_extra_key")
        for key, item in value.items():
            yield (*path, key)
            yield from leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from leaf_paths(item, (*path, index))


def with_hostile(template: Any, path: tuple[Any, ...], fragment: str) -> bytes:
    body = json.loads(json.dumps(template))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = MARK
    return json.dumps(body).replace(json.dumps(MARK), fragment).encode("utf-8",
                                                                        "surrogatepass")


def bodies(template: Any) -> Iterator[tuple[str, bytes, str]]:
    """(what, raw body, content type) of every malformed variant of ``template``."""
    for path in leaf_paths(template):
        for fragment in HOSTILE:
            yield f"{'/'.join(map(str, path))}={fragment[:24]}", \
                with_hostile(template, path, fragment), "application/json"
    for whole in WHOLE:
        yield f"body={whole[:24]}", whole.encode("utf-8", "surrogateescape"), \
            "application/json"
    yield "text/plain", json.dumps(template).encode(), "text/plain"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start(tmp_path_factory.mktemp("hostile"), config={
        "compute": {"hosts": 2}, "quota": {"instances": 1000, "cores": 1000,
                                           "ram": 1000000}})
    yield srv
    srv.stop()


def _targets(server: RunningServer, c: httpx.Client) -> list[tuple[str, str, Any, bool]]:
    """(method, path, valid body, with a token) of the routes the battery feeds."""
    image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
    server_id = c.post("/compute/v2.1/servers", json={"server": {
        "name": "target", "imageRef": image, "flavorRef": "1"}}).json()["server"]["id"]
    queued = c.post("/image/v2/images", json={"name": "q", "disk_format": "raw",
                                              "container_format": "bare"}).json()["id"]
    agg = c.post("/compute/v2.1/os-aggregates", json={"aggregate": {
        "name": "agg"}}).json()["aggregate"]["id"]
    project = c.get("/identity/v3/projects", params={"name": "admin"}).json()["projects"][0]
    user = c.post("/identity/v3/users", json={"user": {
        "name": "battery", "password": "battery-pass", "default_project_id": project["id"]}}
    ).json()["user"]["id"]
    compute = "/compute/v2.1"
    token = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "battery", "domain": {"name": "Default"}, "password": "wrong-guess"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    return [
        ("POST", "/identity/v3/auth/tokens", token, False),
        ("POST", f"{compute}/servers", {"server": {
            "name": "b", "imageRef": image, "flavorRef": "1", "metadata": {"k": "v"},
            "min_count": 1}, "os:scheduler_hints": {"group": "x"}}, True),
        ("PUT", f"{compute}/servers/{server_id}", {"server": {"name": "n",
                                                              "description": "d"}}, True),
        ("POST", f"{compute}/servers/{server_id}/action", {"reboot": {"type": "SOFT"}}, True),
        ("POST", f"{compute}/servers/{server_id}/action", {"createImage": {
            "name": "s", "metadata": {"k": "v"}}}, True),
        ("POST", f"{compute}/servers/{server_id}/action",
         {"os-getConsoleOutput": {"length": 5}}, True),
        ("POST", f"{compute}/servers/{server_id}/action", {"lock": {"locked_reason": "r"}},
         True),
        ("POST", f"{compute}/flavors", {"flavor": {
            "name": "f", "ram": 64, "vcpus": 1, "disk": 1, "swap": 0,
            "OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1.0}}, True),
        ("POST", f"{compute}/flavors/1/os-extra_specs", {"extra_specs": {"hw:x": "1"}}, True),
        ("POST", f"{compute}/os-keypairs", {"keypair": {"name": "k", "type": "ssh"}}, True),
        ("POST", f"{compute}/os-server-groups", {"server_group": {
            "name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 1}}},
         True),
        ("PUT", f"{compute}/os-quota-sets/{project['id']}", {"quota_set": {
            "instances": 1000, "cores": 1000}}, True),
        ("POST", f"{compute}/os-aggregates", {"aggregate": {
            "name": "a", "availability_zone": "z"}}, True),
        ("PUT", f"{compute}/os-aggregates/{agg}", {"aggregate": {"name": "a2"}}, True),
        ("POST", f"{compute}/os-aggregates/{agg}/action", {"set_metadata": {
            "metadata": {"k": "v"}}}, True),
        ("POST", f"{compute}/os-aggregates/{agg}/action", {"add_host": {
            "host": "compute-1"}}, True),
        ("POST", "/image/v2/images", {"name": "i", "disk_format": "raw",
                                      "container_format": "bare", "min_disk": 0,
                                      "tags": ["t"], "visibility": "private"}, True),
        ("PATCH", f"/image/v2/images/{queued}", [{"op": "replace", "path": "/name",
                                                  "value": "v"}], True),
        ("POST", "/identity/v3/projects", {"project": {"name": "p", "description": "d",
                                                       "enabled": True}}, True),
        ("PATCH", f"/identity/v3/users/{user}", {"user": {"name": "battery",
                                                          "enabled": True}}, True),
    ]


#: Ids in paths: past 64 bits, NUL, overlong, not ids at all.
BAD_IDS = ["99999999999999999999999", "-1", "0", "%00", "%ED%A0%80", "x" * 300, "%20",
           "..%2F..%2Fetc"]
ID_ROUTES = ["/compute/v2.1/os-aggregates/{}", "/compute/v2.1/servers/{}",
             "/compute/v2.1/flavors/{}", "/compute/v2.1/os-keypairs/{}",
             "/compute/v2.1/os-server-groups/{}", "/compute/v2.1/os-hypervisors/{}",
             "/image/v2/images/{}", "/identity/v3/projects/{}", "/identity/v3/users/{}",
             "/compute/v2.1/servers/{}/os-instance-actions"]


def test_malformed_requests_get_4xx_in_the_apis_error_body(server: RunningServer) -> None:
    started = time.monotonic()
    failures: list[str] = []
    tried = server_errors = 0
    c = server.client()
    for method, path, template, with_token in _targets(server, c):
        headers = {"X-Auth-Token": server.token()} if with_token else {}
        patch_type = "application/openstack-images-v2.1-json-patch"
        for what, raw, ctype in bodies(template):
            if method == "PATCH" and path.startswith("/image") and ctype == "application/json":
                ctype = patch_type
            r = c.request(method, path, content=raw, headers={
                **headers, "Content-Type": ctype, "X-Auth-Token": headers.get(
                    "X-Auth-Token", "")} if with_token else {"Content-Type": ctype})
            tried += 1
            if r.status_code >= 500:
                server_errors += 1
            if r.status_code >= 500 or (r.status_code >= 400 and not r.headers.get(
                    "content-type", "").startswith("application/json")):
                failures.append(f"{method} {path} {what}: {r.status_code} {r.text[:160]}")
    for route in ID_ROUTES:
        for bad in BAD_IDS:
            r = c.get(route.format(bad))
            tried += 1
            if r.status_code >= 500:
                server_errors += 1
                failures.append(f"GET {route.format(bad)}: {r.status_code} {r.text[:160]}")
    seconds = time.monotonic() - started
    print(f"\nhostile input: {tried} malformed requests, {server_errors} answered 5xx, "
          f"{seconds:.0f} s")
    assert not failures, f"{len(failures)} of {tried}:\n" + "\n".join(failures[:40])
    assert seconds < 300


def test_a_password_of_another_json_type_is_a_keystone_400(server: RunningServer) -> None:
    for password in (0, None, ["x"], {"a": 1}, True):
        r = httpx.post(f"{server.url}/identity/v3/auth/tokens", json={"auth": {"identity": {
            "methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": password}}}}})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == 400


def test_an_over_size_body_is_a_413_and_text_plain_a_415(server: RunningServer) -> None:
    c = server.client()
    big = {"server": {"name": "x" * 200_000, "imageRef": "x", "flavorRef": "1"}}
    r = c.post("/compute/v2.1/servers", json=big)
    assert r.status_code == 413, r.text
    assert r.json()["overLimit"]["code"] == 413
    # Announced or not, the body is not read past the limit.
    def chunks() -> Iterator[bytes]:
        yield b'{"server": {"name": "'
        for _ in range(40):
            yield b"x" * 8192
        yield b'"}}'

    r = c.post("/compute/v2.1/servers", content=chunks(),
               headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    r = c.post("/compute/v2.1/os-keypairs", content=json.dumps({"keypair": {"name": "t"}}),
               headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text
    assert r.json()["badMediaType"]["code"] == 415
    assert c.get("/compute/v2.1/os-keypairs/t").status_code == 404  # nothing was changed


def test_image_create_bodies_that_are_not_objects_are_refused(server: RunningServer) -> None:
    c = server.client()
    before = len(c.get("/image/v2/images", params={"limit": 1000}).json()["images"])
    for raw in ("null", "[]", '"x"', "1"):
        r = c.post("/image/v2/images", content=raw,
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["code"] == "400 Bad Request"
    assert len(c.get("/image/v2/images", params={"limit": 1000}).json()["images"]) == before


def test_a_nul_character_in_a_name_is_refused(server: RunningServer) -> None:
    c = server.client()
    r = c.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "a\x00b"}})
    assert r.status_code == 400, r.text
    r = c.post("/identity/v3/projects", json={"project": {"name": "p\x00"}})
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_projects_and_users_are_deleted_by_id_not_by_name(server: RunningServer) -> None:
    c = server.client()
    project = c.post("/identity/v3/projects", json={"project": {"name": "byname"}}).json()
    user = c.post("/identity/v3/users", json={"user": {"name": "byname-user",
                                                       "password": "pw-byname"}}).json()
    assert c.delete("/identity/v3/projects/byname").status_code == 404
    assert c.delete("/identity/v3/users/byname-user").status_code == 404
    assert c.delete(f"/identity/v3/projects/{project['project']['id']}").status_code == 204
    assert c.delete(f"/identity/v3/users/{user['user']['id']}").status_code == 204


def test_a_real_fault_is_a_json_500_with_its_traceback_and_request_id_in_the_log(
        server: RunningServer) -> None:
    c = server.client()
    assert c.get("/compute/v2.1/os-keypairs").status_code == 200
    db = sqlite3.connect(Path(server.state_path) / "novalite.sqlite")
    try:  # the table goes away under the running service: a real fault, not a mock
        db.execute("ALTER TABLE key_pairs RENAME TO key_pairs_gone")
        db.commit()
        r = c.get("/compute/v2.1/os-keypairs")
        assert r.status_code == 500, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["computeFault"]["code"] == 500
        request_id = r.headers["x-openstack-request-id"]
        assert request_id in r.json()["computeFault"]["message"]
    finally:
        db.execute("ALTER TABLE key_pairs_gone RENAME TO key_pairs")
        db.commit()
        db.close()
    assert c.get("/compute/v2.1/os-keypairs").status_code == 200
    logged = [e for e in server.log_events() if e.get("request_id") == request_id
              and e.get("event") == "unexpected error"]
    assert logged, server.log()[-3000:]
    assert "Traceback (most recent call last)" in logged[0]["exception"]
    assert "key_pairs" in logged[0]["exception"]


# -- requests that race: the quota and the delete hold under concurrency --
def test_concurrent_uploads_cannot_pass_the_image_storage_quota_together(
        tmp_path: Path) -> None:
    import threading

    srv = start(tmp_path / "state", config={"image": {"storage_quota_mb": 2}})
    try:
        c = srv.client()
        ids = [c.post("/image/v2/images", json={"name": f"u{i}", "disk_format": "raw",
                                                "container_format": "bare"}).json()["id"]
               for i in range(4)]
        # The demo image counts against admin's quota too: start from what is left.
        data = b"\x01" * (1536 * 1024)
        statuses: list[int] = []
        barrier = threading.Barrier(len(ids))

        def upload(image_id: str) -> None:
            with httpx.Client(base_url=srv.url, timeout=60,
                              headers={"X-Auth-Token": srv.token()}) as client:
                barrier.wait()
                statuses.append(client.put(
                    f"/image/v2/images/{image_id}/file", content=data,
                    headers={"Content-Type": "application/octet-stream"}).status_code)

        threads = [threading.Thread(target=upload, args=(i,)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert statuses.count(204) <= 1, statuses
        assert set(statuses) <= {204, 413}, statuses
        stored = sum(c.get(f"/image/v2/images/{i}").json().get("size") or 0 for i in ids)
        assert stored <= 2 * 1024 * 1024
        for i in ids:  # the refused ones are queued again, their data gone
            image = c.get(f"/image/v2/images/{i}").json()
            assert image["status"] in ("active", "queued"), image
    finally:
        srv.stop()


def test_concurrent_deletes_of_one_image_answer_one_204(server: RunningServer) -> None:
    import threading

    c = server.client()
    image_id = c.post("/image/v2/images", json={"name": "doomed"}).json()["id"]
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def delete() -> None:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"X-Auth-Token": server.token()}) as client:
            barrier.wait()
            statuses.append(client.delete(f"/image/v2/images/{image_id}").status_code)

    threads = [threading.Thread(target=delete) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [204] + [404] * 9, statuses
