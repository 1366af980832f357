"""Resize, cold migration, confirm and revert: the compute API's rules (Nova's
``compute/api.py`` resize, migrate, confirm_resize, revert_resize).

A move is recorded here (a ``migrations`` row, ``pre-migrating``; task_state
``resize_prep``; the instance action) and cast to the conductor, which places it
and runs it host by host (:mod:`novalite.conductor.tasks.migrate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from novalite import states
from novalite.context import AuthContext
from novalite.db import queries
from novalite.db.engine import Database
from novalite.db.models import (
    Flavor,
    FlavorExtraSpec,
    Instance,
    InstanceAction,
    Migration,
    utcnow,
)
from novalite.exceptions import (
    BadRequest,
    Conflict,
    InstanceInvalidState,
    NotFound,
    QuotaExceeded,
)
from novalite.rpc import Clients

if TYPE_CHECKING:
    from novalite.compute.api import ServerRecord
    from novalite.config import Config

#: action -> (allowed vm_states, allowed task_states), as Nova's check_instance_state.
MOVE_STATES: dict[str, tuple[tuple[str, ...], tuple[str | None, ...]]] = {
    "resize": ((states.ACTIVE, states.STOPPED), (None,)),
    "migrate": ((states.ACTIVE, states.STOPPED), (None,)),
    "confirmResize": ((states.RESIZED,), (None,)),
    "revertResize": ((states.RESIZED,), (None,)),
    "os-migrateLive": ((states.ACTIVE, states.PAUSED), (None,)),
    "evacuate": ((states.ACTIVE, states.STOPPED, states.ERROR), (None,)),
}


def check_move_state(inst: Any, action: str) -> None:
    """409 with Nova's message unless ``inst`` may take ``action`` now."""
    vm_ok, task_ok = MOVE_STATES[action]
    if inst.vm_state not in vm_ok:
        raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is in "
                                   f"vm_state {inst.vm_state}")
    if inst.task_state not in task_ok:
        raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is in "
                                   f"task_state {inst.task_state}")


def flavor_snapshot(flavor: Flavor, extra_specs: dict[str, str]) -> dict[str, Any]:
    """The flavor as an instance keeps it (the same keys as at create)."""
    return {"id": flavor.flavorid, "name": flavor.name, "memory_mb": flavor.memory_mb,
            "vcpus": flavor.vcpus, "root_gb": flavor.root_gb,
            "ephemeral_gb": flavor.ephemeral_gb, "swap": flavor.swap,
            "extra_specs": extra_specs}


class ResizeActions:
    """resize, migrate, confirmResize, revertResize (mixed into ComputeAPI)."""

    db: Database
    rpc: Clients
    cfg: Config

    async def get(self, ctx: AuthContext, server_id: str) -> ServerRecord:
        raise NotImplementedError

    def _check_lock(self, ctx: AuthContext, inst: Any) -> None:
        raise NotImplementedError

    async def host_capabilities(self, host: str) -> dict[str, bool]:
        raise NotImplementedError

    def _unsupported(self, host: str, what: str) -> Conflict:
        raise NotImplementedError


    async def resize(self, ctx: AuthContext, request_id: str, server_id: str,
                     flavor_ref: str | None, *, host: str | None = None) -> None:
        """Resize to ``flavor_ref``, or cold-migrate (``flavor_ref`` None: the same
        flavor; ``host``: the destination asked for, 2.56) - recorded and cast."""
        action = "migrate" if flavor_ref is None else "resize"
        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        check_move_state(inst, action)
        if not inst.host:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid}: it has no "
                                       f"host")
        if not (await self.host_capabilities(inst.host)).get("supports_resize"):
            raise self._unsupported(inst.host, f"Action '{action}'")
        old = dict(inst.flavor)
        if flavor_ref is None:
            new = old
        else:
            found = await self.db.read(lambda s: _flavor(s, str(flavor_ref)))
            if found is None:
                raise BadRequest("Unable to locate requested flavor.")
            new = flavor_snapshot(*found)
            if new["id"] == old.get("id"):
                raise BadRequest("When resizing, instances must change flavor!")
            if int(new["root_gb"]) == 0 and int(old.get("root_gb") or 0) != 0:
                raise BadRequest("Resize to zero disk flavor is not allowed.")
        if host is not None:
            host = await self._destination_host_named(host)
            if host == inst.host:
                raise BadRequest(f"Unable to migrate instance ({inst.uuid}) to current host "
                                 f"({host}).")
        migration_type = "migration" if flavor_ref is None else "resize"

        def work(s: Session) -> int | None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            vm_ok, task_ok = MOVE_STATES[action]
            if row.vm_state not in vm_ok or row.task_state not in task_ok:
                return None
            _check_quota(self, s, row.project_id, old, new)
            ids = {f.flavorid: f.id for f in s.exec(select(Flavor).where(
                Flavor.flavorid.in_([str(old.get("id")), str(new["id"])]))).all()}  # type: ignore[attr-defined]
            m = Migration(instance_uuid=row.uuid, source_compute=row.host,
                          source_node=row.node or row.host, old_flavor=old, new_flavor=new,
                          old_instance_type_id=ids.get(str(old.get("id"))),
                          new_instance_type_id=ids.get(str(new["id"])),
                          migration_type=migration_type, status="pre-migrating",
                          user_id=ctx.user_id, project_id=row.project_id)
            s.add(m)
            row.task_state = states.RESIZE_PREP
            row.progress = 0
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action=action,
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id))
            s.flush()
            return m.id

        migration_id = await self.db.write(work)
        if migration_id is None:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is "
                                       f"in task_state {inst.task_state}")
        image = await self.db.read(lambda s: queries.image(s, inst.image_ref))
        spec = {"instance_uuid": inst.uuid, "vcpus": int(new["vcpus"]),
                "memory_mb": int(new["memory_mb"]),
                "disk_gb": int(new["root_gb"]) + int(new.get("ephemeral_gb") or 0)
                + (int(new.get("swap") or 0) + 1023) // 1024,
                "image_properties": dict(image.properties) if image is not None else {},
                "image_id": inst.image_ref, "extra_specs": dict(new.get("extra_specs") or {}),
                "project_id": inst.project_id, "requested_host": host}
        from novalite.compute.actions import bus_context

        await self.rpc.conductor.migrate_server(bus_context(ctx, request_id), inst.uuid,
                                                migration_id, spec)

    async def live_migrate(self, ctx: AuthContext, request_id: str, server_id: str,
                           host: str | None) -> None:
        """os-migrateLive: recorded (migration ``accepted``, task ``migrating``) and
        cast to the conductor; ``host`` the destination asked for, else the
        scheduler's choice (never the server's own host)."""
        from novalite.compute.actions import bus_context

        action = "os-migrateLive"
        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        check_move_state(inst, action)
        if not inst.host:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid}: it has no "
                                       f"host")
        if not (await self.host_capabilities(inst.host)).get("supports_live_migration"):
            raise BadRequest(f"Live migration is not supported by the hypervisor of host "
                             f"{inst.host}")
        if host is not None:
            host = await self._destination_host_named(host)
            if host == inst.host:
                raise BadRequest(f"Unable to migrate instance ({inst.uuid}) to current "
                                 f"host ({host}).")
        flavor = dict(inst.flavor)

        def work(s: Session) -> int | None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            vm_ok, task_ok = MOVE_STATES[action]
            if row.vm_state not in vm_ok or row.task_state not in task_ok:
                return None
            fid = s.exec(select(Flavor.id).where(
                Flavor.flavorid == str(flavor.get("id")))).first()
            m = Migration(instance_uuid=row.uuid, source_compute=row.host,
                          source_node=row.node or row.host, old_flavor=flavor,
                          new_flavor=flavor, old_instance_type_id=fid,
                          new_instance_type_id=fid, migration_type="live-migration",
                          status="accepted", user_id=ctx.user_id,
                          project_id=row.project_id)
            s.add(m)
            row.task_state = states.MIGRATING
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action="live-migration",
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id))
            s.flush()
            return m.id

        migration_id = await self.db.write(work)
        if migration_id is None:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is "
                                       f"in task_state {inst.task_state}")
        image = await self.db.read(lambda s: queries.image(s, inst.image_ref))
        spec = {"instance_uuid": inst.uuid, "vcpus": int(flavor.get("vcpus") or 0),
                "memory_mb": int(flavor.get("memory_mb") or 0),
                "disk_gb": int(flavor.get("root_gb") or 0)
                + int(flavor.get("ephemeral_gb") or 0)
                + (int(flavor.get("swap") or 0) + 1023) // 1024,
                "image_properties": dict(image.properties) if image is not None else {},
                "image_id": inst.image_ref,
                "extra_specs": dict(flavor.get("extra_specs") or {}),
                "project_id": inst.project_id, "requested_host": host}
        await self.rpc.conductor.live_migrate_server(bus_context(ctx, request_id), inst.uuid,
                                                     migration_id, spec)

    async def evacuate(self, ctx: AuthContext, request_id: str, server_id: str,
                       host: str | None, admin_pass: str | None, stop: bool = False) -> None:
        """evacuate: the server's compute host must be down (409 otherwise, as Nova);
        recorded (migration ``evacuation`` ``accepted``, task ``rebuilding``) and cast
        to the conductor, which places it (``host`` if given, never the old one) and
        has the new host rebuild it from its image; ``stop``: left stopped (2.95)."""
        from novalite.compute.actions import bus_context
        from novalite.compute.api import _compute_up

        action = "evacuate"
        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        if not inst.host:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid}: it has no "
                                       f"host")
        down_time = self.cfg.compute.service_down_time
        if await self.db.read(lambda s: _compute_up(s, str(inst.host), down_time)):
            raise InstanceInvalidState(f"Compute service of {inst.host} is still in use.")
        check_move_state(inst, action)
        if host is not None:
            host = await self._destination_host_named(host)
            if host == inst.host:
                raise BadRequest("The target host can't be the same one.")
        flavor = dict(inst.flavor)

        def work(s: Session) -> int | None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            vm_ok, task_ok = MOVE_STATES[action]
            if row.vm_state not in vm_ok or row.task_state not in task_ok:
                return None
            fid = s.exec(select(Flavor.id).where(
                Flavor.flavorid == str(flavor.get("id")))).first()
            m = Migration(instance_uuid=row.uuid, source_compute=row.host,
                          source_node=row.node or row.host, old_flavor=flavor,
                          new_flavor=flavor, old_instance_type_id=fid,
                          new_instance_type_id=fid, migration_type="evacuation",
                          status="accepted", user_id=ctx.user_id,
                          project_id=row.project_id)
            s.add(m)
            row.task_state = states.REBUILDING
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action="evacuate",
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id))
            s.flush()
            return m.id

        migration_id = await self.db.write(work)
        if migration_id is None:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is "
                                       f"in task_state {inst.task_state}")
        image = await self.db.read(lambda s: queries.image(s, inst.image_ref))
        spec = {"instance_uuid": inst.uuid, "vcpus": int(flavor.get("vcpus") or 0),
                "memory_mb": int(flavor.get("memory_mb") or 0),
                "disk_gb": int(flavor.get("root_gb") or 0)
                + int(flavor.get("ephemeral_gb") or 0)
                + (int(flavor.get("swap") or 0) + 1023) // 1024,
                "image_properties": dict(image.properties) if image is not None else {},
                "image_id": inst.image_ref,
                "extra_specs": dict(flavor.get("extra_specs") or {}),
                "project_id": inst.project_id, "requested_host": host}
        await self.rpc.conductor.evacuate_server(bus_context(ctx, request_id), inst.uuid,
                                                 migration_id, spec, admin_pass, stop)

    async def _destination_host_named(self, host: str) -> str:
        """2.56's ``host``: a compute host that exists (400 otherwise, as Nova)."""
        from novalite.db.models import ComputeNode

        found = await self.db.read(lambda s: s.exec(
            select(ComputeNode.host).where(ComputeNode.host == host)).first())
        if found is None:
            raise BadRequest(f"Compute host {host} could not be found.")
        return str(found)

    async def _finish_move(self, ctx: AuthContext, request_id: str,
                           server_id: str, action: str) -> None:
        """confirmResize / revertResize: state checked, the migration marked, cast."""
        inst = (await self.get(ctx, server_id)).instance
        self._check_lock(ctx, inst)
        check_move_state(inst, action)
        confirm = action == "confirmResize"

        def work(s: Session) -> int | None:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            vm_ok, task_ok = MOVE_STATES[action]
            if row.vm_state not in vm_ok or row.task_state not in task_ok:
                return -1
            m = s.exec(select(Migration).where(Migration.instance_uuid == row.uuid,
                                               Migration.status == "finished")
                       .order_by(Migration.id.desc())).first()  # type: ignore[union-attr]
            if m is None:
                return None
            m.status = "confirming" if confirm else "reverting"
            m.updated_at = utcnow()
            s.add(m)
            row.task_state = states.RESIZE_CONFIRMING if confirm else states.RESIZE_REVERTING
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=row.uuid, action=action,
                                 request_id=request_id, user_id=ctx.user_id,
                                 project_id=ctx.project_id))
            return m.id

        migration_id = await self.db.write(work)
        if migration_id == -1:
            raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is "
                                       f"in task_state {inst.task_state}")
        if migration_id is None:
            raise NotFound(f"Instance {inst.uuid} has not been resized.")
        from novalite.compute.actions import bus_context

        context = bus_context(ctx, request_id)
        if confirm:
            await self.rpc.conductor.confirm_resize(context, inst.uuid, migration_id)
        else:
            await self.rpc.conductor.revert_resize(context, inst.uuid, migration_id)

    async def confirm_resize_on_deleting(self, ctx: AuthContext, request_id: str,
                                         inst: Any) -> None:
        """Deleting a server in VERIFY_RESIZE confirms its resize first (Nova's
        ``_confirm_resize_on_deleting``): the source's kept guest and claim go too."""
        if inst.vm_state != states.RESIZED:
            return
        from novalite.compute.actions import bus_context

        def work(s: Session) -> int | None:
            m = s.exec(select(Migration).where(Migration.instance_uuid == inst.uuid,
                                               Migration.status == "finished")
                       .order_by(Migration.id.desc())).first()  # type: ignore[union-attr]
            if m is None:
                return None
            m.status = "confirming"
            m.updated_at = utcnow()
            s.add(m)
            return m.id

        migration_id = await self.db.write(work)
        if migration_id is not None:
            await self.rpc.conductor.confirm_resize(bus_context(ctx, request_id), inst.uuid,
                                                    migration_id)

    async def confirm_resize(self, ctx: AuthContext, request_id: str,
                             server_id: str) -> None:
        await self._finish_move(ctx, request_id, server_id, "confirmResize")

    async def revert_resize(self, ctx: AuthContext, request_id: str,
                            server_id: str) -> None:
        await self._finish_move(ctx, request_id, server_id, "revertResize")


def _check_quota(api: Any, s: Session, project_id: str, old: dict[str, Any],
                 new: dict[str, Any]) -> None:
    """A resize to a bigger flavor needs the growth in cores and ram within the
    project's quota (Nova's resize quota check): 403 otherwise."""
    from novalite.compute.quotas import usage

    quotas = getattr(api, "quotas", None)
    growth = {"cores": int(new.get("vcpus") or 0) - int(old.get("vcpus") or 0),
              "ram": int(new.get("memory_mb") or 0) - int(old.get("memory_mb") or 0)}
    if quotas is None or all(v <= 0 for v in growth.values()):
        return
    limits = quotas.limits_in(s, project_id)
    used = usage(s, project_id)
    for resource, more in growth.items():
        limit = limits[resource]
        if more > 0 and 0 <= limit < used[resource] + more:
            raise QuotaExceeded(f"Quota exceeded for {resource}: Requested {more}, but "
                                f"already used {used[resource]} of {limit} {resource}")


def _flavor(s: Session, flavor_id: str) -> tuple[Flavor, dict[str, str]] | None:
    flavor = s.exec(select(Flavor).where(Flavor.flavorid == flavor_id)).first()
    if flavor is None or flavor.disabled:
        return None
    specs = s.exec(select(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id == flavor.id)).all()
    return flavor, {e.key: e.value for e in specs}


__all__ = ["MOVE_STATES", "ResizeActions", "check_move_state", "flavor_snapshot"]
