"""Keystone's token policies: validate (GET), check (HEAD) and revoke (DELETE)
``/v3/auth/tokens`` only for the token's own user, or an admin (a service user may
also validate), as Keystone's ``identity:validate_token``, ``check_token`` and
``revoke_token`` defaults say. Anyone else gets Keystone's 403."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from novalite.testing.server import RunningServer

PASSWORD = "policy-pass-1"
TOKENS = "/identity/v3/auth/tokens"


def _login(server: RunningServer, user: str, project: str) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    r = httpx.post(f"{server.url}{TOKENS}", json=body, timeout=10)
    assert r.status_code == 201, r.text
    return r.headers["x-subject-token"]


@pytest.fixture(scope="module")
def users(server: RunningServer) -> Iterator[dict[str, str]]:
    """Two members of two projects and a user holding the ``service`` role (made at
    bootstrap, as a Keystone deployment has it): user -> name."""
    tag = secrets.token_hex(3)
    admin = server.client()
    roles = {r["name"]: r["id"] for r in admin.get("/identity/v3/roles").json()["roles"]}
    names = {}
    for who, role in (("alice", "member"), ("bob", "member"), ("nova", "service")):
        project = admin.post("/identity/v3/projects", json={"project": {
            "name": f"{who}-p-{tag}"}}).json()["project"]
        user = admin.post("/identity/v3/users", json={"user": {
            "name": f"{who}-{tag}", "password": PASSWORD,
            "default_project_id": project["id"]}}).json()["user"]
        r = admin.put(f"/identity/v3/projects/{project['id']}/users/{user['id']}/roles/"
                      f"{roles[role]}")
        assert r.status_code == 204, r.text
        names[who] = f"{who}-{tag}"
        names[f"{who}-project"] = project["name"]
    yield names
    admin.close()


def _token(server: RunningServer, users: dict[str, str], who: str) -> str:
    return _login(server, users[who], users[f"{who}-project"])


def _as(caller: str, subject: str) -> dict[str, str]:
    return {"X-Auth-Token": caller, "X-Subject-Token": subject}


def test_another_users_token_is_neither_validated_nor_revoked(
        server: RunningServer, users: dict[str, str]) -> None:
    alice, bob = _token(server, users, "alice"), _token(server, users, "bob")
    admin_token = server.token()
    for subject in (alice, admin_token):
        r = httpx.get(f"{server.url}{TOKENS}", headers=_as(bob, subject))
        assert r.status_code == 403, r.text
        assert r.json()["error"]["message"] == ("You are not authorized to perform the "
                                                "requested action: identity:validate_token.")
        assert "token" not in r.json()
        r = httpx.head(f"{server.url}{TOKENS}", headers=_as(bob, subject))
        assert r.status_code == 403
        r = httpx.delete(f"{server.url}{TOKENS}", headers=_as(bob, subject))
        assert r.status_code == 403, r.text
        assert "identity:revoke_token" in r.json()["error"]["message"]
    # Nothing was revoked: both tokens still work.
    for token in (alice, admin_token):
        r = httpx.get(f"{server.url}/compute/v2.1/servers", headers={"X-Auth-Token": token})
        assert r.status_code == 200


def test_own_token_is_validated_and_revoked(server: RunningServer,
                                            users: dict[str, str]) -> None:
    alice, alice2 = _token(server, users, "alice"), _token(server, users, "alice")
    r = httpx.get(f"{server.url}{TOKENS}", headers=_as(alice, alice))
    assert r.status_code == 200
    assert r.json()["token"]["user"]["name"] == users["alice"]
    # The same user's other token counts as their own (Keystone's token_subject).
    assert httpx.head(f"{server.url}{TOKENS}", headers=_as(alice, alice2)).status_code == 200
    assert httpx.delete(f"{server.url}{TOKENS}", headers=_as(alice, alice2)).status_code == 204
    assert httpx.get(f"{server.url}{TOKENS}", headers=_as(alice, alice2)).status_code == 404


def test_admin_validates_and_revokes_any_token(server: RunningServer,
                                               users: dict[str, str]) -> None:
    bob = _token(server, users, "bob")
    admin_token = server.token()
    r = httpx.get(f"{server.url}{TOKENS}", headers=_as(admin_token, bob))
    assert r.status_code == 200
    assert r.json()["token"]["user"]["name"] == users["bob"]
    assert httpx.head(f"{server.url}{TOKENS}", headers=_as(admin_token, bob)).status_code == 200
    assert httpx.delete(f"{server.url}{TOKENS}",
                        headers=_as(admin_token, bob)).status_code == 204
    r = httpx.get(f"{server.url}/compute/v2.1/servers", headers={"X-Auth-Token": bob})
    assert r.status_code == 401


def test_a_service_user_validates_but_does_not_revoke(server: RunningServer,
                                                      users: dict[str, str]) -> None:
    nova, alice = _token(server, users, "nova"), _token(server, users, "alice")
    r = httpx.get(f"{server.url}{TOKENS}", headers=_as(nova, alice))
    assert r.status_code == 200
    assert r.json()["token"]["user"]["name"] == users["alice"]
    assert httpx.delete(f"{server.url}{TOKENS}", headers=_as(nova, alice)).status_code == 403


def test_an_unknown_subject_token_is_404_for_everyone(server: RunningServer,
                                                      users: dict[str, str]) -> None:
    bob = _token(server, users, "bob")
    for caller in (bob, server.token()):
        r = httpx.get(f"{server.url}{TOKENS}", headers=_as(caller, "not-a-token"))
        assert r.status_code == 404
        assert r.json()["error"]["code"] == 404
