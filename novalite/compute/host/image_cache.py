"""The compute hosts' image cache: one verified base copy per image, shared by every guest.

A compute actor asks :meth:`ImageCache.fetch` for an image's data before a spawn.
The first fetch of an image downloads it over HTTP from the image API (the
``url`` of its payload, ``<image API>/v2/images/<id>/file``, with the caller's
token: :mod:`novalite.compute.host.image_client`) into ``<cache>/<image id>``
through a ``.part`` file, checking it against the image's sha512
(``os_hash_value``, else its md5 ``checksum``) and size before renaming it into
place; concurrent fetches of the same image wait for that one fetch. The image
service may be embedded in the control process or an external Glance, on this
machine or another: the cache cannot tell and does not need to. Each guest
booted from an image holds a reference (:meth:`fetch` with its uuid, dropped by
:meth:`release`; rebuilt at start by :meth:`adopt`, which needs no token and
fetches nothing). :meth:`prune`, a periodic task, removes images no guest
references once unused for ``max_age`` seconds.

Plain data only: the cache never touches the database (DESIGN.md boundary 1).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from typing import Any

import structlog
import trio

from novalite.compute.host.image_client import ImageAPIClient, IncompleteDownload
from novalite.virt.driver import SpawnFailed

log = structlog.get_logger("novalite.compute.image_cache")

SNAPSHOTS = ".snapshots"


class ImageCache:
    """One base copy per image on this host, shared by every guest booted from it."""

    def __init__(self, path: str, image_api_url: str, max_age: float = 86400.0) -> None:
        self.path = path
        #: The image API this host downloads from and uploads snapshots to.
        self.api = ImageAPIClient(image_api_url)
        self.max_age = max_age
        self._locks: dict[str, trio.Lock] = defaultdict(trio.Lock)
        #: image id -> uuids of the guests using it
        self._refs: dict[str, set[str]] = defaultdict(set)
        #: how many times data was actually fetched (not found in the cache)
        self.fetches = 0

    def image_path(self, image_id: str) -> str:
        return os.path.join(self.path, image_id)

    def snapshot_path(self, image_id: str) -> str:
        """Where a driver writes a snapshot before it is stored as an image."""
        directory = os.path.join(self.path, SNAPSHOTS)
        os.makedirs(directory, exist_ok=True)
        return os.path.join(directory, image_id)

    async def fetch(self, image: dict[str, Any], instance_uuid: str | None = None,
                    token: str = "") -> str:
        """A local path to the image's data, fetched and verified once per image.

        With ``instance_uuid`` the guest takes a reference on the image. Raises
        :class:`SpawnFailed` when the image has no data or it fails verification.
        """
        image_id = image["id"]
        dest = self.image_path(image_id)
        async with self._locks[image_id]:
            if not os.path.exists(dest):
                await self._fetch(image, dest, token)
            if instance_uuid:
                self._refs[image_id].add(instance_uuid)
            os.utime(dest)  # last used: now
        return dest

    async def _fetch(self, image: dict[str, Any], dest: str, token: str = "") -> None:
        url = image.get("url")
        if not url:
            raise SpawnFailed(f"image {image['id']} has no data to boot from")
        if image.get("os_hash_value") and image.get("os_hash_algo") in hashlib.algorithms_available:
            algo, expected = str(image["os_hash_algo"]), str(image["os_hash_value"])
        elif image.get("checksum"):
            algo, expected = "md5", str(image["checksum"])
        else:
            algo, expected = "", ""
        os.makedirs(self.path, exist_ok=True)
        tmp = dest + ".part"
        started = time.monotonic()
        try:
            try:
                got, size = await self.api.download(url, token, tmp, algo)
            except IncompleteDownload as exc:
                # The image API cuts a download short when its stored data fails its
                # own check; either way what arrived is not the image.
                raise SpawnFailed(f"image {image['id']} failed verification: {exc}") from None
            except Exception as exc:
                raise SpawnFailed(f"image {image['id']} could not be downloaded from "
                                  f"{url}: {exc}") from None
            if algo and got != expected:
                raise SpawnFailed(f"image {image['id']} failed verification: its data has "
                                  f"{algo} {got}, the image record says {expected}")
            if image.get("size") and size != image["size"]:
                raise SpawnFailed(f"image {image['id']} failed verification: {size} bytes "
                                  f"arrived, the image record says {image['size']}")
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.fetches += 1
        log.info("image fetched into cache", image=image["id"], url=url, size=size,
                 verified=algo or "no hash", seconds=round(time.monotonic() - started, 3))

    def adopt(self, image_id: str | None, instance_uuid: str) -> None:
        """Record that a guest found at start uses ``image_id``."""
        if image_id and os.path.exists(self.image_path(image_id)):
            self._refs[image_id].add(instance_uuid)

    def release(self, instance_uuid: str) -> None:
        """The guest is gone: drop its references; the images' unused time starts now."""
        for image_id, users in list(self._refs.items()):
            if instance_uuid in users:
                users.discard(instance_uuid)
                if not users:
                    del self._refs[image_id]
                    path = self.image_path(image_id)
                    if os.path.exists(path):
                        os.utime(path)

    def refcount(self, image_id: str) -> int:
        return len(self._refs.get(image_id, ()))

    async def prune(self) -> list[str]:
        """Remove cached images no guest uses that were last used over ``max_age`` ago."""
        if not os.path.isdir(self.path):
            return []
        now = time.time()
        removed = []
        for name in sorted(os.listdir(self.path)):
            path = os.path.join(self.path, name)
            if name.startswith(".") or name.endswith(".part") or not os.path.isfile(path):
                continue
            async with self._locks[name]:
                if self.refcount(name) or now - os.stat(path).st_mtime < self.max_age:
                    continue
                os.unlink(path)
                removed.append(name)
        if removed:
            log.info("image cache pruned", images=removed, max_age=self.max_age)
        return removed
