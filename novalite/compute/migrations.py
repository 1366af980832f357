"""Reading migrations: ``GET /os-migrations`` and ``/servers/{id}/migrations``
(Nova's ``compute/api.py`` get_migrations*, ``db`` migration_get_all_by_filters)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, or_, select

from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Migration
from novalite.exceptions import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from novalite.compute.api import ServerRecord

#: The statuses of a migration still in progress (Nova's in-progress list).
IN_PROGRESS = ("accepted", "queued", "preparing", "running", "post-migrating",
               "pre-migrating", "migrating")


@dataclass
class MigrationSearch:
    """What ``GET /os-migrations`` asked for (the route applied the microversion)."""

    exact: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    limit: int | None = None
    marker: str | None = None


class MigrationReads:
    """Migration listings (mixed into ComputeAPI)."""

    db: Database

    async def get(self, ctx: AuthContext, server_id: str) -> ServerRecord:
        raise NotImplementedError

    def _check_lock(self, ctx: AuthContext, inst: Any) -> None:
        raise NotImplementedError


    async def migrations(self, ctx: AuthContext, search: MigrationSearch
                         ) -> list[Migration]:
        """Migrations newest first (created_at, id), filtered and paged as asked."""

        def work(s: Session) -> list[Migration]:
            q = select(Migration).where(Migration.hidden == False)  # noqa: E712
            for key, value in search.exact.items():
                q = q.where(getattr(Migration, key) == value)
            if search.host:
                q = q.where(or_(col(Migration.source_compute) == search.host,
                                col(Migration.dest_compute) == search.host))
            if search.changes_since is not None:
                q = q.where(col(Migration.updated_at) >= search.changes_since)
            if search.changes_before is not None:
                q = q.where(col(Migration.updated_at) <= search.changes_before)
            rows = list(s.exec(q.order_by(col(Migration.created_at).desc(),
                                          col(Migration.id).desc())).all())
            if search.marker is not None:
                at = [i for i, m in enumerate(rows) if m.uuid == search.marker]
                if not at:
                    raise BadRequest(f"Marker {search.marker} could not be found.")
                rows = rows[at[0] + 1:]
            if search.limit is not None:
                rows = rows[: search.limit]
            return rows

        return await self.db.read(work)

    async def server_migrations(self, ctx: AuthContext, server_id: str
                                ) -> list[Migration]:
        """The server's live migrations in progress (what ``/servers/{id}/migrations``
        lists in Nova: other kinds and finished ones are not shown)."""
        inst = (await self.get(ctx, server_id)).instance
        return await self.db.read(lambda s: list(s.exec(
            select(Migration).where(Migration.instance_uuid == inst.uuid,
                                    Migration.migration_type == "live-migration",
                                    col(Migration.status).in_(IN_PROGRESS))
            .order_by(col(Migration.id).desc())).all()))

    async def server_migration(self, ctx: AuthContext, server_id: str,
                               migration_id: str) -> Migration:
        """One in-progress live migration of the server; 404 for any other."""
        for m in await self.server_migrations(ctx, server_id):
            if str(m.id) == str(migration_id):
                return m
        inst = (await self.get(ctx, server_id)).instance
        raise NotFound(f"Migration {migration_id} for instance {inst.uuid} could not be "
                       f"found.")

    async def migration_action(self, ctx: AuthContext, server_id: str,
                               migration_id: str, action: str) -> None:
        """force_complete / abort (DELETE) of a live migration, as Nova answers them
        for a server not live-migrating: 409 by the server's state, then 404 for a
        migration that is not its live migration in progress."""
        from novalite import states
        from novalite.exceptions import InstanceInvalidState

        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        if inst.vm_state != states.ACTIVE or inst.task_state != states.MIGRATING:
            what = f"task_state {inst.task_state}" if inst.vm_state == states.ACTIVE \
                else f"vm_state {inst.vm_state}"
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is "
                                       f"in {what}")
        m = await self.server_migration(ctx, server_id, migration_id)
        if action == "force_complete" and m.status == "running":
            return  # the fake driver's migration completes by itself; QEMU's is left
        if m.status not in ("running", "preparing", "queued", "accepted"):
            raise BadRequest(f"Migration {migration_id} state of instance {inst.uuid} is "
                             f"{m.status}. Cannot {action} while the migration is in this "
                             "state.")
        raise Conflict(f"Cannot {action} live migration {migration_id} of instance "
                       f"{inst.uuid}: the driver cannot abort a live migration")


__all__ = ["IN_PROGRESS", "MigrationReads", "MigrationSearch"]
