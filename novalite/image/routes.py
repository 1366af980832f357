"""HTTP routes of the embedded Glance v2 subset, mounted at ``/image``.

Each route authenticates, checks its policy rule (:mod:`novalite.policy`), calls
:class:`~novalite.image.service.ImageService` and answers errors in Glance's
shape (``style="glance"`` of :func:`novalite.api.framework.error_response`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from novalite.api.framework import ApiCall, Authenticator, Reply, guarded, make_route
from novalite.exceptions import NotFound
from novalite.image import patch
from novalite.image.errors import UnsupportedMediaType
from novalite.image.service import ImageService
from novalite.image.store import DataStore
from novalite.image.web_download import IMPORT_METHODS


def routes(images: ImageService, authenticate: Authenticator) -> list[Route]:
    base = images.cfg.public_url

    async def versions(request: Request) -> Response:
        return JSONResponse({"versions": [
            {"id": "v2.16", "status": "CURRENT",
             "links": [{"rel": "self", "href": f"{base}/image/v2/"}]},
        ]}, status_code=300)

    async def list_images(call: ApiCall) -> dict[str, Any]:
        query = {key: call.query.getlist(key) for key in call.query.keys()}
        found, marker = await images.list(call.ctx, query)
        out: dict[str, Any] = {"images": [images.view(i) for i in found],
                               "first": "/v2/images", "schema": "/v2/schemas/images"}
        if marker:
            params = [(k, v) for k, values in query.items() if k != "marker" for v in values]
            out["next"] = "/v2/images?" + urlencode([*params, ("marker", marker)])
        return out

    async def create(call: ApiCall) -> Reply:
        image = await images.create(call.ctx, call.body or {})
        return Reply(201, images.view(image),
                     {"Location": f"{base}/image/v2/images/{image.id}"})

    async def show(call: ApiCall) -> dict[str, Any]:
        return images.view(await images.get(call.ctx, call.params["image_id"]))

    async def update(call: ApiCall) -> dict[str, Any]:
        media = call.request.headers.get("content-type", "").split(";")[0].strip()
        if media not in patch.MEDIA_TYPES:
            raise UnsupportedMediaType(f"Content type {media or '(none)'} is not supported; "
                                       f"send {patch.MEDIA_TYPES[0]}")
        image = await images.update(call.ctx, call.params["image_id"], call.body)
        return images.view(image)

    async def delete(call: ApiCall) -> Reply:
        await images.delete(call.ctx, call.params["image_id"])
        return Reply(204)

    async def add_tag(call: ApiCall) -> Reply:
        await images.add_tag(call.ctx, call.params["image_id"], call.params["tag"])
        return Reply(204)

    async def remove_tag(call: ApiCall) -> Reply:
        await images.remove_tag(call.ctx, call.params["image_id"], call.params["tag"])
        return Reply(204)

    async def upload(call: ApiCall) -> Reply:
        headers = call.request.headers
        length = headers.get("content-length")
        try:
            await images.upload(call.ctx, call.params["image_id"], call.request.stream(),
                                declared_size=int(length) if length and length.isdigit()
                                else None, content_md5=headers.get("content-md5"))
        except ClientDisconnect:
            return Reply(400)  # nobody is listening; the image went back to queued
        return Reply(204)

    async def download(call: ApiCall) -> Response:
        image = await images.get(call.ctx, call.params["image_id"])
        if image.status != "active" or not image.path:
            raise NotFound(f"Image {image.id} has no data (status {image.status})")
        return ImageDataResponse(image.path, image.checksum, image.size or 0)

    async def import_info(call: ApiCall) -> dict[str, Any]:
        return {"import-methods": {"description": "Import methods available.",
                                   "type": "array", "value": list(IMPORT_METHODS)}}

    async def import_image(call: ApiCall) -> Reply:
        await images.import_image(call.ctx, call.params["image_id"], call.body)
        return Reply(202)

    def route(path: str, method: str, rule: str, handler: Any,
              parse_body: bool = True) -> Route:
        return make_route(path, method, guarded(rule, handler), authenticate=authenticate,
                          style="glance", parse_body=parse_body)

    image = "/v2/images/{image_id}"
    return [
        Route("/", versions, methods=["GET"]),
        route("/v2/images", "GET", "image:get_images", list_images),
        route("/v2/images", "POST", "image:add_image", create),
        route(image, "GET", "image:get_image", show),
        route(image, "PATCH", "image:modify_image", update),
        route(image, "DELETE", "image:delete_image", delete),
        route(image + "/tags/{tag}", "PUT", "image:modify_image", add_tag),
        route(image + "/tags/{tag}", "DELETE", "image:modify_image", remove_tag),
        route(image + "/file", "PUT", "image:upload_image", upload, parse_body=False),
        route(image + "/file", "GET", "image:download_image", download),
        route(image + "/import", "POST", "image:import_image", import_image),
        route("/v2/info/import", "GET", "image:get_images", import_info),
    ]


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
