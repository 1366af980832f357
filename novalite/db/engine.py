"""Database access from trio: SQLModel's sync engine on worker threads.

aiosqlite and SQLAlchemy's async engine are asyncio-only (DESIGN.md), so every
database operation is a plain function ``fn(session) -> result`` that
:meth:`Database.read` or :meth:`Database.write` runs on a worker thread with
``trio.to_thread.run_sync``. Results are detached from the session
(``expire_on_commit=False``).

Writes behave the same on both backends: each write function runs as if alone.

- SQLite has one writer: writes are serialized by a trio lock (waiting in trio is
  cheaper than busy-looping in SQLite), in WAL mode with a busy timeout so reads
  never block on the writer. Writes are group-committed: the task that gets the
  lock runs every write queued behind it, in order, in one transaction on one
  worker-thread hop; a function that raises gets its exception and the others
  run again without it, so each commits as if alone or not at all. Under load
  that is one hop and one commit for dozens of writes.
- MySQL/MariaDB runs writes concurrently, at ``SERIALIZABLE`` isolation: a write
  that reads, then writes what it read ("the lowest free address", "is this state
  still expected") takes shared locks on what it read, so two such writes that
  would interleave deadlock instead, and the loser is run again from the start,
  seeing the winner's rows. Reads keep the default ``REPEATABLE READ`` snapshot.

Deadlocks, lock wait timeouts and lost connections (a restarted server) are
retried here, and only here: the whole function runs again in a new transaction,
so it must only touch the session it is given. Connections are checked before
use (``pool_pre_ping``), so a pool of dead connections after a server restart
costs one ping each, not an error. A function that still cannot reach the database
after its retries raises :class:`~novalite.exceptions.DatabaseUnavailable` (the API
answers 503); :attr:`Database.outage_started` says since when, and the callbacks in
:attr:`Database.on_recovered` run once the database answers again (the conductor
reconciles what the outage left behind).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import structlog
import trio
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlmodel import Session, create_engine

from novalite import metrics
from novalite.exceptions import ConfigError, DatabaseUnavailable, OutOfSpace

log = structlog.get_logger("novalite.db")
T = TypeVar("T")

#: Worker threads running database functions at once; the connection pool matches it.
WORKER_THREADS = 16
#: Most write functions one SQLite transaction runs (group commit).
BATCH = 128
#: Attempts at one database function before its error reaches the caller.
ATTEMPTS = 10
EXPECTED = "expected sqlite:///PATH or mysql+pymysql://USER:PASS@HOST[:PORT]/DB"
# MySQL error codes worth running a function again for.
_DEADLOCK, _LOCK_WAIT_TIMEOUT = 1213, 1205
# Gone away, lost, out of sync, killed; and can't connect (a server restarting: the
# retries' back-off, about two seconds in all, rides over a quick restart).
_LOST = {2006, 2013, 2014, 2045, 2055, 1927, 2002, 2003}
#: Drivers whose own (unwrapped) errors retry_reason reads.
_DRIVERS = {"pymysql", "MySQLdb", "sqlite3"}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Transactions are begun by SQLAlchemy (_sqlite_begin), not by the sqlite3 module's
    # implicit BEGIN before the first DML: reads run in a transaction too (one
    # snapshot), and a write takes the write lock when it begins.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writes take the write lock up front: a deferred transaction that reads, then
    # writes, fails at once (SQLITE_BUSY_SNAPSHOT) if another process wrote between.
    immediate = conn.get_execution_options().get("sqlite_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _mysql_session(dbapi_conn: Any, _record: Any) -> None:
    # TRADITIONAL (as oslo.db sets it): refuse bad values instead of storing them mangled.
    cur = dbapi_conn.cursor()
    cur.execute("SET SESSION sql_mode = 'TRADITIONAL'")
    cur.close()


def _bad_url(url: str, why: str) -> ConfigError:
    return ConfigError(f"[database] connection = {_hide_password(url)!r}: {why}")


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: hide everything between "user:" and the last "@"
        return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


#: JSON columns (flavor snapshot, metadata, addresses, properties) through orjson:
#: the same documents, read and written several times faster than by the json module.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps,
                              "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``mysql+pymysql://...``).

    Raises :class:`ConfigError` for a URL that cannot work, before any connection.
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port raises here
    except (ArgumentError, ValueError):
        raise _bad_url(url, f"not a database URL ({EXPECTED})") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            directory = os.path.dirname(os.path.abspath(parsed.database))
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise _bad_url(url, f"cannot create {directory}: {exc.strerror}") from None
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=WORKER_THREADS, max_overflow=4, **JSON_CODEC)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend in ("mysql", "mariadb"):
        return _mysql_engine(url, parsed)
    raise _bad_url(url, f"unsupported database {backend!r} ({EXPECTED})")


def _mysql_engine(url: str, parsed: URL) -> Engine:
    if "+" not in parsed.drivername:  # mysql:// means PyMySQL here, as in nova.conf
        parsed = parsed.set(drivername=f"{parsed.get_backend_name()}+pymysql")
    if not parsed.database:
        raise _bad_url(url, f"no database name ({EXPECTED})")
    if parsed.get_driver_name() == "pymysql":
        try:
            import pymysql  # noqa: F401
        except ImportError:
            raise _bad_url(url, "MySQL needs PyMySQL (pip install 'novalite[mysql]')") from None
    query = dict(parsed.query)
    query.setdefault("charset", "utf8mb4")
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in query:
        connect_args["connect_timeout"] = 10
    try:
        engine = create_engine(
            parsed.set(query=query), connect_args=connect_args, pool_size=WORKER_THREADS,
            max_overflow=4, pool_pre_ping=True, pool_recycle=3600, pool_timeout=60,
            **JSON_CODEC)
    except (ImportError, NoSuchModuleError) as exc:
        raise _bad_url(url, f"cannot load its database driver: {exc}") from None
    event.listen(engine, "connect", _mysql_session)
    return engine


class _Write:
    """A queued write function and, once its batch ran, its result or error."""

    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[Session], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = trio.Event()


class Database:
    """The one entry point to the database for trio code."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_engine = self.engine.execution_options(sqlite_immediate=True) \
            if self.is_sqlite else self.engine.execution_options(isolation_level="SERIALIZABLE")
        self._write_lock = trio.Lock()
        self._queue: list[_Write] = []
        self._limiter = trio.CapacityLimiter(WORKER_THREADS)
        #: When (``time.time()``) the database stopped answering; None while it answers.
        self.outage_started: float | None = None
        #: Called with the outage's start once the database answers again (trio side).
        self.on_recovered: list[Callable[[float], None]] = []

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        """``exc`` (out of retries for a lost connection or a locked database) as the
        error the API answers 503; the outage starts now if it had not."""
        if self.outage_started is None:
            self.outage_started = time.time()
            log.error("database unavailable", error=str(getattr(exc, "orig", exc)))
        error = DatabaseUnavailable("The database is not available; try again later.")
        error.__cause__ = exc
        return error

    def _answered(self) -> None:
        """A function ran to the end: an outage, if there was one, is over."""
        started, self.outage_started = self.outage_started, None
        if started is not None:
            log.warning("database available again", seconds=round(time.time() - started, 1))
            for callback in list(self.on_recovered):
                callback(started)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker thread; a lost database is DatabaseUnavailable."""
        try:
            result = await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except Exception as exc:
            if retry_reason(exc) is None:
                raise
            raise self._unavailable(exc) from exc
        self._answered()
        return result

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def _run(self, fn: Callable[[Session], T], commit: bool) -> T:
        engine = self._write_engine if commit else self.engine
        for attempt in range(1, ATTEMPTS + 1):
            with Session(engine, expire_on_commit=False) as session:
                try:
                    result = fn(session)
                    if commit:
                        session.commit()
                    return result
                except Exception as exc:
                    why = retry_reason(exc)
                    if why is None or attempt == ATTEMPTS:
                        if (full := out_of_space(exc)) is not exc:
                            raise full from exc
                        raise
                    error = str(getattr(exc, "orig", exc))
                    # Forget this attempt's new rows, so the next attempt can add them again.
                    with contextlib.suppress(Exception):
                        session.rollback()
            _back_off(attempt, why, error)
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` on a worker thread and return its result."""
        return await self._thread(self._run, fn, False)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` on a worker thread and commit, as if no other write ran."""
        if not self.is_sqlite:
            return await self._thread(self._run, fn, True)
        job = _Write(fn)
        self._queue.append(job)
        try:
            async with self._write_lock:
                if not job.done.is_set():  # else an earlier holder ran it in its batch
                    batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                    try:
                        await trio.to_thread.run_sync(self._run_batch, batch,
                                                      limiter=self._limiter)
                        lost = [other for other in batch if _lost(other.error)]
                        for other in lost:
                            other.error = self._unavailable(other.error)  # type: ignore[arg-type]
                        if not lost:
                            self._answered()
                    except Exception as exc:  # nothing of the batch committed
                        for other in batch:
                            if other.error is None:
                                other.error = exc
                    finally:
                        for other in batch:
                            other.done.set()
        except trio.Cancelled:
            if job in self._queue:  # never started: it will not run
                self._queue.remove(job)
            else:  # taken into a batch: it runs to the end, as a started write does
                with trio.CancelScope(shield=True):
                    await job.done.wait()
            raise
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _run_batch(self, batch: list[_Write]) -> None:
        """Run ``batch`` in order in one transaction and commit (worker thread).

        A function that raises gets its exception; the transaction is rolled back
        and the functions after it run again without it, from the start, so what
        commits is exactly the others, in order, as if the failed one never ran.
        """
        pending = list(batch)
        while pending:
            failed = self._run_all(pending)
            if failed is None:
                return
            pending = [job for job in pending if job is not failed and job.error is None]

    def _run_all(self, jobs: list[_Write]) -> _Write | None:
        """Run ``jobs`` and commit; the first job that raised (nothing committed), or None."""
        for attempt in range(1, ATTEMPTS + 1):
            with Session(self._write_engine, expire_on_commit=False) as session:
                results = []
                try:
                    session.info["connection"] = session.connection()  # BEGIN IMMEDIATE
                    for job in jobs:
                        try:
                            results.append(job.fn(session))
                            session.flush()  # its errors are its own, not the next one's
                        except Exception as exc:
                            if retry_reason(exc) is not None:
                                raise  # all of them again
                            job.error = out_of_space(exc)
                            return job
                        # Each function's objects are its own, as with a session of its own.
                        session.expunge_all()
                    session.commit()
                except Exception as exc:
                    why = retry_reason(exc)
                    if why is None and not isinstance(exc, DBAPIError):
                        raise
                    if why is None or attempt == ATTEMPTS:
                        for job in jobs:
                            job.error = out_of_space(exc)
                        return None
                    error = str(getattr(exc, "orig", exc))
                    with contextlib.suppress(Exception):
                        session.rollback()
                else:
                    for job, result in zip(jobs, results, strict=True):
                        job.result = result
                    return None
            _back_off(attempt, why, error, batch=len(jobs))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()


def _back_off(attempt: int, why: str, error: str, **extra: Any) -> None:
    """Log a retry and wait before it (on a worker thread: trio's loop is not blocked)."""
    delay = min(0.5, 0.005 * 2 ** attempt) * random.uniform(0.5, 1.5)
    metrics.DB_RETRIES.labels(why).inc()
    log.warning("database operation retried", reason=why, attempt=attempt, error=error,
                delay=round(delay, 3), **extra)
    time.sleep(delay)


#: "The table is full" and "disk full" (MySQL/MariaDB: ER_RECORD_FILE_FULL, ER_DISK_FULL).
_FULL = frozenset({1114, 1021})


def out_of_space(exc: BaseException) -> BaseException:
    """:class:`~novalite.exceptions.OutOfSpace` (a 503 in the API's body) when ``exc``
    says the disk is full, else ``exc`` itself."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in _FULL or "database or disk is full" in str(orig):
        log.error("database write failed: disk full", error=str(orig))
        return OutOfSpace("The service is out of disk space: the database cannot record "
                          "this request. Try again later.")
    return exc


def _lost(exc: BaseException | None) -> BaseException | None:
    """``exc`` when it is a database error worth retrying (the database is unavailable)."""
    return exc if exc is not None and retry_reason(exc) is not None else None


def retry_reason(exc: BaseException) -> str | None:
    """Why ``exc`` is worth running the function again for, or None. ``exc`` is
    SQLAlchemy's wrapper, or a driver's own error where SQLAlchemy does not wrap one
    (PyMySQL's, raised setting a connection's isolation level on checkout)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return "lost connection"
        orig: Any = exc.orig
    elif type(exc).__module__.partition(".")[0] in _DRIVERS:
        orig = exc
    else:
        return None
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code == _DEADLOCK:
        return "deadlock"
    if code == _LOCK_WAIT_TIMEOUT:
        return "lock wait timeout"
    if code in _LOST:
        return "lost connection"
    if "database is locked" in str(orig):  # SQLite, past its busy timeout
        return "database locked"
    return None
