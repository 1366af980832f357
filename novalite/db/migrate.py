"""Schema migrations (Alembic): create or upgrade a database to the code's schema.

The same migrations serve SQLite and MySQL/MariaDB. Every way a database can be
unusable at start (unreachable, refused credentials, unknown database, a schema
newer than this novalite, not a novalite database) is a :class:`ConfigError` with
a one-line message, never a traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from novalite.exceptions import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def _alembic_config(engine: Engine, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    # "%" is ConfigParser's interpolation character; a URL-encoded password has some.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["connection"] = connection
    return cfg


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    return ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))


def head_revision() -> str:
    return _script().get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def describe(exc: DBAPIError, database: str | None = None) -> str:
    """A database error as one line: the server's message and its code."""
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
        text = f"{args[1]} (MySQL error {args[0]})"
        if args[0] == 1049:  # unknown database
            text += f"; create it first: CREATE DATABASE {database} CHARACTER SET utf8mb4"
    else:
        text = str(exc.orig)
    return " ".join(text.split())


def sync(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the database to head; return (revision before, revision after).

    Raises ConfigError when the database cannot be reached or used, or is newer
    than the code.
    """
    from alembic import command

    safe_url = engine.url.set(query={}).render_as_string(hide_password=True)
    try:
        before = current_revision(engine)
        existing = set(inspect(engine).get_table_names()) if before is None else set()
    except DBAPIError as exc:
        raise ConfigError(f"cannot connect to database {safe_url}: "
                          f"{describe(exc, engine.url.database)}") from None
    script = _script()
    head = script.get_current_head() or ""
    if before is not None and before not in {s.revision for s in script.walk_revisions()}:
        raise ConfigError(
            f"database {safe_url} is at schema revision {before}, which this novalite "
            f"does not know (its newest is {head}): it was created by a newer novalite; "
            f"upgrade novalite or use another database")
    from sqlmodel import SQLModel

    import novalite.db.models  # noqa: F401  (registers the tables)

    ours = existing & set(SQLModel.metadata.tables)
    if ours:
        raise ConfigError(
            f"database {safe_url} has tables ({', '.join(sorted(ours)[:3])}, ...) but no "
            f"novalite schema revision: not a database novalite created")
    if before != head:
        cfg = _alembic_config(engine)
        try:
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except DBAPIError as exc:
            raise ConfigError(f"cannot create the schema in database {safe_url}: "
                              f"{describe(exc)}") from None
    return before, head


def tables(engine: Engine) -> list[str]:
    return inspect(engine).get_table_names()


def compare_type(context: Any, inspected_column: Any, metadata_column: Any,
                 inspected_type: Any, metadata_type: Any) -> bool | None:
    """Alembic's type comparison, plus what it misses: MySQL's DATETIME precision."""
    impl = metadata_type.dialect_impl(context.dialect)
    if hasattr(impl, "fsp") and (getattr(inspected_type, "fsp", None) or 0) != (impl.fsp or 0):
        return True
    return None  # alembic's default comparison decides


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the database's schema and the models ([] when none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import novalite.db.models  # noqa: F401

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": compare_type, "compare_server_default": True})
        return list(compare_metadata(context, SQLModel.metadata))
