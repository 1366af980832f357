"""Server actions that move a server: resize, confirmResize, revertResize and
migrate (Nova's ``servers.py`` resize actions and ``migrate_server.py``), each
registered on :data:`~novalite.api.server_actions.server_actions` with Nova's rule."""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply
from novalite.api.server_actions import server_actions
from novalite.exceptions import BadRequest
from novalite.policy import authorize


@server_actions.action("resize", rule="os_compute_api:servers:resize", schema=schemas.RESIZE)
async def resize(call: ApiCall, args: dict[str, Any]) -> Reply:
    await call.services.compute.resize(call.ctx, call.request_id, call.params["server_id"],
                                       str(args["flavorRef"]))
    if "OS-DCF:diskConfig" in args:  # kept for the resized server, as Nova does
        await call.services.compute.update(call.ctx, call.params["server_id"], {
            "auto_disk_config": args["OS-DCF:diskConfig"] == "AUTO"})
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
    if host:
        authorize(call.ctx, "os_compute_api:os-migrate-server:migrate:host")
    await call.services.compute.resize(call.ctx, call.request_id, call.params["server_id"],
                                       None, host=host)
    return Reply(202)


@server_actions.action("shelve", rule="os_compute_api:os-shelve:shelve",
                       schema=schemas.NULL_ACTION)
async def shelve(call: ApiCall, args: Any) -> Reply:
    await call.services.compute.shelve(call.ctx, call.request_id, call.params["server_id"])
    return Reply(202)


@server_actions.action("shelveOffload", rule="os_compute_api:os-shelve:shelve_offload",
                       schema=schemas.NULL_ACTION)
async def shelve_offload(call: ApiCall, args: Any) -> Reply:
    await call.services.compute.shelve_offload(call.ctx, call.request_id,
                                               call.params["server_id"])
    return Reply(202)


@server_actions.action("unshelve", rule="os_compute_api:os-shelve:unshelve",
                       schema=schemas.UNSHELVE)
async def unshelve(call: ApiCall, args: dict[str, Any] | None) -> Reply:
    args = args or {}
    if args and not call.mv("2.77"):
        raise BadRequest(f"Invalid input for field/attribute unshelve. Value: {args}. "
                         f"{args} is not of type 'null'")
    if "host" in args and not call.mv("2.91"):
        raise BadRequest("Additional properties are not allowed ('host' was unexpected)")
    if "availability_zone" in args and args["availability_zone"] is None \
            and not call.mv("2.91"):
        raise BadRequest("Invalid input for field/attribute availability_zone. Value: None. "
                         "None is not of type 'string'")
    if "host" in args:
        from novalite import policy

        policy.authorize(call.ctx, "os_compute_api:os-shelve:unshelve_to_host")
    await call.services.compute.unshelve(
        call.ctx, call.request_id, call.params["server_id"],
        availability_zone=args.get("availability_zone"), host=args.get("host"),
        unpin_az="availability_zone" in args and args["availability_zone"] is None)
    return Reply(202)


@server_actions.action("os-migrateLive", rule="os_compute_api:os-migrate-server:migrate_live",
                       schema=schemas.MIGRATE_LIVE)
async def migrate_live(call: ApiCall, args: dict[str, Any]) -> Reply:
    """Live migration (fake and qemu/kvm drivers; a host whose driver cannot answers
    400 "not supported")."""
    block = args["block_migration"]
    if block == "auto" and not call.mv("2.25"):
        raise BadRequest("Invalid input for field/attribute block_migration. Value: auto. "
                         "'auto' is not of type 'boolean'")
    if isinstance(block, str) and block != "auto":
        raise BadRequest(f"Invalid input for field/attribute block_migration. Value: "
                         f"{block}.")
    if "disk_over_commit" in args and call.mv("2.25"):
        raise BadRequest("Additional properties are not allowed ('disk_over_commit' was "
                         "unexpected)")
    if "force" in args and not (call.mv("2.30") and not call.mv("2.68")):
        raise BadRequest("Additional properties are not allowed ('force' was unexpected)")
    if args.get("host"):
        authorize(call.ctx, "os_compute_api:os-migrate-server:migrate_live:host")
    await call.services.compute.live_migrate(call.ctx, call.request_id,
                                             call.params["server_id"], args.get("host"))
    return Reply(202)


def _bool(args: dict[str, Any], key: str) -> bool:
    value = args.get(key, False)
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}.")
        return value.lower() in ("true", "1", "yes", "on")
    return bool(value)


@server_actions.action("evacuate", rule="os_compute_api:os-evacuate", schema=schemas.EVACUATE)
async def evacuate(call: ApiCall, args: dict[str, Any]) -> Reply:
    """Rebuild a server of a compute host that is down on another host (Nova's
    ``evacuate.py``): ``onSharedStorage`` required before 2.14 and refused from it,
    ``force`` from 2.29 to 2.67, the admin password answered before 2.14; from 2.95
    the server is left stopped on its new host. novalite's hosts share no storage,
    so the server is rebuilt from its image (its disk's data is lost, as in Nova)."""
    if call.mv("2.14"):
        if "onSharedStorage" in args:
            raise BadRequest("Additional properties are not allowed ('onSharedStorage' was "
                             "unexpected)")
    elif "onSharedStorage" not in args:
        raise BadRequest("'onSharedStorage' is a required property")
    if "force" in args and not (call.mv("2.29") and not call.mv("2.68")):
        raise BadRequest("Additional properties are not allowed ('force' was unexpected)")
    shared = _bool(args, "onSharedStorage")
    if shared and "adminPass" in args:
        raise BadRequest("admin password can't be changed on existing disk")
    if shared:
        raise BadRequest("Invalid state of instance files on shared storage: novalite's "
                         "compute hosts share no storage")
    if _bool(args, "force") and "host" not in args:
        raise BadRequest("Can't force to a non-provided destination")
    password = args.get("adminPass")
    if password is None and not call.mv("2.14"):
        import secrets

        password = secrets.token_urlsafe(9)
    await call.services.compute.evacuate(call.ctx, call.request_id, call.params["server_id"],
                                         args.get("host"), password,
                                         stop=call.mv("2.95"))
    if call.mv("2.14"):
        return Reply(200)
    return Reply(200, {"adminPass": password})
