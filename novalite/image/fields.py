"""What an image request may carry and how image lists sort: Glance's field rules.

Core fields and their allowed values, property names and types, the Content-MD5
header, ``sort``/``sort_key``/``sort_dir``, and the record a server snapshot starts
as (which of its source image's properties it inherits).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from novalite.db.models import Image
from novalite.exceptions import BadRequest

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
#: The longest ``owner`` (a project id) an image records.
OWNER_LENGTH = 64
CORE = {
    "id", "name", "status", "disk_format", "container_format", "size", "virtual_size",
    "checksum", "os_hash_algo", "os_hash_value", "visibility", "protected", "owner",
    "min_disk", "min_ram", "tags", "created_at", "updated_at", "self", "file", "schema",
    "locations", "direct_url", "os_hidden", "stores",
}
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at", "visibility", "owner", "min_disk", "min_ram", "virtual_size")
#: Snapshot properties that describe the snapshot itself, never copied from its source.
NOT_INHERITED_PREFIXES = ("os_glance", "owner_specified.", "img_signature")
NOT_INHERITED = {"image_type", "instance_uuid", "base_image_ref", "image_location",
                 "image_state", "owner_id", "user_id", "cache_in_nova"}


def isotime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")



def int_field(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"Invalid value for '{key}': {value!r} is not a non-negative integer")
    return value


def check_fields(body: Mapping[str, Any]) -> None:
    """Validate the core fields present in ``body`` (create and patch alike)."""
    for key, allowed in (("disk_format", DISK_FORMATS), ("container_format", CONTAINER_FORMATS)):
        if body.get(key) is not None and body[key] not in allowed:
            raise BadRequest(f"Invalid value '{body[key]}' for '{key}': expected one of "
                             f"{', '.join(allowed)}")
    if "visibility" in body and body["visibility"] not in VISIBILITIES:
        raise BadRequest(f"Invalid visibility value: {body['visibility']}")
    if "protected" in body and not isinstance(body["protected"], bool):
        raise BadRequest(f"Invalid value for 'protected': {body['protected']!r} is not a "
                         "boolean")
    for key in ("min_disk", "min_ram"):
        if key in body:
            int_field(body, key)
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 255):
        raise BadRequest("Invalid value for 'name': a string of at most 255 characters")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 255
                                              for t in tags):
        raise BadRequest("Invalid value for 'tags': a list of strings of 1-255 characters")
    for key, value in body.items():
        if key in CORE:
            continue
        if len(key) > 255:
            raise BadRequest(f"Property name too long: {key[:40]}...")
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"Invalid value for property '{key}': {value!r} is not of type "
                             "'string'")


def parse_md5(value: str) -> str:
    """A Content-MD5 header (hex, as Glance's clients send, or RFC 1864 base64) as hex."""
    value = value.strip()
    if len(value) == 32 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise BadRequest(f"Invalid Content-MD5 header {value!r}: expected 32 hex digits or "
                         "the base64 of 16 bytes")
    return raw.hex()


def sort_value(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def sort_spec(query: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """[(key, asc|desc)] from ``sort=k:dir,...`` or ``sort_key``/``sort_dir``, id last."""
    keys = list(query.get("sort_key") or [])
    dirs = list(query.get("sort_dir") or [])
    sorts = query.get("sort")
    sort = sorts[-1] if sorts else None
    if sort and (keys or dirs):
        raise BadRequest("The 'sort' parameter cannot be combined with 'sort_key' or "
                         "'sort_dir'")
    spec: list[tuple[str, str]] = []
    if sort:
        for item in sort.split(","):
            key, _, direction = item.strip().partition(":")
            spec.append((key, direction or "desc"))
    else:
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise BadRequest("Number of sort dirs does not match the number of sort keys")
        for i, key in enumerate(keys):
            spec.append((key, dirs[i] if len(dirs) > 1 else (dirs[0] if dirs else "desc")))
        if not keys:
            spec.append(("created_at", dirs[0] if dirs else "desc"))
    for key, direction in spec:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}. It should be one of the following: "
                             f"{', '.join(SORT_KEYS)}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
    if "id" not in {k for k, _ in spec}:
        spec.append(("id", spec[-1][1]))
    return spec


class SnapshotSource(Protocol):
    """What a snapshot inherits from the image its instance booted from (an image of
    the embedded store or of an external Glance)."""

    @property
    def properties(self) -> Mapping[str, Any]: ...
    @property
    def min_disk(self) -> int: ...
    @property
    def min_ram(self) -> int: ...


def snapshot_image(source: SnapshotSource | None, *, name: str, instance_uuid: str, image_ref: str,
                   project_id: str, user_id: str, root_gb: int,
                   metadata: Mapping[str, str]) -> Image:
    """A queued image record for a snapshot of an instance booted from ``source``.

    It inherits the source image's properties (``hypervisor_type``, ``architecture``,
    ``hw_*``, ``kernel_id``, ... so it boots on the same kind of host), minus those
    describing the source itself, and gets Nova's ``image_type=snapshot``,
    ``instance_uuid``, ``base_image_ref``, ``owner_id`` and ``user_id``; ``metadata``
    (the request's) comes last, so a given ``image_type`` stays (Tempest checks it).
    """
    props: dict[str, Any] = {}
    if source is not None:
        props = {k: v for k, v in source.properties.items()
                 if k not in NOT_INHERITED and not k.startswith(NOT_INHERITED_PREFIXES)}
    props.update({"image_type": "snapshot", "instance_uuid": instance_uuid,
                  "base_image_ref": image_ref, "owner_id": project_id, "user_id": user_id})
    props.update({str(k): str(v) for k, v in metadata.items()})  # the caller's win, as Nova
    return Image(name=name, visibility="private", owner=project_id,
                 min_disk=max(root_gb, source.min_disk if source else 0),
                 min_ram=source.min_ram if source else 0, properties=props)
