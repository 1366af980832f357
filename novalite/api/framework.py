"""The thin layer between HTTP and the service layers.

A route handler receives an :class:`ApiCall` (the caller's auth context, the
negotiated microversion, path and query parameters, the parsed JSON body) and
returns a :class:`Reply` or a Starlette response. Errors are exceptions from
:mod:`novalite.exceptions`, mapped to Nova's error body here and nowhere else.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import Route

from novalite.context import AuthContext
from novalite.exceptions import BadRequest, NotAcceptable, NovaliteError
from novalite.policy import authorize

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


@dataclass
class ApiCall:
    """One request as a handler sees it."""

    request: Request
    ctx: AuthContext | None
    version: Version
    request_id: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
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
    {"code", "message"}}``), ``keystone`` (``{"error": {...}}``) or ``glance``
    (webob's ``{"code": "404 Not Found", "title", "message"}``)."""
    message = exc.message
    title = TITLES.get(exc.code, "Error")
    body: dict[str, Any]
    if style == "keystone":
        body = {"error": {"code": exc.code, "title": title, "message": message}}
    elif style == "glance":
        body = {"code": f"{exc.code} {title}", "title": title, "message": message}
    else:
        body = {exc.title: {"code": exc.code, "message": message}}
    headers = {}
    if exc.code == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    return JSONResponse(body, status_code=exc.code, headers=headers)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Malformed request body") from None


Handler = Callable[[ApiCall], Awaitable[Any]]
Authenticator = Callable[[Request], Awaitable[AuthContext]]


def make_route(
    path: str,
    method: str,
    handler: Handler,
    *,
    authenticate: Authenticator | None,
    max_version: Version | None = None,
    style: str = "nova",
    parse_body: bool = True,
) -> Route:
    """Wrap ``handler`` into a Starlette route with auth, microversions and error mapping."""

    async def endpoint(request: Request) -> Response:
        request_id = request.scope.get("novalite.request_id") or f"req-{uuid.uuid4()}"
        version = Version(*MIN_VERSION)
        extra: dict[str, str] = {}
        try:
            if max_version is not None:
                version = negotiate(request, max_version)
                extra = {"OpenStack-API-Version": f"compute {version}",
                         "X-OpenStack-Nova-API-Version": str(version),
                         "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}
            ctx = await authenticate(request) if authenticate else None
            if ctx is not None:
                structlog.contextvars.bind_contextvars(project_id=ctx.project_id)
            body = await read_json(request) if parse_body and method in ("POST", "PUT",
                                                                        "PATCH") else None
            call = ApiCall(request, ctx, version, request_id, dict(request.path_params), body)
            result = await handler(call)
        except NovaliteError as exc:
            if exc.code >= 500:
                log.error("request failed", error=exc.message, status=exc.code)
            response: Response = error_response(exc, style)
            response.headers.update(extra)
            return response
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

    return Route(path, endpoint, methods=[method])


def guarded(rule: str, handler: Handler) -> Handler:
    """``handler`` behind the policy ``rule`` (:mod:`novalite.policy`): a caller whose
    roles do not pass it gets 403 with Nova's message before the handler runs."""

    async def checked(call: ApiCall) -> Any:
        authorize(call.ctx, rule)
        return await handler(call)

    return checked
