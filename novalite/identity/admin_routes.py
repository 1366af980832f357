"""Keystone v3 administration routes: projects, users, roles, grants, domains.

The shapes python-openstackclient reads (``openstack project create``, ``user
create``, ``role add``, ``role assignment list``); every route but
``GET /v3/auth/projects`` needs the admin role (novalite.policy).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from novalite.api.framework import ApiCall, Authenticator, Reply, guarded, make_route
from novalite.db.models import Project, Role, User
from novalite.exceptions import BadRequest, NotFound
from novalite.identity.admin import IdentityAdmin
from novalite.identity.service import DEFAULT_DOMAIN


def routes(admin: IdentityAdmin, authenticate: Authenticator, base: str) -> list[Route]:
    v3 = f"{base}/identity/v3"

    def links(path: str) -> dict[str, Any]:
        return {"self": f"{v3}/{path}"}

    def collection(path: str) -> dict[str, Any]:
        return {"self": f"{v3}/{path}", "previous": None, "next": None}

    def project_view(p: Project) -> dict[str, Any]:
        return {"id": p.id, "name": p.name, "domain_id": "default",
                "description": p.description, "enabled": p.enabled, "is_domain": False,
                "parent_id": "default", "tags": [], "options": {},
                "links": links(f"projects/{p.id}")}

    def user_view(u: User) -> dict[str, Any]:
        out = {"id": u.id, "name": u.name, "domain_id": "default", "enabled": u.enabled,
               "password_expires_at": None, "options": {}, "links": links(f"users/{u.id}")}
        if u.default_project_id:
            out["default_project_id"] = u.default_project_id
        return out

    def role_view(r: Role) -> dict[str, Any]:
        return {"id": r.id, "name": r.name, "domain_id": None, "description": None,
                "options": {}, "links": links(f"roles/{r.id}")}

    def domain_view() -> dict[str, Any]:
        return {**DEFAULT_DOMAIN, "description": "The default domain", "enabled": True,
                "tags": [], "options": {}, "links": links("domains/default")}

    def body_of(call: ApiCall, key: str) -> dict[str, Any]:
        if not isinstance(call.body, dict) or not isinstance(call.body.get(key), dict):
            raise BadRequest(f"Invalid input: '{key}' is a required property")
        return call.body[key]  # type: ignore[no-any-return]

    # -- projects ----------------------------------------------------------------
    async def list_projects(call: ApiCall) -> dict[str, Any]:
        found = await admin.list_projects(call.query.get("name"))
        return {"projects": [project_view(p) for p in found], "links": collection("projects")}

    async def create_project(call: ApiCall) -> Reply:
        project = await admin.create_project(body_of(call, "project"))
        return Reply(201, {"project": project_view(project)})

    async def show_project(call: ApiCall) -> dict[str, Any]:
        return {"project": project_view(await admin.get_project(call.params["id"]))}

    async def delete_project(call: ApiCall) -> Reply:
        await admin.delete_project(call.params["id"])
        return Reply(204)

    # -- users -------------------------------------------------------------------
    async def list_users(call: ApiCall) -> dict[str, Any]:
        found = await admin.list_users(call.query.get("name"))
        return {"users": [user_view(u) for u in found], "links": collection("users")}

    async def create_user(call: ApiCall) -> Reply:
        return Reply(201, {"user": user_view(await admin.create_user(body_of(call, "user")))})

    async def show_user(call: ApiCall) -> dict[str, Any]:
        return {"user": user_view(await admin.get_user(call.params["id"]))}

    async def update_user(call: ApiCall) -> dict[str, Any]:
        user = await admin.update_user(call.params["id"], body_of(call, "user"))
        return {"user": user_view(user)}

    async def delete_user(call: ApiCall) -> Reply:
        await admin.delete_user(call.params["id"])
        return Reply(204)

    # -- roles and grants -------------------------------------------------------------
    async def list_roles(call: ApiCall) -> dict[str, Any]:
        found = await admin.list_roles(call.query.get("name"))
        return {"roles": [role_view(r) for r in found], "links": collection("roles")}

    async def show_role(call: ApiCall) -> dict[str, Any]:
        return {"role": role_view(await admin.get_role(call.params["id"]))}

    async def grant(call: ApiCall) -> Reply:
        p = call.params
        await admin.grant(p["project"], p["user"], p["role"])
        return Reply(204)

    async def check_grant(call: ApiCall) -> Reply:
        p = call.params
        project = await admin.get_project(p["project"])
        user = await admin.get_user(p["user"])
        role = await admin.get_role(p["role"])
        if not await admin.assignments(user.id, project.id, role.id):
            raise NotFound(f"Could not find role assignment with role: {role.id}, user or "
                           f"group: {user.id}, project, domain, or system: {project.id}.")
        return Reply(204)

    async def revoke_grant(call: ApiCall) -> Reply:
        p = call.params
        await admin.revoke(p["project"], p["user"], p["role"])
        return Reply(204)

    async def list_grants(call: ApiCall) -> dict[str, Any]:
        project = await admin.get_project(call.params["project"])
        user = await admin.get_user(call.params["user"])
        found = await admin.assignments(user.id, project.id)
        return {"roles": [role_view(r) for _, r in found],
                "links": collection(f"projects/{project.id}/users/{user.id}/roles")}

    async def role_assignments(call: ApiCall) -> dict[str, Any]:
        q = call.query
        found = await admin.assignments(q.get("user.id"), q.get("scope.project.id"),
                                        q.get("role.id"))
        return {"role_assignments": [{
            "role": {"id": r.id}, "user": {"id": a.user_id},
            "scope": {"project": {"id": a.project_id}},
            "links": {"assignment": f"{v3}/projects/{a.project_id}/users/{a.user_id}/roles/"
                                    f"{r.id}"},
        } for a, r in found], "links": collection("role_assignments")}

    # -- the caller's own view and domains ----------------------------------------------
    async def auth_projects(call: ApiCall) -> dict[str, Any]:
        assert call.ctx is not None
        found = await admin.user_projects(call.ctx.user_id)
        return {"projects": [project_view(p) for p in found],
                "links": collection("auth/projects")}

    async def list_domains(call: ApiCall) -> dict[str, Any]:
        name = call.query.get("name")
        found = [domain_view()] if name in (None, "Default", "default") else []
        return {"domains": found, "links": collection("domains")}

    async def show_domain(call: ApiCall) -> dict[str, Any]:
        if call.params["id"] not in ("default", "Default"):
            raise NotFound(f"Could not find domain: {call.params['id']}.")
        return {"domain": domain_view()}

    grant_path = "/v3/projects/{project}/users/{user}/roles/{role}"
    table: list[tuple[str, str, Any, str | None]] = [
        ("/v3/projects", "GET", list_projects, "identity:list_projects"),
        ("/v3/projects", "POST", create_project, "identity:create_project"),
        ("/v3/projects/{id}", "GET", show_project, "identity:list_projects"),
        ("/v3/projects/{id}", "DELETE", delete_project, "identity:delete_project"),
        ("/v3/users", "GET", list_users, "identity:list_users"),
        ("/v3/users", "POST", create_user, "identity:create_user"),
        ("/v3/users/{id}", "GET", show_user, "identity:list_users"),
        ("/v3/users/{id}", "PATCH", update_user, "identity:create_user"),
        ("/v3/users/{id}", "DELETE", delete_user, "identity:delete_user"),
        ("/v3/roles", "GET", list_roles, "identity:list_roles"),
        ("/v3/roles/{id}", "GET", show_role, "identity:list_roles"),
        (grant_path, "PUT", grant, "identity:create_grant"),
        (grant_path, "HEAD", check_grant, "identity:list_grants"),
        (grant_path, "DELETE", revoke_grant, "identity:revoke_grant"),
        ("/v3/projects/{project}/users/{user}/roles", "GET", list_grants,
         "identity:list_grants"),
        ("/v3/role_assignments", "GET", role_assignments, "identity:list_grants"),
        ("/v3/auth/projects", "GET", auth_projects, None),
        ("/v3/domains", "GET", list_domains, None),
        ("/v3/domains/{id}", "GET", show_domain, None),
    ]
    return [make_route(path, method, guarded(rule, handler) if rule else handler,
                       authenticate=authenticate, style="keystone")
            for path, method, handler, rule in table]
