"""Keystone v3 administration: projects, users, roles, grants, domains.

The shapes python-openstackclient reads (``openstack project create``, ``user
create``, ``role add``, ``role assignment list``); every route but
``GET /v3/auth/projects`` and the domains needs the admin role (novalite.policy).
"""

from __future__ import annotations

from typing import Any

from novalite.api import schemas
from novalite.api.framework import ApiCall, Reply, Router
from novalite.db.models import Project, Role, User
from novalite.exceptions import BadRequest, NotFound
from novalite.identity.admin import IdentityAdmin
from novalite.identity.service import DEFAULT_DOMAIN
from novalite.policy import ROLE_ORDER

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


@router.route("POST", "/v3/projects", rule="identity:create_project",
              body=schemas.IDENTITY_PROJECT_CREATE)
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


@router.route("POST", "/v3/users", rule="identity:create_user",
              body=schemas.IDENTITY_USER_CREATE)
async def create_user(call: ApiCall) -> Reply:
    user = await _admin(call).create_user(body_of(call, "user"))
    return Reply(201, {"user": user_view(call, user)})


@router.route("GET", "/v3/users/{id}", rule="identity:list_users")
async def show_user(call: ApiCall) -> dict[str, Any]:
    return {"user": user_view(call, await _admin(call).get_user(call.params["id"]))}


@router.route("PATCH", "/v3/users/{id}", rule="identity:create_user",
              body=schemas.IDENTITY_USER_UPDATE)
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


def query_flag(call: ApiCall, name: str) -> bool:
    """Keystone's boolean query filters: present and not ``0``/``false`` (``?effective``
    alone is true)."""
    value = call.query.get(name)
    return value is not None and value.lower() not in ("0", "false")


@router.route("GET", "/v3/role_assignments", rule="identity:list_grants")
async def role_assignments(call: ApiCall) -> dict[str, Any]:
    """Keystone's assignment list: filters ``user.id``, ``scope.project.id``, ``role.id``
    (groups, domain and system scopes hold no assignments here), ``effective`` (adds the
    roles each assigned role implies) and ``include_names`` (names beside ids)."""
    q, admin = call.query, _admin(call)
    listed: list[dict[str, Any]] = []
    out = {"role_assignments": listed, "links": collection(call, "role_assignments")}
    if any(q.get(k) is not None for k in ("group.id", "scope.domain.id", "scope.system",
                                          "scope.OS-INHERIT:inherited_to")):
        return out
    names = query_flag(call, "include_names")
    effective = query_flag(call, "effective")
    found = await admin.assignments(q.get("user.id"), q.get("scope.project.id"),
                                    None if effective else q.get("role.id"))
    roles = {r.name: r for r in await admin.list_roles()}
    users = {u.id: u for u in await admin.list_users()} if names else {}
    projects = {p.id: p for p in await admin.list_projects()} if names else {}
    domain = {"id": DEFAULT_DOMAIN["id"], "name": DEFAULT_DOMAIN["name"]}
    rows: list[tuple[Any, Role, Role | None]] = [(a, r, None) for a, r in found]
    if effective:  # admin > manager > member > reader, as Keystone's default roles
        held = {(a.user_id, a.project_id, r.id) for a, r in found}
        for a, r in found:
            if r.name in ROLE_ORDER:
                for implied in ROLE_ORDER[ROLE_ORDER.index(r.name) + 1:]:
                    more = roles.get(implied)
                    if more is not None and (a.user_id, a.project_id, more.id) not in held:
                        held.add((a.user_id, a.project_id, more.id))
                        rows.append((a, more, r))
        if q.get("role.id"):
            rows = [row for row in rows if row[1].id == q.get("role.id")]
    for a, r, prior in rows:
        role: dict[str, Any] = {"id": r.id}
        user: dict[str, Any] = {"id": a.user_id}
        project: dict[str, Any] = {"id": a.project_id}
        if names:
            role["name"] = r.name
            if a.user_id in users:
                user.update(name=users[a.user_id].name, domain=domain)
            if a.project_id in projects:
                project.update(name=projects[a.project_id].name, domain=domain)
        grant_role = prior or r
        entry_links = {"assignment": f"{_v3(call)}/projects/{a.project_id}/users/"
                                     f"{a.user_id}/roles/{grant_role.id}"}
        if prior is not None:
            entry_links["prior_role"] = f"{_v3(call)}/roles/{prior.id}"
        listed.append({"role": role, "user": user,
                       "scope": {"project": project}, "links": entry_links})
    return out


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
