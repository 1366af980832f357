"""The qemu (TCG) and kvm drivers: one daemonized ``qemu-system-x86_64`` per guest.

Each guest's QEMU runs in its own session (``-daemonize``), so it outlives novalite
(even ``kill -9``); :meth:`QemuDriver.init_host` adopts the guests it finds in the
instance directories (pidfile + ``/proc/<pid>/cmdline``) and listens to their QMP
events again. Files per guest: see :mod:`novalite_drivers.qemu.process`.

Choices worth knowing:

* stop and SOFT reboot press the ACPI power button (``system_powerdown``), again every
  5 s as Nova does. QEMU drops a press the guest OS has not enabled (see :mod:`.acpi`),
  so the driver presses only once the guest has enabled its button, and goes hard at
  once when a guest that has been up ``power_button_grace`` seconds has not: it has no
  ACPI support (a real-mode boot sector) and would only make the caller wait the whole
  timeout.
* SOFT reboot: once the guest powers off, QEMU is started again from ``launch.json``
  (like Nova's libvirt driver: shutdown, then start). A guest that has not stopped
  after ``soft_reboot_timeout`` seconds (or has no ACPI) gets a hard reset.
* HARD reboot: QMP ``system_reset`` (the guest is started if it was off).
* suspend: ``stop``, migrate the machine state to ``suspend.state`` (``exec:cat``, as
  QEMU 7.2 has no ``file:`` URI), quit; resume starts QEMU with ``-incoming``.
* consoles (contract 1.3): VNC on a UNIX socket in the guest's directory and an
  interactive serial port swapped in for the session; see :mod:`.console`.
* live migration (contract 1.5): the destination's QEMU with ``-incoming defer -S``,
  the disks mirrored over NBD, then the memory; see :mod:`.live`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shlex
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
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
    LifecycleEvent,
    NetworkInfo,
    NotSupported,
    PowerState,
    SpawnFailed,
    VolumeConnection,
)

from . import acpi, bootsector, coldmove, console, disks, hostcheck, launch, live, nics
from . import process as proc
from . import volumes as qemu_volumes
from .qmp import QmpClient, QmpError, qmp_execute
from .watch import Watchers

log = structlog.get_logger("novalite.drivers.qemu")

#: Seconds between presses of the ACPI power button while waiting for a shutdown.
REPRESS_INTERVAL = 5.0
#: The guest's copy of its config drive (ISO 9660, label config-2), attached read-only.
CONFIG_DRIVE = "disk.config"


class QemuDriver(Driver):
    """Guests as QEMU processes under TCG (software emulation): runs anywhere QEMU does.

    Options (``[qemu]``): ``qemu_binary``, ``machine_type`` (``pc``), ``cpu_model``
    ("" = QEMU's default, or ``host`` under kvm), ``disk_bus`` (``virtio``, ``ide``,
    ``sata`` or ``scsi``) and ``nic_model`` (``virtio``, ``e1000``, ``e1000e``,
    ``rtl8139``, ``ne2k_pci``, ``pcnet`` or a QEMU device name): the defaults for
    images without ``hw_machine_type``, ``hw_disk_bus`` and ``hw_vif_model``, which
    win as in Nova's libvirt driver (``hw_rng_model=virtio`` adds a virtio-rng
    device), ``shutdown_timeout`` (seconds
    destroy/suspend wait for QEMU to exit), ``soft_reboot_timeout``,
    ``power_button_grace`` (seconds of guest uptime after which a guest that has not
    enabled its ACPI power button is taken to have none: stop and SOFT reboot then go
    hard at once), ``console_log_max_bytes`` and ``console_ring_bytes`` (a power of two);
    live migration (contract 1.5, see :mod:`.live`): ``live_migration_inbound_addr``
    (where a destination listens for the guest's memory and disks, as Nova's
    ``[libvirt] live_migration_inbound_addr``; 127.0.0.1 for hosts of one machine),
    ``live_migration_bandwidth`` (MiB/s, 0 unlimited), ``live_migration_downtime`` (ms,
    QEMU's downtime-limit) and ``live_migration_completion_timeout`` (seconds, then the
    migration is cancelled and the guest keeps running where it was).
    """

    name = "qemu"
    contract_version = "1.6"
    hypervisor_type = "qemu"
    accel = "tcg"
    auto_priority = 200
    option_defaults = {
        "qemu_binary": "qemu-system-x86_64",
        "machine_type": "pc",
        "cpu_model": "",
        "disk_bus": "virtio",
        "nic_model": "virtio",
        "shutdown_timeout": 10.0,
        "soft_reboot_timeout": 60.0,
        "power_button_grace": 10.0,
        "console_log_max_bytes": 1048576,
        "console_ring_bytes": 65536,
        "live_migration_inbound_addr": "127.0.0.1",
        "live_migration_bandwidth": 0,
        "live_migration_downtime": 500,
        "live_migration_completion_timeout": 600.0,
    }
    capabilities = {
        "supports_reboot": True,
        "supports_power_off": True,
        "supports_pause": True,
        "supports_suspend": True,
        "supports_console_output": True,
        "supports_snapshot": True,
        "supports_ssh_forward": True,
        "supports_vnc_console": True,
        "supports_serial_console": True,
        "supports_config_drive": True,
        "supports_metadata_socket": True,
        # rebuild: novalite's destroy + spawn (a new overlay on the new image)
        "supports_rescue": True,
        "supports_trigger_crash_dump": True,
        "supports_resize": True,
        "supports_live_migration": True,
        "supports_attach_volume": True,
        "supports_attach_interface": True,
        "supports_extend_volume": True,
        "supports_boot_from_volume": True,
        "supports_host_bridge": True,  # contract 1.5: the tap nltap-<port8>
    }

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        opts = {**self.option_defaults, **dict(context.options)}
        self.options: dict[str, Any] = opts
        self.binary = str(opts["qemu_binary"])
        self.console_max = int(opts["console_log_max_bytes"])
        self._locks: dict[str, trio.Lock] = {}
        self._console_locks: dict[str, trio.Lock] = {}
        #: uuid -> wall-clock (start, end or None) of the last driver operation on it.
        self._busy: dict[str, tuple[float, float | None]] = {}
        #: uuid -> trio.current_time() of the guest's last reset (it booted again then).
        self._reset_at: dict[str, float] = {}
        self._watchers = Watchers(self._on_event, self._drain, drain_interval=2.0,
                                  on_reset=self._on_reset)
        self._version: int | None = None
        #: uuids whose serial console has a session open (one at a time per guest).
        self._serial_sessions: list[str] = []

    # -- host ------------------------------------------------------------------------
    @classmethod
    def check_host(cls) -> HostCheck:
        """Usable when qemu-system-x86_64 and qemu-img are on PATH."""
        return hostcheck.check_qemu()

    @classmethod
    def auto_select(cls) -> HostCheck:
        """``driver = "auto"`` takes qemu where kvm declined and QEMU is installed."""
        return HostCheck(True, "QEMU is installed")

    @classmethod
    def demo_image(cls, work_dir: str) -> DemoImage:
        """A 512-byte real-mode boot sector that prints to COM1 (see :mod:`.bootsector`)."""
        return bootsector.demo_image()

    async def init_host(self) -> None:
        """Create the instances directory and adopt every running guest found in it."""
        os.makedirs(self.context.instances_path, exist_ok=True)
        for uuid in await self.list_instances():
            if proc.live_pid(self._dir(uuid), uuid) is not None:
                log.info("adopting running QEMU guest", instance=uuid)
                await console.restore_ring(self._dir(uuid))
                await self._remove_stray_volumes(uuid)
                self._watchers.start(uuid, self._dir(uuid))

    async def _remove_stray_volumes(self, uuid: str) -> None:
        """An adopted guest keeps only the volumes its launch.json records (see
        :func:`qemu_volumes.unplug_strays`); a failure is logged, not fatal."""
        try:
            cfg = proc.LaunchConfig.load(self._dir(uuid))
            removed = await qemu_volumes.unplug_strays(
                self._qmp_path(uuid), {v["volume_id"] for v in cfg.volumes})
        except (DriverError, QmpError, OSError) as exc:
            log.warning("stray volumes of an adopted guest not checked", instance=uuid,
                        error=str(exc) or type(exc).__name__)
            return
        if removed:
            log.warning("removed volumes an interrupted attach left in the guest",
                        instance=uuid, volumes=removed)

    async def cleanup_host(self) -> None:
        """Stop listening to guests; the guests keep running."""
        self._watchers.stop_all()

    async def get_available_resource(self) -> HostResources:
        """Host CPUs, memory (MemTotal) and the size of the instances' filesystem."""
        memory_mb = 0
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory_mb = int(line.split()[1]) // 1024
        usage = shutil.disk_usage(self.context.instances_path)
        return HostResources(
            vcpus=os.cpu_count() or 1,
            memory_mb=memory_mb,
            local_gb=usage.total // disks.GiB,
            hypervisor_type=self.hypervisor_type,
            hypervisor_version=await self._qemu_version(),
            hypervisor_hostname=self.context.host,
            cpu_info={"arch": "x86_64", "accel": self.accel},
            supported_instances=(("x86_64", self.hypervisor_type, "hvm"),),
        )

    async def _qemu_version(self) -> int:
        if self._version is None:
            self._version = 0
            try:
                out = await trio.run_process([self.binary, "--version"], capture_stdout=True,
                                             capture_stderr=True, check=False)
                words = out.stdout.decode().split()
                numbers = words[words.index("version") + 1].split(".")
                major, minor, micro = (int("".join(c for c in n if c.isdigit()) or 0)
                                       for n in (numbers + ["0", "0"])[:3])
                self._version = major * 1_000_000 + minor * 1000 + micro
            except (OSError, ValueError, IndexError):
                pass
        return self._version

    # -- helpers ---------------------------------------------------------------------
    def _dir(self, uuid: str) -> str:
        return os.path.join(self.context.instances_path, uuid)

    def _exists(self, uuid: str) -> str:
        directory = self._dir(uuid)
        if not os.path.isfile(os.path.join(directory, proc.LAUNCH_FILE)):
            raise InstanceNotFound(f"no QEMU guest {uuid} on host {self.context.host}")
        return directory

    @contextlib.asynccontextmanager
    async def _operation(self, uuid: str) -> AsyncIterator[None]:
        """Serialize operations on one guest; events they cause are not re-emitted."""
        lock = self._locks.setdefault(uuid, trio.Lock())
        async with lock:
            self._busy[uuid] = (time.time(), None)
            try:
                yield
            finally:
                self._busy[uuid] = (self._busy[uuid][0], time.time())

    def _qmp_path(self, uuid: str) -> str:
        return os.path.join(self._dir(uuid), proc.QMP_SOCKET)

    async def _qmp(self, uuid: str, command: str, args: dict[str, Any] | None = None,
                   timeout: float = 10.0) -> Any:
        try:
            return await qmp_execute(self._qmp_path(uuid), command, args, timeout)
        except QmpError as exc:
            raise DriverError(f"guest {uuid}: {exc}") from None

    async def _status(self, uuid: str) -> str:
        return str((await self._qmp(uuid, "query-status", timeout=5.0))["status"])

    def _caused_by_us(self, uuid: str, when: float) -> bool:
        """True when an event at wall-clock ``when`` happened during our own operation."""
        start, end = self._busy.get(uuid, (0.0, 0.0))
        return start - 0.05 <= when and (end is None or when <= end + 0.05)

    async def _on_event(self, uuid: str, state: PowerState | None, reason: str,
                        client: QmpClient | None, when: float) -> None:
        if state is None or self._caused_by_us(uuid, when):
            return
        if state == PowerState.PAUSED and client is not None:
            status = str((await client.execute("query-status"))["status"])
            state = launch.POWER_STATES.get(status, PowerState.PAUSED)
            if state == PowerState.CRASHED:
                reason = self._crash_reason(status)
        elif state == PowerState.SHUTDOWN:
            directory = self._dir(uuid)
            pid = proc.live_pid(directory, uuid)
            if pid is not None and not await self._wait_gone(uuid, pid, 2.0):
                # The monitor failed but QEMU lives (hung, or busy): listen again.
                log.warning("QMP events of guest lost; reconnecting", instance=uuid)
                if not self._watchers.watching(uuid):
                    self._watchers.start(uuid, directory)
                return
            if os.path.exists(os.path.join(directory, proc.SUSPEND_STATE)):
                state = PowerState.SUSPENDED
        self.context.emit_event(LifecycleEvent(uuid, state, reason))

    def _on_reset(self, uuid: str) -> None:
        self._reset_at[uuid] = trio.current_time()

    def _guest_uptime(self, uuid: str, pid: int) -> float:
        """Seconds since the guest last booted: its QEMU started, or it was reset."""
        age = proc.process_age(pid) or 0.0
        reset = self._reset_at.get(uuid)
        if reset is not None:
            age = min(age, trio.current_time() - reset)
        return age

    async def _acpi_power_off(self, uuid: str, pid: int, timeout: float) -> bool:
        """Press the ACPI power button until the guest's QEMU exits: True once it has,
        False after ``timeout`` or as soon as the guest shows it has no ACPI button."""
        grace = float(self.options["power_button_grace"])
        pressed: float | None = None
        with trio.move_on_after(timeout):
            while proc.is_our_qemu(pid, uuid):
                try:
                    async with await QmpClient.connect(self._qmp_path(uuid), 5.0) as qmp:
                        enabled = await acpi.power_button_enabled(qmp)
                        if enabled is False:
                            uptime = self._guest_uptime(uuid, pid)
                            if uptime >= grace:
                                log.info("guest has not enabled its ACPI power button: "
                                         "no ACPI; stopping it hard", instance=uuid,
                                         uptime=round(uptime, 1))
                                return False
                        elif (pressed is None
                              or trio.current_time() - pressed >= REPRESS_INTERVAL):
                            await qmp.execute("system_powerdown")
                            pressed = trio.current_time()
                except QmpError:
                    pass  # QEMU is exiting (or hung: the timeout ends the wait)
                await self._drain(uuid)
                await trio.sleep(0.1)
            return True
        return False

    def _crash_reason(self, status: str) -> str:
        return f"QEMU stopped the guest: {status}"

    async def _drain(self, uuid: str, client: QmpClient | None = None) -> None:
        """Move the serial ring buffer's content into the capped console.log."""
        lock = self._console_locks.setdefault(uuid, trio.Lock())
        async with lock:
            args = {"device": proc.CONSOLE_CHARDEV,
                    "size": int(self.options["console_ring_bytes"]), "format": "base64"}
            try:
                if client is not None:
                    data = await client.execute("ringbuf-read", args, timeout=5.0)
                else:
                    data = await qmp_execute(self._qmp_path(uuid), "ringbuf-read", args, 5.0)
            except QmpError:
                return
            raw = base64.b64decode(data or "")
            if raw:
                path = os.path.join(self._dir(uuid), proc.CONSOLE_LOG)
                try:
                    await trio.to_thread.run_sync(proc.append_capped, path, raw,
                                                  self.console_max)
                except OSError as exc:  # the guest is being destroyed
                    log.debug("console not saved", instance=uuid, error=str(exc))

    async def _wait_gone(self, uuid: str, pid: int, timeout: float) -> bool:
        with trio.move_on_after(timeout):
            while proc.is_our_qemu(pid, uuid):
                await trio.sleep(0.02)
            return True
        return False

    async def _stop_process(self, uuid: str, timeout: float) -> None:
        """End the guest's QEMU: QMP ``quit``, then SIGKILL; wait until it is gone."""
        directory = self._dir(uuid)
        pid = proc.live_pid(directory, uuid)
        if pid is None:
            return
        await self._drain(uuid)
        with contextlib.suppress(DriverError):
            await self._qmp(uuid, "quit", timeout=min(timeout, 5.0))
        if not await self._wait_gone(uuid, pid, timeout):
            proc.kill_qemu(pid, uuid)
            if not await self._wait_gone(uuid, pid, 10.0):
                raise DriverError(f"QEMU process {pid} of guest {uuid} does not exit")

    # -- launching -------------------------------------------------------------------
    def _check_image(self, image: ImageInfo) -> None:
        """Refuse up front what this host cannot run (see :class:`KvmDriver`)."""

    def _cpu_model(self) -> str:
        return str(self.options["cpu_model"])

    async def _launch(self, uuid: str, incoming: str | None = None) -> None:
        """Start QEMU from launch.json; return once it runs, then listen to its events."""
        await launch.start_qemu(self._dir(uuid), uuid, incoming)
        self._watchers.start(uuid, self._dir(uuid))

    def _launch_config(self, spec: InstanceSpec, image: ImageInfo,
                       network: list[NetworkInfo], disk_files: list[proc.DiskConfig],
                       kernel: str | None, initrd: str | None) -> proc.LaunchConfig:
        append = image.properties.get("os_command_line")
        if kernel and not append:
            append = "console=ttyS0"
        ring = int(self.options["console_ring_bytes"])
        if ring <= 0 or ring & (ring - 1):
            raise SpawnFailed(f"console_ring_bytes must be a power of two, not {ring}")
        hw = _hardware(image.properties, self.options)
        return proc.LaunchConfig(
            uuid=spec.uuid, name=spec.name, hostname=spec.hostname or spec.name,
            binary=self.binary, accel=self.accel, machine=hw["machine"],
            cpu_model=self._cpu_model(), vcpus=max(spec.vcpus, 1),
            memory_mb=spec.memory_mb, disk_bus=hw["disk_bus"],
            nic_model=hw["nic_model"], console_ring_bytes=ring,
            disks=disk_files,
            nics=[_nic(n) for n in network],
            kernel=kernel, initrd=initrd, append=str(append) if kernel and append else None,
            vnc=self.context.vnc_enabled,
            rng=hw["rng"] == "virtio",
        )

    # -- contract --------------------------------------------------------------------
    async def list_instances(self) -> list[str]:
        """Every instance directory holding a ``launch.json``, running or not."""
        root = self.context.instances_path
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.endswith(_KEPT)
                      and os.path.isfile(os.path.join(root, n, proc.LAUNCH_FILE)))

    async def spawn(self, instance: InstanceSpec, image: ImageInfo,
                    network: list[NetworkInfo]) -> None:
        """Create the disks, start QEMU and return once QMP reports ``running``.

        Raises SpawnFailed (leaving no process and no directory) when QEMU is missing,
        the image is unusable, a disk cannot be created or QEMU refuses to start.
        """
        await self._create(instance, image, network)

    async def _create(self, instance: InstanceSpec, image: ImageInfo,
                      network: list[NetworkInfo], incoming: bool = False,
                      moved: dict[str, Any] | None = None, start: bool = True) -> None:
        """spawn's work; ``incoming``: QEMU waits for a live migration instead of
        booting (``-incoming defer -S``, not watched until it runs). ``moved``: a cold
        move's ``disk_info`` from another host: its disks are copied from the source
        (the root grown to ``root_gb``) and its volumes kept; ``start`` False leaves
        the guest off."""
        uuid = instance.uuid
        directory = self._dir(uuid)
        if os.path.exists(directory):
            raise SpawnFailed(f"guest {uuid} already exists on host {self.context.host}")
        check = hostcheck.check_qemu(self.binary)
        if not check.usable:
            raise SpawnFailed(check.reason)
        self._check_image(image)
        async with self._operation(uuid):
            try:
                os.makedirs(directory)
                if moved is not None:  # the source's disks, copied over NBD
                    await coldmove.fetch_disks(moved["disks"], directory)
                    root = os.path.join(directory, proc.ROOT_DISK)
                    if instance.root_gb and disks.virtual_size(root, "qcow2") < \
                            instance.root_gb * disks.GiB:
                        await disks.qemu_img("resize", root, f"{instance.root_gb}G")
                    disk_files = [proc.DiskConfig(proc.ROOT_DISK)]
                elif instance.root_volume is not None:  # boot from volume: its data, raw
                    disk_files = [proc.DiskConfig(instance.root_volume.path, "raw")]
                else:
                    await disks.create_root_disk(image, os.path.join(directory,
                                                                     proc.ROOT_DISK),
                                                 instance.root_gb)
                    disk_files = [proc.DiskConfig(proc.ROOT_DISK)]
                for name, size in (("disk.eph0", instance.ephemeral_gb * disks.GiB),
                                   ("disk.swap", instance.swap_mb * 1024 * 1024)):
                    if not size:
                        continue
                    if not os.path.exists(os.path.join(directory, name)):  # not moved
                        await disks.create_blank_disk(os.path.join(directory, name), size)
                    disk_files.append(proc.DiskConfig(name))
                if instance.config_drive:  # the guest's own copy, read-only: as Nova, a cdrom on IDE
                    await trio.to_thread.run_sync(shutil.copyfile, instance.config_drive,
                                                  os.path.join(directory, CONFIG_DRIVE))
                    ide = _hardware(image.properties, self.options)["disk_bus"] in ("ide",
                                                                                     "sata")
                    disk_files.append(proc.DiskConfig(CONFIG_DRIVE, "raw", readonly=True,
                                                      media="cdrom" if ide else "disk"))
                kernel = initrd = None
                for src, dst in ((image.kernel_path, "kernel"), (image.ramdisk_path, "initrd")):
                    if src:
                        await trio.to_thread.run_sync(_link_or_copy, src,
                                                      os.path.join(directory, dst))
                kernel = "kernel" if image.kernel_path else None
                initrd = "initrd" if image.ramdisk_path else None
                cfg = self._launch_config(instance, image, network, disk_files, kernel, initrd)
                if moved is not None:
                    cfg.volumes = list(moved.get("volumes") or [])
                cfg.save(directory)
                if incoming:
                    await launch.start_qemu(directory, uuid, "defer", wait=False)
                elif start:
                    await self._launch(uuid)
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    await self._remove(uuid)
                if isinstance(exc, SpawnFailed):
                    raise
                if isinstance(exc, Exception):
                    raise SpawnFailed(f"cannot spawn guest {uuid}: {exc}") from exc
                raise

    async def _remove(self, uuid: str) -> None:
        self._watchers.stop(uuid)
        with contextlib.suppress(DriverError):
            await self._stop_process(uuid, 3.0)
        pid = proc.read_pid(self._dir(uuid))
        if pid is not None:
            proc.kill_qemu(pid, uuid)
        await trio.to_thread.run_sync(
            lambda: shutil.rmtree(self._dir(uuid), ignore_errors=True))

    async def destroy(self, uuid: str) -> None:
        """Kill the guest's QEMU (quit, then SIGKILL) and remove its directory. Idempotent.
        A guest whose move failed on its destination is only the kept copy here: that
        goes, with any NBD export of it still running."""
        if not os.path.exists(self._dir(uuid)):
            kept = self._dir(uuid) + _KEPT
            if os.path.isdir(kept):
                await coldmove.stop_exports(kept)
                await trio.to_thread.run_sync(shutil.rmtree, kept, True)
            return
        async with self._operation(uuid):
            await self._remove(uuid)
        self._locks.pop(uuid, None)
        self._console_locks.pop(uuid, None)
        self._busy.pop(uuid, None)
        self._reset_at.pop(uuid, None)

    async def get_info(self, uuid: str) -> InstanceInfo:
        """Power state from the process (pid + cmdline) and QMP ``query-status``."""
        directory = self._exists(uuid)
        cfg = proc.LaunchConfig.load(directory)
        pid = proc.live_pid(directory, uuid)
        if pid is None:
            suspended = os.path.exists(os.path.join(directory, proc.SUSPEND_STATE))
            state = PowerState.SUSPENDED if suspended else PowerState.SHUTDOWN
        else:
            try:
                state = launch.POWER_STATES.get(await self._status(uuid), PowerState.NOSTATE)
            except DriverError:
                state = PowerState.NOSTATE
        return InstanceInfo(state=state, handle=f"pid:{pid}" if pid else "",
                            vcpus=cfg.vcpus, memory_mb=cfg.memory_mb)

    async def reboot(self, uuid: str, reboot_type: str) -> None:
        """HARD: ``system_reset``. SOFT: ACPI power-off then start again, hard reset after
        ``soft_reboot_timeout``. A guest that is off is started. RUNNING on return."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            pid = proc.live_pid(directory, uuid)
            if pid is None:
                await self._launch(uuid)
                return
            if reboot_type.upper() == "SOFT":
                timeout = float(self.options["soft_reboot_timeout"])
                if await self._acpi_power_off(uuid, pid, timeout):
                    self._watchers.stop(uuid)
                    await self._launch(uuid)
                    return
            await self._qmp(uuid, "system_reset")
            self._on_reset(uuid)
            if await self._status(uuid) != "running":
                await self._qmp(uuid, "cont")

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        """ACPI power button (see :meth:`_acpi_power_off`); after ``timeout`` seconds, or
        at once for a guest without ACPI, ``quit``, then SIGKILL."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            pid = proc.live_pid(directory, uuid)
            if pid is not None:
                await self._acpi_power_off(uuid, pid, timeout)
                self._watchers.stop(uuid)
                await self._stop_process(uuid, float(self.options["shutdown_timeout"]))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, proc.SUSPEND_STATE))

    async def power_on(self, uuid: str) -> None:
        """Start QEMU again from ``launch.json``: same disks, same address. A suspended
        guest is resumed."""
        directory = self._exists(uuid)
        if os.path.exists(os.path.join(directory, proc.SUSPEND_STATE)):
            await self.resume(uuid)
            return
        async with self._operation(uuid):
            if proc.live_pid(directory, uuid) is None:
                await self._launch(uuid)

    async def pause(self, uuid: str) -> None:
        """QMP ``stop``: the guest is frozen in memory."""
        self._exists(uuid)
        async with self._operation(uuid):
            await self._qmp(uuid, "stop")

    async def unpause(self, uuid: str) -> None:
        """QMP ``cont``."""
        self._exists(uuid)
        async with self._operation(uuid):
            await self._qmp(uuid, "cont")

    async def suspend(self, uuid: str) -> None:
        """Save the machine state to ``suspend.state`` (migrate to ``exec:cat``), end QEMU."""
        directory = self._exists(uuid)
        state = os.path.join(directory, proc.SUSPEND_STATE)
        async with self._operation(uuid):
            if proc.live_pid(directory, uuid) is None:
                raise DriverError(f"guest {uuid} is not running; cannot suspend it")
            await self._qmp(uuid, "stop")
            await self._qmp(uuid, "migrate-set-parameters", {"max-bandwidth": 8 * 1024**3})
            uri = "exec:cat > " + shlex.quote(state + ".tmp")
            await self._qmp(uuid, "migrate", {"uri": uri})
            with trio.fail_after(600):
                while True:
                    info = await self._qmp(uuid, "query-migrate")
                    status = info.get("status")
                    if status == "completed":
                        break
                    if status in ("failed", "cancelled"):
                        await self._qmp(uuid, "cont")
                        raise DriverError(f"suspend of {uuid} failed: "
                                          f"{info.get('error-desc', status)}")
                    await trio.sleep(0.05)
            self._watchers.stop(uuid)
            await self._stop_process(uuid, float(self.options["shutdown_timeout"]))
            os.replace(state + ".tmp", state)

    async def resume(self, uuid: str) -> None:
        """Start QEMU with ``-incoming`` from ``suspend.state``; RUNNING on return."""
        directory = self._exists(uuid)
        state = os.path.join(directory, proc.SUSPEND_STATE)
        async with self._operation(uuid):
            if not os.path.exists(state):
                raise DriverError(f"guest {uuid} is not suspended")
            await self._launch(uuid, incoming="exec:cat " + shlex.quote(state))
            os.unlink(state)

    async def get_console_output(self, uuid: str) -> str:
        """The serial console's tail (drained from QEMU's ring buffer first)."""
        directory = self._exists(uuid)
        if proc.live_pid(directory, uuid) is not None:
            await self._drain(uuid)
        return proc.read_tail(os.path.join(directory, proc.CONSOLE_LOG), self.console_max)

    async def open_vnc_console(self, uuid: str) -> trio.abc.Stream:
        """A connection to the guest's VNC server (``vnc.sock``); see :mod:`.console`."""
        return await console.open_vnc(self._exists(uuid), uuid)

    async def open_serial_console(self, uuid: str) -> trio.abc.Stream:
        """An interactive session on the guest's serial port; ``console.log`` keeps
        recording meanwhile. One session per guest; see :mod:`.console`."""
        directory = self._exists(uuid)
        if not self.context.serial_console_enabled:
            raise DriverError("serial consoles are disabled on this host")
        if proc.live_pid(directory, uuid) is not None:
            await self._drain(uuid)  # what the ring holds goes to the log before the swap
        return await console.SerialSession.open(directory, uuid, self._serial_sessions)

    async def snapshot(self, uuid: str, dest_path: str) -> tuple[str, str]:
        """Flatten the root disk to a standalone qcow2 (the guest is paused meanwhile)."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            running = (proc.live_pid(directory, uuid) is not None
                       and await self._status(uuid) == "running")
            if running:
                await self._qmp(uuid, "stop")
            try:
                await disks.convert_to_qcow2(os.path.join(directory, proc.ROOT_DISK), dest_path)
            except RuntimeError as exc:
                raise DriverError(f"snapshot of {uuid} failed: {exc}") from None
            finally:
                if running:
                    with trio.CancelScope(shield=True):
                        await self._qmp(uuid, "cont")
        return "qcow2", "bare"

    # -- resize and cold migration (contract 1.4; 1.6: to another host) -------------------
    async def migrate_disk_and_power_off(self, uuid: str, dest_host: str,
                                         instance: InstanceSpec) -> dict[str, Any]:
        """Power off and keep the guest's directory as ``<uuid>_resize`` until confirm or
        revert. To another host, its writable disks are exported over NBD for the
        destination to copy (:mod:`.coldmove`): the returned ``disks`` say where."""
        directory = self._exists(uuid)
        moving = dest_host != self.context.host
        if moving:
            cfg = proc.LaunchConfig.load(directory)
            if any(n.tap for n in cfg.nics):
                raise DriverError("the qemu driver does not move guests on a host bridge "
                                  "to another host yet")
            if any(os.path.isabs(d.path) for d in cfg.disks):
                raise DriverError("the qemu driver does not move guests booted from a "
                                  "volume to another host yet")
        await self.power_off(uuid, float(self.options["shutdown_timeout"]))
        kept = directory + _KEPT
        async with self._operation(uuid):
            await trio.to_thread.run_sync(shutil.rmtree, kept, True)
            os.rename(directory, kept)
        info: dict[str, Any] = {"host": self.context.host, "kept": os.path.basename(kept)}
        if not moving:
            return info
        cfg = proc.LaunchConfig.load(kept)
        try:
            info["disks"] = await coldmove.export_disks(
                kept, [(d.path, d.format) for d in cfg.disks if not d.readonly],
                str(self.options["live_migration_inbound_addr"]))
        except BaseException:
            with trio.CancelScope(shield=True):
                async with self._operation(uuid):
                    os.rename(kept, directory)
            raise
        info["volumes"] = cfg.volumes
        return info

    async def finish_migration(self, instance: InstanceSpec, disk_info: dict[str, Any],
                               network: list[NetworkInfo], power_on: bool,
                               image: ImageInfo | None = None) -> None:
        """A copy of the kept directory, its root disk grown to ``root_gb`` (qemu-img
        resize), the new vCPUs and memory in launch.json; started when ``power_on``.
        From another host: the guest made as a spawn makes it (``image`` as fetched
        here, this host's network), its disks copied from the source's exports."""
        uuid = instance.uuid
        if disk_info.get("host") != self.context.host:
            if image is None or "disks" not in disk_info:
                raise DriverError(f"guest {uuid}'s disk is on host {disk_info.get('host')}, "
                                  "and no copy of it was offered")
            try:
                await self._create(instance, image, network, moved=disk_info,
                                   start=power_on)
            except SpawnFailed as exc:
                raise DriverError(f"cannot finish the move of {uuid}: {exc}") from None
            return
        directory = self._dir(uuid)
        kept = os.path.join(self.context.instances_path, str(disk_info["kept"]))
        async with self._operation(uuid):
            try:
                await trio.to_thread.run_sync(lambda: shutil.copytree(
                    kept, directory, ignore=_runtime_files))
                root = os.path.join(directory, proc.ROOT_DISK)
                if instance.root_gb and disks.virtual_size(root, "qcow2") < \
                        instance.root_gb * disks.GiB:
                    await disks.qemu_img("resize", root, f"{instance.root_gb}G")
                cfg = proc.LaunchConfig.load(directory)
                dataclasses.replace(cfg, vcpus=max(instance.vcpus, 1),
                                    memory_mb=instance.memory_mb).save(directory)
                for name in (proc.SUSPEND_STATE,):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(directory, name))
                if power_on:
                    await self._launch(uuid)
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    await self._remove(uuid)
                if isinstance(exc, Exception):
                    raise DriverError(f"cannot finish the resize of {uuid}: {exc}") from exc
                raise

    async def confirm_migration(self, uuid: str) -> None:
        await coldmove.stop_exports(self._dir(uuid) + _KEPT)
        await trio.to_thread.run_sync(shutil.rmtree, self._dir(uuid) + _KEPT, True)

    async def finish_revert_migration(self, uuid: str, power_on: bool) -> None:
        kept = self._dir(uuid) + _KEPT
        if not os.path.isdir(kept):
            raise InstanceNotFound(f"guest {uuid} kept for a revert not found")
        await coldmove.stop_exports(kept)
        async with self._operation(uuid):
            await trio.to_thread.run_sync(shutil.rmtree, self._dir(uuid), True)
            os.rename(kept, self._dir(uuid))
            if power_on:
                await self._launch(uuid)

    # -- live migration (contract 1.5; the QMP steps are in drivers.qemu.live) -----------
    async def pre_live_migration(self, instance: InstanceSpec, image: ImageInfo,
                                 network: list[NetworkInfo]) -> dict[str, Any]:
        """Make the guest's directory as a spawn would (new overlays on this host's
        cached image), start QEMU with ``-incoming defer -S``, listen for the machine
        state on a TCP port of ``live_migration_inbound_addr`` and export the writable
        disks over NBD there (see :mod:`.live`). Returns the addresses."""
        uuid = instance.uuid
        if instance.root_volume is not None:
            raise DriverError("the qemu driver does not live-migrate guests booted from a "
                              "volume yet")
        if any(n.bridge for n in network):
            raise DriverError("the qemu driver does not live-migrate guests on a host "
                              "bridge yet")
        if os.path.exists(self._dir(uuid)):
            raise DriverError(f"guest {uuid} already exists on host {self.context.host} "
                              "(do the hosts share an instance directory?)")
        try:
            await self._create(instance, image, network, incoming=True)
        except SpawnFailed as exc:
            raise DriverError(f"cannot receive guest {uuid}: {exc}") from None
        with open(os.path.join(self._dir(uuid), _INCOMING), "w"):
            pass
        try:
            data = await live.listen(self._qmp_path(uuid),
                                     str(self.options["live_migration_inbound_addr"]))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.destroy(uuid)
            raise
        return {**data, "host": self.context.host}

    async def rollback_live_migration_at_destination(self, uuid: str) -> None:
        """Remove the waiting guest made by :meth:`pre_live_migration` (only one still
        marked incoming: never a guest that runs here)."""
        if os.path.exists(os.path.join(self._dir(uuid), _INCOMING)):
            await self.destroy(uuid)

    async def live_migration(self, uuid: str, dest_host: str, instance: InstanceSpec, *,
                             migrate_data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Mirror the disks to the destination's NBD exports and migrate the memory to
        its QEMU (see :mod:`.live`); the guest runs here until the switch. Returns the
        console's tail (the destination's console log continues it) and QEMU's
        figures. Options: ``live_migration_bandwidth`` (MiB/s, 0: unlimited),
        ``live_migration_downtime`` (ms), ``live_migration_completion_timeout`` (s)."""
        directory = self._exists(uuid)
        if not migrate_data or "uri" not in migrate_data:
            raise DriverError("the qemu driver's live migration needs the destination's "
                              "pre_live_migration data")
        async with self._operation(uuid):
            if proc.live_pid(directory, uuid) is None:
                raise DriverError(f"guest {uuid} is not running")
            cfg = proc.LaunchConfig.load(directory)
            if cfg.volumes:
                raise DriverError("the qemu driver does not live-migrate guests with "
                                  "volumes attached yet")
            figures = await live.send(
                self._qmp_path(uuid), migrate_data,
                bandwidth_mib=int(self.options["live_migration_bandwidth"]),
                downtime_ms=int(self.options["live_migration_downtime"]),
                timeout=float(self.options["live_migration_completion_timeout"]))
            self._watchers.stop(uuid)  # paused for good: no more events from here
            await self._drain(uuid)
            tail = proc.read_tail(os.path.join(directory, proc.CONSOLE_LOG),
                                  _CONSOLE_CARRIED).encode("utf-8", "replace")
        log.info("guest live-migrated", instance=uuid, dest=dest_host,
                 **{k: v for k, v in figures.items() if k != "completed_at"})
        return {**figures, "source": self.context.host,
                "console": base64.b64encode(tail).decode()}

    async def rollback_live_migration(self, uuid: str) -> None:
        """The destination failed after the state was sent: ``cont`` the paused guest
        here (its disks are its own: the mirrors ended before the switch)."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            if proc.live_pid(directory, uuid) is None:
                raise DriverError(f"guest {uuid} has no QEMU left on {self.context.host}")
            await live.cancel_mirrors(self._qmp_path(uuid))
            if await self._status(uuid) != "running":
                await self._qmp(uuid, "cont")
            if not self._watchers.watching(uuid):
                self._watchers.start(uuid, directory)

    async def post_live_migration_at_destination(self, instance: InstanceSpec,
                                                 migrate_data: dict[str, Any],
                                                 network: list[NetworkInfo]) -> None:
        """Stop the NBD server and run the guest (``cont``); its console log starts
        with the source's tail."""
        uuid = instance.uuid
        directory = self._exists(uuid)
        async with self._operation(uuid):
            await live.start(self._qmp_path(uuid))
            with open(os.path.join(directory, proc.CONSOLE_LOG), "wb") as f:
                f.write(base64.b64decode(migrate_data.get("console") or ""))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, _INCOMING))
            self._watchers.start(uuid, directory)
        # The guest was paused from the source's last copy until the `cont` above: QEMU's
        # downtime plus the hop from the source to here (one clock on one machine).
        completed = float(migrate_data.get("completed_at") or 0.0)
        log.info("guest runs on the destination", instance=uuid, host=self.context.host,
                 downtime_ms=migrate_data.get("downtime_ms"),
                 paused_ms=round(int(migrate_data.get("downtime_ms") or 0)
                                 + (time.time() - completed) * 1000) if completed else None)

    async def post_live_migration(self, uuid: str) -> None:
        """The guest runs on the destination: end the paused QEMU here, remove its files."""
        await self.destroy(uuid)

    # -- rescue and crash dumps (contract 1.4) -----------------------------------------
    async def rescue(self, instance: InstanceSpec, rescue_image: ImageInfo,
                     network: list[NetworkInfo], *, stable: bool = False) -> None:
        """Stop the guest's QEMU and start it again from a new overlay on the rescue
        image (``disk.rescue.qcow2``, the first disk, booted), with the guest's own
        disks after it untouched; the launch configuration before the rescue is kept
        for :meth:`unrescue`. No stable device rescue (the first disk boots)."""
        if stable:
            raise NotSupported(f"{self.name} does not support stable device rescue")
        uuid = instance.uuid
        directory = self._exists(uuid)
        self._check_image(rescue_image)
        saved = os.path.join(directory, RESCUE_SAVED)
        async with self._operation(uuid):
            self._watchers.stop(uuid)
            await self._stop_process(uuid, float(self.options["shutdown_timeout"]))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, proc.SUSPEND_STATE))
            if not os.path.exists(saved):
                await trio.to_thread.run_sync(
                    shutil.copyfile, os.path.join(directory, proc.LAUNCH_FILE), saved)
            cfg = proc.LaunchConfig.load(directory)
            try:
                await disks.create_root_disk(rescue_image,
                                             os.path.join(directory, RESCUE_DISK), 0)
            except SpawnFailed as exc:
                raise DriverError(str(exc)) from None
            cfg.disks = [proc.DiskConfig(RESCUE_DISK),
                         *(d for d in cfg.disks if d.path != RESCUE_DISK)]
            cfg.kernel = cfg.initrd = cfg.append = None  # the rescue disk boots
            cfg.save(directory)
            await self._launch(uuid)

    async def unrescue(self, uuid: str) -> None:
        """Stop the rescue QEMU, drop the rescue disk and start the guest as before."""
        directory = self._exists(uuid)
        saved = os.path.join(directory, RESCUE_SAVED)
        if not os.path.exists(saved):
            raise DriverError(f"guest {uuid} is not rescued")
        async with self._operation(uuid):
            self._watchers.stop(uuid)
            await self._stop_process(uuid, float(self.options["shutdown_timeout"]))
            os.replace(saved, os.path.join(directory, proc.LAUNCH_FILE))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, RESCUE_DISK))
            await self._launch(uuid)

    async def trigger_crash_dump(self, uuid: str) -> None:
        """QMP ``inject-nmi`` into the running guest."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            if proc.live_pid(directory, uuid) is None:
                raise DriverError(f"guest {uuid} is not running")
            await self._qmp(uuid, "inject-nmi")

    # -- volumes (contract 1.4; see drivers.qemu.volumes) ------------------------------
    async def attach_volume(self, uuid: str, volume: VolumeConnection) -> None:
        """Hot-plug the volume as a virtio-blk disk (QMP ``blockdev-add`` and
        ``device_add``) and record it in launch.json for later launches. A guest that
        is not running gets it at its next start."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            cfg = proc.LaunchConfig.load(directory)
            record = {"volume_id": volume.volume_id, "path": volume.path,
                      "size": volume.size, "device": volume.device,
                      "read_only": volume.read_only}
            if any(v["volume_id"] == volume.volume_id for v in cfg.volumes):
                if [v for v in cfg.volumes if v["volume_id"] == volume.volume_id] == [record]:
                    # Recorded here by an attach whose answer was lost (the service
                    # was killed before its record said in-use): done already.
                    return
                raise DriverError(f"volume {volume.volume_id} is already attached to {uuid}")
            if proc.live_pid(directory, uuid) is not None:
                await qemu_volumes.hot_plug(self._qmp_path(uuid), record)
            cfg.volumes.append(record)
            cfg.save(directory)

    async def detach_volume(self, uuid: str, volume_id: str) -> None:
        """``device_del``, wait for the guest to release the disk (``DEVICE_DELETED``),
        ``blockdev-del``; then forget it in launch.json."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            cfg = proc.LaunchConfig.load(directory)
            if not any(v["volume_id"] == volume_id for v in cfg.volumes):
                return
            if proc.live_pid(directory, uuid) is not None:
                await qemu_volumes.hot_unplug(self._qmp_path(uuid), volume_id)
            cfg.volumes = [v for v in cfg.volumes if v["volume_id"] != volume_id]
            cfg.save(directory)

    # -- network interfaces (contract 1.6; see drivers.qemu.nics) ---------------------
    async def attach_interface(self, uuid: str, network: NetworkInfo) -> None:
        """Hot-plug a NIC for the port (user-mode networking leasing its address, or the
        compute host's tap on its bridge) and record it in launch.json; a guest that
        is not running gets it at its next start."""
        directory = self._exists(uuid)
        try:
            nic = _nic(network)
        except SpawnFailed as exc:
            raise DriverError(str(exc)) from None
        async with self._operation(uuid):
            cfg = proc.LaunchConfig.load(directory)
            if any(n.mac == nic.mac for n in cfg.nics):
                return
            if proc.live_pid(directory, uuid) is not None:
                await nics.hot_plug(self._qmp_path(uuid), nic, cfg.nic_model, cfg.hostname)
            cfg.nics.append(nic)
            cfg.save(directory)

    async def detach_interface(self, uuid: str, network: NetworkInfo) -> None:
        """``device_del`` of the port's NIC, wait for the guest to let it go,
        ``netdev_del``; then forget it in launch.json."""
        directory = self._exists(uuid)
        try:
            mac = _mac(network.mac)
        except SpawnFailed as exc:
            raise DriverError(str(exc)) from None
        async with self._operation(uuid):
            cfg = proc.LaunchConfig.load(directory)
            found = [n for n in cfg.nics if n.mac == mac]
            if not found:
                return
            if proc.live_pid(directory, uuid) is not None:
                await nics.hot_unplug(self._qmp_path(uuid), found[0])
            cfg.nics = [n for n in cfg.nics if n.mac != mac]
            cfg.save(directory)

    async def extend_volume(self, uuid: str, volume_id: str, new_size: int) -> None:
        """QMP ``block_resize`` to the volume's new size (its file already grew)."""
        directory = self._exists(uuid)
        async with self._operation(uuid):
            cfg = proc.LaunchConfig.load(directory)
            found = [v for v in cfg.volumes if v["volume_id"] == volume_id]
            if not found:
                raise DriverError(f"volume {volume_id} is not attached to {uuid}")
            if proc.live_pid(directory, uuid) is not None:
                await qemu_volumes.notify_resize(self._qmp_path(uuid), volume_id, new_size)
            found[0]["size"] = new_size
            cfg.save(directory)


#: The suffix of a guest's directory kept during a resize (as libvirt's ``_resize``).
_KEPT = "_resize"
#: Marks a guest directory made by pre_live_migration until the guest runs here.
_INCOMING = "incoming"
#: Bytes of the source's console log a live migration carries to the destination.
_CONSOLE_CARRIED = 65536


def _runtime_files(directory: str, names: list[str]) -> set[str]:
    """What a copy of a stopped guest's directory leaves out: its sockets."""
    import stat

    return {n for n in names
            if stat.S_ISSOCK(os.lstat(os.path.join(directory, n)).st_mode)}


#: The rescue image's overlay, and the launch configuration a rescue replaced.
RESCUE_DISK = "disk.rescue.qcow2"
RESCUE_SAVED = "launch.unrescue.json"



def _hardware(properties: Any, options: dict[str, Any]) -> dict[str, str]:
    """Machine type, disk bus, NIC device and RNG model: the image's ``hw_*`` properties
    over the driver's options (Nova's libvirt driver honours the same ones).
    SpawnFailed for a disk bus or NIC model QEMU cannot give the guest here."""
    machine = str(properties.get("hw_machine_type") or options["machine_type"])
    bus = str(properties.get("hw_disk_bus") or options["disk_bus"]).lower()
    if bus not in proc.DISK_BUSES:
        raise SpawnFailed(f"disk bus {bus!r} is not supported by the qemu driver (supported: "
                          f"{', '.join(proc.DISK_BUSES)})")
    vif = str(properties.get("hw_vif_model") or options["nic_model"])
    nic = proc.VIF_MODELS.get(vif.lower(), vif)
    if "hw_vif_model" in properties and nic not in proc.VIF_MODELS.values():
        raise SpawnFailed(f"hw_vif_model {vif!r} is not supported by the qemu driver "
                          f"(supported: {', '.join(proc.VIF_MODELS)})")
    rng = str(properties.get("hw_rng_model") or "").lower()
    if rng and rng != "virtio":
        raise SpawnFailed(f"hw_rng_model {rng!r} is not supported (supported: virtio)")
    return {"machine": machine, "disk_bus": bus, "nic_model": nic, "rng": rng}


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` (the cached, never rewritten kernel or ramdisk) to ``dst``; copy
    it when they are on different filesystems. The guest keeps its files either way."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _nic(n: NetworkInfo) -> proc.NicConfig:
    """A user-mode NIC, or (contract 1.4, ``n.bridge`` set) one on the host's tap."""
    bridge, port_id = getattr(n, "bridge", None), getattr(n, "port_id", None)
    if bridge and port_id:
        tap = "nltap-" + port_id.replace("-", "")[:8]
        if not os.path.exists(f"/sys/class/net/{tap}"):
            raise SpawnFailed(f"tap device {tap} for bridge {bridge} does not exist")
        return proc.NicConfig(n.address, n.cidr, n.gateway, _mac(n.mac), tap=tap)
    return proc.NicConfig(n.address, n.cidr, n.gateway, _mac(n.mac), n.ssh_host_port,
                          n.metadata_socket)


def _mac(mac: str) -> str:
    """``fa:16:3e:0:0:9`` -> ``fa:16:3e:00:00:09``; SpawnFailed when it is no MAC."""
    try:
        parts = [int(p, 16) for p in mac.split(":")]
    except ValueError:
        parts = []
    if len(parts) != 6 or not all(0 <= p <= 255 for p in parts):
        raise SpawnFailed(f"invalid MAC address {mac!r}")
    return ":".join(f"{p:02x}" for p in parts)
