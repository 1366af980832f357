"""A user's own credentials: application credentials and EC2 credentials (Keystone v3).

An application credential is made by a user with a project-scoped token: it
authenticates (method ``application_credential``, its id and secret) as that user
on that project, with the roles it names (a subset of the token's roles, all of
them by default), until it expires or is deleted (its tokens die with it). Its
secret is shown once, at creation; only a hash is stored. A *restricted* one (the
default) cannot be used to make further application credentials.

EC2 credentials are access/secret pairs for a project (``/v3/users/{id}/credentials/
OS-EC2``), kept as Keystone keeps them: the id is the sha256 of the access key, and
the secret can be read back by its owner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from novalite.context import AuthContext
from novalite.db.models import (
    ApplicationCredential,
    Credential,
    Project,
    Role,
    Token,
    User,
    utcnow,
)
from novalite.exceptions import BadRequest, Conflict, Forbidden, NotFound
from novalite.identity.service import IdentityService, hash_password


def parse_expiry(value: Any) -> dt.datetime | None:
    """An ISO 8601 ``expires_at`` as naive UTC (None: never expires)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field 'expires_at': {value!r} is not a string")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid input for field 'expires_at': {value!r} is not an ISO "
                         "8601 date and time") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when


def owner_or_admin(ctx: AuthContext, user_id: str) -> None:
    """Keystone's ``rule:owner``: a user's credentials are their own (and admins')."""
    if not ctx.is_admin and ctx.user_id != user_id:
        raise Forbidden("You are not authorized to perform the requested action.")


class Credentials:
    """Application credentials and EC2 credentials of users."""

    def __init__(self, identity: IdentityService) -> None:
        self.identity = identity
        self.db = identity.db

    async def _user(self, user_id: str) -> User:
        found = await self.db.read(lambda s: s.get(User, user_id))
        if found is None:
            raise NotFound(f"Could not find user: {user_id}.")
        return found

    # -- application credentials ------------------------------------------------------
    async def create_app_cred(self, ctx: AuthContext, user_id: str, body: Any
                              ) -> tuple[ApplicationCredential, list[Role], str]:
        """(credential, its roles, its secret) for the caller's own user and project."""
        if ctx.user_id != user_id:  # not even an admin makes one for someone else
            raise Forbidden("You are not authorized to perform the requested action.")
        app_cred = self.identity.issued_by_app_cred(ctx)
        if app_cred is not None and app_cred["restricted"]:
            raise Forbidden("Using method 'application_credential' is not allowed for "
                            "managing additional application credentials.")
        if not isinstance(body, Mapping):
            raise BadRequest("Invalid input: 'application_credential' is a required property")
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 255:
            raise BadRequest("Invalid input for field 'name': a name of 1-255 characters is "
                             "required.")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise BadRequest("Invalid input for field 'description': not a string.")
        secret = body.get("secret") or secrets.token_urlsafe(64)
        if not isinstance(secret, str):
            raise BadRequest("Invalid input for field 'secret': not a string.")
        unrestricted = body.get("unrestricted", False)
        if not isinstance(unrestricted, bool):
            raise BadRequest("Invalid input for field 'unrestricted': not a boolean.")
        if body.get("access_rules"):
            raise BadRequest("Access rules are not supported by this identity service.")
        expires_at = parse_expiry(body.get("expires_at"))
        if expires_at is not None and expires_at <= utcnow():
            raise BadRequest("Invalid application credential: The expiration date "
                             f"{body['expires_at']} is in the past.")
        wanted = body.get("roles")
        if wanted is not None and not (isinstance(wanted, list) and all(
                isinstance(r, Mapping) and (r.get("id") or r.get("name")) for r in wanted)):
            raise BadRequest("Invalid input for field 'roles': a list of {\"id\"} or "
                             "{\"name\"}.")
        held = {ctx.role_ids.get(r, r): r for r in ctx.roles}  # role id -> name
        if wanted is None:
            role_ids = sorted(held)
        else:
            role_ids = []
            by_name = {name: rid for rid, name in held.items()}
            for r in wanted:
                rid = r.get("id") or by_name.get(str(r.get("name")))
                if rid not in held:
                    raise NotFound(f"Could not find role assignment with role: "
                                   f"{r.get('id') or r.get('name')}, user or group: "
                                   f"{ctx.user_id}, project, domain, or system: "
                                   f"{ctx.project_id}.")
                role_ids.append(rid)
        cred = ApplicationCredential(
            name=name, description=description, secret_hash=hash_password(secret),
            user_id=user_id, project_id=ctx.project_id, roles=sorted(set(role_ids)),
            unrestricted=unrestricted, expires_at=expires_at)

        def work(s: Session) -> tuple[ApplicationCredential, list[Role]]:
            if s.exec(select(ApplicationCredential).where(
                    ApplicationCredential.user_id == user_id,
                    ApplicationCredential.name == name)).first() is not None:
                raise Conflict("Conflict occurred attempting to store application_credential "
                               f"- Duplicate entry found with name {name}.")
            s.add(cred)
            return cred, _roles(s, cred.roles)

        try:
            made, roles = await self.db.write(work)
        except IntegrityError:
            raise Conflict("Conflict occurred attempting to store application_credential - "
                           f"Duplicate entry found with name {name}.") from None
        return made, roles, secret

    async def list_app_creds(self, ctx: AuthContext, user_id: str, name: str | None
                             ) -> list[tuple[ApplicationCredential, list[Role]]]:
        owner_or_admin(ctx, user_id)
        await self._user(user_id)

        def work(s: Session) -> list[tuple[ApplicationCredential, list[Role]]]:
            q = select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
            if name is not None:
                q = q.where(ApplicationCredential.name == name)
            rows = s.exec(q.order_by(col(ApplicationCredential.created_at))).all()
            return [(c, _roles(s, c.roles)) for c in rows]

        return await self.db.read(work)

    async def get_app_cred(self, ctx: AuthContext, user_id: str, cred_id: str
                           ) -> tuple[ApplicationCredential, list[Role]]:
        owner_or_admin(ctx, user_id)

        def work(s: Session) -> tuple[ApplicationCredential, list[Role]] | None:
            cred = s.get(ApplicationCredential, cred_id)
            if cred is None or cred.user_id != user_id:
                return None
            return cred, _roles(s, cred.roles)

        found = await self.db.read(work)
        if found is None:
            raise NotFound(f"Could not find Application Credential: {cred_id}.")
        return found

    async def delete_app_cred(self, ctx: AuthContext, user_id: str, cred_id: str) -> None:
        """Delete the credential and revoke the tokens issued for it."""
        await self.get_app_cred(ctx, user_id, cred_id)
        app_cred = self.identity.issued_by_app_cred(ctx)
        if app_cred is not None and app_cred["restricted"]:
            raise Forbidden("Using method 'application_credential' is not allowed for "
                            "managing additional application credentials.")

        def work(s: Session) -> None:
            row = s.get(ApplicationCredential, cred_id)
            if row is not None:
                s.delete(row)
            for t in s.exec(select(Token).where(Token.app_cred_id == cred_id)).all():
                t.revoked = True
                s.add(t)

        await self.db.write(work)
        self.identity.forget_cached_tokens()

    # -- EC2 credentials ---------------------------------------------------------------
    async def create_ec2(self, ctx: AuthContext, user_id: str, body: Any) -> Credential:
        owner_or_admin(ctx, user_id)
        await self._user(user_id)
        project_id = body.get("tenant_id") if isinstance(body, Mapping) else None
        if not isinstance(project_id, str) or not project_id:
            raise BadRequest("Invalid input: 'tenant_id' is a required property")
        access = uuid.uuid4().hex
        cred = Credential(id=hashlib.sha256(access.encode()).hexdigest(), user_id=user_id,
                          project_id=project_id, type="ec2",
                          blob={"access": access, "secret": uuid.uuid4().hex,
                                "trust_id": None, "app_cred_id": None,
                                "access_token_id": None})

        def work(s: Session) -> Credential:
            if s.get(Project, project_id) is None:
                raise NotFound(f"Could not find project: {project_id}.")
            s.add(cred)
            return cred

        return await self.db.write(work)

    async def list_ec2(self, ctx: AuthContext, user_id: str) -> list[Credential]:
        owner_or_admin(ctx, user_id)
        await self._user(user_id)
        return await self.db.read(lambda s: list(s.exec(select(Credential).where(
            Credential.user_id == user_id, Credential.type == "ec2").order_by(
            col(Credential.created_at))).all()))

    async def get_ec2(self, ctx: AuthContext, user_id: str, access: str) -> Credential:
        owner_or_admin(ctx, user_id)
        cid = hashlib.sha256(access.encode()).hexdigest()
        found = await self.db.read(lambda s: s.get(Credential, cid))
        if found is None or found.user_id != user_id or found.type != "ec2":
            raise NotFound("Could not find credential: "
                           f"{hashlib.sha256(access.encode()).hexdigest()}.")
        return found

    async def delete_ec2(self, ctx: AuthContext, user_id: str, access: str) -> None:
        found = await self.get_ec2(ctx, user_id, access)

        def work(s: Session) -> None:
            row = s.get(Credential, found.id)
            if row is not None:
                s.delete(row)

        await self.db.write(work)


def _roles(s: Session, role_ids: list[str]) -> list[Role]:
    if not role_ids:
        return []
    return list(s.exec(select(Role).where(col(Role.id).in_(role_ids)).order_by(
        col(Role.name))).all())
