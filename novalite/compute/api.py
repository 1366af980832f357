"""The compute API layer: state checks, policy, records and casts for servers.

HTTP routes call into this layer and never touch the database themselves
(DESIGN.md boundary 4). Each public method takes the caller's
:class:`~novalite.identity.service.AuthContext`.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import re
import secrets
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio
from sqlmodel import Session, col, select

from novalite import states
from novalite.compute import server_list
from novalite.compute.actions import ServerActions, bus_context
from novalite.compute.aggregates import AggregateAPI
from novalite.compute.keypairs import KeypairAPI
from novalite.compute.lifecycle import ServerLifecycle
from novalite.compute.migrations import MigrationReads
from novalite.compute.quotas import QuotaAPI
from novalite.compute.resize import ResizeActions
from novalite.compute.server_groups import ServerGroupAPI
from novalite.compute.server_list import ServerSearch
from novalite.compute.server_metadata import ServerMetadata
from novalite.compute.shelve import ShelveActions
from novalite.config import Config
from novalite.console import tokens as console_tokens
from novalite.context import AuthContext
from novalite.db import queries
from novalite.db.engine import Database
from novalite.db.models import (
    ComputeNode,
    Flavor,
    FlavorExtraSpec,
    FlavorProject,
    ImageMember,
    Instance,
    InstanceAction,
    InstanceFault,
    InstanceRow,
    KeyPair,
    Service,
    Volume,
    row_values,
    utcnow,
)
from novalite.exceptions import (
    BadRequest,
    Conflict,
    NotFound,
)
from novalite.image.glance_client import GlanceClient
from novalite.metadata.content import sanitize_hostname
from novalite.network import ports as network_ports
from novalite.network.service import NetworkAPI
from novalite.rpc import Clients, UnknownTopic
from novalite.volume import api as volume_api
from novalite.volume.api import VolumeAPI
from novalite.volume.attachments import ServerVolumes

log = structlog.get_logger("novalite.compute.api")

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                      r"[0-9a-fA-F]{12}$")

def is_uuid(value: str) -> bool:
    return bool(_UUID_RE.match(value))


def _compute_up(s: Session, host: str, down_time: float) -> bool:
    """Whether ``host``'s compute service is up by the heartbeat it records through the
    conductor (Nova's servicegroup rule): not forced down, seen within ``down_time``."""
    svc = s.exec(select(Service).where(Service.host == host,
                                       Service.binary == "nova-compute")).first()
    if svc is None or svc.forced_down or svc.updated_at is None:
        return False
    return (utcnow() - svc.updated_at).total_seconds() < down_time


def _delete_here(s: Session, row: Instance) -> Instance:
    """Delete an instance no compute host will delete: its record, address and state."""
    network_ports.release_instance(s, row.uuid)
    now = utcnow()
    row.vm_state, row.task_state, row.power_state = states.DELETED, None, 0
    row.deleted_at = row.terminated_at = now
    row.deleted = row.id or 1
    s.add(row)
    return row


def _hints(hints: dict[str, Any]) -> tuple[str | None, list[str], list[str]]:
    """(group, same_host, different_host) of ``os:scheduler_hints``; 400 when malformed."""
    if not isinstance(hints, dict):
        raise BadRequest("Invalid input for field/attribute os:scheduler_hints: expected an "
                         "object")
    group = hints.get("group")
    if isinstance(group, list) and len(group) == 1:
        group = group[0]
    if group is not None and not (isinstance(group, str) and is_uuid(group)):
        raise BadRequest(f"Invalid input for field/attribute group. Value: {group}. "
                         f"'{group}' is not a 'uuid'")
    out: list[list[str]] = []
    for key in ("same_host", "different_host"):
        value = hints.get(key) or []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and is_uuid(v)
                                                  for v in value):
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                             "expected an instance uuid or a list of them")
        out.append([str(v) for v in value])
    return group, out[0], out[1]


def hostname_for(name: str) -> str:
    """The instance's hostname from its display name, sanitized as Nova does."""
    return sanitize_hostname(name, "server")


@dataclass(frozen=True)
class Destination:
    """Where a boot asked to go: a compute host and/or node, ``force``d (``az:host``,
    the filters are skipped) or requested (2.74's ``host``, the filters still apply)."""

    host: str | None
    node: str | None
    force: bool


@dataclass
class ServerRecord:
    """An instance with the extra rows its views need."""

    instance: Instance | InstanceRow
    fault: InstanceFault | None = None
    #: (volume id, delete_on_termination) of each attached volume.
    volumes: builtins.list[tuple[str, bool]] = field(default_factory=builtins.list)


class ComputeAPI(ServerLifecycle, ServerActions, ServerMetadata, ResizeActions,
                 MigrationReads, ShelveActions):
    """Business rules for servers and flavors; the actions on a server come from
    :class:`~novalite.compute.actions.ServerActions`, its metadata and tags from
    :class:`~novalite.compute.server_metadata.ServerMetadata`."""

    def __init__(self, db: Database, cfg: Config, rpc: Clients) -> None:
        self.db = db
        self.cfg = cfg
        self.rpc = rpc
        #: Enabled flavors by flavorid, with extra specs, as boots look them up; every
        #: flavor write (HostAPI) clears it. One process owns the database's flavors.
        self.flavors: dict[str, tuple[Flavor, dict[str, str]]] = {}
        self.quotas = QuotaAPI(db, cfg.quota)
        #: An external Glance ([glance] api_servers), or None for the embedded one.
        self.glance = GlanceClient(cfg.glance.api_servers[0]) if cfg.glance.api_servers \
            else None
        self.keypairs = KeypairAPI(db, self.quotas)
        self.groups = ServerGroupAPI(db, self.quotas)
        self.aggregates = AggregateAPI(db, cfg, rpc.scheduler)
        self.volumes = VolumeAPI(db, cfg, rpc=rpc)  # the block storage service (novalite.volume)
        #: The Neutron subset (networks, ports, security groups) servers boot on.
        self.network = NetworkAPI(db, cfg, rpc)

    # -- lookups ------------------------------------------------------------------
    async def get(self, ctx: AuthContext, server_id: str) -> ServerRecord:
        """The caller's server ``server_id``; 404 for unknown ids, names, others' servers."""
        if not is_uuid(server_id):
            raise NotFound(f"Instance {server_id} could not be found.")

        def work(s: Session) -> ServerRecord | None:
            inst = s.exec(select(Instance).where(Instance.uuid == server_id,
                                                 Instance.deleted == 0)).first()
            if inst is None or (not ctx.is_admin and inst.project_id != ctx.project_id):
                return None
            return ServerRecord(inst, _latest_fault(s, [inst.uuid]).get(inst.uuid),
                                volume_api.attached_to(s, [inst.uuid]).get(inst.uuid, []))

        record = await self.db.read(work)
        if record is None:
            raise NotFound(f"Instance {server_id} could not be found.")
        return record

    async def list(self, ctx: AuthContext, search: ServerSearch) -> list[ServerRecord]:
        """The servers ``search`` selects (the route has applied who may filter by what;
        a project filter is in ``search.exact`` unless an admin asked for all projects)."""

        def work(s: Session) -> list[ServerRecord]:
            rows = server_list.run(s, search)
            faults = _latest_fault(s, [r.uuid for r in rows if r.vm_state == states.ERROR])
            volumes = volume_api.attached_to(s, [r.uuid for r in rows])
            return [ServerRecord(r, faults.get(r.uuid), volumes.get(r.uuid, [])) for r in rows]

        return await self.db.read(work)

    # -- create -------------------------------------------------------------------
    async def create(self, ctx: AuthContext, request_id: str, server: dict[str, Any],
                     networks: str, hints: dict[str, Any] | None = None, *,
                     destination: Destination | None = None
                     ) -> tuple[builtins.list[InstanceRow], str]:
        """Record the servers and cast their builds; returns (instances, admin password).

        ``hints`` are ``os:scheduler_hints``: ``group`` (a server group the servers
        join), ``same_host`` / ``different_host`` (instance uuids). Several servers
        (``min_count``/``max_count``) are placed by one scheduler call, all or none.
        ``server`` may carry ``hostname``, ``tags``, ``accessIPv4``/``accessIPv6``,
        ``description`` and ``personality`` (checked by the route); ``destination``
        restricts the scheduler to one compute host.
        """
        group_id, same_host, different_host = _hints(hints or {})
        root_bdm = _check_block_devices(server.get("block_device_mapping_v2") or [])
        root_volume = None
        if root_bdm is not None:  # boot from volume: the volume is made (or found) first
            if int(server.get("max_count", server.get("min_count", 1))) != 1:
                raise BadRequest("Block Device Mapping is Invalid: a boot from volume "
                                 "creates one server at a time.")
            root_volume = await self._root_volume(ctx, root_bdm)
        try:
            return await self._create(ctx, request_id, server, networks, group_id, same_host,
                                      different_host, destination, root_volume, root_bdm)
        except BaseException:
            if root_volume is not None and root_bdm is not None and \
                    root_bdm.get("source_type") != "volume":  # made for this boot: gone
                with trio.CancelScope(shield=True):
                    await self.volumes.destroy(root_volume)
            raise

    async def _root_volume(self, ctx: AuthContext, bdm: dict[str, Any]) -> Volume:
        """The volume a server boots from: made from an image or snapshot
        (``volume_size`` GiB), or the caller's available volume."""
        source, ref = bdm.get("source_type"), str(bdm.get("uuid") or "")
        size = bdm.get("volume_size")
        if size is not None:
            try:
                size = int(size)
            except (TypeError, ValueError):
                raise BadRequest(f"Invalid input for field/attribute volume_size. Value: "
                                 f"{size}.") from None
        if source == "volume":
            vol = (await self.volumes.get(ctx, ref)).volume
            if vol.status != "available":
                raise BadRequest(f"Invalid volume: volume {ref} status must be "
                                 f"'available'. Currently in '{vol.status}'")
            return vol
        if source == "blank":
            raise BadRequest("Block Device Mapping is Invalid: a blank volume cannot be "
                             "booted from.")
        record = await self.volumes.create(
            ctx, size=size, name="", image_id=ref if source == "image" else None,
            snapshot_id=ref if source == "snapshot" else None)
        if record.volume.status != "available":
            with trio.CancelScope(shield=True):
                await self.volumes.destroy(record.volume)
            raise BadRequest(f"Block Device Mapping is Invalid: the boot volume could not "
                             f"be made from {source} {ref}.")
        return record.volume

    async def _create(self, ctx: AuthContext, request_id: str, server: dict[str, Any],
                      networks: str, group_id: str | None, same_host: builtins.list[str],
                      different_host: builtins.list[str], destination: Destination | None,
                      root_volume: Volume | None, root_bdm: dict[str, Any] | None
                      ) -> tuple[builtins.list[InstanceRow], str]:
        image_ref = _image_ref(server, root_volume.image_id if root_volume else None)
        flavor_ref = str(server["flavorRef"])
        local_images = self.glance is None  # else the external Glance has the image
        found = self.flavors.get(flavor_ref)
        if found is None:
            found = await self.db.read(lambda s: _flavor_with_specs(s, flavor_ref))
            if found is not None:
                self.flavors[flavor_ref] = found
        if found is not None and not found[0].is_public and not ctx.is_admin:
            flavor_id = found[0].id
            shared = await self.db.read(lambda s: s.get(
                FlavorProject, (flavor_id, ctx.project_id)) is not None)
            if not shared:  # a private flavor not shared with the caller: as if none
                found = None
        if found is None:  # a 400 at create, as in Nova
            raise BadRequest(f"Flavor {flavor_ref} could not be found.")
        flavor, extra_specs = found
        requested_host = None
        if destination is not None:
            requested_host = await self._destination_host(destination)
        glance_images = None
        image: Any = None
        if not local_images:  # the external Glance decides what the caller may see
            image = await self.glance.get(image_ref, ctx.token)  # type: ignore[union-attr]
            if image is not None:
                glance_images = await self.glance.payloads(image, ctx.token)  # type: ignore[union-attr]
            _check_image(ctx, image, image_ref, flavor, local=False)
        az = server.get("availability_zone") or None
        if az and az != self.cfg.compute.availability_zone \
                and az not in await self.aggregates.zone_names():
            raise BadRequest(f"The requested availability zone is not available: {az}")
        key_data = None
        if server.get("key_name"):
            key = await self.db.read(lambda s: s.exec(select(KeyPair).where(
                KeyPair.user_id == ctx.user_id, KeyPair.name == server["key_name"])).first())
            if key is None:
                raise BadRequest("Invalid key_name provided.")
            key_data = key.public_key
        user_data = server.get("user_data")
        if user_data is not None:
            try:
                base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("User data needs to be valid base 64.") from None
        min_count = int(server.get("min_count", 1))
        max_count = int(server.get("max_count", min_count))
        if max_count < min_count:
            raise BadRequest("min_count must be <= max_count")
        requested_networks, security_group_ids = await self.network.resolve_boot(
            ctx, server.get("requested_networks"),
            [str(g.get("name")) for g in server.get("security_groups") or [] if g.get("name")],
            max_count)
        flavor_snapshot = {
            "id": flavor.flavorid, "name": flavor.name, "memory_mb": flavor.memory_mb,
            "vcpus": flavor.vcpus, "root_gb": flavor.root_gb,
            "ephemeral_gb": flavor.ephemeral_gb, "swap": flavor.swap,
            "extra_specs": extra_specs,
        }
        metadata = dict(server.get("metadata") or {})
        # The adminPass given is the one used (the config drive's admin_pass).
        admin_pass = server.get("adminPass") or secrets.token_urlsafe(9)
        config_drive = ""
        tags = list(dict.fromkeys(server.get("tags") or []))
        injected = list(server.get("personality") or [])
        reservation = f"r-{secrets.token_hex(4)}"
        name = server["name"]
        instances: builtins.list[InstanceRow] = []
        group: dict[str, Any] = {}

        def work(s: Session) -> None:
            nonlocal image, config_drive
            if local_images:  # read in the insert's transaction: one database hop a boot
                image = _check_image(ctx, queries.image(s, image_ref), image_ref, flavor,
                                     local=True, session=s)
            config_drive = _config_drive(server, image, self.cfg)
            auto_disk_config = _auto_disk_config(server, image)
            # The quota check and the insert are one step (QuotaAPI.reserving).
            count = self.quotas.allowed_count(s, ctx.project_id, flavor.vcpus,
                                              flavor.memory_mb, min_count, max_count,
                                              len(metadata))
            rows, actions = [], []
            for index in range(count):
                suffix = f"-{index + 1}" if count > 1 else ""
                display = name[: 255 - len(suffix)] + suffix  # the column holds 255
                rows.append(row_values(
                    Instance, display_name=display,
                    display_description=server.get("description"),
                    hostname=server.get("hostname") or hostname_for(display),
                    project_id=ctx.project_id, tags=list(tags), injected_files=injected,
                    access_ip_v4=server.get("accessIPv4"),
                    access_ip_v6=server.get("accessIPv6"),
                    auto_disk_config=auto_disk_config,
                    user_id=ctx.user_id,
                    availability_zone=az or self.cfg.compute.availability_zone,
                    image_ref=image.id, flavor=flavor_snapshot, vcpus=flavor.vcpus,
                    memory_mb=flavor.memory_mb, root_gb=flavor.root_gb,
                    ephemeral_gb=flavor.ephemeral_gb, vm_state=states.BUILDING,
                    task_state=states.SCHEDULING, key_name=server.get("key_name"),
                    key_data=key_data, user_data=user_data, metadata_=dict(metadata),
                    launch_index=index, reservation_id=reservation,
                    config_drive=config_drive))
                actions.append(row_values(
                    InstanceAction, instance_uuid=rows[-1]["uuid"], action="create",
                    request_id=request_id, user_id=ctx.user_id, project_id=ctx.project_id))
            if rows:
                queries.insert_instances(s, rows)
                queries.insert_actions(s, actions)
            instances[:] = [InstanceRow(r) for r in rows]  # the write may be retried
            if root_volume is not None and root_bdm is not None and rows:
                volume_api.record_boot_volume(
                    s, root_volume.id, rows[0]["uuid"],
                    bool(root_bdm.get("delete_on_termination", False)))
            group.clear()
            if group_id:
                group.update(self.groups.join(s, ctx, group_id, [i.uuid for i in instances]))

        async with self.quotas.reserving(ctx.project_id):
            await self.db.write(work)
        context = bus_context(ctx, request_id)  # with the caller's token, for image downloads
        builds: builtins.list[dict[str, Any]] = []
        for inst in instances:
            spec = {"instance_uuid": inst.uuid, "vcpus": flavor.vcpus,
                    "memory_mb": flavor.memory_mb,
                    "disk_gb": flavor.root_gb + flavor.ephemeral_gb + (flavor.swap + 1023) // 1024,
                    "availability_zone": az, "image_properties": dict(image.properties),
                    "image_id": image.id, "extra_specs": dict(extra_specs),
                    "group": dict(group) or None, "same_host": same_host,
                    "different_host": different_host, "project_id": ctx.project_id,
                    "requested_host": requested_host,
                    "force_host": bool(destination and destination.force),
                    "requested_networks": requested_networks,
                    "security_group_ids": security_group_ids}
            if glance_images is not None:
                spec["glance_images"] = glance_images
            if config_drive:  # the only place the guest reads it from
                spec["admin_password"] = admin_pass
            if root_volume is not None and root_volume.provider_location:
                spec["root_volume"] = {
                    "volume_id": root_volume.id, "size": root_volume.size * 1024 ** 3,
                    "path": self.volumes.backend.path(root_volume.provider_location),
                    "device": "/dev/vda"}
            builds.append({"instance_uuid": inst.uuid, "spec": spec})
        if len(builds) == 1:
            await self.rpc.conductor.schedule_and_build(context, builds[0]["instance_uuid"],
                                                        builds[0]["spec"], networks)
        else:  # a multi-create: placed by one scheduler call, all or none
            await self.rpc.conductor.schedule_and_build_instances(context, builds, networks)
        log.info("servers accepted", count=len(instances), ids=[i.uuid for i in instances])
        return instances, admin_pass

    # -- update / delete -----------------------------------------------------------
    async def update(self, ctx: AuthContext, server_id: str, values: dict[str, Any]
                     ) -> ServerRecord:
        """Set ``values`` (by column: display_name, display_description, hostname,
        access_ip_v4, access_ip_v6) on the caller's server."""
        record = await self.get(ctx, server_id)

        def work(s: Session) -> Instance:
            inst = s.exec(select(Instance).where(Instance.uuid == record.instance.uuid)).one()
            for column, value in values.items():
                setattr(inst, column, value)
            inst.updated_at = utcnow()
            s.add(inst)
            return inst

        record.instance = await self.db.write(work)
        return record

    async def delete(self, ctx: AuthContext, request_id: str, server_id: str, *,
                     force: bool = False) -> None:
        """Delete the server; with ``[DEFAULT] reclaim_instance_interval`` set (and not
        ``force``) it is soft-deleted instead (ServerLifecycle.soft_delete)."""
        record = await self.get(ctx, server_id)
        inst = record.instance
        self._check_lock(ctx, inst)
        if inst.task_state == states.DELETING:
            return
        await self.confirm_resize_on_deleting(ctx, request_id, inst)
        if self.cfg.DEFAULT.reclaim_instance_interval > 0 and not force \
                and await self.soft_delete(ctx, request_id, inst):
            return

        def work(s: Session) -> Instance:
            row = s.exec(select(Instance).where(Instance.uuid == inst.uuid)).one()
            row.task_state = states.DELETING
            row.updated_at = utcnow()
            s.add(row)
            s.add(InstanceAction(instance_uuid=inst.uuid, action="delete", request_id=request_id,
                                 user_id=ctx.user_id, project_id=ctx.project_id))
            console_tokens.delete_for_instance(s, inst.uuid)  # its consoles close at once
            if row.host is None or not _compute_up(s, row.host,
                                                   self.cfg.compute.service_down_time):
                # Never reached a host (or its host is down): delete the record here.
                _delete_here(s, row)
            return row

        row = await self.db.write(work)
        # Its volumes: deleted with it (delete_on_termination) or available again.
        await ServerVolumes(self.volumes, self.rpc).release_instance(row.uuid)
        context = bus_context(ctx, request_id)
        if not row.deleted:
            try:
                await self.rpc.compute(str(row.host)).terminate_instance(context, row.uuid)
                return
            except UnknownTopic:  # up by its last heartbeat, but no longer served
                row = await self.db.write(lambda s: _delete_here(s, s.exec(
                    select(Instance).where(Instance.uuid == row.uuid)).one()))
        try:
            await self.rpc.scheduler.release(context, row.uuid)
        except Exception:
            log.exception("releasing claim failed", instance=row.uuid)

    async def _destination_host(self, destination: Destination) -> str:
        """The compute host a requested destination names; 400 when there is none (Nova's
        ``ComputeHostNotFound``)."""
        host, node = destination.host, destination.node

        def work(s: Session) -> str | None:
            q = select(ComputeNode)
            if host:
                q = q.where(ComputeNode.host == host)
            if node:
                q = q.where(ComputeNode.hypervisor_hostname == node)
            found = s.exec(q).first()
            return found.host if found is not None else None

        found = await self.db.read(work)
        if found is None:
            raise BadRequest(f"Compute host {host or node} could not be found.")
        return found

    # -- flavors ------------------------------------------------------------------
    async def flavor(self, ctx: AuthContext, flavor_id: str) -> tuple[Flavor, dict[str, str]]:
        found = await self.db.read(lambda s: _flavor_with_specs(s, flavor_id))
        if found is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        return found


def _auto_disk_config(server: dict[str, Any], image: Any) -> bool:
    """``OS-DCF:diskConfig`` as asked (AUTO: True), else the image's ``auto_disk_config``
    property, as Nova's; AUTO for an image whose property is ``disabled`` is a 400."""
    prop = str((image.properties or {}).get("auto_disk_config", "")).strip().lower()
    asked = server.get("OS-DCF:diskConfig")
    if asked == "AUTO" and prop == "disabled":
        raise BadRequest(f"Requested image {image.id} has automatic disk resize disabled.")
    if asked is not None:
        return bool(asked == "AUTO")
    return prop in ("true", "t", "1", "yes", "y", "on")


def _config_drive(server: dict[str, Any], image: Any, cfg: Config) -> str:
    """``"True"`` when the server gets a config drive (Nova's ``configdrive.required_by``:
    asked for, ``[DEFAULT] force_config_drive``, or the image's
    ``img_config_drive=mandatory``), else ``""``: the column as Nova shows it."""
    asked = str(server.get("config_drive", "")).lower() in ("true", "1", "on", "yes")
    mandatory = str((image.properties or {}).get("img_config_drive", "")) == "mandatory"
    return "True" if asked or mandatory or cfg.DEFAULT.force_config_drive else ""


def _check_image(ctx: AuthContext, image: Any, image_ref: str, flavor: Flavor, *,
                 local: bool, session: Session | None = None) -> Any:
    """``image`` if the caller may boot it with ``flavor``; else Nova's error.

    The embedded image service's rules (``local``): public and community images, the
    project's own, and ``shared`` images the project is a member of (Glance lets a
    member read a shared image whatever its answer; listing is what the answer gates).
    """
    if local and image is not None and not ctx.is_admin and image.visibility not in (
            "public", "community") and image.owner != ctx.project_id:
        member = (image.visibility == "shared" and session is not None
                  and session.get(ImageMember, (image.id, ctx.project_id)) is not None)
        if not member:
            image = None  # another project's private image: as if there were none
    if image is None:
        raise BadRequest(f"Image {image_ref} could not be found.")
    if image.status != "active":
        raise Conflict(f"Image {image_ref} is not active.")
    if flavor.memory_mb < image.min_ram:
        raise BadRequest("Flavor's memory is too small for requested image.")
    if flavor.root_gb and flavor.root_gb < image.min_disk:
        raise BadRequest("Flavor's disk is too small for requested image.")
    return image


def _flavor_with_specs(s: Session, flavor_id: str) -> tuple[Flavor, dict[str, str]] | None:
    """An enabled flavor by its flavorid, with its extra specs; None if there is none."""
    flavor = s.exec(select(Flavor).where(Flavor.flavorid == flavor_id)).first()
    if flavor is None or flavor.disabled:
        return None
    specs = s.exec(select(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id == flavor.id)).all()
    return flavor, {e.key: e.value for e in specs}


def _check_block_devices(bdms: builtins.list[Any]) -> dict[str, Any] | None:
    """Nova's 400s for ``block_device_mapping_v2``; returns the mapping of a boot from
    volume (``boot_index`` 0, ``destination_type`` volume), or None. Other mappings to
    volumes (volumes attached at boot) are refused with a 400, never dropped: attach
    them once the server is active."""
    root = None
    for bdm in bdms:
        if not isinstance(bdm, dict):
            raise BadRequest("Block Device Mapping is Invalid: a mapping must be an object.")
        source = bdm.get("source_type", "image" if bdm.get("uuid") else "blank")
        dest = bdm.get("destination_type", "volume" if source in ("volume", "snapshot")
                       else "local")
        if source not in ("image", "volume", "snapshot", "blank"):
            raise BadRequest(f"Block Device Mapping is Invalid: Invalid source_type "
                             f"{source}.")
        if dest not in ("local", "volume"):
            raise BadRequest(f"Block Device Mapping is Invalid: Invalid destination_type "
                             f"{dest}.")
        if dest == "volume" and str(bdm.get("boot_index", "")) in ("0",) and root is None:
            root = {**bdm, "source_type": source}
        elif dest == "volume":
            raise BadRequest("Block Device Mapping is Invalid: only the boot volume "
                             "(boot_index 0, destination_type 'volume') is supported; "
                             "attach other volumes once the server is active.")
    return root


def _image_ref(server: dict[str, Any], fallback: str | None = None) -> str:
    ref = server.get("imageRef") or fallback or ""
    if not ref:
        for bdm in server.get("block_device_mapping_v2") or []:
            if bdm.get("source_type") == "image" and str(bdm.get("boot_index", "0")) == "0":
                ref = bdm.get("uuid", "")
    ref = str(ref).rsplit("/", 1)[-1]
    if not ref:
        raise BadRequest("Missing imageRef attribute")
    if not is_uuid(ref):
        raise BadRequest(f"Invalid imageRef provided: {ref}")
    return str(uuidlib.UUID(ref))


def _latest_fault(s: Session, uuids: list[str]) -> dict[str, InstanceFault]:
    if not uuids:
        return {}
    rows = s.exec(select(InstanceFault).where(InstanceFault.instance_uuid.in_(uuids))  # type: ignore[attr-defined]
                  .order_by(col(InstanceFault.id))).all()
    return {r.instance_uuid: r for r in rows}
