"""JSON schemas of the Cinder v3 bodies novalite reads (Cinder's api/schemas/volumes.py
and snapshots.py, reduced to what is served)."""

from __future__ import annotations

from typing import Any

_NAME = {"type": ["string", "null"], "maxLength": 255}
_METADATA = {"type": ["object", "null"], "patternProperties": {
    "^[a-zA-Z0-9-_:. /]{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False}
_UUID = {"type": ["string", "null"], "maxLength": 36}
_SIZE = {"type": ["integer", "string", "null"]}

VOLUME_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {"volume": {"type": "object", "properties": {
        "name": _NAME, "display_name": _NAME, "description": _NAME,
        "display_description": _NAME, "size": _SIZE, "availability_zone": _NAME,
        "volume_type": _NAME, "metadata": _METADATA, "snapshot_id": _UUID,
        "source_volid": _UUID, "imageRef": _UUID, "image_id": _UUID,
        "consistencygroup_id": _UUID, "group_id": _UUID, "backup_id": _UUID,
        "multiattach": {"type": ["boolean", "null"]},
    }, "additionalProperties": True}},
    "required": ["volume"], "additionalProperties": True,
}

VOLUME_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {"volume": {"type": "object", "properties": {
        "name": _NAME, "display_name": _NAME, "description": _NAME,
        "display_description": _NAME, "metadata": _METADATA,
    }, "additionalProperties": False}},
    "required": ["volume"], "additionalProperties": False,
}

METADATA: dict[str, Any] = {
    "type": "object", "properties": {"metadata": {**_METADATA, "type": "object"}},
    "required": ["metadata"], "additionalProperties": False,
}

META_ITEM: dict[str, Any] = {
    "type": "object", "properties": {"meta": {**_METADATA, "type": "object"}},
    "required": ["meta"], "additionalProperties": False,
}

SNAPSHOT_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {"snapshot": {"type": "object", "properties": {
        "name": _NAME, "display_name": _NAME, "description": _NAME,
        "display_description": _NAME,
        "volume_id": {"type": ["string", "null"], "maxLength": 36},
        "force": {"type": ["boolean", "string", "null"]}, "metadata": _METADATA,
    }, "required": ["volume_id"], "additionalProperties": False}},
    "required": ["snapshot"], "additionalProperties": False,
}

SNAPSHOT_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {"snapshot": {"type": "object", "properties": {
        "name": _NAME, "display_name": _NAME, "description": _NAME,
        "display_description": _NAME,
    }, "additionalProperties": False}},
    "required": ["snapshot"], "additionalProperties": False,
}

QUOTA_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {"quota_set": {"type": "object"}},
    "required": ["quota_set"], "additionalProperties": False,
}

VOLUME_ATTACHMENT: dict[str, Any] = {
    "type": "object",
    "properties": {"volumeAttachment": {"type": "object", "properties": {
        "volumeId": {"type": "string", "minLength": 1, "maxLength": 36},
        "device": {"type": ["string", "null"], "pattern": "^/dev/[a-zA-Z0-9._-]+$"},
        "tag": {"type": "string", "maxLength": 60},
        "delete_on_termination": {"type": "boolean"},
    }, "required": ["volumeId"], "additionalProperties": False}},
    "required": ["volumeAttachment"], "additionalProperties": False,
}
