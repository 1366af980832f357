"""``GET /``: an index of what the listener serves, for whoever starts at the root URL.

Each service (keyed by its catalog type) gives the URL it is mounted at and its
version documents: ``versions`` (the list, at the mount's root) and, where the
service has one, ``version`` (the current version's document). A service handed
to an external deployment ([keystone_authtoken], [glance]) is listed at its URL,
marked ``external``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from novalite import __version__
from novalite.config import Config


def index(cfg: Config) -> dict[str, Any]:
    """The body of ``GET /`` for this configuration."""
    base = cfg.public_url
    services: dict[str, dict[str, Any]] = {}
    if cfg.keystone_authtoken.auth_url:
        services["identity"] = {"href": cfg.keystone_authtoken.auth_url, "external": True}
    else:
        services["identity"] = {"href": f"{base}/identity", "versions": f"{base}/identity/",
                                "version": f"{base}/identity/v3/"}
    services["compute"] = {"href": f"{base}/compute", "versions": f"{base}/compute/",
                           "version": f"{base}/compute/v2.1/"}
    if cfg.glance.api_servers:
        services["image"] = {"href": cfg.glance.api_servers[0], "external": True}
    else:
        services["image"] = {"href": f"{base}/image", "versions": f"{base}/image/"}
    return {"name": "novalite", "version": __version__,
            "description": "OpenStack Nova, with Keystone and Glance subsets, as one process",
            "services": services, "links": [{"rel": "self", "href": f"{base}/"}]}


def routes(cfg: Config) -> list[Route]:
    """``GET /`` (and HEAD), served without a token."""
    body = index(cfg)

    async def root(request: Request) -> JSONResponse:
        return JSONResponse(body)

    return [Route("/", root, methods=["GET"])]
