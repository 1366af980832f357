"""A server's metadata and tags: Nova's rules for changing them.

:class:`ServerMetadata` is mixed into :class:`~novalite.compute.api.ComputeAPI` (which
provides ``get`` and ``quotas``). Metadata changes need a server that is active,
paused, suspended or stopped with no task running, and not locked (unless the caller
is an admin); the whole set counts against the ``metadata_items`` quota. Tags need
a server in one of those vm_states; at most 50 of them (Nova's ``MAX_TAG_COUNT``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from novalite import states
from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Instance, utcnow
from novalite.exceptions import BadRequest, Conflict, NotFound, QuotaExceeded

if TYPE_CHECKING:
    from novalite.compute.api import ServerRecord
    from novalite.compute.quotas import QuotaAPI

MAX_TAGS = 50
_CHANGEABLE = (states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED)


def _invalid_state(action: str, inst: Any, attr: str) -> Conflict:
    return Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in {attr} "
                    f"{getattr(inst, attr)}")


class ServerMetadata:
    """Metadata and tags of existing servers."""

    db: Database
    quotas: QuotaAPI

    async def get(self, ctx: AuthContext, server_id: str) -> ServerRecord:
        raise NotImplementedError

    # -- metadata ------------------------------------------------------------------
    async def metadata(self, ctx: AuthContext, server_id: str) -> dict[str, str]:
        return dict((await self.get(ctx, server_id)).instance.metadata_)

    async def change_metadata(self, ctx: AuthContext, server_id: str,
                              changes: dict[str, str], *, replace: bool = False,
                              delete: str | None = None) -> dict[str, str]:
        """Merge ``changes`` into the metadata (``replace``: they become the metadata;
        ``delete``: remove that key, 404 if absent); returns the new metadata."""
        inst = (await self.get(ctx, server_id)).instance
        action = "delete_instance_metadata" if delete is not None \
            else "update_instance_metadata"
        if inst.locked and not ctx.is_admin:
            raise Conflict(f"Instance {inst.uuid} is locked")
        if inst.vm_state not in _CHANGEABLE:
            raise _invalid_state(action, inst, "vm_state")
        if inst.task_state is not None:
            raise _invalid_state(action, inst, "task_state")
        limit = (await self.quotas.limits(inst.project_id))["metadata_items"]

        def work(s: Session) -> dict[str, str]:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid,
                                                Instance.deleted == 0)).first()
            if row is None:
                raise NotFound(f"Instance {inst.uuid} could not be found.")
            current = dict(row.metadata_)
            if delete is not None:
                if delete not in current:
                    raise NotFound("Metadata item was not found")
                del current[delete]
            else:
                current = dict(changes) if replace else {**current, **changes}
                if 0 <= limit < len(current):
                    raise QuotaExceeded("Maximum number of metadata items exceeds "
                                        f"{limit}")
            row.metadata_ = current
            row.updated_at = utcnow()
            s.add(row)
            return current

        return await self.db.write(work)

    # -- tags ----------------------------------------------------------------------
    async def tags(self, ctx: AuthContext, server_id: str) -> list[str]:
        return list((await self.get(ctx, server_id)).instance.tags or [])

    async def change_tags(self, ctx: AuthContext, server_id: str, action: str, *,
                          tags: list[str] | None = None, tag: str | None = None
                          ) -> tuple[list[str], bool]:
        """``action``: ``update tags`` (replace with ``tags``), ``update tag`` (add
        ``tag``), ``delete tag``, ``delete tags``. Returns (the tags, whether ``tag``
        was added)."""
        inst = (await self.get(ctx, server_id)).instance
        if inst.vm_state not in _CHANGEABLE:
            raise _invalid_state(action, inst, "vm_state")

        def work(s: Session) -> tuple[list[str], bool]:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid,
                                                Instance.deleted == 0)).first()
            if row is None:
                raise NotFound(f"Instance {inst.uuid} could not be found.")
            current = list(row.tags or [])
            added = False
            if action == "update tags":
                current = list(dict.fromkeys(tags or []))
            elif action == "update tag":
                assert tag is not None
                if len(current) >= MAX_TAGS:
                    raise BadRequest("The number of tags exceeded the per-server limit "
                                     f"{MAX_TAGS}")
                if tag in current:
                    return current, False
                current.append(tag)
                added = True
            elif action == "delete tag":
                if tag is None or tag not in current:
                    raise NotFound(f"Instance {inst.uuid} has no tag '{tag}'")
                current.remove(tag)
            else:
                current = []
            row.tags = current
            row.updated_at = utcnow()
            s.add(row)
            return current, added

        return await self.db.write(work)
