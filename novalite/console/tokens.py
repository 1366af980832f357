"""Console tokens, as nova-consoleauth keeps them (Nova's ``ConsoleAuthToken``).

A token is 32 random bytes (URL-safe base64), handed to the user once inside the
console URL. The database keeps only its SHA-256, with the instance, the compute host,
the console type, where the proxy connects (the host's console relay), the base URL
it was issued for, and when it expires (``[consoleauth] token_ttl`` seconds later).
:func:`validate` refuses an unknown or expired token, and a token whose instance is
deleted or being deleted, before the proxy opens anything. A token can be used until
it expires (noVNC reconnects with the same URL). Tokens of an instance are deleted
when it is deleted (:func:`delete_for_instance`); expired ones whenever a new token
is issued (:func:`delete_expired`).

Every function takes an open SQLModel session (run them inside ``db.read``/``db.write``).
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import delete
from sqlmodel import Session, select

from novalite import states
from novalite.console.relay import token_hash
from novalite.db.models import ConsoleAuthToken, Instance

__all__ = ["ConsoleAuthToken", "add", "delete_expired", "delete_for_instance", "new_token",
           "token_hash", "validate"]


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


def add(s: Session, token: str, *, instance_uuid: str, compute_host: str, console_type: str,
        host: str, port: int | None, access_url_base: str, ttl: int,
        internal_access_path: str | None = None) -> ConsoleAuthToken:
    """Store ``token`` (hashed) for the console it opens; expires ``ttl`` seconds from now."""
    delete_expired(s)
    row = ConsoleAuthToken(token_hash=token_hash(token), console_type=console_type, host=host,
                           port=port, internal_access_path=internal_access_path,
                           access_url_base=access_url_base, instance_uuid=instance_uuid,
                           compute_host=compute_host, expires=int(time.time()) + ttl)
    s.add(row)
    return row


def validate(s: Session, token: str) -> ConsoleAuthToken | None:
    """The token's row when it may be used now, else None: unknown, expired, or its
    instance deleted (or being deleted)."""
    if not token:
        return None
    row = s.exec(select(ConsoleAuthToken).where(
        ConsoleAuthToken.token_hash == token_hash(token))).first()
    if row is None or row.expires <= time.time():
        return None
    inst = s.exec(select(Instance).where(Instance.uuid == row.instance_uuid)).first()
    if inst is None or inst.deleted or inst.task_state == states.DELETING:
        return None
    return row


def delete_for_instance(s: Session, instance_uuid: str) -> None:
    """Drop every token of an instance (deleted, rebuilt, moved)."""
    s.execute(delete(ConsoleAuthToken).where(
        ConsoleAuthToken.instance_uuid == instance_uuid))  # type: ignore[arg-type]


def delete_expired(s: Session) -> None:
    """Drop the tokens that expired."""
    s.execute(delete(ConsoleAuthToken).where(
        ConsoleAuthToken.expires <= int(time.time())))  # type: ignore[arg-type]
