"""The embedded Keystone v3 subset: users, projects, roles, password auth and tokens.

Passwords are stored as scrypt hashes; tokens are random strings of which only
the sha256 is stored. Validated tokens are cached in memory (revocation drops
them from the cache at once, so it takes effect immediately).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import os
import secrets
import time
import uuid
from typing import Any

import structlog
import trio
from sqlmodel import Session, col, select

from novalite.config import Config
from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import (
    ApplicationCredential,
    Project,
    Role,
    RoleAssignment,
    Token,
    User,
    utcnow,
)
from novalite.exceptions import NotFound, Unauthorized

log = structlog.get_logger("novalite.identity")

DEFAULT_DOMAIN = {"id": "default", "name": "Default"}
#: Roles made at bootstrap: Keystone's defaults (with ``manager``, between ``admin`` and
#: ``member``), and ``service`` for service users (it may validate others' tokens, as
#: Keystone's ``identity:validate_token`` allows).
ROLES = ("admin", "manager", "member", "reader", "service")


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(got.hex(), digest)


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown users' passwords against: the same work as a real one."""
    return hash_password(secrets.token_urlsafe(16))


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def isotime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class IdentityService:
    """Authentication and token validation against the database."""

    def __init__(self, db: Database, cfg: Config) -> None:
        self.db = db
        self.cfg = cfg
        self._cache: dict[str, AuthContext] = {}
        #: audit id -> the application credential a token was issued for (token bodies).
        self._app_creds: dict[str, dict[str, Any]] = {}
        #: user id -> (failed logins in a row, monotonic time of the last one).
        self._failures: dict[str, tuple[int, float]] = {}
        #: Password hashes at once (scrypt: 16 MiB and ~0.1 s of a core each).
        self._hashing = trio.CapacityLimiter(max(2, os.cpu_count() or 2))

    # -- bootstrap -------------------------------------------------------------
    async def bootstrap(self) -> str | None:
        """Create roles and the admin user/project if missing.

        Returns the admin password when it was generated now (first start, none
        configured), else None. A configured password always replaces the stored one.
        """
        configured = self.cfg.identity.admin_password
        await trio.to_thread.run_sync(_dummy_hash)  # made now, not on a first bad login

        def work(s: Session) -> str | None:
            roles = {r.name: r for r in s.exec(select(Role)).all()}
            for name in ROLES:
                if name not in roles:
                    roles[name] = Role(name=name)
                    s.add(roles[name])
            project = s.exec(select(Project).where(Project.name == "admin")).first()
            if project is None:
                project = Project(name="admin", description="Bootstrap project")
                s.add(project)
            user = s.exec(select(User).where(User.name == "admin")).first()
            generated = None
            if user is None:
                password = configured or secrets.token_urlsafe(16)
                generated = None if configured else password
                user = User(name="admin", password_hash=hash_password(password),
                            default_project_id=project.id)
                s.add(user)
            elif configured and not check_password(configured, user.password_hash):
                user.password_hash = hash_password(configured)
                s.add(user)
            s.flush()
            have = s.exec(
                select(RoleAssignment).where(
                    RoleAssignment.user_id == user.id, RoleAssignment.project_id == project.id
                )
            ).all()
            if not any(a.role_id == roles["admin"].id for a in have):
                s.add(RoleAssignment(user_id=user.id, project_id=project.id,
                                     role_id=roles["admin"].id))
            return generated

        return await self.db.write(work)

    # -- authentication --------------------------------------------------------
    async def authenticate(
        self, user_name: str | None, user_id: str | None, user_domain: str | None,
        password: str, project_name: str | None, project_id: str | None,
        project_domain: str | None,
    ) -> tuple[str, AuthContext]:
        """Check a password and issue a project-scoped token: (token, context).

        An unknown user costs the same password hash as a known one (a user name cannot
        be told from its absence by timing); ``[identity] lockout_failure_attempts``
        failures in a row lock the account for ``lockout_duration`` seconds, during
        which even the right password is refused with the same 401.
        """
        ttl = self.cfg.identity.token_expiration
        refused = Unauthorized("The request you have made requires authentication.")

        def find(s: Session) -> tuple[str, str, bool] | None:
            q = select(User)
            q = q.where(User.id == user_id) if user_id else q.where(User.name == user_name)
            user = s.exec(q).first()
            return None if user is None else (user.id, user.password_hash, user.enabled)

        found = await self.db.read(find)
        # Hashed off the event loop and outside any database transaction.
        good = await trio.to_thread.run_sync(
            check_password, password, found[1] if found else _dummy_hash(),
            limiter=self._hashing)
        if found is None:
            raise refused
        uid = found[0]
        if self._locked(uid):
            log.warning("login refused: account locked", user_id=uid,
                        lockout_duration=self.cfg.identity.lockout_duration)
            raise refused
        if not good or not found[2] or _domain_mismatch(user_domain):
            self._failed_login(uid)
            raise refused
        self._failures.pop(uid, None)

        def work(s: Session) -> tuple[str, AuthContext]:
            user = s.get(User, uid)
            if user is None or not user.enabled:
                raise refused
            if project_id or project_name:
                pq = select(Project)
                pq = (pq.where(Project.id == project_id) if project_id
                      else pq.where(Project.name == project_name))
                project = s.exec(pq).first()
                if project is None or _domain_mismatch(project_domain):
                    raise Unauthorized(f"Could not find project: {project_id or project_name}.")
            else:
                project = s.get(Project, user.default_project_id or "")
                if project is None:
                    raise Unauthorized("An unscoped token is not supported: name a project.")
            roles = s.exec(
                select(Role).join(RoleAssignment, col(RoleAssignment.role_id) == Role.id).where(
                    RoleAssignment.user_id == user.id, RoleAssignment.project_id == project.id
                )
            ).all()
            if not roles:
                raise Unauthorized(
                    f"User {user.id} has no access to project {project.id}"
                )
            token = secrets.token_urlsafe(32)
            now = utcnow()
            row = Token(id=_token_id(token), user_id=user.id, project_id=project.id,
                        issued_at=now, expires_at=now + dt.timedelta(seconds=ttl),
                        audit_id=uuid.uuid4().hex[:22])
            s.add(row)
            ctx = AuthContext(user.id, user.name, project.id, project.name,
                              sorted(r.name for r in roles), row.expires_at, now, row.audit_id,
                              {r.name: r.id for r in roles})
            return token, ctx

        token, ctx = await self.db.write(work)
        ctx.token = token
        self._cache[_token_id(token)] = ctx
        return token, ctx

    async def authenticate_app_cred(self, ref: dict[str, Any], secret: str) -> tuple[str,
                                                                                   AuthContext]:
        """Check an application credential's secret and issue a token scoped to its
        project with its roles (those the user still holds there): (token, context).

        ``ref`` names the credential by ``id``, or by ``name`` and ``user`` (id or name).
        """
        ttl = self.cfg.identity.token_expiration

        def work(s: Session) -> tuple[str, AuthContext, ApplicationCredential]:
            q = select(ApplicationCredential)
            if ref.get("id"):
                q = q.where(ApplicationCredential.id == str(ref["id"]))
            else:
                user_ref = ref.get("user") or {}
                uq = select(User)
                uq = (uq.where(User.id == user_ref["id"]) if user_ref.get("id")
                      else uq.where(User.name == str(user_ref.get("name"))))
                owner = s.exec(uq).first()
                if owner is None:
                    raise Unauthorized("The request you have made requires authentication.")
                q = q.where(ApplicationCredential.user_id == owner.id,
                            ApplicationCredential.name == str(ref.get("name")))
            cred = s.exec(q).first()
            if cred is None or not check_password(secret, cred.secret_hash):
                raise Unauthorized("The request you have made requires authentication.")
            now = utcnow()
            if cred.expires_at is not None and cred.expires_at <= now:
                raise Unauthorized("The request you have made requires authentication.")
            user = s.get(User, cred.user_id)
            project = s.get(Project, cred.project_id)
            if user is None or not user.enabled or project is None or not project.enabled:
                raise Unauthorized("The request you have made requires authentication.")
            roles = [r for r in _roles_of(s, user.id, project.id) if r.id in cred.roles]
            if not roles:
                raise Unauthorized(f"User {user.id} has no access to project {project.id}")
            token = secrets.token_urlsafe(32)
            expires = now + dt.timedelta(seconds=ttl)
            if cred.expires_at is not None:
                expires = min(expires, cred.expires_at)
            row = Token(id=_token_id(token), user_id=user.id, project_id=project.id,
                        issued_at=now, expires_at=expires, audit_id=uuid.uuid4().hex[:22],
                        app_cred_id=cred.id)
            s.add(row)
            ctx = AuthContext(user.id, user.name, project.id, project.name,
                              sorted(r.name for r in roles), expires, now, row.audit_id,
                              {r.name: r.id for r in roles})
            return token, ctx, cred

        token, ctx, cred = await self.db.write(work)
        ctx.token = token
        self._app_creds[ctx.audit_id] = _app_cred_ref(cred)
        self._cache[_token_id(token)] = ctx
        return token, ctx

    def issued_by_app_cred(self, ctx: AuthContext) -> dict[str, Any] | None:
        """``{"id", "name", "restricted"}`` of the application credential ``ctx``'s token
        was issued for; None for a password token."""
        return self._app_creds.get(ctx.audit_id)
    def _locked(self, user_id: str) -> bool:
        attempts = self.cfg.identity.lockout_failure_attempts
        count, last = self._failures.get(user_id, (0, 0.0))
        if not attempts or count < attempts:
            return False
        if time.monotonic() - last < self.cfg.identity.lockout_duration:
            return True
        self._failures.pop(user_id, None)  # the lockout expired: a fresh start
        return False

    def _failed_login(self, user_id: str) -> None:
        """Count a failure (failures older than ``lockout_duration`` are forgotten)."""
        count, last = self._failures.get(user_id, (0, 0.0))
        now = time.monotonic()
        if now - last >= self.cfg.identity.lockout_duration:
            count = 0
        self._failures[user_id] = (count + 1, now)
        attempts = self.cfg.identity.lockout_failure_attempts
        if attempts and count + 1 == attempts:
            log.warning("account locked after failed logins", user_id=user_id,
                        attempts=attempts, lockout_duration=self.cfg.identity.lockout_duration)

    async def validate(self, token: str | None) -> AuthContext:
        """The context of a valid token; Unauthorized when missing, unknown, expired or revoked."""
        if not token:
            raise Unauthorized("The request you have made requires authentication.")
        tid = _token_id(token)
        ctx = self._cache.get(tid)
        if ctx is None:
            loaded = await self.db.read(lambda s: _load_token(s, tid))
            if loaded is None:
                raise Unauthorized("The request you have made requires authentication.")
            ctx, cred = loaded
            if cred is not None:
                self._app_creds[ctx.audit_id] = _app_cred_ref(cred)
            ctx.token = token
            self._cache[tid] = ctx
        if ctx.expires_at <= utcnow():
            self._cache.pop(tid, None)
            raise Unauthorized("The request you have made requires authentication.")
        return ctx

    def forget_cached_tokens(self) -> None:
        """Drop every cached validation: the next request re-reads roles and revocations."""
        self._cache.clear()

    async def revoke(self, token: str) -> None:
        tid = _token_id(token)
        self._cache.pop(tid, None)

        def work(s: Session) -> None:
            row = s.get(Token, tid)
            if row is None or row.revoked:
                raise NotFound("Could not find token.")
            row.revoked = True
            s.add(row)

        await self.db.write(work)

    # -- views -----------------------------------------------------------------
    def catalog(self, project_id: str = "") -> list[dict[str, Any]]:
        base = self.cfg.public_url
        region = self.cfg.identity.region

        def entry(kind: str, name: str, url: str) -> dict[str, Any]:
            sid = uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/{kind}").hex
            return {
                "type": kind, "name": name, "id": sid,
                "endpoints": [{
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/{kind}/public").hex,
                    "interface": "public", "region_id": region, "region": region, "url": url,
                }],
            }

        return [
            entry("identity", "keystone", f"{base}/identity"),
            entry("compute", "nova", f"{base}/compute/v2.1"),
            entry("image", "glance", (self.cfg.glance.api_servers or [f"{base}/image"])[0]),
            # Cinder's URLs name the project (Keystone fills in $(project_id)s).
            *(entry(kind, "cinder", f"{base}/volume/v3" + (f"/{project_id}" if project_id
                                                            else ""))
              for kind in ("volumev3", "block-storage")),
            entry("network", "neutron", f"{base}/network"),
        ]

    def token_body(self, ctx: AuthContext) -> dict[str, Any]:
        app_cred = self.issued_by_app_cred(ctx)
        body = {
            "token": {
                "methods": ["application_credential" if app_cred else "password"],
                "user": {"id": ctx.user_id, "name": ctx.user_name, "domain": DEFAULT_DOMAIN,
                         "password_expires_at": None},
                "project": {"id": ctx.project_id, "name": ctx.project_name,
                            "domain": DEFAULT_DOMAIN},
                "roles": [{"id": ctx.role_ids.get(r, r), "name": r} for r in ctx.roles],
                "audit_ids": [ctx.audit_id],
                "issued_at": isotime(ctx.issued_at),
                "expires_at": isotime(ctx.expires_at),
                "is_domain": False,
                "catalog": self.catalog(ctx.project_id),
            }
        }
        if app_cred:
            body["token"]["application_credential"] = dict(app_cred)
        return body


def _domain_mismatch(domain: str | None) -> bool:
    return domain is not None and domain.lower() not in ("default",)


def _roles_of(s: Session, user_id: str, project_id: str) -> list[Role]:
    return list(s.exec(
        select(Role).join(RoleAssignment, col(RoleAssignment.role_id) == Role.id).where(
            RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id
        )
    ).all())


def _app_cred_ref(cred: ApplicationCredential) -> dict[str, Any]:
    return {"id": cred.id, "name": cred.name, "restricted": not cred.unrestricted}


def _load_token(s: Session, tid: str
                ) -> tuple[AuthContext, ApplicationCredential | None] | None:
    row = s.get(Token, tid)
    if row is None or row.revoked:
        return None
    user = s.get(User, row.user_id)
    project = s.get(Project, row.project_id)
    if user is None or project is None or not user.enabled:
        return None
    roles = _roles_of(s, user.id, project.id)
    cred = None
    if row.app_cred_id is not None:  # the credential's roles only, while it exists
        cred = s.get(ApplicationCredential, row.app_cred_id)
        if cred is None:
            return None
        roles = [r for r in roles if r.id in cred.roles]
    if not roles or not project.enabled:
        return None  # access taken away since the token was issued
    return AuthContext(user.id, user.name, project.id, project.name,
                       sorted(r.name for r in roles), row.expires_at, row.issued_at,
                       row.audit_id, {r.name: r.id for r in roles}), cred
