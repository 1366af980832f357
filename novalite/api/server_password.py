"""``/servers/{id}/os-server-password`` (GET, DELETE) and the ``changePassword`` action
(Nova's ``server_password.py`` and ``admin_password.py``); see
:mod:`novalite.compute.server_password`."""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.server_actions import server_actions
from novalite.compute import server_password

router = Router()


@router.route("GET", "/v2.1/servers/{server_id}/os-server-password",
              rule="os_compute_api:os-server-password:show")
async def show_password(call: ApiCall) -> dict[str, Any]:
    return {"password": await server_password.get(call.services.compute, call.ctx,
                                                  call.params["server_id"])}


@router.route("DELETE", "/v2.1/servers/{server_id}/os-server-password",
              rule="os_compute_api:os-server-password:clear")
async def clear_password(call: ApiCall) -> Reply:
    await server_password.clear(call.services.compute, call.ctx, call.params["server_id"])
    return Reply(204)


@server_actions.action("changePassword", rule="os_compute_api:os-admin-password",
                       schema=schemas.CHANGE_PASSWORD)
async def change_password(call: ApiCall, args: dict[str, Any]) -> Reply:
    await server_password.change(call.services.compute, call.ctx, call.params["server_id"])
    return Reply(202)
