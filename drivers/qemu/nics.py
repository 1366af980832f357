"""Network interfaces hot-plugged into a running QEMU guest (contract 1.6).

Attach is QMP ``netdev_add`` (user-mode networking whose DHCP leases the port's
address, or the compute host's tap on a bridge) then ``device_add`` of the guest's NIC
model with the port's MAC; detach is ``device_del``, then, once QEMU reports
``DEVICE_DELETED`` (the guest let the device go), ``netdev_del``. Ids come from the
MAC (:func:`drivers.qemu.process.nic_ids`), so a NIC has the same ones whether it was
on the command line or hot-plugged; each NIC is kept in ``launch.json`` so a guest
started again gets it on its command line.

Example::

    await hot_plug(qmp_path, nic, "virtio-net-pci", "vm1")
    await hot_unplug(qmp_path, nic)
"""

from __future__ import annotations

from typing import Any

import trio

from novalite.virt.driver import DriverError

from . import process as proc
from .qmp import QmpClient, QmpError

#: Seconds a guest has to let a NIC go after ``device_del``.
DETACH_TIMEOUT = 30.0


def _netdev(nic: proc.NicConfig, netdev: str, hostname: str) -> dict[str, Any]:
    if nic.tap:
        return {"type": "tap", "id": netdev, "ifname": nic.tap, "script": "no",
                "downscript": "no"}
    return {"type": "user", "id": netdev, **proc.user_netdev(nic, hostname)}


async def hot_plug(qmp_path: str, nic: proc.NicConfig, model: str, hostname: str) -> None:
    """``netdev_add`` + ``device_add``; the netdev is removed again if the device is
    refused. Raises :class:`DriverError` with QEMU's reason."""
    netdev, device = proc.nic_ids(nic)
    try:
        async with await QmpClient.connect(qmp_path) as qmp:
            await qmp.execute("netdev_add", _netdev(nic, netdev, hostname))
            try:
                await qmp.execute("device_add", {"driver": model, "netdev": netdev,
                                                 "mac": nic.mac, "id": device, "romfile": ""})
            except QmpError:
                with trio.CancelScope(shield=True):
                    await qmp.execute("netdev_del", {"id": netdev})
                raise
    except QmpError as exc:
        raise DriverError(f"cannot attach interface {nic.mac}: {exc}") from None


async def hot_unplug(qmp_path: str, nic: proc.NicConfig,
                     timeout: float = DETACH_TIMEOUT) -> None:
    """``device_del``, wait for ``DEVICE_DELETED``, then ``netdev_del``. Raises
    :class:`DriverError` when the guest keeps the NIC past ``timeout``, or when the
    NIC has no id (a guest started before NICs had ids: stop and start it first)."""
    netdev, device = proc.nic_ids(nic)
    try:
        async with await QmpClient.connect(qmp_path) as qmp:
            present = await _has_device(qmp, device)
            if not present:
                raise DriverError(f"interface {nic.mac} has no device id in this QEMU (it "
                                  "was started before interfaces had ids): stop and start "
                                  "the server, then detach it")
            await qmp.execute("device_del", {"id": device})
            with trio.move_on_after(timeout):
                while present:
                    event = await qmp.next_event()
                    if event.get("event") == "DEVICE_DELETED" and \
                            (event.get("data") or {}).get("device") == device:
                        present = False
            if present and await _has_device(qmp, device):
                raise DriverError(f"the guest did not let interface {nic.mac} go within "
                                  f"{timeout:.0f}s; it stays attached")
            await qmp.execute("netdev_del", {"id": netdev})
    except QmpError as exc:
        raise DriverError(f"cannot detach interface {nic.mac}: {exc}") from None


async def _has_device(qmp: QmpClient, device: str) -> bool:
    tree = await qmp.execute("qom-list", {"path": "/machine/peripheral"})
    return any(item.get("name") == device for item in tree or [])
