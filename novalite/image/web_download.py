"""Glance's ``web-download`` image import: fetch a URL into a queued image, streaming.

Mixed into :class:`~novalite.image.service.ImageService`. The image goes
``queued`` -> ``importing`` -> ``active``; progress shows on the image as
``os_glance_import_bytes`` of ``os_glance_import_total``; a failure leaves it
``queued`` with ``os_glance_failed_import`` and ``os_glance_import_error``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog
import trio
from sqlmodel import Session

from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Image
from novalite.exceptions import BadRequest, Conflict, NotFound, NovaliteError
from novalite.image.errors import QuotaExceeded413

log = structlog.get_logger("novalite.image")

IMPORT_METHODS = ("web-download",)
#: Seconds between two writes of an import's progress to its image.
PROGRESS_INTERVAL = 0.5


class WebDownload:
    """The import half of ImageService (which provides the methods declared here)."""

    db: Database
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
        if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
            raise BadRequest(f"URI for web-download must be an http or https URL, not {uri!r}")
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
            async with httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client, \
                    client.stream("GET", uri) as response:
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
