"""``os-keypairs``: routes and Nova's response shapes per microversion.

``type`` appears at 2.2; an admin may act for another user with ``user_id`` from
2.10; list pagination (``limit``/``marker``) from 2.35; from 2.92 a public key
is required (no generation) and names may hold any printable character.
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.views import iso_usec
from novalite.compute.keypairs import KeypairAPI
from novalite.db.models import KeyPair
from novalite.exceptions import BadRequest
from novalite.policy import authorize

router = Router()
RULE = "os_compute_api:os-keypairs:"


def _user(call: ApiCall, given: Any = None) -> str:
    """The user the call acts for: the caller, or (admins, 2.10+) ``user_id``."""
    ctx = call.ctx
    user_id = given if given is not None else call.query.get("user_id")
    if user_id and call.mv("2.10") and user_id != ctx.user_id:
        authorize(ctx, "os_compute_api:os-keypairs:other_user")
        return str(user_id)
    return ctx.user_id


def _brief(call: ApiCall, row: KeyPair) -> dict[str, Any]:
    out: dict[str, Any] = {"name": row.name, "public_key": row.public_key,
                           "fingerprint": row.fingerprint}
    if call.mv("2.2"):
        out["type"] = row.type
    return out


@router.route("POST", "/v2.1/os-keypairs", rule=RULE + "create")
async def create(call: ApiCall) -> Reply:
    schema = schemas.KEYPAIR_CREATE_V292 if call.mv("2.92") else \
        schemas.KEYPAIR_CREATE_V210 if call.mv("2.10") else \
        schemas.KEYPAIR_CREATE_V22 if call.mv("2.2") else schemas.KEYPAIR_CREATE
    kp = schemas.validate(call.body, schema)["keypair"]
    name = KeypairAPI.check_name(kp.get("name"), relaxed=call.mv("2.92"))
    public_key = kp.get("public_key")
    key_type = kp.get("type", "ssh") if call.mv("2.2") else "ssh"
    user_id = _user(call, kp.get("user_id"))
    row, private = await call.services.compute.keypairs.create(
        user_id, call.ctx.project_id, name, public_key, key_type)
    out = {**_brief(call, row), "user_id": row.user_id}
    if private is not None:
        out["private_key"] = private
    return Reply(201 if call.mv("2.2") else 200, {"keypair": out})


@router.route("GET", "/v2.1/os-keypairs", rule=RULE + "index")
async def index(call: ApiCall) -> dict[str, Any]:
    limit = marker = None
    if call.mv("2.35"):
        marker = call.query.get("marker")
        if call.query.get("limit") is not None:
            try:
                limit = int(call.query["limit"])
                assert limit >= 0
            except (ValueError, AssertionError):
                raise BadRequest("Invalid input for query parameters limit.") from None
    rows = await call.services.compute.keypairs.list(_user(call), limit, marker)
    out: dict[str, Any] = {"keypairs": [{"keypair": _brief(call, r)} for r in rows]}
    if limit and len(rows) >= limit:
        out["keypairs_links"] = [{"rel": "next", "href":
                                  f"os-keypairs?limit={limit}&marker={rows[-1].name}"}]
    return out


@router.route("GET", "/v2.1/os-keypairs/{name}", rule=RULE + "show")
async def show(call: ApiCall) -> dict[str, Any]:
    row = await call.services.compute.keypairs.get(_user(call), call.params["name"])
    return {"keypair": {**_brief(call, row), "user_id": row.user_id, "id": row.id,
                        "created_at": iso_usec(row.created_at), "deleted": False,
                        "deleted_at": None, "updated_at": None}}


@router.route("DELETE", "/v2.1/os-keypairs/{name}", rule=RULE + "delete")
async def delete(call: ApiCall) -> Reply:
    await call.services.compute.keypairs.delete(_user(call), call.params["name"])
    return Reply(204 if call.mv("2.2") else 202)
