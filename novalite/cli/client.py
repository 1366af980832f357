"""The HTTP session of the `nova` client: Keystone auth, catalog, microversion, errors.

One `Session` per process. It authenticates once (Keystone v3 password,
project-scoped), picks the ``public`` compute and image endpoints for the
region from the token's catalog, negotiates the compute microversion once
(``GET <compute url>``, then ``min(server max, 2.96)``) and sends it on every
compute call. Failures become `CliError` subclasses (`nova_errors`) whose
`render()` is the one line novaclient prints; nothing here prints or exits.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from novalite.cli.nova_errors import (
    ApiError,
    CliError,
    CommandError,
    ConnectionProblem,
    error_from_response,
)

if TYPE_CHECKING:
    import httpx

    from novalite.cli.credentials import Credentials

__all__ = ["ApiError", "CliError", "CommandError", "ConnectionProblem", "Session"]

# Optional packages that httpcore imports eagerly when installed (for its async
# primitives and HTTP/2) and that a sync HTTP/1.1 client never uses: trio,
# anyio and h2 cost over 100 ms of start-up. `lean_imports()` hides them while
# httpx is first imported, in the `nova` process only (see `nova.main`).
UNUSED_BY_SYNC_HTTPX = ("trio", "anyio", "h2")
_lean = False

CLIENT_MAX_MICROVERSION = (2, 96)
TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 5.0


def lean_imports() -> None:
    """Import httpx without trio/anyio/h2; call only in a process that is just the CLI."""
    global _lean
    _lean = True


def _httpx() -> Any:
    """The httpx module, imported lean when `lean_imports()` was called."""
    if "httpx" in sys.modules or not _lean:
        import httpx

        return httpx
    hidden = [name for name in UNUSED_BY_SYNC_HTTPX if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    try:
        import httpx

        httpx.Client  # noqa: B018  (the client and its transport modules are loaded now)
        import httpcore._sync  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]
    return httpx


def _service_root(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


class Session:
    """Authenticated access to one novalite (or OpenStack) cloud."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._clients: dict[bool, httpx.Client] = {}
        self._token: str | None = None
        self._catalog: list[dict[str, Any]] = []
        self._endpoints: dict[str, str] = {}
        self._microversion: str | None | bool = False  # False: not negotiated yet
        self.project_id: str | None = None
        self._token_from_cache = False
        self._microversion_from_cache = False
        self._cache_entry: dict[str, Any] = {}

    # -- transport --------------------------------------------------------

    def _client_for(self, url: str) -> httpx.Client:
        """A client for ``url``; TLS verification material is loaded only for https."""
        httpx = _httpx()

        secure = url.startswith("https:") and not self.credentials.insecure
        client = self._clients.get(secure)
        if client is None:
            verify: Any = (self.credentials.cacert or True) if secure else False
            client = httpx.Client(
                verify=verify,
                timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
                headers={"Accept": "application/json", "User-Agent": "novalite-nova"},
            )
            self._clients[secure] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; raise `ApiError` for an error status not listed in ``accept``."""
        httpx = _httpx()

        try:
            response = self._client_for(url).request(
                method, url, headers=headers, params=params, json=json
            )
        except httpx.TimeoutException as exc:
            raise ConnectionProblem(
                f"timed out talking to novalite at {_service_root(url)} ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise ConnectionProblem(
                f"cannot reach novalite at {_service_root(url)}: is `novalite serve` running? "
                f"({exc or type(exc).__name__})"
            ) from None
        if response.status_code >= 400 and response.status_code not in accept:
            raise error_from_response(response)
        return response

    # -- identity ---------------------------------------------------------

    def authenticate(self) -> None:
        """Get a project-scoped token and the service catalog (once; cached on disk)."""
        if self._token is not None:
            return
        from novalite.cli import nova_token_cache

        cached = nova_token_cache.load(self.credentials)
        if cached is not None:
            self._use_token(cached, from_cache=True)
            return
        creds = self.credentials
        response = self.request("POST", creds.token_url, json=_password_body(creds))
        token = response.headers.get("x-subject-token")
        if not token:
            raise CommandError(f"{creds.token_url} answered without an X-Subject-Token header")
        token_body = _json(response).get("token") or {}
        entry = {
            "token": token,
            "expires_at": token_body.get("expires_at"),
            "catalog": token_body.get("catalog") or [],
            "project_id": (token_body.get("project") or {}).get("id"),
        }
        self._use_token(entry, from_cache=False)
        nova_token_cache.save(creds, entry)

    def _use_token(self, entry: dict[str, Any], from_cache: bool) -> None:
        self._token = str(entry["token"])
        self._catalog = list(entry.get("catalog") or [])
        self.project_id = entry.get("project_id")
        self._endpoints.clear()
        self._token_from_cache = from_cache
        self._cache_entry = entry
        if from_cache and "microversion" in entry and self._microversion is False:
            self._microversion = entry["microversion"]
            self._microversion_from_cache = True

    def _remember(self, key: str, value: Any) -> None:
        """Add ``key`` to this token's cache entry (when the token is cached)."""
        from novalite.cli import nova_token_cache

        if self._cache_entry.get("token") == self._token and self._cache_entry.get(key) != value:
            self._cache_entry = {**self._cache_entry, key: value}
            nova_token_cache.save(self.credentials, self._cache_entry)

    def _forget_token(self) -> None:
        from novalite.cli import nova_token_cache

        nova_token_cache.forget(self.credentials)
        self._token = None
        self._endpoints.clear()

    def _authed(
        self, method: str, service: str, path: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        """A request with the token; a 401 to a cached token logs in again and retries once."""
        while True:
            self.authenticate()
            assert self._token is not None
            url = self.endpoint(service) + path
            sent = {"X-Auth-Token": self._token, **headers}
            try:
                return self.request(method, url, headers=sent, **kwargs)
            except ApiError as exc:
                if exc.code != 401 or not self._token_from_cache:
                    raise
                self._forget_token()

    def endpoint(self, service_type: str) -> str:
        """The public URL of ``service_type`` in the region, from the catalog."""
        if service_type in self._endpoints:
            return self._endpoints[service_type]
        self.authenticate()
        region = self.credentials.region_name
        for service in self._catalog:
            if service.get("type") != service_type:
                continue
            for endpoint in service.get("endpoints") or []:
                if endpoint.get("interface") != "public":
                    continue
                if region and region not in (endpoint.get("region_id"), endpoint.get("region")):
                    continue
                url = str(endpoint.get("url", "")).rstrip("/")
                self._endpoints[service_type] = url
                return url
        where = f" in region {region}" if region else ""
        raise CommandError(f"no public {service_type} endpoint{where} in the service catalog")

    # -- compute ----------------------------------------------------------

    @property
    def microversion(self) -> str | None:
        """The negotiated compute microversion (``None``: the server has none)."""
        self.authenticate()  # a cached token may bring the microversion with it
        if self._microversion is False:
            self._microversion = self._negotiate()
            self._remember("microversion", self._microversion)
        return self._microversion  # type: ignore[return-value]

    def microversion_at_least(self, major: int, minor: int) -> bool:
        # A token cache written by another version may hold a microversion we cannot parse.
        parsed = _parse_version(self.microversion or "")
        return parsed is not None and parsed >= (major, minor)

    def _negotiate(self) -> str | None:
        response = self._authed("GET", "compute", "", {})
        doc = _json(response).get("version") or {}
        maximum = _parse_version(str(doc.get("version") or ""))
        if maximum is None:
            return None
        minimum = _parse_version(str(doc.get("min_version") or "")) or (2, 1)
        chosen = min(maximum, CLIENT_MAX_MICROVERSION)
        if chosen < minimum:
            raise CommandError(
                f"the compute API needs microversion {minimum[0]}.{minimum[1]} or newer; "
                f"this client supports up to {chosen[0]}.{chosen[1]}"
            )
        return f"{chosen[0]}.{chosen[1]}"

    def compute(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """A compute API call, ``path`` relative to the catalog URL (``/servers``).

        A 406 to a microversion remembered from an earlier run (the server
        changed) negotiates again and retries once.
        """
        while True:
            headers = {}
            version = self.microversion
            if version is not None:
                headers["OpenStack-API-Version"] = f"compute {version}"
                headers["X-OpenStack-Nova-API-Version"] = version
            try:
                return self._authed(
                    method, "compute", path, headers, params=params, json=json, accept=accept
                )
            except ApiError as exc:
                if exc.code != 406 or not self._microversion_from_cache:
                    raise
                self._microversion = False
                self._microversion_from_cache = False

    def compute_at(self, version: str, method: str, path: str, json: Any = None
                   ) -> dict[str, Any]:
        """A compute call at microversion ``version`` (for behaviour a later one removed)."""
        headers = {"OpenStack-API-Version": f"compute {version}",
                   "X-OpenStack-Nova-API-Version": version}
        return _json(self._authed(method, "compute", path, headers, json=json))

    def compute_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _json(self.compute(method, path, **kwargs))

    def compute_list(
        self, path: str, key: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """All items of a paginated compute collection, following ``<key>_links`` next."""
        return list(self._pages(self.compute_json, path, key, f"{key}_links", params))

    # -- image ------------------------------------------------------------

    def image(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """A Glance v2 call, ``path`` relative to ``<image url>/v2`` (``/images``)."""
        return self._authed(method, "image", "/v2" + path, {}, params=params, accept=accept)

    def image_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _json(self.image(method, path, **kwargs))

    def image_list(self, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """All images visible to the project, following Glance's ``next`` marker."""
        return list(self._pages(self.image_json, "/images", "images", "next", params))

    @staticmethod
    def _pages(
        fetch: Any, path: str, key: str, next_key: str, params: dict[str, Any] | None
    ) -> Iterator[dict[str, Any]]:
        query = dict(params or {})
        seen: set[str] = set()
        while True:
            body = fetch("GET", path, params=query or None)
            yield from body.get(key) or []
            marker = _next_marker(body.get(next_key))
            if not marker or marker in seen:
                return
            seen.add(marker)
            query["marker"] = marker


def _next_marker(link: Any) -> str | None:
    """The ``marker`` of a Nova ``*_links`` list or a Glance ``next`` href."""
    href = None
    if isinstance(link, str):
        href = link
    elif isinstance(link, list):
        href = next((item.get("href") for item in link if item.get("rel") == "next"), None)
    if not href:
        return None
    markers = parse_qs(urlsplit(href).query).get("marker")
    return markers[0] if markers else None


def _password_body(creds: Credentials) -> dict[str, Any]:
    def domain(name: str | None, domain_id: str | None) -> dict[str, str]:
        return {"id": domain_id} if domain_id else {"name": name or "Default"}

    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": creds.username,
                        "domain": domain(creds.user_domain_name, creds.user_domain_id),
                        "password": creds.password,
                    }
                },
            },
            "scope": {
                "project": {
                    "name": creds.project_name,
                    "domain": domain(creds.project_domain_name, creds.project_domain_id),
                }
            },
        }
    }


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise CommandError(
            f"{response.request.method} {response.request.url} answered "
            f"HTTP {response.status_code} with a body that is not JSON"
        ) from None
    return body if isinstance(body, dict) else {"body": body}


def _parse_version(text: str) -> tuple[int, int] | None:
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)
