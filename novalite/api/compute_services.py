"""``/os-services``: the compute, conductor and scheduler services and their state
(Nova's ``services.py``; the ``PUT /os-services/enable`` kind before 2.53)."""

from __future__ import annotations

from typing import Any

from novalite.api import query, schemas
from novalite.api.framework import ApiCall, Router
from novalite.compute.hosts import service_time
from novalite.db.models import Service
from novalite.exceptions import BadRequest

router = Router()
RULE = "os_compute_api:os-services:"
LEGACY_ACTIONS = ("enable", "disable", "disable-log-reason", "force-down")
_LIST_QUERY = {"host": query.ANY, "binary": query.ANY}


def service_view(call: ApiCall, svc: Service) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": svc.uuid if call.mv("2.53") else svc.id, "binary": svc.binary,
        "host": svc.host, "zone": svc.availability_zone if svc.binary == "nova-compute"
        else "internal", "status": "disabled" if svc.disabled else "enabled",
        "state": "up" if call.services.hosts.is_up(svc) else "down",
        "updated_at": service_time(svc.updated_at), "disabled_reason": svc.disabled_reason,
    }
    if call.mv("2.11"):
        body["forced_down"] = svc.forced_down
    return body


@router.route("GET", "/v2.1/os-services", rule=RULE + "list")
async def list_services(call: ApiCall) -> dict[str, Any]:
    params = query.validate(call, _LIST_QUERY, strict=call.mv("2.75"))
    found = await call.services.hosts.services(
        {k: v for k in ("host", "binary") if (v := query.last(params, k))})
    return {"services": [service_view(call, s) for s in found]}


async def _update_legacy(call: ApiCall, action: str) -> dict[str, Any]:
    body = schemas.validate(call.body if isinstance(call.body, dict) else {},
                            schemas.SERVICE_UPDATE_LEGACY)
    values: dict[str, Any]
    if action == "enable":
        values = {"disabled": False, "disabled_reason": None}
    elif action in ("disable", "disable-log-reason"):
        values = {"disabled": True, "disabled_reason": body.get("disabled_reason")}
    else:  # force-down
        values = {"forced_down": bool(body.get("forced_down"))}
    svc = await call.services.hosts.set_service(
        {"host": body["host"], "binary": body["binary"]}, values)
    out = {"host": svc.host, "binary": svc.binary,
           "status": "disabled" if svc.disabled else "enabled"}
    if svc.disabled_reason and action == "disable-log-reason":
        out["disabled_reason"] = svc.disabled_reason
    return {"service": out}


@router.route("PUT", "/v2.1/os-services/{service_id}", rule=RULE + "update")
async def update_service(call: ApiCall) -> dict[str, Any]:
    service_id = call.params["service_id"]
    if service_id in LEGACY_ACTIONS:
        return await _update_legacy(call, service_id)
    body = schemas.validate(call.body if isinstance(call.body, dict) else {},
                            schemas.SERVICE_UPDATE)
    values: dict[str, Any] = {}
    if "status" in body:
        values["disabled"] = body["status"] == "disabled"
        values["disabled_reason"] = body.get("disabled_reason") if values["disabled"] else None
    if "forced_down" in body:
        values["forced_down"] = bool(body["forced_down"])
    if not values:
        raise BadRequest("No updates were requested: give status and/or forced_down")
    svc = await call.services.hosts.set_service({"id": service_id}, values)
    return {"service": service_view(call, svc)}

