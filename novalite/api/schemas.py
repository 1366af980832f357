"""Request body schemas (JSON Schema, as Nova validates), with Nova's error message.

A subschema may carry ``errorMessage``: the sentence that follows "Invalid input
for field/attribute X. Value: V." when the value fails it (jsonschema ignores
keywords it does not know).
"""

from __future__ import annotations

import functools
from typing import Any

from novalite.compute.server_groups import POLICIES
from novalite.exceptions import BadRequest

_name = {"type": "string", "minLength": 1, "maxLength": 255,
         "pattern": r"^(?!\s)[\S\s]*(?<!\s)$"}
_ref = {"type": ["string", "integer"], "minLength": 1}
_count = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1}
_metadata = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 255},
             "propertyNames": {"minLength": 1, "maxLength": 255}}

#: Nova's ``parameter_types.boolean``: a JSON boolean or one of these strings.
_boolean = {"type": ["boolean", "string"],
            "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                     False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No",
                     "no"]}

SERVER_CREATE = {
    "type": "object",
    "properties": {
        "server": {
            "type": "object",
            "properties": {
                "name": _name,
                "imageRef": {"type": "string"},
                "flavorRef": _ref,
                "networks": {"oneOf": [
                    {"type": "string", "enum": ["auto", "none"]},
                    {"type": "array", "items": {"type": "object"}},
                ]},
                "metadata": _metadata,
                "key_name": {"type": "string", "minLength": 1, "maxLength": 255},
                "user_data": {"type": "string", "maxLength": 65535},
                "availability_zone": {"type": "string", "minLength": 1, "maxLength": 255},
                "min_count": _count,
                "max_count": _count,
                "return_reservation_id": {"type": ["boolean", "string"]},
                "block_device_mapping_v2": {"type": "array", "items": {"type": "object"}},
                "description": {"type": ["string", "null"], "maxLength": 255},
                "adminPass": {"type": "string"},
                "security_groups": {"type": "array"},
                "config_drive": _boolean,
                "accessIPv4": {"type": "string"},
                "accessIPv6": {"type": "string"},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
                "hostname": {"type": "string"},
                "tags": {"type": "array"},
            },
            "required": ["name", "flavorRef"],
            "additionalProperties": False,
        },
        "os:scheduler_hints": {"type": "object"},
        "OS-SCH-HNT:scheduler_hints": {"type": "object"},
    },
    "required": ["server"],
    "additionalProperties": False,
}

SERVER_UPDATE = {
    "type": "object",
    "properties": {"server": {
        "type": "object",
        "properties": {"name": _name, "description": {"type": ["string", "null"],
                                                       "maxLength": 255},
                       "accessIPv4": {"type": "string"}, "accessIPv6": {"type": "string"},
                       "OS-DCF:diskConfig": {"type": "string"}, "hostname": {"type": "string"}},
        "additionalProperties": False}},
    "required": ["server"],
    "additionalProperties": False,
}

#: Nova's db.MAX_INT (the INT columns' largest value), and its decimal strings.
MAX_INT = 2147483647
_UP_TO_MAX_INT = (r"^0*([0-9]{1,9}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}"
                  r"|2147[0-3][0-9]{5}|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}"
                  r"|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])$")
# Nova's flavor_param_positive / flavor_param_non_negative.
_flavor_positive = {"type": ["integer", "string"], "pattern": _UP_TO_MAX_INT, "minimum": 1,
                    "maximum": MAX_INT}
_flavor_non_negative = {**_flavor_positive, "minimum": 0}

FLAVOR_CREATE = {
    "type": "object",
    "properties": {"flavor": {
        "type": "object",
        "properties": {
            "name": _name, "id": {"type": ["string", "null", "integer"], "maxLength": 255,
                                  "minimum": 0, "maximum": MAX_INT},
            "ram": _flavor_positive,
            "vcpus": _flavor_positive,
            "disk": _flavor_non_negative,
            "OS-FLV-EXT-DATA:ephemeral": _flavor_non_negative,
            "swap": _flavor_non_negative,
            "rxtx_factor": {"type": ["number", "string"],
                            "pattern": r"^[0-9]{1,10}(\.[0-9]{1,10})?$",
                            "exclusiveMinimum": 0, "maximum": 3.40282e38},
            "os-flavor-access:is_public": {"type": "boolean"},
            "description": {"type": ["string", "null"], "maxLength": 65535},
        },
        "required": ["name", "ram", "vcpus", "disk"],
        "additionalProperties": False}},
    "required": ["flavor"],
    "additionalProperties": False,
}

FLAVOR_EXTRA_SPECS = {
    "type": "object",
    "properties": {"extra_specs": {
        "type": "object",
        # Nova's: keys and values of 1-255 characters (the columns hold 255).
        "propertyNames": {"minLength": 1, "maxLength": 255},
        "additionalProperties": {"type": ["string", "integer", "number"], "maxLength": 255,
                                 "errorMessage": "expected an object of strings of at "
                                                 "most 255 characters"},
        "errorMessage": "expected an object of strings"}},
    "required": ["extra_specs"],
}

SERVICE_UPDATE = {
    "type": "object",
    "properties": {
        "status": {"enum": ["enabled", "disabled"],
                   "errorMessage": "must be 'enabled' or 'disabled'"},
        "disabled_reason": {"type": ["string", "null"], "maxLength": 255},
    },
}

#: ``PUT /os-services/enable`` and its kind (before 2.53).
SERVICE_UPDATE_LEGACY = {
    "type": "object",
    "properties": {
        "host": {"type": "string", "minLength": 1, "maxLength": 255},
        "binary": {"type": "string", "minLength": 1, "maxLength": 255},
        "disabled_reason": {"type": ["string", "null"], "maxLength": 255},
    },
    "required": ["host", "binary"],
}

# -- key pairs: the name rule is the key pair API's (KeypairAPI.check_name) --
# Unknown fields are refused as Nova's schemas do (additionalProperties False):
# ``type`` before 2.2 or ``user_id`` before 2.10 is a 400, not a field dropped.
_keypair = {"name": {}, "public_key": {"type": ["string", "null"]}}


def _keypair_create(fields: dict[str, Any], required: list[str] | None = None
                    ) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": "object", "properties": fields,
                             "additionalProperties": False}
    if required:
        inner["required"] = required
    return {"type": "object", "properties": {"keypair": inner}, "required": ["keypair"],
            "additionalProperties": False}


KEYPAIR_CREATE = _keypair_create(_keypair)
#: 2.2: ``type``; 2.10: ``user_id`` (an admin acting for another user).
_keypair_v22 = {**_keypair, "type": {"enum": ["ssh", "x509"]}}
KEYPAIR_CREATE_V22 = _keypair_create(_keypair_v22)
_keypair_v210 = {**_keypair_v22, "user_id": {"type": "string", "minLength": 1}}
KEYPAIR_CREATE_V210 = _keypair_create(_keypair_v210)
#: 2.92: no more generated keys; ``public_key`` is required.
KEYPAIR_CREATE_V292 = _keypair_create({**_keypair_v210, "public_key": {"type": "string"}},
                                      ["public_key"])

# -- server groups: one policy in a list before 2.64, ``policy`` and ``rules`` from 2.64 --
_group_name = {"type": "string", "minLength": 1, "maxLength": 255,
               "pattern": r"^(?!\s)[\S\s]*(?<!\s)$",
               "errorMessage": "must be a non-empty string of at most 255 characters "
                               "without leading or trailing whitespace"}


def _server_group(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"server_group": {"type": "object",
                                            "properties": {"name": _group_name, **properties},
                                            "required": ["name", *required],
                                            "additionalProperties": False}},
            "required": ["server_group"]}


def _policies(known: list[str]) -> dict[str, Any]:
    return {"type": "array", "items": {"enum": known}, "minItems": 1, "maxItems": 1,
            "errorMessage": f"expected a list of exactly one of {known}"}


SERVER_GROUP_CREATE = _server_group({"policies": _policies(list(POLICIES[:2]))},
                                    ["policies"])
#: 2.15: the soft policies.
SERVER_GROUP_CREATE_V215 = _server_group({"policies": _policies(list(POLICIES))},
                                         ["policies"])
SERVER_GROUP_CREATE_V264 = _server_group({
    "policy": {"enum": list(POLICIES)},
    "rules": {"type": "object", "additionalProperties": False, "properties": {
        "max_server_per_host": {"type": ["integer", "string"], "pattern": "^[1-9][0-9]*$",
                                "minimum": 1, "minLength": 1,
                                "errorMessage": "must be an integer >= 1"}},
        "errorMessage": "Only 'max_server_per_host' is allowed"},
}, ["policy"])

QUOTA_UPDATE = {
    "type": "object",
    "properties": {"quota_set": {"type": "object"}},
    "required": ["quota_set"],
}

# -- aggregates --
_aggregate = {"name": _group_name,
              "availability_zone": {**_group_name, "type": ["string", "null"]}}
AGGREGATE_CREATE = {
    "type": "object",
    "properties": {"aggregate": {"type": "object", "properties": _aggregate,
                                 "required": ["name"], "additionalProperties": False}},
    "required": ["aggregate"],
}
AGGREGATE_UPDATE = {
    "type": "object",
    "properties": {"aggregate": {
        "type": "object", "properties": _aggregate, "minProperties": 1,
        "additionalProperties": False,
        "errorMessage": "give name and/or availability_zone"}},
    "required": ["aggregate"],
}

# -- aggregate actions: the schema of each action's argument --
AGGREGATE_HOST = {
    "type": "object",
    "properties": {"host": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["host"],
}

AGGREGATE_METADATA = {
    "type": "object",
    "properties": {"metadata": {
        "type": "object",
        "propertyNames": {"minLength": 1, "maxLength": 255},
        "additionalProperties": {"type": ["string", "null"], "maxLength": 255},
        "errorMessage": "expected an object of strings (null removes a key)"}},
    "required": ["metadata"],
}

# -- server actions: the schema of each action's argument (``{"reboot": <argument>}``) --
REBOOT = {
    "type": "object",
    "properties": {"type": {"type": "string", "pattern": "^(?i:HARD|SOFT)$",
                            "errorMessage": "'type' must be one of 'HARD', 'SOFT'"}},
    "required": ["type"],
}

CREATE_IMAGE = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S",
                 "errorMessage": "createImage needs a 'name' of 1-255 characters"},
        "metadata": {"type": ["object", "null"],
                     "additionalProperties": {"type": "string",
                                              "errorMessage": "expected an object of strings"},
                     "errorMessage": "expected an object of strings"},
    },
    "required": ["name"],
}

CHANGE_PASSWORD = {
    "type": "object",
    "properties": {"adminPass": {"type": "string"}},
    "required": ["adminPass"],
    "additionalProperties": False,
}

CONSOLE_OUTPUT = {
    "type": ["object", "null"],
    "properties": {"length": {"type": ["integer", "string", "null"],
                              "pattern": "^(-1|[0-9]+)$", "minimum": -1,
                              "errorMessage": "not a valid integer >= -1"}},
}

def _console_type(types: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": {"type": {"type": "string", "enum": types}},
            "required": ["type"], "additionalProperties": False}


#: os-getVNCConsole / os-getSPICEConsole / os-getSerialConsole (Nova's enums: old values
#: are accepted here and refused as unavailable further down, as Nova does).
GET_VNC_CONSOLE = _console_type(["novnc", "xvpvnc"])
GET_SPICE_CONSOLE = _console_type(["spice-html5"])
GET_SERIAL_CONSOLE = _console_type(["serial"])

#: POST /servers/{id}/remote-consoles (2.6; mks/webmks from 2.8; spice-direct 2.99).
REMOTE_CONSOLE_V26 = {
    "type": "object",
    "properties": {"remote_console": {
        "type": "object",
        "properties": {
            "protocol": {"type": "string", "enum": ["vnc", "spice", "serial", "rdp"]},
            "type": {"type": "string",
                     "enum": ["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"]},
        },
        "required": ["protocol", "type"], "additionalProperties": False}},
    "required": ["remote_console"], "additionalProperties": False,
}
REMOTE_CONSOLE_V28 = {
    **REMOTE_CONSOLE_V26,
    "properties": {"remote_console": {
        **REMOTE_CONSOLE_V26["properties"]["remote_console"],  # type: ignore[index]
        "properties": {
            "protocol": {"type": "string",
                         "enum": ["vnc", "spice", "serial", "rdp", "mks"]},
            "type": {"type": "string",
                     "enum": ["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5",
                              "webmks"]},
        }}},
}

LOCK = {
    "type": ["object", "null"],
    "properties": {"locked_reason": {"type": "string", "maxLength": 255}},
}


def action_body(name: str, argument: dict[str, Any]) -> dict[str, Any]:
    """The schema of a whole action body ``{name: <argument>}`` (so an error names the
    action or the field inside it, as Nova's does)."""
    return {"type": "object", "properties": {name: argument}, "required": [name]}


_validators: dict[int, Any] = {}


def validate(body: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """Validate ``body``; raise BadRequest naming the field as Nova does."""
    import jsonschema

    validator = _validators.get(id(schema))
    if validator is None:
        validator = _validators[id(schema)] = jsonschema.Draft7Validator(schema)
    if body is None:
        raise BadRequest("The request body is missing or empty.")
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            raise BadRequest(f"Additional properties are not allowed ({error.message.split('(')[-1]}"
                             if "(" in error.message else error.message)
        if error.validator == "required":
            field = error.message.split("'")[1] if "'" in error.message else path
            raise BadRequest(f"Invalid input for field/attribute {path or 'body'}. Value: "
                             f"{error.instance}. '{field}' is a required property")
        message = error.schema.get("errorMessage", error.message) \
            if isinstance(error.schema, dict) else error.message
        raise BadRequest(f"Invalid input for field/attribute {path.rsplit('/', 1)[-1] or 'body'}."
                         f" Value: {error.instance}. {message}")
    return body  # type: ignore[no-any-return]


# -- Keystone: POST /v3/auth/tokens (keystone.auth.schema: every name, id and password a
# string, so a password of another JSON type is a 400, not a failed hash) --
_id_or_name = {"type": "string", "minLength": 1, "maxLength": 255}
_domain = {"type": "object", "properties": {"id": _id_or_name, "name": _id_or_name}}
TOKEN_ISSUE = {
    "type": "object",
    "properties": {"auth": {
        "type": "object",
        "properties": {
            "identity": {
                "type": "object",
                "properties": {
                    "methods": {"type": "array", "items": {"type": "string"}},
                    "password": {"type": "object", "properties": {"user": {
                        "type": "object",
                        "properties": {"id": _id_or_name, "name": _id_or_name,
                                       "password": {"type": "string", "maxLength": 4096},
                                       "domain": _domain}}}},
                },
                "required": ["methods"]},
            "scope": {"type": "object", "properties": {
                "project": {"type": "object", "properties": {
                    "id": _id_or_name, "name": _id_or_name, "domain": _domain}},
                "domain": _domain}},
        },
        "required": ["identity"]}},
    "required": ["auth"],
}

# -- servers, per microversion (Nova's schemas/servers.py) --
#: Nova's ``parameter_types.metadata``: keys of 1-255 of ``[a-zA-Z0-9-_:. ]``, string
#: values of at most 255 characters, nothing else.
_METADATA_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
SERVER_METADATA_VALUES = {"type": "object",
                          "patternProperties": {_METADATA_KEY: {"type": "string",
                                                                "maxLength": 255}},
                          "additionalProperties": False}
#: Nova's tag rule: 1-60 characters, no ``/`` and no ``,``.
TAG = {"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60}
MAX_TAGS = 50
_hostname = {"type": "string", "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$",
             "minLength": 2, "maxLength": 63}
_fqdn = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}
_description = {"type": ["string", "null"], "minLength": 0, "maxLength": 255}


@functools.cache
def server_create(mv: tuple[bool, ...]) -> dict[str, Any]:
    """``POST /servers``'s schema; ``mv`` = (2.19, 2.37, 2.42, 2.52, 2.57, 2.74, 2.90,
    2.94): whether the call's microversion is at least each."""
    v219, v237, v242, v252, v257, v274, v290, v294 = mv
    network: dict[str, Any] = {"fixed_ip": {"type": "string"},
                               "port": {"type": ["string", "null"]},
                               "uuid": {"type": "string"}}
    if v242:  # (and 2.32 alone, which novalite does not single out)
        network["tag"] = TAG
    items = {"type": "object", "properties": network, "additionalProperties": False}
    networks: dict[str, Any] = {"type": "array", "items": items}
    if v237:
        networks = {"oneOf": [networks, {"type": "string", "enum": ["auto", "none"]}]}
    props = dict(SERVER_CREATE["properties"]["server"]["properties"])  # type: ignore[index]
    for key in ("hostname", "tags", "description"):
        props.pop(key, None)
    props.update({
        "metadata": SERVER_METADATA_VALUES,
        "networks": networks,
        "accessIPv4": {"type": "string"}, "accessIPv6": {"type": "string"},
        "security_groups": {"type": "array", "items": {
            "type": "object", "properties": {"name": _name}, "additionalProperties": False}},
    })
    if not v257:
        props["personality"] = {"type": "array", "items": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "contents": {"type": "string"}},
            "additionalProperties": False}}
    if v219:
        props["description"] = _description
    if v252:
        props["tags"] = {"type": "array", "items": TAG, "maxItems": MAX_TAGS}
    if v274:
        props["host"] = _fqdn
        props["hypervisor_hostname"] = _fqdn
    if v290:
        props["hostname"] = _fqdn if v294 else _hostname
    server = {"type": "object", "properties": props, "required": ["name", "flavorRef"],
              "additionalProperties": False}
    return {**SERVER_CREATE, "properties": {**SERVER_CREATE["properties"],  # type: ignore[dict-item]
                                            "server": server}}


@functools.cache
def server_update(v219: bool, v290: bool, v294: bool) -> dict[str, Any]:
    """``PUT /servers/{id}``'s schema at a microversion (2.19 ``description``, 2.90
    ``hostname``, 2.94 an FQDN ``hostname``)."""
    props: dict[str, Any] = {"name": _name, "OS-DCF:diskConfig": {"enum": ["AUTO", "MANUAL"]},
                             "accessIPv4": {"type": "string"},
                             "accessIPv6": {"type": "string"}}
    if v219:
        props["description"] = _description
    if v290:
        props["hostname"] = _fqdn if v294 else _hostname
    return {"type": "object",
            "properties": {"server": {"type": "object", "properties": props,
                                      "additionalProperties": False}},
            "required": ["server"], "additionalProperties": False}


SERVER_METADATA = {"type": "object", "properties": {"metadata": SERVER_METADATA_VALUES},
                   "required": ["metadata"], "additionalProperties": False}
SERVER_METADATA_ITEM = {"type": "object",
                        "properties": {"meta": {**SERVER_METADATA_VALUES, "minProperties": 1,
                                                "maxProperties": 1}},
                        "required": ["meta"], "additionalProperties": False}
SERVER_TAGS = {"type": "object",
               "properties": {"tags": {"type": "array", "items": TAG,
                                       "maxItems": MAX_TAGS}},
               "required": ["tags"], "additionalProperties": False}

RESET_STATE = {"type": "object",
               "properties": {"state": {"type": "string", "enum": ["active", "error"]}},
               "required": ["state"], "additionalProperties": False}

#: createImage's argument as Nova validates it (metadata: Nova's metadata rule).
CREATE_IMAGE_NOVA = {
    "type": "object",
    "properties": {"name": _name, "metadata": SERVER_METADATA_VALUES},
    "required": ["name"], "additionalProperties": False,
}


_personality = {"type": "array", "items": {
    "type": "object",
    "properties": {"path": {"type": "string"}, "contents": {"type": "string"}},
    "additionalProperties": False}}


@functools.cache
def rebuild(mv: tuple[bool, ...]) -> dict[str, Any]:
    """The ``rebuild`` action's schema (Nova's ``base_rebuild`` and its versions);
    ``mv`` = (2.19, 2.54, 2.57, 2.63, 2.90, 2.94): whether the call's microversion is
    at least each (2.19 ``description``, 2.54 ``key_name``, 2.57 ``user_data`` and no
    ``personality``, 2.63 ``trusted_image_certificates``, 2.90 ``hostname``, 2.94 an
    FQDN ``hostname``)."""
    v219, v254, v257, v263, v290, v294 = mv
    props: dict[str, Any] = {
        "name": _name, "imageRef": {"type": "string", "minLength": 1},
        "adminPass": {"type": "string"}, "metadata": SERVER_METADATA_VALUES,
        "preserve_ephemeral": _boolean,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string"}, "accessIPv6": {"type": "string"},
    }
    if not v257:
        props["personality"] = _personality
    if v219:
        props["description"] = _description
    if v254:
        props["key_name"] = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
    if v257:
        props["user_data"] = {"type": ["string", "null"], "maxLength": 65535}
    if v263:
        props["trusted_image_certificates"] = {
            "type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": True,
            "items": {"type": "string", "minLength": 1}}
    if v290:
        props["hostname"] = _fqdn if v294 else _hostname
    return {"type": "object",
            "properties": {"rebuild": {"type": "object", "properties": props,
                                       "required": ["imageRef"],
                                       "additionalProperties": False}},
            "required": ["rebuild"], "additionalProperties": False}


#: ``rescue``'s argument (null, or an object), Nova's ``rescue.py`` schema.
RESCUE = {"type": ["object", "null"],
          "properties": {"adminPass": {"type": "string"},
                         "rescue_image_ref": {"type": "string", "minLength": 1}},
          "additionalProperties": False}

#: ``createBackup``'s argument (Nova's ``create_backup.py`` schema).
CREATE_BACKUP = {
    "type": "object",
    "properties": {"name": _name, "backup_type": {"type": "string"},
                   "rotation": {"type": ["integer", "string"], "pattern": "^[0-9]+$",
                                "minimum": 0},
                   "metadata": SERVER_METADATA_VALUES},
    "required": ["name", "backup_type", "rotation"], "additionalProperties": False,
}

#: resize's argument (Nova's resize_server.resize): a flavor id, optional disk config.
RESIZE = {"type": "object",
          "properties": {"flavorRef": {"type": ["string", "integer"], "minLength": 1},
                         "OS-DCF:diskConfig": {"type": "string",
                                               "enum": ["AUTO", "MANUAL"]}},
          "required": ["flavorRef"], "additionalProperties": False}
#: migrate's argument: null, or from 2.56 ``{"host": <name or null>}``.
MIGRATE = {"type": ["object", "null"],
           "properties": {"host": {"type": ["string", "null"], "minLength": 1,
                                   "maxLength": 255}},
           "additionalProperties": False}
#: os-migrateLive's argument (the fields of every microversion; the route checks which
#: apply).
MIGRATE_LIVE = {"type": "object",
                "properties": {"host": {"type": ["string", "null"], "maxLength": 255},
                               "block_migration": {"type": ["boolean", "string"]},
                               "disk_over_commit": {"type": ["boolean", "string"]},
                               "force": {"type": ["boolean", "string"]}},
                "required": ["block_migration", "host"], "additionalProperties": False}
#: evacuate's argument (the fields of every microversion; the route checks which apply).
EVACUATE = {"type": "object",
            "properties": {"host": {"type": "string", "minLength": 1, "maxLength": 255},
                           "adminPass": {"type": "string"},
                           "onSharedStorage": {"type": ["boolean", "string"]},
                           "force": {"type": ["boolean", "string"]}},
            "additionalProperties": False}
#: confirmResize, revertResize, shelve, shelveOffload: null (Tempest sends {}, which
#: Nova takes too).
NULL_ACTION = {"type": ["null", "object"], "maxProperties": 0}
#: unshelve's argument: null; from 2.77 ``{"availability_zone": name}``; from 2.91
#: ``availability_zone`` may be null (unpinned) and ``host`` may be given.
UNSHELVE = {"type": ["object", "null"],
            "properties": {"availability_zone": {"type": ["string", "null"]},
                           "host": {"type": "string", "minLength": 1, "maxLength": 255}},
            "additionalProperties": False}


# -- Keystone: projects and users (keystone.resource.schema, keystone.identity.schema:
# typed fields, other properties allowed; the service layer checks what needs the
# database: domains, default projects) --
_ks_nullable = {"type": ["string", "null"]}
_ks_id = {"type": ["string", "null"], "minLength": 1, "maxLength": 64}
_ks_tags = {"type": "array", "maxItems": 80, "items": {
    "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^,/]*$"}}
_ks_project = {"name": {"type": "string", "minLength": 1, "maxLength": 64},
               "description": _ks_nullable, "enabled": {"type": "boolean"},
               "domain_id": _ks_id, "parent_id": _ks_id, "is_domain": {"type": "boolean"},
               "tags": _ks_tags}
_ks_user = {"name": {"type": "string", "minLength": 1, "maxLength": 255},
            "password": _ks_nullable, "description": _ks_nullable,
            "enabled": {"type": "boolean"}, "domain_id": _ks_id,
            "default_project_id": _ks_id, "email": _ks_nullable}


def _keystone_entity(key: str, properties: dict[str, Any], required: list[str]
                     ) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: {
        "type": "object", "properties": properties, "required": required,
        "additionalProperties": True}}}


IDENTITY_PROJECT_CREATE = _keystone_entity("project", _ks_project, ["name"])
IDENTITY_USER_CREATE = _keystone_entity("user", _ks_user, ["name"])
IDENTITY_USER_UPDATE = _keystone_entity("user", _ks_user, [])
