"""The boot path's statements, on the tables rather than through the ORM.

Every boot reads its image and instance and writes its action events several
times; through the ORM each of those builds, validates and tracks objects that
are thrown away at once. These functions run the same reads and writes as SQL
statements on the session's connection (one transaction with whatever else the
write function does) and return plain rows. Values are checked against their
columns' lengths as ORM flushes check them (:func:`~novalite.db.models.check_lengths`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlmodel import Session

from novalite.db.fast import Statement
from novalite.db.models import (
    Allocation,
    Image,
    ImageRow,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    check_lengths,
    row_values,
    utcnow,
)

INSTANCES = Instance.__table__  # type: ignore[attr-defined]
IMAGES = Image.__table__  # type: ignore[attr-defined]
ACTIONS = InstanceAction.__table__  # type: ignore[attr-defined]
EVENTS = InstanceActionEvent.__table__  # type: ignore[attr-defined]
ALLOCATIONS = Allocation.__table__  # type: ignore[attr-defined]

# Statements are built once (building one costs more than running it on SQLite) and
# run on SQLite's own cursor (novalite.db.fast).
#: What a boot reads of its image (the checks of the API, the payload for compute).
_IMAGE = Statement(select(*(IMAGES.c[name] for name in (
    "id", "name", "status", "disk_format", "container_format", "size", "checksum",
    "os_hash_algo", "os_hash_value", "visibility", "owner", "min_disk", "min_ram",
    "properties", "path"))).where(IMAGES.c.id == bindparam("w_id")))
_INSTANCE = Statement(select(INSTANCES).where(INSTANCES.c.uuid == bindparam("w_uuid")))
#: The columns of an instance that state changes look at and report.
STATE_COLUMNS = ("uuid", "vm_state", "task_state", "power_state", "deleted", "metadata")
_INSTANCE_STATE = Statement(select(*(INSTANCES.c[name] for name in STATE_COLUMNS)).where(
    INSTANCES.c.uuid == bindparam("w_uuid")))
_DELETE_ALLOCATION = Statement(delete(ALLOCATIONS).where(
    ALLOCATIONS.c.instance_uuid == bindparam("w_uuid")))
_ACTION_ID = Statement(select(ACTIONS.c.id).where(
    ACTIONS.c.request_id == bindparam("w_request"),
    ACTIONS.c.instance_uuid == bindparam("w_uuid")).limit(1))
#: The action of a request on an instance, and its open (started) event of a name.
_ACTION_AND_OPEN_EVENT = Statement(select(ACTIONS.c.id, EVENTS.c.id).select_from(
    ACTIONS.outerjoin(EVENTS, (EVENTS.c.action_id == ACTIONS.c.id)
                      & (EVENTS.c.event == bindparam("w_event"))
                      & EVENTS.c.finish_time.is_(None))).where(
    ACTIONS.c.request_id == bindparam("w_request"),
    ACTIONS.c.instance_uuid == bindparam("w_uuid")).limit(1))
_STATEMENTS: dict[tuple[Any, ...], Statement] = {}


def _insert(table: Any, columns: tuple[str, ...]) -> Statement:
    """``INSERT INTO table (columns...)``, built once per column set."""
    stmt = _STATEMENTS.get((table, "insert", columns))
    if stmt is None:
        stmt = _STATEMENTS[(table, "insert", columns)] = Statement(insert(table), columns)
    return stmt


def _update(table: Any, key: str, columns: tuple[str, ...]) -> Statement:
    """``UPDATE table SET columns... WHERE key = :w_key``, built once per column set."""
    stmt = _STATEMENTS.get((table, key, columns))
    if stmt is None:
        stmt = _STATEMENTS[(table, key, columns)] = Statement(update(table).where(
            table.c[key] == bindparam("w_key")).values(
            {c: bindparam(f"v_{c}") for c in columns}))
    return stmt


def _add(s: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same columns, as row_values makes them)."""
    if rows:
        _insert(table, tuple(rows[0])).execute(s, rows)


def _set(s: Session, table: Any, key: str, key_value: Any, changes: dict[str, Any]) -> None:
    params = {f"v_{c}": v for c, v in changes.items()}
    params["w_key"] = key_value
    _update(table, key, tuple(changes)).execute(s, params)


def image(s: Session, image_id: str | None) -> ImageRow | None:
    """The ``images`` row ``image_id`` (attributes as :class:`Image`'s), or None."""
    if not image_id:
        return None
    found = _IMAGE.first_mapping(s, {"w_id": image_id})
    return ImageRow(found) if found is not None else None


def instance(s: Session, uuid: str) -> dict[str, Any] | None:
    """The ``instances`` row ``uuid`` as a mapping by column name, or None."""
    return _INSTANCE.first_mapping(s, {"w_uuid": uuid})


def instance_state(s: Session, uuid: str) -> dict[str, Any] | None:
    """The :data:`STATE_COLUMNS` of the instance ``uuid``, or None."""
    return _INSTANCE_STATE.first_mapping(s, {"w_uuid": uuid})


def update_instance(s: Session, uuid: str, changes: dict[str, Any]) -> None:
    """Set ``changes`` (by column name) on the instance ``uuid``."""
    check_lengths(INSTANCES, changes)
    _set(s, INSTANCES, "uuid", uuid, changes)


def insert_instances(s: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (from :func:`~novalite.db.models.row_values`) into ``instances``."""
    _add(s, INSTANCES, rows)


def insert_actions(s: Session, rows: list[dict[str, Any]]) -> None:
    _add(s, ACTIONS, rows)


def put_allocation(s: Session, values: dict[str, Any]) -> None:
    """Record an instance's allocation, replacing any it had."""
    row = row_values(Allocation, **values)
    _DELETE_ALLOCATION.execute(s, {"w_uuid": row["instance_uuid"]})
    _add(s, ALLOCATIONS, [row])


def record_event(s: Session, uuid: str, request_id: str, event: str, host: str | None,
                 phase: str = "finish", result: str | None = None,
                 details: str | None = None) -> None:
    """Start (``phase="start"``) or finish an event of the action ``request_id`` took
    on instance ``uuid`` (Nova's wrap_instance_event); a finish without a start
    records both at once. Nothing when the request recorded no action."""
    now = utcnow()
    if phase == "start":
        found = _ACTION_ID.first(s, {"w_request": request_id, "w_uuid": uuid})
        if found is not None:
            _add(s, EVENTS, [row_values(InstanceActionEvent, action_id=found[0], event=event,
                                        host=host, start_time=now)])
        return
    found = _ACTION_AND_OPEN_EVENT.first(s, {"w_request": request_id, "w_uuid": uuid,
                                             "w_event": event})
    if found is None:
        return
    action_id, open_id = found
    result = result or "Success"
    failed = result == "Error"
    finish = {"finish_time": now, "result": result, "traceback": details if failed else None,
              "details": details if failed else None}
    check_lengths(EVENTS, finish)
    if open_id is None:
        _add(s, EVENTS, [row_values(InstanceActionEvent, action_id=action_id, event=event,
                                    host=host, start_time=now, **finish)])
    else:
        _set(s, EVENTS, "id", open_id, finish)
    _set(s, ACTIONS, "id", action_id,
         {"updated_at": now, "message": "Error"} if failed else {"updated_at": now})
