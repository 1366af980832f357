"""The ASGI application: /identity, /image and /compute on one listener (DevStack's prefixes)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novalite.api import compute_routes
from novalite.api.framework import parse_version
from novalite.compute.api import ComputeAPI
from novalite.compute.hosts import HostAPI
from novalite.context import AuthContext
from novalite.identity import routes as identity_routes
from novalite.identity.service import IdentityService
from novalite.image import routes as image_routes
from novalite.image.service import ImageService

log = structlog.get_logger("novalite.api")


class RequestIdMiddleware:
    """Assigns ``req-<uuid>``, binds it for logging, returns it as x-openstack-request-id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in ("/identity", "/image", "/compute"):
            scope = dict(scope, path=scope["path"] + "/")
        request_id = f"req-{uuid.uuid4()}"
        scope["novalite.request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-openstack-request-id", request_id.encode()))
                if scope["path"].startswith("/compute"):
                    headers.append((b"x-compute-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info("request", method=scope["method"], path=scope["path"], status=status,
                     ms=round((time.perf_counter() - started) * 1000, 1))


def build_app(identity: IdentityService, images: ImageService, compute: ComputeAPI,
              hosts: HostAPI) -> Any:
    async def authenticate(request: Request) -> AuthContext:
        return await identity.validate(request.headers.get("x-auth-token"))

    max_version = parse_version(compute.cfg.api.max_microversion)
    # With an external Keystone ([keystone_authtoken]) the embedded identity is not served.
    own_identity = [] if getattr(identity, "external", False) else [
        Mount("/identity", routes=identity_routes.routes(identity))]
    app = Starlette(routes=[
        *own_identity,
        *([] if compute.cfg.glance.api_servers else [  # an external Glance serves images
            Mount("/image", routes=image_routes.routes(images, authenticate))]),
        Mount("/compute", routes=compute_routes.routes(compute, hosts, authenticate,
                                                       max_version)),
    ])
    return RequestIdMiddleware(app)
