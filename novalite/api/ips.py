"""``/servers/{id}/ips`` and ``/ips/{network}``: a server's addresses by network
(Nova's ``ips.py``: version and address, without the ``OS-EXT-IPS`` fields)."""

from __future__ import annotations

from typing import Any

from novalite.api import views
from novalite.api.framework import ApiCall, Router
from novalite.exceptions import NotFound

router = Router()
RULE = "os_compute_api:ips:"


@router.route("GET", "/v2.1/servers/{server_id}/ips", rule=RULE + "index")
async def index(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    return {"addresses": views.addresses(record.instance.addresses, extended=False)}


@router.route("GET", "/v2.1/servers/{server_id}/ips/{network}", rule=RULE + "show")
async def show(call: ApiCall) -> dict[str, Any]:
    record = await call.services.compute.get(call.ctx, call.params["server_id"])
    networks = views.addresses(record.instance.addresses, extended=False)
    label = call.params["network"]
    if label not in networks:
        raise NotFound("Instance is not a member of specified network")
    return {label: networks[label]}
