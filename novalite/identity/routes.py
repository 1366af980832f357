"""HTTP routes of the embedded Keystone v3 subset, mounted at ``/identity``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from novalite.api.framework import ApiCall, Reply, make_route
from novalite.exceptions import BadRequest, NovaliteError, Unauthorized
from novalite.identity import admin_routes
from novalite.identity.admin import IdentityAdmin
from novalite.identity.service import IdentityService

VERSION_ID = "v3.14"


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


def routes(identity: IdentityService) -> list[Route]:
    base = identity.cfg.public_url

    async def versions(request: Request) -> Response:
        return JSONResponse({"versions": {"values": [_version_entry(base)]}}, status_code=300)

    async def version(request: Request) -> Response:
        return JSONResponse({"version": _version_entry(base)})

    async def issue(call: ApiCall) -> Reply:
        args = _password_auth(call.body)
        if not (args["user_name"] or args["user_id"]):
            raise BadRequest("Expecting to find user name or id in the request body")
        token, ctx = await identity.authenticate(**args)
        return Reply(201, identity.token_body(ctx), {"X-Subject-Token": token})

    async def authenticate(request: Request):  # type: ignore[no-untyped-def]
        return await identity.validate(request.headers.get("x-auth-token"))

    async def check(call: ApiCall) -> Reply:
        subject = call.request.headers.get("x-subject-token")
        try:
            ctx = await identity.validate(subject)
        except Unauthorized:
            from novalite.exceptions import NotFound

            raise NotFound("Could not find token.") from None
        if call.request.method == "HEAD":
            return Reply(200, None, {"X-Subject-Token": subject or ""})
        return Reply(200, identity.token_body(ctx), {"X-Subject-Token": subject or ""})

    async def revoke(call: ApiCall) -> Reply:
        subject = call.request.headers.get("x-subject-token")
        if not subject:
            raise BadRequest("X-Subject-Token header is required")
        await identity.revoke(subject)
        return Reply(204)

    async def head_check(request: Request) -> Response:
        try:
            await identity.validate(request.headers.get("x-auth-token"))
            await identity.validate(request.headers.get("x-subject-token"))
        except NovaliteError as exc:
            return Response(status_code=404 if exc.code == 401 else exc.code)
        return Response(status_code=200)

    kw: dict[str, Any] = {"style": "keystone"}
    return [
        Route("/", versions, methods=["GET"]),
        Route("/v3", version, methods=["GET"]),
        Route("/v3/", version, methods=["GET"]),
        make_route("/v3/auth/tokens", "POST", issue, authenticate=None, **kw),
        make_route("/v3/auth/tokens", "GET", check, authenticate=authenticate, **kw),
        Route("/v3/auth/tokens", head_check, methods=["HEAD"]),
        make_route("/v3/auth/tokens", "DELETE", revoke, authenticate=authenticate, **kw),
        *admin_routes.routes(IdentityAdmin(identity), authenticate, base),
    ]
