"""Alembic environment: runs migrations on the connection novalite hands it."""

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import novalite.db.models  # noqa: F401  (registers the tables)
from novalite.db.migrate import compare_type

config = context.config
target_metadata = SQLModel.metadata


def _configure(connection: Connection) -> None:
    # compare_type: autogenerate also sees MySQL's DATETIME precision.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=compare_type)


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("no connection and no sqlalchemy.url: run migrations through "
                               "novalite.db.migrate")
        engine = create_engine(url)
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
        return
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


run()
