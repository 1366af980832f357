"""The compute API's ``/images`` proxy (Nova's ``images.py`` and
``image_metadata.py``): images of the image service in Nova's view, until 2.35
(gone from 2.36); their metadata until 2.38 (gone from 2.39)."""

from __future__ import annotations

import weakref
from typing import Any
from urllib.parse import urlencode

from novalite.api import query, schemas
from novalite.api.framework import ApiCall, Reply, Router, Services
from novalite.api.views import links
from novalite.compute.images import ImageProxy, properties
from novalite.exceptions import BadRequest, Forbidden, NotFound

router = Router()
_GONE = "The resource could not be found."
_proxies: weakref.WeakKeyDictionary[Services, ImageProxy] = weakref.WeakKeyDictionary()
_ANY: dict[str, Any] = {}
_POSITIVE = query.multi({"type": "string", "pattern": "^[0-9]*$", "minLength": 1})
_LIST_QUERY = {"name": _ANY, "status": _ANY, "changes-since": _ANY, "server": _ANY,
               "type": _ANY, "minRam": _ANY, "minDisk": _ANY, "limit": _POSITIVE,
               "page_size": _POSITIVE, "marker": _ANY, "offset": _POSITIVE}
_FILTERS = {"name": "name", "status": "status", "changes-since": "changes-since",
            "server": "property-instance_uuid", "type": "property-image_type",
            "minRam": "min_ram", "minDisk": "min_disk"}
_STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING",
           "deleted": "DELETED", "pending_delete": "DELETED", "killed": "ERROR"}
_PROGRESS = {"queued": 25, "saving": 50, "active": 100}
_meta = {"type": "object",
         "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string",
                                                            "maxLength": 255}},
         "additionalProperties": False}
METADATA_SET = {"type": "object", "properties": {"metadata": _meta},
                "required": ["metadata"], "additionalProperties": False}
META_ONE = {"type": "object",
            "properties": {"meta": {**_meta, "minProperties": 1, "maxProperties": 1}},
            "required": ["meta"], "additionalProperties": False}


def _proxy(call: ApiCall) -> ImageProxy:
    services = call.services
    proxy = _proxies.get(services)
    if proxy is None:
        servers = services.compute.cfg.glance.api_servers
        proxy = _proxies[services] = ImageProxy(None if servers else services.images,
                                                servers[0] if servers else None)
    return proxy


def _glance_url(call: ApiCall) -> str:
    servers = call.services.compute.cfg.glance.api_servers
    return servers[0].rstrip("/") if servers else f"{call.services.base_url}/image"


def _links(call: ApiCall, image_id: str) -> list[dict[str, str]]:
    return [*links(call.services.base_url, "images", image_id),
            {"rel": "alternate", "type": "application/vnd.openstack.image",
             "href": f"{_glance_url(call)}/images/{image_id}"}]


def image_view(call: ApiCall, image: dict[str, Any]) -> dict[str, Any]:
    props = properties(image)
    status = str(image.get("status"))
    body: dict[str, Any] = {
        "id": image["id"], "name": image.get("name"),
        "minRam": int(image.get("min_ram") or 0), "minDisk": int(image.get("min_disk") or 0),
        "metadata": props, "created": image.get("created_at"),
        "updated": image.get("updated_at"), "status": _STATUS.get(status, "UNKNOWN"),
        "progress": _PROGRESS.get(status, 0), "OS-EXT-IMG-SIZE:size": image.get("size") or 0,
        "links": _links(call, image["id"]),
    }
    server = props.get("instance_uuid")
    if server is not None:
        body["server"] = {"id": server, "links": links(call.services.base_url, "servers",
                                                       str(server))}
    auto = props.get("auto_disk_config")
    if auto is not None:
        body["OS-DCF:diskConfig"] = "AUTO" if str(auto).strip().lower() in (
            "1", "t", "true", "on", "y", "yes") else "MANUAL"
    return body


def _check_version(call: ApiCall, last: str) -> None:
    if call.version > last:
        raise NotFound(_GONE)


async def _list(call: ApiCall, detail: bool) -> dict[str, Any]:
    _check_version(call, "2.35")
    params = query.validate(call, _LIST_QUERY, strict=False,
                            patterns={"^property-.*$": _ANY})
    filters: dict[str, str] = {}
    for key, values in params.items():
        if key in _FILTERS or key.startswith("property-"):
            filters[_FILTERS.get(key, key)] = values[-1]
    if "property-instance_uuid" in filters:
        filters["property-instance_uuid"] = filters["property-instance_uuid"].rsplit("/", 1)[-1]
    if "status" in filters:
        filters["status"] = filters["status"].lower()
    images = await _proxy(call).find(call.ctx, filters)
    marker = query.last(params, "marker")
    if marker:
        ids = [i["id"] for i in images]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        images = images[ids.index(marker) + 1:]
    limit_text = query.last(params, "limit") or query.last(params, "page_size")
    limit = int(limit_text) if limit_text else None
    if limit is not None:
        images = images[:limit]
    if detail:
        out: dict[str, Any] = {"images": [image_view(call, i) for i in images]}
    else:
        out = {"images": [{"id": i["id"], "name": i.get("name"),
                           "links": _links(call, i["id"])} for i in images]}
    if limit and len(images) == limit:
        args = {k: v[-1] for k, v in params.items()}
        args["marker"] = images[-1]["id"]
        path = "images/detail" if detail else "images"
        out["images_links"] = [{"rel": "next", "href": f"{call.services.base_url}/compute/"
                                f"v2.1/{path}?{urlencode(args)}"}]
    return out


@router.route("GET", "/v2.1/images", rule=None)
async def list_images(call: ApiCall) -> dict[str, Any]:
    return await _list(call, False)


@router.route("GET", "/v2.1/images/detail", rule=None)
async def detail_images(call: ApiCall) -> dict[str, Any]:
    return await _list(call, True)


@router.route("GET", "/v2.1/images/{image_id}", rule=None)
async def show_image(call: ApiCall) -> dict[str, Any]:
    _check_version(call, "2.35")
    return {"image": image_view(call, await _proxy(call).get(call.ctx, call.params["image_id"]))}


@router.route("DELETE", "/v2.1/images/{image_id}", rule=None)
async def delete_image(call: ApiCall) -> Reply:
    _check_version(call, "2.35")
    await _proxy(call).delete(call.ctx, call.params["image_id"])
    return Reply(204)


# -- image metadata (until 2.38) ----------------------------------------------------
async def _checked(call: ApiCall, metadata: dict[str, Any]) -> None:
    """Nova's ``check_img_metadata_properties_quota``."""
    limit = (await call.services.compute.quotas.limits(call.ctx.project_id))["metadata_items"]
    if 0 <= limit < len(metadata):
        raise Forbidden("Image metadata limit exceeded")


@router.route("GET", "/v2.1/images/{image_id}/metadata", rule=None)
async def list_metadata(call: ApiCall) -> dict[str, Any]:
    _check_version(call, "2.38")
    return {"metadata": properties(await _proxy(call).get(call.ctx, call.params["image_id"]))}


@router.route("POST", "/v2.1/images/{image_id}/metadata", rule=None)
async def add_metadata(call: ApiCall) -> dict[str, Any]:
    _check_version(call, "2.38")
    body = schemas.validate(call.body, METADATA_SET)
    proxy, image_id = _proxy(call), call.params["image_id"]
    new = {**properties(await proxy.get(call.ctx, image_id)), **body["metadata"]}
    await _checked(call, new)
    return {"metadata": properties(await proxy.set_properties(call.ctx, image_id, new))}


@router.route("PUT", "/v2.1/images/{image_id}/metadata", rule=None)
async def replace_metadata(call: ApiCall) -> dict[str, Any]:
    _check_version(call, "2.38")
    body = schemas.validate(call.body, METADATA_SET)
    proxy, image_id = _proxy(call), call.params["image_id"]
    await proxy.get(call.ctx, image_id)
    await _checked(call, body["metadata"])
    await proxy.set_properties(call.ctx, image_id, body["metadata"])
    return {"metadata": body["metadata"]}


@router.route("GET", "/v2.1/images/{image_id}/metadata/{key}", rule=None)
async def show_meta(call: ApiCall) -> dict[str, Any]:
    _check_version(call, "2.38")
    key = call.params["key"]
    props = properties(await _proxy(call).get(call.ctx, call.params["image_id"]))
    if key not in props:
        raise NotFound(_GONE)
    return {"meta": {key: props[key]}}


@router.route("PUT", "/v2.1/images/{image_id}/metadata/{key}", rule=None)
async def set_meta(call: ApiCall) -> dict[str, Any]:
    _check_version(call, "2.38")
    body = schemas.validate(call.body, META_ONE)
    key = call.params["key"]
    if key not in body["meta"]:
        raise BadRequest("Request body and URI mismatch")
    proxy, image_id = _proxy(call), call.params["image_id"]
    new = {**properties(await proxy.get(call.ctx, image_id)), key: body["meta"][key]}
    await _checked(call, new)
    await proxy.set_properties(call.ctx, image_id, new)
    return {"meta": body["meta"]}


@router.route("DELETE", "/v2.1/images/{image_id}/metadata/{key}", rule=None)
async def delete_meta(call: ApiCall) -> Reply:
    _check_version(call, "2.38")
    key = call.params["key"]
    proxy, image_id = _proxy(call), call.params["image_id"]
    props = properties(await proxy.get(call.ctx, image_id))
    if key not in props:
        raise NotFound("Invalid metadata key")
    del props[key]
    await proxy.set_properties(call.ctx, image_id, props)
    return Reply(204)


@router.route("GET", "/v2.1/images/", rule=None)
@router.route("DELETE", "/v2.1/images/", rule=None)
async def image_without_id(call: ApiCall) -> dict[str, Any]:
    """An empty image id is no image (Nova's router answers 404; Starlette would
    redirect to the list)."""
    raise NotFound(_GONE)
