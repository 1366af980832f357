"""The hypervisor driver contract, version 1.5.

This module is the line between novalite and everything that runs guests. The
compute actor above it speaks only in the plain data types defined here; every
driver below it - the built-in ``fake``, ``qemu``, ``kvm`` and ``lxc`` and any
third-party plugin - implements the same small async interface. Nothing from
novalite's internals crosses it: no ORM rows, no configuration objects, no bus.
The path ``novalite.virt.driver`` (re-exported by ``novalite.virt``) is stable.

A driver is a class registered in the ``novalite.drivers`` entry-point group::

    # pyproject.toml of a plugin
    [project.entry-points."novalite.drivers"]
    mydriver = "mypackage.driver:MyDriver"

The class declares the contract version it implements (``contract_version``,
"major.minor"). novalite refuses a driver whose major version differs from
:data:`CONTRACT_VERSION`'s, naming the driver, its distribution and both
versions; minor versions only add optional things (a 1.0 driver runs unchanged
on a 1.3 novalite). See :data:`CHANGES`.

Life of a driver object, as the compute actor drives it (one object per
compute host):

1. ``cls.check_host()`` - can this machine run the driver at all? (With
   ``[compute] driver = "auto"``, ``cls.auto_select()`` then says whether it wants to
   be the one chosen; on first start ``cls.demo_image(work_dir)`` offers the image
   registered as ``demo``. Both are optional class-level hooks, contract 1.2.)
2. ``driver = cls(context)`` with a :class:`DriverContext`.
3. ``await driver.init_host()`` - prepare, and adopt guests a previous run left.
4. ``await nursery.start(driver.run)`` - the driver's own background work, if any.
5. any number of :meth:`Driver.spawn`, :meth:`Driver.get_info`, power actions, ...
   (never two at once for the same uuid; concurrently for different uuids).
6. at shutdown ``run`` is cancelled, then ``await driver.cleanup_host()``. Guests
   keep running; the next service run adopts them in step 3.

Every method is a coroutine run under trio. A driver must not block the event
loop: run blocking work with ``trio.to_thread.run_sync`` or ``trio.run_process``.
Guests must outlive the service: a driver never ties a guest's life to
novalite's process (start guests in their own session, never as children that
die with it).

Errors: raise :class:`InstanceNotFound` for an unknown uuid, :class:`NotSupported`
for an operation the driver does not implement, :class:`SpawnFailed` when a guest
cannot be created (novalite may retry on another host), :class:`HostUnusable`
from ``init_host`` when the host cannot run guests, and :class:`DriverError`
for anything else; the message is shown to the user as the instance's fault.

Example, the smallest useful driver (``drivers/fake.py`` is a complete one, and
``plugins/novalite-driver-process`` a real third-party one)::

    class EchoDriver(Driver):
        name = "echo"
        contract_version = "1.2"
        hypervisor_type = "echo"
        capabilities = {"supports_console_output": True}

        def __init__(self, context):
            super().__init__(context)
            self.guests = {}

        async def list_instances(self):
            return list(self.guests)

        async def spawn(self, instance, image, network):
            self.guests[instance.uuid] = f"{instance.hostname} booted {image.name}\\n"

        async def destroy(self, uuid):
            self.guests.pop(uuid, None)

        async def get_info(self, uuid):
            if uuid not in self.guests:
                raise InstanceNotFound(uuid)
            return InstanceInfo(PowerState.RUNNING)

        async def get_available_resource(self):
            return HostResources(vcpus=4, memory_mb=4096, local_gb=10,
                                 hypervisor_type="echo", hypervisor_version=1,
                                 hypervisor_hostname=self.context.host)

        async def get_console_output(self, uuid):
            return self.guests[uuid]

(It keeps guests in memory, so they do not survive a restart: a real driver
keeps what it needs to adopt them under ``context.state_path``.)
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trio

CONTRACT_VERSION = "1.6"
"""The version of this contract: a plugin's major version must equal this one's."""

#: What each minor version added; a driver may rely on what its declared version lists.
CHANGES: Mapping[str, str] = {
    "1.0": "the first stable contract",
    "1.1": "Driver.run (a background task the compute actor runs for the driver's life) "
           "and InstanceInfo.reason (why a guest is in its state)",
    "1.2": "Driver.auto_priority and Driver.auto_select (offer the driver for "
           "[compute] driver = \"auto\"), Driver.demo_image and DemoImage (the image "
           "registered as `demo` on first start)",
    "1.3": "consoles: Driver.open_vnc_console and Driver.open_serial_console (capabilities "
           "supports_vnc_console, supports_serial_console) and DriverContext.vnc_enabled / "
           "DriverContext.serial_console_enabled; guest access: InstanceSpec.config_drive "
           "(a config-2 ISO 9660 image to attach read-only) and NetworkInfo.metadata_socket "
           "(a UNIX socket to connect the guest's metadata address to), with the "
           "capabilities supports_config_drive and supports_metadata_socket",
    "1.4": "rebuild, rescue and crash dumps: Driver.rebuild (capability supports_rebuild; "
           "without it novalite rebuilds by destroy and spawn), Driver.rescue and "
           "Driver.unrescue (supports_rescue; supports_stable_rescue for images asking "
           "hw_rescue_device/hw_rescue_bus), Driver.trigger_crash_dump "
           "(supports_trigger_crash_dump); bridged networking: NetworkInfo.port_id, "
           "network_id, bridge, dns, mtu, security_rules and security_group_ids; with a "
           "bridge the driver attaches the guest's NIC to it (QEMU: the tap nltap-<port8> "
           "the compute host made; LXC: a veth nlveth-<port8>) instead of user-mode "
           "networking; "
           "resize and cold migration: Driver.migrate_disk_and_power_off, "
           "Driver.finish_migration, Driver.confirm_migration and "
           "Driver.finish_revert_migration (capability supports_resize); live migration: "
           "Driver.live_migration, Driver.post_live_migration_at_destination and "
           "Driver.post_live_migration (capability supports_live_migration); "
           "block storage: Driver.attach_volume / Driver.detach_volume (capability "
           "supports_attach_volume) and Driver.extend_volume (supports_extend_volume), "
           "with VolumeConnection (a volume's data as a path on the compute host); "
           "InstanceSpec.root_volume (boot from volume, supports_boot_from_volume); "
           "networks: NetworkInfo.port_id, network_id, bridge (nlbr-<8 of the network "
           "id>), dns, mtu, security_group_ids and security_rules (plain dicts, remote "
           "groups resolved to addresses); a driver may offer update_port_security(port_id, "
           "security_rules) to apply changed rules to a running guest's port",
    "1.5": "capability supports_host_bridge: spawn puts a NIC whose NetworkInfo.bridge "
           "is set on that host bridge (QEMU: the tap nltap-<port8>; LXC: a veth "
           "nlveth-<port8>); [network] driver = \"auto\" runs bridges only for a driver "
           "declaring it (the fake driver does not: its guests would get real taps); and "
           "live migration between hosts that share no disk: "
           "Driver.pre_live_migration on the destination (gets the guest ready to "
           "receive, e.g. QEMU started with -incoming; returns plain data for the "
           "source), passed to Driver.live_migration as its migrate_data keyword when "
           "not empty, and Driver.rollback_live_migration_at_destination (removes what "
           "pre_live_migration made when the move fails) and "
           "Driver.rollback_live_migration (the source runs the guest again when the "
           "destination failed after live_migration returned); all three have defaults "
           "that do nothing, so a 1.4 driver migrates as before",
    "1.6": "resize and cold migration to another host that shares no disk: "
           "Driver.finish_migration takes the keyword image (the instance's image as "
           "fetched into the destination's cache, as spawn gets it), passed only when "
           "disk_info comes from another host and the driver declares 1.6; its network "
           "is then made on the destination as for a spawn (ssh_host_port, "
           "metadata_socket); network interfaces added to and removed from a guest: "
           "Driver.attach_interface and Driver.detach_interface (capability "
           "supports_attach_interface)",
}


class PowerState(enum.IntEnum):
    """Power state of a guest as the hypervisor sees it (Nova's ``power_state``).

    ``NOSTATE`` means "cannot tell right now" (a guest starting or stopping);
    novalite treats a guest that is gone from the hypervisor as ``NOSTATE`` too.
    """

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


#: Every capability name the compute API consults, with its meaning. A driver's
#: ``capabilities`` maps a subset of these to True/False; a missing name is False.
#: The API answers 409 "not supported by this hypervisor" for an action whose
#: capability is False, without calling the driver.
CAPABILITIES: Mapping[str, str] = {
    "supports_reboot": "reboot SOFT and HARD",
    "supports_power_off": "stop (power_off) and start (power_on)",
    "supports_pause": "pause and unpause (guest frozen in memory)",
    "supports_suspend": "suspend and resume (guest state saved to disk)",
    "supports_console_output": "get_console_output returns the guest's console log",
    "supports_snapshot": "snapshot writes the guest's disk or rootfs to a file",
    "supports_ssh_forward": "spawn forwards NetworkInfo.ssh_host_port (127.0.0.1) to the "
                            "guest's port 22",
    "supports_vnc_console": "open_vnc_console returns a stream to the guest's VNC (RFB) "
                            "server (contract 1.3)",
    "supports_serial_console": "open_serial_console returns an interactive stream to the "
                               "guest's serial console (contract 1.3)",
    "supports_config_drive": "spawn attaches InstanceSpec.config_drive to the guest "
                             "read-only (contract 1.3)",
    "supports_metadata_socket": "spawn connects the guest's TCP connections to "
                                "169.254.169.254:80 to NetworkInfo.metadata_socket, one "
                                "socket connection per guest connection (contract 1.3)",
    "supports_rebuild": "rebuild replaces the guest's disk with a new image in place "
                        "(contract 1.4; without it novalite destroys and spawns)",
    "supports_rescue": "rescue boots a rescue image with the guest's disk attached second, "
                       "unrescue boots the guest's own disk again (contract 1.4)",
    "supports_stable_rescue": "rescue keeps the guest's disk at its device and attaches "
                              "the rescue disk where the image's hw_rescue_device/"
                              "hw_rescue_bus ask (contract 1.4)",
    "supports_trigger_crash_dump": "trigger_crash_dump injects an NMI into the guest "
                                   "(contract 1.4)",
    "supports_resize": "resize and cold migration: migrate_disk_and_power_off on the "
                       "source, finish_migration on the destination (which may be the "
                       "same host), then confirm_migration or finish_revert_migration on "
                       "the source (contract 1.4)",
    "supports_live_migration": "live migration: pre_live_migration on the destination "
                               "(contract 1.5), live_migration on the source while the "
                               "guest runs, post_live_migration_at_destination on the "
                               "destination, post_live_migration on the source "
                               "(contract 1.4); rollback_live_migration_at_destination "
                               "when it fails (contract 1.5)",
    "supports_attach_volume": "attach_volume adds a volume to a running guest as a new "
                              "disk, detach_volume removes it (contract 1.4)",
    "supports_extend_volume": "extend_volume tells a running guest that an attached "
                              "volume grew (contract 1.4)",
    "supports_boot_from_volume": "spawn boots from InstanceSpec.root_volume when it is "
                                 "set (contract 1.4)",
    "supports_host_bridge": "spawn attaches a NIC whose NetworkInfo.bridge is set to the "
                            "compute host's device on that bridge (QEMU: tap "
                            "nltap-<port8>; LXC: veth nlveth-<port8>) (contract 1.5)",
    "supports_attach_interface": "attach_interface adds a NIC for a port to a guest "
                                 "(hot-plugged when it runs), detach_interface removes "
                                 "it (contract 1.6)",
}

#: The driver methods each capability stands for (the conformance kit checks that
#: a driver claiming a capability implements them and that the others raise
#: :class:`NotSupported`).
CAPABILITY_METHODS: Mapping[str, tuple[str, ...]] = {
    "supports_reboot": ("reboot",),
    "supports_power_off": ("power_off", "power_on"),
    "supports_pause": ("pause", "unpause"),
    "supports_suspend": ("suspend", "resume"),
    "supports_console_output": ("get_console_output",),
    "supports_snapshot": ("snapshot",),
    "supports_ssh_forward": (),  # a property of spawn, not a method of its own
    "supports_vnc_console": ("open_vnc_console",),
    "supports_serial_console": ("open_serial_console",),
    "supports_config_drive": (),  # likewise
    "supports_metadata_socket": (),  # likewise
    "supports_rebuild": ("rebuild",),
    "supports_rescue": ("rescue", "unrescue"),
    "supports_stable_rescue": (),  # a property of rescue
    "supports_trigger_crash_dump": ("trigger_crash_dump",),
    "supports_resize": ("migrate_disk_and_power_off", "finish_migration",
                        "confirm_migration", "finish_revert_migration"),
    "supports_live_migration": ("live_migration", "post_live_migration_at_destination",
                                "post_live_migration"),
    "supports_attach_volume": ("attach_volume", "detach_volume"),
    "supports_extend_volume": ("extend_volume",),
    "supports_boot_from_volume": (),  # a property of spawn
    "supports_host_bridge": (),  # likewise
    "supports_attach_interface": ("attach_interface", "detach_interface"),
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
    image's Glance properties (``hypervisor_type``, ``os_command_line``, or a
    driver's own, such as the process driver's ``process_command``).
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
    #: A UNIX socket of the compute host (contract 1.3, capability
    #: ``supports_metadata_socket``): the driver connects each TCP connection the guest
    #: opens to 169.254.169.254:80 on this interface to a new connection to this socket,
    #: and nothing else to it. The socket tells guests apart by path: it must be
    #: reachable from this guest only. None: no metadata service for this interface.
    metadata_socket: str | None = None
    #: Contract 1.4, a port on a host bridge (all optional: None/empty on user-mode
    #: networking). The Neutron port's id; its network's id.
    port_id: str | None = None
    network_id: str | None = None
    #: The Linux bridge the guest's NIC joins (``nlbr-<first 8 of network id>``), set up
    #: by the compute host before spawn; None: user-mode networking as before. The
    #: host creates a QEMU guest's tap ``nltap-<first 8 of port id>`` on it; an LXC
    #: container's veth is ``nlveth-<first 8 of port id>`` (host side), made by LXC.
    bridge: str | None = None
    #: DNS servers and MTU the network's DHCP hands out.
    dns: list[str] = field(default_factory=list)
    mtu: int | None = None
    #: The port's security group rules as plain dicts (direction ingress|egress,
    #: ethertype, protocol tcp|udp|icmp|None, port_range_min, port_range_max,
    #: remote_ip_prefix, remote_group_addresses); the compute host enforces them.
    security_rules: list[dict[str, Any]] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    #: False: no filtering on this port at all (Neutron's port_security_enabled).
    port_security_enabled: bool = True


@dataclass(frozen=True)
class VolumeConnection:
    """A volume as the compute host reaches it (contract 1.4): its data is ``path``, a
    file or block device on this machine that the driver opens read-write (never
    copies); ``serial`` is what the guest sees as the disk's serial number
    (``/dev/disk/by-id/virtio-<serial>``), the volume id cut to 20 characters as Nova
    does; ``device`` the name the user asked for (``/dev/vdb``), a hint only."""

    volume_id: str
    path: str
    size: int
    device: str | None = None
    read_only: bool = False

    @property
    def serial(self) -> str:
        return self.volume_id[:20]


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
    #: Path of the guest's config drive (contract 1.3, capability
    #: ``supports_config_drive``): an ISO 9660 image labelled ``config-2`` that the
    #: compute host built; the driver attaches it read-only for the guest's whole life
    #: (keeping its own copy: the compute host removes this file once spawn returns).
    #: None: no config drive.
    config_drive: str | None = None
    #: The volume the guest boots from (contract 1.4, capability
    #: ``supports_boot_from_volume``): the driver uses it, raw and read-write, as the
    #: guest's root disk instead of a disk made from the image (the image still gives
    #: the kernel and ramdisk it names). None: the root disk is made from the image.
    root_volume: VolumeConnection | None = None

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
    #: Why the guest is in this state, when the driver knows (contract 1.1), e.g.
    #: "process exited with status 3" or "powered off by request"; else None.
    reason: str | None = None


@dataclass(frozen=True)
class HostResources:
    """The host's capacity and identity, reported to the scheduler periodically.

    Plain values only: it crosses the bus as a dict.
    """

    vcpus: int
    memory_mb: int
    local_gb: int
    hypervisor_type: str
    hypervisor_version: int
    hypervisor_hostname: str
    cpu_info: Mapping[str, Any] = field(default_factory=dict)
    #: (architecture, hypervisor_type, vm_mode) triples of the guests this host can run,
    #: e.g. (("x86_64", "qemu", "hvm"),); the ImagePropertiesFilter matches images on them.
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


@dataclass(frozen=True)
class DemoImage:
    """The image novalite registers as ``demo`` on first start (contract 1.2).

    Exactly one of ``data`` (the image's bytes, for a small image: novalite writes
    them to a file, registers it and removes the file) or ``path`` (a file the
    driver built, under the ``work_dir`` it was given; novalite registers it and
    leaves it there) is set. ``disk_format`` and ``container_format`` are Glance's
    names; ``properties`` are the Glance properties to register it with (e.g.
    ``{"hypervisor_type": "lxc"}`` so the scheduler sends it to hosts that boot it).
    """

    disk_format: str
    container_format: str
    data: bytes | None = None
    path: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.data is None) == (self.path is None):
            raise ValueError("DemoImage needs exactly one of data or path")


@dataclass
class DriverContext:
    """What novalite hands a driver at construction; plain values only.

    ``state_path`` is a directory owned by this driver on this host
    (``<state_path>/drivers/<driver>/<host>``; it may not exist yet);
    ``instances_path`` is shared by every host of this service and holds one
    directory per guest when the driver wants one; ``options`` is the driver's
    own configuration section (``[<name>]`` in novalite.toml) merged over
    :attr:`Driver.option_defaults`. ``emit_event`` is safe to call from the trio
    thread at any time; it never blocks. ``vnc_enabled`` and ``serial_console_enabled``
    (contract 1.3) say which consoles the operator turned on.
    """

    host: str
    state_path: str
    instances_path: str
    options: Mapping[str, Any] = field(default_factory=dict)
    emit_event: Callable[[LifecycleEvent], None] = lambda event: None
    #: Whether the operator enabled graphical consoles (``[vnc] enabled``, contract 1.3):
    #: a driver gives guests it spawns a display device and a VNC server only then.
    vnc_enabled: bool = True
    #: Whether the operator enabled interactive serial consoles (``[serial_console]
    #: enabled``, contract 1.3).
    serial_console_enabled: bool = True


class Driver(abc.ABC):
    """A hypervisor driver. Subclass it, set the class attributes, implement the methods.

    The five abstract methods are required. The optional ones raise
    :class:`NotSupported` unless overridden; set the matching ``capabilities``
    entry to True only for those you implement, so the API answers 409 "not
    supported by this hypervisor" before calling.
    """

    #: Entry-point name users put in ``[compute] driver``.
    name: ClassVar[str] = ""
    #: The contract version this driver implements ("1.1").
    contract_version: ClassVar[str] = CONTRACT_VERSION
    #: Capability name -> bool; see :data:`CAPABILITIES`.
    capabilities: ClassVar[Mapping[str, bool]] = {}
    #: Nova's ``hypervisor_type`` of the guests this driver runs ("qemu", "lxc", "fake").
    hypervisor_type: ClassVar[str] = ""
    #: The driver's options (its ``[<name>]`` section in novalite.toml) with their
    #: defaults. novalite rejects unknown keys and values whose type differs from the
    #: default's, naming the key; the driver receives the merged dict as ``context.options``.
    option_defaults: ClassVar[Mapping[str, Any]] = {}
    #: Whether ``[compute] driver = "auto"`` may choose this driver, and before which
    #: others (contract 1.2): None (the default) never; otherwise the usable driver
    #: with the highest number whose :meth:`auto_select` agrees is chosen. The
    #: built-ins use kvm 300, qemu 200, fake 100 (the last resort).
    auto_priority: ClassVar[int | None] = None

    def __init__(self, context: DriverContext) -> None:
        """Keep the context; do no I/O here (``init_host`` is where work starts)."""
        self.context = context

    # -- host ------------------------------------------------------------------
    @classmethod
    def check_host(cls) -> HostCheck:
        """Say whether this driver can run here (binaries, devices, permissions).

        Must be fast and side-effect free; never raises (an exception is reported
        as "not usable"). ``novalite drivers`` prints the reason, and a configured
        driver that is not usable stops ``novalite serve`` with it.

        Example: ``return HostCheck(False, "qemu-system-x86_64 not found on PATH")``.
        """
        return HostCheck(True)

    @classmethod
    def auto_select(cls) -> HostCheck:
        """Say whether ``[compute] driver = "auto"`` should choose this driver here
        (contract 1.2; asked only when :attr:`auto_priority` is set and
        :meth:`check_host` is usable, in priority order; the first yes wins).

        ``check_host`` says whether the driver *can* run; this says whether it is the
        right default, e.g. kvm declines on a host where KVM cannot run Linux guests.
        The reason is logged at start: why it was chosen, or why passed over. Same
        rules as ``check_host``: fast, side-effect free, never raises. The default
        agrees.

        Example: ``return HostCheck(True, "KVM is usable and runs Linux guests")``.
        """
        return HostCheck(True)

    @classmethod
    def demo_image(cls, work_dir: str) -> DemoImage | None:
        """Return the image novalite registers as ``demo`` on first start, one this
        driver boots, or None (the default) for no demo image (contract 1.2).

        Called once, when the service starts on an empty image store with this driver
        configured and no external Glance, in a worker thread: it may block (build a
        root filesystem, run a tool). ``work_dir`` is a directory the driver may write
        to (it exists); a :attr:`DemoImage.path` must lie under it. An exception
        stops the service with its message.

        Example: ``return DemoImage("raw", "bare", data=make_boot_sector("hello"))``.
        """
        return None

    async def init_host(self) -> None:
        """Prepare the host and adopt guests left running by a previous service run.

        Called once, before any other method. Must not start or stop guests: a guest
        found running stays running, one found stopped stays stopped, and both are
        then listed by :meth:`list_instances`.

        Raises :class:`HostUnusable`, which stops the service with its message.
        Example: ``os.makedirs(self.context.state_path, exist_ok=True)``, then read
        back the pidfiles/state files of the guests found there.
        """

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The driver's background work for as long as the service runs (contract 1.1).

        The compute actor calls it once, after :meth:`init_host` and before it reports
        ready, as ``await nursery.start(driver.run)``: call ``task_status.started()``
        once the work is set up, then keep running (watch the hypervisor's event
        stream, reap processes, ...) until cancelled at shutdown. Cancellation is the
        only way it ends normally; an exception escaping it stops the service, so
        catch and log what you can survive. The default does nothing: it reports
        started and returns.

        Example, a watcher that reports guests that stop on their own::

            async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
                task_status.started()
                while True:
                    for uuid in self.exited_guests():
                        self.context.emit_event(LifecycleEvent(uuid, PowerState.SHUTDOWN,
                                                               "process exited"))
                    await trio.sleep(1)
        """
        task_status.started()

    async def cleanup_host(self) -> None:
        """Release the driver's own resources at service shutdown; guests keep running.

        Called once, after :meth:`run` was cancelled. Must not stop guests.
        Example: close a connection to the hypervisor's management socket.
        """

    @abc.abstractmethod
    async def get_available_resource(self) -> HostResources:
        """Return the host's total capacity (not what is free: novalite tracks usage).

        Called at start and periodically. ``hypervisor_type`` should equal the
        class's ``hypervisor_type``.

        Example: ``return HostResources(vcpus=os.cpu_count(), memory_mb=16384,
        local_gb=100, hypervisor_type="qemu", hypervisor_version=8002002,
        hypervisor_hostname=self.context.host)``.
        """

    # -- guests ----------------------------------------------------------------------
    @abc.abstractmethod
    async def list_instances(self) -> list[str]:
        """Return the uuids of every guest this driver has on this host, running or not.

        Includes guests adopted by :meth:`init_host` and guests that are SHUTDOWN;
        excludes destroyed ones. Order does not matter.
        Example: ``sorted(os.listdir(self.guests_dir))``.
        """

    @abc.abstractmethod
    async def spawn(
        self, instance: InstanceSpec, image: ImageInfo, network: list[NetworkInfo]
    ) -> None:
        """Create and start a guest; return once the hypervisor reports it running.

        ``instance`` says what to create (uuid, hostname, flavor sizes, user data),
        ``image.path`` is the cached image file (read-only, shared), ``network`` the
        addresses novalite allocated (possibly none). After it returns,
        :meth:`get_info` reports RUNNING and :meth:`list_instances` includes the uuid.

        Raises :class:`SpawnFailed` (after removing everything it created for the
        guest) when the guest cannot start on this host; novalite may reschedule.
        Any other exception puts the instance in ERROR with the message as its fault.

        Example: ``await driver.spawn(spec, image, [net])`` then
        ``(await driver.get_info(spec.uuid)).state == PowerState.RUNNING``.
        """

    @abc.abstractmethod
    async def destroy(self, uuid: str) -> None:
        """Stop the guest if running and remove everything the driver created for it.

        Works from any state (running, paused, suspended, shut down, half-built).
        After it returns no process and no file of the guest is left, and
        :meth:`get_info` raises :class:`InstanceNotFound`.
        Idempotent: destroying an unknown uuid succeeds and does nothing.
        Raises :class:`DriverError` only when the guest could not be removed.

        Example: ``await driver.destroy(uuid); await driver.destroy(uuid)  # no error``.
        """

    @abc.abstractmethod
    async def get_info(self, uuid: str) -> InstanceInfo:
        """Return the guest's current power state (and, optionally, why).

        Asks the hypervisor every time (novalite's power-state sync relies on it
        noticing a guest that stopped by itself); must be cheap, it is polled.
        Raises :class:`InstanceNotFound` for a uuid the driver does not have.

        Example: ``InstanceInfo(PowerState.SHUTDOWN, handle="pid:1234",
        reason="process exited with status 3")``.
        """

    # -- optional: each needs its capability --------------------------------------------
    async def reboot(self, uuid: str, reboot_type: str) -> None:
        """Reboot the guest (capability ``supports_reboot``).

        ``reboot_type`` is "SOFT" (ask the guest; fall back to hard after a timeout)
        or "HARD" (reset). The guest is RUNNING on return. Raises
        :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.reboot(uuid, "HARD")``.
        """
        raise NotSupported(f"{self.name} does not support reboot")

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        """Shut the guest down (capability ``supports_power_off``).

        Cleanly within ``timeout`` seconds if it cooperates, forcibly after. The
        guest's disk is kept and it stays listed; it is SHUTDOWN on return. Raises
        :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.power_off(uuid, timeout=30)``.
        """
        raise NotSupported(f"{self.name} does not support power off")

    async def power_on(self, uuid: str) -> None:
        """Start a SHUTDOWN guest again from the same disk, with the same address
        (capability ``supports_power_off``). It is RUNNING on return. Raises
        :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.power_on(uuid)``.
        """
        raise NotSupported(f"{self.name} does not support power on")

    async def pause(self, uuid: str) -> None:
        """Freeze the guest in memory; PAUSED on return (capability ``supports_pause``).
        Raises :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.pause(uuid)``.
        """
        raise NotSupported(f"{self.name} does not support pause")

    async def unpause(self, uuid: str) -> None:
        """Resume a PAUSED guest; RUNNING on return (capability ``supports_pause``).
        Raises :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.unpause(uuid)``.
        """
        raise NotSupported(f"{self.name} does not support unpause")

    async def suspend(self, uuid: str) -> None:
        """Save the guest's state to disk and release its memory; SUSPENDED on return
        (capability ``supports_suspend``). Raises :class:`InstanceNotFound`,
        :class:`DriverError`. Example: ``await driver.suspend(uuid)``.
        """
        raise NotSupported(f"{self.name} does not support suspend")

    async def resume(self, uuid: str) -> None:
        """Restore a SUSPENDED guest; RUNNING on return (capability ``supports_suspend``).
        Raises :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.resume(uuid)``.
        """
        raise NotSupported(f"{self.name} does not support resume")

    async def get_console_output(self, uuid: str) -> str:
        """Return the guest's console log as text (capability ``supports_console_output``).

        The tail is enough (novalite trims to the ``length`` the user asks for);
        keep it bounded. Works while the guest is shut down too (the log of its
        last run). Raises :class:`InstanceNotFound`.
        Example: ``"Booting...\\nvm1 login: "``.
        """
        raise NotSupported(f"{self.name} does not support console output")

    async def snapshot(self, uuid: str, dest_path: str) -> tuple[str, str]:
        """Write the guest's disk (or root filesystem) to ``dest_path``
        (capability ``supports_snapshot``); the guest keeps its power state.

        Returns ``(disk_format, container_format)`` of what was written, as Glance
        names them. Raises :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.snapshot(uuid, "/tmp/snap") == ("qcow2", "bare")``.
        """
        raise NotSupported(f"{self.name} does not support snapshots")

    async def open_vnc_console(self, uuid: str) -> trio.abc.Stream:
        """Open a byte stream to the guest's VNC server (capability
        ``supports_vnc_console``, contract 1.3).

        The stream carries the RFB protocol from its first byte (the server's
        ``RFB 003.008`` greeting), with no authentication of its own (security type
        None): novalite's console proxy has already checked the user's console token,
        and relays the stream to a browser (noVNC) unchanged. Each call opens a new,
        independent stream; the caller closes it with ``aclose()``, which must leave
        the guest untouched. The driver must not expose the VNC server on a network
        port of its own (a UNIX socket in the guest's directory is the usual end).

        Raises :class:`InstanceNotFound`, :class:`DriverError` when the guest is not
        running or has no display (e.g. ``context.vnc_enabled`` was False at spawn).
        Example::

            stream = await driver.open_vnc_console(uuid)
            assert (await stream.receive_some(12)).startswith(b"RFB ")
        """
        raise NotSupported(f"{self.name} does not support VNC consoles")

    async def open_serial_console(self, uuid: str) -> trio.abc.Stream:
        """Open an interactive byte stream to the guest's serial console (capability
        ``supports_serial_console``, contract 1.3).

        Bytes sent are typed into the guest's console (its ttyS0, or a container's
        /dev/console); bytes received are what the guest writes there from now on.
        :meth:`get_console_output` keeps working meanwhile and includes what was
        written during the session. A driver may allow one session per guest at a
        time and raise :class:`DriverError` ("console in use") for a second one.
        ``aclose()`` on the stream ends the session and leaves the guest running.

        Raises :class:`InstanceNotFound`, :class:`DriverError` when the guest is not
        running. Example::

            stream = await driver.open_serial_console(uuid)
            await stream.send_all(b"uname -r\\n")
            answer = await stream.receive_some(4096)
        """
        raise NotSupported(f"{self.name} does not support serial consoles")

    async def rebuild(self, instance: InstanceSpec, image: ImageInfo,
                      network: list[NetworkInfo]) -> None:
        """Replace the guest's disk with a new one from ``image`` and boot it, keeping
        what the hypervisor knows of the guest otherwise (capability
        ``supports_rebuild``, contract 1.4).

        Called on a guest that exists, in any power state; the old disk (and any
        rescue disk) must be gone on return, and the guest RUNNING from the new one,
        with ``instance``'s data (user data, key, hostname, config drive) as
        :meth:`spawn` takes them. A driver without the capability is rebuilt by
        novalite as :meth:`destroy` then :meth:`spawn`, which is correct for every
        driver; implement it only when in-place is cheaper. Raises
        :class:`InstanceNotFound`, :class:`DriverError` (the instance goes to ERROR).
        Example: ``await driver.rebuild(spec, new_image, network)``.
        """
        raise NotSupported(f"{self.name} does not support rebuild in place")

    async def rescue(self, instance: InstanceSpec, rescue_image: ImageInfo,
                     network: list[NetworkInfo], *, stable: bool = False) -> None:
        """Boot the guest from ``rescue_image`` with its own disk attached as the second
        disk (capability ``supports_rescue``, contract 1.4).

        The guest's own disk is kept untouched for :meth:`unrescue`. With ``stable``
        (capability ``supports_stable_rescue``; the image's ``hw_rescue_device`` /
        ``hw_rescue_bus`` properties ask for it) the guest's disk keeps its device and
        the rescue disk is added after it. The guest is RUNNING on return. Raises
        :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.rescue(spec, rescue_image, network)``.
        """
        raise NotSupported(f"{self.name} does not support rescue")

    async def unrescue(self, uuid: str) -> None:
        """Leave rescue: drop the rescue disk and boot the guest from its own disk
        again (capability ``supports_rescue``, contract 1.4). RUNNING on return.
        Raises :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.unrescue(uuid)``.
        """
        raise NotSupported(f"{self.name} does not support unrescue")

    async def trigger_crash_dump(self, uuid: str) -> None:
        """Inject a non-maskable interrupt into the running guest, which a guest kernel
        configured for it answers with a crash dump (capability
        ``supports_trigger_crash_dump``, contract 1.4). Returns once the NMI is sent;
        what the guest does with it is up to the guest. Raises
        :class:`InstanceNotFound`, :class:`DriverError` when the guest is not running.
        Example: ``await driver.trigger_crash_dump(uuid)``.
        """
        raise NotSupported(f"{self.name} does not support crash dumps")
    # -- resize and cold migration (contract 1.4, capability ``supports_resize``) -------
    async def migrate_disk_and_power_off(self, uuid: str, dest_host: str,
                                         instance: InstanceSpec) -> dict[str, Any]:
        """On the source host: power the guest off and make its disk ready to move to
        ``dest_host`` (this host's own name for a same-host resize) with ``instance``'s
        new sizes (the new flavor; ``root_gb`` is never smaller than the old one: the
        compute layer refuses that before calling).

        Returns plain data (it crosses the bus) that the destination's
        :meth:`finish_migration` needs to get the disk: where to fetch it from (a URL or
        an address of this host; never a path the destination is assumed to share).
        The source guest must stay recoverable, powered off, until
        :meth:`confirm_migration` removes it or :meth:`finish_revert_migration` brings
        it back, and must not be listed by :meth:`list_instances` meanwhile if the same
        uuid is spawned here by :meth:`finish_migration`.

        Raises :class:`InstanceNotFound`, :class:`DriverError` (the guest is left as it
        was, running again if it ran). Example::

            disk = await driver.migrate_disk_and_power_off(uuid, "compute-b", new_spec)
        """
        raise NotSupported(f"{self.name} does not support resize or cold migration")

    async def finish_migration(self, instance: InstanceSpec, disk_info: dict[str, Any],
                               network: list[NetworkInfo], power_on: bool,
                               image: ImageInfo | None = None) -> None:
        """On the destination host: create the guest ``instance`` (its new sizes: the
        root disk grown to ``root_gb``, the new vCPUs and memory) from the disk that
        ``disk_info`` (what :meth:`migrate_disk_and_power_off` returned) describes, and
        start it when ``power_on`` (else leave it SHUTDOWN). ``image`` (contract 1.6):
        the instance's image fetched on this host, given when the disk comes from
        another host (a driver declaring 1.6; ``network`` is then this host's, made as
        for a spawn).

        Raises :class:`DriverError` after removing what it created. Example::

            await driver.finish_migration(new_spec, disk, [net], power_on=True)
        """
        raise NotSupported(f"{self.name} does not support resize or cold migration")

    async def confirm_migration(self, uuid: str) -> None:
        """On the source host: the move is confirmed; remove what
        :meth:`migrate_disk_and_power_off` kept of the old guest. Idempotent.
        Example: ``await driver.confirm_migration(uuid)``."""
        raise NotSupported(f"{self.name} does not support resize or cold migration")

    async def finish_revert_migration(self, uuid: str, power_on: bool) -> None:
        """On the source host: the move is reverted (the destination has destroyed its
        guest): bring the old guest back as :meth:`migrate_disk_and_power_off` kept it,
        its old sizes, started when ``power_on``. Raises :class:`DriverError`.
        Example: ``await driver.finish_revert_migration(uuid, power_on=True)``."""
        raise NotSupported(f"{self.name} does not support resize or cold migration")

    # -- live migration (contract 1.4, capability ``supports_live_migration``) ----------
    async def pre_live_migration(self, instance: InstanceSpec, image: ImageInfo,
                                 network: list[NetworkInfo]) -> dict[str, Any]:
        """On the destination host, before :meth:`live_migration` starts on the source
        (contract 1.5, capability ``supports_live_migration``): get ready to receive
        the running guest ``instance`` - its disks made (on ``image``, fetched into this
        host's cache as for :meth:`spawn`), and whatever listens for the source's data
        started (QEMU: a process started with ``-incoming`` on a TCP port). ``network``
        is the guest's interfaces as this host sets them up.

        Returns plain data (it crosses the bus) that the source's :meth:`live_migration`
        gets as its ``migrate_data`` keyword (an address to send to: never a path the
        source is assumed to share); return ``{}`` when the source needs nothing (then
        ``live_migration`` is called without the keyword, as in contract 1.4). The
        default returns ``{}``. Raises :class:`DriverError` after removing what it made
        (the migration fails, the guest keeps running on the source). Example::

            migrate_data = await driver.pre_live_migration(spec, image, [net])
            # {"uri": "tcp:127.0.0.1:40123"}
        """
        return {}

    async def rollback_live_migration_at_destination(self, uuid: str) -> None:
        """On the destination host, when the move failed after
        :meth:`pre_live_migration` (contract 1.5): remove what it made (the waiting
        process, the disks); the guest runs on the source. Idempotent; the default
        does nothing. Example: ``await driver.rollback_live_migration_at_destination(uuid)``.
        """

    async def rollback_live_migration(self, uuid: str) -> None:
        """On the source host, when the destination failed after :meth:`live_migration`
        returned (the guest's state was sent, but it does not run there) (contract
        1.5): run the guest here again, as it was before the move. Idempotent; the
        default does nothing (a driver whose ``live_migration`` leaves the guest
        running needs nothing). Example: ``await driver.rollback_live_migration(uuid)``.
        """

    async def live_migration(self, uuid: str, dest_host: str,
                             instance: InstanceSpec, *,
                             migrate_data: dict[str, Any] | None = None) -> dict[str, Any]:
        """On the source host: move the running guest's memory and disk to
        ``dest_host`` while it runs (QEMU: the destination started with ``-incoming``,
        QMP ``migrate`` with the disk copied); the guest keeps running here until the
        move is complete. ``migrate_data`` (contract 1.5) is what the destination's
        :meth:`pre_live_migration` returned, passed only when it is not empty.

        Returns plain data (it crosses the bus) that the destination's
        :meth:`post_live_migration_at_destination` needs. Raises
        :class:`InstanceNotFound`, :class:`DriverError` (the guest keeps running here,
        as it was). Example::

            migrate_data = await driver.live_migration(uuid, "compute-b", spec)
        """
        raise NotSupported(f"{self.name} does not support live migration")

    async def post_live_migration_at_destination(self, instance: InstanceSpec,
                                                 migrate_data: dict[str, Any],
                                                 network: list[NetworkInfo]) -> None:
        """On the destination host: the guest moved by :meth:`live_migration` runs
        here now; :meth:`list_instances` and :meth:`get_info` know it.
        Raises :class:`DriverError`. Example::

            await driver.post_live_migration_at_destination(spec, migrate_data, [net])
        """
        raise NotSupported(f"{self.name} does not support live migration")

    async def post_live_migration(self, uuid: str) -> None:
        """On the source host, after the destination runs the guest: remove what is
        left of it here (its process, its files). Idempotent.
        Example: ``await driver.post_live_migration(uuid)``."""
        raise NotSupported(f"{self.name} does not support live migration")
    async def attach_volume(self, uuid: str, volume: VolumeConnection) -> None:
        """Add ``volume`` to the running guest as a new virtio disk (capability
        ``supports_attach_volume``, contract 1.4).

        On return the guest has the disk (a Linux guest sees a new ``/dev/vdX`` whose
        serial is ``volume.serial``) and the driver remembers the attachment so that a
        new driver object adopting the guest (``init_host``) still knows it. Attaching a
        volume that is already attached to this guest raises :class:`DriverError`.
        Raises :class:`InstanceNotFound`, :class:`DriverError` (the guest is not
        running, the hypervisor refused). Example::

            await driver.attach_volume(uuid, VolumeConnection(vid, "/srv/vol-1", 1 << 30))
        """
        raise NotSupported(f"{self.name} does not support attaching volumes")

    async def detach_volume(self, uuid: str, volume_id: str) -> None:
        """Remove the volume ``volume_id`` from the guest (capability
        ``supports_attach_volume``, contract 1.4), waiting until the guest has released
        it (a hot-unplug the guest acknowledges), so the volume's data is no longer
        written by this guest on return. A volume not attached to the guest is no
        error (detach is idempotent). Raises :class:`InstanceNotFound`,
        :class:`DriverError` (the guest did not release the disk in time).
        Example: ``await driver.detach_volume(uuid, vid)``.
        """
        raise NotSupported(f"{self.name} does not support detaching volumes")

    # -- network interfaces (contract 1.6, capability ``supports_attach_interface``) ---
    async def attach_interface(self, uuid: str, network: NetworkInfo) -> None:
        """Give the guest a NIC for the port ``network`` describes (its MAC, address,
        and ``bridge`` as for a spawn; no ``ssh_host_port`` or ``metadata_socket``:
        those belong to the first NIC), hot-plugged when the guest runs, and kept for
        its later starts. A NIC of that MAC already there is no error. Raises
        :class:`InstanceNotFound`, :class:`DriverError` (the hypervisor refused).
        Example: ``await driver.attach_interface(uuid, NetworkInfo(...))``.
        """
        raise NotSupported(f"{self.name} does not support attaching interfaces")

    async def detach_interface(self, uuid: str, network: NetworkInfo) -> None:
        """Remove the guest's NIC of ``network.mac``, waiting until the guest let it go
        when it runs. A NIC not there is no error. Raises :class:`InstanceNotFound`,
        :class:`DriverError`. Example: ``await driver.detach_interface(uuid, net)``.
        """
        raise NotSupported(f"{self.name} does not support detaching interfaces")

    async def extend_volume(self, uuid: str, volume_id: str, new_size: int) -> None:
        """Tell the guest that the attached volume ``volume_id`` now holds ``new_size``
        bytes (its data already grew; capability ``supports_extend_volume``, contract
        1.4). Raises :class:`InstanceNotFound`, :class:`DriverError`.
        Example: ``await driver.extend_volume(uuid, vid, 2 << 30)``.
        """
        raise NotSupported(f"{self.name} does not support extending volumes")
