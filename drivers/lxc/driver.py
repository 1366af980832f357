"""The lxc driver: instances as LXC system containers, driven by the ``lxc-*`` tools.

Nova runs containers through libvirt-lxc; novalite runs them through LXC
itself. It calls the ``lxc-*`` command-line tools rather than the liblxc
Python bindings (``python3-lxc``) because the tools are always there with the
``lxc`` package, whereas the bindings are built for Debian's system Python
only (not the project's virtualenv), and a liblxc call blocks and may fork in
ways that do not mix with threads; a subprocess per operation is cheap here
(lxc-start -d returns in 21-26 ms) and runs under ``trio.run_process``.

Containers live in novalite's private LXC path (``-P``), by default
``<state_path>/containers``, one per instance, named after its uuid:
``<lxc_path>/<uuid>/{config, upper/, work/, console.log, lxc.log, novalite.json}``.
``lxc-start -d`` hands each container to a daemonized ``lxc monitor``, so
containers outlive the novalite process; :meth:`LxcDriver.init_host` adopts
whatever it finds in the LXC path.

Images
    Root-filesystem tarballs (plain, gzip, xz or bzip2), containing
    ``/sbin/init``. Accepted Glance metadata: ``disk_format`` ``raw`` or
    ``root-tar``; ``container_format`` ``bare``, ``tar`` or ``compressed``;
    property ``hypervisor_type``, when set, ``lxc`` (or ``exe``). Anything else -
    a qcow2 disk, an ISO, a tarball without an init - fails with
    :class:`SpawnFailed`, leaving nothing behind. Snapshots are written as
    gzip'd rootfs tarballs and reported as ``("raw", "bare")``, so they boot
    again on this driver. The guest's init must halt on ``SIGUSR1`` and reboot
    on ``SIGTERM`` (busybox init does; override with the ``halt_signal`` and
    ``reboot_signal`` options or the image properties ``lxc_halt_signal`` /
    ``lxc_reboot_signal``, e.g. ``SIGRTMIN+3``/``SIGINT`` for systemd).

Root filesystems
    Each image is unpacked once into a shared read-only base
    (``<state_path>/images/<image-id>-<size>``); each container gets an
    overlayfs upper directory on top of it (``lxc.rootfs.path =
    overlay:<base>:<upper>``). Overlayfs mounts on this host's ext4, makes a
    spawn cost nothing whatever the image's size and stores only each
    container's changes, whereas a copy costs the whole image per container
    (cheap for a 2 MB busybox tree, not for a distribution's rootfs).
    ``init_host`` probes overlayfs by mounting a tiny one in the LXC path; when
    that fails (no overlayfs, or an LXC path on a filesystem that cannot hold
    an upper directory) or with ``rootfs_backend = "copy"``, each container
    gets a full copy (``cp -a --reflink=auto``) instead.

Limits
    The flavor's memory (``memory.limit_in_bytes`` / ``memory.max``) and vCPUs
    (a CFS quota of ``vcpus`` CPUs: ``cpu.cfs_quota_us`` / ``cpu.max``) are set as
    cgroup limits for the host's layout (cgroup v1 controllers or v2), and
    cgroups are mounted inside the container so the guest sees them under
    ``/sys/fs/cgroup``.

Networking
    None by default: ``lxc.net.0.type = empty`` (the container has only ``lo``).
    With the ``bridge`` option set to an existing Linux bridge, each of the
    instance's networks becomes a veth on that bridge with novalite's MAC and
    fixed address. A port the compute host put on its own bridge (contract 1.4,
    ``NetworkInfo.bridge``) becomes a veth on that bridge, host side
    ``nlveth-<first 8 of the port id>``.

Guest access (contract 1.3)
    The interactive console is the container's ``/dev/console`` through
    ``lxc-console`` on a pty (:mod:`.console`); no VNC. The metadata service is at
    169.254.169.254:80 inside the container, a listener the driver makes in the
    container's own network namespace and relays to ``NetworkInfo.metadata_socket``
    (:mod:`.metadata`). A config drive is the ISO's files, read-only, at
    ``config_drive_path`` (:mod:`.configdrive`).

Power states come from ``lxc-info``: RUNNING -> RUNNING, STOPPED -> SHUTDOWN,
FROZEN -> PAUSED. A container stopped behind the driver's back (``lxc-stop``)
shows as SHUTDOWN on the next :meth:`get_info`, which the compute actor
polls; no lifecycle events are emitted. Suspend (save to disk) is not
supported: ``lxc-checkpoint`` needs CRIU (Debian's ``criu``, not installed by
default) and a container without a console (``lxc.console.path = none``,
``lxc.tty.max = 0``), which would cost every container its console log; pause
(the cgroup freezer) is offered instead.

Options (``[lxc]`` in novalite.toml): see :attr:`LxcDriver.option_defaults`.
"""

from __future__ import annotations

import os
import platform
import shutil
from functools import partial

import structlog
import trio

from novalite.virt.driver import (
    DemoImage,
    Driver,
    DriverContext,
    DriverError,
    HostCheck,
    HostResources,
    HostUnusable,
    ImageInfo,
    InstanceInfo,
    InstanceNotFound,
    InstanceSpec,
    NetworkInfo,
    NotSupported,
    PowerState,
    SpawnFailed,
)

from . import configdrive, hostinfo
from .config import ContainerConfig, NetworkConfig, cgroup_layout, sanitize_hostname, valid_signal
from .console import ConsoleSession
from .images import (
    PROBE_PREFIX,
    SNAPSHOT_FORMAT,
    BaseStore,
    merged_view,
    overlay_usable,
    pack_tarball,
    prepare_layer,
)
from .layout import ContainerDir, prune_cgroups, valid_name
from .metadata import MetadataRelays
from .rootfs import build_busybox_rootfs
from .tools import Lxc, LxcCommandError, lxc_version, missing_tools

log = structlog.get_logger("novalite.drivers.lxc")

#: LXC container state -> Nova power state.
POWER_STATES = {
    "RUNNING": PowerState.RUNNING,
    "STOPPED": PowerState.SHUTDOWN,
    "FROZEN": PowerState.PAUSED,
    "FREEZING": PowerState.PAUSED,
    "THAWED": PowerState.RUNNING,
    "STARTING": PowerState.NOSTATE,
    "STOPPING": PowerState.NOSTATE,
    "ABORTING": PowerState.CRASHED,
}


#: What an interrupted spawn can leave in a container directory before ``config``.
SPAWN_LEFTOVERS = frozenset({"upper", "work", "rootfs", "novalite.json"})


class LxcDriver(Driver):
    """Instances as LXC system containers in a private LXC path; see the module docstring."""

    name = "lxc"
    contract_version = "1.5"
    hypervisor_type = "lxc"
    capabilities = {
        "supports_reboot": True,
        "supports_power_off": True,
        "supports_pause": True,
        "supports_suspend": False,
        "supports_console_output": True,
        "supports_snapshot": True,
        "supports_host_bridge": True,  # contract 1.5: a veth nlveth-<port8>
        "supports_serial_console": True,
        "supports_config_drive": True,
        "supports_metadata_socket": True,
    }
    option_defaults = {
        # An existing Linux bridge for the containers' veths; "" = no network.
        "bridge": "",
        # LXC path (-P) for the containers; "" = <state_path>/containers.
        "lxc_path": "",
        # "overlay" (per-container overlayfs upper on a shared base) or "copy".
        "rootfs_backend": "overlay",
        # Seconds to wait for a started container to report RUNNING.
        "start_timeout": 30.0,
        # Seconds a SOFT reboot may take before falling back to HARD.
        "soft_reboot_timeout": 30.0,
        # Signals sent to the container's init (busybox init's by default).
        "halt_signal": "SIGUSR1",
        "reboot_signal": "SIGTERM",
        # Raw LXC configuration lines appended to every container's config.
        "extra_config": [],
        # Where a container with a config drive finds its files (read-only): cloud-init's
        # seed directory for its ConfigDrive datasource.
        "config_drive_path": "/var/lib/cloud/seed/config_drive",
    }

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        opts = {**self.option_defaults, **dict(context.options)}
        self.lxc_path = os.path.abspath(
            opts["lxc_path"] or os.path.join(context.state_path, "containers")
        )
        self.bridge = str(opts["bridge"])
        self.backend = str(opts["rootfs_backend"])
        self.start_timeout = float(opts["start_timeout"])
        self.soft_reboot_timeout = float(opts["soft_reboot_timeout"])
        self.halt_signal = str(opts["halt_signal"])
        self.reboot_signal = str(opts["reboot_signal"])
        self.extra_config = [str(line) for line in opts["extra_config"]]
        self.config_drive_path = str(opts["config_drive_path"])
        self.lxc = Lxc(self.lxc_path)
        self.bases = BaseStore(os.path.join(context.state_path, "images"))
        self.scratch = os.path.join(context.state_path, "tmp")
        self.layout = "unified"
        self.version = "0"
        self._locks: dict[str, trio.Lock] = {}
        self.metadata = MetadataRelays(self._running_pid)

    # -- helpers -------------------------------------------------------------
    def _dir(self, uuid: str) -> ContainerDir:
        if not valid_name(uuid):
            raise InstanceNotFound(f"no container for {uuid!r} (not a valid container name)")
        return ContainerDir(self.lxc_path, uuid)

    def _lock(self, uuid: str) -> trio.Lock:
        return self._locks.setdefault(uuid, trio.Lock())

    async def _state(self, uuid: str) -> tuple[str, int | None]:
        status = await self.lxc.status(uuid) if self._dir(uuid).exists() else None
        if status is None:
            raise InstanceNotFound(f"lxc container {uuid} not found in {self.lxc_path}")
        return status.state, status.pid

    async def _start(self, uuid: str) -> None:
        """lxc-start -d, which returns once the container is RUNNING (no lxc-wait needed);
        DriverError with LXC's own reason if it fails or takes over ``start_timeout``."""
        cdir = self._dir(uuid)
        try:
            await self.lxc.start(uuid, cdir.lxc_log, self.start_timeout)
        except LxcCommandError as exc:
            detail = cdir.log_errors() or str(exc)
            raise DriverError(f"container {uuid} failed to start: {detail}") from None
        except trio.TooSlowError:
            detail = cdir.log_errors()
            raise DriverError(
                f"container {uuid} did not reach RUNNING in {self.start_timeout:g}s"
                + (f": {detail}" if detail else "")
            ) from None
        await self._attach_metadata(uuid)

    async def _running_pid(self, uuid: str) -> int | None:
        """Init's pid of a RUNNING container, else None."""
        if not self._dir(uuid).exists():
            return None
        status = await self.lxc.status(uuid)
        return status.pid if status is not None and status.state == "RUNNING" else None

    async def _attach_metadata(self, uuid: str) -> None:
        """Listen on 169.254.169.254:80 in the running container's network namespace,
        relaying to its metadata socket (when it has one); see :mod:`.metadata`."""
        socket_path = self._dir(uuid).meta().get("metadata_socket")
        if not socket_path or not self.metadata.running:
            return
        pid = await self._running_pid(uuid)
        if pid is not None:
            await self.metadata.attach(uuid, str(socket_path), pid)

    async def _kill(self, uuid: str, state: str) -> None:
        """Stop at once (SIGKILL to init), thawing a frozen container first."""
        self.metadata.detach(uuid)
        if state in ("FROZEN", "FREEZING"):
            await self.lxc.unfreeze(uuid)
        if state != "STOPPED":
            try:
                await self.lxc.kill(uuid)
            except LxcCommandError:
                pass  # raced with the container stopping on its own
            await self.lxc.wait(uuid, "STOPPED", 10)

    async def _remove(self, uuid: str) -> None:
        """Kill and delete the container and its directory; never raises for leftovers."""
        cdir = self._dir(uuid)
        self.metadata.detach(uuid)
        status = await self.lxc.status(uuid) if cdir.exists() else None
        if status is not None:
            await self._kill(uuid, status.state)
            try:
                await self.lxc.destroy(uuid)
            except LxcCommandError as exc:
                log.warning("lxc-destroy failed; removing the directory", uuid=uuid, error=str(exc))
        await trio.to_thread.run_sync(lambda: shutil.rmtree(cdir.path, ignore_errors=True))
        await trio.to_thread.run_sync(prune_cgroups, uuid)
        if os.path.exists(cdir.path):
            raise DriverError(f"could not remove {cdir.path}")

    # -- contract ------------------------------------------------------------
    @classmethod
    def check_host(cls) -> HostCheck:
        """Usable when the lxc-* tools (Debian package ``lxc``) are on PATH and we are root."""
        missing = missing_tools()
        if missing:
            return HostCheck(
                False, f"{', '.join(missing)} not found on PATH (install Debian's lxc package)"
            )
        if os.geteuid() != 0:
            return HostCheck(False, "the lxc driver runs privileged containers and needs root")
        return HostCheck(True)

    @classmethod
    def demo_image(cls, work_dir: str) -> DemoImage:
        """The busybox root filesystem tarball of :mod:`.rootfs` (about 1 MB), built
        from the host's static busybox into ``<work_dir>/demo-src``."""
        path = build_busybox_rootfs(os.path.join(work_dir, "demo-src"))
        return DemoImage("raw", "bare", path=path, properties={"hypervisor_type": "lxc"})

    async def init_host(self) -> None:
        """Create the LXC path, detect cgroups and overlayfs, adopt existing containers."""
        check = self.check_host()
        if not check.usable:
            raise HostUnusable(check.reason)
        if ":" in self.lxc_path or ":" in self.context.state_path:
            raise HostUnusable(f"the lxc driver's paths may not contain ':' ({self.lxc_path})")
        if self.backend not in ("overlay", "copy"):
            raise HostUnusable(
                f"[lxc] rootfs_backend = {self.backend!r}: expected 'overlay' or 'copy'"
            )
        for sig in (self.halt_signal, self.reboot_signal):
            if not valid_signal(sig):
                raise HostUnusable(f"[lxc] signal {sig!r} is not a signal name such as SIGUSR1")
        if not configdrive.valid_target(self.config_drive_path):
            raise HostUnusable(f"[lxc] config_drive_path = {self.config_drive_path!r}: expected "
                               "an absolute path without spaces or '..'")
        for path in (self.lxc_path, self.bases.root, self.scratch):
            os.makedirs(path, mode=0o700, exist_ok=True)
        if self.backend == "overlay":
            usable, why = await overlay_usable(self.lxc_path)
            if not usable:
                log.warning("overlayfs unusable; copying root filesystems", reason=why)
                self.backend = "copy"
        self.layout = cgroup_layout()
        self.version = await lxc_version()
        # Leftovers of a spawn interrupted by a crash: our files but no config yet.
        for entry in os.listdir(self.lxc_path):
            path = os.path.join(self.lxc_path, entry)
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            if entry.startswith(PROBE_PREFIX) or set(os.listdir(path)) <= SPAWN_LEFTOVERS:
                await trio.to_thread.run_sync(partial(shutil.rmtree, path, ignore_errors=True))
        for entry in os.listdir(self.bases.root):
            if entry.startswith("."):
                path = os.path.join(self.bases.root, entry)
                await trio.to_thread.run_sync(partial(shutil.rmtree, path, ignore_errors=True))
        adopted = await self.list_instances()
        log.info(
            "lxc driver ready",
            lxc_path=self.lxc_path,
            lxc_version=self.version,
            cgroups=self.layout,
            rootfs=self.backend,
            adopted=len(adopted),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The containers' metadata listeners (see :mod:`.metadata`): those of running
        containers are made again now (novalite restarted), then kept while it runs."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.metadata.run)
            for uuid in await self.list_instances():
                try:
                    await self._attach_metadata(uuid)
                except (DriverError, LxcCommandError, trio.TooSlowError) as exc:
                    log.warning("no metadata listener for the container", uuid=uuid,
                                error=str(exc))
            task_status.started()

    async def list_instances(self) -> list[str]:
        """Uuids of the containers in the driver's LXC path, running or not."""
        try:
            entries = os.listdir(self.lxc_path)
        except FileNotFoundError:
            return []
        return sorted(
            e for e in entries if valid_name(e) and ContainerDir(self.lxc_path, e).exists()
        )

    async def spawn(
        self, instance: InstanceSpec, image: ImageInfo, network: list[NetworkInfo]
    ) -> None:
        """Unpack the image (once), create the container on its own layer and start it.

        Raises :class:`SpawnFailed` with LXC's reason, after removing the container.
        """
        uuid = instance.uuid
        if not valid_name(uuid):
            raise SpawnFailed(f"{uuid!r} is not usable as a container name")
        if self.bridge and not os.path.isdir(f"/sys/class/net/{self.bridge}/bridge"):
            raise SpawnFailed(f"[lxc] bridge {self.bridge!r} is not a Linux bridge on this host")
        for n in network:  # contract 1.4: the compute host's bridge for this port
            bridge = getattr(n, "bridge", None)
            if bridge and not os.path.isdir(f"/sys/class/net/{bridge}/bridge"):
                raise SpawnFailed(f"bridge {bridge!r} is not a Linux bridge on this host")
        halt = str(image.properties.get("lxc_halt_signal") or self.halt_signal)
        reboot = str(image.properties.get("lxc_reboot_signal") or self.reboot_signal)
        for sig in (halt, reboot):
            if not valid_signal(sig):
                raise SpawnFailed(f"image signal {sig!r} is not a signal name")
        async with self._lock(uuid):
            cdir = self._dir(uuid)
            path = cdir.path
            if os.path.exists(path):
                raise SpawnFailed(f"a container named {uuid} already exists in {self.lxc_path}")
            try:
                base = await self.bases.ensure(image)  # SpawnFailed on a bad image
                os.makedirs(path, mode=0o700)
                rootfs = await prepare_layer(base, path, self.backend)
                nets = _networks(network, self.bridge)
                mounts = []
                if instance.config_drive:  # contract 1.3: the files, read-only
                    drive = os.path.join(path, configdrive.DIRECTORY)
                    await configdrive.unpack(instance.config_drive, drive)
                    mounts.append(configdrive.mount_entry(drive, self.config_drive_path))
                config = ContainerConfig(
                    name=uuid,
                    hostname=sanitize_hostname(instance.hostname or instance.name, uuid[:8]),
                    rootfs=rootfs,
                    console_log=cdir.console_log,
                    log_file=cdir.lxc_log,
                    memory_mb=instance.memory_mb,
                    vcpus=instance.vcpus,
                    halt_signal=halt,
                    reboot_signal=reboot,
                    networks=nets,
                    layout=self.layout,
                    mounts=mounts,
                    extra=self.extra_config,
                )
                meta = {
                    "uuid": uuid,
                    "name": instance.name,
                    "vcpus": instance.vcpus,
                    "memory_mb": instance.memory_mb,
                    "image_id": image.id,
                    "rootfs": rootfs,
                    # contract 1.3: where the guest's 169.254.169.254 leads
                    "metadata_socket": next(
                        (n.metadata_socket for n in network if n.metadata_socket), None),
                }
                cdir.write(config.render(), meta)
                await self._start(uuid)
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    try:
                        await self._remove(uuid)
                    except Exception as cleanup:  # report the original failure
                        log.error(
                            "cleanup after failed spawn failed", uuid=uuid, error=str(cleanup)
                        )
                if isinstance(exc, DriverError | OSError | LxcCommandError | trio.TooSlowError):
                    raise SpawnFailed(str(exc)) from None
                raise
        log.info("container started", uuid=uuid, image=image.id)

    async def destroy(self, uuid: str) -> None:
        """Kill the container and remove it, its writable layer, config and logs."""
        if not valid_name(uuid):
            return
        async with self._lock(uuid):
            if os.path.exists(self._dir(uuid).path):
                await self._remove(uuid)
        self._locks.pop(uuid, None)

    async def get_info(self, uuid: str) -> InstanceInfo:
        """Power state per ``lxc-info``; :class:`InstanceNotFound` if there is no container."""
        state, pid = await self._state(uuid)
        meta = self._dir(uuid).meta()
        return InstanceInfo(
            state=POWER_STATES.get(state, PowerState.NOSTATE),
            handle=f"lxc:{uuid}" + (f" pid {pid}" if pid else ""),
            vcpus=int(meta.get("vcpus", 0)),
            memory_mb=int(meta.get("memory_mb", 0)),
        )

    async def get_available_resource(self) -> HostResources:
        """The host's CPUs, memory and the disk under the state path; hypervisor "lxc"."""
        facts = await trio.to_thread.run_sync(hostinfo.collect, self.context.state_path)
        return HostResources(
            vcpus=facts.vcpus,
            memory_mb=facts.memory_mb,
            local_gb=facts.local_gb,
            hypervisor_type="lxc",
            hypervisor_version=hostinfo.version_number(self.version),
            hypervisor_hostname=self.context.host,
            cpu_info=facts.cpu_info,
            supported_instances=((platform.machine(), "lxc", "exe"),),
        )

    async def reboot(self, uuid: str, reboot_type: str) -> None:
        """SOFT: send init ``lxc.signal.reboot`` and wait for it to come back (hard
        after ``soft_reboot_timeout``); HARD: kill and start. RUNNING on return."""
        async with self._lock(uuid):
            state, pid = await self._state(uuid)
            if reboot_type.upper() == "SOFT" and state == "RUNNING":
                with trio.move_on_after(self.soft_reboot_timeout):
                    try:
                        await self.lxc.reboot(uuid, self.soft_reboot_timeout + 5)
                    except (LxcCommandError, trio.TooSlowError) as exc:
                        log.warning("soft reboot failed", uuid=uuid, error=str(exc))
                    while True:
                        new_state, new_pid = await self._state(uuid)
                        if new_state == "RUNNING" and new_pid != pid:
                            await self._attach_metadata(uuid)
                            return
                        await trio.sleep(0.1)
                log.warning("soft reboot timed out; rebooting hard", uuid=uuid)
                state, _ = await self._state(uuid)
            await self._kill(uuid, state)
            await self._start(uuid)

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        """Halt via init within ``timeout`` s, then kill. The rootfs is kept."""
        async with self._lock(uuid):
            state, _ = await self._state(uuid)
            if state == "STOPPED":
                return
            if timeout <= 0:
                await self._kill(uuid, state)
                return
            if state in ("FROZEN", "FREEZING"):
                await self.lxc.unfreeze(uuid)
            self.metadata.detach(uuid)
            try:
                await self.lxc.stop(uuid, timeout)
            except (LxcCommandError, trio.TooSlowError) as exc:
                log.warning("clean stop failed; killing", uuid=uuid, error=str(exc))
                state, _ = await self._state(uuid)
                await self._kill(uuid, state)
            if not await self.lxc.wait(uuid, "STOPPED", 10):
                raise DriverError(f"container {uuid} did not stop")

    async def power_on(self, uuid: str) -> None:
        """Start a stopped container from its kept root filesystem."""
        async with self._lock(uuid):
            state, _ = await self._state(uuid)
            if state == "RUNNING":
                return
            if state in ("FROZEN", "FREEZING"):
                await self.lxc.unfreeze(uuid)
                return
            await self._start(uuid)

    async def pause(self, uuid: str) -> None:
        """Freeze every process of the container (cgroup freezer): PAUSED."""
        async with self._lock(uuid):
            state, _ = await self._state(uuid)
            if state == "FROZEN":
                return
            if state != "RUNNING":
                raise DriverError(f"container {uuid} is {state}, not RUNNING: cannot pause")
            await self.lxc.freeze(uuid)

    async def unpause(self, uuid: str) -> None:
        """Thaw a frozen container: RUNNING."""
        async with self._lock(uuid):
            state, _ = await self._state(uuid)
            if state == "RUNNING":
                return
            if state not in ("FROZEN", "FREEZING"):
                raise DriverError(f"container {uuid} is {state}, not FROZEN: cannot unpause")
            await self.lxc.unfreeze(uuid)

    async def suspend(self, uuid: str) -> None:
        """Not supported: checkpointing (CRIU) would cost containers their console."""
        raise NotSupported("lxc does not support suspend (no checkpoint/restore); use pause")

    async def resume(self, uuid: str) -> None:
        """Not supported, see :meth:`suspend`."""
        raise NotSupported("lxc does not support resume (no checkpoint/restore)")

    async def get_console_output(self, uuid: str) -> str:
        """The container's console log (``lxc.console.logfile``, rotated at 1 MB)."""
        cdir = self._dir(uuid)
        if not cdir.exists():
            raise InstanceNotFound(f"lxc container {uuid} not found in {self.lxc_path}")
        return await trio.to_thread.run_sync(cdir.console)

    async def open_serial_console(self, uuid: str) -> trio.abc.Stream:
        """An interactive session on the container's ``/dev/console`` through
        ``lxc-console`` (see :mod:`.console`); the console log keeps recording. One
        session at a time per container."""
        if not self.context.serial_console_enabled:
            raise DriverError("serial consoles are disabled on this host")
        state, _ = await self._state(uuid)
        if state != "RUNNING":
            raise DriverError(f"container {uuid} is {state}, not RUNNING: no console")
        return await ConsoleSession.open(self.lxc_path, uuid)

    async def snapshot(self, uuid: str, dest_path: str) -> tuple[str, str]:
        """Pack the container's root filesystem (base + its changes) into a gzip'd
        tarball at ``dest_path``; a running container is frozen meanwhile.
        Returns ``("raw", "bare")``: the tarball boots again on this driver."""
        async with self._lock(uuid):
            state, _ = await self._state(uuid)
            rootfs = self._dir(uuid).meta().get("rootfs")
            if not rootfs:
                raise DriverError(f"container {uuid} has no novalite metadata; cannot snapshot")
            thaw = state == "RUNNING"
            if thaw:
                await self.lxc.freeze(uuid)
            try:
                async with merged_view(rootfs, self.scratch) as root:
                    await pack_tarball(root, dest_path)
            except LxcCommandError as exc:
                raise DriverError(f"snapshot of {uuid} failed: {exc}") from None
            finally:
                if thaw:
                    with trio.CancelScope(shield=True):
                        await self.lxc.unfreeze(uuid)
        return SNAPSHOT_FORMAT


def _networks(network: list[NetworkInfo], default_bridge: str) -> list[NetworkConfig]:
    """Each interface a veth: on its port's bridge (contract 1.4; the host side named
    ``nlveth-<port8>`` so the compute host's rules find it), else on ``[lxc] bridge``."""
    nets = []
    for n in network:
        bridge, port_id = getattr(n, "bridge", None), getattr(n, "port_id", None)
        if bridge and port_id:
            nets.append(NetworkConfig(bridge, n.mac, n.address, n.cidr, n.gateway,
                                      veth_pair="nlveth-" + port_id.replace("-", "")[:8]))
        elif default_bridge:
            nets.append(NetworkConfig(default_bridge, n.mac, n.address, n.cidr, n.gateway))
    return nets
