"""Glance's ``web-download`` image import: fetch a URL into a queued image, streaming.

Mixed into :class:`~novalite.image.service.ImageService`. The image goes
``queued`` -> ``importing`` -> ``active``; progress shows on the image as
``os_glance_import_bytes`` of ``os_glance_import_total``; a failure leaves it
``queued`` with ``os_glance_failed_import`` and ``os_glance_import_error``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog
import trio
from sqlmodel import Session

from novalite.config import Config, ImportFilteringSection
from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Image
from novalite.exceptions import BadRequest, Conflict, NotFound, NovaliteError
from novalite.image.errors import QuotaExceeded413

log = structlog.get_logger("novalite.image")

IMPORT_METHODS = ("web-download",)
#: Seconds between two writes of an import's progress to its image.
PROGRESS_INTERVAL = 0.5
#: Redirects a web-download follows, each checked against the filter as the first URL.
MAX_REDIRECTS = 5


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast


async def check_import_uri(uri: str, opts: ImportFilteringSection) -> None:
    """Raise BadRequest unless ``uri`` passes ``[import_filtering_opts]`` as Glance's
    ``validate_import_uri`` does (scheme, host, port: an allow list, when set, wins
    over its deny list; a URL without a port is not port-checked), and, beyond Glance,
    unless every address the host resolves to is outside loopback, link-local,
    multicast and unspecified ranges: a host named in ``allowed_hosts`` is exempt."""
    def refuse(why: str) -> BadRequest:
        return BadRequest(f"URI for web-download does not pass filtering: {uri} ({why})")

    try:
        parsed = urllib.parse.urlsplit(uri)
        port = parsed.port
    except ValueError as exc:
        raise refuse(str(exc)) from None
    scheme, host = parsed.scheme.lower(), (parsed.hostname or "").lower()
    if not scheme or (opts.allowed_schemes and scheme not in opts.allowed_schemes) or (
            not opts.allowed_schemes and scheme in opts.disallowed_schemes):
        raise refuse(f"scheme {scheme or '(none)'} is not allowed")
    if scheme not in ("http", "https"):
        raise refuse(f"scheme {scheme} cannot be fetched: http or https only")
    if not host or (opts.allowed_hosts and host not in opts.allowed_hosts) or (
            not opts.allowed_hosts and host in opts.disallowed_hosts):
        raise refuse(f"host {host or '(none)'} is not allowed")
    if port is not None and ((opts.allowed_ports and port not in opts.allowed_ports) or (
            not opts.allowed_ports and port in opts.disallowed_ports)):
        raise refuse(f"port {port} is not allowed")
    if host in opts.allowed_hosts:
        return
    try:
        infos = await trio.socket.getaddrinfo(host, port or (443 if scheme == "https" else 80),
                                              type=socket.SOCK_STREAM)
    except OSError as exc:
        raise refuse(f"host {host} cannot be resolved: {exc}") from None
    for info in infos:
        address = str(info[4][0])
        if _refused_address(address):
            raise refuse(f"host {host} is {address}: loopback, link-local, multicast and "
                         "unspecified addresses are refused unless [import_filtering_opts] "
                         "allowed_hosts names the host")


class WebDownload:
    """The import half of ImageService (which provides the methods declared here)."""

    db: Database
    cfg: Config
    nursery: trio.Nursery | None

    async def get(self, ctx: AuthContext | None, image_id: str) -> Image:
        raise NotImplementedError

    async def remaining(self, project_id: str | None) -> int | None:
        raise NotImplementedError

    async def _set(self, image_id: str, expect_status: Sequence[str] | None = None,
                   **values: Any) -> Image:
        raise NotImplementedError

    async def _receive(self, image: Image, chunks: AsyncIterator[bytes], *, status: str,
                       limit: int | None, declared_size: int | None = None,
                       expected_md5: str | None = None, drain: bool = True,
                       progress: Callable[[int], Awaitable[None]] | None = None) -> Image:
        raise NotImplementedError

    @staticmethod
    def _check_owner(image: Image, ctx: AuthContext | None, doing: str) -> None:
        raise NotImplementedError

    def _check_uploadable(self, image: Image) -> None:
        raise NotImplementedError

    async def import_image(self, ctx: AuthContext | None, image_id: str, body: Any) -> None:
        """``POST /v2/images/{id}/import``: start a web-download; the image shows progress."""
        method = body.get("method") if isinstance(body, dict) else None
        if not isinstance(method, dict) or not method.get("name"):
            raise BadRequest("Import request requires a 'method' object with a 'name'")
        if method["name"] not in IMPORT_METHODS:
            raise BadRequest(f"Import method {method['name']} is not supported; this cloud "
                             f"supports: {', '.join(IMPORT_METHODS)}")
        uri = method.get("uri")
        if not isinstance(uri, str) or not uri:
            raise BadRequest(f"URI for web-download must be an http or https URL, not {uri!r}")
        await check_import_uri(uri, self.cfg.import_filtering_opts)
        image = await self.get(ctx, image_id)
        self._check_owner(image, ctx, "import data to")
        self._check_uploadable(image)
        if self.nursery is None:
            raise Conflict("Image import is not available while the service is starting")
        limit = await self.remaining(image.owner)
        props = {k: v for k, v in image.properties.items()
                 if k not in ("os_glance_failed_import", "os_glance_import_error")}
        props.update({"os_glance_import_method": "web-download",
                      "os_glance_import_bytes": "0", "os_glance_import_total": ""})
        image = await self._set(image_id, expect_status=("queued",), status="importing",
                                properties=props)
        self.nursery.start_soon(self._web_download, image, uri, limit)
        log.info("image import started", image=image_id, method="web-download", uri=uri)

    async def _web_download(self, image: Image, uri: str, limit: int | None) -> None:
        import httpx

        image_id = image.id
        last = [0.0]

        async def set_props(**values: str) -> None:
            def work(s: Session) -> None:
                row = s.get(Image, image_id)
                if row is not None:
                    row.properties = {**row.properties, **values}
                    s.add(row)

            await self.db.write(work)

        async def progress(size: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                await set_props(os_glance_import_bytes=str(size))

        try:
            timeout = httpx.Timeout(60.0, connect=10.0)
            async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client, \
                    _fetch(client, uri, self.cfg.import_filtering_opts) as response:
                if response.status_code != 200:
                    raise BadRequest(f"GET {uri} answered HTTP {response.status_code}")
                total = response.headers.get("content-length")
                await set_props(os_glance_import_total=total or "")
                declared = int(total) if total and total.isdigit() else None
                if limit is not None and declared is not None and declared > limit:
                    raise QuotaExceeded413(limit)
                active = await self._receive(image, response.aiter_raw(1 << 20),
                                             status="importing", limit=limit,
                                             declared_size=declared, drain=False,
                                             progress=progress)
            await set_props(os_glance_import_bytes=str(active.size))
            log.info("image import finished", image=image_id, size=active.size)
        except Exception as exc:
            message = exc.message if isinstance(exc, NovaliteError) else (
                f"{type(exc).__name__}: {exc}")
            log.warning("image import failed", image=image_id, uri=uri, error=message)
            with trio.CancelScope(shield=True):
                try:
                    await self._set(image_id, expect_status=("importing",), status="queued")
                except (NotFound, Conflict):
                    pass
                await set_props(os_glance_failed_import="web-download",
                                os_glance_import_error=message[:1000])


@contextlib.asynccontextmanager
async def _fetch(client: Any, uri: str, opts: ImportFilteringSection) -> AsyncIterator[Any]:
    """GET ``uri`` as a stream, following redirects itself: each hop is filtered again
    (a permitted host cannot send the download to a refused one)."""
    for _ in range(MAX_REDIRECTS + 1):
        await check_import_uri(uri, opts)
        response = await client.send(client.build_request("GET", uri), stream=True)
        if not response.is_redirect:
            break
        uri = str(response.url.join(response.headers["location"]))
        await response.aclose()
    else:
        raise BadRequest(f"web-download stopped after {MAX_REDIRECTS} redirects at {uri}")
    try:
        yield response
    finally:
        await response.aclose()
