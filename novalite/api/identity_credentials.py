"""Keystone v3: a user's own credentials and view of the cloud.

Application credentials (``/v3/users/{user_id}/application_credentials``), EC2
credentials (``/v3/users/{user_id}/credentials/OS-EC2``), the projects a user may
scope to (``/v3/users/{user_id}/projects``) and the caller's service catalog
(``/v3/auth/catalog``). Each is the user's own (or an admin's): the rule names the
least role, the owner check is :func:`novalite.identity.credentials.owner_or_admin`.
"""

from __future__ import annotations

from typing import Any

from novalite.api.framework import ApiCall, Reply, Router
from novalite.api.identity_admin import body_of, collection, links, project_view
from novalite.db.models import ApplicationCredential, Credential, Role
from novalite.identity.credentials import Credentials, owner_or_admin

router = Router()
APP_CREDS = "/v3/users/{user_id}/application_credentials"
EC2 = "/v3/users/{user_id}/credentials/OS-EC2"


def _credentials(call: ApiCall) -> Credentials:
    return Credentials(call.services.keystone)


def app_cred_view(call: ApiCall, cred: ApplicationCredential, roles: list[Role]
                  ) -> dict[str, Any]:
    return {"id": cred.id, "name": cred.name, "description": cred.description,
            "user_id": cred.user_id, "project_id": cred.project_id,
            "expires_at": cred.expires_at.isoformat() if cred.expires_at else None,
            "unrestricted": cred.unrestricted, "access_rules": [],
            "roles": [{"id": r.id, "name": r.name, "domain_id": None} for r in roles],
            "links": links(call, f"users/{cred.user_id}/application_credentials/{cred.id}")}


def ec2_view(call: ApiCall, cred: Credential) -> dict[str, Any]:
    access = cred.blob["access"]
    return {"user_id": cred.user_id, "tenant_id": cred.project_id, "access": access,
            "secret": cred.blob["secret"], "trust_id": cred.blob.get("trust_id"),
            "links": links(call, f"users/{cred.user_id}/credentials/OS-EC2/{access}")}


# -- application credentials --------------------------------------------------------------
@router.route("POST", APP_CREDS, rule="identity:create_application_credential")
async def create_app_cred(call: ApiCall) -> Reply:
    cred, roles, secret = await _credentials(call).create_app_cred(
        call.ctx, call.params["user_id"], body_of(call, "application_credential"))
    return Reply(201, {"application_credential": {**app_cred_view(call, cred, roles),
                                                  "secret": secret}})


@router.route("GET", APP_CREDS, rule="identity:list_application_credentials")
async def list_app_creds(call: ApiCall) -> dict[str, Any]:
    user_id = call.params["user_id"]
    found = await _credentials(call).list_app_creds(call.ctx, user_id,
                                                    call.query.get("name"))
    return {"application_credentials": [app_cred_view(call, c, r) for c, r in found],
            "links": collection(call, f"users/{user_id}/application_credentials")}


@router.route("GET", APP_CREDS + "/{cred_id}", rule="identity:get_application_credential")
async def show_app_cred(call: ApiCall) -> dict[str, Any]:
    p = call.params
    cred, roles = await _credentials(call).get_app_cred(call.ctx, p["user_id"], p["cred_id"])
    return {"application_credential": app_cred_view(call, cred, roles)}


@router.route("DELETE", APP_CREDS + "/{cred_id}",
              rule="identity:delete_application_credential")
async def delete_app_cred(call: ApiCall) -> Reply:
    p = call.params
    await _credentials(call).delete_app_cred(call.ctx, p["user_id"], p["cred_id"])
    return Reply(204)


# -- EC2 credentials ---------------------------------------------------------------------
@router.route("POST", EC2, rule="identity:ec2_create_credential")
async def create_ec2(call: ApiCall) -> Reply:
    cred = await _credentials(call).create_ec2(call.ctx, call.params["user_id"], call.body)
    return Reply(201, {"credential": ec2_view(call, cred)})


@router.route("GET", EC2, rule="identity:ec2_list_credentials")
async def list_ec2(call: ApiCall) -> dict[str, Any]:
    user_id = call.params["user_id"]
    found = await _credentials(call).list_ec2(call.ctx, user_id)
    return {"credentials": [ec2_view(call, c) for c in found],
            "links": collection(call, f"users/{user_id}/credentials/OS-EC2")}


@router.route("GET", EC2 + "/{access}", rule="identity:ec2_get_credential")
async def show_ec2(call: ApiCall) -> dict[str, Any]:
    p = call.params
    return {"credential": ec2_view(call, await _credentials(call).get_ec2(
        call.ctx, p["user_id"], p["access"]))}


@router.route("DELETE", EC2 + "/{access}", rule="identity:ec2_delete_credential")
async def delete_ec2(call: ApiCall) -> Reply:
    p = call.params
    await _credentials(call).delete_ec2(call.ctx, p["user_id"], p["access"])
    return Reply(204)


# -- the user's projects and the caller's catalog ------------------------------------------
@router.route("GET", "/v3/users/{user_id}/projects", rule="identity:list_user_projects")
async def user_projects(call: ApiCall) -> dict[str, Any]:
    user_id = call.params["user_id"]
    owner_or_admin(call.ctx, user_id)
    admin = call.services.identity_admin
    user = await admin.get_user(user_id)
    found = await admin.user_projects(user.id)
    return {"projects": [project_view(call, p) for p in found],
            "links": collection(call, f"users/{user.id}/projects")}


@router.route("GET", "/v3/auth/catalog", rule=None)
async def catalog(call: ApiCall) -> dict[str, Any]:
    return {"catalog": call.services.keystone.catalog(), "links": collection(call,
                                                                             "auth/catalog")}
