"""``/servers/{server_id}/os-volume_attachments`` (Nova's volumes.py): list, show,
attach (an optional device name; 2.49 ``tag``, 2.79 ``delete_on_termination``),
update (2.85: ``delete_on_termination``; a swap to another volume is refused: no
driver here can swap) and detach (not of a root volume)."""

from __future__ import annotations

from typing import Any

from novalite.api import volume_schemas as vs
from novalite.api.framework import ApiCall, Reply, Router
from novalite.db.models import VolumeAttachment
from novalite.exceptions import BadRequest, Conflict
from novalite.policy import authorize
from novalite.volume.attachments import ServerVolumes

router = Router()
RULE = "os_compute_api:os-volumes-attachments:"
PATH = "/v2.1/servers/{server_id}/os-volume_attachments"


def _server_volumes(call: ApiCall) -> ServerVolumes:
    compute = call.services.compute
    return ServerVolumes(compute.volumes, compute.rpc)


def view(call: ApiCall, att: VolumeAttachment) -> dict[str, Any]:
    out: dict[str, Any] = {"device": att.device, "serverId": att.instance_uuid,
                           "volumeId": att.volume_id}
    if not call.mv("2.89"):
        out["id"] = att.volume_id
    if call.mv("2.70"):
        out["tag"] = att.tag
    if call.mv("2.79"):
        out["delete_on_termination"] = att.delete_on_termination
    if call.mv("2.89"):
        out["attachment_id"] = att.id
        out["bdm_uuid"] = att.id
    return out


@router.route("GET", PATH, rule=RULE + "index")
async def index(call: ApiCall) -> dict[str, Any]:
    inst = (await call.services.compute.get(call.ctx, call.params["server_id"])).instance
    rows = await _server_volumes(call).list(inst.uuid)
    return {"volumeAttachments": [view(call, a) for a in rows]}


@router.route("GET", PATH + "/{volume_id}", rule=RULE + "show")
async def show(call: ApiCall) -> dict[str, Any]:
    inst = (await call.services.compute.get(call.ctx, call.params["server_id"])).instance
    att = await _server_volumes(call).get(inst.uuid, call.params["volume_id"])
    return {"volumeAttachment": view(call, att)}


@router.route("POST", PATH, rule=RULE + "create", body=vs.VOLUME_ATTACHMENT)
async def create(call: ApiCall) -> dict[str, Any]:
    body = call.body["volumeAttachment"]
    if "tag" in body and not call.mv("2.49"):
        raise BadRequest("Additional properties are not allowed ('tag' was unexpected)")
    if "delete_on_termination" in body and not call.mv("2.79"):
        raise BadRequest("Additional properties are not allowed ('delete_on_termination' "
                         "was unexpected)")
    compute = call.services.compute
    inst = (await compute.get(call.ctx, call.params["server_id"])).instance
    compute._check_lock(call.ctx, inst)
    caps = await compute.host_capabilities(inst.host) if inst.host else {}
    att = await _server_volumes(call).attach(
        call.ctx, inst, caps, body["volumeId"], device=body.get("device"),
        delete_on_termination=bool(body.get("delete_on_termination", False)),
        tag=body.get("tag"))
    return {"volumeAttachment": view(call, att)}


@router.route("PUT", PATH + "/{volume_id}", rule=RULE + "update", body=vs.VOLUME_ATTACHMENT)
async def update(call: ApiCall) -> Reply:
    body = call.body["volumeAttachment"]
    inst = (await call.services.compute.get(call.ctx, call.params["server_id"])).instance
    sv = _server_volumes(call)
    att = await sv.get(inst.uuid, call.params["volume_id"])
    if body["volumeId"] != att.volume_id:
        authorize(call.ctx, RULE + "swap")
        raise Conflict(f"Action 'swap_volume' is not supported by this hypervisor "
                       f"(host {inst.host})")
    if "delete_on_termination" in body:
        if not call.mv("2.85"):
            raise BadRequest("Additional properties are not allowed "
                             "('delete_on_termination' was unexpected)")
        await sv.set_delete_on_termination(att.id, bool(body["delete_on_termination"]))
    return Reply(202)


@router.route("DELETE", PATH + "/{volume_id}", rule=RULE + "delete")
async def delete(call: ApiCall) -> Reply:
    compute = call.services.compute
    inst = (await compute.get(call.ctx, call.params["server_id"])).instance
    compute._check_lock(call.ctx, inst)
    caps = await compute.host_capabilities(inst.host) if inst.host else {}
    await _server_volumes(call).detach(call.ctx, inst, caps, call.params["volume_id"])
    return Reply(202)
