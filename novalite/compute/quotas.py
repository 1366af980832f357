"""Nova's counted quotas: limits per project, usage counted from the records.

A limit is the project's override (``os-quota-sets`` update) or the ``[quota]``
default; -1 is unlimited. Usage is counted, never stored, so it cannot drift:
instances, cores and ram from the project's live instances; key pairs per user.
A boot's check and its insert are one write function: on SQLite, writes run one
after another (group-committed, each seeing the ones before it); on MySQL they
also hold one lock per project in this process, the only writer of the database,
so concurrent boots cannot pass a limit together (nor deadlock on the count).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import trio
from sqlmodel import Session, col, func, select

from novalite.config import QuotaSection
from novalite.db.engine import Database
from novalite.db.models import (
    Instance,
    InstanceGroup,
    InstanceGroupMember,
    KeyPair,
    Quota,
    QuotaClass,
)
from novalite.exceptions import BadRequest, QuotaExceeded

RESOURCES = tuple(asdict(QuotaSection()))
#: The names os-quota-sets shows at each microversion (2.36 drops the network proxies,
#: 2.57 drops injected files).
LEGACY = {"fixed_ips": -1, "floating_ips": -1, "security_group_rules": -1,
          "security_groups": -1}
INJECTED = {"injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
            "injected_files": 5}


def usage(s: Session, project_id: str) -> dict[str, int]:
    """What the project uses now: instances, cores, ram (live instances)."""
    count, cores, ram = s.exec(select(
        func.count(), func.coalesce(func.sum(Instance.vcpus), 0),
        func.coalesce(func.sum(Instance.memory_mb), 0),
    ).where(Instance.project_id == project_id, Instance.deleted == 0)).one()
    return {"instances": int(count), "cores": int(cores), "ram": int(ram)}


class QuotaAPI:
    def __init__(self, db: Database, defaults: QuotaSection) -> None:
        self.db = db
        #: ``[quota]``: the limits before the ``default`` quota class overrides them.
        self.config_defaults = asdict(defaults)
        #: The limits every project starts from: ``[quota]`` with the ``default``
        #: quota class's rows over it (read at the first use, kept current by
        #: :meth:`update_class`: this process is the only writer).
        self.defaults = dict(self.config_defaults)
        self._class_loaded = False
        self._locks: dict[str, trio.Lock] = defaultdict(trio.Lock)
        #: Each project's limits as last read; this process writes every override
        #: (update/reset drop the entry after their commit).
        self._limits: dict[str, dict[str, int]] = {}

    def limits_in(self, s: Session, project_id: str, fresh: bool = False) -> dict[str, int]:
        cached = None if fresh else self._limits.get(project_id)
        if cached is not None:
            return dict(cached)
        if not self._class_loaded:
            self._load_default_class(s)
        limits = dict(self.defaults)
        for row in s.exec(select(Quota).where(Quota.project_id == project_id)).all():
            limits[row.resource] = row.hard_limit
        if not fresh:
            self._limits[project_id] = dict(limits)
        return limits

    def _load_default_class(self, s: Session) -> None:
        rows = s.exec(select(QuotaClass).where(QuotaClass.class_name == "default")).all()
        self.defaults = dict(self.config_defaults)
        self.defaults.update({r.resource: r.hard_limit for r in rows
                              if r.resource in self.config_defaults})
        self._class_loaded = True

    async def default_limits(self) -> dict[str, int]:
        """The limits a project without overrides has."""
        if not self._class_loaded:
            await self.db.read(self._load_default_class)
        return dict(self.defaults)

    # -- quota classes (os-quota-class-sets) ---------------------------------------
    def _class_in(self, s: Session, class_name: str) -> dict[str, int]:
        values = {**self.config_defaults, **LEGACY, **INJECTED}
        for row in s.exec(select(QuotaClass).where(QuotaClass.class_name == class_name)).all():
            values[row.resource] = row.hard_limit
        return values

    async def class_limits(self, class_name: str) -> dict[str, int]:
        """Every resource's limit in a quota class (any name: Nova answers the
        defaults for a class it has no rows of)."""
        return await self.db.read(lambda s: self._class_in(s, class_name))

    async def update_class(self, class_name: str, values: dict[str, int]) -> dict[str, int]:
        """Set limits of a quota class; the ``default`` class's are every project's
        defaults from then on."""
        def work(s: Session) -> dict[str, int]:
            for resource, number in values.items():
                row = s.get(QuotaClass, (class_name, resource))
                row = row or QuotaClass(class_name=class_name, resource=resource,
                                        hard_limit=number)
                row.hard_limit = number
                s.add(row)
            s.flush()
            return self._class_in(s, class_name)

        try:
            return await self.db.write(work)
        finally:
            if class_name == "default":
                self._class_loaded = False
                self._limits.clear()

    async def limits(self, project_id: str) -> dict[str, int]:
        return await self.db.read(lambda s: self.limits_in(s, project_id))

    async def usage(self, project_id: str, user_id: str | None = None) -> dict[str, int]:
        def work(s: Session) -> dict[str, int]:
            used = usage(s, project_id)
            used["key_pairs"] = 0
            if user_id is not None:
                used["key_pairs"] = int(s.exec(select(func.count()).select_from(KeyPair)
                                               .where(KeyPair.user_id == user_id)).one())
            used["server_groups"] = int(s.exec(select(func.count()).select_from(
                InstanceGroup).where(InstanceGroup.project_id == project_id)).one())
            # Members are limited per group; "in use" is the fullest group's count.
            sizes = s.exec(select(func.count()).select_from(InstanceGroupMember).join(
                InstanceGroup, col(InstanceGroup.id) == col(InstanceGroupMember.group_id)).where(
                InstanceGroup.project_id == project_id).group_by(col(InstanceGroup.id))).all()
            used.update(metadata_items=0, server_group_members=max(sizes, default=0))
            return used

        return await self.db.read(work)

    async def update(self, project_id: str, values: dict[str, Any]) -> dict[str, int]:
        clean: dict[str, int] = {}
        for key, value in values.items():
            if key in LEGACY or key in INJECTED or key == "force":
                continue
            if key not in RESOURCES:
                raise BadRequest(f"Invalid input for field/attribute quota_set. Value: "
                                 f"{key}. Additional properties are not allowed")
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                                 f"{value!r} is not of type 'integer'") from None
            if number < -1:
                raise BadRequest(f"Quota limit {number} for {key} must be -1 or greater.")
            clean[key] = number

        def work(s: Session) -> dict[str, int]:
            for key, number in clean.items():
                row = s.exec(select(Quota).where(Quota.project_id == project_id,
                                                 Quota.resource == key)).first()
                row = row or Quota(project_id=project_id, resource=key, hard_limit=number)
                row.hard_limit = number
                s.add(row)
            s.flush()
            return self.limits_in(s, project_id, fresh=True)

        try:
            return await self.db.write(work)
        finally:
            self._limits.pop(project_id, None)

    async def reset(self, project_id: str) -> None:
        def work(s: Session) -> None:
            for row in s.exec(select(Quota).where(Quota.project_id == project_id)).all():
                s.delete(row)

        try:
            await self.db.write(work)
        finally:
            self._limits.pop(project_id, None)

    @asynccontextmanager
    async def reserving(self, project_id: str) -> AsyncIterator[None]:
        """Hold while checking and writing the project's new instances."""
        if self.db.is_sqlite:  # writes are serialized already, and batch better unlocked
            yield
            return
        async with self._locks[project_id]:
            yield

    def allowed_count(self, s: Session, project_id: str, vcpus: int, ram: int,
                      min_count: int, max_count: int, metadata: int) -> int:
        """How many of ``max_count`` instances fit (>= min_count), else QuotaExceeded."""
        limits = self.limits_in(s, project_id)
        if 0 <= limits["metadata_items"] < metadata:
            raise QuotaExceeded("Quota exceeded for metadata_items: Requested "
                                f"{metadata}, but already used 0 of "
                                f"{limits['metadata_items']} metadata_items")
        per = {"instances": 1, "cores": vcpus, "ram": ram}
        if all(limits[r] < 0 for r in per):
            return max_count  # unlimited: nothing to count
        used = usage(s, project_id)
        fits = max_count
        for resource, each in per.items():
            limit = limits[resource]
            if limit < 0 or each == 0:
                continue
            fits = min(fits, (limit - used[resource]) // each)
        if fits < min_count:
            for resource, each in per.items():
                limit = limits[resource]
                if limit >= 0 and used[resource] + each * min_count > limit:
                    raise QuotaExceeded(
                        f"Quota exceeded for {resource}: Requested {each * min_count}, "
                        f"but already used {used[resource]} of {limit} {resource}")
        return max(fits, min_count)
