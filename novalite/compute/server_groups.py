"""Server groups (``os-server-groups``): records, quotas and membership on boot.

A group has one policy - ``affinity``, ``anti-affinity``, ``soft-affinity`` or
``soft-anti-affinity`` - and, for ``anti-affinity``, the rule
``max_server_per_host``. Instances join at boot with the ``group`` scheduler
hint; the scheduler enforces the policy from its own view of where the
members are (no race between two boots into one group).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, func, select

from novalite.compute.quotas import QuotaAPI
from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Instance, InstanceGroup, InstanceGroupMember
from novalite.exceptions import BadRequest, NotFound, QuotaExceeded

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


@dataclass
class GroupRecord:
    """A group with its live members' uuids."""

    group: InstanceGroup
    members: list[str] = field(default_factory=list)


def _members(s: Session, group_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in group_ids}
    if not group_ids:
        return out
    rows = s.exec(select(InstanceGroupMember.group_id, InstanceGroupMember.instance_uuid)
                  .join(Instance, col(Instance.uuid) == InstanceGroupMember.instance_uuid)
                  .where(InstanceGroupMember.group_id.in_(group_ids),  # type: ignore[attr-defined]
                         Instance.deleted == 0)
                  .order_by(col(InstanceGroupMember.created_at))).all()
    for gid, uuid in rows:
        out[gid].append(uuid)
    return out


class ServerGroupAPI:
    """Business rules of os-server-groups."""

    def __init__(self, db: Database, quotas: QuotaAPI) -> None:
        self.db = db
        self.quotas = quotas

    async def create(self, ctx: AuthContext, name: str, policy: str,
                     rules: dict[str, Any]) -> GroupRecord:
        if policy not in POLICIES:
            raise BadRequest(f"Invalid input for field/attribute policy. Value: {policy}. "
                             f"'{policy}' is not one of {list(POLICIES)}")
        if rules and policy != "anti-affinity":
            raise BadRequest("Only anti-affinity policy supports rules.")
        group = InstanceGroup(name=name, project_id=ctx.project_id, user_id=ctx.user_id,
                              policy=policy, rules=dict(rules))

        def work(s: Session) -> InstanceGroup:
            limit = self.quotas.limits_in(s, ctx.project_id)["server_groups"]
            used = int(s.exec(select(func.count()).select_from(InstanceGroup).where(
                InstanceGroup.project_id == ctx.project_id)).one())
            if 0 <= limit <= used:
                raise QuotaExceeded("Quota exceeded, too many server groups.")
            s.add(group)
            return group

        async with self.quotas.reserving(ctx.project_id):
            return GroupRecord(await self.db.write(work), [])

    async def list(self, ctx: AuthContext, all_projects: bool, limit: int | None,
                   offset: int | None) -> list[GroupRecord]:
        def work(s: Session) -> list[GroupRecord]:
            q = select(InstanceGroup)
            if not all_projects:
                q = q.where(InstanceGroup.project_id == ctx.project_id)
            q = q.order_by(InstanceGroup.id)  # type: ignore[arg-type]
            if offset:
                q = q.offset(offset)
            if limit is not None:
                q = q.limit(limit)
            groups = list(s.exec(q).all())
            members = _members(s, [g.id or 0 for g in groups])
            return [GroupRecord(g, members[g.id or 0]) for g in groups]

        return await self.db.read(work)

    def _find(self, s: Session, ctx: AuthContext, group_id: str) -> InstanceGroup:
        group = s.exec(select(InstanceGroup).where(InstanceGroup.uuid == group_id)).first()
        if group is None or (not ctx.is_admin and group.project_id != ctx.project_id):
            raise NotFound(f"Instance group {group_id} could not be found.")
        return group

    async def get(self, ctx: AuthContext, group_id: str) -> GroupRecord:
        def work(s: Session) -> GroupRecord:
            group = self._find(s, ctx, group_id)
            return GroupRecord(group, _members(s, [group.id or 0])[group.id or 0])

        return await self.db.read(work)

    async def delete(self, ctx: AuthContext, group_id: str) -> None:
        def work(s: Session) -> None:
            group = self._find(s, ctx, group_id)
            for m in s.exec(select(InstanceGroupMember).where(
                    InstanceGroupMember.group_id == group.id)).all():
                s.delete(m)
            s.delete(group)

        await self.db.write(work)

    def join(self, s: Session, ctx: AuthContext, group_id: str,
             instance_uuids: builtins.list[str]) -> dict[str, Any]:
        """Add new instances to a group (in the boot's transaction); the group as the
        scheduler needs it. 400 for an unknown group, 403 past ``server_group_members``."""
        try:
            group = self._find(s, ctx, group_id)
        except NotFound:
            raise BadRequest(f"Invalid server group: {group_id} could not be found.") from None
        limit = self.quotas.limits_in(s, ctx.project_id)["server_group_members"]
        used = len(_members(s, [group.id or 0])[group.id or 0])
        if 0 <= limit < used + len(instance_uuids):
            raise QuotaExceeded("Quota exceeded, too many servers in group")
        for uuid in instance_uuids:
            s.add(InstanceGroupMember(instance_uuid=uuid, group_id=group.id or 0))
        return {"uuid": group.uuid, "policy": group.policy, "rules": dict(group.rules)}
