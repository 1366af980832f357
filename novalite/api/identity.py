"""The embedded Keystone v3 subset, mounted at ``/identity``: version documents and
tokens. Its administration (projects, users, roles) is :mod:`novalite.api.identity_admin`.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from novalite.api import identity_admin, identity_credentials, schemas
from novalite.api.framework import ApiCall, Authenticator, Call, Reply, Router, Services
from novalite.api.framework import starlette_routes as _starlette_routes
from novalite.context import AuthContext
from novalite.exceptions import BadRequest, Forbidden, NotFound, Unauthorized

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
        raise Unauthorized(f"Unsupported authentication methods: {methods}; use password "
                           "or application_credential")
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


def _app_cred_auth(body: Any) -> tuple[dict[str, Any], str] | None:
    """(credential reference, secret) of an ``application_credential`` auth request;
    None for any other method."""
    try:
        identity = body["auth"]["identity"]
        if identity["methods"] != ["application_credential"]:
            return None
    except (KeyError, TypeError):
        return None
    ref = identity.get("application_credential")
    if not isinstance(ref, dict) or not isinstance(ref.get("secret"), str):
        raise BadRequest("Expecting to find application_credential.secret in the request "
                         "body")
    if not ref.get("id") and not (ref.get("name") and isinstance(ref.get("user"), dict)):
        raise BadRequest("Expecting to find application_credential.id, or its name and "
                         "user, in the request body")
    if body["auth"].get("scope"):
        raise Unauthorized("Application credentials cannot request a scope.")
    return ref, ref["secret"]


@router.public("POST", "/v3/auth/tokens")
async def issue(call: Call) -> Reply:
    identity = call.services.keystone
    app_cred = _app_cred_auth(call.body)
    if app_cred is not None:
        token, ctx = await identity.authenticate_app_cred(*app_cred)
        return Reply(201, identity.token_body(ctx), {"X-Subject-Token": token})
    args = _password_auth(call.body)
    if not (args["user_name"] or args["user_id"]):
        raise BadRequest("Expecting to find user name or id in the request body")
    token, ctx = await identity.authenticate(**args)
    return Reply(201, identity.token_body(ctx), {"X-Subject-Token": token})


def _may_see_token(caller: AuthContext, subject: AuthContext, rule: str) -> None:
    """Keystone's token policies: the token's own user, or an admin (and, to validate
    with GET, a service user) may act on a token; anyone else gets 403."""
    allowed = {"identity:check_token": ("admin",),
               "identity:validate_token": ("admin", "service"),
               "identity:revoke_token": ("admin",)}[rule]
    if caller.user_id == subject.user_id or any(r in caller.roles for r in allowed):
        return
    raise Forbidden(f"You are not authorized to perform the requested action: {rule}.")


async def _subject(call: ApiCall) -> tuple[str, AuthContext]:
    subject = call.request.headers.get("x-subject-token")
    if not subject:
        if call.request.method == "DELETE":
            raise BadRequest("X-Subject-Token header is required")
        raise NotFound("Could not find token.")
    try:
        return subject, await call.services.keystone.validate(subject)
    except Unauthorized:
        raise NotFound("Could not find token.") from None


# GET also answers HEAD (Starlette adds it): the headers without the body.
@router.route("GET", "/v3/auth/tokens", rule=None)
async def check(call: ApiCall) -> Reply:
    subject, ctx = await _subject(call)
    if call.request.method == "HEAD":
        _may_see_token(call.ctx, ctx, "identity:check_token")
        return Reply(200, None, {"X-Subject-Token": subject})
    _may_see_token(call.ctx, ctx, "identity:validate_token")
    return Reply(200, call.services.keystone.token_body(ctx), {"X-Subject-Token": subject})


@router.route("DELETE", "/v3/auth/tokens", rule=None)
async def revoke(call: ApiCall) -> Reply:
    subject, ctx = await _subject(call)
    _may_see_token(call.ctx, ctx, "identity:revoke_token")
    await call.services.keystone.revoke(subject)
    return Reply(204)


ROUTERS: list[Router] = [router, identity_admin.router, identity_credentials.router]


def routes(services: Services, authenticate: Authenticator) -> list[Route]:
    """The routes under ``/identity``, errors in Keystone's shape."""
    return _starlette_routes(ROUTERS, services, authenticate=authenticate, style="keystone")
