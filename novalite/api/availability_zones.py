"""``/os-availability-zone``: the zones hosts are in, from the aggregates that name
one; the detail (admins) adds each host's compute service and its state."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from novalite.api.framework import ApiCall, Router
from novalite.api.views import iso_usec

router = Router()
RULE = "os_compute_api:os-availability-zone:"


@router.route("GET", "/v2.1/os-availability-zone", rule=RULE + "list")
async def availability_zones(call: ApiCall) -> dict[str, Any]:
    zones: dict[str, bool] = {}
    found: Any = await call.services.compute.aggregates.zone_hosts()
    for zh in found:
        zones[zh.zone] = zones.get(zh.zone, False) or not zh.service.disabled
    if not zones:
        zones[call.services.compute.cfg.compute.availability_zone] = True
    return {"availabilityZoneInfo": [
        {"zoneName": z, "zoneState": {"available": up}, "hosts": None}
        for z, up in sorted(zones.items())]}


@router.route("GET", "/v2.1/os-availability-zone/detail", rule=RULE + "detail")
async def availability_zones_detail(call: ApiCall) -> dict[str, Any]:
    zones: dict[str, dict[str, Any]] = {}
    states: dict[str, bool] = {}
    found: Any = await call.services.compute.aggregates.zone_hosts()
    for zh in found:
        svc = zh.service
        up = call.services.hosts.is_up(svc)
        zones.setdefault(zh.zone, {})[zh.host] = {"nova-compute": {
            "available": not svc.disabled, "active": up and not svc.disabled,
            "updated_at": iso_usec(svc.updated_at)}}
        states[zh.zone] = states.get(zh.zone, False) or not svc.disabled
    now = iso_usec(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    me = {b: {"available": True, "active": True, "updated_at": now}
          for b in ("nova-conductor", "nova-scheduler")}
    out = [{"zoneName": "internal", "zoneState": {"available": True},
            "hosts": {socket.gethostname(): me}}]
    out += [{"zoneName": z, "zoneState": {"available": states[z]}, "hosts": hosts}
            for z, hosts in sorted(zones.items())]
    return {"availabilityZoneInfo": out}
