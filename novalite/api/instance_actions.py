"""``/servers/{id}/os-instance-actions``: a server's history of actions and events."""

from __future__ import annotations

from typing import Any

from novalite.api import views
from novalite.api.framework import ApiCall, Router

router = Router()
RULE = "os_compute_api:os-instance-actions:"


@router.route("GET", "/v2.1/servers/{server_id}/os-instance-actions", rule=RULE + "list")
async def list_actions(call: ApiCall) -> dict[str, Any]:
    # From 2.21 a deleted server's history can be read too.
    actions = await call.services.compute.actions(call.ctx, call.params["server_id"],
                                                  read_deleted=call.mv("2.21"))
    return {"instanceActions": [views.action_view(call, a) for a in actions]}


@router.route("GET", "/v2.1/servers/{server_id}/os-instance-actions/{request_id}",
              rule=RULE + "show")
async def show_action(call: ApiCall) -> dict[str, Any]:
    action, events = await call.services.compute.action_with_events(
        call.ctx, call.params["server_id"], call.params["request_id"],
        read_deleted=call.mv("2.21"))
    return {"instanceAction": views.action_view(call, action, events)}
