"""The JSON schema documents Glance serves under ``/v2/schemas``.

``image``/``images`` and ``member``/``members`` describe what this image API
answers (glanceclient reads ``/v2/schemas/image`` to know which attributes are
core and which are free-form properties); the ``metadefs/*`` documents describe
Glance's metadata definitions catalog (:mod:`novalite.api.image_metadefs`).
"""

from __future__ import annotations

import copy
from typing import Any

from novalite.image.fields import CONTAINER_FORMATS, DISK_FORMATS, VISIBILITIES
from novalite.image.members import MEMBER_STATUSES

_UUID = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
         "-([0-9a-fA-F]){12}$")
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["null", "string"]}
_READ_ONLY_STR = {"type": "string", "readOnly": True}

IMAGE_STATUSES = ("queued", "saving", "active", "killed", "deleted", "uploading",
                  "importing", "pending_delete", "deactivated")

_IMAGE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "description": "An identifier for the image", "pattern": _UUID},
    "name": {"type": ["null", "string"], "maxLength": 255,
             "description": "Descriptive name for the image"},
    "status": {"type": "string", "readOnly": True, "enum": list(IMAGE_STATUSES),
               "description": "Status of the image"},
    "visibility": {"type": "string", "enum": list(VISIBILITIES),
                   "description": "Scope of image accessibility"},
    "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
    "os_hidden": {"type": "boolean",
                  "description": "If true, image will not appear in default image list "
                                 "response."},
    "checksum": {"type": ["null", "string"], "readOnly": True, "maxLength": 32,
                 "description": "md5 hash of image contents."},
    "os_hash_algo": {"type": ["null", "string"], "readOnly": True, "maxLength": 64,
                     "description": "Algorithm to calculate the os_hash_value"},
    "os_hash_value": {"type": ["null", "string"], "readOnly": True, "maxLength": 128,
                      "description": "Hexdigest of the image contents using the algorithm "
                                     "specified by the os_hash_algo"},
    "owner": {"type": ["null", "string"], "maxLength": 255,
              "description": "Owner of the image"},
    "size": {"type": ["null", "integer"], "readOnly": True,
             "description": "Size of image file in bytes"},
    "virtual_size": {"type": ["null", "integer"], "readOnly": True,
                     "description": "Virtual size of image in bytes"},
    "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS],
                         "description": "Format of the container"},
    "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS],
                    "description": "Format of the disk"},
    "created_at": {**_READ_ONLY_STR, "description": "Date and time of image registration"},
    "updated_at": {**_READ_ONLY_STR,
                   "description": "Date and time of the last image modification"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 255},
             "description": "List of strings related to the image"},
    "direct_url": {**_READ_ONLY_STR, "description": "URL to access the image file kept in "
                                                    "external store"},
    "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot "
                                                  "image."},
    "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required "
                                                   "to boot image."},
    "self": {**_READ_ONLY_STR, "description": "An image self url"},
    "file": {**_READ_ONLY_STR, "description": "An image file url"},
    "stores": {**_READ_ONLY_STR, "description": "Store in which image data resides."},
    "schema": {**_READ_ONLY_STR, "description": "An image schema url"},
    "locations": {"type": "array", "description": "A set of URLs to access the image file "
                                                  "kept in external store",
                  "items": {"type": "object", "required": ["url", "metadata"],
                            "properties": {"url": {"type": "string", "maxLength": 255},
                                           "metadata": {"type": "object"},
                                           "validation_data": {"type": "object"}}}},
    # properties Nova and the clients use, typed as Glance's schema-image.json has them
    "kernel_id": {**_STR_OR_NULL, "pattern": _UUID, "is_base": False,
                  "description": "ID of image stored in Glance that should be used as the "
                                 "kernel when booting an AMI-style image."},
    "ramdisk_id": {**_STR_OR_NULL, "pattern": _UUID, "is_base": False,
                   "description": "ID of image stored in Glance that should be used as the "
                                  "ramdisk when booting an AMI-style image."},
    "instance_uuid": {**_STR, "is_base": False,
                      "description": "Metadata which can be used to record which instance "
                                     "this image is associated with."},
    "architecture": {**_STR, "is_base": False,
                     "description": "Operating system architecture as specified in "
                                    "https://docs.openstack.org/python-glanceclient/latest/"
                                    "cli/property-keys.html"},
    "os_distro": {**_STR, "is_base": False,
                  "description": "Common name of operating system distribution as specified "
                                 "in https://docs.openstack.org/python-glanceclient/latest/"
                                 "cli/property-keys.html"},
    "os_version": {**_STR, "is_base": False,
                   "description": "Operating system version as specified by the "
                                  "distributor."},
    "description": {**_STR, "is_base": False, "description": "A human-readable string "
                                                            "describing this image."},
    "cim_pasd_hostname": {**_STR, "is_base": False},
}

_LINKS = [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
          {"rel": "describedby", "href": "{schema}"}]
_COLLECTION_LINKS = [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                     {"rel": "describedby", "href": "{schema}"}]


def image() -> dict[str, Any]:
    return {"name": "image", "properties": copy.deepcopy(_IMAGE_PROPERTIES),
            "additionalProperties": {"type": "string"}, "links": copy.deepcopy(_LINKS)}


def images() -> dict[str, Any]:
    return {"name": "images",
            "properties": {"images": {"type": "array", "items": image()},
                           "schema": {"type": "string"}, "first": {"type": "string"},
                           "next": {"type": "string"}},
            "links": copy.deepcopy(_COLLECTION_LINKS)}


def member() -> dict[str, Any]:
    return {"name": "member", "properties": {
        "member_id": {"type": "string",
                      "description": "An identifier for the image member (tenantId)"},
        "image_id": {"type": "string", "description": "An identifier for the image",
                     "pattern": _UUID},
        "created_at": {"type": "string",
                       "description": "Date and time of image member creation"},
        "updated_at": {"type": "string", "description": "Date and time of last "
                                                        "modification of image member"},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": list(MEMBER_STATUSES)},
        "schema": {"type": "string", "readOnly": True},
    }}


def members() -> dict[str, Any]:
    return {"name": "members",
            "properties": {"members": {"type": "array", "items": member()},
                           "schema": {"type": "string"}},
            "links": [{"rel": "describedby", "href": "{schema}"}]}


# -- metadata definitions --------------------------------------------------------
_TIMES = {"created_at": {"type": "string", "readOnly": True, "format": "date-time"},
          "updated_at": {"type": "string", "readOnly": True, "format": "date-time"}}
_NAME = {"type": "string", "maxLength": 80}


def _property() -> dict[str, Any]:
    return {"name": "property", "required": ["type", "title"], "properties": {
        "name": {"type": "string", "maxLength": 255}, "title": {"type": "string"},
        "description": {"type": "string"},
        "operators": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string", "enum": ["array", "boolean", "integer", "number",
                                            "object", "string", None]},
        "required": {"type": "array", "items": {"type": "string"}},
        "minimum": {"type": "number"}, "maximum": {"type": "number"},
        "maxLength": {"type": "integer", "minimum": 0},
        "minLength": {"type": "integer", "minimum": 0},
        "pattern": {"type": "string", "format": "regex"},
        "enum": {"type": "array"}, "readonly": {"type": "boolean"},
        "default": {}, "items": {"type": "object"},
        "maxItems": {"type": "integer", "minimum": 0},
        "minItems": {"type": "integer", "minimum": 0},
        "uniqueItems": {"type": "boolean", "default": False},
        "additionalItems": {"type": "boolean"},
    }}


def _resource_type_association() -> dict[str, Any]:
    return {"name": "resource_type_association", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 80,
                 "description": "Resource type names should be aligned with Heat resource "
                                "types whenever possible"},
        "prefix": {"type": "string", "maxLength": 80},
        "properties_target": {"type": "string", "maxLength": 80}, **_TIMES}}


def _object() -> dict[str, Any]:
    return {"name": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 255}, "description": {"type": "string"},
        "required": {"type": "array", "items": {"type": "string"}},
        "properties": {"type": "object", "additionalProperties": _property()},
        "schema": {"type": "string", "readOnly": True}, "self": {"type": "string",
                                                                 "readOnly": True},
        **_TIMES}, "links": [{"rel": "self", "href": "{self}"},
                             {"rel": "describedby", "href": "{schema}"}]}


def _tag() -> dict[str, Any]:
    return {"name": "tag", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "maxLength": 255}, **_TIMES}}


def _namespace() -> dict[str, Any]:
    return {"name": "namespace", "required": ["namespace"], "additionalProperties": False,
            "properties": {
                "namespace": {"type": "string", "maxLength": 80,
                              "description": "The unique namespace text."},
                "display_name": {"type": "string", "maxLength": 80},
                "description": {"type": "string", "maxLength": 500},
                "visibility": {"type": "string", "enum": ["public", "private"]},
                "protected": {"type": "boolean"}, "owner": {"type": "string",
                                                            "maxLength": 255},
                "resource_type_associations": {"type": "array",
                                               "items": _resource_type_association()},
                "properties": {"type": "object", "additionalProperties": _property()},
                "objects": {"type": "array", "items": _object()},
                "tags": {"type": "array", "items": _tag()},
                "schema": {"type": "string", "readOnly": True},
                "self": {"type": "string", "readOnly": True}, **_TIMES},
            "links": [{"rel": "self", "href": "{self}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def _collection(name: str, item: dict[str, Any], *, paged: bool = True) -> dict[str, Any]:
    props: dict[str, Any] = {name: {"type": "array", "items": item},
                             "schema": {"type": "string"}}
    links = [{"rel": "describedby", "href": "{schema}"}]
    if paged:
        props.update({"first": {"type": "string"}, "next": {"type": "string"}})
        links = [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                 *links]
    return {"name": name, "properties": props, "links": links}


def _metadefs() -> dict[str, dict[str, Any]]:
    return {
        "metadefs/namespace": _namespace(),
        "metadefs/namespaces": _collection("namespaces", _namespace()),
        "metadefs/resource_type": _resource_type_association(),
        "metadefs/resource_types": _collection("resource_type_associations",
                                               _resource_type_association(), paged=False),
        "metadefs/object": _object(),
        "metadefs/objects": _collection("objects", _object()),
        "metadefs/property": _property(),
        "metadefs/properties": {"name": "properties", "properties": {
            "properties": {"type": "object", "additionalProperties": _property()},
            "schema": {"type": "string"}}, "links": [{"rel": "describedby",
                                                      "href": "{schema}"}]},
        "metadefs/tag": _tag(),
        "metadefs/tags": _collection("tags", _tag()),
    }


def task() -> dict[str, Any]:
    return {"name": "task", "properties": {
        "id": {"type": "string", "description": "An identifier for the task",
               "pattern": _UUID},
        "type": {"type": "string", "enum": ["import"],
                 "description": "The type of task represented by this content"},
        "status": {"type": "string", "enum": ["pending", "processing", "success",
                                              "failure"],
                   "description": "The current status of this task"},
        "input": {"type": ["null", "object"], "description": "The parameters required by "
                                                             "task, JSON blob"},
        "result": {"type": ["null", "object"], "description": "The result of current task, "
                                                              "JSON blob"},
        "owner": {"type": "string", "description": "An identifier for the owner of this "
                                                   "task"},
        "message": {"type": "string", "description": "Human-readable informative message "
                                                     "only included when appropriate"},
        "expires_at": {"type": ["null", "string"], "description": "Datetime when this "
                                                                  "resource would be "
                                                                  "subject to removal"},
        "created_at": {**_READ_ONLY_STR, "description": "Datetime when this resource was "
                                                        "created"},
        "updated_at": {**_READ_ONLY_STR, "description": "Datetime when this resource was "
                                                        "updated"},
        "self": _STR, "schema": _STR},
        "links": [{"rel": "self", "href": "{self}"},
                  {"rel": "describedby", "href": "{schema}"}]}


def tasks() -> dict[str, Any]:
    return {"name": "tasks", "properties": {
        "tasks": {"type": "array", "items": task()}, "schema": _STR, "first": _STR,
        "next": _STR}, "links": [{"rel": "first", "href": "{first}"},
                                 {"rel": "next", "href": "{next}"},
                                 {"rel": "describedby", "href": "{schema}"}]}


def document(name: str) -> dict[str, Any] | None:
    """The schema served at ``/v2/schemas/<name>``; None when there is none."""
    makers = {"image": image, "images": images, "member": member, "members": members,
              "task": task, "tasks": tasks}
    if name in makers:
        return makers[name]()
    return _metadefs().get(name)
