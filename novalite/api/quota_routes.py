"""``os-quota-sets`` and ``limits``: Nova's shapes per microversion.

2.36 drops the network-proxy quotas (fixed_ips, floating_ips, security groups),
2.57 drops the injected-file quotas; each is shown, fixed, where it still exists.
"""

from __future__ import annotations

from typing import Any

from novalite.api.framework import ApiCall, Reply
from novalite.compute.quotas import INJECTED, LEGACY, QuotaAPI
from novalite.exceptions import BadRequest
from novalite.policy import authorize


def _shape(call: ApiCall, values: dict[str, Any], legacy_value: Any = None) -> dict[str, Any]:
    out = dict(values)
    if not call.mv("2.36"):
        out.update({k: (v if legacy_value is None else legacy_value(v))
                    for k, v in LEGACY.items()})
    if not call.mv("2.57"):
        out.update({k: (v if legacy_value is None else legacy_value(v))
                    for k, v in INJECTED.items()})
    return out


def table(quotas: QuotaAPI) -> list[tuple[str, str, Any, str]]:
    def target(call: ApiCall) -> str:
        project = call.params["tenant_id"]
        assert call.ctx is not None
        if project != call.ctx.project_id:
            authorize(call.ctx, "os_compute_api:os-quota-sets:show:other_project")
        return project

    async def show(call: ApiCall) -> dict[str, Any]:
        project = target(call)
        return {"quota_set": {"id": project, **_shape(call, await quotas.limits(project))}}

    async def detail(call: ApiCall) -> dict[str, Any]:
        project = target(call)
        limits = await quotas.limits(project)
        used = await quotas.usage(project, call.ctx.user_id if call.ctx else None)
        body = {k: {"limit": v, "in_use": used.get(k, 0), "reserved": 0}
                for k, v in limits.items()}
        body = _shape(call, body, lambda v: {"limit": v, "in_use": 0, "reserved": 0})
        return {"quota_set": {"id": project, **body}}

    async def defaults(call: ApiCall) -> dict[str, Any]:
        return {"quota_set": {"id": call.params["tenant_id"],
                              **_shape(call, dict(quotas.defaults))}}

    async def update(call: ApiCall) -> dict[str, Any]:
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("quota_set"), dict):
            raise BadRequest("Invalid input for field/attribute quota_set. Value: None. "
                             "'quota_set' is a required property")
        limits = await quotas.update(call.params["tenant_id"], body["quota_set"])
        return {"quota_set": _shape(call, limits)}

    async def reset(call: ApiCall) -> Reply:
        await quotas.reset(call.params["tenant_id"])
        return Reply(202)

    async def limits(call: ApiCall) -> dict[str, Any]:
        assert call.ctx is not None
        project = call.query.get("tenant_id") or call.ctx.project_id
        if project != call.ctx.project_id:
            authorize(call.ctx, "os_compute_api:os-quota-sets:show:other_project")
        q = await quotas.limits(project)
        used = await quotas.usage(project)
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

    rule = "os_compute_api:os-quota-sets:"
    return [
        ("/v2.1/os-quota-sets/{tenant_id}", "GET", show, rule + "show"),
        ("/v2.1/os-quota-sets/{tenant_id}/detail", "GET", detail, rule + "show"),
        ("/v2.1/os-quota-sets/{tenant_id}/defaults", "GET", defaults, rule + "defaults"),
        ("/v2.1/os-quota-sets/{tenant_id}", "PUT", update, rule + "update"),
        ("/v2.1/os-quota-sets/{tenant_id}", "DELETE", reset, rule + "delete"),
        ("/v2.1/limits", "GET", limits, "os_compute_api:limits"),
    ]
