"""The compute host's client of the image API: image data in and out, as the caller.

A compute host reaches image data the same way whether the image service is the
embedded one (``<public_url>/image``) or an external Glance (``[glance]
api_servers[0]``): over HTTP, with the caller's token, which travels in the
request context (``RequestContext.auth_token``) of the build or snapshot.

* :meth:`ImageAPIClient.download` streams an image's data (the ``url`` of its
  payload, ``<image API>/v2/images/<id>/file``) to a file, hashing it on the way.
* :meth:`ImageAPIClient.upload` makes a local file (a driver's snapshot) the data
  of a queued image: ``PATCH`` its formats, then ``PUT /v2/images/<id>/file``. The
  image API stores it through its own upload path, computing its hashes there.
* :meth:`ImageAPIClient.delete` deletes an image (a failed snapshot's record).

Tokens: a request's token is the caller's and is checked when each HTTP request
starts. A context of the service's own (periodic tasks, adoption at start) has
no token; none of those fetch data (adoption only counts what the cache already
holds), and a call without a token is answered 401 and fails with that reason.
A snapshot is uploaded after the driver has written it, so the caller's token
must still be valid then (``[identity] token_expiration``, an hour by default):
a snapshot whose writing outlives the token fails with the 401 and its image
cannot be deleted either (Nova sends a service token beside the user's for
this; novalite does not yet).

Example::

    api = ImageAPIClient("http://127.0.0.1:8774/image")
    digest, size = await api.download(image["url"], token, "/cache/x.part", "sha512")
    await api.upload(token, image_id, "/cache/.snapshots/y", "qcow2", "bare")
    await api.aclose()
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio

#: Bytes per read, write and hash step.
BLOCK = 1 << 20


class ImageTransferFailed(Exception):
    """The image API refused a call or could not be reached; the message says which."""


class IncompleteDownload(ImageTransferFailed):
    """The data stream ended before its declared length (``received`` bytes arrived).

    The image API cuts a download short on purpose when its stored data no longer
    matches the checksum recorded at upload, so what arrived cannot be trusted.
    """

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


class ImageAPIClient:
    """One image API (Glance v2) as a compute host uses it; one connection pool."""

    def __init__(self, url: str) -> None:
        #: The image API's base URL, e.g. ``http://controller:8774/image``.
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0))

    def file_url(self, image_id: str) -> str:
        """Where the data of ``image_id`` is read and written."""
        return f"{self.url}/v2/images/{image_id}/file"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def download(self, url: str, token: str, dest: str, algo: str) -> tuple[str, int]:
        """Stream ``url`` to ``dest`` (created or truncated) as the owner of ``token``.

        Returns the ``algo`` hex digest of the data ("" when ``algo`` is "") and its
        size. Blocks are written and hashed on a worker thread. Raises
        :class:`IncompleteDownload` when the stream ends short of its length and
        :class:`ImageTransferFailed` for an HTTP error status or a connection failure.
        """
        digest = hashlib.new(algo) if algo else None
        size = 0
        with open(dest, "wb") as f:

            def write(block: bytes) -> None:
                f.write(block)
                if digest is not None:
                    digest.update(block)

            try:
                async with self._http.stream("GET", url, headers={"X-Auth-Token": token},
                                             timeout=httpx.Timeout(60.0, connect=10.0)) as r:
                    if r.status_code != 200:
                        await r.aread()
                        raise ImageTransferFailed(f"GET {url} answered HTTP {r.status_code}: "
                                                  f"{_reason(r)}")
                    async for block in r.aiter_raw(BLOCK):
                        await trio.to_thread.run_sync(write, block)
                        size += len(block)
            except httpx.RemoteProtocolError as exc:
                raise IncompleteDownload(f"GET {url}: the data stream ended after {size} "
                                         f"bytes, short of its length ({exc})", size) from None
            except httpx.HTTPError as exc:
                raise ImageTransferFailed(f"GET {url} failed: {type(exc).__name__}: "
                                          f"{exc}") from None
        return (digest.hexdigest() if digest is not None else ""), size

    async def upload(self, token: str, image_id: str, path: str, disk_format: str,
                     container_format: str) -> None:
        """Set the formats of the queued image ``image_id``, then upload ``path`` as its
        data; the image API verifies and hashes it and the image becomes active.

        Raises :class:`ImageTransferFailed` when either call fails.
        """
        await self._call("PATCH", f"/v2/images/{image_id}", token, json=[
            {"op": "replace", "path": "/disk_format", "value": disk_format},
            {"op": "replace", "path": "/container_format", "value": container_format}],
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        size = await trio.to_thread.run_sync(os.path.getsize, path)
        await self._call("PUT", f"/v2/images/{image_id}/file", token,
                         content=_file_blocks(path),
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Length": str(size)})

    async def delete(self, token: str, image_id: str) -> None:
        """Delete ``image_id``; raises :class:`ImageTransferFailed` when refused."""
        await self._call("DELETE", f"/v2/images/{image_id}", token)

    async def list_images(self, token: str) -> list[dict[str, Any]]:
        """Every image the caller sees (Glance's list, followed page by page), as the
        image API shows them (custom properties at the top level)."""
        images: list[dict[str, Any]] = []
        path: str | None = "/v2/images?limit=1000"
        while path:
            body = (await self._call("GET", path, token)).json()
            images += body.get("images", [])
            nxt = body.get("next")
            path = nxt if nxt and body.get("images") else None
        return images

    async def _call(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Auth-Token": token, **kwargs.pop("headers", {})}
        url = f"{self.url}{path}"
        try:
            r = await self._http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ImageTransferFailed(f"{method} {url} failed: {type(exc).__name__}: "
                                      f"{exc}") from None
        if r.status_code >= 400:
            raise ImageTransferFailed(f"{method} {url} answered HTTP {r.status_code}: "
                                      f"{_reason(r)}")
        return r


def _reason(r: httpx.Response) -> str:
    """The error message of a Glance-style error body, else the start of the body."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])[:200]
        if body.get("message"):
            return str(body["message"])[:200]
    return r.text[:200]


async def _file_blocks(path: str) -> AsyncIterator[bytes]:
    """A local file as an async stream of blocks, read on worker threads."""
    f = await trio.to_thread.run_sync(open, path, "rb")
    try:
        while block := await trio.to_thread.run_sync(f.read, BLOCK):
            yield block
    finally:
        f.close()
