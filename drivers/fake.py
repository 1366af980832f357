"""The fake driver: guests that live in a small state file instead of a hypervisor.

It is a complete implementation of the driver contract, and a product
feature: scale tests (thousands of hosts in one process), demos on machines
without QEMU, and the reference a driver author reads first.

Guests persist across service restarts (a JSON file per host under the
driver's state directory), so adoption works exactly as with real drivers.

Options (``[fake]`` in novalite.toml):

``vcpus``, ``memory_mb``, ``local_gb``
    The capacity each fake host reports.
``spawn_delay``
    Seconds a spawn takes (default 0).
``fail_spawn_on``
    A list of host names on which every spawn fails with :class:`SpawnFailed`,
    to exercise rescheduling and faults. An instance whose metadata holds
    ``fake_fail_spawn`` fails on every host.
``action_delay``
    Seconds a rebuild, rescue or unrescue takes (default 0; contract 1.4).
``fail_actions``
    Names of driver methods (``rebuild``, ``rescue``, ``unrescue``,
    ``trigger_crash_dump``) that fail with :class:`DriverError`, to exercise the
    error paths (default none); an instance whose metadata holds
    ``fake_fail_actions`` (comma-separated names) fails those on every host.

``live_migration_delay``
    Seconds a live migration takes (default 0), while the guest keeps running.
``fail_live_migration_to``
    Destination host names to which every live migration fails (the guest keeps
    running on its source).

Rebuild, rescue and crash dumps (contract 1.4): a rebuild replaces the guest's
image in place; a rescued guest boots the rescue image and lists the guest's own
disk as its second disk (``disks`` in the state file); a crash dump writes
``NMI received`` to the console.

Resize and cold migration (contract 1.4): the guest's record is its "disk"; the
source keeps it under ``<uuid>_resize`` (as libvirt keeps ``<dir>_resize``) until
the move is confirmed or reverted, and hands the destination a copy in
``disk_info`` (plain data: the destination never reads the source's state file).

Consoles (contract 1.3): a serial console, in process, that echoes what is typed
(as a terminal in echo mode does) and answers each line with
``<hostname>: <the line>``; no VNC console (``supports_vnc_console`` False, so the
API answers "not supported" as Nova does for a driver without one).
"""

from __future__ import annotations

import json
import os
from typing import Any

import trio

from novalite.virt.driver import (
    DemoImage,
    Driver,
    DriverContext,
    DriverError,
    HostCheck,
    HostResources,
    ImageInfo,
    InstanceInfo,
    InstanceNotFound,
    InstanceSpec,
    NetworkInfo,
    PowerState,
    SpawnFailed,
    VolumeConnection,
)


class FakeDriver(Driver):
    """In-memory guests, persisted to ``guests.json`` so they survive restarts."""

    name = "fake"
    contract_version = "1.4"
    hypervisor_type = "fake"
    #: ``driver = "auto"`` falls back to simulated guests when no hypervisor volunteers.
    auto_priority = 100
    option_defaults = {
        "vcpus": 16,
        "memory_mb": 32768,
        "local_gb": 1024,
        "spawn_delay": 0.0,
        "fail_spawn_on": [],
        "action_delay": 0.0,
        "fail_actions": [],
        "live_migration_delay": 0.0,
        "fail_live_migration_to": [],
    }
    capabilities = {
        "supports_reboot": True,
        "supports_power_off": True,
        "supports_pause": True,
        "supports_suspend": True,
        "supports_console_output": True,
        "supports_snapshot": True,
        "supports_serial_console": True,
        "supports_rebuild": True,
        "supports_rescue": True,
        "supports_stable_rescue": True,
        "supports_trigger_crash_dump": True,
        "supports_resize": True,
        "supports_live_migration": True,
        "supports_attach_volume": True,
        "supports_extend_volume": True,
        "supports_boot_from_volume": True,
        "supports_attach_interface": True,
    }

    @classmethod
    def auto_select(cls) -> HostCheck:
        return HostCheck(True, "no usable hypervisor; guests are simulated")

    @classmethod
    def demo_image(cls, work_dir: str) -> DemoImage:
        """The qemu driver's boot sector, so the same ``demo`` image runs on both."""
        from .qemu.bootsector import demo_image

        return demo_image()

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        opts = context.options
        self.vcpus = int(opts.get("vcpus", 16))
        self.memory_mb = int(opts.get("memory_mb", 32768))
        self.local_gb = int(opts.get("local_gb", 1024))
        self.spawn_delay = float(opts.get("spawn_delay", 0.0))
        self.fail_hosts = set(opts.get("fail_spawn_on", []))
        self.action_delay = float(opts.get("action_delay", 0.0))
        self.fail_actions = set(opts.get("fail_actions", []))
        self.live_migration_delay = float(opts.get("live_migration_delay", 0.0))
        self.fail_live_to = set(opts.get("fail_live_migration_to", []))
        self.guests: dict[str, dict[str, Any]] = {}
        self._file = os.path.join(context.state_path, "guests.json")
        self._dirty = False

    # -- persistence ---------------------------------------------------------
    def _save(self) -> None:
        os.makedirs(self.context.state_path, exist_ok=True)
        tmp = self._file + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(self.guests))  # one C call; json.dump writes piece by piece
        os.replace(tmp, self._file)

    def _guest(self, uuid: str) -> dict[str, Any]:
        try:
            return self.guests[uuid]
        except KeyError:
            raise InstanceNotFound(f"fake guest {uuid} not found") from None

    def _spawned(self, uuid: str, guest: dict[str, Any]) -> None:
        self.guests[uuid] = guest
        self._save()

    def _set(self, uuid: str, state: PowerState, line: str) -> None:
        guest = self._guest(uuid)
        guest["state"] = int(state)
        guest["reason"] = None if state == PowerState.RUNNING else f"{line} by request"
        guest["console"].append(line)
        del guest["console"][:-200]
        self._save()

    # -- contract ------------------------------------------------------------
    async def init_host(self) -> None:
        if os.path.exists(self._file):
            with open(self._file) as f:
                self.guests = json.load(f)

    async def list_instances(self) -> list[str]:
        return [uuid for uuid in self.guests if not uuid.endswith(_KEPT)]

    async def spawn(
        self, instance: InstanceSpec, image: ImageInfo, network: list[NetworkInfo]
    ) -> None:
        if self.spawn_delay:
            await trio.sleep(self.spawn_delay)
        if self.context.host in self.fail_hosts or "fake_fail_spawn" in instance.metadata:
            raise SpawnFailed(f"fake spawn failure on host {self.context.host}")
        addresses = ", ".join(n.address for n in network) or "none"
        restored = _fake_snapshot(image.path)
        self.guests[instance.uuid] = {
            "name": instance.name,
            "vcpus": instance.vcpus,
            "memory_mb": instance.memory_mb,
            "state": int(PowerState.RUNNING),
            "hostname": instance.hostname,
            "image": image.id,
            "disks": [f"disk of image {image.id}"],
            "fail_actions": [a for a in str(instance.metadata.get("fake_fail_actions", ""))
                             .split(",") if a],
            "console": [
                *(restored.get("console") or []),
                f"fake guest {instance.hostname} booting image {image.name}",
                f"addresses: {addresses}",
                f"{instance.hostname} login:",
            ],
        }
        self._save()

    async def destroy(self, uuid: str) -> None:
        if self.guests.pop(uuid, None) is not None:
            self._save()

    async def get_info(self, uuid: str) -> InstanceInfo:
        guest = self._guest(uuid)
        return InstanceInfo(
            state=PowerState(guest["state"]),
            handle=f"fake:{uuid[:8]}",
            vcpus=guest["vcpus"],
            memory_mb=guest["memory_mb"],
            reason=guest.get("reason"),
        )

    async def get_available_resource(self) -> HostResources:
        return HostResources(
            vcpus=self.vcpus,
            memory_mb=self.memory_mb,
            local_gb=self.local_gb,
            hypervisor_type="fake",
            hypervisor_version=1000,
            hypervisor_hostname=self.context.host,
            cpu_info={"arch": "x86_64", "model": "fake"},
            supported_instances=(("x86_64", "fake", "hvm"),),
        )

    async def reboot(self, uuid: str, reboot_type: str) -> None:
        self._set(uuid, PowerState.RUNNING, f"reboot ({reboot_type.lower()})")

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        self._set(uuid, PowerState.SHUTDOWN, "powered off")

    async def power_on(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING, "powered on")

    async def pause(self, uuid: str) -> None:
        self._set(uuid, PowerState.PAUSED, "paused")

    async def unpause(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING, "unpaused")

    async def suspend(self, uuid: str) -> None:
        self._set(uuid, PowerState.SUSPENDED, "suspended")

    async def resume(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING, "resumed")

    async def get_console_output(self, uuid: str) -> str:
        return "\n".join(self._guest(uuid)["console"]) + "\n"

    async def open_serial_console(self, uuid: str) -> trio.abc.Stream:
        """An echoing line console (see the module docstring); the guest must run."""
        guest = self._guest(uuid)
        if guest["state"] != PowerState.RUNNING:
            raise DriverError(f"guest {uuid} is not running")
        return FakeSerialConsole(str(guest.get("hostname") or guest["name"]))

    async def snapshot(self, uuid: str, dest_path: str) -> tuple[str, str]:
        guest = self._guest(uuid)
        with open(dest_path, "wb") as f:
            # The guest's console lines are its "disk": a guest spawned from this
            # snapshot starts with them (shelve/unshelve keeps the disk's contents).
            f.write(json.dumps({"fake_snapshot_of": uuid, "name": guest["name"],
                                "console": guest["console"]}).encode())
        return "raw", "bare"

    # -- resize and cold migration (contract 1.4) -------------------------------------
    async def migrate_disk_and_power_off(self, uuid: str, dest_host: str,
                                         instance: InstanceSpec) -> dict[str, Any]:
        guest = self._guest(uuid)
        self._set(uuid, PowerState.SHUTDOWN, f"powered off to move to {dest_host}")
        self.guests[uuid + _KEPT] = self.guests.pop(uuid)
        self._save()
        return {"fake_guest": json.loads(json.dumps(guest)), "source": self.context.host}

    async def finish_migration(self, instance: InstanceSpec, disk_info: dict[str, Any],
                               network: list[NetworkInfo], power_on: bool,
                               image: ImageInfo | None = None) -> None:
        guest = dict(disk_info["fake_guest"])
        guest.update(name=instance.name, vcpus=instance.vcpus, memory_mb=instance.memory_mb,
                     root_gb=instance.root_gb)
        guest["console"] = [*guest["console"],
                            f"disk from {disk_info['source']} on {self.context.host}: "
                            f"{instance.vcpus} vCPUs, {instance.memory_mb} MiB, "
                            f"{instance.root_gb} GiB"]
        guest["state"] = int(PowerState.RUNNING if power_on else PowerState.SHUTDOWN)
        guest["reason"] = None if power_on else "powered off by request"
        self._spawned(instance.uuid, guest)

    async def confirm_migration(self, uuid: str) -> None:
        if self.guests.pop(uuid + _KEPT, None) is not None:
            self._save()

    async def finish_revert_migration(self, uuid: str, power_on: bool) -> None:
        kept = self.guests.pop(uuid + _KEPT, None)
        if kept is None:
            raise InstanceNotFound(f"fake guest {uuid} kept for a revert not found")
        self.guests[uuid] = kept
        self._set(uuid, PowerState.RUNNING if power_on else PowerState.SHUTDOWN,
                  "resize reverted")


    # -- live migration (contract 1.4) ------------------------------------------------
    async def live_migration(self, uuid: str, dest_host: str,
                             instance: InstanceSpec, *,
                             migrate_data: dict[str, Any] | None = None) -> dict[str, Any]:
        guest = self._guest(uuid)
        if self.live_migration_delay:
            await trio.sleep(self.live_migration_delay)
        if dest_host in self.fail_live_to:
            raise DriverError(f"fake live migration to {dest_host} failed")
        return {"fake_guest": json.loads(json.dumps(guest)), "source": self.context.host}

    async def post_live_migration_at_destination(self, instance: InstanceSpec,
                                                 migrate_data: dict[str, Any],
                                                 network: list[NetworkInfo]) -> None:
        guest = dict(migrate_data["fake_guest"])
        guest["console"] = [*guest["console"],
                            f"live-migrated from {migrate_data['source']} to "
                            f"{self.context.host} without a restart"]
        self._spawned(instance.uuid, guest)

    async def post_live_migration(self, uuid: str) -> None:
        await self.destroy(uuid)

    async def _action(self, name: str, uuid: str) -> dict[str, Any]:
        guest = self._guest(uuid)
        if self.action_delay:
            await trio.sleep(self.action_delay)
        if name in self.fail_actions or name in guest.get("fail_actions", ()):
            raise DriverError(f"fake {name} failure on host {self.context.host}")
        return guest

    async def rebuild(self, instance: InstanceSpec, image: ImageInfo,
                      network: list[NetworkInfo]) -> None:
        """A new disk from ``image``, booted: the console starts over with the new image."""
        guest = await self._action("rebuild", instance.uuid)
        guest.update(hostname=instance.hostname, image=image.id, state=int(PowerState.RUNNING),
                     reason=None, disks=[f"disk of image {image.id}"])
        guest.pop("rescue", None)
        guest["console"] = [f"fake guest {instance.hostname} booting image {image.name}",
                            f"{instance.hostname} login:"]
        self._save()

    async def rescue(self, instance: InstanceSpec, rescue_image: ImageInfo,
                     network: list[NetworkInfo], *, stable: bool = False) -> None:
        guest = await self._action("rescue", instance.uuid)
        own = guest["disks"][0]
        rescue_disk = f"rescue disk of image {rescue_image.id}"
        guest["rescue"] = rescue_image.id
        guest["disks"] = [own, rescue_disk] if stable else [rescue_disk, own]
        guest["state"], guest["reason"] = int(PowerState.RUNNING), None
        guest["console"].append(f"rescue: booting image {rescue_image.name}, "
                                f"{'stable device' if stable else 'disk of the guest second'}")
        self._save()

    async def unrescue(self, uuid: str) -> None:
        guest = await self._action("unrescue", uuid)
        guest.pop("rescue", None)
        guest["disks"] = [d for d in guest["disks"] if not d.startswith("rescue disk")]
        guest["state"], guest["reason"] = int(PowerState.RUNNING), None
        guest["console"].append("unrescue: booting the guest's own disk")
        self._save()

    async def trigger_crash_dump(self, uuid: str) -> None:
        guest = await self._action("trigger_crash_dump", uuid)
        if guest["state"] != PowerState.RUNNING:
            raise DriverError(f"guest {uuid} is not running")
        guest["console"].append("NMI received")
        self._save()

    async def attach_volume(self, uuid: str, volume: VolumeConnection) -> None:
        """Remember the volume on the guest (its data is not read: guests are simulated)."""
        guest = self._guest(uuid)
        volumes = guest.setdefault("volumes", {})
        if volume.volume_id in volumes:
            raise DriverError(f"volume {volume.volume_id} is already attached to {uuid}")
        volumes[volume.volume_id] = {"path": volume.path, "size": volume.size,
                                     "device": volume.device}
        guest["console"].append(f"attached volume {volume.volume_id}")
        self._save()

    async def detach_volume(self, uuid: str, volume_id: str) -> None:
        guest = self._guest(uuid)
        if guest.setdefault("volumes", {}).pop(volume_id, None) is not None:
            guest["console"].append(f"detached volume {volume_id}")
            self._save()

    async def attach_interface(self, uuid: str, network: NetworkInfo) -> None:
        """Remember the NIC on the guest (by MAC; traffic is not simulated)."""
        guest = self._guest(uuid)
        nics = guest.setdefault("nics", {})
        if network.mac not in nics:
            nics[network.mac] = {"address": network.address, "network": network.network}
            guest["console"].append(f"attached interface {network.mac}")
            self._save()

    async def detach_interface(self, uuid: str, network: NetworkInfo) -> None:
        guest = self._guest(uuid)
        if guest.setdefault("nics", {}).pop(network.mac, None) is not None:
            guest["console"].append(f"detached interface {network.mac}")
            self._save()

    async def extend_volume(self, uuid: str, volume_id: str, new_size: int) -> None:
        volumes = self._guest(uuid).setdefault("volumes", {})
        if volume_id not in volumes:
            raise DriverError(f"volume {volume_id} is not attached to {uuid}")
        volumes[volume_id]["size"] = new_size
        self._save()


def _fake_snapshot(path: str) -> dict[str, Any]:
    """What a fake snapshot at ``path`` holds; {} for any other image."""
    try:
        if os.path.getsize(path) > 1 << 20:
            return {}
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    if not data.startswith(b'{"fake_snapshot_of"'):
        return {}
    try:
        found = json.loads(data)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


#: The suffix of a guest kept on the source host during a resize or cold migration.
_KEPT = "_resize"



class FakeSerialConsole(trio.abc.Stream):
    """The fake guest's serial console: echoes input, answers each line."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self._send, self._receive = trio.open_memory_channel[bytes](64)
        self._line = bytearray()
        self._pending = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        out = bytearray()
        for byte in bytes(data):
            if byte in (10, 13):
                out += b"\r\n" + f"{self.hostname}: ".encode() + bytes(self._line) + b"\r\n"
                self._line.clear()
            else:
                self._line.append(byte)
                out.append(byte)
        try:
            await self._send.send(bytes(out))
        except trio.ClosedResourceError:
            raise trio.ClosedResourceError("console closed") from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._pending:
            try:
                self._pending = await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return b""
        size = max_bytes or len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()
