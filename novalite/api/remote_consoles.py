"""Remote consoles (Nova's ``remote_consoles.py`` and ``console_auth_tokens.py``).

``POST /servers/{id}/remote-consoles`` (2.6+) and, before 2.6, the actions
``os-getVNCConsole``, ``os-getSerialConsole``, ``os-getSPICEConsole`` and
``os-getRDPConsole`` (registered in :mod:`novalite.api.server_actions`, handled by
:func:`legacy_console`) answer a console URL; ``GET /os-console-auth-tokens/{token}``
(2.31+, admins) says what a token opens. The rules live in
:mod:`novalite.compute.consoles`; the proxy that serves the URLs in
:mod:`novalite.console.proxy`.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Router
from novalite.compute.consoles import console_api
from novalite.exceptions import BadRequest, NotFound

router = Router()

#: Legacy action -> the protocol it asks for.
LEGACY_ACTIONS = {"os-getVNCConsole": "vnc", "os-getSerialConsole": "serial",
                  "os-getSPICEConsole": "spice", "os-getRDPConsole": "rdp"}


@router.route("POST", "/v2.1/servers/{server_id}/remote-consoles",
              rule="os_compute_api:os-remote-consoles", body=lambda v: (
                  schemas.REMOTE_CONSOLE_V28 if v >= "2.8" else
                  schemas.REMOTE_CONSOLE_V26 if v >= "2.6" else None))
async def create_remote_console(call: ApiCall) -> dict[str, Any]:
    if not call.mv("2.6"):
        raise NotFound("The resource could not be found.")
    body = call.body
    protocol, console_type = body["remote_console"]["protocol"], body["remote_console"]["type"]
    url = await console_api(call.services.compute).get_console(
        call.ctx, call.params["server_id"], protocol, console_type)
    return {"remote_console": {"protocol": protocol, "type": console_type, "url": url}}


async def legacy_console(call: ApiCall, action: str, args: dict[str, Any]) -> dict[str, Any]:
    """The pre-2.6 actions: ``{"console": {"type": ..., "url": ...}}``."""
    if call.mv("2.6"):
        raise NotFound("The resource could not be found.")
    console_type = args.get("type")
    url = await console_api(call.services.compute).get_console(
        call.ctx, call.params["server_id"], LEGACY_ACTIONS[action], console_type)
    return {"console": {"type": console_type, "url": url}}


@router.route("GET", "/v2.1/os-console-auth-tokens/{token}",
              rule="os_compute_api:os-console-auth-tokens")
async def show_console_auth_token(call: ApiCall) -> dict[str, Any]:
    if not call.mv("2.31"):
        raise BadRequest("The console auth token API needs microversion 2.31 or later.")
    token = call.params["token"]
    if not token:
        raise BadRequest("token not provided")
    return {"console": await console_api(call.services.compute).show_token(token)}
