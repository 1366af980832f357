"""The ASGI application: /identity, /image and /compute on one listener (DevStack's prefixes)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novalite import metrics
from novalite.api import compute, identity, image, network, root, volumes
from novalite.api.framework import (
    TITLES,
    JSONResponse,
    Services,
    error_response,
    internal_error,
    parse_version,
)
from novalite.compute.api import ComputeAPI
from novalite.compute.hosts import HostAPI
from novalite.console.proxy import ConsoleProxy
from novalite.context import AuthContext
from novalite.exceptions import Forbidden, NovaliteError
from novalite.identity.external import ExternalIdentity
from novalite.identity.service import IdentityService
from novalite.image.service import ImageService

log = structlog.get_logger("novalite.api")

#: Each mount's prefix and routers (the version documents are public: no rule).
MOUNTS = (("/identity", identity.ROUTERS), ("/image", [image.router]),
          ("/compute", compute.ROUTERS), ("/volume", volumes.ROUTERS),
          ("/network", [network.router]))


def policy_operations() -> dict[str, list[str]]:
    """rule -> the operations it guards (``"POST /compute/v2.1/servers/{server_id}/action
    (os-stop)"``), over every mount, as Nova's policy documentation lists them. Rules
    checked inside a handler (another user's key pairs, ``all_projects``) have none."""
    out: dict[str, list[str]] = {}
    for prefix, routers in MOUNTS:
        for router in routers:
            for rule, operations in router.rule_operations(prefix).items():
                out.setdefault(rule, []).extend(operations)
    return out


def openapi_routes(mounts: list[tuple[str, list[Any]]], max_version: Any) -> list[Route]:
    """``GET <mount>/openapi.json`` for each mount served (no token: it says what any
    client may read in the API reference), each document built on first request."""
    from novalite.api import openapi

    out = []
    for prefix, routers in mounts:
        cache: dict[str, Response] = {}

        async def serve_document(request: Request, prefix: str = prefix,
                                 routers: list[Any] = routers,
                                 cache: dict[str, Response] = cache) -> Response:
            if "doc" not in cache:
                doc = openapi.document(prefix, routers, max_version
                                       if prefix == "/compute" else None)
                cache["doc"] = JSONResponse(doc)
            return cache["doc"]

        out.append(Route(f"{prefix}/openapi.json", serve_document, methods=["GET"]))
    return out


def error_style(path: str) -> str:
    """The error body of the API a path belongs to (framework.error_response's style)."""
    if path.startswith("/identity"):
        return "keystone"
    if path.startswith("/network"):
        return "neutron"
    return "glance" if path.startswith("/image") else "nova"


async def _server_error(request: Request, exc: Exception) -> Response:
    """What escaped a route (Starlette's last resort): the traceback and request id in
    the log, a 500 in the API's own error body (never text/plain)."""
    log.error("unexpected error", method=request.method, path=request.url.path,
              exc_info=exc)
    request.scope["novalite.error_logged"] = True
    return error_response(internal_error(exc, request), error_style(request.url.path))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such path) and 405 (no such method) in the API's body."""
    assert isinstance(exc, HTTPException)
    error = NovaliteError(TITLES.get(exc.status_code, exc.detail))
    error.code = exc.status_code
    error.title = {404: "itemNotFound", 405: "badMethod"}.get(exc.status_code, "computeFault")
    response = error_response(error, error_style(request.url.path))
    response.headers.update(exc.headers or {})
    return response


class RequestIdMiddleware:
    """Assigns ``req-<uuid>``, binds it for logging, returns it as x-openstack-request-id;
    limits request bodies to ``max_body`` bytes (``[api] max_request_body_size``)."""

    def __init__(self, app: ASGIApp, max_body: int | None = None) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in ("/identity", "/image", "/compute", "/volume", "/network"):
            scope = dict(scope, path=scope["path"] + "/")
        request_id = f"req-{uuid.uuid4()}"
        scope["novalite.request_id"] = request_id
        if self.max_body is not None:
            scope["novalite.max_body"] = self.max_body
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status, response_started = 500, False
        # An answer given before the request body was read (a 413 for a declared size)
        # ends the connection: what the client still sends is not a next request.
        body_pending = any(name == b"transfer-encoding" or (name == b"content-length"
                                                            and value.strip() != b"0")
                           for name, value in scope["headers"])

        async def receive_wrapper() -> Message:
            nonlocal body_pending
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers = list(message.get("headers", []))
                if body_pending:
                    headers.append((b"connection", b"close"))
                headers.append((b"x-openstack-request-id", request_id.encode()))
                if scope["path"].startswith("/compute"):
                    headers.append((b"x-compute-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive_wrapper if body_pending else receive, send_wrapper)
        except Exception as exc:
            # Starlette answered (_server_error) and logged it, then re-raised: done here.
            if not scope.get("novalite.error_logged"):
                log.exception("unexpected error", method=scope["method"], path=scope["path"])
                if status == 500 and not response_started:
                    await error_response(internal_error(exc, Request(scope)),
                                         error_style(scope["path"]))(scope, receive,
                                                                     send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            metrics.observe_request(scope, status, seconds)
            log.info("request", method=scope["method"], path=scope["path"], status=status,
                     ms=round(seconds * 1000, 1))


def build_app(identity_service: IdentityService | ExternalIdentity, images: ImageService,
              compute_api: ComputeAPI, hosts: HostAPI) -> Any:
    """The application: the handlers of :mod:`novalite.api` over these services."""
    async def authenticate(request: Request) -> AuthContext:
        return await identity_service.validate(request.headers.get("x-auth-token"))

    cfg = compute_api.cfg
    embedded = identity_service if isinstance(identity_service, IdentityService) else None
    services = Services(compute=compute_api, hosts=hosts, images=images, identity=embedded,
                        max_version=parse_version(cfg.api.max_microversion),
                        base_url=cfg.public_url)
    # With an external Keystone ([keystone_authtoken]) the embedded identity is not served.
    own_identity = [] if embedded is None else [
        Mount("/identity", routes=identity.routes(services, authenticate))]
    async def scrape(request: Request) -> Response:
        """``GET /metrics``: an admin token, or (``[metrics] loopback_without_token``) a
        client on this machine's loopback."""
        client = request.client.host if request.client else ""
        try:
            if not (cfg.metrics.loopback_without_token and client in ("127.0.0.1", "::1")):
                ctx = await authenticate(request)
                if "admin" not in ctx.roles:
                    raise Forbidden("Only an admin may read the metrics.")
        except NovaliteError as exc:
            return error_response(exc)
        body, content_type = await metrics.scrape()
        return Response(body, headers={"Content-Type": content_type})

    served = [(prefix, routers) for prefix, routers in MOUNTS
              if not (prefix == "/identity" and embedded is None)
              and not (prefix == "/image" and cfg.glance.api_servers)]
    app = Starlette(routes=[
        *root.routes(cfg),  # GET /: an index of the mounts below
        *openapi_routes(served, services.max_version),  # GET <mount>/openapi.json
        *([Route("/metrics", scrape, methods=["GET"])] if cfg.metrics.enabled else []),
        *own_identity,
        *([] if cfg.glance.api_servers else [  # an external Glance serves images
            Mount("/image", routes=image.routes(services, authenticate))]),
        Mount("/compute", routes=compute.routes(services, authenticate)),
        Mount("/volume", routes=volumes.routes(services, authenticate)),
        Mount("/network", routes=network.routes(services, authenticate)),
        *ConsoleProxy(compute_api.db, cfg).routes(),  # websocket and noVNC at the root
    ], exception_handlers={Exception: _server_error, HTTPException: _http_error})
    return RequestIdMiddleware(app, cfg.api.max_request_body_size)
