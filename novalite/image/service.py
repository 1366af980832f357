"""The embedded Glance v2 subset: image records and their data files.

Image data lives in ``<state_path>/images/<id>``. Uploads stream to a temporary
file beside it while md5 and sha512 are computed, and are renamed into place
only when complete, so an interrupted upload never leaves an ``active`` image
or a half-written file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import structlog
import trio
from sqlmodel import Session, select

from novalite.config import Config
from novalite.db.engine import Database
from novalite.db.models import Image, utcnow
from novalite.exceptions import BadRequest, Conflict, Forbidden, NotFound
from novalite.identity.service import AuthContext

log = structlog.get_logger("novalite.image")

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
CORE = {
    "id", "name", "status", "disk_format", "container_format", "size", "virtual_size",
    "checksum", "os_hash_algo", "os_hash_value", "visibility", "protected", "owner",
    "min_disk", "min_ram", "tags", "created_at", "updated_at", "self", "file", "schema",
    "locations", "direct_url", "os_hidden",
}
READ_ONLY = {"id", "status", "size", "virtual_size", "checksum", "os_hash_algo",
             "os_hash_value", "created_at", "updated_at", "self", "file", "schema", "owner"}


def isotime(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class ImageService:
    """Create, upload, list, show and delete images."""

    def __init__(self, db: Database, cfg: Config) -> None:
        self.db = db
        self.cfg = cfg
        self.store = os.path.join(cfg.state_path, "images")

    # -- visibility ------------------------------------------------------------
    @staticmethod
    def _visible(image: Image, ctx: AuthContext | None) -> bool:
        if ctx is None or ctx.is_admin:
            return True
        return image.visibility in ("public", "community") or image.owner == ctx.project_id

    async def get(self, ctx: AuthContext | None, image_id: str) -> Image:
        image = await self.db.read(lambda s: s.get(Image, image_id))
        if image is None or not self._visible(image, ctx):
            raise NotFound(f"No image found with ID {image_id}")
        return image

    async def list(self, ctx: AuthContext, filters: dict[str, str]) -> list[Image]:
        def work(s: Session) -> list[Image]:
            q = select(Image)
            if "name" in filters:
                q = q.where(Image.name == filters["name"])
            if "status" in filters:
                q = q.where(Image.status == filters["status"])
            if "visibility" in filters:
                q = q.where(Image.visibility == filters["visibility"])
            if "disk_format" in filters:
                q = q.where(Image.disk_format == filters["disk_format"])
            ids = filters.get("id", "")
            if ids.startswith("in:"):
                q = q.where(Image.id.in_([i.strip('"') for i in ids[3:].split(",")]))  # type: ignore[union-attr]
            elif ids:
                q = q.where(Image.id == ids)
            return list(s.exec(q.order_by(Image.created_at.desc())).all())  # type: ignore[attr-defined]

        images = [i for i in await self.db.read(work) if self._visible(i, ctx)]
        marker = filters.get("marker")
        if marker:
            ids = [i.id for i in images]
            if marker not in ids:
                raise BadRequest(f"marker {marker} not found")
            images = images[ids.index(marker) + 1 :]
        if "limit" in filters:
            try:
                images = images[: max(0, int(filters["limit"]))]
            except ValueError:
                raise BadRequest("limit param must be an integer") from None
        return images

    # -- create / update / delete ------------------------------------------------
    async def create(self, ctx: AuthContext | None, body: dict[str, Any]) -> Image:
        if not isinstance(body, dict):
            raise BadRequest("Image create body must be a JSON object")
        bad = sorted(k for k in body if k in READ_ONLY and k != "id")
        if bad:
            raise Forbidden(f"Attribute '{bad[0]}' is read-only.")
        for key, allowed in (("disk_format", DISK_FORMATS),
                             ("container_format", CONTAINER_FORMATS)):
            if body.get(key) is not None and body[key] not in allowed:
                raise BadRequest(f"Invalid value '{body[key]}' for '{key}': expected one of "
                                 f"{', '.join(allowed)}")
        visibility = body.get("visibility", "shared")
        if visibility not in ("public", "private", "shared", "community"):
            raise BadRequest(f"Invalid visibility value: {visibility}")
        if visibility == "public" and ctx is not None and not ctx.is_admin:
            raise Forbidden("You are not authorized to create public images")
        props = {k: v for k, v in body.items() if k not in CORE}
        image = Image(
            name=body.get("name"), disk_format=body.get("disk_format"),
            container_format=body.get("container_format"), visibility=visibility,
            protected=bool(body.get("protected", False)),
            owner=ctx.project_id if ctx else None,
            min_disk=int(body.get("min_disk", 0) or 0), min_ram=int(body.get("min_ram", 0) or 0),
            properties=props, tags=list(body.get("tags", [])),
        )
        if body.get("id"):
            image.id = str(body["id"])
        await self.db.write(lambda s: s.add(image))
        return image

    async def delete(self, ctx: AuthContext, image_id: str) -> None:
        image = await self.get(ctx, image_id)
        if image.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        if not ctx.is_admin and image.owner != ctx.project_id:
            raise Forbidden("You are not permitted to delete this image.")

        def work(s: Session) -> None:
            row = s.get(Image, image_id)
            if row is not None:
                s.delete(row)

        await self.db.write(work)
        if image.path and os.path.exists(image.path):
            os.unlink(image.path)

    # -- data --------------------------------------------------------------------
    async def upload(self, ctx: AuthContext | None, image_id: str,
                     chunks: AsyncIterator[bytes]) -> Image:
        image = await self.get(ctx, image_id)
        if image.status not in ("queued",):
            raise Conflict(f"Image {image_id} is {image.status}: data can be uploaded only "
                           "to a queued image")
        if not image.disk_format or not image.container_format:
            raise BadRequest("Properties disk_format and container_format must be set prior "
                             "to uploading image data.")
        await self._set(image_id, status="saving")
        os.makedirs(self.store, exist_ok=True)
        final = os.path.join(self.store, image_id)
        tmp = final + ".part"
        md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha512()
        size = 0
        try:
            async with await trio.open_file(tmp, "wb") as f:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    md5.update(chunk)
                    sha.update(chunk)
                    size += len(chunk)
                    await f.write(chunk)
            os.replace(tmp, final)
        except BaseException:
            with trio.CancelScope(shield=True):
                if os.path.exists(tmp):
                    os.unlink(tmp)
                await self._set(image_id, status="queued")
            raise
        return await self._set(image_id, status="active", size=size, checksum=md5.hexdigest(),
                               os_hash_algo="sha512", os_hash_value=sha.hexdigest(), path=final)

    async def register_file(self, name: str, path: str, disk_format: str,
                            container_format: str, properties: dict[str, Any],
                            visibility: str = "public", image_id: str | None = None) -> Image:
        """Register a local file as an active image (the first-start demo image)."""
        body: dict[str, Any] = {"name": name, "disk_format": disk_format,
                                "container_format": container_format, "visibility": visibility,
                                **properties}
        if image_id:
            body["id"] = image_id
        image = await self.create(None, body)

        async def chunks() -> AsyncIterator[bytes]:
            with open(path, "rb") as f:
                while data := f.read(1 << 20):
                    yield data

        return await self.upload(None, image.id, chunks())

    async def _set(self, image_id: str, **values: Any) -> Image:
        def work(s: Session) -> Image:
            row = s.get(Image, image_id)
            if row is None:
                raise NotFound(f"No image found with ID {image_id}")
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            s.add(row)
            return row

        return await self.db.write(work)

    # -- views -------------------------------------------------------------------
    def view(self, image: Image) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": image.id, "name": image.name, "status": image.status,
            "visibility": image.visibility, "protected": image.protected,
            "os_hidden": False, "checksum": image.checksum, "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value, "size": image.size,
            "virtual_size": image.virtual_size, "disk_format": image.disk_format,
            "container_format": image.container_format, "min_disk": image.min_disk,
            "min_ram": image.min_ram, "owner": image.owner, "tags": list(image.tags),
            "created_at": isotime(image.created_at), "updated_at": isotime(image.updated_at),
            "self": f"/v2/images/{image.id}", "file": f"/v2/images/{image.id}/file",
            "schema": "/v2/schemas/image",
        }
        for k, v in image.properties.items():
            body.setdefault(k, v)
        return body
