"""Tokens validated by an external Keystone (``[keystone_authtoken] auth_url``).

For people who already run Keystone: novalite's embedded identity is off, and
each incoming token is checked as keystonemiddleware checks it: novalite signs
in with its service credentials and asks ``GET /v3/auth/tokens`` (the caller's
token in ``X-Subject-Token``). Answers are cached for ``cache_seconds`` (never
past the token's own expiry); a Keystone that cannot be reached is a 503, not
a pass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

import httpx
import structlog

from novalite.config import Config
from novalite.context import AuthContext
from novalite.exceptions import ConfigError, NovaliteError, Unauthorized

log = structlog.get_logger("novalite.identity")


class KeystoneUnavailable(NovaliteError):
    """The identity service cannot be reached."""

    code = 503
    title = "serviceUnavailable"


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(
        dt.UTC).replace(tzinfo=None)


class ExternalIdentity:
    """Validates tokens against another Keystone; the same ``validate`` as IdentityService."""

    external = True

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.section = cfg.keystone_authtoken
        self.auth_url = self.section.auth_url.rstrip("/")
        if not self.auth_url.endswith("/v3"):
            self.auth_url += "/v3"
        self._service_token: str | None = None
        self._cache: dict[str, tuple[float, AuthContext]] = {}

    async def bootstrap(self) -> None:
        """Nothing to create here; check the service credentials once, loudly."""
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                await self._sign_in(http)
            except KeystoneUnavailable as exc:
                raise ConfigError(f"[keystone_authtoken] {exc.message}") from None
        log.info("tokens are validated by an external Keystone", auth_url=self.auth_url)

    async def _sign_in(self, http: httpx.AsyncClient) -> str:
        s = self.section
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": s.username, "password": s.password,
            "domain": {"name": s.user_domain_name}}}},
            "scope": {"project": {"name": s.project_name,
                                  "domain": {"name": s.project_domain_name}}}}}
        try:
            r = await http.post(f"{self.auth_url}/auth/tokens", json=body)
        except httpx.HTTPError as exc:
            raise KeystoneUnavailable(f"Keystone at {self.auth_url} cannot be reached: "
                                      f"{exc}") from None
        if r.status_code != 201:
            raise KeystoneUnavailable(
                f"Keystone at {self.auth_url} refused novalite's service credentials "
                f"([keystone_authtoken] username {s.username!r}): HTTP {r.status_code}")
        self._service_token = r.headers["x-subject-token"]
        return self._service_token

    async def validate(self, token: str | None) -> AuthContext:
        if not token:
            raise Unauthorized("The request you have made requires authentication.")
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now and cached[1].expires_at > _utcnow():
            return cached[1]
        async with httpx.AsyncClient(timeout=10) as http:
            for attempt in range(2):
                service = self._service_token or await self._sign_in(http)
                try:
                    r = await http.get(f"{self.auth_url}/auth/tokens", headers={
                        "X-Auth-Token": service, "X-Subject-Token": token})
                except httpx.HTTPError as exc:
                    raise KeystoneUnavailable(f"Keystone at {self.auth_url} cannot be "
                                              f"reached: {exc}") from None
                if r.status_code == 401 and attempt == 0:  # our service token expired
                    self._service_token = None
                    continue
                break
        if r.status_code in (401, 404):
            self._cache.pop(key, None)
            raise Unauthorized("The request you have made requires authentication.")
        if r.status_code != 200:
            raise KeystoneUnavailable(f"Keystone at {self.auth_url} answered HTTP "
                                      f"{r.status_code} to a token validation")
        ctx = self._context(r.json()["token"])
        ctx.token = token
        if ctx.expires_at <= _utcnow():
            raise Unauthorized("The request you have made requires authentication.")
        self._cache[key] = (now + self.section.cache_seconds, ctx)
        return ctx

    @staticmethod
    def _context(body: dict[str, Any]) -> AuthContext:
        project = body.get("project") or {}
        if not project.get("id"):
            raise Unauthorized("A project-scoped token is required.")
        roles = body.get("roles") or []
        return AuthContext(
            user_id=body["user"]["id"], user_name=body["user"].get("name", ""),
            project_id=project["id"], project_name=project.get("name", ""),
            roles=sorted(r["name"] for r in roles),
            expires_at=_parse_time(body["expires_at"]),
            issued_at=_parse_time(body.get("issued_at") or body["expires_at"]),
            audit_id=(body.get("audit_ids") or [""])[0],
            role_ids={r["name"]: r.get("id", r["name"]) for r in roles})

    def forget_cached_tokens(self) -> None:
        self._cache.clear()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
