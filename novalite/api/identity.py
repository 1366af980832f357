"""The embedded Keystone v3 subset, mounted at ``/identity``: version documents and
tokens. Its administration (projects, users, roles) is :mod:`novalite.api.identity_admin`.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from novalite.api import identity_admin, schemas
from novalite.api.framework import ApiCall, Authenticator, Call, Reply, Router, Services
from novalite.api.framework import starlette_routes as _starlette_routes
from novalite.exceptions import BadRequest, NotFound, Unauthorized

VERSION_ID = "v3.14"

router = Router()


def _version_entry(base: str) -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.identity-v3+json"}],
    }


def _password_auth(body: Any) -> dict[str, Any]:
    schemas.validate(body, schemas.TOKEN_ISSUE)
    try:
        auth = body["auth"]
        identity = auth["identity"]
        methods = identity["methods"]
    except (KeyError, TypeError):
        raise BadRequest("Expecting to find auth.identity.methods in the request body") from None
    if methods != ["password"]:
        raise Unauthorized(f"Unsupported authentication methods: {methods}; use password")
    try:
        user = identity["password"]["user"]
        password = user["password"]
    except (KeyError, TypeError):
        raise BadRequest("Expecting to find password.user.password in the request body") from None
    scope = (auth.get("scope") or {}).get("project") or {}
    return {
        "user_name": user.get("name"),
        "user_id": user.get("id"),
        "user_domain": (user.get("domain") or {}).get("name")
        or (user.get("domain") or {}).get("id"),
        "password": password,
        "project_name": scope.get("name"),
        "project_id": scope.get("id"),
        "project_domain": (scope.get("domain") or {}).get("name")
        or (scope.get("domain") or {}).get("id"),
    }


@router.public("GET", "/")
async def versions(call: Call) -> Reply:
    return Reply(300, {"versions": {"values": [_version_entry(call.services.base_url)]}})


@router.public("GET", "/v3")
@router.public("GET", "/v3/")
async def version(call: Call) -> Reply:
    return Reply(200, {"version": _version_entry(call.services.base_url)})


@router.public("POST", "/v3/auth/tokens")
async def issue(call: Call) -> Reply:
    identity = call.services.identity
    args = _password_auth(call.body)
    if not (args["user_name"] or args["user_id"]):
        raise BadRequest("Expecting to find user name or id in the request body")
    token, ctx = await identity.authenticate(**args)
    return Reply(201, identity.token_body(ctx), {"X-Subject-Token": token})


# GET also answers HEAD (Starlette adds it): the headers without the body.
@router.route("GET", "/v3/auth/tokens", rule=None)
async def check(call: ApiCall) -> Reply:
    identity = call.services.identity
    subject = call.request.headers.get("x-subject-token")
    try:
        ctx = await identity.validate(subject)
    except Unauthorized:
        raise NotFound("Could not find token.") from None
    if call.request.method == "HEAD":
        return Reply(200, None, {"X-Subject-Token": subject or ""})
    return Reply(200, identity.token_body(ctx), {"X-Subject-Token": subject or ""})


@router.route("DELETE", "/v3/auth/tokens", rule=None)
async def revoke(call: ApiCall) -> Reply:
    subject = call.request.headers.get("x-subject-token")
    if not subject:
        raise BadRequest("X-Subject-Token header is required")
    await call.services.identity.revoke(subject)
    return Reply(204)


ROUTERS: list[Router] = [router, identity_admin.router]


def routes(services: Services, authenticate: Authenticator) -> list[Route]:
    """The routes under ``/identity``, errors in Keystone's shape."""
    return _starlette_routes(ROUTERS, services, authenticate=authenticate, style="keystone")
