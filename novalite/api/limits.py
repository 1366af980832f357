"""``GET /limits``: the caller's project's absolute limits and usage (Nova's
``limits.py``): the network-proxy limits until 2.36, ``maxImageMeta`` until 2.39,
the personality limits until 2.57; ``tenant_id`` (admins) names another project;
unknown query parameters are dropped before 2.75 and refused from 2.75."""

from __future__ import annotations

from typing import Any

from novalite.api import query
from novalite.api.framework import ApiCall, Router
from novalite.compute.quotas import INJECTED, LEGACY
from novalite.policy import authorize

router = Router()

#: Each quota resource and the names of its absolute limits.
LIMIT_NAMES = {
    "ram": ["maxTotalRAMSize"], "instances": ["maxTotalInstances"],
    "cores": ["maxTotalCores"], "key_pairs": ["maxTotalKeypairs"],
    "floating_ips": ["maxTotalFloatingIps"],
    "metadata_items": ["maxServerMeta", "maxImageMeta"],
    "injected_files": ["maxPersonality"],
    "injected_file_content_bytes": ["maxPersonalitySize"],
    "security_groups": ["maxSecurityGroups"],
    "security_group_rules": ["maxSecurityGroupRules"],
    "server_groups": ["maxServerGroups"], "server_group_members": ["maxServerGroupMembers"],
}
USED_NAMES = {"totalRAMUsed": "ram", "totalCoresUsed": "cores",
              "totalInstancesUsed": "instances", "totalFloatingIpsUsed": "floating_ips",
              "totalSecurityGroupsUsed": "security_groups",
              "totalServerGroupsUsed": "server_groups"}
_FILTERED_V236 = ("floating_ips", "security_groups", "security_group_rules")
_FILTERED_V257 = (*_FILTERED_V236, "injected_files", "injected_file_content_bytes")
_QUERY = {"tenant_id": query.ANY}


@router.route("GET", "/v2.1/limits", rule="os_compute_api:limits")
async def limits(call: ApiCall) -> dict[str, Any]:
    params = query.validate(call, _QUERY, strict=call.mv("2.75"))
    project = call.ctx.project_id
    if "tenant_id" in params:
        authorize(call.ctx, "os_compute_api:limits:other_project")
        project = query.last(params, "tenant_id") or ""
    filtered: tuple[str, ...] = ()
    if call.mv("2.57"):
        filtered = _FILTERED_V257
    elif call.mv("2.36"):
        filtered = _FILTERED_V236
    quotas = call.services.compute.quotas
    values: dict[str, int] = {**LEGACY, **INJECTED, **await quotas.limits(project)}
    used = {"floating_ips": 0, "security_groups": 0, **await quotas.usage(project)}
    absolute: dict[str, int] = {}
    for resource, names in LIMIT_NAMES.items():
        if resource in filtered:
            continue
        for name in names:
            if name == "maxImageMeta" and call.mv("2.39"):
                continue
            absolute[name] = values[resource]
    for name, resource in USED_NAMES.items():
        if resource not in filtered:
            absolute[name] = used.get(resource, 0)
    return {"limits": {"rate": [], "absolute": absolute}}
