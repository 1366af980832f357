"""Volumes on a QEMU guest: QMP hot-plug (contract 1.4).

Attach is ``blockdev-add`` (a raw node over the volume's file or block device) then
``device_add virtio-blk-pci`` with the volume's serial; detach is ``device_del`` and
then, once QEMU reports ``DEVICE_DELETED`` (the guest acknowledged the unplug),
``blockdev-del``. Each attached volume is kept in the guest's ``launch.json``
(:class:`~drivers.qemu.process.LaunchConfig.volumes`), so a guest started again
(power on, a reboot of the host) gets the same disks on its command line
(:func:`blockdev_args`) and an adopted guest's detach knows its node.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import trio

from novalite.virt.driver import DriverError

from .qmp import QmpClient, QmpError

#: Seconds a guest has to release a disk after ``device_del``.
DETACH_TIMEOUT = 30.0


def node_name(volume_id: str) -> str:
    """The block node of a volume (QEMU's node names hold at most 31 characters)."""
    return "vol" + volume_id.replace("-", "")[:24]


def device_id(volume_id: str) -> str:
    return f"volume-{volume_id}"


def protocol(path: str) -> str:
    """QEMU's protocol driver for a volume's path: ``host_device`` for a block device
    (an LVM volume; QEMU's ``file`` driver refuses those), else ``file``."""
    try:
        return "host_device" if stat.S_ISBLK(os.stat(path).st_mode) else "file"
    except OSError:
        return "file"


def blockdev_args(volumes: list[dict[str, Any]]) -> list[str]:
    """The command-line arguments that attach ``volumes`` (launch.json's records)."""
    argv: list[str] = []
    for vol in volumes:
        node = node_name(vol["volume_id"])
        path = vol["path"].replace(",", ",,")
        argv += ["-blockdev", f"driver=raw,node-name={node},file.driver="
                              f"{protocol(vol['path'])},file.filename={path},cache.direct=off"
                              + (",read-only=on" if vol.get("read_only") else ""),
                 "-device", f"virtio-blk-pci,drive={node},id={device_id(vol['volume_id'])},"
                            f"serial={vol['volume_id'][:20]}"]
    return argv


async def hot_plug(qmp_path: str, volume: dict[str, Any]) -> None:
    """``blockdev-add`` + ``device_add``; the node is removed again if the device is
    refused. Raises :class:`DriverError` with QEMU's reason."""
    node = node_name(volume["volume_id"])
    try:
        async with await QmpClient.connect(qmp_path) as qmp:
            await qmp.execute("blockdev-add", {
                "driver": "raw", "node-name": node, "read-only": bool(volume.get("read_only")),
                "file": {"driver": protocol(volume["path"]), "filename": volume["path"]}})
            try:
                await qmp.execute("device_add", {
                    "driver": "virtio-blk-pci", "drive": node,
                    "id": device_id(volume["volume_id"]), "serial": volume["volume_id"][:20]})
            except QmpError:
                with trio.CancelScope(shield=True):
                    await qmp.execute("blockdev-del", {"node-name": node})
                raise
    except QmpError as exc:
        raise DriverError(f"cannot attach volume {volume['volume_id']}: {exc}") from None


async def hot_unplug(qmp_path: str, volume_id: str, timeout: float = DETACH_TIMEOUT) -> None:
    """``device_del``, wait for ``DEVICE_DELETED`` (the guest released the disk), then
    ``blockdev-del``. Raises :class:`DriverError` when the guest does not release the
    disk within ``timeout`` (it stays attached; QEMU finishes the unplug if the guest
    acknowledges later)."""
    dev, node = device_id(volume_id), node_name(volume_id)
    try:
        async with await QmpClient.connect(qmp_path) as qmp:
            present = await _has_device(qmp, dev)
            if present:
                try:
                    await qmp.execute("device_del", {"id": dev})
                except QmpError as exc:
                    if "DeviceNotFound" not in str(exc) and "not found" not in str(exc):
                        raise
                with trio.move_on_after(timeout) as waited:
                    while present:
                        event = await qmp.next_event()
                        if event.get("event") == "DEVICE_DELETED" and \
                                (event.get("data") or {}).get("device") == dev:
                            present = False
                if waited.cancelled_caught and await _has_device(qmp, dev):
                    raise DriverError(f"the guest did not release volume {volume_id} within "
                                      f"{timeout:.0f}s; it stays attached")
            nodes = await qmp.execute("query-named-block-nodes")
            if any(n.get("node-name") == node for n in nodes or []):
                await qmp.execute("blockdev-del", {"node-name": node})
    except QmpError as exc:
        raise DriverError(f"cannot detach volume {volume_id}: {exc}") from None


async def unplug_strays(qmp_path: str, keep: set[str]) -> list[str]:
    """Remove from a running guest every volume disk not in ``keep`` (the volumes its
    launch.json records): what a service killed between QEMU's hot-plug and that
    record left behind. Such a volume is ``available`` again after the restart, so the
    guest must not keep it (another server could attach it; a re-attach would find
    QEMU's node taken). Returns the volume ids removed."""
    removed = []
    async with await QmpClient.connect(qmp_path) as qmp:
        tree = await qmp.execute("qom-list", {"path": "/machine/peripheral"})
        nodes = await qmp.execute("query-named-block-nodes")
    keep_nodes = {node_name(v) for v in keep}
    for item in tree or []:
        name = str(item.get("name", ""))
        if name.startswith("volume-") and name[len("volume-"):] not in keep:
            await hot_unplug(qmp_path, name[len("volume-"):])
            removed.append(name[len("volume-"):])
    unplugged = {node_name(v) for v in removed}
    orphans = {str(n.get("node-name")) for n in nodes or []
               if _is_volume_node(str(n.get("node-name") or ""))} - keep_nodes - unplugged
    if orphans:  # killed between blockdev-add and device_add: a node with no disk
        try:
            async with await QmpClient.connect(qmp_path) as qmp:
                for node in sorted(orphans):
                    await qmp.execute("blockdev-del", {"node-name": node})
        except QmpError as exc:
            raise DriverError(f"cannot remove a stray volume node: {exc}") from None
        removed.extend(sorted(orphans))
    return removed


def _is_volume_node(name: str) -> bool:
    """A node :func:`node_name` made ("vol" and 24 hex digits)."""
    return len(name) == 27 and name.startswith("vol") and all(
        ch in "0123456789abcdef" for ch in name[3:])


async def _has_device(qmp: QmpClient, dev: str) -> bool:
    """Whether a ``volume-...`` device of that id is on the guest's PCI bus."""
    tree = await qmp.execute("qom-list", {"path": "/machine/peripheral"})
    return any(item.get("name") == dev for item in tree or [])


async def notify_resize(qmp_path: str, volume_id: str, new_size: int) -> None:
    """``block_resize`` of the volume's node: the guest sees the new capacity."""
    try:
        async with await QmpClient.connect(qmp_path) as qmp:
            await qmp.execute("block_resize", {"node-name": node_name(volume_id),
                                               "size": new_size})
    except QmpError as exc:
        raise DriverError(f"cannot extend volume {volume_id}: {exc}") from None
