"""The thin layer between HTTP and the service layers.

Each resource family is a module of ``novalite.api`` with a module-level
:class:`Router`; its handlers are module-level functions registered with their
method, path and policy rule. An authenticated handler receives an
:class:`ApiCall` (the caller's :class:`~novalite.context.AuthContext`, never
None; the negotiated microversion; path and query parameters; the parsed JSON
body; the :class:`Services` to call) and returns a :class:`Reply`, a JSON-able
body or a Starlette response. Routes served without a token receive a
:class:`Call`, which has no ``ctx``. The actions posted to one ``.../action``
URL are an :class:`ActionRegistry`: one handler per action name, each with its
own policy rule. Errors are exceptions from :mod:`novalite.exceptions`, mapped
to Nova's (or Keystone's, or Glance's) error body here and nowhere else.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import Route

from novalite.context import AuthContext
from novalite.exceptions import (
    BadRequest,
    InternalError,
    NotAcceptable,
    NotFound,
    NovaliteError,
    RequestTooLarge,
    UnsupportedMediaType,
)
from novalite.policy import authorize

if TYPE_CHECKING:
    from novalite.compute.api import ComputeAPI
    from novalite.compute.hosts import HostAPI
    from novalite.identity.admin import IdentityAdmin
    from novalite.identity.service import IdentityService
    from novalite.image.service import ImageService

log = structlog.get_logger("novalite.api")

MIN_VERSION = (2, 1)
_MV_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@dataclass(frozen=True)
class Version:
    """A compute API microversion; compares with another Version or a "2.N" string."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def _key(self, other: object) -> tuple[tuple[int, int], tuple[int, int]]:
        if isinstance(other, str):
            other = parse_version(other)
        assert isinstance(other, Version)
        return (self.major, self.minor), (other.major, other.minor)

    def __ge__(self, other: object) -> bool:
        a, b = self._key(other)
        return a >= b

    def __gt__(self, other: object) -> bool:
        a, b = self._key(other)
        return a > b

    def __le__(self, other: object) -> bool:
        a, b = self._key(other)
        return a <= b

    def __lt__(self, other: object) -> bool:
        a, b = self._key(other)
        return a < b


@functools.lru_cache(maxsize=256)
def parse_version(text: str) -> Version:
    """``"2.N"`` -> Version (cached: views compare against constants many times a request;
    a bad string raises each time, exceptions are not cached)."""
    m = _MV_RE.match(text.strip())
    if not m:
        raise BadRequest(f"API Version String {text} is of invalid format. Must be of format "
                         "MajorNum.MinorNum.")
    return Version(int(m.group(1)), int(m.group(2)))


def negotiate(request: Request, max_version: Version) -> Version:
    """The compute microversion a request asks for (Nova's header rules)."""
    raw = None
    header = request.headers.get("openstack-api-version")
    if header:
        for item in header.split(","):
            parts = item.strip().split()
            if len(parts) == 2 and parts[0].lower() == "compute":
                raw = parts[1]
    if raw is None:
        raw = request.headers.get("x-openstack-nova-api-version")
    if raw is None:
        return Version(*MIN_VERSION)
    if raw.strip().lower() == "latest":
        return max_version
    version = parse_version(raw)
    if not (Version(*MIN_VERSION) <= version <= max_version):
        raise NotAcceptable(f"Version {version} is not supported by the API. Minimum is "
                            f"{Version(*MIN_VERSION)} and maximum is {max_version}.")
    return version


@dataclass(eq=False)
class Services:
    """What handlers call, built once per application by :func:`novalite.api.app.build_app`.

    Handlers are module-level functions; they reach the service layers through
    ``call.services`` instead of closures over a ``routes()`` function's arguments.
    """

    compute: ComputeAPI
    hosts: HostAPI
    images: ImageService
    #: The embedded Keystone, or None when tokens are validated by an external one
    #: ([keystone_authtoken]); its routes are then not mounted.
    identity: IdentityService | None
    #: The highest compute microversion served.
    max_version: Version
    #: The URL clients reach the service at (links in bodies, Location headers).
    base_url: str

    @functools.cached_property
    def identity_admin(self) -> IdentityAdmin:
        """Keystone administration (made on first use: only the embedded identity has it)."""
        from novalite.identity.admin import IdentityAdmin

        return IdentityAdmin(self.keystone)

    @property
    def keystone(self) -> IdentityService:
        """The embedded identity service, for the routes that only it has."""
        if self.identity is None:
            raise NotFound("The identity service is not served here: tokens are validated "
                           "by an external Keystone")
        return self.identity


@dataclass(slots=True, eq=False)
class Call:
    """One request as a handler sees it, before or without authentication: version
    documents and token issue. Authenticated handlers receive an :class:`ApiCall`."""

    request: Request
    version: Version
    request_id: str
    params: dict[str, str]
    body: Any
    services: Services
    _mv_cache: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def query(self) -> Any:
        return self.request.query_params

    def mv(self, text: str) -> bool:
        """True when the negotiated microversion is at least ``text`` (memoized: a list
        view asks the same questions for every item)."""
        known = self._mv_cache.get(text)
        if known is None:
            known = self._mv_cache[text] = self.version >= parse_version(text)
        return known


@dataclass(slots=True, eq=False)
class ApiCall(Call):
    """An authenticated request: ``ctx`` is whom the token names, never None."""

    ctx: AuthContext = field(kw_only=True)


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSONResponse, rendered by orjson (a 1,000-server detail list is
    about 2 MB of JSON; the standard encoder spends several times longer on it)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


#: HTTP reason phrases, for Keystone's and Glance's error bodies.
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          409: "Conflict", 410: "Gone", 413: "Request Entity Too Large",
          415: "Unsupported Media Type", 500: "Internal Server Error",
          503: "Service Unavailable", 504: "Gateway Timeout"}


def error_response(exc: NovaliteError, style: str = "nova") -> JSONResponse:
    """``exc`` in the error body of the API answering: ``nova`` (``{"itemNotFound":
    {"code", "message"}}``), ``keystone`` (``{"error": {...}}``), ``glance``
    (webob's ``{"code": "404 Not Found", "title", "message"}``) or ``neutron``
    (``{"NeutronError": {"type", "message", "detail"}}``)."""
    message = exc.message
    title = TITLES.get(exc.code, "Error")
    body: dict[str, Any]
    if style == "keystone":
        body = {"error": {"code": exc.code, "title": title, "message": message}}
    elif style == "glance":
        body = {"code": f"{exc.code} {title}", "title": title, "message": message}
    elif style == "neutron":
        if exc.code == 404 and message == title:  # no such path: Neutron's words
            message = "The resource could not be found."
        kind = getattr(exc, "neutron_type", None) or "HTTP" + title.replace(" ", "")
        body = {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    else:
        body = {exc.title: {"code": exc.code, "message": message}}
    headers = {}
    if exc.code == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    return JSONResponse(body, status_code=exc.code, headers=headers)


#: The most bytes of a JSON request body, unless the application's middleware sets
#: ``[api] max_request_body_size`` in the request's scope.
MAX_BODY = 114688
#: Media types a JSON route reads (Glance's PATCH takes its JSON-patch types).
_JSON_TYPES = ("application/json", "application/openstack-images-v2.1-json-patch",
               "application/openstack-images-v2.0-json-patch")
#: The integers a body may carry: a signed 64-bit column holds them.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, at most ``limit`` bytes (default :data:`MAX_BODY`): a larger
    declared or sent body raises :class:`RequestTooLarge` (413) without reading on."""
    limit = request.scope.get("novalite.max_body", MAX_BODY) if limit is None else limit
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"Request is too large: the body may be at most {limit} bytes.")
    if "novalite.body" in request.scope:
        return request.scope["novalite.body"]  # type: ignore[no-any-return]
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(
                f"Request is too large: the body may be at most {limit} bytes.")
        chunks.append(chunk)
    raw = request.scope["novalite.body"] = b"".join(chunks)
    request._body = raw  # Starlette's cache: request.body() answers it from now on
    return raw


async def read_json(request: Request) -> Any:
    """The JSON body (None when there is none), checked before any handler sees it:
    a Content-Type other than JSON is 415; invalid UTF-8 or JSON, lone surrogates, NaN,
    nesting deeper than 1,024, integers outside 64 bits and NUL characters are 400."""
    raw = await read_body(request)
    if not raw:
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _JSON_TYPES and not media.endswith("+json"):
        raise UnsupportedMediaType(f"Unsupported Content-Type: {media}; the body must be "
                                   "application/json")
    try:
        body = orjson.loads(raw)  # strict: no surrogates, NaN, or nesting past 1,024
    except orjson.JSONDecodeError:
        raise BadRequest("Malformed request body") from None
    problem = _unsafe(body)
    if problem:
        raise BadRequest(f"Malformed request body: {problem}")
    return body


def _unsafe(value: Any) -> str | None:
    """Why a parsed body cannot be stored (a NUL character, a number past 64 bits), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "strings may not contain NUL characters"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                return "integer out of range"
        elif isinstance(item, float):
            if not -1e18 < item < 1e18:  # orjson reads an integer past 64 bits as a float
                return "number out of range"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


Handler = Callable[[ApiCall], Awaitable[Any]]
PublicHandler = Callable[[Call], Awaitable[Any]]
ActionHandler = Callable[[ApiCall, Any], Awaitable[Any]]
Authenticator = Callable[[Request], Awaitable[AuthContext]]
#: The JSON schema a route's request body must meet: one schema, or one per microversion
#: (called with the negotiated version; None where the route does not exist at that
#: version and its handler answers 404). The same schema validates the request and
#: describes it in the mount's OpenAPI document (:mod:`novalite.api.openapi`).
BodySchema = dict[str, Any] | Callable[[Version], dict[str, Any] | None]
H = TypeVar("H", bound=Handler)
P = TypeVar("P", bound=PublicHandler)
A = TypeVar("A", bound=ActionHandler)


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One authenticated route: ``rule`` (novalite.policy) is checked before the
    handler runs; ``None`` means any valid token will do."""

    path: str
    method: str
    handler: Handler
    rule: str | None
    parse_body: bool = True
    #: Checked after the policy rule, before the handler runs (a 400 in the API's body).
    body: BodySchema | None = None


@dataclass(frozen=True, slots=True)
class PublicRouteSpec:
    """One route served without a token (version documents, token issue).
    ``versioned``: negotiate the compute microversion and answer its headers."""

    path: str
    method: str
    handler: PublicHandler
    versioned: bool = False
    body: BodySchema | None = None


def body_schema(schema: BodySchema | None, version: Version) -> dict[str, Any] | None:
    """The schema a body must meet at ``version`` (None: the route declares none)."""
    if schema is None or isinstance(schema, dict):
        return schema
    return schema(version)


def check_body(body: Any, schema: BodySchema | None, version: Version) -> Any:
    """``body`` once it meets the route's schema at ``version``; BadRequest otherwise."""
    resolved = body_schema(schema, version)
    if resolved is None:
        return body
    from novalite.api import schemas

    return schemas.validate(body, resolved)


class Router:
    """The routes of one resource family, registered by decorators on module-level
    handlers::

        router = Router()

        @router.route("GET", "/v2.1/flavors", rule="os_compute_api:flavors:index")
        async def list_flavors(call: ApiCall) -> dict[str, Any]: ...

    :func:`starlette_routes` turns the specs into Starlette routes for one mount.
    """

    def __init__(self) -> None:
        self.specs: list[RouteSpec] = []
        self.public_specs: list[PublicRouteSpec] = []
        #: (path, registry) of each ``.../action`` URL (``novalite policy`` lists them).
        self.actions: list[tuple[str, ActionRegistry]] = []

    def route(self, method: str, path: str, *, rule: str | None,
              parse_body: bool = True, body: BodySchema | None = None) -> Callable[[H], H]:
        """Register the decorated handler for ``method path`` behind ``rule``; ``body``:
        the JSON schema its request body must meet (see :data:`BodySchema`)."""

        def register(handler: H) -> H:
            self.specs.append(RouteSpec(path, method, handler, rule, parse_body, body))
            return handler

        return register

    def public(self, method: str, path: str, *, versioned: bool = False,
               body: BodySchema | None = None) -> Callable[[P], P]:
        """Register the decorated handler for ``method path``, served without a token."""

        def register(handler: P) -> P:
            self.public_specs.append(PublicRouteSpec(path, method, handler, versioned, body))
            return handler

        return register

    def action_route(self, path: str, registry: ActionRegistry, *, rule: str | None = None
                     ) -> None:
        """``POST path`` dispatches to ``registry``'s actions, each behind its own rule."""
        self.actions.append((path, registry))
        self.specs.append(RouteSpec(path, "POST", registry.dispatch, rule))

    def rule_operations(self, prefix: str = "") -> dict[str, list[str]]:
        """rule -> the operations it guards (``"POST /path (action)"``), as Nova's policy
        documentation lists them."""
        out: dict[str, list[str]] = {}
        for spec in self.specs:
            if spec.rule is not None:
                out.setdefault(spec.rule, []).append(f"{spec.method} {prefix}{spec.path}")
        for path, registry in self.actions:
            for action in registry.actions.values():
                out.setdefault(action.rule, []).append(
                    f"POST {prefix}{path} ({action.name})")
        return out


@dataclass(frozen=True, slots=True)
class Action:
    """One action of an ``.../action`` URL: its body key, policy rule, handler and the
    JSON schema of its argument (validated before the handler runs)."""

    name: str
    rule: str
    handler: ActionHandler
    schema: dict[str, Any] | None


class ActionRegistry:
    """Actions posted to one ``.../action`` URL as ``{"<name>": <args>}``, each
    registered by name with its own policy rule, as Nova's ``@wsgi.action``::

        server_actions = ActionRegistry(unknown=lambda name: BadRequest(...))

        @server_actions.action("os-stop", rule="os_compute_api:servers:stop")
        async def stop(call: ApiCall, args: Any) -> Reply: ...

    Dispatch is one dict lookup; an unregistered name raises ``unknown(name)``.
    """

    def __init__(self, unknown: Callable[[str], NovaliteError]) -> None:
        self.actions: dict[str, Action] = {}
        self.unknown = unknown

    def action(self, name: str, *, rule: str, schema: dict[str, Any] | None = None
               ) -> Callable[[A], A]:
        """Register the decorated ``handler(call, args)`` for action ``name``."""
        from novalite.api import schemas

        wrapped = None if schema is None else schemas.action_body(name, schema)

        def register(handler: A) -> A:
            if name in self.actions:
                raise ValueError(f"action {name} registered twice")
            self.actions[name] = Action(name, rule, handler, wrapped)
            return handler

        return register

    async def dispatch(self, call: ApiCall) -> Any:
        body = call.body
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("Malformed request body: expected one action")
        name, args = next(iter(body.items()))
        action = self.actions.get(name)
        if action is None:
            raise self.unknown(name)
        authorize(call.ctx, action.rule)
        if action.schema is not None:
            from novalite.api import schemas

            schemas.validate(body, action.schema)
        return await action.handler(call, args)


def _render(result: Any, extra: dict[str, str]) -> Response:
    if isinstance(result, Response):
        result.headers.update(extra)
        return result
    # Headers given at construction: setting them one by one afterwards rescans the list.
    if isinstance(result, Reply):
        headers = {**result.headers, **extra}
        if result.body is None:
            return Response(status_code=result.status, headers=headers)
        return JSONResponse(result.body, status_code=result.status, headers=headers)
    return JSONResponse(result, headers=extra)


def _failed(exc: NovaliteError, style: str, extra: dict[str, str]) -> Response:
    if exc.code >= 500:
        log.error("request failed", error=exc.message, status=exc.code)
    response = error_response(exc, style)
    response.headers.update(extra)
    return response


def _unexpected(exc: Exception, request: Request, style: str, extra: dict[str, str]
                ) -> Response:
    """A bug: its traceback and request id in the log, and a 500 in the API's body."""
    if isinstance(exc, RecursionError):  # a body nested past what a handler can walk
        return _failed(BadRequest("Malformed request body: nested too deeply"), style, extra)
    log.exception("unexpected error", method=request.method, path=request.url.path,
                  request_id=request.scope.get("novalite.request_id"))
    return _failed(internal_error(exc, request), style, extra)


def internal_error(exc: BaseException, request: Request) -> InternalError:
    """The error a bug answers (Nova's words), naming the request id the log has."""
    request_id = request.scope.get("novalite.request_id", "")
    return InternalError(f"Unexpected API Error ({request_id}). Please report this and "
                         f"attach the novalite log if possible.\n"
                         f"<class '{type(exc).__name__}'>")


def _version_headers(version: Version) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}",
            "X-OpenStack-Nova-API-Version": str(version),
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}


def make_route(spec: RouteSpec, services: Services, *, authenticate: Authenticator,
               max_version: Version | None = None, style: str = "nova") -> Route:
    """``spec`` as a Starlette route: microversion, token, body, policy rule, handler,
    and errors in the mount's ``style``."""
    method, handler, rule, schema = spec.method, spec.handler, spec.rule, spec.body
    reads_body = spec.parse_body and method in ("POST", "PUT", "PATCH")

    async def endpoint(request: Request) -> Response:
        request_id = request.scope.get("novalite.request_id") or f"req-{uuid.uuid4()}"
        version = Version(*MIN_VERSION)
        extra: dict[str, str] = {}
        try:
            if max_version is not None:
                version = negotiate(request, max_version)
                extra = _version_headers(version)
            ctx = await authenticate(request)
            structlog.contextvars.bind_contextvars(project_id=ctx.project_id)
            body = await read_json(request) if reads_body else None
            if rule is not None:
                authorize(ctx, rule)
            if schema is not None:
                body = check_body(body, schema, version)
            call = ApiCall(request, version, request_id, dict(request.path_params), body,
                           services, ctx=ctx)
            result = await handler(call)
        except NovaliteError as exc:
            return _failed(exc, style, extra)
        except Exception as exc:
            return _unexpected(exc, request, style, extra)
        return _render(result, extra)

    return Route(spec.path, endpoint, methods=[method])


def make_public_route(spec: PublicRouteSpec, services: Services, *,
                      max_version: Version | None = None, style: str = "nova") -> Route:
    """``spec`` as a Starlette route that asks for no token."""
    method, handler, schema = spec.method, spec.handler, spec.body
    versioned = spec.versioned and max_version is not None

    async def endpoint(request: Request) -> Response:
        request_id = request.scope.get("novalite.request_id") or f"req-{uuid.uuid4()}"
        version = Version(*MIN_VERSION)
        extra: dict[str, str] = {}
        try:
            if versioned:
                assert max_version is not None
                version = negotiate(request, max_version)
                extra = _version_headers(version)
            body = await read_json(request) if method in ("POST", "PUT", "PATCH") else None
            if schema is not None:
                body = check_body(body, schema, version)
            call = Call(request, version, request_id, dict(request.path_params), body,
                        services)
            result = await handler(call)
        except NovaliteError as exc:
            return _failed(exc, style, extra)
        except Exception as exc:
            return _unexpected(exc, request, style, extra)
        return _render(result, extra)

    return Route(spec.path, endpoint, methods=[method])


def starlette_routes(routers: list[Router], services: Services, *,
                     authenticate: Authenticator, max_version: Version | None = None,
                     style: str = "nova", prefix: str = "") -> list[Route]:
    """The routes of ``routers`` for one mount. Literal path segments win over
    parameters (``/servers/detail`` before ``/servers/{server_id}``) whatever the
    order of registration. ``prefix`` is inserted after the first path segment
    (novaclient's ``/v2.1/{project_id}/...``); public routes are left out then."""
    def rank(path: str) -> int:
        return path.count("{")

    public = [] if prefix else sorted(
        (s for r in routers for s in r.public_specs), key=lambda s: rank(s.path))
    specs = sorted((s for r in routers for s in r.specs), key=lambda s: rank(s.path))
    out = [make_public_route(s, services, max_version=max_version, style=style)
           for s in public]
    for s in specs:
        if prefix:
            head, _, tail = s.path[1:].partition("/")
            s = RouteSpec(f"/{head}/{prefix}/{tail}", s.method, s.handler, s.rule,
                          s.parse_body, s.body)
        out.append(make_route(s, services, authenticate=authenticate,
                              max_version=max_version, style=style))
    return out
