"""Who is asking, and for which request: the context every call carries.

Two objects, one per side of the token check:

* :class:`AuthContext` is what a validated token says (user, project, roles,
  expiry). The identity service produces it; HTTP handlers receive it.
* :class:`RequestContext` is what crosses the bus with every message (Nova's
  ``nova.context.RequestContext``): the request id that follows the work from
  the HTTP response header to the hypervisor, and the caller's identity
  (including the token, so that a compute host can reach the image API as
  the caller). It is plain data: :meth:`RequestContext.to_dict` and
  :meth:`RequestContext.from_dict` round-trip it through any transport.

Example::

    ctx = RequestContext.from_auth(auth, request_id)      # in the API layer
    await conductor.schedule_and_build(ctx, ...)         # an RPC client sends it
    ...
    ctx = RequestContext.from_dict(message["context"])   # an actor receives it

This module imports nothing of novalite, so every layer may depend on it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any


def new_request_id() -> str:
    """A fresh ``req-<uuid>``, as Nova's request ids look."""
    return f"req-{uuid.uuid4()}"


@dataclass
class AuthContext:
    """Who is calling: the validated token's user, project and roles."""

    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: list[str]
    expires_at: dt.datetime
    issued_at: dt.datetime
    audit_id: str
    role_ids: dict[str, str] = field(default_factory=dict)
    #: The token itself, to call other services as the caller (the image API).
    token: str = field(default="", repr=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True)
class RequestContext:
    """The context of one request as it crosses the bus: plain data only.

    ``request_id`` is never empty. A context made for the service's own work
    (periodic tasks, recovery at start) has no user: :meth:`system`.
    """

    request_id: str
    user_id: str = ""
    project_id: str = ""
    roles: tuple[str, ...] = ()
    #: The caller's token, for calls a compute host makes on the caller's behalf
    #: (image download, snapshot upload). Never logged.
    auth_token: str = field(default="", repr=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @classmethod
    def from_auth(cls, auth: AuthContext, request_id: str) -> RequestContext:
        """The context of an authenticated API request."""
        return cls(request_id=request_id, user_id=auth.user_id, project_id=auth.project_id,
                   roles=tuple(auth.roles), auth_token=auth.token)

    @classmethod
    def system(cls, request_id: str | None = None) -> RequestContext:
        """A context for the service's own work: no user, a request id of its own
        (or the one given, to keep following a request)."""
        return cls(request_id=request_id or new_request_id())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the wire; :meth:`from_dict` reads it back."""
        return {"request_id": self.request_id, "user_id": self.user_id,
                "project_id": self.project_id, "roles": list(self.roles),
                "auth_token": self.auth_token}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RequestContext:
        """Read a context sent by :meth:`to_dict`; a missing or empty request id gets a
        fresh one, so no handler ever runs without one."""
        data = data or {}
        return cls(request_id=str(data.get("request_id") or new_request_id()),
                   user_id=str(data.get("user_id") or ""),
                   project_id=str(data.get("project_id") or ""),
                   roles=tuple(str(r) for r in data.get("roles") or ()),
                   auth_token=str(data.get("auth_token") or ""))
