"""The hypervisor driver contract, version 1.

This module is the line between novalite and everything that runs guests. The
compute actor above it speaks only in the plain data types defined here; every
driver below it - the built-in ``fake``, ``qemu``, ``kvm`` and ``lxc`` and any
third-party plugin - implements the same small async interface. Nothing from
novalite's internals crosses it: no ORM rows, no configuration objects, no bus.

A driver is a class registered in the ``novalite.drivers`` entry-point group::

    # pyproject.toml of a plugin
    [project.entry-points."novalite.drivers"]
    mydriver = "mypackage.driver:MyDriver"

The class declares the contract version it implements (``contract_version``,
major.minor); novalite refuses a driver whose major version differs from
:data:`CONTRACT_VERSION`'s. It is constructed once per compute host with a
:class:`DriverContext`; :meth:`Driver.init_host` then runs before any other
call.

Every method is a coroutine run under trio. A driver must not block the event
loop: run blocking work with ``trio.to_thread.run_sync`` or
``trio.run_process``. Guests must outlive the service: a driver never ties a
guest's life to novalite's process, and :meth:`Driver.init_host` adopts the
guests a previous run left behind.

Example, the smallest useful driver (see ``drivers/fake.py`` for a complete
one)::

    class EchoDriver(Driver):
        name = "echo"
        contract_version = "1.0"
        capabilities = {"supports_console_output": True}

        async def spawn(self, instance, image, network):
            self.guests[instance.uuid] = PowerState.RUNNING
        ...
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

CONTRACT_VERSION = "1.0"
"""The version of this contract: a plugin's major version must equal this one's."""


class PowerState(enum.IntEnum):
    """Power state of a guest as the hypervisor sees it (Nova's ``power_state``)."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


#: Every capability name the compute API consults, with its meaning. A driver's
#: ``capabilities`` maps a subset of these to True/False; a missing name is False.
CAPABILITIES: Mapping[str, str] = {
    "supports_reboot": "reboot SOFT and HARD",
    "supports_power_off": "stop (power_off) and start (power_on)",
    "supports_pause": "pause and unpause (guest frozen in memory)",
    "supports_suspend": "suspend and resume (guest state saved to disk)",
    "supports_console_output": "get_console_output returns the guest's console log",
    "supports_snapshot": "snapshot writes the guest's disk or rootfs to a file",
}


class DriverError(Exception):
    """A driver operation failed; the message is shown to the user as the fault."""


class InstanceNotFound(DriverError):
    """The hypervisor has no guest with this uuid."""


class NotSupported(DriverError):
    """The driver does not implement this operation (its capability is False)."""


class SpawnFailed(DriverError):
    """The guest could not be created on this host; the build may be retried elsewhere.

    A driver raising it must have cleaned up everything it created for the guest.
    """


class HostUnusable(DriverError):
    """This host cannot run the driver at all (missing binaries, no permission, ...)."""


@dataclass(frozen=True)
class ImageInfo:
    """The image a guest boots from, already fetched into this host's cache.

    ``path`` is a local file that the driver must treat as read-only and shared
    with other guests (use an overlay or a copy). ``properties`` holds the
    image's Glance properties (``hypervisor_type``, ``os_command_line``, ...).
    """

    id: str
    name: str
    disk_format: str
    container_format: str
    path: str
    size: int = 0
    properties: Mapping[str, Any] = field(default_factory=dict)
    #: Paths of the cached kernel and ramdisk when the image names ``kernel_id``/``ramdisk_id``.
    kernel_path: str | None = None
    ramdisk_path: str | None = None


@dataclass(frozen=True)
class NetworkInfo:
    """One interface of a guest: the fixed address novalite allocated for it."""

    network: str
    address: str
    cidr: str
    gateway: str
    mac: str
    #: Host TCP port forwarded to the guest's port 22, when configured; else None.
    ssh_host_port: int | None = None


@dataclass(frozen=True)
class InstanceSpec:
    """What a guest is: identity, flavor sizes and user-supplied data."""

    uuid: str
    name: str
    hostname: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    flavor_name: str = ""
    key_data: str | None = None
    user_data: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Extra per-instance properties a driver may read (flavor extra specs, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class InstanceInfo:
    """What :meth:`Driver.get_info` reports about one guest."""

    state: PowerState
    #: Hypervisor-side identifier (a pid, a container name), for logs and `show`.
    handle: str = ""
    vcpus: int = 0
    memory_mb: int = 0


@dataclass(frozen=True)
class HostResources:
    """The host's capacity and identity, reported to the scheduler periodically."""

    vcpus: int
    memory_mb: int
    local_gb: int
    hypervisor_type: str
    hypervisor_version: int
    hypervisor_hostname: str
    cpu_info: Mapping[str, Any] = field(default_factory=dict)
    #: What guests this host can run, e.g. {"hypervisor_type": "qemu", "architecture": "x86_64"}.
    supported_instances: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class LifecycleEvent:
    """A change the hypervisor noticed on its own (guest powered off, crashed, ...).

    Drivers that can observe such changes without polling send them through
    :attr:`DriverContext.emit_event`; the compute actor then syncs power state at once.
    """

    uuid: str
    state: PowerState
    reason: str = ""


@dataclass(frozen=True)
class HostCheck:
    """Whether a driver can run on this machine, and why not when it cannot."""

    usable: bool
    reason: str = ""


@dataclass
class DriverContext:
    """What novalite hands a driver at construction; plain values only.

    ``state_path`` is a directory owned by this driver on this host
    (``<state_path>/<host>/<driver>``); ``instances_path`` holds one directory per
    guest; ``options`` is the driver's own configuration section as a dict.
    """

    host: str
    state_path: str
    instances_path: str
    options: Mapping[str, Any] = field(default_factory=dict)
    emit_event: Callable[[LifecycleEvent], None] = lambda event: None


class Driver(abc.ABC):
    """A hypervisor driver. Subclass it, set the class attributes, implement the methods.

    Methods not overridden raise :class:`NotSupported`; set the matching
    ``capabilities`` entry to False (or leave it out) so the API answers 409
    "not supported by this hypervisor" before calling.
    """

    #: Entry-point name users put in ``[compute] driver``.
    name: ClassVar[str] = ""
    #: The contract version this driver implements ("1.0").
    contract_version: ClassVar[str] = CONTRACT_VERSION
    #: Capability name -> bool; see :data:`CAPABILITIES`.
    capabilities: ClassVar[Mapping[str, bool]] = {}
    #: Nova's ``hypervisor_type`` of the guests this driver runs ("qemu", "lxc", "fake").
    hypervisor_type: ClassVar[str] = ""
    #: The driver's options (its ``[<name>]`` section in novalite.toml) with their
    #: defaults. novalite rejects unknown keys and values whose type differs from the
    #: default's, naming the key; the driver receives the merged dict as ``context.options``.
    option_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, context: DriverContext) -> None:
        self.context = context

    @classmethod
    def check_host(cls) -> HostCheck:
        """Say whether this driver can run here (binaries, devices, permissions).

        Must be fast and side-effect free; ``novalite drivers`` prints the reason.
        Example: ``return HostCheck(False, "qemu-system-x86_64 not found on PATH")``.
        """
        return HostCheck(True)

    async def init_host(self) -> None:
        """Prepare the host and adopt guests left running by a previous service run.

        Called once, before any other method. Must not start or stop guests.
        May raise :class:`HostUnusable`, which stops the service with its message.
        """

    async def cleanup_host(self) -> None:
        """Release the driver's own resources at service shutdown; guests keep running."""

    @abc.abstractmethod
    async def list_instances(self) -> list[str]:
        """Return the uuids of every guest this driver has on this host, running or not."""

    @abc.abstractmethod
    async def spawn(
        self, instance: InstanceSpec, image: ImageInfo, network: list[NetworkInfo]
    ) -> None:
        """Create and start a guest; return once the hypervisor reports it running.

        Raises :class:`SpawnFailed` (after cleaning up) when the guest cannot start.
        Example: ``await driver.spawn(spec, image, [net])`` then
        ``(await driver.get_info(spec.uuid)).state == PowerState.RUNNING``.
        """

    @abc.abstractmethod
    async def destroy(self, uuid: str) -> None:
        """Stop the guest if running and remove everything the driver created for it.

        Idempotent: destroying an unknown uuid succeeds and does nothing.
        """

    @abc.abstractmethod
    async def get_info(self, uuid: str) -> InstanceInfo:
        """Return the guest's current power state. Raises :class:`InstanceNotFound`."""

    @abc.abstractmethod
    async def get_available_resource(self) -> HostResources:
        """Return the host's total capacity (not what is free: novalite tracks usage)."""

    async def reboot(self, uuid: str, reboot_type: str) -> None:
        """Reboot the guest. ``reboot_type`` is "SOFT" (ask the guest; fall back to
        hard after a timeout) or "HARD" (reset). The guest is RUNNING on return."""
        raise NotSupported(f"{self.name} does not support reboot")

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        """Shut the guest down, cleanly within ``timeout`` seconds if it cooperates,
        forcibly after. The guest's disk is kept; it is SHUTDOWN on return."""
        raise NotSupported(f"{self.name} does not support power off")

    async def power_on(self, uuid: str) -> None:
        """Start a SHUTDOWN guest again from the same disk, with the same address."""
        raise NotSupported(f"{self.name} does not support power on")

    async def pause(self, uuid: str) -> None:
        """Freeze the guest in memory (PAUSED)."""
        raise NotSupported(f"{self.name} does not support pause")

    async def unpause(self, uuid: str) -> None:
        """Resume a PAUSED guest (RUNNING)."""
        raise NotSupported(f"{self.name} does not support unpause")

    async def suspend(self, uuid: str) -> None:
        """Save the guest's state to disk and release its memory (SUSPENDED)."""
        raise NotSupported(f"{self.name} does not support suspend")

    async def resume(self, uuid: str) -> None:
        """Restore a SUSPENDED guest (RUNNING)."""
        raise NotSupported(f"{self.name} does not support resume")

    async def get_console_output(self, uuid: str) -> str:
        """Return the guest's console log (the tail is enough; novalite trims to ``length``)."""
        raise NotSupported(f"{self.name} does not support console output")

    async def snapshot(self, uuid: str, dest_path: str) -> tuple[str, str]:
        """Write the guest's disk (or root filesystem) to ``dest_path``.

        Returns ``(disk_format, container_format)`` of what was written.
        """
        raise NotSupported(f"{self.name} does not support snapshots")
