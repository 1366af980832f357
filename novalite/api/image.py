"""The embedded Glance v2 subset, mounted at ``/image``.

Each route authenticates, checks its policy rule (:mod:`novalite.policy`), calls
:class:`~novalite.image.service.ImageService` and answers errors in Glance's
shape (``style="glance"`` of :func:`novalite.api.framework.error_response`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import trio
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from novalite.api.framework import (
    ApiCall,
    Authenticator,
    Call,
    Reply,
    Router,
    Services,
    starlette_routes,
)
from novalite.api.image_metadefs import router as metadefs
from novalite.api.image_tasks import router as tasks
from novalite.exceptions import BadRequest, Forbidden, NotFound
from novalite.image import patch, schemas
from novalite.image.errors import UnsupportedMediaType
from novalite.image.members import member_view
from novalite.image.store import DataStore
from novalite.image.web_download import IMPORT_METHODS

router = Router()
IMAGE = "/v2/images/{image_id}"
MEMBER = IMAGE + "/members/{member_id}"


def _versions(call: Call) -> dict[str, Any]:
    return {"versions": [
        {"id": "v2.16", "status": "CURRENT",
         "links": [{"rel": "self", "href": f"{call.services.base_url}/image/v2/"}]},
    ]}


@router.public("GET", "/")
async def versions(call: Call) -> Reply:
    return Reply(300, _versions(call))


@router.public("GET", "/versions")
async def version_list(call: Call) -> dict[str, Any]:
    """Glance answers its version list at ``/versions`` with 200 (``/`` says 300)."""
    return _versions(call)


@router.route("GET", "/v2/schemas/{name:path}", rule="image:get_images")
async def schema(call: ApiCall) -> dict[str, Any]:
    found = schemas.document(call.params["name"])
    if found is None:
        raise NotFound(f"No schema named {call.params['name']}")
    return found


@router.route("GET", "/v2/images", rule="image:get_images")
async def list_images(call: ApiCall) -> dict[str, Any]:
    images = call.services.images
    query = {key: call.query.getlist(key) for key in call.query.keys()}
    found, marker = await images.list(call.ctx, query)
    out: dict[str, Any] = {"images": [images.view(i) for i in found],
                           "first": "/v2/images", "schema": "/v2/schemas/images"}
    if marker:
        params = [(k, v) for k, values in query.items() if k != "marker" for v in values]
        out["next"] = "/v2/images?" + urlencode([*params, ("marker", marker)])
    return out


@router.route("POST", "/v2/images", rule="image:add_image")
async def create(call: ApiCall) -> Reply:
    images = call.services.images
    body = call.body
    if body is None and call.request.scope.get("novalite.body"):
        body = "null"  # a JSON null, not an empty body
    if body is not None and not isinstance(body, dict):
        raise BadRequest("Malformed request body: the image must be a JSON object")
    image = await images.create(call.ctx, body or {})
    return Reply(201, images.view(image),
                 {"Location": f"{call.services.base_url}/image/v2/images/{image.id}"})


@router.route("GET", IMAGE, rule="image:get_image")
async def show(call: ApiCall) -> dict[str, Any]:
    images = call.services.images
    return images.view(await images.get(call.ctx, call.params["image_id"]))


@router.route("GET", IMAGE + "/tasks", rule="image:get_image")
async def image_tasks(call: ApiCall) -> dict[str, Any]:
    """Glance 2.12's tasks of an image: novalite's imports run in process, none is kept."""
    await call.services.images.get(call.ctx, call.params["image_id"])
    return {"tasks": []}


@router.route("GET", "/v2/images/", rule="image:get_image")
@router.route("DELETE", "/v2/images/", rule="image:delete_image")
async def no_image_id(call: ApiCall) -> Reply:
    """``/v2/images/`` with an empty id names no image (not the list)."""
    raise NotFound("The resource could not be found.")


@router.route("PATCH", IMAGE, rule="image:modify_image")
async def update(call: ApiCall) -> dict[str, Any]:
    images = call.services.images
    media = call.request.headers.get("content-type", "").split(";")[0].strip()
    if media not in patch.MEDIA_TYPES:
        raise UnsupportedMediaType(f"Content type {media or '(none)'} is not supported; "
                                   f"send {patch.MEDIA_TYPES[0]}")
    image = await images.update(call.ctx, call.params["image_id"], call.body)
    return images.view(image)


@router.route("DELETE", IMAGE, rule="image:delete_image")
async def delete(call: ApiCall) -> Reply:
    images = call.services.images
    await images.delete(call.ctx, call.params["image_id"])
    return Reply(204)


@router.route("PUT", IMAGE + "/tags/{tag}", rule="image:modify_image")
async def add_tag(call: ApiCall) -> Reply:
    images = call.services.images
    await images.add_tag(call.ctx, call.params["image_id"], call.params["tag"])
    return Reply(204)


@router.route("DELETE", IMAGE + "/tags/{tag}", rule="image:modify_image")
async def remove_tag(call: ApiCall) -> Reply:
    images = call.services.images
    await images.remove_tag(call.ctx, call.params["image_id"], call.params["tag"])
    return Reply(204)


@router.route("PUT", IMAGE + "/file", rule="image:upload_image", parse_body=False)
async def upload(call: ApiCall) -> Reply:
    images = call.services.images
    headers = call.request.headers
    length = headers.get("content-length")
    try:
        await images.upload(call.ctx, call.params["image_id"], call.request.stream(),
                            declared_size=int(length) if length and length.isdigit()
                            else None, content_md5=headers.get("content-md5"))
    except ClientDisconnect:
        return Reply(400)  # nobody is listening; the image went back to queued
    return Reply(204)


@router.route("GET", IMAGE + "/file", rule="image:download_image")
async def download(call: ApiCall) -> Response | Reply:
    images = call.services.images
    image = await images.get(call.ctx, call.params["image_id"])
    if image.status == "deactivated" and not call.ctx.is_admin:
        raise Forbidden("The requested image has been deactivated. Image data download is "
                        "prohibited.")
    if image.status not in ("active", "deactivated") or not image.path:
        return Reply(204)  # Glance: an image without data answers No Content
    return ImageDataResponse(image.path, image.checksum, image.size or 0)


@router.route("POST", IMAGE + "/actions/deactivate", rule="image:deactivate")
async def deactivate(call: ApiCall) -> Reply:
    await call.services.images.deactivate(call.ctx, call.params["image_id"])
    return Reply(204)


@router.route("POST", IMAGE + "/actions/reactivate", rule="image:reactivate")
async def reactivate(call: ApiCall) -> Reply:
    await call.services.images.reactivate(call.ctx, call.params["image_id"])
    return Reply(204)


# -- members (sharing) -----------------------------------------------------------------
@router.route("POST", IMAGE + "/members", rule="image:add_member")
async def add_member(call: ApiCall) -> dict[str, Any]:
    member = await call.services.images.add_member(call.ctx, call.params["image_id"],
                                                   call.body)
    return member_view(member)


@router.route("GET", IMAGE + "/members", rule="image:get_members")
async def list_members(call: ApiCall) -> dict[str, Any]:
    found = await call.services.images.list_members(call.ctx, call.params["image_id"])
    return {"members": [member_view(m) for m in found], "schema": "/v2/schemas/members"}


@router.route("GET", MEMBER, rule="image:get_member")
async def show_member(call: ApiCall) -> dict[str, Any]:
    p = call.params
    return member_view(await call.services.images.show_member(call.ctx, p["image_id"],
                                                              p["member_id"]))


@router.route("PUT", MEMBER, rule="image:modify_member")
async def update_member(call: ApiCall) -> dict[str, Any]:
    p = call.params
    return member_view(await call.services.images.update_member(
        call.ctx, p["image_id"], p["member_id"], call.body))


@router.route("DELETE", MEMBER, rule="image:delete_member")
async def remove_member(call: ApiCall) -> Reply:
    p = call.params
    await call.services.images.remove_member(call.ctx, p["image_id"], p["member_id"])
    return Reply(204)


@router.route("GET", "/v2/info/import", rule="image:get_images")
async def import_info(call: ApiCall) -> dict[str, Any]:
    return {"import-methods": {"description": "Import methods available.",
                               "type": "array", "value": list(IMPORT_METHODS)}}


@router.route("POST", IMAGE + "/import", rule="image:import_image")
async def import_image(call: ApiCall) -> Reply:
    images = call.services.images
    await images.import_image(call.ctx, call.params["image_id"], call.body)
    return Reply(202)


class ImageDataResponse(Response):
    """An image's stored data, sent in blocks as it is read and verified.

    :meth:`DataStore.send` reads ahead and verifies while this sends; the response
    stops when the client disconnects. Stored data that fails verification cuts the
    body short (the error is raised after the headers went out, so the connection
    closes with the body incomplete).
    """

    media_type = "application/octet-stream"

    def __init__(self, path: str, checksum: str | None, size: int) -> None:
        self.path = path
        self.checksum = checksum
        self.status_code = 200
        self.background = None
        self.init_headers({"Content-MD5": checksum or "", "Content-Length": str(size)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        if scope.get("method") == "HEAD":  # the headers are the answer; no need to read
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        async def body(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            async with trio.open_nursery() as nursery:
                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_disconnect)
                await DataStore.send(self.path, self.checksum, body)  # may raise DataCorrupt
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # raise the one exception itself
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise


def _larger_socket_reads() -> None:
    """Let Hypercorn read request bodies 1 MiB at a time instead of 64 KiB."""
    import hypercorn.trio.tcp_server as tcp_server

    tcp_server.MAX_RECV = max(tcp_server.MAX_RECV, 1 << 20)


_larger_socket_reads()


def routes(services: Services, authenticate: Authenticator) -> list[Route]:
    """The routes under ``/image``, errors in Glance's shape."""
    return starlette_routes([router, metadefs, tasks], services, authenticate=authenticate,
                            style="glance")
