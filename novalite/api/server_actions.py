"""``POST /servers/{id}/action``: each action registered by name with its own policy
rule, as Nova's ``pause_server.py``, ``lock_server.py``, ``console_output.py``...

A new action is one decorated function here (or in a module of its own that
imports :data:`server_actions`), its rule in :mod:`novalite.policy` and the
schema of its argument in :mod:`novalite.api.schemas`::

    @server_actions.action("os-migrateLive",
                           rule="os_compute_api:os-migrate-server:migrate_live",
                           schema=schemas.MIGRATE_LIVE)
    async def migrate_live(call: ApiCall, args: Any) -> Reply: ...

An action name nobody registered is a 400 ``There is no such action: <name>``.
"""

from __future__ import annotations

from typing import Any

from novalite.api import remote_consoles, schemas
from novalite.api.framework import ActionRegistry, ApiCall, Reply, Router
from novalite.exceptions import BadRequest

server_actions = ActionRegistry(
    unknown=lambda name: BadRequest(f"There is no such action: {name}"))

router = Router()
router.action_route("/v2.1/servers/{server_id}/action", server_actions)


async def _power(call: ApiCall, action: str) -> Reply:
    await call.services.compute.power_action(call.ctx, call.request_id,
                                             call.params["server_id"], action)
    return Reply(202)


@server_actions.action("reboot", rule="os_compute_api:servers:reboot", schema=schemas.REBOOT)
async def reboot(call: ApiCall, args: dict[str, Any]) -> Reply:
    reboot_type = args["type"].upper()
    await call.services.compute.power_action(call.ctx, call.request_id,
                                             call.params["server_id"],
                                             f"reboot_{reboot_type.lower()}", reboot_type)
    return Reply(202)


@server_actions.action("os-stop", rule="os_compute_api:servers:stop")
async def stop(call: ApiCall, args: Any) -> Reply:
    return await _power(call, "stop")


@server_actions.action("os-start", rule="os_compute_api:servers:start")
async def start(call: ApiCall, args: Any) -> Reply:
    return await _power(call, "start")


@server_actions.action("pause", rule="os_compute_api:os-pause-server:pause")
async def pause(call: ApiCall, args: Any) -> Reply:
    return await _power(call, "pause")


@server_actions.action("unpause", rule="os_compute_api:os-pause-server:unpause")
async def unpause(call: ApiCall, args: Any) -> Reply:
    return await _power(call, "unpause")


@server_actions.action("suspend", rule="os_compute_api:os-suspend-server:suspend")
async def suspend(call: ApiCall, args: Any) -> Reply:
    return await _power(call, "suspend")


@server_actions.action("resume", rule="os_compute_api:os-suspend-server:resume")
async def resume(call: ApiCall, args: Any) -> Reply:
    return await _power(call, "resume")


async def _set_lock(call: ApiCall, args: dict[str, Any] | None, locked: bool) -> Reply:
    reason = (args or {}).get("locked_reason")
    await call.services.compute.set_lock(call.ctx, call.request_id, call.params["server_id"],
                                         locked, reason)
    return Reply(202)


@server_actions.action("lock", rule="os_compute_api:os-lock-server:lock", schema=schemas.LOCK)
async def lock(call: ApiCall, args: dict[str, Any] | None) -> Reply:
    return await _set_lock(call, args, True)


@server_actions.action("unlock", rule="os_compute_api:os-lock-server:unlock",
                       schema=schemas.LOCK)
async def unlock(call: ApiCall, args: dict[str, Any] | None) -> Reply:
    return await _set_lock(call, args, False)


@server_actions.action("createImage", rule="os_compute_api:servers:create_image",
                       schema=schemas.CREATE_IMAGE_NOVA)
async def create_image(call: ApiCall, args: dict[str, Any]) -> Reply:
    image_id = await call.services.compute.snapshot(
        call.ctx, call.request_id, call.params["server_id"], args["name"],
        args.get("metadata") or {})
    if call.mv("2.45"):
        return Reply(202, {"image_id": image_id})
    return Reply(202, headers={
        "Location": f"{call.services.base_url}/image/v2/images/{image_id}"})


@server_actions.action("os-getConsoleOutput", rule="os_compute_api:os-console-output",
                       schema=schemas.CONSOLE_OUTPUT)
async def console_output(call: ApiCall, args: dict[str, Any] | None) -> dict[str, Any]:
    length = (args or {}).get("length")
    lines = None if length is None or int(length) == -1 else int(length)
    output = await call.services.compute.console_output(call.ctx, call.params["server_id"],
                                                        lines)
    return {"output": output}


@server_actions.action("os-getVNCConsole", rule="os_compute_api:os-remote-consoles",
                       schema=schemas.GET_VNC_CONSOLE)
async def get_vnc_console(call: ApiCall, args: dict[str, Any]) -> dict[str, Any]:
    return await remote_consoles.legacy_console(call, "os-getVNCConsole", args)


@server_actions.action("os-getSerialConsole", rule="os_compute_api:os-remote-consoles",
                       schema=schemas.GET_SERIAL_CONSOLE)
async def get_serial_console(call: ApiCall, args: dict[str, Any]) -> dict[str, Any]:
    return await remote_consoles.legacy_console(call, "os-getSerialConsole", args)


@server_actions.action("os-getSPICEConsole", rule="os_compute_api:os-remote-consoles",
                       schema=schemas.GET_SPICE_CONSOLE)
async def get_spice_console(call: ApiCall, args: dict[str, Any]) -> dict[str, Any]:
    return await remote_consoles.legacy_console(call, "os-getSPICEConsole", args)


@server_actions.action("os-resetState", rule="os_compute_api:os-admin-actions:reset_state",
                       schema=schemas.RESET_STATE)
async def reset_state(call: ApiCall, args: dict[str, Any]) -> Reply:
    await call.services.compute.reset_state(call.ctx, call.request_id,
                                            call.params["server_id"], args["state"])
    return Reply(202)
