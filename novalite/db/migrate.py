"""Schema migrations (Alembic): create or upgrade a database to the code's schema."""

from __future__ import annotations

import os

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from novalite.exceptions import ConfigError

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def _alembic_config(engine: Engine, connection=None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    cfg = _alembic_config(create_engine("sqlite://"))
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def sync(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the database to head; return (revision before, revision after).

    Raises ConfigError when the database cannot be reached or is newer than the code.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        before = current_revision(engine)
    except OperationalError as exc:
        raise ConfigError(f"cannot connect to database {safe_url}: {exc.orig}") from None
    cfg = _alembic_config(engine)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    if before is not None and before != head and script.get_revision(before) is None:
        raise ConfigError(
            f"database {safe_url} is at schema revision {before}, which this novalite "
            f"does not know (its newest is {head}): it was created by a newer novalite"
        )
    if before != head:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return before, head or ""


def tables(engine: Engine) -> list[str]:
    return inspect(engine).get_table_names()
