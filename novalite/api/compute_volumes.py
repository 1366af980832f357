"""Nova's proxies to the volume service, ``/os-volumes`` and ``/os-snapshots`` (Nova's
``volumes.py``), until microversion 2.35 (gone from 2.36, as Nova): the volumes and
snapshots of :mod:`novalite.volume` in Nova's camelCase view."""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.query import proxied_page
from novalite.api.views import iso_usec
from novalite.db.models import VolumeSnapshot
from novalite.exceptions import NotFound
from novalite.volume import states
from novalite.volume.api import VolumeAPI, VolumeRecord

router = Router()
RULE = "os_compute_api:os-volumes:"
_GONE = "The resource could not be found."

_TEXT = {"type": ["string", "null"], "maxLength": 255}
VOLUME_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {"volume": {"type": "object", "properties": {
        "volume_type": {"type": "string"}, "snapshot_id": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "size": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1},
        "availability_zone": {"type": "string"}, "display_name": _TEXT,
        "display_description": _TEXT,
    }, "required": ["size"], "additionalProperties": False}},
    "required": ["volume"], "additionalProperties": False,
}
SNAPSHOT_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {"snapshot": {"type": "object", "properties": {
        "volume_id": {"type": "string"}, "display_name": _TEXT, "display_description": _TEXT,
        "force": {"type": ["boolean", "string"]},
    }, "required": ["volume_id"], "additionalProperties": False}},
    "required": ["snapshot"], "additionalProperties": False,
}


def _api(call: ApiCall) -> VolumeAPI:
    if call.version > "2.35":
        raise NotFound(_GONE)
    return call.services.compute.volumes


def volume_view(record: VolumeRecord) -> dict[str, Any]:
    vol = record.volume
    attached = [a for a in record.attachments if a.attach_status == states.ATTACHED]
    return {
        "id": vol.id, "status": vol.status, "size": vol.size,
        "availabilityZone": vol.availability_zone, "createdAt": iso_usec(vol.created_at),
        "displayName": vol.name, "displayDescription": vol.description,
        "volumeType": vol.volume_type, "snapshotId": vol.snapshot_id,
        "metadata": dict(vol.metadata_),
        "attachments": [{"id": vol.id, "volumeId": vol.id, "serverId": a.instance_uuid,
                         **({"device": a.device} if a.device else {})}
                        for a in attached] or [{}],
    }


def snapshot_view(snap: VolumeSnapshot) -> dict[str, Any]:
    return {"id": snap.id, "volumeId": snap.volume_id, "status": snap.status,
            "size": snap.size, "createdAt": iso_usec(snap.created_at),
            "displayName": snap.name, "displayDescription": snap.description}


# -- os-volumes -------------------------------------------------------------------------
@router.route("GET", "/v2.1/os-volumes", rule=RULE + "list")
async def index(call: ApiCall) -> dict[str, Any]:
    rows = await _api(call).list(call.ctx)
    return {"volumes": [volume_view(r) for r in proxied_page(call, rows)]}


@router.route("GET", "/v2.1/os-volumes/detail", rule=RULE + "detail")
async def detail(call: ApiCall) -> dict[str, Any]:
    return await index(call)


@router.route("GET", "/v2.1/os-volumes/{volume_id}", rule=RULE + "show")
async def show(call: ApiCall) -> dict[str, Any]:
    record = await _api(call).get(call.ctx, call.params["volume_id"])
    return {"volume": volume_view(record)}


@router.route("GET", "/v2.1/os-volumes/", rule=RULE + "show")
@router.route("DELETE", "/v2.1/os-volumes/", rule=RULE + "delete")
async def no_volume_id(call: ApiCall) -> dict[str, Any]:
    """A volume's URL without its id (Nova: 404)."""
    _api(call)
    raise NotFound("Volume  could not be found.")


@router.route("POST", "/v2.1/os-volumes", rule=RULE + "create")
async def create(call: ApiCall) -> dict[str, Any]:
    api = _api(call)
    body = schemas.validate(call.body, VOLUME_CREATE)["volume"]
    kind = body.get("volume_type")
    if kind not in (None, api.volume_type, "__DEFAULT__"):
        raise NotFound(f"Volume type with name {kind} could not be found.")
    record = await api.create(
        call.ctx, size=int(body["size"]), name=body.get("display_name"),
        description=body.get("display_description"), metadata=body.get("metadata"),
        snapshot_id=body.get("snapshot_id"),
        availability_zone=body.get("availability_zone"))
    return {"volume": volume_view(record)}


@router.route("DELETE", "/v2.1/os-volumes/{volume_id}", rule=RULE + "delete")
async def delete(call: ApiCall) -> Reply:
    await _api(call).delete(call.ctx, call.params["volume_id"])
    return Reply(202)


# -- os-snapshots -----------------------------------------------------------------------
@router.route("GET", "/v2.1/os-snapshots", rule=RULE + "snapshots:list")
async def snapshot_index(call: ApiCall) -> dict[str, Any]:
    rows = await _api(call).list_snapshots(call.ctx)
    return {"snapshots": [snapshot_view(r) for r in proxied_page(call, rows)]}


@router.route("GET", "/v2.1/os-snapshots/detail", rule=RULE + "snapshots:detail")
async def snapshot_detail(call: ApiCall) -> dict[str, Any]:
    return await snapshot_index(call)


@router.route("GET", "/v2.1/os-snapshots/{snapshot_id}", rule=RULE + "snapshots:show")
async def snapshot_show(call: ApiCall) -> dict[str, Any]:
    snap = await _api(call).get_snapshot(call.ctx, call.params["snapshot_id"])
    return {"snapshot": snapshot_view(snap)}


@router.route("POST", "/v2.1/os-snapshots", rule=RULE + "snapshots:create")
async def snapshot_create(call: ApiCall) -> dict[str, Any]:
    api = _api(call)
    body = schemas.validate(call.body, SNAPSHOT_CREATE)["snapshot"]
    force = str(body.get("force", False)).lower() in ("1", "true", "yes", "on", "t", "y")
    snap = await api.create_snapshot(call.ctx, body["volume_id"],
                                     name=body.get("display_name"),
                                     description=body.get("display_description"),
                                     metadata=None, force=force)
    return {"snapshot": snapshot_view(snap)}


@router.route("DELETE", "/v2.1/os-snapshots/{snapshot_id}", rule=RULE + "snapshots:delete")
async def snapshot_delete(call: ApiCall) -> Reply:
    await _api(call).delete_snapshot(call.ctx, call.params["snapshot_id"])
    return Reply(202)
