"""Prebuilt Core statements, run on SQLite's own cursor.

On SQLite a statement runs in tens of microseconds, and SQLAlchemy's execution
around it (cache key, parameter and result processing objects, the result
proxy) costs several times that. A :class:`Statement` is compiled once per
dialect; on SQLite it then runs on the DBAPI cursor of the session's
connection, inside the same transaction, with the same bind and result
processors SQLAlchemy would apply (datetimes, JSON, booleans), so what is
stored and read back is identical. On other databases (MySQL/MariaDB, where
the server's round trip dominates) it runs through SQLAlchemy as usual.

Parameters are given by bind name (``bindparam("w_uuid")``; for an INSERT, the
column names of ``column_keys``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session


class Statement:
    """A Core statement with its SQLite form compiled on first use."""

    def __init__(self, stmt: Any, column_keys: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        self.column_keys = list(column_keys) if column_keys is not None else None
        self.keys = [c.key for c in getattr(stmt, "selected_columns", ())]
        self._sqlite: tuple[str, list[tuple[str, Any, Any]], list[tuple[str, Any]]] | None = None

    def _prepare(self, dialect: Any) -> tuple[str, list[tuple[str, Any, Any]],
                                              list[tuple[str, Any]]]:
        compiled = self.stmt.compile(dialect=dialect, column_keys=self.column_keys)
        binds = []
        for name in compiled.positiontup or ():
            param = compiled.binds[name]
            binds.append((name, param.type._cached_bind_processor(dialect), param.value))
        columns = []
        for column in getattr(self.stmt, "selected_columns", ()):
            columns.append((column.key, column.type._cached_result_processor(dialect, None)))
        return compiled.string, binds, columns

    def _compiled(self, conn: Any) -> tuple[str, list[tuple[str, Any, Any]],
                                            list[tuple[str, Any]]]:
        if self._sqlite is None:
            self._sqlite = self._prepare(conn.dialect)
        return self._sqlite

    @staticmethod
    def _bound(binds: list[tuple[str, Any, Any]], params: dict[str, Any]) -> list[Any]:
        out = []
        for name, process, default in binds:
            value = params[name] if name in params else default
            out.append(process(value) if process is not None else value)
        return out

    def execute(self, s: Session, params: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Run a statement that returns no rows (``params`` a list: executemany)."""
        conn = _connection(s)
        if conn.dialect.name != "sqlite":
            conn.execute(self.stmt, params)
            return
        sql, binds, _ = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            if isinstance(params, list):
                cursor.executemany(sql, [self._bound(binds, p) for p in params])
            else:
                cursor.execute(sql, self._bound(binds, params))
        finally:
            cursor.close()

    def first(self, s: Session, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row (a tuple, in the statement's column order), or None."""
        conn = _connection(s)
        if conn.dialect.name != "sqlite":
            row = conn.execute(self.stmt, params).first()
            return tuple(row) if row is not None else None
        sql, binds, columns = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(sql, self._bound(binds, params))
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if raw is None:
            return None
        return tuple(process(value) if process is not None else value
                     for (_, process), value in zip(columns, raw, strict=True))

    def first_mapping(self, s: Session, params: dict[str, Any]) -> dict[str, Any] | None:
        """The first row as ``{column key: value}``, or None."""
        row = self.first(s, params)
        return dict(zip(self.keys, row, strict=True)) if row is not None else None


def _connection(s: Session) -> Any:
    """The session's connection (kept in ``s.info`` by group-committed writes: asking
    the session for it again costs more than a statement)."""
    return s.info.get("connection") or s.connection()
