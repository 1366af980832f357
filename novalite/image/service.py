"""The embedded Glance v2 subset: image records, their data, quotas and imports.

Status follows Glance's: ``queued`` (a record without data) -> ``saving`` (data
streaming in) or ``importing`` (web-download running) -> ``active``. A failed or
interrupted upload or import goes back to ``queued`` with its partial data
removed; at start (:meth:`ImageService.recover`) images a crash left ``saving``
or ``importing`` go back to ``queued`` and stray ``.part`` files are deleted.
Data handling (hashing, format checks, files) is :mod:`novalite.image.store`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
import trio
from sqlalchemy import func
from sqlmodel import Session, col, select

from novalite.config import Config
from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Image, ImageMember, utcnow
from novalite.exceptions import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    NovaliteError,
    StorageFull,
)
from novalite.image import patch
from novalite.image.errors import DataRejected, QuotaExceeded413
from novalite.image.fields import (
    CORE,
    OWNER_LENGTH,
    VISIBILITIES,
    check_fields,
    int_field,
    isotime,
    parse_md5,
    sort_spec,
    sort_value,
)
from novalite.image.members import MEMBER_STATUSES, ImageMembers
from novalite.image.store import DataStore, Received, file_chunks
from novalite.image.web_download import WebDownload

log = structlog.get_logger("novalite.image")

class Gone(NovaliteError):
    """The image was deleted while its data was being uploaded."""

    code = 410
    title = "gone"


#: The list parameters that are not custom-property filters.
LIST_PARAMETERS = frozenset((
    "name", "status", "disk_format", "container_format", "owner", "id", "member_status",
    "visibility", "protected", "tag", "size_min", "size_max", "limit", "marker", "sort",
    "sort_key", "sort_dir", "created_at", "updated_at", "os_hidden", "checksum",
    "os_hash_value", "min_disk", "min_ram"))


class ImageService(WebDownload, ImageMembers):
    """Create, upload, import, list, show, patch, tag, share, deactivate and delete
    images."""

    def __init__(self, db: Database, cfg: Config) -> None:
        self.db = db
        self.cfg = cfg
        self.data = DataStore(os.path.join(cfg.state_path, "images"))
        #: Where web-download imports run (set by the service at start; None: no imports).
        self.nursery: trio.Nursery | None = None

    @property
    def store(self) -> str:
        return self.data.path

    # -- start -------------------------------------------------------------------
    async def recover(self) -> int:
        """Return images a crash left mid-upload to ``queued``; delete partial data."""

        def work(s: Session) -> list[str]:
            rows = s.exec(select(Image).where(Image.status.in_(  # type: ignore[attr-defined]
                ("saving", "importing")))).all()
            for row in rows:
                row.status = "queued"
                row.updated_at = utcnow()
                if row.properties.get("os_glance_import_method"):
                    row.properties = {**row.properties, "os_glance_failed_import":
                                      row.properties["os_glance_import_method"],
                                      "os_glance_import_error": "the service stopped "
                                      "during the import"}
                s.add(row)
            return [r.id for r in rows]

        ids = await self.db.write(work)
        removed = await trio.to_thread.run_sync(self.data.remove_partials)
        if ids or removed:
            log.warning("interrupted uploads reset to queued", images=ids,
                        partial_files_removed=len(removed))
        return len(ids)

    # -- visibility ----------------------------------------------------------------
    @staticmethod
    def _visible(image: Image, ctx: AuthContext | None) -> bool:
        if ctx is None or ctx.is_admin:
            return True
        return image.visibility in ("public", "community") or image.owner == ctx.project_id

    @staticmethod
    def _check_owner(image: Image, ctx: AuthContext | None, doing: str) -> None:
        if ctx is not None and not ctx.is_admin and image.owner != ctx.project_id:
            raise Forbidden(f"You are not permitted to {doing} this image.")

    async def get(self, ctx: AuthContext | None, image_id: str) -> Image:
        """The image if the caller may see it: admin, owner, public, community, or a
        member of a shared image (whatever its answer); else NotFound."""
        def work(s: Session) -> tuple[Image | None, bool]:
            image = s.get(Image, image_id)
            shared_with_caller = (
                image is not None and ctx is not None and image.visibility == "shared"
                and s.get(ImageMember, (image_id, ctx.project_id)) is not None)
            return image, shared_with_caller

        image, member = await self.db.read(work)
        if image is None or not (member or self._visible(image, ctx)):
            raise NotFound(f"No image found with ID {image_id}")
        return image

    # -- list ------------------------------------------------------------------------
    async def list(self, ctx: AuthContext | None, query: Mapping[str, Sequence[str]]
                   ) -> tuple[list[Image], str | None]:
        """Images matching Glance's filters, sorted and paged; returns (page, next marker)."""

        def one(key: str) -> str | None:
            values = query.get(key) or []
            return values[-1] if values else None

        sort = sort_spec(query)
        limit_text = one("limit")
        limit = self.cfg.image.list_limit
        if limit_text is not None:
            try:
                limit = int(limit_text)
                if limit < 0:
                    raise ValueError
            except ValueError:
                raise BadRequest("limit param must be an integer") from None
        limit = min(limit, 1000)

        def work(s: Session) -> list[Image]:
            q = select(Image)
            for key in ("name", "status", "disk_format", "container_format", "owner"):
                value = one(key)
                if value is not None:
                    q = q.where(getattr(Image, key) == value)
            ids = one("id")
            if ids is not None and ids.startswith("in:"):
                wanted = [i.strip().strip('"') for i in ids[3:].split(",") if i.strip()]
                q = q.where(col(Image.id).in_(wanted))
            elif ids is not None:
                q = q.where(Image.id == ids)
            return list(s.exec(q).all())

        rows = await self.db.read(work)
        member_status = one("member_status") or "accepted"
        if member_status not in (*MEMBER_STATUSES, "all"):
            raise BadRequest(f"Invalid status value: {member_status}")
        shared = {} if ctx is None or ctx.is_admin else await self.membership(ctx.project_id)
        visibility = one("visibility")
        if visibility is not None and visibility not in (*VISIBILITIES, "all"):
            raise BadRequest(f"Invalid visibility value: {visibility}")
        protected = one("protected")
        if protected is not None and protected not in ("true", "false"):
            raise BadRequest(f"Invalid value for protected: {protected}")
        tags = list(query.get("tag") or [])
        # Glance: any other parameter filters on the custom property of its name.
        properties = {key: values[-1] for key, values in query.items()
                      if values and key not in LIST_PARAMETERS}
        found = []
        for image in rows:
            status = shared.get(image.id) if image.visibility == "shared" else None
            if status is not None:  # shared with the caller: listed as its answer says
                if member_status not in ("all", status):
                    continue
            elif not self._visible(image, ctx):
                continue
            if visibility in VISIBILITIES and image.visibility != visibility:
                continue
            if visibility is None and image.visibility == "community" and not (
                    ctx is None or image.owner == ctx.project_id):
                continue  # Glance lists community images only when asked for them
            if protected is not None and image.protected != (protected == "true"):
                continue
            if tags and not set(tags) <= set(image.tags):
                continue
            if any(str(image.properties.get(k)) != v for k, v in properties.items()):
                continue
            for key in ("size_min", "size_max"):
                bound = one(key)
                if bound is not None:
                    try:
                        number = int(bound)
                    except ValueError:
                        raise BadRequest(f"Invalid value for {key}: {bound}") from None
                    size = image.size or 0
                    if (key == "size_min" and size < number) or (key == "size_max"
                                                                  and size > number):
                        break
            else:
                found.append(image)
        for key, direction in reversed(sort):
            found.sort(key=lambda i, k=key: sort_value(getattr(i, k)),  # type: ignore[misc]
                       reverse=direction == "desc")
        marker = one("marker")
        if marker:
            ids = [i.id for i in found]
            if marker not in ids:
                raise BadRequest(f"marker {marker} not found")
            found = found[ids.index(marker) + 1:]
        page = found[:limit]
        more = len(found) > limit and limit > 0
        return page, (page[-1].id if more and page else None)

    # -- create / update / delete -------------------------------------------------------
    async def create(self, ctx: AuthContext | None, body: dict[str, Any]) -> Image:
        if not isinstance(body, dict):
            raise BadRequest("Image create body must be a JSON object")
        for key in body:
            if key in patch.READ_ONLY and key != "id":
                raise Forbidden(f"Attribute '{key}' is read-only.")
            if key in patch.RESERVED or key.startswith("os_glance"):
                raise Forbidden(f"Attribute '{key}' is reserved.")
        check_fields(body)
        visibility = body.get("visibility", "shared")
        if visibility == "public" and ctx is not None and not ctx.is_admin:
            raise Forbidden("You are not authorized to create public images")
        owner = ctx.project_id if ctx else None
        if body.get("owner") is not None:
            owner = self._owner_given(ctx, body["owner"], creating=True)
        props = {k: v for k, v in body.items() if k not in CORE and v is not None}
        image = Image(
            name=body.get("name"), disk_format=body.get("disk_format"),
            container_format=body.get("container_format"), visibility=visibility,
            protected=bool(body.get("protected", False)), owner=owner,
            min_disk=int_field(body, "min_disk"), min_ram=int_field(body, "min_ram"),
            properties=props, tags=sorted(set(body.get("tags") or [])),
        )
        if body.get("id"):
            image.id = str(body["id"])
            if await self.db.read(lambda s: s.get(Image, image.id)) is not None:
                raise Conflict(f"Image with identifier {image.id} already exists!")
        await self.db.write(lambda s: s.add(image))
        log.info("image created", image=image.id, name=image.name)
        return image

    async def update(self, ctx: AuthContext | None, image_id: str, ops: Any) -> Image:
        """Apply a JSON Patch (:mod:`novalite.image.patch`)."""
        image = await self.get(ctx, image_id)
        self._check_owner(image, ctx, "modify")
        current = {"name": image.name, "visibility": image.visibility, "owner": image.owner,
                   "protected": image.protected, "min_disk": image.min_disk,
                   "min_ram": image.min_ram, "disk_format": image.disk_format,
                   "container_format": image.container_format, "tags": list(image.tags),
                   "os_hidden": False, **image.properties}
        result = patch.apply(current, ops)
        check_fields(result)
        if result["visibility"] == "public" and image.visibility != "public" and (
                ctx is not None and not ctx.is_admin):
            raise Forbidden("You are not authorized to make images public")
        for key in ("disk_format", "container_format"):
            if result[key] != getattr(image, key) and image.status != "queued":
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
        owner = image.owner
        if result["owner"] != image.owner:
            owner = self._owner_given(ctx, result["owner"], creating=False)
        props = {k: v for k, v in result.items()
                 if k not in CORE and v is not None}
        # reserved properties the service itself keeps (import status) stay as they are
        props.update({k: v for k, v in image.properties.items() if k.startswith("os_glance")})
        return await self._set(image_id, name=result["name"], visibility=result["visibility"],
                               owner=owner,
                               protected=result["protected"], min_disk=result["min_disk"] or 0,
                               min_ram=result["min_ram"] or 0,
                               disk_format=result["disk_format"],
                               container_format=result["container_format"],
                               tags=sorted(set(result["tags"])), properties=props)

    async def add_tag(self, ctx: AuthContext | None, image_id: str, tag: str) -> None:
        image = await self.get(ctx, image_id)
        self._check_owner(image, ctx, "modify")
        if not 0 < len(tag) <= 255:
            raise BadRequest("A tag is 1 to 255 characters long")
        if tag not in image.tags:
            await self._set(image_id, tags=sorted({*image.tags, tag}))

    async def remove_tag(self, ctx: AuthContext | None, image_id: str, tag: str) -> None:
        image = await self.get(ctx, image_id)
        self._check_owner(image, ctx, "modify")
        if tag not in image.tags:
            raise NotFound(f"Tag {tag} not found on image {image_id}")
        await self._set(image_id, tags=[t for t in image.tags if t != tag])

    async def delete(self, ctx: AuthContext | None, image_id: str) -> None:
        image = await self.get(ctx, image_id)
        if image.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        self._check_owner(image, ctx, "delete")

        def work(s: Session) -> None:
            row = s.get(Image, image_id)
            if row is None:  # a concurrent delete won: one 204, the others 404
                raise NotFound(f"No image found with ID {image_id}")
            s.delete(row)
            for member in s.exec(select(ImageMember).where(
                    ImageMember.image_id == image_id)).all():
                s.delete(member)

        await self.db.write(work)
        if image.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(image.path)
        log.info("image deleted", image=image_id)

    @staticmethod
    def _owner_given(ctx: AuthContext | None, owner: Any, *, creating: bool) -> str:
        """An ``owner`` named in a create or patch: any project for admins (Glance lets
        only them give an image away), the caller's own for others."""
        if not isinstance(owner, str) or not 0 < len(owner) <= OWNER_LENGTH:
            raise BadRequest(f"Invalid value for 'owner': {owner!r} is not a project id of "
                             f"1-{OWNER_LENGTH} characters")
        if ctx is not None and not ctx.is_admin and owner != ctx.project_id:
            if creating:
                raise Forbidden(f"You are not permitted to create images owned by '{owner}'.")
            raise Forbidden("Attribute 'owner' is read-only.")
        return owner

    # -- deactivate / reactivate ---------------------------------------------------------
    async def deactivate(self, ctx: AuthContext | None, image_id: str) -> None:
        """An active image stops serving its data to anyone but admins (Glance's
        ``POST /v2/images/{id}/actions/deactivate``); deactivating twice is a no-op."""
        image = await self.get(ctx, image_id)
        self._check_owner(image, ctx, "deactivate")
        if image.status == "deactivated":
            return
        if image.status != "active":
            raise Forbidden(f"Not allowed to deactivate image in status '{image.status}'")
        await self._set(image_id, expect_status=("active",), status="deactivated")
        log.info("image deactivated", image=image_id)

    async def reactivate(self, ctx: AuthContext | None, image_id: str) -> None:
        image = await self.get(ctx, image_id)
        self._check_owner(image, ctx, "reactivate")
        if image.status == "active":
            return
        if image.status != "deactivated":
            raise Forbidden(f"Not allowed to reactivate image in status '{image.status}'")
        await self._set(image_id, expect_status=("deactivated",), status="active")
        log.info("image reactivated", image=image_id)

    async def _set(self, image_id: str, expect_status: Sequence[str] | None = None,
                   within_quota: str | None = None, **values: Any) -> Image:
        """Change the record; ``within_quota``: the project whose image storage quota the
        new size must fit, checked in the same transaction (uploads finishing together
        cannot pass the quota together)."""
        def work(s: Session) -> Image:
            row = s.get(Image, image_id)
            if row is None:
                raise NotFound(f"No image found with ID {image_id}")
            if expect_status is not None and row.status not in expect_status:
                raise Conflict(f"Image {image_id} is {row.status}; expected "
                               f"{' or '.join(expect_status)}")
            if within_quota is not None:
                quota = self.cfg.image.storage_quota_mb * 1024 * 1024
                used = int(s.exec(select(func.coalesce(func.sum(Image.size), 0)).where(
                    Image.owner == within_quota, Image.id != image_id)).one() or 0)
                if quota >= 0 and used + int(values.get("size") or 0) > quota:
                    raise QuotaExceeded413(max(0, quota - used))
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            s.add(row)
            return row

        return await self.db.write(work)

    # -- quota ---------------------------------------------------------------------
    async def usage(self, project_id: str | None) -> int:
        """Bytes of image data the project stores."""
        if project_id is None:
            return 0
        total = await self.db.read(lambda s: s.exec(
            select(func.coalesce(func.sum(Image.size), 0)).where(Image.owner == project_id)
        ).one())
        return int(total or 0)

    async def remaining(self, project_id: str | None) -> int | None:
        """Bytes the project may still upload (None: unlimited)."""
        quota = self.cfg.image.storage_quota_mb
        if quota < 0 or project_id is None:
            return None
        return max(0, quota * 1024 * 1024 - await self.usage(project_id))

    # -- data ----------------------------------------------------------------------
    async def upload(self, ctx: AuthContext | None, image_id: str,
                     chunks: AsyncIterator[bytes], *, declared_size: int | None = None,
                     content_md5: str | None = None) -> Image:
        """``PUT /v2/images/{id}/file``: stream the data in; the image becomes active."""
        image = await self.get(ctx, image_id)
        self._check_owner(image, ctx, "upload data to")
        expected_md5 = parse_md5(content_md5) if content_md5 else None
        try:
            self._check_uploadable(image)
            limit = await self.remaining(image.owner)
            if limit is not None and declared_size is not None and declared_size > limit:
                raise QuotaExceeded413(limit)
            if declared_size is not None:
                self.data.check_space(declared_size)
        except (QuotaExceeded413, StorageFull):
            raise  # the declared size cannot fit: answer now, without reading the body
        except NovaliteError:
            async for _ in chunks:  # let the client finish sending, then answer
                pass
            raise
        return await self._receive(image, chunks, status="saving", limit=limit,
                                   declared_size=declared_size, expected_md5=expected_md5,
                                   drain=True)

    def _check_uploadable(self, image: Image) -> None:
        if image.status != "queued":
            raise Conflict(f"Image status transition from {image.status} to saving is not "
                           "allowed: data can be uploaded only to a queued image")
        if not image.disk_format or not image.container_format:
            raise BadRequest("Properties disk_format and container_format must be set prior "
                             "to uploading image data.")

    async def _receive(self, image: Image, chunks: AsyncIterator[bytes], *, status: str,
                       limit: int | None, declared_size: int | None = None,
                       expected_md5: str | None = None, drain: bool = True,
                       progress: Callable[[int], Awaitable[None]] | None = None) -> Image:
        """The data path shared by upload, web-download and snapshots."""
        image_id = image.id
        # saving starts from queued (so two uploads never race); importing was set already
        await self._set(image_id, expect_status=("queued",) if status == "saving" else (status,),
                        status=status)
        seen = [0]

        async def track(size: int) -> None:
            seen[0] = size
            if progress is not None:
                await progress(size)

        received: Received | None = None
        final: str | None = None
        try:
            received = await self.data.receive(image_id, image.disk_format or "raw", chunks,
                                               limit=limit, drain_on_error=drain,
                                               progress=track)
            if declared_size is not None and received.size != declared_size:
                raise DataRejected(f"declared size (Content-Length) is {declared_size} bytes "
                                   f"but {received.size} bytes were received")
            if expected_md5 is not None and received.md5 != expected_md5:
                raise DataRejected(f"Content-MD5 mismatch: the request declared "
                                   f"{expected_md5} but the data received has md5 "
                                   f"{received.md5}")
            from novalite.image.formats import virtual_size

            vsize = virtual_size(image.disk_format or "raw", received.size, received.inspection)
            final = self.data.install(image_id, received)
            try:
                active = await self._set(
                    image_id, expect_status=(status,), status="active", size=received.size,
                    virtual_size=vsize, checksum=received.md5, os_hash_algo="sha512",
                    os_hash_value=received.sha512, path=final,
                    within_quota=image.owner if limit is not None else None)
            except (NotFound, Conflict):
                raise Gone(f"Image {image_id} was deleted during the upload; its data was "
                           "discarded") from None
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self._fail_receive(image_id, status, received, final, exc, seen[0])
            raise
        log.info("image data stored", image=image_id, size=received.size,
                 disk_format=image.disk_format, virtual_size=vsize)
        return active

    async def _fail_receive(self, image_id: str, status: str, received: Received | None,
                            final: str | None, exc: BaseException, seen: int) -> None:
        for path in (received.tmp_path if received else None, final,
                     self.data.part_path(image_id)):
            if path and os.path.exists(path):
                os.unlink(path)
        reason = exc.message if isinstance(exc, NovaliteError) else (
            f"{type(exc).__name__}: the data stream ended early (client disconnected or "
            f"connection lost) after about {seen} bytes")
        if isinstance(exc, Gone):
            return
        try:
            await self._set(image_id, expect_status=(status,), status="queued", size=None,
                            checksum=None, os_hash_algo=None, os_hash_value=None, path=None)
        except (NotFound, Conflict):
            pass
        log.warning("image data not stored; image left queued, partial data removed",
                    image=image_id, reason=reason)

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
        return await self.upload(None, image.id, file_chunks(path))

    # -- views ---------------------------------------------------------------------
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
