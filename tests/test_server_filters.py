"""``GET /servers`` filters and sorting as Nova's, over real HTTP on both databases.

Every filter narrows; a filter a non-admin may not use is ignored (or refused where
Nova refuses it); unknown parameters are dropped below 2.75 and refused from 2.75.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer
from tests.helpers import boot, wait_gone, wait_status

API = "/compute/v2.1"
PASSWORD = "filter-pass-1"


@dataclass
class Member:
    project_id: str
    user_id: str
    client: httpx.Client


def make_member(server: RunningServer, tag: str) -> Member:
    """A member of a new project, with a client at 2.96."""
    admin = server.client()
    r = admin.post("/identity/v3/projects", json={"project": {"name": f"flt-{tag}"}})
    assert r.status_code == 201, r.text
    pid = r.json()["project"]["id"]
    r = admin.post("/identity/v3/users", json={"user": {
        "name": f"flt-{tag}", "password": PASSWORD, "default_project_id": pid}})
    uid = r.json()["user"]["id"]
    role = admin.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
    assert admin.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/{role}"
                     ).status_code == 204
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": f"flt-{tag}", "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": f"flt-{tag}", "domain": {"name": "Default"}}}}}
    token = httpx.post(f"{server.url}/identity/v3/auth/tokens", json=body, timeout=10)
    assert token.status_code == 201, token.text
    client = httpx.Client(base_url=server.url, timeout=30, headers={
        "X-Auth-Token": token.headers["x-subject-token"],
        "OpenStack-API-Version": "compute 2.96"})
    return Member(pid, uid, client)


@pytest.fixture(scope="module")
def fleet(server: RunningServer) -> Iterator[dict[str, Any]]:
    """Three servers of the admin's and one of a member's, with distinct attributes."""
    c = server.client()
    tag = secrets.token_hex(3)
    member = make_member(server, tag)
    prefix = f"flt{tag}"
    a = boot(c, f"{prefix}-a", tags=["red", "blue"], accessIPv4="192.0.2.10",
             hostname=f"{prefix}-host-a", description="first one")
    b = boot(c, f"{prefix}-b", tags=["red"])
    d = boot(c, f"{prefix}-d")
    m = boot(member.client, f"{prefix}-m")
    for sid in (a, b, d):
        wait_status(c, sid, "ACTIVE")
    wait_status(member.client, m, "ACTIVE")
    assert c.post(f"{API}/servers/{b}/action", json={"lock": None}).status_code == 202
    yield {"c": c, "member": member, "prefix": prefix, "a": a, "b": b, "d": d, "m": m}
    c.post(f"{API}/servers/{b}/action", json={"unlock": None})
    for sid in (a, b, d, m):
        c.delete(f"{API}/servers/{sid}")
    for sid in (a, b, d, m):
        wait_gone(c, sid)
    member.client.close()


def ids(client: httpx.Client, detail: bool = False, version: str | None = None,
        **params: Any) -> list[str]:
    headers = {"OpenStack-API-Version": f"compute {version}"} if version else {}
    r = client.get(f"{API}/servers{'/detail' if detail else ''}", params=params,
                   headers=headers)
    assert r.status_code == 200, r.text
    return [s["id"] for s in r.json()["servers"]]


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(next(iter(r.json().values()))["message"])


def test_tag_filters_narrow(fleet: dict[str, Any]) -> None:
    c, name = fleet["c"], f"^{fleet['prefix']}-"
    a, b, d = fleet["a"], fleet["b"], fleet["d"]
    assert ids(c, name=name, tags="red,blue") == [a]
    assert set(ids(c, name=name, tags="red")) == {a, b}
    assert ids(c, name=name, **{"tags-any": "blue,green"}) == [a]
    assert set(ids(c, name=name, **{"not-tags": "red,blue"})) == {b, d}
    assert ids(c, name=name, **{"not-tags-any": "red"}) == [d]
    # below 2.26 there is no such filter: it is dropped, as in Nova
    assert set(ids(c, version="2.25", name=name, tags="blue")) == {a, b, d}


def test_attribute_filters_narrow(fleet: dict[str, Any]) -> None:
    c, name = fleet["c"], f"^{fleet['prefix']}-"
    a, b, d = fleet["a"], fleet["b"], fleet["d"]
    assert ids(c, name=name, locked="true") == [b]
    assert set(ids(c, name=name, locked="0")) == {a, d}
    assert "Unrecognized value 'maybe'" in error(
        c.get(f"{API}/servers", params={"locked": "maybe"}), 400)
    assert ids(c, name=name, uuid=a) == [a]
    assert ids(c, name=name, hostname="host-a$") == [a]
    assert ids(c, name=name, description="^first") == [a]
    assert ids(c, name=name, access_ip_v4=r"192\.0\.2\.10") == [a]
    assert set(ids(c, name=name, flavor="1")) == {a, b, d}
    assert ids(c, name=name, flavor="no-such-flavor") == []
    assert set(ids(c, name=name, vm_state="active")) == {a, b, d}
    assert ids(c, name=name, vm_state="stopped") == []
    assert set(ids(c, name=name, power_state="1")) == {a, b, d}
    assert ids(c, name=name, key_name=".") == []
    detail = c.get(f"{API}/servers/{a}").json()["server"]
    address = next(iter(detail["addresses"].values()))[0]["addr"]
    assert ids(c, name=name, ip=address.replace(".", r"\.") + "$") == [a]
    host = detail["OS-EXT-SRV-ATTR:host"]
    on_host = ids(c, name=name, host=host)
    assert a in on_host and all(
        c.get(f"{API}/servers/{s}").json()["server"]["OS-EXT-SRV-ATTR:host"] == host
        for s in on_host)
    reservation = detail["OS-EXT-SRV-ATTR:reservation_id"]
    assert ids(c, name=name, reservation_id=reservation) == [a]


def test_changes_before_and_since(fleet: dict[str, Any]) -> None:
    c, name = fleet["c"], f"^{fleet['prefix']}-"
    past = "2000-01-01T00:00:00Z"
    assert ids(c, name=name, **{"changes-before": past}) == []
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert len(ids(c, name=name, **{"changes-before": future})) == 3
    assert "less than or equal to changes-before" in error(c.get(
        f"{API}/servers", params={"changes-since": future, "changes-before": past}), 400)
    assert "is not a 'date-time'" in error(
        c.get(f"{API}/servers", params={"changes-before": "yesterday"}), 400)


def test_sorting_as_nova(fleet: dict[str, Any]) -> None:
    c, name = fleet["c"], f"^{fleet['prefix']}-"
    a, b, d = fleet["a"], fleet["b"], fleet["d"]
    assert ids(c, name=name, sort_key="display_name", sort_dir="asc") == [a, b, d]
    assert ids(c, name=name, sort_key="display_name", sort_dir="desc") == [d, b, a]
    # two keys: locked first (2.73), then the name
    assert ids(c, name=name, sort_key=["locked", "display_name"],
               sort_dir=["desc", "asc"]) == [b, a, d]
    assert "is not one of" in error(
        c.get(f"{API}/servers", params={"sort_key": "bogus"}), 400)
    assert "Unknown sort direction" in error(c.get(f"{API}/servers", params={
        "sort_key": "display_name", "sort_dir": "up"}), 400)
    # a key Nova ignores below 2.75 and refuses from 2.75
    assert set(ids(c, version="2.74", name=name, sort_key="vcpus")) == {a, b, d}
    r = c.get(f"{API}/servers", params={"sort_key": "vcpus"},
              headers={"OpenStack-API-Version": "compute 2.75"})
    assert r.status_code == 400
    # paging follows the sort order
    first = c.get(f"{API}/servers", params={"name": name, "sort_key": "display_name",
                                              "sort_dir": "asc", "limit": 2}).json()
    assert [s["id"] for s in first["servers"]] == [a, b]
    assert first["servers_links"][0]["rel"] == "next"
    assert ids(c, name=name, sort_key="display_name", sort_dir="asc", marker=b) == [d]
    assert "marker [nope] not found" in error(
        c.get(f"{API}/servers", params={"marker": "nope"}), 400)


def test_unknown_parameters_dropped_below_275_refused_from_275(fleet: dict[str, Any]) -> None:
    c, name = fleet["c"], f"^{fleet['prefix']}-"
    assert len(ids(c, version="2.74", name=name, foo="bar")) == 3
    r = c.get(f"{API}/servers", params={"foo": "bar"},
              headers={"OpenStack-API-Version": "compute 2.75"})
    assert error(r, 400) == "Additional properties are not allowed ('foo' was unexpected)"
    assert error(c.get(f"{API}/servers", params={"metadata": "x"}), 400) == \
        "Invalid filter field: metadata."


def test_all_tenants_and_project_filters(fleet: dict[str, Any]) -> None:
    c, member, name = fleet["c"], fleet["member"], f"^{fleet['prefix']}-"
    a, m = fleet["a"], fleet["m"]
    assert m not in ids(c, name=name)
    everyone = ids(c, name=name, all_tenants="")  # an empty value means true
    assert {a, m} <= set(everyone)
    assert ids(c, name=name, all_tenants="1", project_id=member.project_id) == [m]
    assert ids(c, name=name, all_tenants="1", tenant_id=member.project_id) == [m]
    assert ids(c, detail=True, name=name, all_tenants="true",
               user_id=member.user_id) == [m]
    # without all_tenants a project filter is the caller's own project
    assert m not in ids(c, name=name, project_id=member.project_id)
    assert set(ids(c, name=name, all_tenants="0")) == set(ids(c, name=name))
    assert "Unrecognized value" in error(
        c.get(f"{API}/servers", params={"all_tenants": "perhaps"}), 400)


def test_non_admin_filters_follow_novas_rules(fleet: dict[str, Any]) -> None:
    member, name, m = fleet["member"].client, f"^{fleet['prefix']}-", fleet["m"]
    for path in ("/servers", "/servers/detail"):
        r = member.get(f"{API}{path}", params={"all_tenants": "1"})
        assert "get_all_tenants" in error(r, 403)
    # admin-only filters are ignored for a member
    assert ids(member, name=name, host="no-such-host") == [m]
    assert ids(member, name=name, uuid=fleet["a"]) == [m]
    # user_id is a member's filter from 2.83, hostname from 2.90
    assert ids(member, version="2.82", name=name, user_id="someone-else") == [m]
    assert ids(member, version="2.83", name=name, user_id="someone-else") == []
    assert ids(member, version="2.89", name=name, hostname="nothing-like-it") == [m]
    assert ids(member, version="2.90", name=name, hostname="nothing-like-it") == []
    assert "Only administrators can sort servers by host" in error(
        member.get(f"{API}/servers", params={"sort_key": "host"}), 403)
    assert "Only administrators may list deleted instances" in error(
        member.get(f"{API}/servers", params={"status": "DELETED"}), 403)


def test_deleted_servers_for_admins(fleet: dict[str, Any]) -> None:
    c = fleet["c"]
    sid = boot(c, f"{fleet['prefix']}-gone")
    wait_status(c, sid, "ACTIVE")
    c.delete(f"{API}/servers/{sid}")
    wait_gone(c, sid)
    assert sid in ids(c, deleted="true", name=f"{fleet['prefix']}-gone")
    assert sid in ids(c, status="DELETED", name=f"{fleet['prefix']}-gone")
    assert sid not in ids(c, name=f"{fleet['prefix']}-gone")
