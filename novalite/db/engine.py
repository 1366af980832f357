"""Database access from trio: SQLModel's sync engine on worker threads.

aiosqlite and SQLAlchemy's async engine are asyncio-only (DESIGN.md), so every
database operation is a plain function ``fn(session) -> result`` that
:meth:`Database.read` or :meth:`Database.write` runs on a worker thread with
``trio.to_thread.run_sync``. Writes to SQLite are serialized by a trio lock
(SQLite has one writer; waiting in trio is cheaper than busy-looping in
SQLite). SQLite runs in WAL mode with a busy timeout so reads never block on
the writer. Results are detached from the session (``expire_on_commit=False``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
import trio
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, create_engine

from novalite.exceptions import ConfigError

log = structlog.get_logger("novalite.db")
T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``mysql+pymysql://...``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"[database] connection = {url!r}: not a database URL "
            "(expected sqlite:///PATH or mysql+pymysql://USER:PASS@HOST/DB)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "mysql":
        if parsed.drivername == "mysql":
            parsed = parsed.set(drivername="mysql+pymysql")
        try:
            import pymysql  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"[database] connection = {url!r}: MySQL needs PyMySQL "
                "(pip install 'novalite[mysql]')"
            ) from None
        query = dict(parsed.query)
        query.setdefault("charset", "utf8mb4")
        return create_engine(
            parsed.set(query=query), pool_size=20, max_overflow=20, pool_pre_ping=True,
            pool_recycle=3600,
        )
    raise ConfigError(
        f"[database] connection = {url!r}: unsupported database "
        f"{parsed.get_backend_name()!r} (expected sqlite or mysql)"
    )


class Database:
    """The one entry point to the database for trio code."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_lock = trio.Lock()
        self._limiter = trio.CapacityLimiter(16)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def _run(self, fn: Callable[[Session], T], commit: bool) -> T:
        attempts = 3
        for attempt in range(attempts):
            try:
                with self.session() as session:
                    result = fn(session)
                    if commit:
                        session.commit()
                    return result
            except OperationalError as exc:
                # Lost connections and deadlocks are retried here, never in callers.
                if attempt + 1 == attempts or not _retryable(exc):
                    raise
                log.warning("database operation retried", error=str(exc.orig))
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` on a worker thread and return its result."""
        return await trio.to_thread.run_sync(self._run, fn, False, limiter=self._limiter)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` on a worker thread and commit; serialized for SQLite."""
        if self.is_sqlite:
            async with self._write_lock:
                return await trio.to_thread.run_sync(self._run, fn, True, limiter=self._limiter)
        return await trio.to_thread.run_sync(self._run, fn, True, limiter=self._limiter)

    def close(self) -> None:
        self.engine.dispose()


def _retryable(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "args", [None])[0]
    # MySQL: 1213 deadlock, 1205 lock wait timeout, 2006/2013 server gone / lost connection.
    return code in (1213, 1205, 2006, 2013) or "database is locked" in str(exc.orig)
