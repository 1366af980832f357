"""Keystone v3 administration: projects, users, roles, grants, domains.

The shapes python-openstackclient reads (``openstack project create``, ``user
create``, ``role add``, ``role assignment list``); every route but
``GET /v3/auth/projects`` and the domains needs the admin role (novalite.policy).
"""

from __future__ import annotations

from typing import Any

from novalite.api.framework import ApiCall, Reply, Router
from novalite.db.models import Project, Role, User
from novalite.exceptions import BadRequest, NotFound
from novalite.identity.admin import IdentityAdmin
from novalite.identity.service import DEFAULT_DOMAIN

router = Router()
GRANT = "/v3/projects/{project}/users/{user}/roles/{role}"


def _admin(call: ApiCall) -> IdentityAdmin:
    return call.services.identity_admin


def _v3(call: ApiCall) -> str:
    return f"{call.services.base_url}/identity/v3"


def links(call: ApiCall, path: str) -> dict[str, Any]:
    return {"self": f"{_v3(call)}/{path}"}


def collection(call: ApiCall, path: str) -> dict[str, Any]:
    return {"self": f"{_v3(call)}/{path}", "previous": None, "next": None}


def project_view(call: ApiCall, p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "domain_id": "default",
            "description": p.description, "enabled": p.enabled, "is_domain": False,
            "parent_id": "default", "tags": [], "options": {},
            "links": links(call, f"projects/{p.id}")}


def user_view(call: ApiCall, u: User) -> dict[str, Any]:
    out = {"id": u.id, "name": u.name, "domain_id": "default", "enabled": u.enabled,
           "password_expires_at": None, "options": {}, "links": links(call, f"users/{u.id}")}
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    return out


def role_view(call: ApiCall, r: Role) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "domain_id": None, "description": None,
            "options": {}, "links": links(call, f"roles/{r.id}")}


def domain_view(call: ApiCall) -> dict[str, Any]:
    return {**DEFAULT_DOMAIN, "description": "The default domain", "enabled": True,
            "tags": [], "options": {}, "links": links(call, "domains/default")}


def body_of(call: ApiCall, key: str) -> dict[str, Any]:
    if not isinstance(call.body, dict) or not isinstance(call.body.get(key), dict):
        raise BadRequest(f"Invalid input: '{key}' is a required property")
    value: dict[str, Any] = call.body[key]
    return value


# -- projects ----------------------------------------------------------------
@router.route("GET", "/v3/projects", rule="identity:list_projects")
async def list_projects(call: ApiCall) -> dict[str, Any]:
    found = await _admin(call).list_projects(call.query.get("name"))
    return {"projects": [project_view(call, p) for p in found],
            "links": collection(call, "projects")}


@router.route("POST", "/v3/projects", rule="identity:create_project")
async def create_project(call: ApiCall) -> Reply:
    project = await _admin(call).create_project(body_of(call, "project"))
    return Reply(201, {"project": project_view(call, project)})


@router.route("GET", "/v3/projects/{id}", rule="identity:list_projects")
async def show_project(call: ApiCall) -> dict[str, Any]:
    return {"project": project_view(call, await _admin(call).get_project(call.params["id"]))}


@router.route("DELETE", "/v3/projects/{id}", rule="identity:delete_project")
async def delete_project(call: ApiCall) -> Reply:
    await _admin(call).delete_project(call.params["id"])
    return Reply(204)


# -- users -------------------------------------------------------------------
@router.route("GET", "/v3/users", rule="identity:list_users")
async def list_users(call: ApiCall) -> dict[str, Any]:
    found = await _admin(call).list_users(call.query.get("name"))
    return {"users": [user_view(call, u) for u in found], "links": collection(call, "users")}


@router.route("POST", "/v3/users", rule="identity:create_user")
async def create_user(call: ApiCall) -> Reply:
    user = await _admin(call).create_user(body_of(call, "user"))
    return Reply(201, {"user": user_view(call, user)})


@router.route("GET", "/v3/users/{id}", rule="identity:list_users")
async def show_user(call: ApiCall) -> dict[str, Any]:
    return {"user": user_view(call, await _admin(call).get_user(call.params["id"]))}


@router.route("PATCH", "/v3/users/{id}", rule="identity:create_user")
async def update_user(call: ApiCall) -> dict[str, Any]:
    user = await _admin(call).update_user(call.params["id"], body_of(call, "user"))
    return {"user": user_view(call, user)}


@router.route("DELETE", "/v3/users/{id}", rule="identity:delete_user")
async def delete_user(call: ApiCall) -> Reply:
    await _admin(call).delete_user(call.params["id"])
    return Reply(204)


# -- roles and grants -------------------------------------------------------------
@router.route("GET", "/v3/roles", rule="identity:list_roles")
async def list_roles(call: ApiCall) -> dict[str, Any]:
    found = await _admin(call).list_roles(call.query.get("name"))
    return {"roles": [role_view(call, r) for r in found], "links": collection(call, "roles")}


@router.route("GET", "/v3/roles/{id}", rule="identity:list_roles")
async def show_role(call: ApiCall) -> dict[str, Any]:
    return {"role": role_view(call, await _admin(call).get_role(call.params["id"]))}


@router.route("PUT", GRANT, rule="identity:create_grant")
async def grant(call: ApiCall) -> Reply:
    p = call.params
    await _admin(call).grant(p["project"], p["user"], p["role"])
    return Reply(204)


@router.route("HEAD", GRANT, rule="identity:list_grants")
async def check_grant(call: ApiCall) -> Reply:
    p, admin = call.params, _admin(call)
    project = await admin.get_project(p["project"])
    user = await admin.get_user(p["user"])
    role = await admin.get_role(p["role"])
    if not await admin.assignments(user.id, project.id, role.id):
        raise NotFound(f"Could not find role assignment with role: {role.id}, user or "
                       f"group: {user.id}, project, domain, or system: {project.id}.")
    return Reply(204)


@router.route("DELETE", GRANT, rule="identity:revoke_grant")
async def revoke_grant(call: ApiCall) -> Reply:
    p = call.params
    await _admin(call).revoke(p["project"], p["user"], p["role"])
    return Reply(204)


@router.route("GET", "/v3/projects/{project}/users/{user}/roles", rule="identity:list_grants")
async def list_grants(call: ApiCall) -> dict[str, Any]:
    admin = _admin(call)
    project = await admin.get_project(call.params["project"])
    user = await admin.get_user(call.params["user"])
    found = await admin.assignments(user.id, project.id)
    return {"roles": [role_view(call, r) for _, r in found],
            "links": collection(call, f"projects/{project.id}/users/{user.id}/roles")}


@router.route("GET", "/v3/role_assignments", rule="identity:list_grants")
async def role_assignments(call: ApiCall) -> dict[str, Any]:
    q = call.query
    found = await _admin(call).assignments(q.get("user.id"), q.get("scope.project.id"),
                                           q.get("role.id"))
    return {"role_assignments": [{
        "role": {"id": r.id}, "user": {"id": a.user_id},
        "scope": {"project": {"id": a.project_id}},
        "links": {"assignment": f"{_v3(call)}/projects/{a.project_id}/users/{a.user_id}/roles/"
                                f"{r.id}"},
    } for a, r in found], "links": collection(call, "role_assignments")}


# -- the caller's own view and domains ----------------------------------------------
@router.route("GET", "/v3/auth/projects", rule=None)
async def auth_projects(call: ApiCall) -> dict[str, Any]:
    found = await _admin(call).user_projects(call.ctx.user_id)
    return {"projects": [project_view(call, p) for p in found],
            "links": collection(call, "auth/projects")}


@router.route("GET", "/v3/domains", rule=None)
async def list_domains(call: ApiCall) -> dict[str, Any]:
    name = call.query.get("name")
    found = [domain_view(call)] if name in (None, "Default", "default") else []
    return {"domains": found, "links": collection(call, "domains")}


@router.route("GET", "/v3/domains/{id}", rule=None)
async def show_domain(call: ApiCall) -> dict[str, Any]:
    if call.params["id"] not in ("default", "Default"):
        raise NotFound(f"Could not find domain: {call.params['id']}.")
    return {"domain": domain_view(call)}
