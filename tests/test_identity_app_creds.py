"""Keystone v3 beyond passwords, over real HTTP: application credentials (made,
listed, used to sign in with a subset of roles, expiring, deleted with their tokens),
EC2 credentials, a user's projects, the catalog, and role assignments with names
(``openstack role assignment list --names``).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import ADMIN_PASSWORD, RunningServer
from tests.test_image_members import Person, make_people

CLIENTS = Path(__file__).resolve().parent.parent / ".venv-clients" / "bin"


@pytest.fixture(scope="module")
def people(server: RunningServer) -> Iterator[dict[str, Person]]:
    found = make_people(server, (("carol", "q1", "member"), ("dave", "q2", "member")))
    yield found
    for person in found.values():
        person.client.close()


def sign_in(server: RunningServer, ref: dict[str, Any]) -> httpx.Response:
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": ref}}}
    return httpx.post(f"{server.url}/identity/v3/auth/tokens", json=body, timeout=10)


def app_creds_url(person: Person, cred_id: str | None = None) -> str:
    url = f"/identity/v3/users/{person.user_id}/application_credentials"
    return f"{url}/{cred_id}" if cred_id else url


def test_application_credential_signs_in_as_the_user_on_its_project(
        server: RunningServer, people: dict[str, Person]) -> None:
    carol = people["carol"]
    r = carol.client.post(app_creds_url(carol), json={"application_credential": {
        "name": "ci-bot", "description": "for the CI"}})
    assert r.status_code == 201, r.text
    made = r.json()["application_credential"]
    assert made["secret"] and made["project_id"] == carol.project_id
    assert [role["name"] for role in made["roles"]] == ["member"]
    assert made["unrestricted"] is False and made["expires_at"] is None

    shown = carol.client.get(app_creds_url(carol, made["id"]))
    assert shown.status_code == 200 and "secret" not in shown.json()["application_credential"]

    r = sign_in(server, {"id": made["id"], "secret": made["secret"]})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["methods"] == ["application_credential"]
    assert token["project"]["id"] == carol.project_id
    assert token["user"]["id"] == carol.user_id
    assert token["application_credential"] == {"id": made["id"], "name": "ci-bot",
                                               "restricted": True}
    bot = httpx.Client(base_url=server.url, timeout=10,
                       headers={"X-Auth-Token": r.headers["x-subject-token"]})
    assert bot.get("/compute/v2.1/servers").status_code == 200
    # by name and user, too
    r = sign_in(server, {"name": "ci-bot", "user": {"id": carol.user_id},
                         "secret": made["secret"]})
    assert r.status_code == 201, r.text
    # a restricted credential does not make more credentials
    r = bot.post(app_creds_url(carol), json={"application_credential": {"name": "more"}})
    assert r.status_code == 403
    # wrong secret, unknown id
    assert sign_in(server, {"id": made["id"], "secret": "nope"}).status_code == 401
    assert sign_in(server, {"id": "nope", "secret": made["secret"]}).status_code == 401

    # deleting it ends the tokens made with it
    assert carol.client.delete(app_creds_url(carol, made["id"])).status_code == 204
    assert bot.get("/compute/v2.1/servers").status_code == 401
    assert sign_in(server, {"id": made["id"], "secret": made["secret"]}).status_code == 401
    assert carol.client.get(app_creds_url(carol, made["id"])).status_code == 404


def test_application_credential_rules(server: RunningServer,
                                      people: dict[str, Person]) -> None:
    carol, dave = people["carol"], people["dave"]
    admin = people["admin"].client
    url = app_creds_url(carol)
    expires = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1))
    r = carol.client.post(url, json={"application_credential": {
        "name": "expiring", "expires_at": expires.isoformat(), "secret": "my-own-secret"}})
    assert r.status_code == 201, r.text
    made = r.json()["application_credential"]
    assert made["expires_at"] == expires.isoformat() and made["secret"] == "my-own-secret"
    token = sign_in(server, {"id": made["id"], "secret": "my-own-secret"}).json()["token"]
    assert token["expires_at"] <= expires.isoformat() + "Z"

    dup = carol.client.post(url, json={"application_credential": {"name": "expiring"}})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == 409
    past = carol.client.post(url, json={"application_credential": {
        "name": "past", "expires_at": "2001-01-01T00:00:00"}})
    assert past.status_code == 400
    r = carol.client.post(url, json={"application_credential": {
        "name": "too-much", "roles": [{"name": "admin"}]}})
    assert r.status_code == 404 and "role assignment" in r.json()["error"]["message"]
    assert carol.client.post(url, json={"application_credential": {}}).status_code == 400
    r = carol.client.post(url, json={"application_credential": {
        "name": "reader-only", "roles": [{"name": "member"}], "unrestricted": True}})
    assert r.status_code == 201

    # listed, filtered by name; other users' are not carol's business (admins may look)
    names = [c["name"] for c in carol.client.get(url).json()["application_credentials"]]
    assert names == ["expiring", "reader-only"]
    only = carol.client.get(url, params={"name": "reader-only"}).json()
    assert [c["name"] for c in only["application_credentials"]] == ["reader-only"]
    assert dave.client.get(url).status_code == 403
    assert dave.client.post(url, json={"application_credential": {"name": "x"}}).status_code \
        == 403
    assert admin.get(url).status_code == 200
    assert admin.post(url, json={"application_credential": {"name": "x"}}).status_code == 403

    # an expired credential no longer signs in
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    r = carol.client.post(url, json={"application_credential": {
        "name": "short", "expires_at": soon.isoformat()}})
    assert r.status_code == 201, r.text
    short = r.json()["application_credential"]
    time.sleep(max(0.0, (soon - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    assert sign_in(server, {"id": short["id"], "secret": short["secret"]}).status_code == 401


def test_ec2_credentials(people: dict[str, Person]) -> None:
    carol, dave = people["carol"], people["dave"]
    url = f"/identity/v3/users/{carol.user_id}/credentials/OS-EC2"
    r = carol.client.post(url, json={"tenant_id": carol.project_id})
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert cred["access"] and cred["secret"]
    assert cred["user_id"] == carol.user_id and cred["tenant_id"] == carol.project_id
    shown = carol.client.get(f"{url}/{cred['access']}").json()["credential"]
    assert {k: shown[k] for k in ("access", "secret", "user_id", "tenant_id")} == \
        {k: cred[k] for k in ("access", "secret", "user_id", "tenant_id")}
    listed = carol.client.get(url).json()["credentials"]
    assert [c["access"] for c in listed] == [cred["access"]]
    assert dave.client.get(url).status_code == 403
    assert carol.client.post(url, json={"tenant_id": "no-such"}).status_code == 404
    assert carol.client.post(url, json={}).status_code == 400
    assert carol.client.delete(f"{url}/{cred['access']}").status_code == 204
    assert carol.client.get(f"{url}/{cred['access']}").status_code == 404


def test_user_projects_and_catalog(people: dict[str, Person]) -> None:
    carol, dave = people["carol"], people["dave"]
    r = carol.client.get(f"/identity/v3/users/{carol.user_id}/projects")
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["projects"]] == [carol.project_id]
    assert dave.client.get(f"/identity/v3/users/{carol.user_id}/projects").status_code == 403
    catalog = carol.client.get("/identity/v3/auth/catalog").json()["catalog"]
    assert {s["type"] for s in catalog} == {"identity", "compute", "image", "network",
                                           "volumev3", "block-storage"}
    assert all(s["endpoints"][0]["interface"] == "public" for s in catalog)


def test_role_assignments_with_names(server: RunningServer,
                                     people: dict[str, Person]) -> None:
    carol = people["carol"]
    admin = people["admin"].client
    r = admin.get("/identity/v3/role_assignments",
                  params={"user.id": carol.user_id, "include_names": "True"})
    assert r.status_code == 200, r.text
    [one] = r.json()["role_assignments"]
    assert one["role"]["name"] == "member"
    assert one["user"]["name"].startswith("carol-")
    assert one["user"]["domain"] == {"id": "default", "name": "Default"}
    assert one["scope"]["project"]["id"] == carol.project_id
    assert one["scope"]["project"]["domain"]["name"] == "Default"
    r = admin.get("/identity/v3/role_assignments",
                  params={"user.id": carol.user_id, "effective": ""})
    assert sorted(a["role"]["id"] for a in r.json()["role_assignments"]) == sorted(
        admin.get("/identity/v3/roles", params={"name": n}).json()["roles"][0]["id"]
        for n in ("member", "reader"))
    assert admin.get("/identity/v3/role_assignments",
                     params={"group.id": "g"}).json()["role_assignments"] == []

    openstack = CLIENTS / "openstack"
    if not openstack.exists():
        pytest.skip("the real clients are not installed (./dev test installs them)")
    out = subprocess.run(
        [str(openstack), "--os-auth-url", server.auth_url, "--os-username", "admin",
         "--os-password", ADMIN_PASSWORD,
         "--os-project-name", "admin", "--os-user-domain-name", "Default",
         "--os-project-domain-name", "Default", "--os-identity-api-version", "3",
         "role", "assignment", "list", "--names", "--user", carol.user_id, "-f", "json"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(row["Role"], row["Project"]) for row in rows] == [
        ("member", f"{rows[0]['Project'].split('@')[0]}@Default")]
    assert rows[0]["User"].startswith("carol-") and rows[0]["User"].endswith("@Default")
