"""``os-quota-sets`` and ``os-quota-class-sets``: Nova's shapes per microversion.

2.36 drops the network-proxy quotas (fixed_ips, floating_ips, security groups),
2.57 drops the injected-file quotas; each is shown, fixed, where it still exists.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.query import validate
from novalite.compute.quotas import INJECTED, LEGACY, RESOURCES
from novalite.exceptions import BadRequest
from novalite.policy import authorize

router = Router()
RULE = "os_compute_api:os-quota-sets:"


def _shape(call: ApiCall, values: dict[str, Any], legacy_value: Any = None) -> dict[str, Any]:
    out = dict(values)
    if not call.mv("2.36"):
        out.update({k: (v if legacy_value is None else legacy_value(v))
                    for k, v in LEGACY.items()})
    if not call.mv("2.57"):
        out.update({k: (v if legacy_value is None else legacy_value(v))
                    for k, v in INJECTED.items()})
    return out


def _target(call: ApiCall) -> str:
    project = call.params["tenant_id"]
    if project != call.ctx.project_id:
        authorize(call.ctx, "os_compute_api:os-quota-sets:show:other_project")
    return project


@router.route("GET", "/v2.1/os-quota-sets/{tenant_id}", rule=RULE + "show")
async def show(call: ApiCall) -> dict[str, Any]:
    project = _target(call)
    limits = await call.services.compute.quotas.limits(project)
    return {"quota_set": {"id": project, **_shape(call, limits)}}


@router.route("GET", "/v2.1/os-quota-sets/{tenant_id}/detail", rule=RULE + "show")
async def detail(call: ApiCall) -> dict[str, Any]:
    project = _target(call)
    limits = await call.services.compute.quotas.limits(project)
    used = await call.services.compute.quotas.usage(project, call.ctx.user_id)
    body = {k: {"limit": v, "in_use": used.get(k, 0), "reserved": 0}
            for k, v in limits.items()}
    body = _shape(call, body, lambda v: {"limit": v, "in_use": 0, "reserved": 0})
    return {"quota_set": {"id": project, **body}}


@router.route("GET", "/v2.1/os-quota-sets/{tenant_id}/defaults", rule=RULE + "defaults")
async def defaults(call: ApiCall) -> dict[str, Any]:
    return {"quota_set": {"id": call.params["tenant_id"],
                          **_shape(call, await call.services.compute.quotas.default_limits())}}


@router.route("PUT", "/v2.1/os-quota-sets/{tenant_id}", rule=RULE + "update")
async def update(call: ApiCall) -> dict[str, Any]:
    body = schemas.validate(call.body if isinstance(call.body, dict) else {},
                            schemas.QUOTA_UPDATE)
    limits = await call.services.compute.quotas.update(call.params["tenant_id"],
                                                       body["quota_set"])
    return {"quota_set": _shape(call, limits)}


@router.route("DELETE", "/v2.1/os-quota-sets/{tenant_id}", rule=RULE + "delete")
async def reset(call: ApiCall) -> Reply:
    await call.services.compute.quotas.reset(call.params["tenant_id"])
    return Reply(202)


# -- quota classes: only ``default`` is used, as the defaults of every project --
CLASS_RULE = "os_compute_api:os-quota-class-sets:"
_limit = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1,
          "maximum": 0x7FFFFFFF}
_EXTENDED = ("server_groups", "server_group_members")


def _class_resources(call: ApiCall) -> list[str]:
    """The resources a quota class shows and takes: before 2.50 without the server
    group ones, from 2.50 without the network proxies, from 2.57 without injected
    files (Nova's ``quota_classes.py``)."""
    names = [*RESOURCES, *LEGACY, *INJECTED]
    if not call.mv("2.50"):
        return [n for n in names if n not in _EXTENDED]
    names = [n for n in names if n not in LEGACY]
    if call.mv("2.57"):
        names = [n for n in names if n not in INJECTED]
    return names


def _class_schema(names: list[str]) -> dict[str, Any]:
    """The update body's schema for ``names`` (one schema object per set of names:
    body validators are cached per schema object)."""
    key = tuple(names)
    if key not in _CLASS_SCHEMAS:
        quota_set = {"type": "object", "properties": {n: _limit for n in names},
                     "additionalProperties": False}
        _CLASS_SCHEMAS[key] = {"type": "object", "properties": {"quota_class_set": quota_set},
                               "required": ["quota_class_set"],
                               "additionalProperties": False}
    return _CLASS_SCHEMAS[key]


_CLASS_SCHEMAS: dict[tuple[str, ...], dict[str, Any]] = {}


@router.route("GET", "/v2.1/os-quota-class-sets/{class_name}", rule=CLASS_RULE + "show")
async def show_class(call: ApiCall) -> dict[str, Any]:
    validate(call, {}, strict=False)
    name = call.params["class_name"]
    values = await call.services.compute.quotas.class_limits(name)
    return {"quota_class_set": {"id": name, **{k: values[k] for k in _class_resources(call)}}}


@router.route("PUT", "/v2.1/os-quota-class-sets/{class_name}", rule=CLASS_RULE + "update")
async def update_class(call: ApiCall) -> dict[str, Any]:
    names = _class_resources(call)
    body = schemas.validate(call.body, _class_schema(names))["quota_class_set"]
    name = call.params["class_name"]
    if not 1 <= len(name) <= 255:
        raise BadRequest("Invalid input received: quota_class_name has a length outside "
                         "1-255 characters.")
    values = await call.services.compute.quotas.update_class(
        name, {k: int(v) for k, v in body.items()})
    return {"quota_class_set": {k: values[k] for k in names}}

