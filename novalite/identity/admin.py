"""Identity administration: projects, users, roles and role assignments.

The Keystone v3 shapes that ``openstack project/user/role`` use, domain
``Default`` only. Every change that can take access away (a role revoked, a
user disabled or deleted, a project deleted) drops the validated-token cache,
so it takes effect on the next request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from novalite.db.models import Project, Role, RoleAssignment, Token, User
from novalite.exceptions import BadRequest, Conflict, NotFound
from novalite.identity.service import IdentityService, hash_password

Named = TypeVar("Named", Project, User, Role)


def _domain_ok(domain_id: Any) -> None:
    if domain_id not in (None, "default", "Default"):
        raise BadRequest(f"Only the Default domain exists here, not {domain_id!r}.")


def _list(model: type[Named], name: str | None) -> Callable[[Session], list[Named]]:
    def work(s: Session) -> list[Named]:
        q = select(model)
        if name is not None:
            q = q.where(model.name == name)
        return list(s.exec(q.order_by(model.name)).all())

    return work


def _find(model: type[Named], ref: str) -> Callable[[Session], Named | None]:
    """By id, or by name (as clients look them up)."""
    def work(s: Session) -> Named | None:
        return s.get(model, ref) or s.exec(select(model).where(
            model.name == ref)).first()

    return work


class IdentityAdmin:
    def __init__(self, identity: IdentityService) -> None:
        self.identity = identity
        self.db = identity.db

    def _forget_tokens(self) -> None:
        self.identity.forget_cached_tokens()

    # -- projects --------------------------------------------------------------
    async def list_projects(self, name: str | None = None) -> list[Project]:
        return await self.db.read(_list(Project, name))

    async def get_project(self, ref: str) -> Project:
        found = await self.db.read(_find(Project, ref))
        if found is None:
            raise NotFound(f"Could not find project: {ref}.")
        return found

    async def create_project(self, body: dict[str, Any]) -> Project:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise BadRequest("Invalid input for field 'name': a project name of 1-64 "
                             "characters is required.")
        _domain_ok(body.get("domain_id"))
        project = Project(name=name, description=str(body.get("description") or ""),
                          enabled=bool(body.get("enabled", True)))

        def work(s: Session) -> Project:
            if s.exec(select(Project).where(Project.name == name)).first() is not None:
                raise Conflict(f"Conflict occurred attempting to store project - it is not "
                               f"permitted to have two projects with the same name in the "
                               f"same domain : {name}.")
            s.add(project)
            return project

        try:
            return await self.db.write(work)
        except IntegrityError:
            raise Conflict(f"Duplicate project name {name}.") from None

    async def delete_project(self, ref: str) -> None:
        project = await self.get_project(ref)
        if project.id != ref:  # Keystone deletes by id only; clients resolve names first
            raise NotFound(f"Could not find project: {ref}.")

        def work(s: Session) -> None:
            for a in s.exec(select(RoleAssignment).where(
                    RoleAssignment.project_id == project.id)).all():
                s.delete(a)
            for t in s.exec(select(Token).where(Token.project_id == project.id)).all():
                t.revoked = True
                s.add(t)
            row = s.get(Project, project.id)
            if row is not None:
                s.delete(row)

        await self.db.write(work)
        self._forget_tokens()

    # -- users -----------------------------------------------------------------
    async def list_users(self, name: str | None = None) -> list[User]:
        return await self.db.read(_list(User, name))

    async def get_user(self, ref: str) -> User:
        found = await self.db.read(_find(User, ref))
        if found is None:
            raise NotFound(f"Could not find user: {ref}.")
        return found

    async def create_user(self, body: dict[str, Any]) -> User:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field 'name': a user name of 1-255 "
                             "characters is required.")
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise BadRequest("Invalid input for field 'password': a password is required "
                             "(users sign in with passwords here).")
        _domain_ok(body.get("domain_id"))
        default_project = body.get("default_project_id")
        if default_project:
            default_project = (await self.get_project(str(default_project))).id
        user = User(name=name, password_hash=hash_password(password),
                    default_project_id=default_project, enabled=bool(body.get("enabled", True)))

        def work(s: Session) -> User:
            if s.exec(select(User).where(User.name == name)).first() is not None:
                raise Conflict(f"Conflict occurred attempting to store user - Duplicate "
                               f"entry found with name {name} at domain ID default.")
            s.add(user)
            return user

        return await self.db.write(work)

    async def update_user(self, ref: str, body: dict[str, Any]) -> User:
        user = await self.get_user(ref)
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()
                                 or len(name) > 255):
            raise BadRequest("Invalid input for field 'name': a user name of 1-255 "
                             "characters is required.")

        def work(s: Session) -> User:
            row = s.get(User, user.id)
            assert row is not None
            if "password" in body:
                if not isinstance(body["password"], str) or not body["password"]:
                    raise BadRequest("Invalid input for field 'password'.")
                row.password_hash = hash_password(body["password"])
            if "enabled" in body:
                row.enabled = bool(body["enabled"])
            if body.get("name"):
                row.name = str(body["name"])
            if "default_project_id" in body:
                row.default_project_id = body["default_project_id"]
            s.add(row)
            return row

        updated = await self.db.write(work)
        self._forget_tokens()
        return updated

    async def delete_user(self, ref: str) -> None:
        user = await self.get_user(ref)
        if user.id != ref:  # Keystone deletes by id only; clients resolve names first
            raise NotFound(f"Could not find user: {ref}.")

        def work(s: Session) -> None:
            for a in s.exec(select(RoleAssignment).where(
                    RoleAssignment.user_id == user.id)).all():
                s.delete(a)
            for t in s.exec(select(Token).where(Token.user_id == user.id)).all():
                t.revoked = True
                s.add(t)
            row = s.get(User, user.id)
            if row is not None:
                s.delete(row)

        await self.db.write(work)
        self._forget_tokens()

    # -- roles -----------------------------------------------------------------
    async def list_roles(self, name: str | None = None) -> list[Role]:
        return await self.db.read(_list(Role, name))

    async def get_role(self, ref: str) -> Role:
        found = await self.db.read(_find(Role, ref))
        if found is None:
            raise NotFound(f"Could not find role: {ref}.")
        return found

    async def grant(self, project_ref: str, user_ref: str, role_ref: str) -> None:
        project = await self.get_project(project_ref)
        user = await self.get_user(user_ref)
        role = await self.get_role(role_ref)

        def work(s: Session) -> None:
            if s.get(RoleAssignment, (user.id, project.id, role.id)) is None:
                s.add(RoleAssignment(user_id=user.id, project_id=project.id, role_id=role.id))

        await self.db.write(work)
        self._forget_tokens()

    async def revoke(self, project_ref: str, user_ref: str, role_ref: str) -> None:
        project = await self.get_project(project_ref)
        user = await self.get_user(user_ref)
        role = await self.get_role(role_ref)

        def work(s: Session) -> bool:
            row = s.get(RoleAssignment, (user.id, project.id, role.id))
            if row is None:
                return False
            s.delete(row)
            return True

        if not await self.db.write(work):
            raise NotFound(f"Could not find role assignment with role: {role.id}, user or "
                           f"group: {user.id}, project, domain, or system: {project.id}.")
        self._forget_tokens()

    async def assignments(self, user_id: str | None = None, project_id: str | None = None,
                          role_id: str | None = None) -> list[tuple[RoleAssignment, Role]]:
        def work(s: Session) -> list[tuple[RoleAssignment, Role]]:
            q = select(RoleAssignment, Role).join(Role, col(Role.id) == RoleAssignment.role_id)
            if user_id:
                q = q.where(RoleAssignment.user_id == user_id)
            if project_id:
                q = q.where(RoleAssignment.project_id == project_id)
            if role_id:
                q = q.where(RoleAssignment.role_id == role_id)
            return [(a, r) for a, r in s.exec(q).all()]

        return await self.db.read(work)

    async def user_projects(self, user_id: str) -> list[Project]:
        """The enabled projects where ``user_id`` holds a role (GET /v3/auth/projects)."""
        def work(s: Session) -> list[Project]:
            q = select(Project).join(RoleAssignment, col(RoleAssignment.project_id) == Project.id
                                     ).where(RoleAssignment.user_id == user_id,
                                             Project.enabled == True)  # noqa: E712
            return list({p.id: p for p in s.exec(q).all()}.values())

        return await self.db.read(work)
