"""Server actions of issue 20, part A, each registered with its own policy rule in
:data:`~novalite.api.server_actions.server_actions`: ``rebuild``, ``rescue``,
``unrescue``, ``createBackup``, ``restore``, ``forceDelete`` and
``trigger_crash_dump`` (Nova's ``servers.py`` rebuild, ``rescue.py``,
``create_backup.py``, ``deferred_delete.py``, ``servers.py`` trigger_crash_dump).

The rules live in :mod:`novalite.compute.lifecycle`; this module turns HTTP into
calls on it and the results into Nova's JSON.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas, views
from novalite.api.framework import ApiCall, Reply
from novalite.api.server_actions import server_actions
from novalite.api.servers import _personality, check_access_ips
from novalite.compute.api import ServerRecord, is_uuid
from novalite.exceptions import BadRequest, NotFound

#: The microversions at which the rebuild schema changes (schemas.rebuild).
REBUILD_VERSIONS = ("2.19", "2.54", "2.57", "2.63", "2.90", "2.94")


@server_actions.action("rebuild", rule="os_compute_api:servers:rebuild")
async def rebuild(call: ApiCall, args: Any) -> Reply:
    body = schemas.validate({"rebuild": args},
                            schemas.rebuild(tuple(call.mv(v) for v in REBUILD_VERSIONS)))
    args = dict(body["rebuild"])
    image_ref = str(args["imageRef"]).rsplit("/", 1)[-1]
    if not is_uuid(image_ref):
        raise BadRequest("Invalid imageRef provided.")
    args["imageRef"] = image_ref
    check_access_ips(args)
    if "personality" in args:
        args["personality"] = _personality(args["personality"])
    if args.get("trusted_image_certificates"):
        raise BadRequest("Image certificate validation is not supported by novalite.")
    inst, admin_pass = await call.services.compute.rebuild(
        call.ctx, call.request_id, call.params["server_id"], args)
    record = ServerRecord(inst)
    # Below 2.75 Nova answers a reduced view; from 2.75 the whole show view.
    server = views.server_detail(call, call.services.base_url, record, show=True,
                                 full=call.mv("2.75"))
    server.pop("OS-EXT-SRV-ATTR:user_data", None)  # Nova: user_data instead, from 2.57
    if call.mv("2.54"):
        server["key_name"] = inst.key_name
    if call.mv("2.57"):
        server["user_data"] = inst.user_data
    server["adminPass"] = admin_pass
    return Reply(202, {"server": server}, headers={
        "Location": f"{call.services.base_url}/compute/v2.1/servers/{inst.uuid}"})


@server_actions.action("rescue", rule="os_compute_api:os-rescue", schema=schemas.RESCUE)
async def rescue(call: ApiCall, args: dict[str, Any] | None) -> dict[str, Any]:
    args = args or {}
    image_ref = args.get("rescue_image_ref")
    if image_ref is not None and not is_uuid(image_ref):
        raise BadRequest(f"Invalid input for field/attribute rescue_image_ref. Value: "
                         f"{image_ref}. '{image_ref}' is not a 'uuid'")
    password = await call.services.compute.rescue(
        call.ctx, call.request_id, call.params["server_id"], args.get("adminPass"),
        image_ref)
    return {"adminPass": password}


@server_actions.action("unrescue", rule="os_compute_api:os-unrescue")
async def unrescue(call: ApiCall, args: Any) -> Reply:
    await call.services.compute.unrescue(call.ctx, call.request_id, call.params["server_id"])
    return Reply(202)


@server_actions.action("createBackup", rule="os_compute_api:os-create-backup",
                       schema=schemas.CREATE_BACKUP)
async def create_backup(call: ApiCall, args: dict[str, Any]) -> Reply:
    rotation = int(args["rotation"])
    image_id = await call.services.compute.backup(
        call.ctx, call.request_id, call.params["server_id"], args["name"],
        args["backup_type"], rotation, args.get("metadata") or {})
    if call.mv("2.45"):
        return Reply(202, {"image_id": image_id})
    if rotation == 0:  # Nova: no Location for a backup rotated away at once
        return Reply(202)
    return Reply(202, headers={
        "Location": f"{call.services.base_url}/image/v2/images/{image_id}"})


@server_actions.action("restore", rule="os_compute_api:os-deferred-delete:restore")
async def restore(call: ApiCall, args: Any) -> Reply:
    await call.services.compute.restore(call.ctx, call.request_id, call.params["server_id"])
    return Reply(202)


@server_actions.action("forceDelete", rule="os_compute_api:os-deferred-delete:force")
async def force_delete(call: ApiCall, args: Any) -> Reply:
    await call.services.compute.force_delete(call.ctx, call.request_id,
                                             call.params["server_id"])
    return Reply(202)


@server_actions.action("trigger_crash_dump", rule="os_compute_api:servers:trigger_crash_dump")
async def trigger_crash_dump(call: ApiCall, args: Any) -> Reply:
    if not call.mv("2.17"):  # the action exists from 2.17 (Nova: 404 below)
        raise NotFound("The resource could not be found.")
    if args is not None:
        raise BadRequest("Invalid input for field/attribute trigger_crash_dump. Value: "
                         f"{args}. None is not of type 'null'")
    await call.services.compute.trigger_crash_dump(call.ctx, call.request_id,
                                                   call.params["server_id"])
    return Reply(202)
