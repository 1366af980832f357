"""``os-quota-sets`` and ``limits``: Nova's shapes per microversion.

2.36 drops the network-proxy quotas (fixed_ips, floating_ips, security groups),
2.57 drops the injected-file quotas; each is shown, fixed, where it still exists.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.compute.quotas import INJECTED, LEGACY
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
                          **_shape(call, dict(call.services.compute.quotas.defaults))}}


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


@router.route("GET", "/v2.1/limits", rule="os_compute_api:limits")
async def limits(call: ApiCall) -> dict[str, Any]:
    project = call.query.get("tenant_id") or call.ctx.project_id
    if project != call.ctx.project_id:
        authorize(call.ctx, "os_compute_api:os-quota-sets:show:other_project")
    q = await call.services.compute.quotas.limits(project)
    used = await call.services.compute.quotas.usage(project)
    absolute: dict[str, int] = {
        "maxTotalInstances": q["instances"], "maxTotalCores": q["cores"],
        "maxTotalRAMSize": q["ram"], "maxServerMeta": q["metadata_items"],
        "maxPersonality": INJECTED["injected_files"],
        "maxPersonalitySize": INJECTED["injected_file_content_bytes"],
        "maxTotalKeypairs": q["key_pairs"], "maxServerGroups": q["server_groups"],
        "maxServerGroupMembers": q["server_group_members"],
        "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"],
        "totalRAMUsed": used["ram"], "totalServerGroupsUsed": used["server_groups"],
    }
    if not call.mv("2.36"):
        absolute.update({"maxTotalFloatingIps": -1, "maxSecurityGroups": -1,
                         "maxSecurityGroupRules": -1, "totalFloatingIpsUsed": 0,
                         "totalSecurityGroupsUsed": 0})
    if call.mv("2.57"):
        absolute.pop("maxPersonality")
        absolute.pop("maxPersonalitySize")
    return {"limits": {"rate": [], "absolute": absolute}}
