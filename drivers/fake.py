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
    }
    capabilities = {
        "supports_reboot": True,
        "supports_power_off": True,
        "supports_pause": True,
        "supports_suspend": True,
        "supports_console_output": True,
        "supports_snapshot": True,
        "supports_serial_console": True,
        "supports_attach_volume": True,
        "supports_extend_volume": True,
        "supports_boot_from_volume": True,
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
        return list(self.guests)

    async def spawn(
        self, instance: InstanceSpec, image: ImageInfo, network: list[NetworkInfo]
    ) -> None:
        if self.spawn_delay:
            await trio.sleep(self.spawn_delay)
        if self.context.host in self.fail_hosts or "fake_fail_spawn" in instance.metadata:
            raise SpawnFailed(f"fake spawn failure on host {self.context.host}")
        addresses = ", ".join(n.address for n in network) or "none"
        self.guests[instance.uuid] = {
            "name": instance.name,
            "vcpus": instance.vcpus,
            "memory_mb": instance.memory_mb,
            "state": int(PowerState.RUNNING),
            "console": [
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
            f.write(json.dumps({"fake_snapshot_of": uuid, "name": guest["name"]}).encode())
        return "raw", "bare"


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

    async def extend_volume(self, uuid: str, volume_id: str, new_size: int) -> None:
        volumes = self._guest(uuid).setdefault("volumes", {})
        if volume_id not in volumes:
            raise DriverError(f"volume {volume_id} is not attached to {uuid}")
        volumes[volume_id]["size"] = new_size
        self._save()


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
