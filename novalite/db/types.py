"""Column types and table options that behave the same on SQLite and MySQL/MariaDB.

Each one names the difference it removes:

- :data:`DATETIME` keeps microseconds. MySQL's plain ``DATETIME`` drops them, so a
  row changed at 12:00:00.7 would be stored as 12:00:00 and a ``changes-since``
  of 12:00:00.5 would miss it.
- :data:`LONG_TEXT` holds up to 16 MiB on MySQL (``MEDIUMTEXT``); MySQL's ``TEXT``
  stops at 64 KiB, where SQLite has no practical limit.
- :data:`BIG_INTEGER` for byte counts: MySQL's ``INT`` stops at 2 GiB.
- :data:`DOUBLE`: MySQL's ``FLOAT`` is single precision (1.1 reads back as
  1.100000023841858); SQLite's REAL is a double.
- :func:`mysql_table_options`: utf8mb4 with a binary, no-pad collation, so names
  compare as on SQLite (``"Web" != "web"``, ``"web " != "web"``) in lookups and
  in unique constraints alike. The server's default (``utf8mb4_general_ci``)
  would make them equal.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

_MYSQL = ("mysql", "mariadb")

DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)
BIG_INTEGER = sa.BigInteger()
DOUBLE: sa.Double[float] = sa.Double()

#: Constraint names, identical on every backend (migrations can drop them by name).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def mysql_collation(dialect: sa.engine.Dialect) -> str:
    """The binary, no-pad utf8mb4 collation of this server (trailing spaces count)."""
    version = tuple(dialect.server_version_info or ())
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin" if version >= (10, 2, 2) else "utf8mb4_bin"
    return "utf8mb4_0900_bin" if version >= (8, 0, 17) else "utf8mb4_bin"


def mysql_table_options(bind: sa.engine.Connection) -> dict[str, Any]:
    """``create_table`` keyword arguments for every table (ignored by other backends)."""
    if bind.dialect.name not in _MYSQL:
        return {}
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
            "mysql_collate": mysql_collation(bind.dialect)}
