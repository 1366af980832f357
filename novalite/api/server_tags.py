"""``/servers/{id}/tags`` and ``/tags/{tag}`` from 2.26 (Nova's ``server_tags.py``).

A tag is 1-60 characters without ``/`` or ``,``; a server has at most 50.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.exceptions import BadRequest, NotFound

router = Router()
RULE = "os_compute_api:os-server-tags:"
PATH = "/v2.1/servers/{server_id}/tags"


def _since_226(call: ApiCall) -> None:
    if not call.mv("2.26"):  # Nova has no such resource below 2.26
        raise NotFound("The resource could not be found.")


@router.route("GET", PATH, rule=RULE + "index")
async def index(call: ApiCall) -> dict[str, Any]:
    _since_226(call)
    return {"tags": await call.services.compute.tags(call.ctx, call.params["server_id"])}


@router.route("PUT", PATH, rule=RULE + "update_all", body=schemas.SERVER_TAGS)
async def update_all(call: ApiCall) -> dict[str, Any]:
    _since_226(call)
    body = call.body
    tags, _ = await call.services.compute.change_tags(
        call.ctx, call.params["server_id"], "update tags", tags=body["tags"])
    return {"tags": tags}


@router.route("DELETE", PATH, rule=RULE + "delete_all")
async def delete_all(call: ApiCall) -> Reply:
    _since_226(call)
    await call.services.compute.change_tags(call.ctx, call.params["server_id"],
                                            "delete tags")
    return Reply(204)


@router.route("GET", PATH + "/{tag}", rule=RULE + "show")
async def show(call: ApiCall) -> Reply:
    _since_226(call)
    server_id, tag = call.params["server_id"], call.params["tag"]
    if tag not in await call.services.compute.tags(call.ctx, server_id):
        raise NotFound(f"Server {server_id} has no tag '{tag}'")
    return Reply(204)


@router.route("PUT", PATH + "/{tag}", rule=RULE + "update", parse_body=False)
async def update(call: ApiCall) -> Reply:
    """Add one tag: 201 with its Location, or 204 when the server had it already."""
    _since_226(call)
    server_id, tag = call.params["server_id"], call.params["tag"]
    try:
        jsonschema.validate(tag, schemas.TAG)
    except jsonschema.ValidationError as exc:
        raise BadRequest(f"Tag '{tag}' is invalid. It must be a non empty string without "
                         f"characters '/' and ','. Validation error message: "
                         f"{exc.message}") from None
    _, added = await call.services.compute.change_tags(call.ctx, server_id, "update tag",
                                                       tag=tag)
    if not added:
        return Reply(204)
    return Reply(201, headers={
        "Location": f"{call.services.base_url}/compute/v2.1/servers/{server_id}/tags/{tag}"})


@router.route("DELETE", PATH + "/{tag}", rule=RULE + "delete")
async def delete(call: ApiCall) -> Reply:
    _since_226(call)
    await call.services.compute.change_tags(call.ctx, call.params["server_id"],
                                            "delete tag", tag=call.params["tag"])
    return Reply(204)
