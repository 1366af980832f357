"""Flavors: listing, management, access lists of private flavors and extra specs
(Nova's ``flavors``, ``flavor_manage``, ``flavor_access`` and ``flavors_extraspecs``
rules, behind the routes of :mod:`novalite.api.flavors`).

Who sees a flavor is Nova's rule: an admin sees every flavor; anyone else sees the
public ones and the private ones whose access list names their project. A flavor
write clears the boot path's cache of flavors (``ComputeAPI.flavors``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Flavor, FlavorExtraSpec, FlavorProject
from novalite.exceptions import BadRequest, Conflict, NotFound

MAX_INT = 0x7FFFFFFF
SQL_SP_FLOAT_MAX = 3.40282e38
#: Nova's sort keys for ``GET /flavors`` (``sort_key``).
SORT_KEYS = ("created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id",
             "is_public", "memory_mb", "name", "root_gb", "rxtx_factor", "swap",
             "updated_at", "vcpu_weight", "vcpus")
_BOOL_TRUE = {"1", "t", "true", "on", "y", "yes"}
_BOOL_FALSE = {"0", "f", "false", "off", "n", "no"}


def strict_bool(value: Any, name: str) -> bool:
    """oslo's ``bool_from_string(strict=True)``: a bool, or one of its strings."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _BOOL_TRUE:
        return True
    if text in _BOOL_FALSE:
        return False
    raise BadRequest(f"Invalid input received: {name} must be a boolean")


def _integer(value: Any, name: str, minimum: int) -> int:
    """Nova's ``utils.validate_integer``."""
    try:
        number = int(str(value))
    except ValueError:
        raise BadRequest(f"Invalid input received: {name} must be an integer") from None
    if number < minimum:
        raise BadRequest(f"Invalid input received: {name} must be >= {minimum}")
    if number > MAX_INT:
        raise BadRequest(f"Invalid input received: {name} must be <= {MAX_INT}")
    return number


@dataclass(frozen=True)
class FlavorPage:
    """One page of a flavor listing, and whether a next page may follow."""

    flavors: list[tuple[Flavor, dict[str, str]]]
    limit: int | None


def _visible(ctx: AuthContext) -> Any:
    """The filter of the flavors ``ctx`` may see (None: every flavor)."""
    if ctx.is_admin:
        return None
    shared = select(FlavorProject.flavor_id).where(FlavorProject.project_id == ctx.project_id)
    return or_(col(Flavor.is_public).is_(True), col(Flavor.id).in_(shared))


def _specs(s: Session, flavor_ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    if not flavor_ids:
        return out
    for e in s.exec(select(FlavorExtraSpec).where(col(FlavorExtraSpec.flavor_id).in_(
            flavor_ids))).all():
        out.setdefault(e.flavor_id, {})[e.key] = e.value
    return out


class FlavorAPI:
    """Flavors as the compute API serves them."""

    def __init__(self, db: Database, boot_cache: dict[str, Any] | None = None) -> None:
        self.db = db
        #: The boot path's enabled flavors by flavorid (ComputeAPI.flavors): cleared
        #: after every flavor write.
        self.boot_cache = boot_cache if boot_cache is not None else {}

    # -- reading ---------------------------------------------------------------------
    async def find(self, ctx: AuthContext, *, is_public: bool | None = True,
                   min_ram: int | None = None, min_disk: int | None = None,
                   sort_key: str = "flavorid", sort_dir: str = "asc",
                   limit: int | None = None, marker: str | None = None,
                   ) -> list[tuple[Flavor, dict[str, str]]]:
        """Nova's ``FlavorList.get_all``: ``is_public`` True lists the public flavors and
        the private ones shared with the caller's project, False the private ones, None
        all (admins choose; everyone else gets True and no disabled flavor)."""
        visible = _visible(ctx)
        if not ctx.is_admin:
            is_public = True
        key = getattr(Flavor, sort_key)

        def work(s: Session) -> list[tuple[Flavor, dict[str, str]]]:
            q = select(Flavor)
            if visible is not None:
                q = q.where(visible)
                q = q.where(col(Flavor.disabled).is_(False))
            if min_ram is not None:
                q = q.where(Flavor.memory_mb >= min_ram)
            if min_disk is not None:
                q = q.where(Flavor.root_gb >= min_disk)
            if is_public is True:
                shared = select(FlavorProject.flavor_id).where(
                    FlavorProject.project_id == ctx.project_id)
                q = q.where(or_(col(Flavor.is_public).is_(True), col(Flavor.id).in_(shared)))
            elif is_public is False:
                q = q.where(col(Flavor.is_public).is_(False))
            order = [key.desc() if sort_dir == "desc" else key.asc(),
                     col(Flavor.id).desc() if sort_dir == "desc" else col(Flavor.id).asc()]
            rows = list(s.exec(q.order_by(*order)).all())
            if marker is not None:
                ids = [f.flavorid for f in rows]
                if marker not in ids:
                    mq = select(Flavor).where(Flavor.flavorid == marker)
                    if visible is not None:
                        mq = mq.where(visible)
                    if s.exec(mq).first() is None:
                        raise BadRequest(f"marker [{marker}] not found")
                    rows = []
                else:
                    rows = rows[ids.index(marker) + 1:]
            if limit is not None:
                rows = rows[:limit]
            specs = _specs(s, [f.id or 0 for f in rows])
            return [(f, specs.get(f.id or 0, {})) for f in rows]

        return await self.db.read(work)

    async def get(self, ctx: AuthContext, flavor_id: str) -> tuple[Flavor, dict[str, str]]:
        """A flavor the caller may see (disabled ones too), with its extra specs."""
        visible = _visible(ctx)

        def work(s: Session) -> tuple[Flavor, dict[str, str]] | None:
            q = select(Flavor).where(Flavor.flavorid == flavor_id)
            if visible is not None:
                q = q.where(visible)
            flavor = s.exec(q.order_by(col(Flavor.id))).first()
            if flavor is None:
                return None
            return flavor, _specs(s, [flavor.id or 0]).get(flavor.id or 0, {})

        found = await self.db.read(work)
        if found is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        return found

    # -- management ------------------------------------------------------------------
    async def create(self, values: dict[str, Any]) -> Flavor:
        """Nova's ``flavors.create``: ``values`` as the request body gave them."""
        flavorid = values.get("id")
        flavorid = str(uuid.uuid4()) if flavorid is None or flavorid == "" else str(flavorid)
        rxtx = values.get("rxtx_factor", 1.0)
        try:
            rxtx_factor = float(rxtx)
            if not 0 < rxtx_factor <= SQL_SP_FLOAT_MAX:
                raise ValueError
        except ValueError:
            raise BadRequest("Invalid input received: 'rxtx_factor' argument must be a float "
                             f"between 0 and {SQL_SP_FLOAT_MAX:g}") from None
        flavor = Flavor(
            flavorid=flavorid, name=str(values["name"]).strip(),
            memory_mb=_integer(values["ram"], "ram", 1),
            vcpus=_integer(values["vcpus"], "vcpus", 1),
            root_gb=_integer(values["disk"], "disk", 0),
            ephemeral_gb=_integer(values.get("OS-FLV-EXT-DATA:ephemeral", 0), "ephemeral", 0),
            swap=_integer(values.get("swap", 0), "swap", 0), rxtx_factor=rxtx_factor,
            is_public=strict_bool(values.get("os-flavor-access:is_public", True),
                                  "is_public"),
            description=values.get("description"))

        def work(s: Session) -> Flavor:
            if s.exec(select(Flavor).where(Flavor.name == flavor.name)).first() is not None:
                raise Conflict(f"Flavor with name {flavor.name} already exists.")
            if s.exec(select(Flavor).where(Flavor.flavorid == flavor.flavorid)
                      ).first() is not None:
                raise Conflict(f"Flavor with ID {flavor.flavorid} already exists.")
            s.add(flavor)
            return flavor

        try:
            return await self.db.write(work)
        finally:
            self.boot_cache.clear()

    async def update_description(self, flavor_id: str, description: str | None
                                 ) -> tuple[Flavor, dict[str, str]]:
        def work(s: Session) -> tuple[Flavor, dict[str, str]] | None:
            flavor = s.exec(select(Flavor).where(Flavor.flavorid == flavor_id)).first()
            if flavor is None:
                return None
            flavor.description = description
            s.add(flavor)
            return flavor, _specs(s, [flavor.id or 0]).get(flavor.id or 0, {})

        found = await self.db.write(work)
        if found is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        return found

    async def delete(self, flavor_id: str) -> None:
        def work(s: Session) -> bool:
            flavor = s.exec(select(Flavor).where(Flavor.flavorid == flavor_id)).first()
            if flavor is None:
                return False
            for row in s.exec(select(FlavorExtraSpec).where(
                    FlavorExtraSpec.flavor_id == flavor.id)).all():
                s.delete(row)
            for access in s.exec(select(FlavorProject).where(
                    FlavorProject.flavor_id == flavor.id)).all():
                s.delete(access)
            s.delete(flavor)
            return True

        found = await self.db.write(work)
        self.boot_cache.clear()  # after the commit: no boot re-caches the old row
        if not found:
            raise NotFound(f"Flavor {flavor_id} could not be found.")

    # -- access lists ----------------------------------------------------------------
    async def access(self, ctx: AuthContext, flavor_id: str) -> list[str]:
        """The projects a private flavor is shared with (a public one has no list)."""
        flavor, _ = await self.get(ctx, flavor_id)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return await self.db.read(lambda s: self._projects(s, flavor.id or 0))

    @staticmethod
    def _projects(s: Session, flavor_pk: int) -> list[str]:
        return list(s.exec(select(FlavorProject.project_id).where(
            FlavorProject.flavor_id == flavor_pk).order_by(col(FlavorProject.project_id))).all())

    async def add_access(self, ctx: AuthContext, flavor_id: str, project_id: str, *,
                         refuse_public: bool) -> list[str]:
        flavor, _ = await self.get(ctx, flavor_id)
        if refuse_public and flavor.is_public:
            raise Conflict("Can not add access to a public flavor.")
        pk = flavor.id or 0

        def work(s: Session) -> list[str]:
            if s.get(FlavorProject, (pk, project_id)) is not None:
                raise Conflict(f"Flavor access already exists for flavor {flavor_id} and "
                               f"project {project_id} combination.")
            s.add(FlavorProject(flavor_id=pk, project_id=project_id))
            s.flush()
            return self._projects(s, pk)

        try:
            return await self.db.write(work)
        finally:
            self.boot_cache.clear()

    async def remove_access(self, ctx: AuthContext, flavor_id: str, project_id: str
                            ) -> list[str]:
        flavor, _ = await self.get(ctx, flavor_id)
        pk = flavor.id or 0

        def work(s: Session) -> list[str]:
            row = s.get(FlavorProject, (pk, project_id))
            if row is None:
                raise NotFound(f"Flavor access not found for {flavor_id} / {project_id} "
                               "combination.")
            s.delete(row)
            s.flush()
            return self._projects(s, pk)

        try:
            return await self.db.write(work)
        finally:
            self.boot_cache.clear()

    # -- extra specs -----------------------------------------------------------------
    async def set_extra_specs(self, ctx: AuthContext, flavor_id: str, specs: dict[str, str]
                              ) -> None:
        flavor, _ = await self.get(ctx, flavor_id)
        pk = flavor.id or 0

        def work(s: Session) -> None:
            for key, value in specs.items():
                s.merge(FlavorExtraSpec(flavor_id=pk, key=key, value=value))

        try:
            await self.db.write(work)
        finally:
            self.boot_cache.clear()

    async def delete_extra_spec(self, ctx: AuthContext, flavor_id: str, key: str) -> None:
        flavor, _ = await self.get(ctx, flavor_id)
        pk = flavor.id or 0

        def work(s: Session) -> bool:
            row = s.get(FlavorExtraSpec, (pk, key))
            if row is None:
                return False
            s.delete(row)
            return True

        found = await self.db.write(work)
        self.boot_cache.clear()
        if not found:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
