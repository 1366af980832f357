"""The volume API layer (Cinder's ``volume/api.py``): states, quotas, records, backend.

Routes (:mod:`novalite.api.volumes`) call it and never touch the database. Work on
the data (a blank file, an image's bytes, a copy) is done before the create
answers, so a volume is ``available`` (or ``error``) when the 202 is sent; a
service killed meanwhile leaves it ``creating``, and :func:`reconcile` at the next
start turns that into ``error`` (and an attach or detach a kill left half done into a
detach its compute host finishes).
"""

from __future__ import annotations

import builtins
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
import trio
from sqlmodel import Session, col, select

from novalite.config import Config
from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import (
    Instance,
    Quota,
    Volume,
    VolumeAttachment,
    VolumeSnapshot,
    utcnow,
)
from novalite.exceptions import BadRequest, NotFound, NovaliteError
from novalite.rpc import Clients, current_context
from novalite.volume import states
from novalite.volume.backends import BackendError, VolumeBackend, load_backend

log = structlog.get_logger("novalite.volume")

#: Cinder's quota resources counted here.
RESOURCES = ("volumes", "gigabytes", "snapshots")
#: Cinder's other quota keys, kept and shown: nothing here makes backups or groups
#: (their usage is 0); ``per_volume_gigabytes`` caps each volume's size (-1: none).
OTHER_LIMITS = {"backups": 10, "backup_gigabytes": 1000, "groups": 10,
                "per_volume_gigabytes": -1}


class OverLimit(NovaliteError):
    """Requested volume or snapshot exceeds allowed quota."""

    code = 413
    title = "overLimit"


@dataclass
class VolumeRecord:
    """A volume with its attachments, as the views need it."""

    volume: Volume
    attachments: builtins.list[VolumeAttachment] = field(default_factory=list)


def _quota_project(project_id: str) -> str:
    """The quotas table holds Cinder's limits under their own project key (Nova's
    os-quota-sets lists every row of a project's key)."""
    return f"cinder:{project_id}"


def usage_in(s: Session, project_id: str) -> dict[str, int]:
    vols = s.exec(select(Volume).where(Volume.project_id == project_id)).all()
    snaps = s.exec(select(VolumeSnapshot).where(VolumeSnapshot.project_id == project_id)).all()
    return {"volumes": len(vols), "snapshots": len(snaps),
            "gigabytes": sum(v.size for v in vols) + sum(s_.size for s_ in snaps)}


class VolumeAPI:
    """Volumes, snapshots, quotas and attachment records of every project."""

    def __init__(self, db: Database, cfg: Config, backend: VolumeBackend | None = None,
                 rpc: Clients | None = None) -> None:
        self.db = db
        self.cfg = cfg
        #: The bus, to tell a compute host that an attached volume grew (None: no
        #: in-use extend).
        self.rpc = rpc
        self.backend = backend or load_backend(cfg.volume.backend, cfg.state_path,
                                                 cfg.volume)
        self.volume_type = cfg.volume.default_volume_type
        self._locks: dict[str, trio.Lock] = defaultdict(trio.Lock)
        self._quota_lock = trio.Lock()

    # -- quotas -------------------------------------------------------------------
    def defaults(self) -> dict[str, int]:
        v = self.cfg.volume
        return {"volumes": v.quota_volumes, "gigabytes": v.quota_gigabytes,
                "snapshots": v.quota_snapshots, **OTHER_LIMITS}

    def limits_in(self, s: Session, project_id: str) -> dict[str, int]:
        limits = self.defaults()
        for row in s.exec(select(Quota).where(
                Quota.project_id == _quota_project(project_id))).all():
            limits[row.resource] = row.hard_limit
        return limits

    async def quotas(self, project_id: str) -> tuple[dict[str, int], dict[str, int]]:
        """(limits, usage) of ``project_id``."""
        return await self.db.read(lambda s: (self.limits_in(s, project_id),
                                             usage_in(s, project_id)))

    async def update_quotas(self, project_id: str, values: dict[str, Any]) -> dict[str, int]:
        for name, value in values.items():
            if name not in RESOURCES and name not in OTHER_LIMITS:
                raise BadRequest(f"Bad key(s) in quota set: {name}")
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise BadRequest(f"Quota limit {value} for {name} must be an integer "
                                 "greater than or equal to -1")

        def work(s: Session) -> dict[str, int]:
            key = _quota_project(project_id)
            for name, value in values.items():
                row = s.exec(select(Quota).where(Quota.project_id == key,
                                                 Quota.resource == name)).first()
                row = row or Quota(project_id=key, resource=name, hard_limit=value)
                row.hard_limit = value
                s.add(row)
            s.flush()
            return self.limits_in(s, project_id)

        return await self.db.write(work)

    async def reset_quotas(self, project_id: str) -> None:
        """Back to the defaults (Cinder's ``DELETE os-quota-sets/{project}``)."""
        def work(s: Session) -> None:
            for row in s.exec(select(Quota).where(
                    Quota.project_id == _quota_project(project_id))).all():
                s.delete(row)

        await self.db.write(work)

    def _check_size_limit(self, s: Session, project_id: str, size: int) -> None:
        limit = self.limits_in(s, project_id)["per_volume_gigabytes"]
        if limit >= 0 and size > limit:
            raise OverLimit(f"VolumeSizeExceedsLimit: Requested volume size {size}G is "
                            f"larger than maximum allowed limit {limit}G.")

    def _check_quota(self, s: Session, project_id: str, volumes: int = 0,
                     gigabytes: int = 0, snapshots: int = 0) -> None:
        limits, used = self.limits_in(s, project_id), usage_in(s, project_id)
        for name, wanted in (("volumes", volumes), ("gigabytes", gigabytes),
                             ("snapshots", snapshots)):
            limit = limits[name]
            if wanted and limit >= 0 and used[name] + wanted > limit:
                if name == "gigabytes":
                    raise OverLimit(f"VolumeSizeExceedsAvailableQuota: Requested volume or "
                                    f"snapshot exceeds allowed gigabytes quota. Requested "
                                    f"{wanted}G, quota is {limit}G and {used[name]}G has "
                                    "been consumed.")
                raise OverLimit(f"Maximum number of {name} allowed ({limit}) exceeded for "
                                f"quota '{name}'.")

    # -- lookups ------------------------------------------------------------------
    def _visible(self, ctx: AuthContext, row: Any) -> bool:
        return row is not None and (ctx.is_admin or row.project_id == ctx.project_id)

    async def get(self, ctx: AuthContext, volume_id: str) -> VolumeRecord:
        def work(s: Session) -> VolumeRecord | None:
            row = s.get(Volume, volume_id)
            if not self._visible(ctx, row):
                return None
            assert row is not None
            return VolumeRecord(row, _attachments(s, [row.id]).get(row.id, []))

        record = await self.db.read(work)
        if record is None:
            raise NotFound(f"Volume {volume_id} could not be found.")
        return record

    async def list(self, ctx: AuthContext, *, all_tenants: bool = False,
                   filters: dict[str, Any] | None = None) -> builtins.list[VolumeRecord]:
        """The caller's volumes (an admin's ``all_tenants``: every project's), filtered
        by ``name``, ``status``, ``metadata`` (a dict every volume's must include),
        ``project_id`` (admins with all_tenants), newest first."""
        filters = filters or {}

        def work(s: Session) -> builtins.list[VolumeRecord]:
            q = select(Volume)
            if not (all_tenants and ctx.is_admin):
                q = q.where(Volume.project_id == ctx.project_id)
            elif filters.get("project_id"):
                q = q.where(Volume.project_id == filters["project_id"])
            if filters.get("name") is not None:
                q = q.where(Volume.name == filters["name"])
            if filters.get("status"):
                q = q.where(Volume.status == filters["status"])
            rows = list(s.exec(q.order_by(col(Volume.created_at).desc())).all())
            wanted = filters.get("metadata") or {}
            rows = [r for r in rows if all(str(r.metadata_.get(k)) == str(v)
                                           for k, v in wanted.items())]
            found = _attachments(s, [r.id for r in rows])
            return [VolumeRecord(r, found.get(r.id, [])) for r in rows]

        return await self.db.read(work)

    # -- create -------------------------------------------------------------------
    async def create(self, ctx: AuthContext, *, size: int | None, name: str | None = None,
                     description: str | None = None, metadata: dict[str, str] | None = None,
                     image_id: str | None = None, snapshot_id: str | None = None,
                     source_volid: str | None = None, bootable: bool | None = None,
                     availability_zone: str | None = None) -> VolumeRecord:
        """Make a volume: blank, from an image (its data fetched from the image API over
        HTTP as the caller), from a snapshot or from another volume."""
        source_size, source_location, image = 0, None, None
        # A copy of a bootable volume is bootable, with its image metadata (Cinder's).
        source_bootable, source_image_meta = False, None
        if snapshot_id:
            snap = await self.get_snapshot(ctx, snapshot_id)
            origin = await self.db.read(lambda s: s.get(Volume, snap.volume_id))
            source_bootable = bool(origin and origin.bootable)
            source_image_meta = origin.image_metadata if origin else None
            if snap.status != states.AVAILABLE:
                raise BadRequest("Invalid snapshot: Originating snapshot status must be "
                                 "one of 'available' values")
            source_size, source_location = snap.size, snap.provider_location
        elif source_volid:
            src = (await self.get(ctx, source_volid)).volume
            if src.status not in (states.AVAILABLE, states.IN_USE):
                raise BadRequest(f"Invalid volume: Volume {source_volid} status must be "
                                 "available or in-use")
            source_size, source_location = src.size, src.provider_location
            source_bootable, source_image_meta = src.bootable, src.image_metadata
        elif image_id:
            image = await self._image(ctx, image_id)
            source_size = max(int(image.get("min_disk") or 0),
                              -(-int(image.get("size") or 0) // 1024 ** 3))
        if size is None:
            size = source_size
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise BadRequest(f"Invalid input received: Volume size '{size}' must be an "
                             "integer and greater than 0")
        if size < source_size:
            raise BadRequest(f"Invalid input received: Volume size '{size}GB' cannot be "
                             f"smaller than the source size ({source_size}GB)")
        az = availability_zone or self.cfg.compute.availability_zone
        if az != self.cfg.compute.availability_zone:
            raise BadRequest(f"Invalid input received: Availability zone '{az}' is invalid.")

        def record(s: Session) -> Volume:
            self._check_size_limit(s, ctx.project_id, size)
            self._check_quota(s, ctx.project_id, volumes=1, gigabytes=size)
            row = Volume(project_id=ctx.project_id, user_id=ctx.user_id, name=name,
                         description=description, size=size, metadata_=dict(metadata or {}),
                         volume_type=self.volume_type, availability_zone=az,
                         image_id=image_id, snapshot_id=snapshot_id,
                         source_volid=source_volid, backend=self.backend.name,
                         bootable=bool(bootable) or image is not None or source_bootable,
                         image_metadata=_image_metadata(image) if image is not None
                         else dict(source_image_meta or {}))
            s.add(row)
            return row

        async with self._quota_lock:
            row = await self.db.write(record)
        try:
            location = await trio.to_thread.run_sync(self.backend.create, row.id, size)
            row.provider_location = location
            if source_location:
                await trio.to_thread.run_sync(self.backend.write_from, location,
                                              source_location)
            elif image is not None:
                await self._copy_image(ctx, image, location)
            status = states.AVAILABLE
        except (BackendError, OSError, httpx.HTTPError, NovaliteError) as exc:
            log.warning("volume create failed", volume=row.id, error=str(exc))
            status = states.ERROR
        row = await self._set(row.id, status=status, provider_location=row.provider_location)
        log.info("volume created", volume=row.id, size=size, status=status)
        return VolumeRecord(row)

    def _image_url(self) -> str:
        glance = self.cfg.glance.api_servers
        return (glance[0] if glance else f"{self.cfg.public_url}/image").rstrip("/")

    async def _image(self, ctx: AuthContext, image_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(f"{self._image_url()}/v2/images/{image_id}",
                                 headers={"X-Auth-Token": ctx.token})
        if r.status_code == 404:
            raise BadRequest(f"Invalid image identifier or unable to access requested "
                             f"image. (image {image_id} could not be found)")
        r.raise_for_status()
        image: dict[str, Any] = r.json()
        if image.get("status") != "active":
            raise BadRequest(f"Invalid image: image {image_id} is not active")
        return image

    async def _copy_image(self, ctx: AuthContext, image: dict[str, Any], location: str
                          ) -> None:
        """The image's bytes into the volume, through a temporary file (raw images;
        qcow2 converted to raw with qemu-img)."""
        with tempfile.TemporaryDirectory(prefix="novalite-volimg-",
                                         dir=self.cfg.state_path) as tmp:
            path = os.path.join(tmp, "image")
            async with httpx.AsyncClient(timeout=None) as client:
                async with client.stream("GET",
                                         f"{self._image_url()}/v2/images/{image['id']}/file",
                                         headers={"X-Auth-Token": ctx.token}) as r:
                    r.raise_for_status()
                    with open(path, "wb") as out:
                        async for chunk in r.aiter_bytes(1 << 20):
                            out.write(chunk)
            if image.get("disk_format") not in (None, "raw", "iso"):
                raw = os.path.join(tmp, "raw")
                await trio.run_process(["qemu-img", "convert", "-O", "raw", path, raw],
                                       capture_stdout=True, capture_stderr=True)
                path = raw
            await trio.to_thread.run_sync(self.backend.write_from, location, path)

    # -- update / delete / extend ---------------------------------------------------
    async def _set(self, volume_id: str, **values: Any) -> Volume:
        def work(s: Session) -> Volume:
            row = s.get(Volume, volume_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.add(row)
            return row

        return await self.db.write(work)

    async def update(self, ctx: AuthContext, volume_id: str, values: dict[str, Any]
                     ) -> VolumeRecord:
        """Set name, description and/or metadata (replaced as a whole)."""
        record = await self.get(ctx, volume_id)
        record.volume = await self._set(record.volume.id, **values)
        return record

    async def delete(self, ctx: AuthContext, volume_id: str, *, force: bool = False) -> None:
        """Delete a volume that is not attached and has no snapshots (Cinder's 400s);
        its data is discarded by the backend before the record goes."""
        record = await self.get(ctx, volume_id)
        vol = record.volume
        allowed = (states.AVAILABLE, states.ERROR, states.ERROR_DELETING)
        if not force and (vol.status not in allowed or record.attachments):
            raise BadRequest("Invalid volume: Volume status must be available or error or "
                             "error_restoring or error_extending or error_managing and must "
                             "not be migrating, attached, belong to a group, have snapshots, "
                             "awaiting a transfer, or be disassociated from snapshots after "
                             "volume transfer.")

        def mark(s: Session) -> Volume:
            row = s.get(Volume, volume_id)
            assert row is not None
            if s.exec(select(VolumeSnapshot).where(
                    VolumeSnapshot.volume_id == volume_id)).first() is not None:
                raise BadRequest("Invalid volume: Volume still has 1 dependent snapshots.")
            row.status = states.DELETING
            s.add(row)
            return row

        vol = await self.db.write(mark)
        await self.destroy(vol)

    async def destroy(self, vol: Volume) -> None:
        """Discard a volume's data and remove its records (no checks: the caller made them)."""
        try:
            if vol.provider_location:
                await trio.to_thread.run_sync(self.backend.delete, vol.provider_location)
        except (BackendError, OSError) as exc:
            await self._set(vol.id, status=states.ERROR_DELETING)
            raise BadRequest(f"Unable to delete volume {vol.id}: {exc}") from None

        def drop(s: Session) -> None:
            for att in s.exec(select(VolumeAttachment).where(
                    VolumeAttachment.volume_id == vol.id)).all():
                s.delete(att)
            row = s.get(Volume, vol.id)
            if row is not None:
                s.delete(row)

        await self.db.write(drop)
        log.info("volume deleted", volume=vol.id)

    async def extend(self, ctx: AuthContext, volume_id: str, new_size: Any,
                     in_use_ok: bool = False) -> None:
        """``os-extend``: an available volume, or (``in_use_ok``, Cinder 3.42) an
        attached one, whose server's compute host is then told (driver capability
        ``supports_extend_volume``)."""
        record = await self.get(ctx, volume_id)
        vol = record.volume
        allowed = (states.AVAILABLE, states.IN_USE) if in_use_ok else (states.AVAILABLE,)
        if vol.status not in allowed:
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be "
                             f"'available' to extend, currently {vol.status}.")
        if not isinstance(new_size, int) or isinstance(new_size, bool) or \
                new_size <= vol.size:
            raise BadRequest(f"Invalid input received: New size for extend must be greater "
                             f"than current size. (current: {vol.size}, extended: "
                             f"{new_size}).")

        def mark(s: Session) -> None:
            self._check_size_limit(s, vol.project_id, new_size)
            self._check_quota(s, vol.project_id, gigabytes=new_size - vol.size)
            row = s.get(Volume, volume_id)
            assert row is not None
            row.status = states.EXTENDING
            s.add(row)

        async with self._quota_lock:
            await self.db.write(mark)
        try:
            assert vol.provider_location
            await trio.to_thread.run_sync(self.backend.extend, vol.provider_location,
                                          new_size)
        except (BackendError, OSError) as exc:
            log.warning("extend failed", volume=volume_id, error=str(exc))
            await self._set(volume_id, status="error_extending")
            return
        for att in record.attachments:  # the guest learns its disk grew
            if self.rpc is not None and att.attached_host:
                try:
                    await self.rpc.compute(att.attached_host).extend_volume(
                        current_context(ctx), att.instance_uuid, volume_id,
                        new_size * 1024 ** 3)
                except Exception as exc:  # the data grew; the guest sees it at reboot
                    log.warning("guest not told of the extend", volume=volume_id,
                                error=str(exc))
        await self._set(volume_id, status=vol.status, size=new_size)

    async def force_detach(self, ctx: AuthContext, volume_id: str,
                           attachment_id: str | None = None) -> None:
        """``os-force_detach`` (admins): forget the volume's attachments (or one) without
        asking a compute host (whose host may be gone); the volume is available."""
        await self.get(ctx, volume_id)

        def work(s: Session) -> None:
            for att in s.exec(select(VolumeAttachment).where(
                    VolumeAttachment.volume_id == volume_id)).all():
                if attachment_id in (None, att.id):
                    s.delete(att)
            s.flush()
            row = s.get(Volume, volume_id)
            assert row is not None
            held = s.exec(select(VolumeAttachment).where(
                VolumeAttachment.volume_id == volume_id)).first() is not None
            row.status = states.IN_USE if held else states.AVAILABLE
            s.add(row)

        await self.db.write(work)

    async def reserve(self, ctx: AuthContext, volume_id: str, *, reserve: bool) -> None:
        """Cinder's legacy ``os-reserve`` (``available`` -> ``attaching``) and
        ``os-unreserve`` (a reserved volume back to ``available``); a reservation a
        killed service left is undone by :func:`reconcile`."""
        await self.get(ctx, volume_id)

        def work(s: Session) -> None:
            row = s.get(Volume, volume_id)
            assert row is not None
            if reserve:
                if row.status != states.AVAILABLE:
                    raise BadRequest(f"Invalid volume: Volume status must be available to "
                                     f"reserve, but the status is {row.status}.")
                row.status = states.ATTACHING
            elif row.status == states.ATTACHING and s.exec(select(VolumeAttachment).where(
                    VolumeAttachment.volume_id == volume_id)).first() is None:
                row.status = states.AVAILABLE
            row.updated_at = utcnow()
            s.add(row)

        await self.db.write(work)

    async def reset_status(self, ctx: AuthContext, volume_id: str, status: str) -> None:
        if status not in states.VOLUME_STATES:
            raise BadRequest(f"Invalid input received: Invalid status {status}")
        await self.get(ctx, volume_id)
        await self._set(volume_id, status=status)

    # -- snapshots ----------------------------------------------------------------
    async def get_snapshot(self, ctx: AuthContext, snapshot_id: str) -> VolumeSnapshot:
        row = await self.db.read(lambda s: s.get(VolumeSnapshot, snapshot_id))
        if not self._visible(ctx, row):
            raise NotFound(f"Snapshot {snapshot_id} could not be found.")
        assert row is not None
        return row

    async def list_snapshots(self, ctx: AuthContext, all_tenants: bool = False,
                             filters: dict[str, Any] | None = None
                             ) -> builtins.list[VolumeSnapshot]:
        filters = filters or {}

        def work(s: Session) -> builtins.list[VolumeSnapshot]:
            q = select(VolumeSnapshot)
            if not (all_tenants and ctx.is_admin):
                q = q.where(VolumeSnapshot.project_id == ctx.project_id)
            for key in ("name", "status", "volume_id"):
                if filters.get(key):
                    q = q.where(getattr(VolumeSnapshot, key) == filters[key])
            return list(s.exec(q.order_by(col(VolumeSnapshot.created_at).desc())).all())

        return await self.db.read(work)

    async def create_snapshot(self, ctx: AuthContext, volume_id: str, *, name: str | None,
                              description: str | None, metadata: dict[str, str] | None,
                              force: bool = False) -> VolumeSnapshot:
        vol = (await self.get(ctx, volume_id)).volume
        if vol.status != states.AVAILABLE and not (force and vol.status == states.IN_USE):
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be "
                             f"available, but current status is: {vol.status}.")

        def record(s: Session) -> VolumeSnapshot:
            self._check_quota(s, ctx.project_id, snapshots=1, gigabytes=vol.size)
            row = VolumeSnapshot(volume_id=vol.id, project_id=ctx.project_id,
                                 user_id=ctx.user_id, name=name, description=description,
                                 size=vol.size, metadata_=dict(metadata or {}))
            s.add(row)
            return row

        async with self._quota_lock:
            snap = await self.db.write(record)
        status, location = states.AVAILABLE, None
        try:
            assert vol.provider_location
            location = await trio.to_thread.run_sync(self.backend.snapshot,
                                                     vol.provider_location, snap.id)
        except (BackendError, OSError) as exc:
            log.warning("snapshot failed", snapshot=snap.id, error=str(exc))
            status = states.ERROR

        def done(s: Session) -> VolumeSnapshot:
            row = s.get(VolumeSnapshot, snap.id)
            assert row is not None
            row.status, row.provider_location, row.updated_at = status, location, utcnow()
            s.add(row)
            return row

        return await self.db.write(done)

    async def update_snapshot(self, ctx: AuthContext, snapshot_id: str,
                              values: dict[str, Any]) -> VolumeSnapshot:
        await self.get_snapshot(ctx, snapshot_id)

        def work(s: Session) -> VolumeSnapshot:
            row = s.get(VolumeSnapshot, snapshot_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.add(row)
            return row

        return await self.db.write(work)

    async def delete_snapshot(self, ctx: AuthContext, snapshot_id: str) -> None:
        snap = await self.get_snapshot(ctx, snapshot_id)
        if snap.status not in (states.AVAILABLE, states.ERROR):
            raise BadRequest("Invalid snapshot: Volume Snapshot status must be available or "
                             "error and must not be part of a group.")
        if snap.provider_location:
            await trio.to_thread.run_sync(self.backend.delete_snapshot, snap.provider_location)

        def drop(s: Session) -> None:
            row = s.get(VolumeSnapshot, snapshot_id)
            if row is not None:
                s.delete(row)

        await self.db.write(drop)

    # -- attachments (Cinder's side; Nova's is novalite.volume.attachments) ----------
    async def attachments(self, ctx: AuthContext) -> builtins.list[VolumeAttachment]:
        def work(s: Session) -> builtins.list[VolumeAttachment]:
            q = select(VolumeAttachment, Volume).where(
                VolumeAttachment.volume_id == Volume.id)
            if not ctx.is_admin:
                q = q.where(Volume.project_id == ctx.project_id)
            return [att for att, _ in s.exec(q).all()]

        return await self.db.read(work)


def _attachments(s: Session, volume_ids: list[str]) -> dict[str, list[VolumeAttachment]]:
    out: dict[str, list[VolumeAttachment]] = {}
    if not volume_ids:
        return out
    for att in s.exec(select(VolumeAttachment).where(
            col(VolumeAttachment.volume_id).in_(volume_ids))).all():
        out.setdefault(att.volume_id, []).append(att)
    return out


def record_boot_volume(s: Session, volume_id: str, instance_uuid: str,
                       delete_on_termination: bool) -> None:
    """A server's root volume (boot from volume), in the server's create transaction:
    attached as ``/dev/vda`` at boot index 0, the volume ``in-use``."""
    row = s.get(Volume, volume_id)
    if row is None or row.status != states.AVAILABLE:
        raise BadRequest(f"Invalid volume: volume {volume_id} status must be 'available'")
    row.status, row.updated_at = states.IN_USE, utcnow()
    s.add(row)
    s.add(VolumeAttachment(volume_id=volume_id, instance_uuid=instance_uuid,
                           device="/dev/vda", attach_status=states.ATTACHED, boot_index=0,
                           delete_on_termination=delete_on_termination,
                           attached_at=utcnow()))


def attached_to(s: Session, instance_uuids: list[str]) -> dict[str, list[tuple[str, bool]]]:
    """instance uuid -> (volume id, delete_on_termination) of its attached volumes
    (the server view's ``os-extended-volumes:volumes_attached``)."""
    out: dict[str, list[tuple[str, bool]]] = {}
    if not instance_uuids:
        return out
    for att in s.exec(select(VolumeAttachment).where(
            col(VolumeAttachment.instance_uuid).in_(instance_uuids),
            VolumeAttachment.attach_status != states.ATTACHING)
            .order_by(col(VolumeAttachment.created_at))).all():
        out.setdefault(att.instance_uuid, []).append((att.volume_id,
                                                      att.delete_on_termination))
    return out


def _image_metadata(image: dict[str, Any] | None) -> dict[str, Any]:
    if image is None:
        return {}
    keep = {k: str(v) for k, v in image.items()
            if k in ("disk_format", "container_format", "min_disk", "min_ram", "size",
                     "checksum") and v is not None}
    return {"image_id": image["id"], "image_name": image.get("name") or "", **keep}


def reconcile(s: Session) -> builtins.list[str]:
    """Start-up reconciliation (called by :mod:`novalite.conductor.recovery`): a volume
    a killed service left ``creating`` is ``error``; an ``extending`` or ``deleting``
    one is ``error``. An attach or a detach it left half done cannot be known to have
    reached the guest or not: both end detached. When the server is gone or has no
    host there is nothing to undo and the attachment is dropped at once; otherwise
    the attachment and the volume are ``detaching`` and the conductor has the
    server's compute host finish the detach (:func:`interrupted_detaches`), after
    which the volume is ``available`` (unless another attachment holds it). Returns
    the volumes changed."""
    changed = []
    for att in s.exec(select(VolumeAttachment).where(col(VolumeAttachment.attach_status).in_(
            (states.ATTACHING, states.DETACHING)))).all():
        inst = s.exec(select(Instance).where(Instance.uuid == att.instance_uuid,
                                             Instance.deleted == 0)).first()
        if inst is None or not inst.host:
            s.delete(att)
        else:
            att.attach_status = states.DETACHING
            s.add(att)
    s.flush()
    for vol in s.exec(select(Volume).where(col(Volume.status).in_(
            (states.CREATING, states.ATTACHING, states.DETACHING, states.EXTENDING,
             states.DELETING)))).all():
        held = {a.attach_status for a in s.exec(select(VolumeAttachment).where(
            VolumeAttachment.volume_id == vol.id)).all()}
        if vol.status in (states.ATTACHING, states.DETACHING):
            vol.status = (states.DETACHING if states.DETACHING in held else
                          states.IN_USE if held else states.AVAILABLE)
        else:
            vol.status = states.ERROR
        vol.updated_at = utcnow()
        s.add(vol)
        changed.append(vol.id)
    return changed


def release_attachment(s: Session, attachment_id: str, volume_id: str) -> None:
    """Forget an attachment; the volume is ``available`` unless another holds it."""
    att = s.get(VolumeAttachment, attachment_id)
    if att is not None:
        s.delete(att)
    s.flush()
    row = s.get(Volume, volume_id)
    if row is not None:
        held = s.exec(select(VolumeAttachment).where(
            VolumeAttachment.volume_id == volume_id)).first()
        row.status = states.IN_USE if held else states.AVAILABLE
        row.updated_at = utcnow()
        s.add(row)


def interrupted_detaches(s: Session) -> builtins.list[dict[str, str]]:
    """The detaches :func:`reconcile` left for compute hosts to finish (right after it,
    nothing else is detaching): attachment id, volume id, server uuid and host."""
    rows = s.exec(select(VolumeAttachment, Instance).where(
        VolumeAttachment.attach_status == states.DETACHING,
        VolumeAttachment.instance_uuid == Instance.uuid, Instance.deleted == 0)).all()
    return [{"attachment_id": att.id, "volume_id": att.volume_id,
             "instance_uuid": inst.uuid, "host": str(inst.host)} for att, inst in rows
            if inst.host]
