"""The block storage API (a Cinder v3 subset), mounted at ``/volume``: volumes,
snapshots, the default volume type, attachments as Cinder records them, quotas
and limits. URLs are Cinder's, ``/volume/v3/{project_id}/...`` (and, as Cinder
3.67 allows, without the project id); error bodies are Cinder's
(``{"badRequest": {"code": 400, "message": ...}}``, ``overLimit`` 413 for quota).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from novalite.api import volume_schemas as vs
from novalite.api.framework import (
    ActionRegistry,
    ApiCall,
    Authenticator,
    Call,
    Reply,
    Router,
    Services,
    error_response,
    starlette_routes,
)
from novalite.api.schemas import validate
from novalite.api.views import iso_usec
from novalite.db.models import Volume, VolumeAttachment, VolumeSnapshot
from novalite.exceptions import BadRequest, NotFound
from novalite.policy import authorize
from novalite.volume import states
from novalite.volume.api import VolumeAPI, VolumeRecord

router = Router()
MAX_VERSION = "3.42"
UPDATED = "2023-03-08T00:00:00Z"
TYPE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "novalite/volume-type/default"))


def _api(call: ApiCall | Call) -> VolumeAPI:
    return call.services.compute.volumes


def _max() -> tuple[int, int]:
    major, _, minor = MAX_VERSION.partition(".")
    return int(major), int(minor)


def requested_version(request: Request) -> tuple[int, int]:
    """The ``OpenStack-API-Version: volume 3.N`` a request asks for (3.0 without one,
    the newest for ``latest``); NotFound for one out of 3.0-MAX_VERSION, as Cinder's
    VersionNotFoundForAPIMethod, BadRequest for one that is not a version."""
    for item in request.headers.get("openstack-api-version", "").split(","):
        parts = item.strip().split()
        if len(parts) == 2 and parts[0].lower() == "volume":
            if parts[1].lower() == "latest":
                return _max()
            major, _, minor = parts[1].partition(".")
            if not (major.isdigit() and minor.isdigit()):
                raise BadRequest(f"Invalid API version request string {parts[1]}")
            wanted = int(major), int(minor)
            if not (3, 0) <= wanted <= _max():
                raise NotFound(f"Version {parts[1]} is not supported by the API. Minimum "
                               f"is 3.0 and maximum is {MAX_VERSION}.")
            return wanted
    return 3, 0


def _volume_mv(call: ApiCall) -> tuple[int, int]:
    """The volume microversion of the call (see :func:`requested_version`)."""
    return requested_version(call.request)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on", "t", "y")


def _link(call: ApiCall, kind: str, item_id: str) -> list[dict[str, str]]:
    base = f"{call.services.base_url}/volume/v3/{call.ctx.project_id}/{kind}/{item_id}"
    return [{"rel": "self", "href": base},
            {"rel": "bookmark", "href": base.replace("/v3/", "/")}]


def attachment_view(att: VolumeAttachment) -> dict[str, Any]:
    return {"id": att.volume_id, "attachment_id": att.id, "volume_id": att.volume_id,
            "server_id": att.instance_uuid, "host_name": att.attached_host,
            "device": att.device, "attached_at": iso_usec(att.attached_at)}


def volume_view(call: ApiCall, record: VolumeRecord, detail: bool = True,
                extended: bool = True) -> dict[str, Any]:
    """Cinder's volume view. ``extended``: with the attributes Cinder's extensions add
    to a show or a detailed list (tenant, image metadata, host and migration for
    admins), which the answers to a create or an update do not carry."""
    vol: Volume = record.volume
    out: dict[str, Any] = {"id": vol.id, "name": vol.name, "links": _link(call, "volumes",
                                                                           vol.id)}
    if not detail:
        return out
    out.update({
        "status": vol.status, "size": vol.size, "availability_zone": vol.availability_zone,
        "created_at": iso_usec(vol.created_at), "updated_at": iso_usec(vol.updated_at),
        "description": vol.description, "volume_type": vol.volume_type,
        "snapshot_id": vol.snapshot_id, "source_volid": vol.source_volid,
        "metadata": dict(vol.metadata_), "bootable": "true" if vol.bootable else "false",
        "encrypted": False, "multiattach": False, "replication_status": None,
        "consistencygroup_id": None, "user_id": vol.user_id, "migration_status": None,
        "attachments": [attachment_view(a) for a in record.attachments
                        if a.attach_status == states.ATTACHED],
    })
    if not extended:
        return out
    out["os-vol-tenant-attr:tenant_id"] = vol.project_id
    if vol.image_metadata:
        out["volume_image_metadata"] = dict(vol.image_metadata)
    if call.ctx.is_admin:
        out["os-vol-host-attr:host"] = f"novalite@{vol.backend}#{vol.backend}"
        out["os-vol-mig-status-attr:migstat"] = None
        out["os-vol-mig-status-attr:name_id"] = None
    return out


def snapshot_view(snap: VolumeSnapshot, extended: bool = True) -> dict[str, Any]:
    """Cinder's snapshot view; ``extended`` as :func:`volume_view`'s (a show or a
    detailed list carries the project and progress; a create or update does not)."""
    out = {"id": snap.id, "volume_id": snap.volume_id, "status": snap.status,
           "size": snap.size, "name": snap.name, "description": snap.description,
           "created_at": iso_usec(snap.created_at), "updated_at": iso_usec(snap.updated_at),
           "metadata": dict(snap.metadata_)}
    if extended:
        out["os-extended-snapshot-attributes:project_id"] = snap.project_id
        out["os-extended-snapshot-attributes:progress"] = "100%"
    return out


def _filters(call: ApiCall) -> tuple[bool, dict[str, Any]]:
    all_tenants = _truthy(call.query.get("all_tenants", "0"))
    if all_tenants:
        authorize(call.ctx, "volume:get_all_tenants")
    filters: dict[str, Any] = {k: call.query[k] for k in ("name", "status", "project_id",
                                                          "volume_id")
                               if call.query.get(k) is not None}
    if call.query.get("metadata"):
        import ast

        try:  # cinderclient sends a Python dict's repr: "{'k': 'v'}"
            filters["metadata"] = dict(ast.literal_eval(call.query["metadata"]))
        except (ValueError, SyntaxError, TypeError):
            raise BadRequest("Invalid input received: metadata must be a dict") from None
    return all_tenants, filters


#: The keys a list may be sorted by (Cinder's; ``name`` also as ``display_name``).
SORT_KEYS = ("id", "name", "display_name", "status", "size", "availability_zone",
             "created_at", "updated_at", "bootable", "volume_id", "project_id")


def _int_param(call: ApiCall, name: str) -> int | None:
    raw = call.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest(f"Invalid input received: {name} must be a non-negative "
                         f"integer, not {raw!r}")
    return value


def _sort_spec(call: ApiCall) -> list[tuple[str, bool]]:
    """``sort=k1:asc,k2`` or ``sort_key``/``sort_dir`` as (key, descending) pairs
    (Cinder's default: ``created_at`` descending, then ``id``)."""
    items: list[tuple[str, str]] = []
    if call.query.get("sort"):
        if call.query.get("sort_key") or call.query.get("sort_dir"):
            raise BadRequest("Invalid input received: The 'sort_key' and 'sort_dir' "
                             "parameters are deprecated and cannot be used with the "
                             "'sort' parameter.")
        for part in str(call.query["sort"]).split(","):
            key, _, direction = part.strip().partition(":")
            items.append((key.strip(), direction.strip() or "desc"))
    elif call.query.get("sort_key") or call.query.get("sort_dir"):
        items.append((str(call.query.get("sort_key") or "created_at"),
                      str(call.query.get("sort_dir") or "desc")))
    out = []
    for key, direction in items:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid input received: Invalid sort key {key!r}")
        if direction.lower() not in ("asc", "desc"):
            raise BadRequest(f"Invalid input received: Unknown sort direction, must be "
                             f"'desc' or 'asc': {direction}")
        out.append(("name" if key == "display_name" else key, direction.lower() == "desc"))
    return out or [("created_at", True)]


def next_links(call: ApiCall, kind: str, shown: list[Any], row_of: Any) -> dict[str, Any]:
    """``<kind>_links`` with the next page's URL when a ``limit`` filled the page."""
    limit = _int_param(call, "limit")
    if not limit or len(shown) < limit:
        return {}
    query = {k: v for k, v in call.query.items() if k != "marker"}
    query["marker"] = row_of(shown[-1]).id
    url = call.request.url.replace_query_params(**query)
    return {f"{kind}_links": [{"rel": "next", "href": str(url)}]}


def paginate(call: ApiCall, rows: list[Any], row_of: Any) -> list[Any]:
    """Cinder's ``sort``/``sort_key``/``sort_dir``, ``marker``, ``offset`` and ``limit``
    over ``rows`` (``row_of(item)``: the model row); 400 for a bad value, 404 for a
    marker that is not in the list."""
    limit, offset = _int_param(call, "limit"), _int_param(call, "offset")
    for key, descending in reversed([*_sort_spec(call), ("id", True)]):
        present = [r for r in rows if getattr(row_of(r), key, None) is not None]
        absent = [r for r in rows if getattr(row_of(r), key, None) is None]
        present.sort(key=lambda r: getattr(row_of(r), key), reverse=descending)
        rows = present + absent
    marker = call.query.get("marker")
    if marker:
        ids = [row_of(r).id for r in rows]
        if marker not in ids:
            raise NotFound(f"Marker {marker} could not be found.")
        rows = rows[ids.index(marker) + 1:]
    if offset:
        rows = rows[offset:]
    if limit is not None:
        rows = rows[:limit]
    return rows


# -- versions ---------------------------------------------------------------------------
def _version(call: Call) -> dict[str, Any]:
    return {"id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": "3.0",
            "updated": UPDATED,
            "links": [{"rel": "self", "href": f"{call.services.base_url}/volume/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}]}


@router.public("GET", "/")
async def versions(call: Call) -> Reply:
    return Reply(300, {"versions": [_version(call)]})


@router.public("GET", "/v3")
@router.public("GET", "/v3/")
async def version(call: Call) -> Reply:
    return Reply(200, {"versions": [_version(call)]})


# -- volumes ----------------------------------------------------------------------------
@router.route("POST", "/v3/volumes", rule="volume:create", body=vs.VOLUME_CREATE)
async def create(call: ApiCall) -> Reply:
    body = call.body["volume"]
    size = body.get("size")
    if isinstance(size, str):
        size = int(size) if size.strip().lstrip("-").isdigit() else size
    kind = body.get("volume_type")
    api = _api(call)
    if kind not in (None, api.volume_type, TYPE_ID, "__DEFAULT__"):
        raise NotFound(f"Volume type with name {kind} could not be found.")
    record = await api.create(
        call.ctx, size=size, name=body.get("name", body.get("display_name")),
        description=body.get("description", body.get("display_description")),
        metadata=body.get("metadata"), image_id=body.get("imageRef") or body.get("image_id"),
        snapshot_id=body.get("snapshot_id"), source_volid=body.get("source_volid"),
        availability_zone=body.get("availability_zone"))
    return Reply(202, {"volume": volume_view(call, record, extended=False)})


@router.route("GET", "/v3/volumes", rule="volume:get_all")
async def index(call: ApiCall) -> dict[str, Any]:
    all_tenants, filters = _filters(call)
    rows = await _api(call).list(call.ctx, all_tenants=all_tenants, filters=filters)
    rows = paginate(call, rows, lambda r: r.volume)
    return {"volumes": [volume_view(call, r, detail=False) for r in rows],
            **next_links(call, "volumes", rows, lambda r: r.volume)}


@router.route("GET", "/v3/volumes/detail", rule="volume:get_all")
async def detail(call: ApiCall) -> dict[str, Any]:
    all_tenants, filters = _filters(call)
    rows = await _api(call).list(call.ctx, all_tenants=all_tenants, filters=filters)
    rows = paginate(call, rows, lambda r: r.volume)
    return {"volumes": [volume_view(call, r) for r in rows],
            **next_links(call, "volumes", rows, lambda r: r.volume)}


@router.route("GET", "/v3/volumes/", rule="volume:get")
@router.route("PUT", "/v3/volumes/", rule="volume:update")
@router.route("DELETE", "/v3/volumes/", rule="volume:delete")
async def no_volume_id(call: ApiCall) -> dict[str, Any]:
    """A volume's URL without its id (Cinder: 404)."""
    raise NotFound("Volume  could not be found.")


@router.route("GET", "/v3/volumes/summary", rule="volume:get_volume_summary")
async def summary(call: ApiCall) -> dict[str, Any]:
    """Count and total size of the caller's volumes (3.12), and the metadata values
    they hold per key (3.36)."""
    all_tenants, filters = _filters(call)
    rows = await _api(call).list(call.ctx, all_tenants=all_tenants, filters=filters)
    out: dict[str, Any] = {"total_size": sum(r.volume.size for r in rows),
                           "total_count": len(rows)}
    if _volume_mv(call) >= (3, 36):
        meta: dict[str, list[str]] = {}
        for r in rows:
            for k, v in r.volume.metadata_.items():
                if v not in meta.setdefault(k, []):
                    meta[k].append(v)
        out["metadata"] = meta
    return {"volume-summary": out}


@router.route("GET", "/v3/os-availability-zone",
              rule="volume_extension:availability_zone_list")
async def availability_zones(call: ApiCall) -> dict[str, Any]:
    return {"availabilityZoneInfo": [{
        "zoneName": call.services.compute.cfg.compute.availability_zone,
        "zoneState": {"available": True}}]}


@router.route("GET", "/v3/volumes/{volume_id}", rule="volume:get")
async def show(call: ApiCall) -> dict[str, Any]:
    record = await _api(call).get(call.ctx, call.params["volume_id"])
    return {"volume": volume_view(call, record)}


@router.route("PUT", "/v3/volumes/{volume_id}", rule="volume:update", body=vs.VOLUME_UPDATE)
async def update(call: ApiCall) -> dict[str, Any]:
    body = call.body["volume"]
    values: dict[str, Any] = {}
    for key, alias in (("name", "display_name"), ("description", "display_description")):
        if key in body or alias in body:
            values[key] = body.get(key, body.get(alias))
    if body.get("metadata") is not None:
        values["metadata_"] = dict(body["metadata"])
    record = await _api(call).update(call.ctx, call.params["volume_id"], values)
    return {"volume": volume_view(call, record, extended=False)}


@router.route("DELETE", "/v3/volumes/{volume_id}", rule="volume:delete")
async def delete(call: ApiCall) -> Reply:
    await _api(call).delete(call.ctx, call.params["volume_id"],
                            force=False)
    return Reply(202)


@router.route("GET", "/v3/volumes/{volume_id}/metadata", rule="volume:get")
async def metadata_show(call: ApiCall) -> dict[str, Any]:
    record = await _api(call).get(call.ctx, call.params["volume_id"])
    return {"metadata": dict(record.volume.metadata_)}


@router.route("POST", "/v3/volumes/{volume_id}/metadata", rule="volume:update", body=vs.METADATA)
async def metadata_merge(call: ApiCall) -> dict[str, Any]:
    given = call.body["metadata"]
    record = await _api(call).get(call.ctx, call.params["volume_id"])
    merged = {**record.volume.metadata_, **given}
    record = await _api(call).update(call.ctx, record.volume.id, {"metadata_": merged})
    return {"metadata": dict(record.volume.metadata_)}


@router.route("PUT", "/v3/volumes/{volume_id}/metadata", rule="volume:update", body=vs.METADATA)
async def metadata_replace(call: ApiCall) -> dict[str, Any]:
    given = call.body["metadata"]
    record = await _api(call).update(call.ctx, call.params["volume_id"],
                                     {"metadata_": dict(given)})
    return {"metadata": dict(record.volume.metadata_)}


@router.route("DELETE", "/v3/volumes/{volume_id}/metadata/{key}", rule="volume:update")
async def metadata_delete(call: ApiCall) -> Reply:
    record = await _api(call).get(call.ctx, call.params["volume_id"])
    meta = dict(record.volume.metadata_)
    if call.params["key"] not in meta:
        raise NotFound("Metadata item was not found")
    meta.pop(call.params["key"])
    await _api(call).update(call.ctx, record.volume.id, {"metadata_": meta})
    return Reply(200)


@router.route("GET", "/v3/volumes/{volume_id}/metadata/{key}", rule="volume:get")
async def metadata_item_show(call: ApiCall) -> dict[str, Any]:
    record = await _api(call).get(call.ctx, call.params["volume_id"])
    return {"meta": _item(record.volume.metadata_, call.params["key"])}


@router.route("PUT", "/v3/volumes/{volume_id}/metadata/{key}", rule="volume:update")
async def metadata_item_set(call: ApiCall) -> dict[str, Any]:
    meta = _meta_item(call)
    record = await _api(call).get(call.ctx, call.params["volume_id"])
    merged = {**record.volume.metadata_, **meta}
    await _api(call).update(call.ctx, record.volume.id, {"metadata_": merged})
    return {"meta": meta}


def _item(metadata: dict[str, str], key: str) -> dict[str, str]:
    if key not in metadata:
        raise NotFound("Metadata item was not found")
    return {key: metadata[key]}


def _meta_item(call: ApiCall) -> dict[str, str]:
    """The ``{"meta": {key: value}}`` body of a metadata item's PUT: one key, the URL's."""
    given = validate(call.body, vs.META_ITEM)["meta"]
    if list(given) != [call.params["key"]]:
        raise BadRequest("Request body and URI mismatch" if len(given) == 1 else
                         "Request body contains too many items")
    return dict(given)


volume_actions = ActionRegistry(
    unknown=lambda name: BadRequest(f"There is no such action: {name}"))
router.action_route("/v3/volumes/{volume_id}/action", volume_actions)


@volume_actions.action("os-extend", rule="volume:extend")
async def extend(call: ApiCall, args: Any) -> Reply:
    new_size = args.get("new_size") if isinstance(args, dict) else None
    if isinstance(new_size, str) and new_size.isdigit():
        new_size = int(new_size)
    # Cinder extends an attached volume from microversion 3.42.
    await _api(call).extend(call.ctx, call.params["volume_id"], new_size,
                            in_use_ok=_volume_mv(call) >= (3, 42))
    return Reply(202)


@volume_actions.action("os-force_detach",
                       rule="volume_extension:volume_admin_actions:force_detach")
async def force_detach(call: ApiCall, args: Any) -> Reply:
    attachment = args.get("attachment_id") if isinstance(args, dict) else None
    await _api(call).force_detach(call.ctx, call.params["volume_id"], attachment)
    return Reply(202)


@volume_actions.action("os-reset_status",
                       rule="volume_extension:volume_admin_actions:reset_status")
async def reset_status(call: ApiCall, args: Any) -> Reply:
    status = args.get("status") if isinstance(args, dict) else None
    await _api(call).reset_status(call.ctx, call.params["volume_id"], str(status))
    return Reply(202)


@volume_actions.action("os-force_delete",
                       rule="volume_extension:volume_admin_actions:force_delete")
async def force_delete(call: ApiCall, args: Any) -> Reply:
    await _api(call).delete(call.ctx, call.params["volume_id"], force=True)
    return Reply(202)


@volume_actions.action("os-set_bootable", rule="volume:update")
async def set_bootable(call: ApiCall, args: Any) -> Reply:
    bootable = _truthy(args.get("bootable")) if isinstance(args, dict) else False
    await _api(call).update(call.ctx, call.params["volume_id"], {"bootable": bootable})
    return Reply(200)


@volume_actions.action("os-reserve", rule="volume:update")
async def reserve(call: ApiCall, args: Any) -> Reply:
    """Cinder's legacy reserve: ``available`` to ``attaching`` (400 from any other)."""
    await _api(call).reserve(call.ctx, call.params["volume_id"], reserve=True)
    return Reply(202)


@volume_actions.action("os-unreserve", rule="volume:update")
async def unreserve(call: ApiCall, args: Any) -> Reply:
    """Cinder's legacy unreserve: a reserved (``attaching``) volume is available again."""
    await _api(call).reserve(call.ctx, call.params["volume_id"], reserve=False)
    return Reply(202)


@volume_actions.action("os-attach", rule="volume:update")
@volume_actions.action("os-detach", rule="volume:update")
async def legacy_attach(call: ApiCall, args: Any) -> Reply:
    """Cinder's legacy attach and detach records: attaching is Nova's here
    (``os-volume_attachments``, which hot-plugs the disk), so they are refused."""
    await _api(call).get(call.ctx, call.params["volume_id"])
    raise BadRequest("Invalid volume: attach and detach a volume through the compute "
                     "API (os-volume_attachments)")


@volume_actions.action("os-update_readonly_flag", rule="volume:update")
async def readonly(call: ApiCall, args: Any) -> Reply:
    await _api(call).get(call.ctx, call.params["volume_id"])
    raise BadRequest("Invalid volume: read-only volumes are not supported")


# -- snapshots --------------------------------------------------------------------------
@router.route("POST", "/v3/snapshots", rule="volume:create_snapshot", body=vs.SNAPSHOT_CREATE)
async def snapshot_create(call: ApiCall) -> Reply:
    body = call.body["snapshot"]
    if body["volume_id"] is None:  # Cinder looks it up, and finds none
        raise NotFound("Volume None could not be found.")
    snap = await _api(call).create_snapshot(
        call.ctx, body["volume_id"], name=body.get("name", body.get("display_name")),
        description=body.get("description", body.get("display_description")),
        metadata=body.get("metadata"), force=_truthy(body.get("force", False)))
    return Reply(202, {"snapshot": snapshot_view(snap, extended=False)})


@router.route("GET", "/v3/snapshots", rule="volume:get_all_snapshots")
async def snapshot_index(call: ApiCall) -> dict[str, Any]:
    all_tenants, filters = _filters(call)
    rows = await _api(call).list_snapshots(call.ctx, all_tenants, filters)
    rows = paginate(call, rows, lambda r: r)
    return {"snapshots": [snapshot_view(r, extended=False) for r in rows],
            **next_links(call, "snapshots", rows, lambda r: r)}


@router.route("GET", "/v3/snapshots/detail", rule="volume:get_all_snapshots")
async def snapshot_detail(call: ApiCall) -> dict[str, Any]:
    all_tenants, filters = _filters(call)
    rows = await _api(call).list_snapshots(call.ctx, all_tenants, filters)
    rows = paginate(call, rows, lambda r: r)
    return {"snapshots": [snapshot_view(r) for r in rows],
            **next_links(call, "snapshots", rows, lambda r: r)}


@router.route("GET", "/v3/snapshots/{snapshot_id}", rule="volume:get_snapshot")
async def snapshot_show(call: ApiCall) -> dict[str, Any]:
    return {"snapshot": snapshot_view(await _api(call).get_snapshot(
        call.ctx, call.params["snapshot_id"]))}


@router.route("PUT", "/v3/snapshots/{snapshot_id}", rule="volume:update_snapshot",
              body=vs.SNAPSHOT_UPDATE)
async def snapshot_update(call: ApiCall) -> dict[str, Any]:
    body = call.body["snapshot"]
    values = {}
    for key, alias in (("name", "display_name"), ("description", "display_description")):
        if key in body or alias in body:
            values[key] = body.get(key, body.get(alias))
    snap = await _api(call).update_snapshot(call.ctx, call.params["snapshot_id"], values)
    return {"snapshot": snapshot_view(snap, extended=False)}


@router.route("DELETE", "/v3/snapshots/{snapshot_id}", rule="volume:delete_snapshot")
async def snapshot_delete(call: ApiCall) -> Reply:
    await _api(call).delete_snapshot(call.ctx, call.params["snapshot_id"])
    return Reply(202)


async def _snapshot_metadata(call: ApiCall, merge: dict[str, str] | None = None,
                             replace: dict[str, str] | None = None,
                             drop: str | None = None) -> dict[str, str]:
    api = _api(call)
    snap = await api.get_snapshot(call.ctx, call.params["snapshot_id"])
    meta = dict(snap.metadata_)
    if drop is not None:
        _item(meta, drop)
        meta.pop(drop)
    meta = dict(replace) if replace is not None else {**meta, **(merge or {})}
    if merge is not None or replace is not None or drop is not None:
        snap = await api.update_snapshot(call.ctx, snap.id, {"metadata_": meta})
    return dict(snap.metadata_)


@router.route("GET", "/v3/snapshots/{snapshot_id}/metadata", rule="volume:get_snapshot")
async def snapshot_metadata_show(call: ApiCall) -> dict[str, Any]:
    return {"metadata": await _snapshot_metadata(call)}


@router.route("POST", "/v3/snapshots/{snapshot_id}/metadata",
              rule="volume:update_snapshot", body=vs.METADATA)
async def snapshot_metadata_merge(call: ApiCall) -> dict[str, Any]:
    given = call.body["metadata"]
    return {"metadata": await _snapshot_metadata(call, merge=dict(given))}


@router.route("PUT", "/v3/snapshots/{snapshot_id}/metadata",
              rule="volume:update_snapshot", body=vs.METADATA)
async def snapshot_metadata_replace(call: ApiCall) -> dict[str, Any]:
    given = call.body["metadata"]
    return {"metadata": await _snapshot_metadata(call, replace=dict(given))}


@router.route("GET", "/v3/snapshots/{snapshot_id}/metadata/{key}",
              rule="volume:get_snapshot")
async def snapshot_metadata_item_show(call: ApiCall) -> dict[str, Any]:
    return {"meta": _item(await _snapshot_metadata(call), call.params["key"])}


@router.route("PUT", "/v3/snapshots/{snapshot_id}/metadata/{key}",
              rule="volume:update_snapshot")
async def snapshot_metadata_item_set(call: ApiCall) -> dict[str, Any]:
    meta = _meta_item(call)
    await _snapshot_metadata(call, merge=meta)
    return {"meta": meta}


@router.route("DELETE", "/v3/snapshots/{snapshot_id}/metadata/{key}",
              rule="volume:update_snapshot")
async def snapshot_metadata_item_delete(call: ApiCall) -> Reply:
    await _snapshot_metadata(call, drop=call.params["key"])
    return Reply(200)


# -- volume types -----------------------------------------------------------------------
def _type(call: ApiCall) -> dict[str, Any]:
    return {"id": TYPE_ID, "name": _api(call).volume_type, "is_public": True,
            "description": "Default Volume Type", "extra_specs": {},
            "os-volume-type-access:is_public": True, "qos_specs_id": None}


@router.route("GET", "/v3/types", rule="volume_extension:type_get_all")
async def types(call: ApiCall) -> dict[str, Any]:
    return {"volume_types": [_type(call)]}


@router.route("GET", "/v3/types/default", rule="volume_extension:type_get")
async def type_default(call: ApiCall) -> dict[str, Any]:
    return {"volume_type": _type(call)}


@router.route("GET", "/v3/types/{type_id}", rule="volume_extension:type_get")
async def type_show(call: ApiCall) -> dict[str, Any]:
    if call.params["type_id"] not in (TYPE_ID, _api(call).volume_type):
        raise NotFound(f"Volume type {call.params['type_id']} could not be found.")
    return {"volume_type": _type(call)}


# -- attachments (Cinder's records; attach and detach are Nova's os-volume_attachments) --
def _cinder_attachment(att: VolumeAttachment) -> dict[str, Any]:
    return {"id": att.id, "volume_id": att.volume_id, "instance": att.instance_uuid,
            "status": att.attach_status, "attach_mode": "rw",
            "attached_at": iso_usec(att.attached_at), "detached_at": None,
            "connection_info": None}


@router.route("GET", "/v3/attachments", rule="volume:attachment_get_all")
async def attachments(call: ApiCall) -> dict[str, Any]:
    rows = await _api(call).attachments(call.ctx)
    return {"attachments": [{"id": a.id, "volume_id": a.volume_id,
                             "instance": a.instance_uuid, "status": a.attach_status}
                            for a in rows]}


@router.route("GET", "/v3/attachments/detail", rule="volume:attachment_get_all")
async def attachments_detail(call: ApiCall) -> dict[str, Any]:
    rows = await _api(call).attachments(call.ctx)
    return {"attachments": [_cinder_attachment(a) for a in rows]}


@router.route("GET", "/v3/attachments/{attachment_id}", rule="volume:attachment_get")
async def attachment_show(call: ApiCall) -> dict[str, Any]:
    for att in await _api(call).attachments(call.ctx):
        if att.id == call.params["attachment_id"]:
            return {"attachment": _cinder_attachment(att)}
    raise NotFound(f"Volume attachment {call.params['attachment_id']} could not be found.")


# -- quotas and limits -------------------------------------------------------------------
def _target(call: ApiCall) -> str:
    target = call.params["target"]
    if target != call.ctx.project_id:
        authorize(call.ctx, "volume_extension:quotas:show_other")
    return target


@router.route("GET", "/v3/os-quota-sets/{target}", rule="volume_extension:quotas:show")
async def quota_show(call: ApiCall) -> dict[str, Any]:
    target = _target(call)
    limits, used = await _api(call).quotas(target)
    if _truthy(call.query.get("usage", "false")):
        return {"quota_set": {"id": target, **{
            k: {"limit": limit, "in_use": used.get(k, 0), "reserved": 0, "allocated": 0}
            for k, limit in limits.items()}}}
    return {"quota_set": {"id": target, **limits}}


@router.route("GET", "/v3/os-quota-sets/{target}/defaults",
              rule="volume_extension:quotas:show")
async def quota_defaults(call: ApiCall) -> dict[str, Any]:
    return {"quota_set": {"id": call.params["target"], **_api(call).defaults()}}


@router.route("PUT", "/v3/os-quota-sets/{target}", rule="volume_extension:quotas:update",
              body=vs.QUOTA_UPDATE)
async def quota_update(call: ApiCall) -> dict[str, Any]:
    given = call.body["quota_set"]
    given = {k: v for k, v in given.items() if k not in ("tenant_id", "id")}
    limits = await _api(call).update_quotas(call.params["target"], given)
    return {"quota_set": limits}


@router.route("DELETE", "/v3/os-quota-sets/{target}", rule="volume_extension:quotas:delete")
async def quota_delete(call: ApiCall) -> Reply:
    await _api(call).reset_quotas(call.params["target"])
    return Reply(200)


@router.route("GET", "/v3/limits", rule="limits_extension:used_limits")
async def limits(call: ApiCall) -> dict[str, Any]:
    limit, used = await _api(call).quotas(call.ctx.project_id)
    return {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": limit["volumes"], "maxTotalSnapshots": limit["snapshots"],
        "maxTotalVolumeGigabytes": limit["gigabytes"], "maxTotalBackups": 10,
        "maxTotalBackupGigabytes": 1000, "totalVolumesUsed": used["volumes"],
        "totalSnapshotsUsed": used["snapshots"], "totalGigabytesUsed": used["gigabytes"],
        "totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0}}}


ROUTERS = [router]


def _versioned(route: Route) -> Route:
    """``route`` answering Cinder's ``OpenStack-API-Version: volume 3.N`` header (the
    version the request asked for; a version out of range is refused before the
    handler runs)."""
    inner = route.endpoint

    async def endpoint(request: Request) -> Response:
        try:
            major, minor = requested_version(request)
        except (BadRequest, NotFound) as exc:
            return error_response(exc, "nova")
        response: Response = await inner(request)
        response.headers["OpenStack-API-Version"] = f"volume {major}.{minor}"
        response.headers["Vary"] = "OpenStack-API-Version"
        return response

    return Route(route.path, endpoint, methods=list(route.methods or ()))


def routes(services: Services, authenticate: Authenticator) -> list[Route]:
    """The routes under ``/volume``: Cinder's ``/v3/{project_id}/...`` and ``/v3/...``."""
    return [_versioned(r) for r in (
        *starlette_routes(ROUTERS, services, authenticate=authenticate),
        *starlette_routes(ROUTERS, services, authenticate=authenticate,
                          prefix="{project_id}"))]
