"""Server actions that move a server: resize, confirmResize, revertResize and
migrate (Nova's ``servers.py`` resize actions and ``migrate_server.py``), each
registered on :data:`~novalite.api.server_actions.server_actions` with Nova's rule."""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply
from novalite.api.server_actions import server_actions
from novalite.exceptions import BadRequest


@server_actions.action("resize", rule="os_compute_api:servers:resize", schema=schemas.RESIZE)
async def resize(call: ApiCall, args: dict[str, Any]) -> Reply:
    await call.services.compute.resize(call.ctx, call.request_id, call.params["server_id"],
                                       str(args["flavorRef"]))
    return Reply(202)


@server_actions.action("confirmResize", rule="os_compute_api:servers:confirm_resize",
                       schema=schemas.NULL_ACTION)
async def confirm_resize(call: ApiCall, args: Any) -> Reply:
    await call.services.compute.confirm_resize(call.ctx, call.request_id,
                                               call.params["server_id"])
    return Reply(204)


@server_actions.action("revertResize", rule="os_compute_api:servers:revert_resize",
                       schema=schemas.NULL_ACTION)
async def revert_resize(call: ApiCall, args: Any) -> Reply:
    await call.services.compute.revert_resize(call.ctx, call.request_id,
                                              call.params["server_id"])
    return Reply(202)


@server_actions.action("migrate", rule="os_compute_api:os-migrate-server:migrate",
                       schema=schemas.MIGRATE)
async def migrate(call: ApiCall, args: dict[str, Any] | None) -> Reply:
    host = (args or {}).get("host")
    if args and not call.mv("2.56"):
        raise BadRequest("Invalid input for field/attribute migrate. Value: "
                         f"{args}. None is not of type 'null'")
    await call.services.compute.resize(call.ctx, call.request_id, call.params["server_id"],
                                       None, host=host)
    return Reply(202)
