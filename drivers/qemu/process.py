"""One guest's files and its QEMU process: launch arguments, disks, pid, console log.

Everything of a guest lives in ``<instances_path>/<uuid>/``:

``launch.json``   the persisted :class:`LaunchConfig` (power_on, resume and adoption
                  rebuild the command line from it, never from the original request)
``disk.qcow2``    root disk, a qcow2 overlay on the cached base image (absolute path)
``disk.eph0``, ``disk.swap``   ephemeral and swap disks when the flavor asks for them
``kernel``, ``initrd``          copies of the image's kernel/ramdisk when it has them
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
import signal
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class NicConfig:
    """One user-mode (slirp) interface whose DHCP hands out exactly ``address``."""

    address: str
    cidr: str
    gateway: str
    mac: str
    ssh_host_port: int | None = None


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


def netdev_option(index: int, nic: NicConfig, hostname: str) -> str:
    """``-netdev user,...`` whose DHCP server leases ``nic.address`` first."""
    net = ipaddress.ip_interface(f"{nic.address}/{nic.cidr.split('/')[-1]}").network
    taken = {nic.address, nic.gateway}
    dns = next(str(h) for h in net.hosts() if str(h) not in taken)
    opt = (
        f"user,id=net{index},net={net},host={nic.gateway},dhcpstart={nic.address},"
        f"dns={dns},hostname={_q(hostname)}"
    )
    if nic.ssh_host_port:
        opt += f",hostfwd=tcp:127.0.0.1:{nic.ssh_host_port}-{nic.address}:22"
    return opt


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
    for i, disk in enumerate(cfg.disks):
        path = os.path.join(d, disk.path)
        argv += ["-drive", f"file={_q(path)},format={disk.format},if={cfg.disk_bus},index={i}"]
    if cfg.kernel:
        argv += ["-kernel", os.path.join(d, cfg.kernel)]
        if cfg.initrd:
            argv += ["-initrd", os.path.join(d, cfg.initrd)]
        if cfg.append:
            argv += ["-append", cfg.append]
    for i, nic in enumerate(cfg.nics):
        argv += ["-netdev", netdev_option(i, nic, cfg.hostname)]
        argv += ["-device", f"{cfg.nic_model},netdev=net{i},mac={nic.mac},romfile="]
    if incoming:
        argv += ["-incoming", incoming]
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
