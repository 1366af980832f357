"""A private on-disk cache of Keystone tokens, so each `nova` command need not log in.

Logging in costs a password hash on the server (scrypt, ~60 ms) plus a round
trip, a third of `nova list`'s budget. A token is a bearer credential, so the
cache is kept as carefully as ``clouds.yaml`` itself:

* one file per identity under ``$XDG_CACHE_HOME/novalite/tokens`` (default
  ``~/.cache``), the directory 0700 and each file 0600, written to a new
  private temporary file and renamed into place;
* a file is used only if the current user owns it and nobody else can read it;
* the file name is a SHA-256 over the auth URL, user, project, domains, region
  **and password**, so a changed or wrong password never finds a token;
* an entry is used only until a minute before the token expires, and a 401
  answered to a cached token drops the entry and logs in again (the client's
  job);
* ``NOVALITE_TOKEN_CACHE=0`` turns it off.

An entry also remembers the catalog and the negotiated compute microversion
(the client negotiates again if the server answers 406 to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from novalite.cli.credentials import Credentials

SWITCH = "NOVALITE_TOKEN_CACHE"
EXPIRY_MARGIN = timedelta(seconds=60)


def enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in {"0", "false", "no", "off"}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "novalite" / "tokens"


def _key(creds: Credentials) -> str:
    identity = [
        creds.auth_url.rstrip("/"),
        creds.username,
        creds.user_domain_name,
        creds.user_domain_id,
        creds.project_name,
        creds.project_domain_name,
        creds.project_domain_id,
        creds.region_name,
        creds.password,
    ]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


def _path(creds: Credentials) -> Path:
    return cache_dir() / f"{_key(creds)}.json"


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def _expires(entry: dict[str, Any]) -> datetime | None:
    try:
        expires = datetime.fromisoformat(str(entry["expires_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return expires if expires.tzinfo else expires.replace(tzinfo=UTC)


def load(creds: Credentials) -> dict[str, Any] | None:
    """The cached entry for ``creds`` (token, expires_at, catalog, project_id, microversion)."""
    if not enabled():
        return None
    path = _path(creds)
    try:
        with path.open("rb") as handle:
            if not (_private(os.fstat(handle.fileno())) and _private(path.parent.stat())):
                return None
            entry = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict):
        return None
    expires = _expires(entry)
    if expires is None or expires - EXPIRY_MARGIN <= datetime.now(UTC) or not entry.get("token"):
        return None
    return entry


def save(creds: Credentials, entry: dict[str, Any]) -> None:
    """Store ``entry`` for ``creds``; any failure just means no caching."""
    if not enabled() or _expires(entry) is None:
        return
    directory = cache_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(directory.stat()):
            return
    except OSError:
        return
    temporary = directory / f".{_key(creds)}.{os.getpid()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle)
        os.replace(temporary, _path(creds))
    except OSError:
        temporary.unlink(missing_ok=True)


def forget(creds: Credentials) -> None:
    """Drop the entry for ``creds`` (its token was refused)."""
    try:
        _path(creds).unlink()
    except OSError:
        return
