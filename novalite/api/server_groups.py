"""``/os-server-groups``: Nova's shapes per microversion.

``policies`` (a one-item list) and ``metadata`` before 2.64, ``policy`` and
``rules`` from 2.64; ``project_id`` and ``user_id`` from 2.13; the soft
policies from 2.15.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.exceptions import BadRequest
from novalite.policy import authorize
from novalite.scheduler.groups import POLICIES, GroupRecord

router = Router()
RULE = "os_compute_api:os-server-groups:"


def _int_query(call: ApiCall, key: str, minimum: int) -> int | None:
    raw = call.query.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
        if value < minimum:
            raise ValueError
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {key}. Value: {raw}.") from None
    return value


def group_view(call: ApiCall, record: GroupRecord) -> dict[str, Any]:
    g = record.group
    body: dict[str, Any] = {"id": g.uuid, "name": g.name}
    if call.mv("2.64"):
        body["policy"] = g.policy
        body["rules"] = dict(g.rules)
    else:
        body["policies"] = [g.policy]
    body["members"] = list(record.members)
    if not call.mv("2.64"):
        body["metadata"] = {}
    if call.mv("2.13"):
        body["project_id"] = g.project_id
        body["user_id"] = g.user_id
    return body


def _group_body(call: ApiCall) -> tuple[str, str, dict[str, Any]]:
    body = call.body
    if not isinstance(body, dict) or not isinstance(body.get("server_group"), dict):
        raise BadRequest("Invalid input for field/attribute server_group. Value: None. "
                         "'server_group' is a required property")
    sg = body["server_group"]
    allowed = {"name", "policy", "rules"} if call.mv("2.64") else {"name", "policies"}
    extra = sorted(set(sg) - allowed)
    if extra:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                         "was unexpected)")
    name = schemas.check_name(sg.get("name"))
    known = POLICIES if call.mv("2.15") else POLICIES[:2]
    if call.mv("2.64"):
        policy = sg.get("policy")
        if policy is None:
            raise BadRequest("Invalid input for field/attribute server_group. 'policy' is a "
                             "required property")
        rules = sg.get("rules", {})
        if not isinstance(rules, dict) or set(rules) - {"max_server_per_host"}:
            raise BadRequest(f"Invalid input for field/attribute rules. Value: {rules}. "
                             "Only 'max_server_per_host' is allowed")
        if "max_server_per_host" in rules:
            most = rules["max_server_per_host"]
            if isinstance(most, str) and most.isdigit():
                most = int(most)
            if not isinstance(most, int) or isinstance(most, bool) or most < 1:
                raise BadRequest(f"Invalid input for field/attribute max_server_per_host. "
                                 f"Value: {most}. must be an integer >= 1")
            rules = {"max_server_per_host": most}
    else:
        policies = sg.get("policies")
        if not isinstance(policies, list) or len(policies) != 1:
            raise BadRequest(f"Invalid input for field/attribute policies. Value: {policies}. "
                             "expected a list of exactly one policy")
        policy, rules = policies[0], {}
    if policy not in known:
        raise BadRequest(f"Invalid input for field/attribute policy. Value: {policy}. "
                         f"'{policy}' is not one of {list(known)}")
    return name, policy, rules


@router.route("POST", "/v2.1/os-server-groups", rule=RULE + "create")
async def create_group(call: ApiCall) -> dict[str, Any]:
    name, policy, rules = _group_body(call)
    record = await call.services.compute.groups.create(call.ctx, name, policy, rules)
    return {"server_group": group_view(call, record)}


@router.route("GET", "/v2.1/os-server-groups", rule=RULE + "index")
async def list_groups(call: ApiCall) -> dict[str, Any]:
    all_projects = str(call.query.get("all_projects", "")).lower() in ("true", "1", "yes")
    if all_projects:
        authorize(call.ctx, RULE + "index:all_projects")
    records = await call.services.compute.groups.list(
        call.ctx, all_projects, _int_query(call, "limit", 1), _int_query(call, "offset", 0))
    return {"server_groups": [group_view(call, r) for r in records]}


@router.route("GET", "/v2.1/os-server-groups/{group_id}", rule=RULE + "show")
async def show_group(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.groups.get(call.ctx, call.params["group_id"])
    return {"server_group": group_view(call, record)}


@router.route("DELETE", "/v2.1/os-server-groups/{group_id}", rule=RULE + "delete")
async def delete_group(call: ApiCall) -> Reply:
    await call.services.compute.groups.delete(call.ctx, call.params["group_id"])
    return Reply(204)
