"""The HTTP handler registry: every route and every server action is registered with
its own policy rule, `novalite policy` lists them, and the rules hold over HTTP."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from novalite import policy
from novalite.api import aggregates, compute, identity, image, server_actions
from novalite.api.app import policy_operations
from novalite.testing.server import RunningServer, novalite_bin
from tests.helpers import boot, wait_gone, wait_status

ALL_ROUTERS = [*compute.ROUTERS, *identity.ROUTERS, image.router]
REGISTRIES = [server_actions.server_actions, aggregates.aggregate_actions]

#: Nova's rule for each server action novalite serves (nova/policies/*.py).
NOVA_ACTION_RULES = {
    "reboot": "os_compute_api:servers:reboot",
    "os-start": "os_compute_api:servers:start",
    "os-stop": "os_compute_api:servers:stop",
    "createImage": "os_compute_api:servers:create_image",
    "pause": "os_compute_api:os-pause-server:pause",
    "unpause": "os_compute_api:os-pause-server:unpause",
    "suspend": "os_compute_api:os-suspend-server:suspend",
    "resume": "os_compute_api:os-suspend-server:resume",
    "lock": "os_compute_api:os-lock-server:lock",
    "unlock": "os_compute_api:os-lock-server:unlock",
    "os-getConsoleOutput": "os_compute_api:os-console-output",
    "os-getVNCConsole": "os_compute_api:os-remote-consoles",
    "os-getSerialConsole": "os_compute_api:os-remote-consoles",
    "os-getSPICEConsole": "os_compute_api:os-remote-consoles",
    "os-resetState": "os_compute_api:os-admin-actions:reset_state",
    "changePassword": "os_compute_api:os-admin-password",
    "rebuild": "os_compute_api:servers:rebuild",
    "rescue": "os_compute_api:os-rescue",
    "unrescue": "os_compute_api:os-unrescue",
    "createBackup": "os_compute_api:os-create-backup",
    "restore": "os_compute_api:os-deferred-delete:restore",
    "forceDelete": "os_compute_api:os-deferred-delete:force",
    "trigger_crash_dump": "os_compute_api:servers:trigger_crash_dump",
    "resize": "os_compute_api:servers:resize",
    "confirmResize": "os_compute_api:servers:confirm_resize",
    "revertResize": "os_compute_api:servers:revert_resize",
    "migrate": "os_compute_api:os-migrate-server:migrate",
    "os-migrateLive": "os_compute_api:os-migrate-server:migrate_live",
    "evacuate": "os_compute_api:os-evacuate",
    "shelve": "os_compute_api:os-shelve:shelve",
    "shelveOffload": "os_compute_api:os-shelve:shelve_offload",
    "unshelve": "os_compute_api:os-shelve:unshelve",
    "addSecurityGroup": "os_compute_api:os-security-groups:add",
    "removeSecurityGroup": "os_compute_api:os-security-groups:remove",
}
#: The one place Nova guards several actions by one rule (nova/policies/remote_consoles.py:
#: every pre-2.6 console action, and POST /servers/{id}/remote-consoles).
NOVA_SHARED_RULES = {"os_compute_api:os-remote-consoles": {
    "os-getVNCConsole", "os-getSerialConsole", "os-getSPICEConsole"}}


def test_each_server_action_has_novas_own_rule() -> None:
    registered = {name: a.rule for name, a in server_actions.server_actions.actions.items()}
    assert registered == NOVA_ACTION_RULES
    assert "os_compute_api:servers:action" not in policy.RULES


def test_every_rule_a_route_or_action_names_is_in_the_policy_table() -> None:
    named = [s.rule for r in ALL_ROUTERS for s in r.specs if s.rule is not None]
    named += [a.rule for reg in REGISTRIES for a in reg.actions.values()]
    assert named and set(named) <= set(policy.RULES)
    # No two actions share a rule: each can be granted on its own.
    for reg in REGISTRIES:
        rules = [a.rule for a in reg.actions.values()
                 if a.name not in NOVA_SHARED_RULES.get(a.rule, set())]
        assert len(rules) == len(set(rules))


def test_handlers_are_module_level_functions() -> None:
    handlers = [s.handler for r in ALL_ROUTERS for s in r.specs]
    handlers += [s.handler for r in ALL_ROUTERS for s in r.public_specs]
    handlers += [a.handler for reg in REGISTRIES for a in reg.actions.values()]
    assert [h.__qualname__ for h in handlers if "<locals>" in h.__qualname__] == []


def test_novalite_policy_lists_each_action_with_its_rule() -> None:
    out = subprocess.run([novalite_bin(), "policy", "-f", "json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {r["rule"]: r for r in json.loads(out.stdout)}
    action_url = "POST /compute/v2.1/servers/{server_id}/action"
    for name, rule in NOVA_ACTION_RULES.items():
        assert f"{action_url} ({name})" in rows[rule]["operations"], rule
        admin_only = rule in ("os_compute_api:os-admin-actions:reset_state",
                              "os_compute_api:os-evacuate",
                              "os_compute_api:os-shelve:shelve_offload")
        managers = rule in ("os_compute_api:os-migrate-server:migrate",  # Nova's 2025 rules
                            "os_compute_api:os-migrate-server:migrate_live")
        assert rows[rule]["roles"] == (["admin"] if admin_only else ["admin", "manager"]
                                       if managers else ["admin", "manager", "member"])
    assert rows["os_compute_api:os-aggregates:add_host"]["roles"] == ["admin"]
    table = subprocess.run([novalite_bin(), "policy"], capture_output=True, text=True,
                           timeout=60).stdout
    assert f"{action_url} (os-stop)" in table
    assert policy_operations()["os_compute_api:servers:stop"] == [f"{action_url} (os-stop)"]


@pytest.fixture(scope="module")
def clients(server: RunningServer) -> Iterator[dict[str, httpx.Client]]:
    """A member and a reader of a new project."""
    admin = server.client()
    tag = secrets.token_hex(3)
    project = admin.post("/identity/v3/projects", json={"project": {"name": f"reg-{tag}"}})
    assert project.status_code == 201, project.text
    pid = project.json()["project"]["id"]
    out = {}
    for role in ("member", "reader"):
        user = admin.post("/identity/v3/users", json={"user": {
            "name": f"{role}-{tag}", "password": "registry-pass-1", "default_project_id": pid}})
        assert user.status_code == 201, user.text
        uid = user.json()["user"]["id"]
        rid = admin.get("/identity/v3/roles", params={"name": role}).json()["roles"][0]["id"]
        assert admin.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/{rid}"
                         ).status_code == 204
        token = httpx.post(f"{server.url}/identity/v3/auth/tokens", timeout=10, json={
            "auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": f"{role}-{tag}", "domain": {"name": "Default"},
                "password": "registry-pass-1"}}},
                "scope": {"project": {"id": pid}}}})
        assert token.status_code == 201, token.text
        out[role] = httpx.Client(base_url=server.url, timeout=30, headers={
            "X-Auth-Token": token.headers["x-subject-token"],
            "OpenStack-API-Version": "compute 2.96"})
    out["admin"] = admin
    yield out
    for c in out.values():
        c.close()


def test_a_reader_is_refused_each_action_by_its_own_rule(
        clients: dict[str, httpx.Client]) -> None:
    member, reader = clients["member"], clients["reader"]
    sid = boot(member, "registry-vm")
    wait_status(member, sid, "ACTIVE")
    bodies = {"reboot": {"type": "HARD"}, "createImage": {"name": "snap"},
              "os-getConsoleOutput": {"length": 5}}
    for name, rule in NOVA_ACTION_RULES.items():
        r = reader.post(f"/compute/v2.1/servers/{sid}/action",
                        json={name: bodies.get(name)})
        assert r.status_code == 403, (name, r.text)
        assert r.json() == {"forbidden": {
            "code": 403, "message": f"Policy doesn't allow {rule} to be performed."}}
    # The member may; an action nobody registered is a 400 for anyone.
    r = member.post(f"/compute/v2.1/servers/{sid}/action",
                    json={"os-getConsoleOutput": {"length": 5}})
    assert r.status_code == 200 and "output" in r.json(), r.text
    for c in (member, reader):
        r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-fly": None})
        assert r.status_code == 400
        assert r.json()["badRequest"]["message"] == "There is no such action: os-fly"
    assert wait_status(member, sid, "ACTIVE")["name"] == "registry-vm"
    assert member.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_gone(member, sid)


def test_a_member_is_refused_an_admin_action(clients: dict[str, httpx.Client]) -> None:
    admin, member = clients["admin"], clients["member"]
    agg = admin.post("/compute/v2.1/os-aggregates", json={"aggregate": {
        "name": f"reg-{secrets.token_hex(3)}"}})
    assert agg.status_code == 200, agg.text
    url = f"/compute/v2.1/os-aggregates/{agg.json()['aggregate']['id']}/action"
    for name, body in (("add_host", {"host": "compute-a"}),
                       ("set_metadata", {"metadata": {"k": "v"}})):
        r = member.post(url, json={name: body})
        assert r.status_code == 403, r.text
        assert r.json()["forbidden"]["message"] == (
            f"Policy doesn't allow os_compute_api:os-aggregates:{name} to be performed.")
    r = admin.post(url, json={"add_host": {"host": "compute-a"}})
    assert r.status_code == 200 and r.json()["aggregate"]["hosts"] == ["compute-a"], r.text
    r = admin.post(url, json={"remove_host": {"host": "compute-a"}})
    assert r.status_code == 200 and r.json()["aggregate"]["hosts"] == [], r.text
    assert admin.delete(url.removesuffix("/action")).status_code == 200
