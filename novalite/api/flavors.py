"""``/flavors``, their ``os-flavor-access`` lists and ``os-extra_specs`` (Nova's
``flavors.py``, ``flavor_manage.py``, ``flavor_access.py`` and
``flavors_extraspecs.py``): bodies and query parameters validated as Nova does at
each microversion, and Nova's views (2.55 description, 2.61 extra specs, 2.75 swap)."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlencode

from novalite.api import query
from novalite.api.framework import ActionRegistry, ApiCall, Reply, Router
from novalite.api.views import links
from novalite.compute import extra_specs
from novalite.compute.flavors import SORT_KEYS, FlavorAPI
from novalite.db.models import Flavor
from novalite.exceptions import BadRequest, NotFound
from novalite.policy import allowed

router = Router()
MANAGE = "os_compute_api:os-flavor-manage:"
SPECS = "os_compute_api:os-flavor-extra-specs:"
ACCESS = "os_compute_api:os-flavor-access"

_LIST_QUERY = {
    "limit": query.NON_NEGATIVE_INT, "marker": query.ANY, "is_public": query.ANY,
    "minRam": query.ANY, "minDisk": query.ANY,
    "sort_key": query.multi({"type": "string", "enum": list(SORT_KEYS)}),
    "sort_dir": query.multi({"type": "string", "enum": ["asc", "desc"]}),
}
#: Model columns for the sort keys Nova's flavors have and these do not.
_SORT_COLUMNS = {"vcpu_weight": "id", "updated_at": "created_at"}

# -- bodies (Nova's schemas/flavors.py and flavors_extraspecs.py) --
_positive = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1,
             "maximum": 0x7FFFFFFF}
_non_negative = {**_positive, "minimum": 0}
_printable = r"^[^\x00-\x1f\x7f]*$"
_description = {"type": ["string", "null"], "minLength": 0, "maxLength": 65535,
                "pattern": _printable}
FLAVOR_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {"flavor": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255,
                     "pattern": r"^(?![\s])[^\x00-\x1f\x7f]*(?<![\s])$",
                     "errorMessage": "printable characters. Can not start or end with "
                                     "whitespace."},
            "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
                   "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
            "ram": _positive, "vcpus": _positive, "disk": _non_negative,
            "OS-FLV-EXT-DATA:ephemeral": _non_negative, "swap": _non_negative,
            "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                            "exclusiveMinimum": 0, "maximum": 3.40282e38},
            "os-flavor-access:is_public": {"type": ["boolean", "string"], "enum": [
                True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No",
                "no"]},
        },
        "required": ["name", "ram", "vcpus", "disk"],
        "additionalProperties": False}},
    "required": ["flavor"],
    "additionalProperties": False,
}
#: 2.55: a description.
FLAVOR_CREATE_V255 = copy.deepcopy(FLAVOR_CREATE)
FLAVOR_CREATE_V255["properties"]["flavor"]["properties"]["description"] = _description
FLAVOR_UPDATE = {
    "type": "object",
    "properties": {"flavor": {"type": "object", "properties": {"description": _description},
                              "required": ["description"], "additionalProperties": False}},
    "required": ["flavor"],
    "additionalProperties": False,
}
_spec_key = "^[a-zA-Z0-9-_:. ]{1,255}$"
_specs = {"type": "object",
          "patternProperties": {_spec_key: {"type": ["string", "number"], "maxLength": 255}},
          "additionalProperties": False}
EXTRA_SPECS_CREATE = {"type": "object", "properties": {"extra_specs": _specs},
                      "required": ["extra_specs"], "additionalProperties": False}
EXTRA_SPEC_UPDATE = {**_specs, "minProperties": 1, "maxProperties": 1}
_tenant = {"type": "object",
           "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
           "required": ["tenant"], "additionalProperties": False}


def _api(call: ApiCall) -> FlavorAPI:
    return call.services.hosts.flavor_api


def flavor_view(call: ApiCall, flavor: Flavor, specs: dict[str, str] | None,
                detail: bool = True) -> dict[str, Any]:
    """Nova's flavor view at the call's microversion; ``specs`` shown from 2.61 to those
    the extra-specs index rule lets see them."""
    body: dict[str, Any] = {"id": flavor.flavorid, "name": flavor.name,
                            "links": links(call.services.base_url, "flavors", flavor.flavorid)}
    if call.mv("2.55"):
        body["description"] = flavor.description
    if not detail:
        return body
    body.update({
        "ram": flavor.memory_mb, "disk": flavor.root_gb, "vcpus": flavor.vcpus,
        "swap": (flavor.swap or 0) if call.mv("2.75") else (flavor.swap or ""),
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": flavor.disabled,
        "os-flavor-access:is_public": flavor.is_public,
        "rxtx_factor": flavor.rxtx_factor or "",
    })
    if specs is not None and call.mv("2.61") and allowed(call.ctx.roles, SPECS + "index"):
        body["extra_specs"] = specs
    return body


async def _list(call: ApiCall, detail: bool) -> dict[str, Any]:
    params = query.validate(call, _LIST_QUERY, strict=call.mv("2.75"))
    limit_text = query.last(params, "limit")
    limit = int(limit_text) if limit_text is not None else None
    is_public: bool | None = True
    if call.ctx.is_admin and (raw := query.last(params, "is_public")) is not None:
        if raw.strip().lower() == "none":
            is_public = None
        elif raw.strip().lower() in ("1", "t", "true", "on", "y", "yes"):
            is_public = True
        elif raw.strip().lower() in ("0", "f", "false", "off", "n", "no"):
            is_public = False
        else:
            raise BadRequest(f"Invalid is_public filter [{raw}]")
    minimums: dict[str, int | None] = {}
    for name in ("minRam", "minDisk"):
        raw = query.last(params, name)
        try:
            minimums[name] = int(raw) if raw is not None else None
        except ValueError:
            raise BadRequest(f"Invalid {name} filter [{raw}]") from None
    sort_key = query.last(params, "sort_key") or "flavorid"
    found = await _api(call).find(
        call.ctx, is_public=is_public, min_ram=minimums["minRam"],
        min_disk=minimums["minDisk"], sort_key=_SORT_COLUMNS.get(sort_key, sort_key),
        sort_dir=query.last(params, "sort_dir") or "asc", limit=limit,
        marker=query.last(params, "marker"))
    out: dict[str, Any] = {"flavors": [flavor_view(call, f, s, detail) for f, s in found]}
    if limit and len(found) == limit:
        args = {k: v[-1] for k, v in params.items()}
        args["marker"] = found[-1][0].flavorid
        path = "flavors/detail" if detail else "flavors"
        out["flavors_links"] = [{"rel": "next", "href": f"{call.services.base_url}/compute/"
                                 f"v2.1/{path}?{urlencode(args)}"}]
    return out


@router.route("GET", "/v2.1/flavors", rule="os_compute_api:flavors:index")
async def list_flavors(call: ApiCall) -> dict[str, Any]:
    return await _list(call, False)


@router.route("GET", "/v2.1/flavors/detail", rule="os_compute_api:flavors:index")
async def detail_flavors(call: ApiCall) -> dict[str, Any]:
    return await _list(call, True)


@router.route("GET", "/v2.1/flavors/{flavor_id}", rule="os_compute_api:flavors:index")
async def show_flavor(call: ApiCall) -> dict[str, Any]:
    flavor, specs = await _api(call).get(call.ctx, call.params["flavor_id"])
    return {"flavor": flavor_view(call, flavor, specs)}


@router.route("POST", "/v2.1/flavors", rule=MANAGE + "create",
              body=lambda v: FLAVOR_CREATE_V255 if v >= "2.55" else FLAVOR_CREATE)
async def create_flavor(call: ApiCall) -> dict[str, Any]:
    body = call.body["flavor"]
    flavor = await _api(call).create(body)
    return {"flavor": flavor_view(call, flavor, {})}


@router.route("PUT", "/v2.1/flavors/{flavor_id}", rule=MANAGE + "update",
              body=lambda v: FLAVOR_UPDATE if v >= "2.55" else None)
async def update_flavor(call: ApiCall) -> dict[str, Any]:
    if not call.mv("2.55"):
        raise NotFound("The resource could not be found.")
    body = call.body["flavor"]
    flavor, specs = await _api(call).update_description(call.params["flavor_id"],
                                                        body["description"])
    return {"flavor": flavor_view(call, flavor, specs)}


@router.route("DELETE", "/v2.1/flavors/{flavor_id}", rule=MANAGE + "delete")
async def delete_flavor(call: ApiCall) -> Reply:
    await _api(call).delete(call.params["flavor_id"])
    return Reply(202)


# -- access lists of private flavors ------------------------------------------------
def _access_view(flavor_id: str, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": p} for p in projects]}


@router.route("GET", "/v2.1/flavors/{flavor_id}/os-flavor-access", rule=ACCESS)
async def list_flavor_access(call: ApiCall) -> dict[str, Any]:
    flavor_id = call.params["flavor_id"]
    return _access_view(flavor_id, await _api(call).access(call.ctx, flavor_id))


flavor_actions = ActionRegistry(
    unknown=lambda name: BadRequest(f"There is no such action: {name}"))
router.action_route("/v2.1/flavors/{flavor_id}/action", flavor_actions)


async def _verify_project(call: ApiCall, project_id: str) -> None:
    """Nova's ``identity.verify_project_id``: a project the identity service does not
    know is a 400 (an external Keystone is not asked: Nova lets it pass when it cannot
    tell)."""
    if call.services.identity is None:  # an external Keystone
        return
    try:
        await call.services.identity_admin.get_project(project_id)
    except NotFound:
        raise BadRequest(f"Project ID {project_id} is not a valid project.") from None


@flavor_actions.action("addTenantAccess", rule=ACCESS + ":add_tenant_access", schema=_tenant)
async def add_tenant_access(call: ApiCall, args: Any) -> dict[str, Any]:
    flavor_id, project = call.params["flavor_id"], args["tenant"]
    await _verify_project(call, project)
    projects = await _api(call).add_access(call.ctx, flavor_id, project,
                                           refuse_public=call.mv("2.7"))
    return _access_view(flavor_id, projects)


@flavor_actions.action("removeTenantAccess", rule=ACCESS + ":remove_tenant_access",
                       schema=_tenant)
async def remove_tenant_access(call: ApiCall, args: Any) -> dict[str, Any]:
    flavor_id = call.params["flavor_id"]
    projects = await _api(call).remove_access(call.ctx, flavor_id, args["tenant"])
    return _access_view(flavor_id, projects)


# -- extra specs --------------------------------------------------------------------
def _check_values(call: ApiCall, specs: dict[str, Any]) -> dict[str, str]:
    """The specs as strings, after Nova's checks: a number's length, and from 2.86 the
    known keys and their values."""
    out: dict[str, str] = {}
    for key, value in specs.items():
        text = str(value)
        if isinstance(value, (int, float)) and len(text) > 255:
            raise BadRequest("Invalid input received: extra_specs value has more than 255 "
                             "characters.")
        if call.mv("2.86"):
            extra_specs.validate(key, text)
        out[key] = text
    return out


@router.route("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", rule=SPECS + "index")
async def get_extra_specs(call: ApiCall) -> dict[str, Any]:
    _, specs = await _api(call).get(call.ctx, call.params["flavor_id"])
    return {"extra_specs": specs}


@router.route("POST", "/v2.1/flavors/{flavor_id}/os-extra_specs", rule=SPECS + "create",
              body=EXTRA_SPECS_CREATE)
async def set_extra_specs(call: ApiCall) -> dict[str, Any]:
    body = call.body
    specs = _check_values(call, body["extra_specs"])
    await _api(call).set_extra_specs(call.ctx, call.params["flavor_id"], specs)
    return {"extra_specs": body["extra_specs"]}


@router.route("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", rule=SPECS + "show")
async def show_extra_spec(call: ApiCall) -> dict[str, Any]:
    flavor_id, key = call.params["flavor_id"], call.params["key"]
    _, specs = await _api(call).get(call.ctx, flavor_id)
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return {key: specs[key]}


@router.route("PUT", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", rule=SPECS + "update",
              body=EXTRA_SPEC_UPDATE)
async def update_extra_spec(call: ApiCall) -> dict[str, Any]:
    body: dict[str, Any] = call.body
    specs = _check_values(call, body)
    if call.params["key"] not in body:
        raise BadRequest("Request body and URI mismatch")
    await _api(call).set_extra_specs(call.ctx, call.params["flavor_id"], specs)
    return body


@router.route("DELETE", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}",
              rule=SPECS + "delete")
async def delete_extra_spec(call: ApiCall) -> Reply:
    await _api(call).delete_extra_spec(call.ctx, call.params["flavor_id"], call.params["key"])
    return Reply(200)
