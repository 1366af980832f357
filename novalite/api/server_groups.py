"""``/os-server-groups``: Nova's shapes per microversion.

``policies`` (a one-item list) and ``metadata`` before 2.64, ``policy`` and
``rules`` from 2.64; ``project_id`` and ``user_id`` from 2.13; the soft
policies from 2.15.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.compute.server_groups import GroupRecord
from novalite.exceptions import BadRequest
from novalite.policy import authorize

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
    """(name, policy, rules) of a create request, validated for its microversion."""
    if call.mv("2.64"):
        sg = schemas.validate(call.body, schemas.SERVER_GROUP_CREATE_V264)["server_group"]
        rules = dict(sg.get("rules") or {})
        if "max_server_per_host" in rules:
            rules["max_server_per_host"] = int(rules["max_server_per_host"])
        return sg["name"], sg["policy"], rules
    schema = schemas.SERVER_GROUP_CREATE_V215 if call.mv("2.15") \
        else schemas.SERVER_GROUP_CREATE
    sg = schemas.validate(call.body, schema)["server_group"]
    return sg["name"], sg["policies"][0], {}


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
