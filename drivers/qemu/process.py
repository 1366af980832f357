"""One guest's files and its QEMU process: launch arguments, disks, pid, console log.

Everything of a guest lives in ``<instances_path>/<uuid>/``:

``launch.json``   the persisted :class:`LaunchConfig` (power_on, resume and adoption
                  rebuild the command line from it, never from the original request)
``disk.qcow2``    root disk, a qcow2 overlay on the cached base image (absolute path)
``disk.eph0``, ``disk.swap``   ephemeral and swap disks when the flavor asks for them
``kernel``, ``initrd``          copies of the image's kernel/ramdisk when it has them
``disk.config``   the guest's config drive (ISO 9660, label ``config-2``), read-only
``qemu.pid``      QEMU's pidfile; ``qmp.sock`` / ``events.sock`` its two QMP monitors
``qemu.log``      QEMU's own messages (``-D``; it keeps stderr there once daemonized)
``console.log``   the guest's serial console, capped (see :func:`append_capped`)
``vnc.sock``      QEMU's VNC server, when the guest has a display (``LaunchConfig.vnc``)
``suspend.state`` the saved machine state of a suspended guest

Console cap, also while novalite is down: the serial port goes to a QEMU ``ringbuf``
chardev, a fixed-size in-memory ring that keeps only the newest bytes. The driver
drains it over QMP (``ringbuf-read``) into ``console.log``, which only the driver
writes and which it trims to half the cap whenever an append would pass the cap. So
the file never exceeds ``console_log_max_bytes`` and QEMU's memory never exceeds the
ring, however long novalite is away; what is lost while it is away is the output older
than the ring's size, i.e. the console keeps its tail, which is what users read.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shlex
import signal
from dataclasses import dataclass, field
from typing import Any

from .volumes import blockdev_args

LAUNCH_FILE = "launch.json"
PID_FILE = "qemu.pid"
QMP_SOCKET = "qmp.sock"
EVENTS_SOCKET = "events.sock"
QEMU_LOG = "qemu.log"
LAUNCH_ERR = "launch.err"
CONSOLE_LOG = "console.log"
SUSPEND_STATE = "suspend.state"
ROOT_DISK = "disk.qcow2"
CONSOLE_CHARDEV = "console0"
VNC_SOCKET = "vnc.sock"


@dataclass
class DiskConfig:
    """One disk attached to the guest."""

    path: str
    format: str = "qcow2"
    #: Attached read-only (the config drive).
    readonly: bool = False
    #: "disk", or "cdrom" (the config drive on the IDE bus, as Nova attaches it).
    media: str = "disk"


@dataclass
class NicConfig:
    """One user-mode (slirp) interface whose DHCP hands out exactly ``address``."""

    address: str
    cidr: str
    gateway: str
    mac: str
    ssh_host_port: int | None = None
    #: The compute host's metadata relay socket for this guest (see :func:`netdev_option`).
    metadata_socket: str | None = None
    #: A tap device on a host bridge (contract 1.4) made by the compute host: the NIC
    #: joins it instead of user-mode networking (the bridge's dnsmasq leases the address).
    tap: str | None = None


#: Nova's SMBIOS system identity (libvirt driver's sysinfo): cloud-init's ds-identify
#: recognises OpenStack by it.
SMBIOS_MANUFACTURER = "OpenStack Foundation"
SMBIOS_PRODUCT = "OpenStack Nova"
SMBIOS_FAMILY = "Virtual Machine"
#: QEMU device names of the image property ``hw_vif_model``'s values.
VIF_MODELS = {"virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e",
              "rtl8139": "rtl8139", "ne2k_pci": "ne2k_pci", "pcnet": "pcnet"}
#: ``hw_disk_bus`` values the driver attaches disks on (sata is IDE/AHCI in QEMU).
DISK_BUSES = ("virtio", "ide", "sata", "scsi")
#: The guest's TCP port 80 of the metadata address is relayed to its socket.
METADATA_PORT = 80


@dataclass
class LaunchConfig:
    """Everything needed to start (or restart) a guest's QEMU; persisted as JSON."""

    uuid: str
    name: str
    hostname: str
    binary: str
    accel: str  # "tcg" or "kvm"
    machine: str
    cpu_model: str
    vcpus: int
    memory_mb: int
    disk_bus: str
    nic_model: str
    console_ring_bytes: int
    disks: list[DiskConfig] = field(default_factory=list)
    nics: list[NicConfig] = field(default_factory=list)
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    #: A VGA display served by VNC on ``vnc.sock`` (consoles enabled at spawn).
    vnc: bool = False
    #: ``hw_rng_model=virtio``: a virtio-rng device fed from the host's /dev/urandom.
    rng: bool = False
    #: Attached volumes (contract 1.4): ``{"volume_id", "path", "size", "device",
    #: "read_only"}`` each, hot-plugged while running and on the command line at launch.
    volumes: list[dict[str, Any]] = field(default_factory=list)

    def save(self, directory: str) -> None:
        tmp = os.path.join(directory, LAUNCH_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=1)
        os.replace(tmp, os.path.join(directory, LAUNCH_FILE))

    @classmethod
    def load(cls, directory: str) -> LaunchConfig:
        with open(os.path.join(directory, LAUNCH_FILE)) as f:
            data: dict[str, Any] = json.load(f)
        data["disks"] = [DiskConfig(**d) for d in data.get("disks", [])]
        data["nics"] = [NicConfig(**n) for n in data.get("nics", [])]
        return cls(**data)


def _q(value: str) -> str:
    """Escape a value for a QEMU comma-separated option."""
    return value.replace(",", ",,")


def _dns_address(nic: NicConfig) -> str:
    net = ipaddress.ip_interface(f"{nic.address}/{nic.cidr.split('/')[-1]}").network
    taken = {nic.address, nic.gateway}
    return next(str(h) for h in net.hosts() if str(h) not in taken)


def metadata_address(nic: NicConfig) -> str:
    """Where the guest reaches the metadata service on this interface: the highest
    address of its network that is not its own, its gateway's or its DNS server's
    (10.0.0.254 on 10.0.0.0/24). libslirp forwards guest connections only to addresses
    inside the guest's network, so 169.254.169.254 cannot be one on user-mode
    networking (QEMU: "Conflicting/invalid host:port in guest forwarding rule")."""
    net = ipaddress.ip_interface(f"{nic.address}/{nic.cidr.split('/')[-1]}").network
    taken = {nic.address, nic.gateway, _dns_address(nic)}
    return next(str(h) for h in reversed(list(net.hosts())) if str(h) not in taken)


def nic_ids(nic: NicConfig) -> tuple[str, str]:
    """A NIC's QEMU ids, its netdev's and its device's: from its MAC, so a NIC keeps
    them across launches and hot-plug (``drivers.qemu.nics``)."""
    tag = nic.mac.replace(":", "")
    return f"net-{tag}", f"nic-{tag}"


def user_netdev(nic: NicConfig, hostname: str) -> dict[str, str]:
    """The options of a user-mode NIC's netdev whose DHCP leases ``nic.address``."""
    net = ipaddress.ip_interface(f"{nic.address}/{nic.cidr.split('/')[-1]}").network
    return {"net": str(net), "host": nic.gateway, "dhcpstart": nic.address,
            "dns": _dns_address(nic), "hostname": hostname}


def netdev_option(nic: NicConfig, hostname: str) -> str:
    """``-netdev user,...`` whose DHCP server leases ``nic.address`` first (or, with
    ``nic.tap``, ``-netdev tap`` on the compute host's tap device).

    With ``nic.metadata_socket``, each TCP connection the guest opens to
    :func:`metadata_address` port 80 starts ``socat`` (QEMU's ``guestfwd=...-cmd:``)
    joining it to a new connection to that socket: one socket per guest, so the
    relay behind it knows which guest is asking.
    """
    netdev = nic_ids(nic)[0]
    if nic.tap:
        return f"tap,id={netdev},ifname={_q(nic.tap)},script=no,downscript=no"
    opt = f"user,id={netdev}," + ",".join(
        f"{k}={_q(v)}" for k, v in user_netdev(nic, hostname).items())
    if nic.ssh_host_port:
        opt += f",hostfwd=tcp:127.0.0.1:{nic.ssh_host_port}-{nic.address}:22"
    if nic.metadata_socket:
        command = f"socat STDIO UNIX-CONNECT:{shlex.quote(nic.metadata_socket)}"
        opt += f",guestfwd=tcp:{metadata_address(nic)}:{METADATA_PORT}-cmd:{_q(command)}"
    return opt


def _disk_args(cfg: LaunchConfig, directory: str) -> list[str]:
    """``-drive``/``-device`` arguments of the guest's disks on ``cfg.disk_bus``."""
    bus = "ide" if cfg.disk_bus == "sata" else cfg.disk_bus
    argv: list[str] = []
    if bus == "scsi":
        argv += ["-device", "virtio-scsi-pci,id=scsi0"]
    for i, disk in enumerate(cfg.disks):
        path = _q(os.path.join(directory, disk.path))
        ro = ",readonly=on" if disk.readonly else ""
        if disk.media == "cdrom" or bus == "ide":
            media = ",media=cdrom" if disk.media == "cdrom" else ""
            argv += ["-drive", f"file={path},format={disk.format},if=ide,index={i}{media}{ro}"]
        elif bus == "scsi":
            argv += ["-drive", f"file={path},format={disk.format},if=none,id=disk{i}{ro}",
                     "-device", f"scsi-hd,drive=disk{i},bus=scsi0.0"]
        else:
            argv += ["-drive", f"file={path},format={disk.format},if={bus},index={i}{ro}"]
    return argv


def build_argv(cfg: LaunchConfig, directory: str, incoming: str | None = None) -> list[str]:
    """The QEMU command line; run it with ``cwd=directory`` (sockets are relative paths,
    which keeps them under the unix socket path limit)."""
    d = os.path.abspath(directory)
    argv = [
        cfg.binary,
        "-name", f"guest={_q(cfg.uuid)}",
        "-uuid", cfg.uuid,
        "-machine", f"{cfg.machine},accel={cfg.accel}",
        "-m", str(cfg.memory_mb),
        "-smp", str(cfg.vcpus),
        "-nodefaults", "-no-user-config",
        "-display", "none",
        *(["-vga", "std", "-vnc", f"unix:{VNC_SOCKET}"] if cfg.vnc else ["-vga", "none"]),
        "-daemonize",
        "-pidfile", os.path.join(d, PID_FILE),
        "-D", os.path.join(d, QEMU_LOG),
        "-msg", "timestamp=on",
        "-chardev", f"ringbuf,id={CONSOLE_CHARDEV},size={cfg.console_ring_bytes}",
        "-serial", f"chardev:{CONSOLE_CHARDEV}",
        "-chardev", f"socket,id=qmp0,path={QMP_SOCKET},server=on,wait=off",
        "-mon", "chardev=qmp0,mode=control",
        "-chardev", f"socket,id=qmp1,path={EVENTS_SOCKET},server=on,wait=off",
        "-mon", "chardev=qmp1,mode=control",
    ]
    if cfg.cpu_model:
        argv += ["-cpu", cfg.cpu_model]
    argv += ["-smbios", f"type=1,manufacturer={SMBIOS_MANUFACTURER},product={SMBIOS_PRODUCT},"
                        f"serial={_q(cfg.uuid)},uuid={_q(cfg.uuid)},family={SMBIOS_FAMILY}"]
    argv += _disk_args(cfg, d)
    argv += blockdev_args(cfg.volumes)
    if cfg.rng:
        argv += ["-object", "rng-random,id=rng0,filename=/dev/urandom",
                 "-device", "virtio-rng-pci,rng=rng0"]
    if cfg.kernel:
        argv += ["-kernel", os.path.join(d, cfg.kernel)]
        if cfg.initrd:
            argv += ["-initrd", os.path.join(d, cfg.initrd)]
        if cfg.append:
            argv += ["-append", cfg.append]
    for nic in cfg.nics:
        netdev, device = nic_ids(nic)
        argv += ["-netdev", netdev_option(nic, cfg.hostname)]
        argv += ["-device", f"{cfg.nic_model},netdev={netdev},mac={nic.mac},id={device},"
                            "romfile="]
    if incoming:
        argv += ["-incoming", incoming]
        if incoming == "defer":  # a live migration's destination: runs on `cont`
            argv.append("-S")
    return argv


# -- the process -------------------------------------------------------------------


def read_pid(directory: str) -> int | None:
    """The pid in the guest's pidfile, or None."""
    try:
        with open(os.path.join(directory, PID_FILE)) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def is_our_qemu(pid: int, uuid: str) -> bool:
    """``pid`` is alive (not a zombie) and is a QEMU started for guest ``uuid``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in (b"Z", b"X") or not args or b"qemu" not in os.path.basename(args[0]):
        return False
    return f"guest={uuid}".encode() in args


def live_pid(directory: str, uuid: str) -> int | None:
    """The pid of the guest's running QEMU, or None when it is not running."""
    pid = read_pid(directory)
    if pid is not None and is_our_qemu(pid, uuid):
        return pid
    return None


def process_age(pid: int) -> float | None:
    """Seconds since process ``pid`` started, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)


def kill_qemu(pid: int, uuid: str) -> None:
    """SIGKILL ``pid`` only if it is still this guest's QEMU."""
    if is_our_qemu(pid, uuid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- console log ---------------------------------------------------------------------


def append_capped(path: str, data: bytes, max_bytes: int) -> None:
    """Append ``data`` to ``path``; when that would pass ``max_bytes``, keep only the
    newest ``max_bytes // 2`` bytes (rewritten atomically)."""
    if not data:
        return
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    if size + len(data) <= max_bytes:
        with open(path, "ab") as f:
            f.write(data)
        return
    keep = max(max_bytes // 2, 1)
    old = b""
    if len(data) < keep and size:
        with open(path, "rb") as f:
            f.seek(max(size - (keep - len(data)), 0))
            old = f.read()
    tail = (old + data)[-keep:]
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(tail)
    os.replace(tmp, path)


def read_tail(path: str, max_bytes: int) -> str:
    """The last ``max_bytes`` of a log file as text ("" when absent)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - max_bytes, 0))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_log_tail(directory: str, name: str, max_bytes: int = 2000) -> str:
    """The end of one of the guest's log files, for error messages."""
    return read_tail(os.path.join(directory, name), max_bytes).strip()
