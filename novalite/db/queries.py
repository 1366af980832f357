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

from novalite.db.models import (
    Allocation,
    Image,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    Row,
    check_lengths,
    row_values,
    utcnow,
)

INSTANCES = Instance.__table__  # type: ignore[attr-defined]
IMAGES = Image.__table__  # type: ignore[attr-defined]
ACTIONS = InstanceAction.__table__  # type: ignore[attr-defined]
EVENTS = InstanceActionEvent.__table__  # type: ignore[attr-defined]
ALLOCATIONS = Allocation.__table__  # type: ignore[attr-defined]

# Statements are built once: building one costs more than running it on SQLite.
#: What a boot reads of its image (the checks of the API, the payload for compute).
_IMAGE = select(*(IMAGES.c[name] for name in (
    "id", "name", "status", "disk_format", "container_format", "size", "checksum",
    "os_hash_algo", "os_hash_value", "visibility", "owner", "min_disk", "min_ram",
    "properties", "path"))).where(IMAGES.c.id == bindparam("w_id"))
_INSTANCE = select(INSTANCES).where(INSTANCES.c.uuid == bindparam("w_uuid"))
#: The columns of an instance that state changes look at and report.
STATE_COLUMNS = ("uuid", "vm_state", "task_state", "power_state", "deleted", "metadata")
_INSTANCE_STATE = select(*(INSTANCES.c[name] for name in STATE_COLUMNS)).where(
    INSTANCES.c.uuid == bindparam("w_uuid"))
_INSERT_INSTANCES = insert(INSTANCES)
_INSERT_ACTIONS = insert(ACTIONS)
_INSERT_EVENT = insert(EVENTS)
_INSERT_ALLOCATION = insert(ALLOCATIONS)
_DELETE_ALLOCATION = delete(ALLOCATIONS).where(ALLOCATIONS.c.instance_uuid == bindparam("w_uuid"))
_ACTION_ID = select(ACTIONS.c.id).where(ACTIONS.c.request_id == bindparam("w_request"),
                                        ACTIONS.c.instance_uuid == bindparam("w_uuid")).limit(1)
#: The action of a request on an instance, and its open (started) event of a name.
_ACTION_AND_OPEN_EVENT = select(ACTIONS.c.id, EVENTS.c.id).select_from(
    ACTIONS.outerjoin(EVENTS, (EVENTS.c.action_id == ACTIONS.c.id)
                      & (EVENTS.c.event == bindparam("w_event"))
                      & EVENTS.c.finish_time.is_(None))).where(
    ACTIONS.c.request_id == bindparam("w_request"),
    ACTIONS.c.instance_uuid == bindparam("w_uuid")).limit(1)
_UPDATES: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _update(table: Any, key: str, columns: tuple[str, ...]) -> Any:
    """``UPDATE table SET columns... WHERE key = :w_key``, built once per column set."""
    stmt = _UPDATES.get((table, columns))
    if stmt is None:
        stmt = _UPDATES[(table, columns)] = update(table).where(
            table.c[key] == bindparam("w_key")).values(
            {c: bindparam(f"v_{c}") for c in columns})
    return stmt


def _conn(s: Session) -> Any:
    """The session's connection (kept in ``s.info`` by group-committed writes: asking
    the session for it again costs more than a statement)."""
    return s.info.get("connection") or s.connection()


def _set(s: Session, table: Any, key: str, key_value: Any, changes: dict[str, Any]) -> None:
    params = {f"v_{c}": v for c, v in changes.items()}
    params["w_key"] = key_value
    _conn(s).execute(_update(table, key, tuple(changes)), params)


def image(s: Session, image_id: str | None) -> Row | None:
    """The ``images`` row ``image_id`` (attributes as :class:`Image`'s), or None."""
    if not image_id:
        return None
    found = _conn(s).execute(_IMAGE, {"w_id": image_id}).mappings().first()
    return Row(found) if found is not None else None


def instance(s: Session, uuid: str) -> dict[str, Any] | None:
    """The ``instances`` row ``uuid`` as a mapping by column name, or None."""
    found = _conn(s).execute(_INSTANCE, {"w_uuid": uuid}).mappings().first()
    return dict(found) if found is not None else None


def instance_state(s: Session, uuid: str) -> dict[str, Any] | None:
    """The :data:`STATE_COLUMNS` of the instance ``uuid``, or None."""
    found = _conn(s).execute(_INSTANCE_STATE, {"w_uuid": uuid}).mappings().first()
    return dict(found) if found is not None else None


def update_instance(s: Session, uuid: str, changes: dict[str, Any]) -> None:
    """Set ``changes`` (by column name) on the instance ``uuid``."""
    check_lengths(INSTANCES, changes)
    _set(s, INSTANCES, "uuid", uuid, changes)


def insert_instances(s: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (from :func:`~novalite.db.models.row_values`) into ``instances``."""
    _conn(s).execute(_INSERT_INSTANCES, rows)


def insert_actions(s: Session, rows: list[dict[str, Any]]) -> None:
    _conn(s).execute(_INSERT_ACTIONS, rows)


def put_allocation(s: Session, values: dict[str, Any]) -> None:
    """Record an instance's allocation, replacing any it had."""
    row = row_values(Allocation, **values)
    conn = _conn(s)
    conn.execute(_DELETE_ALLOCATION, {"w_uuid": row["instance_uuid"]})
    conn.execute(_INSERT_ALLOCATION, row)


def record_event(s: Session, uuid: str, request_id: str, event: str, host: str | None,
                 phase: str = "finish", result: str | None = None,
                 details: str | None = None) -> None:
    """Start (``phase="start"``) or finish an event of the action ``request_id`` took
    on instance ``uuid`` (Nova's wrap_instance_event); a finish without a start
    records both at once. Nothing when the request recorded no action."""
    conn = _conn(s)
    now = utcnow()
    if phase == "start":
        action_id = conn.execute(_ACTION_ID, {"w_request": request_id, "w_uuid": uuid}).scalar()
        if action_id is not None:
            conn.execute(_INSERT_EVENT, row_values(InstanceActionEvent, action_id=action_id,
                                                   event=event, host=host, start_time=now))
        return
    found = conn.execute(_ACTION_AND_OPEN_EVENT, {"w_request": request_id, "w_uuid": uuid,
                                                  "w_event": event}).first()
    if found is None:
        return
    action_id, open_id = found
    result = result or "Success"
    failed = result == "Error"
    finish = {"finish_time": now, "result": result, "traceback": details if failed else None,
              "details": details if failed else None}
    check_lengths(EVENTS, finish)
    if open_id is None:
        conn.execute(_INSERT_EVENT, row_values(InstanceActionEvent, action_id=action_id,
                                               event=event, host=host, start_time=now,
                                               **finish))
    else:
        _set(s, EVENTS, "id", open_id, finish)
    _set(s, ACTIONS, "id", action_id,
         {"updated_at": now, "message": "Error"} if failed else {"updated_at": now})
