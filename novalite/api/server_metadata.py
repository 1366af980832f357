"""``/servers/{id}/metadata`` and ``/metadata/{key}`` (Nova's ``server_metadata.py``)."""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.exceptions import BadRequest, NotFound

router = Router()
RULE = "os_compute_api:os-server-metadata:"
PATH = "/v2.1/servers/{server_id}/metadata"


@router.route("GET", PATH, rule=RULE + "index")
async def index(call: ApiCall) -> dict[str, Any]:
    return {"metadata": await call.services.compute.metadata(call.ctx,
                                                             call.params["server_id"])}


@router.route("POST", PATH, rule=RULE + "create", body=schemas.SERVER_METADATA)
async def create(call: ApiCall) -> dict[str, Any]:
    """Merge the given items into the metadata; answers the whole metadata."""
    body = call.body
    return {"metadata": await call.services.compute.change_metadata(
        call.ctx, call.params["server_id"], body["metadata"])}


@router.route("PUT", PATH, rule=RULE + "update_all", body=schemas.SERVER_METADATA)
async def update_all(call: ApiCall) -> dict[str, Any]:
    """Replace the metadata."""
    body = call.body
    return {"metadata": await call.services.compute.change_metadata(
        call.ctx, call.params["server_id"], body["metadata"], replace=True)}


@router.route("GET", PATH + "/{key}", rule=RULE + "show")
async def show(call: ApiCall) -> dict[str, Any]:
    key = call.params["key"]
    metadata = await call.services.compute.metadata(call.ctx, call.params["server_id"])
    if key not in metadata:
        raise NotFound("Metadata item was not found")
    return {"meta": {key: metadata[key]}}


@router.route("PUT", PATH + "/{key}", rule=RULE + "update")
async def update(call: ApiCall) -> dict[str, Any]:
    """Set one item: the body's one key must be the URL's."""
    key = call.params["key"]
    meta = call.body.get("meta") if isinstance(call.body, dict) else None
    if isinstance(meta, dict) and len(meta) > 1:
        raise BadRequest("Request body contains too many items")
    body = schemas.validate(call.body, schemas.SERVER_METADATA_ITEM)
    if key not in body["meta"]:
        raise BadRequest("Request body and URI mismatch")
    await call.services.compute.change_metadata(call.ctx, call.params["server_id"],
                                                body["meta"])
    return {"meta": body["meta"]}


@router.route("DELETE", PATH + "/{key}", rule=RULE + "delete")
async def delete(call: ApiCall) -> Reply:
    await call.services.compute.change_metadata(call.ctx, call.params["server_id"], {},
                                                delete=call.params["key"])
    return Reply(204)
