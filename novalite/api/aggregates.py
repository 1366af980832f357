"""``/os-aggregates``: host aggregates and their actions (``uuid`` from 2.41).

The actions posted to ``/os-aggregates/{id}/action`` are registered by name,
each with its own policy rule, as the server actions are.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ActionRegistry, ApiCall, Reply, Router
from novalite.api.views import iso_usec
from novalite.compute.aggregates import AggregateRecord
from novalite.exceptions import BadRequest

router = Router()
RULE = "os_compute_api:os-aggregates:"

aggregate_actions = ActionRegistry(unknown=lambda name: BadRequest(
    f"Invalid input for field/attribute action. Value: {name}. "
    "Additional properties are not allowed"))
router.action_route("/v2.1/os-aggregates/{aggregate_id}/action", aggregate_actions)


def aggregate_view(call: ApiCall, record: AggregateRecord, full: bool = True
                   ) -> dict[str, Any]:
    a = record.aggregate
    body: dict[str, Any] = {
        "availability_zone": record.availability_zone,
        "created_at": iso_usec(a.created_at), "deleted": False, "deleted_at": None,
        "id": a.id, "name": a.name, "updated_at": iso_usec(a.updated_at),
    }
    if full:
        body["hosts"] = list(record.hosts)
        body["metadata"] = dict(record.metadata)
    if call.mv("2.41"):
        body["uuid"] = a.uuid
    return body


def _aggregate_body(call: ApiCall, required: bool) -> dict[str, Any]:
    schema = schemas.AGGREGATE_CREATE if required else schemas.AGGREGATE_UPDATE
    agg: dict[str, Any] = schemas.validate(call.body, schema)["aggregate"]
    return agg


@router.route("GET", "/v2.1/os-aggregates", rule=RULE + "index")
async def list_aggregates(call: ApiCall) -> dict[str, Any]:
    records = await call.services.compute.aggregates.list()
    return {"aggregates": [aggregate_view(call, r) for r in records]}


@router.route("POST", "/v2.1/os-aggregates", rule=RULE + "create")
async def create_aggregate(call: ApiCall) -> dict[str, Any]:
    values = _aggregate_body(call, required=True)
    record = await call.services.compute.aggregates.create(
        values["name"], values.get("availability_zone"))
    return {"aggregate": aggregate_view(call, record, full=False)}


@router.route("GET", "/v2.1/os-aggregates/{aggregate_id}", rule=RULE + "show")
async def show_aggregate(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.aggregates.get(call.params["aggregate_id"])
    return {"aggregate": aggregate_view(call, record)}


@router.route("PUT", "/v2.1/os-aggregates/{aggregate_id}", rule=RULE + "update")
async def update_aggregate(call: ApiCall) -> dict[str, Any]:
    values = _aggregate_body(call, required=False)
    record = await call.services.compute.aggregates.update(call.params["aggregate_id"], values)
    return {"aggregate": aggregate_view(call, record)}


@router.route("DELETE", "/v2.1/os-aggregates/{aggregate_id}", rule=RULE + "delete")
async def delete_aggregate(call: ApiCall) -> Reply:
    await call.services.compute.aggregates.delete(call.params["aggregate_id"])
    return Reply(200)


@aggregate_actions.action("add_host", rule=RULE + "add_host", schema=schemas.AGGREGATE_HOST)
async def add_host(call: ApiCall, args: dict[str, Any]) -> dict[str, Any]:
    record = await call.services.compute.aggregates.add_host(call.params["aggregate_id"],
                                                             args["host"])
    return {"aggregate": aggregate_view(call, record)}


@aggregate_actions.action("remove_host", rule=RULE + "remove_host",
                          schema=schemas.AGGREGATE_HOST)
async def remove_host(call: ApiCall, args: dict[str, Any]) -> dict[str, Any]:
    record = await call.services.compute.aggregates.remove_host(call.params["aggregate_id"],
                                                                args["host"])
    return {"aggregate": aggregate_view(call, record)}


@aggregate_actions.action("set_metadata", rule=RULE + "set_metadata",
                          schema=schemas.AGGREGATE_METADATA)
async def set_metadata(call: ApiCall, args: dict[str, Any]) -> dict[str, Any]:
    record = await call.services.compute.aggregates.set_metadata(call.params["aggregate_id"],
                                                                 args["metadata"])
    return {"aggregate": aggregate_view(call, record)}
