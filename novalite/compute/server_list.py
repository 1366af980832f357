"""Listing servers: the search a ``GET /servers`` asks for, and running it.

:class:`ServerSearch` is what Nova's ``compute.api.API.get_all`` receives once the
route has applied its rules (which filters a caller may use at which microversion,
``all_tenants``, ``status``, sorting): exact filters, regular-expression filters,
tags, addresses, times, the deleted flag, sort keys, limit and marker. :func:`run`
runs it as Nova's database layer does (``instance_get_all_by_filters_sort``):

* exact match: ``project_id``, ``user_id``, ``image_ref``, ``vm_state``, ``task_state``,
  ``uuid``, ``host``, ``locked`` and the flavor;
* regular expression (searched anywhere in the value, case-insensitive as MySQL's
  ``REGEXP`` is): every other column filter (``display_name``, ``hostname``,
  ``key_name``, ``node``, ``power_state``...);
* ``tags`` (all of), ``tags-any`` (any of), ``not-tags`` (not all of),
  ``not-tags-any`` (none of);
* ``ip`` / ``ip6``: a regular expression matched at the start of a fixed address of
  that version;
* the marker is any instance (deleted ones too): the page starts after it in the
  sort order, whether or not it matches the filters.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from novalite.db.models import Instance, InstanceRow
from novalite.exceptions import BadRequest

#: Columns Nova filters by exact match (the rest by regular expression).
EXACT_COLUMNS = ("project_id", "user_id", "image_ref", "vm_state", "task_state", "uuid",
                 "host", "locked")
#: The default order: newest first (Nova's ``created_at desc`` plus ``id``).
DEFAULT_SORT = [("created_at", "desc"), ("id", "desc")]

#: Values of attributes novalite does not store but Nova filters and sorts by: what
#: every novalite server has.
_CONSTANT = {"kernel_id": "", "ramdisk_id": "", "root_device_name": "/dev/vda"}


def attribute(row: InstanceRow, name: str) -> Any:
    """The value of Nova's instance attribute ``name`` for ``row``."""
    if name in _CONSTANT:
        return _CONSTANT[name]
    if name == "instance_type_id":
        return (row.flavor or {}).get("id")
    return getattr(row, name, None)


def regex_text(value: Any) -> str | None:
    """A value as MySQL's ``REGEXP`` sees it (None never matches)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return str(value)
    return str(value)


@dataclass
class ServerSearch:
    """The search of one ``GET /servers``, after the route's rules."""

    #: column -> the values it may have (one of them)
    exact: dict[str, list[Any]] = field(default_factory=dict)
    #: attribute -> the pattern searched in its value
    regex: dict[str, re.Pattern[str]] = field(default_factory=dict)
    #: the flavorid servers were built with
    flavor: str | None = None
    tags: list[str] | None = None
    tags_any: list[str] | None = None
    not_tags: list[str] | None = None
    not_tags_any: list[str] | None = None
    ip: re.Pattern[str] | None = None
    ip6: re.Pattern[str] | None = None
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    #: True: deleted servers only; False: live ones only; None: both
    deleted: bool | None = False
    #: (attribute, "asc" | "desc"), the default tie-breakers included
    sort: list[tuple[str, str]] = field(default_factory=lambda: list(DEFAULT_SORT))
    limit: int | None = None
    marker: str | None = None


def _compare(sort: list[tuple[str, str]], a: InstanceRow, b: InstanceRow) -> int:
    """-1/0/1: ``a`` before, with or after ``b`` in ``sort`` (NULLs first ascending, as
    SQLite and MySQL order them)."""
    for key, direction in sort:
        x, y = attribute(a, key), attribute(b, key)
        if x == y:
            continue
        if x is None:
            order = -1
        elif y is None:
            order = 1
        else:
            try:
                order = -1 if x < y else 1
            except TypeError:
                order = -1 if str(x) < str(y) else 1
        return order if direction == "asc" else -order
    return 0


def _matches(search: ServerSearch, row: InstanceRow) -> bool:
    for name, pattern in search.regex.items():
        text = regex_text(attribute(row, name))
        if text is None or not pattern.search(text):
            return False
    if search.flavor is not None and (row.flavor or {}).get("id") != search.flavor:
        return False
    tags = set(row.tags or [])
    if search.tags is not None and not set(search.tags) <= tags:
        return False
    if search.tags_any is not None and not tags & set(search.tags_any):
        return False
    if search.not_tags is not None and set(search.not_tags) <= tags:
        return False
    if search.not_tags_any is not None and tags & set(search.not_tags_any):
        return False
    if search.ip is not None or search.ip6 is not None:
        for a in row.addresses or []:
            wanted = search.ip6 if a.get("version", 4) == 6 else search.ip
            if wanted is not None and wanted.match(a["address"]):
                break
        else:
            return False
    return True


def run(s: Session, search: ServerSearch) -> list[InstanceRow]:
    """The instances ``search`` selects, in its order, one page of them."""
    if search.limit == 0:
        return []
    # Rows of the table, not ORM objects: a list is only read, and loading 1,000
    # instances through the ORM's identity map costs several times more.
    q = select(Instance.__table__)  # type: ignore[attr-defined]
    for column, values in search.exact.items():
        if not values:
            return []
        col = getattr(Instance, column)
        q = q.where(col == values[0]) if len(values) == 1 else q.where(col.in_(values))
    if search.changes_since is not None:
        q = q.where(Instance.updated_at >= search.changes_since)
    if search.changes_before is not None:
        q = q.where(Instance.updated_at <= search.changes_before)
    if search.deleted is True:
        q = q.where(Instance.deleted != 0)
    elif search.deleted is False:
        q = q.where(Instance.deleted == 0)
    default_order = search.sort == DEFAULT_SORT
    if default_order:
        q = q.order_by(Instance.created_at.desc(), Instance.id.desc())  # type: ignore[union-attr, attr-defined]
    rows = [InstanceRow(r._mapping) for r in s.connection().execute(q)]
    rows = [r for r in rows if _matches(search, r)]
    compare = functools.partial(_compare, search.sort)
    if not default_order:
        rows.sort(key=functools.cmp_to_key(compare))
    if search.marker is not None:
        marker = next((r for r in rows if r.uuid == search.marker), None)
        if marker is None:  # any instance may be the marker, deleted ones too
            found = s.connection().execute(
                select(Instance.__table__).where(  # type: ignore[attr-defined]
                    Instance.uuid == search.marker)).first()
            if found is None:
                raise BadRequest(f"marker [{search.marker}] not found")
            marker = InstanceRow(found._mapping)
        rows = [r for r in rows if compare(r, marker) > 0]
    if search.limit is not None:
        rows = rows[: search.limit]
    return rows
