"""The compute API's administrative and informational resources over HTTP, as Nova
answers them: limits, quota classes, os-hosts, hypervisors, usage, the usage audit
log, extensions, services, the version documents and the /images proxy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from novalite.testing.server import RunningServer
from tests.helpers import boot, demo_image, wait_gone, wait_status
from tests.test_flavors import Member, make_member, mv


@pytest.fixture
def c(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def member(server: RunningServer) -> Iterator[Member]:
    m = make_member(server)
    yield m
    m.client.close()


def test_limits_per_microversion(c: httpx.Client, member: Member) -> None:
    old = c.get("/compute/v2.1/limits", headers=mv("2.1")).json()["limits"]
    assert old["rate"] == []
    absolute = old["absolute"]
    for name in ("maxImageMeta", "maxPersonality", "maxPersonalitySize", "maxSecurityGroups",
                 "maxTotalFloatingIps", "totalFloatingIpsUsed", "maxServerMeta"):
        assert name in absolute, name
    assert absolute["maxImageMeta"] == absolute["maxServerMeta"]
    at236 = c.get("/compute/v2.1/limits", headers=mv("2.36")).json()["limits"]["absolute"]
    assert "maxTotalFloatingIps" not in at236 and "maxImageMeta" in at236
    at239 = c.get("/compute/v2.1/limits", headers=mv("2.39")).json()["limits"]["absolute"]
    assert "maxImageMeta" not in at239 and "maxPersonality" in at239
    at257 = c.get("/compute/v2.1/limits", headers=mv("2.57")).json()["limits"]["absolute"]
    assert "maxPersonality" not in at257 and "maxPersonalitySize" not in at257
    # tenant_id: admins only; unknown parameters refused from 2.75
    other = c.get("/compute/v2.1/limits", params={"tenant_id": member.project_id}).json()
    assert other["limits"]["absolute"]["totalInstancesUsed"] == 0
    assert member.client.get("/compute/v2.1/limits", params={"tenant_id": member.project_id}
                             ).status_code == 403
    assert member.client.get("/compute/v2.1/limits").status_code == 200
    assert c.get("/compute/v2.1/limits", params={"x": "1"}, headers=mv("2.74")
                 ).status_code == 200
    assert c.get("/compute/v2.1/limits", params={"x": "1"}, headers=mv("2.75")
                 ).status_code == 400


def test_quota_class_default_is_every_projects_default(c: httpx.Client, member: Member
                                                       ) -> None:
    url = "/compute/v2.1/os-quota-class-sets/default"
    shown = c.get(url, headers=mv("2.1")).json()["quota_class_set"]
    assert shown["id"] == "default" and "injected_files" in shown
    assert "server_groups" not in shown  # before 2.50
    at257 = c.get(url, headers=mv("2.57")).json()["quota_class_set"]
    assert "injected_files" not in at257 and "fixed_ips" not in at257
    assert "server_groups" in at257
    before = at257["key_pairs"]
    r = c.put(url, json={"quota_class_set": {"key_pairs": before + 100}}, headers=mv("2.57"))
    assert r.status_code == 200 and r.json()["quota_class_set"]["key_pairs"] == before + 100
    assert "id" not in r.json()["quota_class_set"]
    defaults = c.get(f"/compute/v2.1/os-quota-sets/{member.project_id}/defaults").json()
    assert defaults["quota_set"]["key_pairs"] == before + 100
    mine = c.get(f"/compute/v2.1/os-quota-sets/{member.project_id}").json()["quota_set"]
    assert mine["key_pairs"] == before + 100
    # refused: a resource gone at this microversion, a bad value, a non-admin
    for body in ({"fixed_ips": 1}, {"key_pairs": -2}, {"key_pairs": "x"}, {"nope": 1}):
        assert c.put(url, json={"quota_class_set": body}, headers=mv("2.57")
                     ).status_code == 400, body
    assert member.client.get(url).status_code == 403
    c.put(url, json={"quota_class_set": {"key_pairs": before}}, headers=mv("2.57"))
    assert c.get(url).json()["quota_class_set"]["key_pairs"] == before


def test_services_list_every_service_novalite_runs(c: httpx.Client) -> None:
    services = c.get("/compute/v2.1/os-services").json()["services"]
    binaries = {s["binary"] for s in services}
    assert {"nova-compute", "nova-conductor", "nova-scheduler"} <= binaries
    control = [s for s in services if s["binary"] != "nova-compute"]
    assert all(s["zone"] == "internal" and s["state"] == "up" for s in control)
    only = c.get("/compute/v2.1/os-services", params={"binary": "nova-scheduler"}).json()
    assert [s["binary"] for s in only["services"]] == ["nova-scheduler"]
    assert c.get("/compute/v2.1/os-services", params={"colour": "x"}).status_code == 400


def test_os_hosts_until_243(c: httpx.Client, member: Member) -> None:
    hosts = c.get("/compute/v2.1/os-hosts", headers=mv("2.42")).json()["hosts"]
    by_service = {(h["host_name"], h["service"]) for h in hosts}
    assert {("compute-a", "compute"), ("compute-b", "compute")} <= by_service
    assert {h["service"] for h in hosts} >= {"conductor", "scheduler"}
    zoned = c.get("/compute/v2.1/os-hosts", params={"zone": "nova"}, headers=mv("2.42")).json()
    assert {h["zone"] for h in zoned["hosts"]} == {"nova"}
    assert c.get("/compute/v2.1/os-hosts", params={"zone": "nowhere"}, headers=mv("2.42")
                 ).json() == {"hosts": []}
    shown = c.get("/compute/v2.1/os-hosts/compute-a", headers=mv("2.42")).json()["host"]
    projects = [r["resource"]["project"] for r in shown]
    assert projects[:3] == ["(total)", "(used_now)", "(used_max)"]
    assert shown[0]["resource"]["cpu"] > 0
    assert c.get("/compute/v2.1/os-hosts/nowhere", headers=mv("2.42")).status_code == 404
    assert c.get("/compute/v2.1/os-hosts", headers=mv("2.43")).status_code == 404
    assert member.client.get("/compute/v2.1/os-hosts").status_code == 403
    # enabling and power actions: Nova's checks, then "not supported" as libvirt answers
    url = "/compute/v2.1/os-hosts/compute-a"
    assert c.put(url, json={"status": "sometimes"}, headers=mv("2.42")).status_code == 400
    assert c.put(url, json={}, headers=mv("2.42")).status_code == 400
    assert c.put("/compute/v2.1/os-hosts/nowhere", json={"status": "enable"},
                 headers=mv("2.42")).status_code == 404
    assert c.put(url, json={"status": "enable"}, headers=mv("2.42")).status_code == 501
    assert c.get(f"{url}/reboot", headers=mv("2.42")).status_code == 501
    assert c.get("/compute/v2.1/os-hosts/nowhere/startup", headers=mv("2.42")
                 ).status_code == 404


def test_hypervisors_search_servers_uptime_and_ids(c: httpx.Client) -> None:
    sid = boot(c, "hyp-1")
    server = wait_status(c, sid, "ACTIVE")
    host = server["OS-EXT-SRV-ATTR:host"]
    old = mv("2.52")
    listed = c.get("/compute/v2.1/os-hypervisors", headers=old).json()["hypervisors"]
    assert all(isinstance(h["id"], int) for h in listed)
    hid = [h["id"] for h in listed if h["hypervisor_hostname"] == host][0]
    uptime = c.get(f"/compute/v2.1/os-hypervisors/{hid}/uptime", headers=old).json()
    assert " up " in uptime["hypervisor"]["uptime"]
    found = c.get(f"/compute/v2.1/os-hypervisors/{host}/search", headers=old).json()
    assert [h["hypervisor_hostname"] for h in found["hypervisors"]] == [host]
    assert c.get("/compute/v2.1/os-hypervisors/nowhere/search", headers=old).status_code == 404
    with_servers = c.get(f"/compute/v2.1/os-hypervisors/{host}/servers", headers=old).json()
    assert sid in {s["uuid"] for s in with_servers["hypervisors"][0]["servers"]}
    assert c.get("/compute/v2.1/os-hypervisors/x/uptime", headers=old).status_code == 404
    # 2.53: uuids, the search and the servers as query parameters
    new = mv("2.53")
    listed = c.get("/compute/v2.1/os-hypervisors", params={
        "hypervisor_hostname_pattern": host, "with_servers": "true"}, headers=new).json()
    assert len(listed["hypervisors"]) == 1
    assert sid in {s["uuid"] for s in listed["hypervisors"][0]["servers"]}
    uuid = listed["hypervisors"][0]["id"]
    assert c.get(f"/compute/v2.1/os-hypervisors/{uuid}", headers=new).status_code == 200
    assert c.get(f"/compute/v2.1/os-hypervisors/{hid}", headers=new).status_code == 400
    assert c.get(f"/compute/v2.1/os-hypervisors/{host}/search", headers=new).status_code == 404
    for params in ({"hypervisor_hostname_pattern": host, "limit": 1}, {"colour": "x"},
                   {"with_servers": "maybe"}):
        assert c.get("/compute/v2.1/os-hypervisors", params=params, headers=new
                     ).status_code == 400, params
    page = c.get("/compute/v2.1/os-hypervisors", params={"limit": 1}, headers=new).json()
    assert len(page["hypervisors"]) == 1 and "hypervisors_links" in page
    # 2.88: uptime in the detail, no resource figures, no /uptime and no statistics
    detail = c.get(f"/compute/v2.1/os-hypervisors/{uuid}", headers=mv("2.88")).json()
    assert " up " in detail["hypervisor"]["uptime"] and "vcpus" not in detail["hypervisor"]
    assert c.get(f"/compute/v2.1/os-hypervisors/{uuid}/uptime", headers=mv("2.88")
                 ).status_code == 404
    c.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(c, sid)


def test_simple_tenant_usage(c: httpx.Client, member: Member, server: RunningServer) -> None:
    sid = boot(c, "usage-1")
    wait_status(c, sid, "ACTIVE")
    admin_project = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["tenant_id"]
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    listed = c.get("/compute/v2.1/os-simple-tenant-usage", params={
        "start": start, "end": end, "detailed": "1"}).json()["tenant_usages"]
    mine = [u for u in listed if u["tenant_id"] == admin_project][0]
    assert sid in {s["instance_id"] for s in mine["server_usages"]}
    assert mine["total_hours"] > 0
    brief = c.get("/compute/v2.1/os-simple-tenant-usage", params={"start": start, "end": end}
                  ).json()["tenant_usages"]
    assert all("server_usages" not in u for u in brief)
    shown = c.get(f"/compute/v2.1/os-simple-tenant-usage/{admin_project}", params={
        "start": start, "end": end}).json()["tenant_usage"]
    assert sid in {s["instance_id"] for s in shown["server_usages"]}
    # a member reads its own project's usage only, and lists nothing
    assert member.client.get(f"/compute/v2.1/os-simple-tenant-usage/{member.project_id}"
                             ).json() == {"tenant_usage": {}}
    assert member.client.get(f"/compute/v2.1/os-simple-tenant-usage/{admin_project}"
                             ).status_code == 403
    assert member.client.get("/compute/v2.1/os-simple-tenant-usage").status_code == 403
    assert c.get("/compute/v2.1/os-simple-tenant-usage/", params={"start": start}
                 ).status_code == 404
    # bad periods; paging from 2.40
    assert c.get("/compute/v2.1/os-simple-tenant-usage", params={"start": "yesterday"}
                 ).status_code == 400
    assert c.get("/compute/v2.1/os-simple-tenant-usage", params={"start": end, "end": start}
                 ).status_code == 400
    page = c.get("/compute/v2.1/os-simple-tenant-usage", params={
        "start": start, "end": end, "limit": 1}, headers=mv("2.40")).json()
    assert "tenant_usages_links" in page
    assert c.get("/compute/v2.1/os-simple-tenant-usage", params={"x": 1}, headers=mv("2.75")
                 ).status_code == 400
    c.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(c, sid)


def test_usage_audit_log(c: httpx.Client, member: Member) -> None:
    logs = c.get("/compute/v2.1/os-instance_usage_audit_log").json()
    log = logs["instance_usage_audit_logs"]
    assert log["num_hosts"] == log["num_hosts_not_run"] >= 2
    assert log["overall_status"] == f"0 of {log['num_hosts']} hosts done. 0 errors."
    one = c.get("/compute/v2.1/os-instance_usage_audit_log/2024-03-15 10:00:00").json()
    assert one["instance_usage_audit_log"]["period_beginning"] == "2024-02-01 00:00:00"
    assert one["instance_usage_audit_log"]["period_ending"] == "2024-03-01 00:00:00"
    assert c.get("/compute/v2.1/os-instance_usage_audit_log/not-a-date").status_code == 400
    assert member.client.get("/compute/v2.1/os-instance_usage_audit_log").status_code == 403


def test_extensions_and_version_documents(c: httpx.Client, server: RunningServer) -> None:
    extensions = c.get("/compute/v2.1/extensions").json()["extensions"]
    aliases = {e["alias"] for e in extensions}
    assert {"OS-DCF", "os-hypervisors", "os-flavor-access"} <= aliases
    assert c.get("/compute/v2.1/extensions/OS-DCF").json()["extension"]["name"] == "DiskConfig"
    assert c.get("/compute/v2.1/extensions/nope").status_code == 404
    listed = httpx.get(f"{server.url}/compute/").json()["versions"]
    assert [v["id"] for v in listed] == ["v2.0", "v2.1"]
    assert listed[0]["links"][0]["href"].endswith("/compute/v2/")
    v2 = httpx.get(f"{server.url}/compute/v2/").json()["version"]
    assert v2["id"] == "v2.0" and v2["status"] == "DEPRECATED"


def test_images_proxy_until_236(c: httpx.Client, member: Member) -> None:
    image_id = demo_image(c)
    old = mv("2.35")
    listed = c.get("/compute/v2.1/images", headers=old).json()["images"]
    assert image_id in {i["id"] for i in listed}
    assert {link["rel"] for link in listed[0]["links"]} == {"self", "bookmark", "alternate"}
    detail = c.get("/compute/v2.1/images/detail", params={"status": "ACTIVE"}, headers=old
                   ).json()["images"]
    assert all(i["status"] == "ACTIVE" and i["progress"] == 100 for i in detail)
    shown = c.get(f"/compute/v2.1/images/{image_id}", headers=old).json()["image"]
    assert shown["id"] == image_id and "OS-EXT-IMG-SIZE:size" in shown
    assert c.get("/compute/v2.1/images/detail", params={"name": "no-such-image"},
                 headers=old).json() == {"images": []}
    page = c.get("/compute/v2.1/images", params={"limit": 1}, headers=old).json()
    assert len(page["images"]) == 1 and "images_links" in page
    assert c.get("/compute/v2.1/images", params={"limit": "x"}, headers=old).status_code == 400
    assert c.get("/compute/v2.1/images/nope", headers=old).status_code == 404
    assert c.delete("/compute/v2.1/images/", headers=old).status_code == 404
    assert c.get("/compute/v2.1/images", headers=mv("2.36")).status_code == 404
    # a snapshot: its metadata through the proxy (until 2.38), then deleted through it
    sid = boot(c, "img-1")
    wait_status(c, sid, "ACTIVE")
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"createImage": {"name": "snap-1"}})
    assert r.status_code == 202, r.text
    snap = r.json()["image_id"]  # 2.45: in the body
    shot = c.get(f"/compute/v2.1/images/{snap}", headers=old).json()["image"]
    assert shot["server"]["id"] == sid
    by_server = c.get("/compute/v2.1/images", params={"server": sid}, headers=old).json()
    assert [i["id"] for i in by_server["images"]] == [snap]
    meta = f"/compute/v2.1/images/{snap}/metadata"
    r = c.post(meta, json={"metadata": {"colour": "blue"}}, headers=old)
    assert r.status_code == 200 and r.json()["metadata"]["colour"] == "blue"
    assert c.get(f"{meta}/colour", headers=old).json() == {"meta": {"colour": "blue"}}
    assert c.put(f"{meta}/colour", json={"meta": {"colour": "red"}}, headers=old
                 ).json() == {"meta": {"colour": "red"}}
    assert c.put(f"{meta}/colour", json={"meta": {"size": "1"}}, headers=old).status_code == 400
    assert c.get(meta, headers=old).json()["metadata"]["colour"] == "red"
    assert c.delete(f"{meta}/colour", headers=old).status_code == 204
    assert c.delete(f"{meta}/colour", headers=old).status_code == 404
    assert c.get(meta, headers=mv("2.39")).status_code == 404
    assert member.client.delete(f"/compute/v2.1/images/{snap}", headers=old).status_code in (
        403, 404)
    assert c.delete(f"/compute/v2.1/images/{snap}", headers=old).status_code == 204
    assert c.get(f"/compute/v2.1/images/{snap}", headers=old).status_code == 404
    c.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(c, sid)
