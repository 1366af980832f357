"""HTTP routes of the embedded Glance v2 subset, mounted at ``/image``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from novalite.api.framework import ApiCall, Authenticator, Reply, make_route
from novalite.exceptions import NotFound
from novalite.image.service import ImageService

FILTERS = ("name", "status", "visibility", "disk_format", "id", "limit", "marker", "owner")


def routes(images: ImageService, authenticate: Authenticator) -> list[Route]:
    base = images.cfg.public_url

    async def versions(request: Request) -> Response:
        return JSONResponse({"versions": [
            {"id": "v2.16", "status": "CURRENT",
             "links": [{"rel": "self", "href": f"{base}/image/v2/"}]},
        ]}, status_code=300)

    async def list_images(call: ApiCall) -> dict[str, Any]:
        filters = {k: v for k, v in call.query.items() if k in FILTERS}
        found = await images.list(call.ctx, filters)  # type: ignore[arg-type]
        return {"images": [images.view(i) for i in found], "first": "/v2/images",
                "schema": "/v2/schemas/images"}

    async def create(call: ApiCall) -> Reply:
        image = await images.create(call.ctx, call.body or {})
        return Reply(201, images.view(image))

    async def show(call: ApiCall) -> dict[str, Any]:
        return images.view(await images.get(call.ctx, call.params["image_id"]))

    async def delete(call: ApiCall) -> Reply:
        await images.delete(call.ctx, call.params["image_id"])  # type: ignore[arg-type]
        return Reply(204)

    async def upload(call: ApiCall) -> Reply:
        await images.upload(call.ctx, call.params["image_id"], call.request.stream())
        return Reply(204)

    async def download(call: ApiCall) -> Response:
        image = await images.get(call.ctx, call.params["image_id"])
        if image.status != "active" or not image.path:
            raise NotFound(f"Image {image.id} has no data")
        path = image.path

        async def body() -> AsyncIterator[bytes]:
            with open(path, "rb") as f:
                while data := f.read(1 << 20):
                    yield data

        headers = {"Content-MD5": image.checksum or "", "Content-Length": str(image.size or 0)}
        return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)

    auth: dict[str, Any] = {"authenticate": authenticate}
    return [
        Route("/", versions, methods=["GET"]),
        make_route("/v2/images", "GET", list_images, **auth),
        make_route("/v2/images", "POST", create, **auth),
        make_route("/v2/images/{image_id}", "GET", show, **auth),
        make_route("/v2/images/{image_id}", "DELETE", delete, **auth),
        make_route("/v2/images/{image_id}/file", "PUT", upload, parse_body=False, **auth),
        make_route("/v2/images/{image_id}/file", "GET", download, **auth),
    ]
