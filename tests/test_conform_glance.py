"""Glance's metadata definitions catalog (``/v2/metadefs``) and tasks (``/v2/tasks``),
as Tempest and the clients use them, over real HTTP on both databases."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, wait_for
from tests.test_image_members import Person, make_people

NS = "/image/v2/metadefs/namespaces"


@pytest.fixture(scope="module")
def people(server: RunningServer) -> Iterator[dict[str, Person]]:
    found = make_people(server, (("mia", "m1", "member"), ("olaf", "m2", "member")))
    yield found
    for person in found.values():
        person.client.close()


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def test_namespaces_visibility_protection_and_contents(people: dict[str, Person]) -> None:
    admin, mia = people["admin"].client, people["mia"].client
    name = f"ns-{secrets.token_hex(3)}"
    types = ok(mia.get("/image/v2/metadefs/resource_types"))["resource_types"]
    assert "OS::Glance::Image" in [t["name"] for t in types]
    # admins write; a member may not
    assert mia.post(NS, json={"namespace": name}).status_code == 403
    assert admin.post(NS, json={"namespace": name, "bogus": 1}).status_code == 400
    assert admin.post(NS, json={"namespace": name, "visibility": "shared"}).status_code == 400
    body = ok(admin.post(NS, json={
        "namespace": name, "display_name": "Hardware", "visibility": "private",
        "protected": True, "resource_type_associations": [{"name": "OS::Nova::Flavor",
                                                           "prefix": "hw:"}],
        "properties": {"cpu_policy": {"title": "CPU policy", "type": "string",
                                      "enum": ["shared", "dedicated"]}}}), 201)
    assert body["self"] == f"/v2/metadefs/namespaces/{name}"
    assert body["visibility"] == "private" and body["protected"] is True
    assert admin.post(NS, json={"namespace": name}).status_code == 409
    # private: the member does not see it; public: everyone does
    assert mia.get(f"{NS}/{name}").status_code == 404
    assert name not in [n["namespace"] for n in ok(mia.get(NS))["namespaces"]]
    shown = ok(admin.get(f"{NS}/{name}"))
    assert shown["properties"]["cpu_policy"]["enum"] == ["shared", "dedicated"]
    assert shown["resource_type_associations"][0]["prefix"] == "hw:"
    r = admin.get(f"{NS}/{name}/properties/hw:cpu_policy",
                  params={"resource_type": "OS::Nova::Flavor"})
    assert ok(r)["name"] == "cpu_policy"
    ok(admin.put(f"{NS}/{name}", json={"namespace": name, "visibility": "public",
                                       "protected": True}))
    assert ok(mia.get(f"{NS}/{name}"))["visibility"] == "public"
    assert ok(mia.get(f"{NS}/{name}"))["owner"] == body["owner"]  # kept by the update
    listed = ok(mia.get(NS, params={"resource_types": "OS::Nova::Flavor"}))["namespaces"]
    assert name in [n["namespace"] for n in listed]
    # protected: neither it nor what it holds can be deleted
    assert admin.delete(f"{NS}/{name}").status_code == 403
    assert admin.delete(f"{NS}/{name}/properties/cpu_policy").status_code == 403
    ok(admin.put(f"{NS}/{name}", json={"namespace": name, "visibility": "public",
                                       "protected": False}))
    ok(admin.delete(f"{NS}/{name}"), 204)
    assert admin.get(f"{NS}/{name}").status_code == 404
    assert admin.get(f"{NS}/{name}/properties").status_code == 404


def test_objects_properties_tags_and_associations(people: dict[str, Person]) -> None:
    admin, mia = people["admin"].client, people["mia"].client
    name = f"ns-{secrets.token_hex(3)}"
    ok(admin.post(NS, json={"namespace": name, "visibility": "public"}), 201)
    try:
        # objects: create, rename, list, delete
        obj = ok(admin.post(f"{NS}/{name}/objects", json={
            "name": "cpu", "required": ["cores"],
            "properties": {"cores": {"title": "Cores", "type": "integer", "minimum": 1}}}),
            201)
        assert obj["self"] == f"/v2/metadefs/namespaces/{name}/objects/cpu"
        assert admin.post(f"{NS}/{name}/objects", json={"name": "cpu"}).status_code == 409
        bad = {"name": "x", "properties": {"p": {"title": "P", "type": "word"}}}
        assert admin.post(f"{NS}/{name}/objects", json=bad).status_code == 400
        assert mia.post(f"{NS}/{name}/objects", json={"name": "y"}).status_code == 403
        ok(admin.put(f"{NS}/{name}/objects/cpu", json={"name": "processor"}))
        names = [o["name"] for o in ok(mia.get(f"{NS}/{name}/objects"))["objects"]]
        assert names == ["processor"]
        assert ok(mia.get(f"{NS}/{name}/objects/processor"))["required"] == []
        ok(admin.delete(f"{NS}/{name}/objects/processor"), 204)
        assert mia.get(f"{NS}/{name}/objects/processor").status_code == 404
        # properties
        assert admin.post(f"{NS}/{name}/properties",
                          json={"name": "p", "type": "string"}).status_code == 400  # title
        ok(admin.post(f"{NS}/{name}/properties",
                      json={"name": "hv", "title": "Hypervisor", "type": "string",
                            "enum": ["kvm", "qemu"]}), 201)
        ok(admin.put(f"{NS}/{name}/properties/hv",
                     json={"name": "hv", "title": "HV", "type": "string"}))
        props = ok(mia.get(f"{NS}/{name}/properties"))["properties"]
        assert props == {"hv": {"title": "HV", "type": "string"}}
        ok(admin.delete(f"{NS}/{name}/properties/hv"), 204)
        assert ok(mia.get(f"{NS}/{name}/properties"))["properties"] == {}
        # tags: a list replaces them, one is added, renamed, deleted; then all of them
        ok(admin.post(f"{NS}/{name}/tags", json={"tags": [{"name": "a"}, {"name": "b"}]}),
           201)
        ok(admin.post(f"{NS}/{name}/tags", json={"tags": [{"name": "c"}]}), 201)
        ok(admin.post(f"{NS}/{name}/tags/d"), 201)
        ok(admin.put(f"{NS}/{name}/tags/d", json={"name": "e"}))
        assert ok(mia.get(f"{NS}/{name}/tags/e"))["name"] == "e"
        assert sorted(t["name"] for t in ok(mia.get(f"{NS}/{name}/tags"))["tags"]) == \
            ["c", "e"]
        ok(admin.delete(f"{NS}/{name}/tags/e"), 204)
        ok(admin.delete(f"{NS}/{name}/tags"), 204)
        assert ok(mia.get(f"{NS}/{name}/tags"))["tags"] == []
        # resource type associations (a new type joins the list)
        ok(admin.post(f"{NS}/{name}/resource_types", json={"name": "OS::Nova::Server"}), 201)
        ok(admin.post(f"{NS}/{name}/resource_types", json={"name": "My::Thing"}), 201)
        types = [t["name"] for t in ok(mia.get("/image/v2/metadefs/resource_types"))[
            "resource_types"]]
        assert "My::Thing" in types
        ok(admin.delete(f"{NS}/{name}/resource_types/OS::Nova::Server"), 204)
        assocs = ok(mia.get(f"{NS}/{name}/resource_types"))["resource_type_associations"]
        assert [a["name"] for a in assocs] == ["My::Thing"]
    finally:
        admin.delete(f"{NS}/{name}")


def test_tasks_are_an_admin_api_and_refuse_a_bad_uri_at_once(
        people: dict[str, Person]) -> None:
    admin, mia = people["admin"].client, people["mia"].client
    task = {"type": "import", "input": {
        "import_from": "http://127.0.0.1:9/disk.qcow2", "import_from_format": "qcow2",
        "image_properties": {"container_format": "bare", "disk_format": "qcow2",
                             "name": "t"}}}
    assert mia.post("/image/v2/tasks", json=task).status_code == 403
    assert mia.get("/image/v2/tasks").status_code == 403
    r = admin.post("/image/v2/tasks", json=task)  # loopback is refused by the filter
    assert r.status_code == 400 and "does not pass filtering" in r.text
    assert admin.post("/image/v2/tasks", json={**task, "type": "export"}).status_code == 400
    no_props = {"type": "import", "input": {"import_from": "http://example.invalid/x"}}
    assert admin.post("/image/v2/tasks", json=no_props).status_code == 400
    assert admin.get(f"/image/v2/tasks/{secrets.token_hex(8)}").status_code == 404
    assert ok(admin.get("/image/v2/schemas/task"))["name"] == "task"


def check_import_task(c: httpx.Client, base: str, files: dict[str, bytes]) -> None:
    """An import task makes its image from a URL; a URL that fails, a failed task.
    Called by ``tests/test_images.py``'s web-download test, whose service may fetch
    from the loopback web server at ``base`` (``files``: what it serves)."""
    files["/task.raw"] = b"\x01" * 4096
    r = c.post("/image/v2/tasks", json={"type": "import", "input": {
        "import_from": f"{base}/task.raw", "import_from_format": "raw",
        "image_properties": {"container_format": "bare", "disk_format": "raw",
                             "name": "from-task"}}})
    body = ok(r, 201)
    assert body["status"] in ("processing", "success") and body["type"] == "import"
    done = wait_for(lambda: (t := ok(c.get(f"/image/v2/tasks/{body['id']}")))[
        "status"] == "success" and t, 20)
    image = ok(c.get(f"/image/v2/images/{done['result']['image_id']}"))
    assert image["name"] == "from-task" and image["size"] == 4096
    assert body["id"] in [t["id"] for t in ok(c.get("/image/v2/tasks"))["tasks"]]
    r = c.post("/image/v2/tasks", json={"type": "import", "input": {
        "import_from": f"{base}/missing", "import_from_format": "raw",
        "image_properties": {"container_format": "bare", "disk_format": "raw"}}})
    failed = wait_for(lambda: (t := ok(c.get(f"/image/v2/tasks/{ok(r, 201)['id']}")))[
        "status"] == "failure" and t, 20)
    assert "404" in failed["message"]
