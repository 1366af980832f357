"""JSON Patch on an image, as Glance v2 takes it.

``PATCH /v2/images/{id}`` with ``Content-Type:
application/openstack-images-v2.1-json-patch`` and a body such as
``[{"op": "replace", "path": "/name", "value": "new"}, {"op": "add", "path":
"/hw_disk_bus", "value": "virtio"}, {"op": "remove", "path": "/os_distro"}]``.
Paths name one attribute (core or custom property; ``~1`` and ``~0`` escape
``/`` and ``~``), or ``/tags``. The 2.0 form ``{"replace": "/name", "value": ...}``
is accepted too. Read-only and reserved attributes are refused with 403, as
Glance does.
"""

from __future__ import annotations

from typing import Any

from novalite.exceptions import BadRequest, Forbidden

MEDIA_TYPES = ("application/openstack-images-v2.1-json-patch",
               "application/openstack-images-v2.0-json-patch")
READ_ONLY = frozenset({
    "id", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
    "created_at", "updated_at", "self", "file", "schema", "direct_url",
    "locations", "stores",
})
RESERVED = frozenset({"deleted", "deleted_at", "location", "os_glance_import_method"})
#: Core attributes a patch may change (custom properties are any other name).
CORE_EDITABLE = frozenset({"name", "visibility", "protected", "min_disk", "min_ram",
                           "disk_format", "container_format", "tags", "os_hidden", "owner"})


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _normalize(op: Any) -> tuple[str, str, Any]:
    if not isinstance(op, dict):
        raise BadRequest("Each patch operation must be a JSON object")
    if "op" in op:
        kind, path = op.get("op"), op.get("path")
    else:  # the 2.0 form: {"replace": "/name", "value": ...}
        kinds = [k for k in ("add", "replace", "remove") if k in op]
        if len(kinds) != 1:
            raise BadRequest("Unable to find `op` in JSON Schema change. It must be one of "
                             "the following: add, remove, replace.")
        kind, path = kinds[0], op[kinds[0]]
    if kind not in ("add", "replace", "remove"):
        raise BadRequest(f"Invalid operation: `{kind}`: it must be one of the following: "
                         "add, remove, replace.")
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    if kind != "remove" and "value" not in op:
        raise BadRequest(f"Operation `{kind}` needs a `value`")
    return kind, path, op.get("value")


def apply(current: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply ``ops`` to ``current`` (core fields and properties, flat); returns the result.

    Raises BadRequest for a malformed patch and Forbidden for read-only or reserved
    attributes. ``current`` is not modified.
    """
    if not isinstance(ops, list):
        raise BadRequest("A JSON Patch body must be a list of operations")
    result = dict(current)
    result["tags"] = list(current.get("tags") or [])
    for raw in ops:
        kind, path, value = _normalize(raw)
        parts = [_unescape(p) for p in path[1:].split("/")]
        name = parts[0]
        if name in READ_ONLY:
            raise Forbidden(f"Attribute '{name}' is read-only.")
        if name in RESERVED or name.startswith("os_glance"):
            raise Forbidden(f"Attribute '{name}' is reserved.")
        if name == "tags" and len(parts) == 2:  # /tags/- or /tags/<n>
            if kind == "remove":
                try:
                    result["tags"].pop(int(parts[1]))
                except (ValueError, IndexError):
                    raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")\
                        from None
            else:
                result["tags"].append(str(value))
            continue
        if len(parts) != 1:
            raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
        if kind == "remove":
            if name in CORE_EDITABLE:
                raise Forbidden(f"Attribute '{name}' cannot be removed.")
            if name not in result:
                raise BadRequest(f"Property {name} does not exist.")
            del result[name]
        elif kind == "replace" and name not in result and name not in CORE_EDITABLE:
            raise BadRequest(f"Property {name} does not exist.")
        else:
            result[name] = value
    return result
