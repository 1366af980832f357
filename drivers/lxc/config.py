"""Render a container's LXC configuration file from an instance's spec.

The keys are the ones measured to work on this project's hosts (see the
project's FACTS): no default network bridge (``lxc.net.0.type = empty``),
busybox init's halt signal, the lxcfs post-stop hook cleared, and the flavor's
memory and vCPUs written as cgroup limits for whichever cgroup layout the host
runs (legacy v1 controllers or the unified v2 hierarchy).
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
from dataclasses import dataclass, field

COMMON_CONF = "/usr/share/lxc/config/common.conf"

#: CFS period used for the vCPU quota: ``vcpus`` CPUs' worth of time per period.
CPU_PERIOD_US = 100_000


def cgroup_layout(mountinfo: str = "/proc/self/mountinfo") -> str:
    """``"legacy"`` when the memory controller is on a cgroup v1 hierarchy, else ``"unified"``.

    LXC applies ``lxc.cgroup.*`` keys on v1 and ``lxc.cgroup2.*`` keys on v2 and
    silently ignores the other kind, so the driver must pick the right one.
    """
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return "unified"
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields = post.split()
        if len(fields) >= 3 and fields[0] == "cgroup" and "memory" in fields[2].split(","):
            return "legacy"
    return "unified"


def valid_signal(name: str) -> bool:
    """True for a signal name LXC accepts (``SIGUSR1``, ``SIGRTMIN+3``, ...)."""
    if re.fullmatch(r"SIGRTMIN(\+\d+)?|SIGRTMAX(-\d+)?", name):
        return True
    return name in signal.Signals.__members__


def sanitize_hostname(hostname: str, fallback: str) -> str:
    """A hostname LXC and busybox accept: letters, digits, dashes, at most 63 chars."""
    clean = re.sub(r"[^A-Za-z0-9-]+", "-", hostname).strip("-")[:63].strip("-")
    return clean or fallback


#: The product name Nova's libvirt driver gives guests (SMBIOS), which cloud-init
#: looks for in a container's init environment (``product_name``).
PRODUCT_NAME = "OpenStack Nova"


@dataclass
class NetworkConfig:
    """One veth interface on a host bridge, with its static address."""

    bridge: str
    mac: str = ""
    address: str = ""
    cidr: str = ""
    gateway: str = ""
    #: The host side's name (``lxc.net.N.veth.pair``); "" lets LXC choose one.
    veth_pair: str = ""

    def lines(self, index: int) -> list[str]:
        key = f"lxc.net.{index}"
        out = [f"{key}.type = veth", f"{key}.link = {self.bridge}", f"{key}.flags = up"]
        if self.veth_pair:
            out.append(f"{key}.veth.pair = {self.veth_pair}")
        out.append(f"{key}.name = eth{index}")
        if self.mac:
            out.append(f"{key}.hwaddr = {self.mac}")
        if self.address:
            prefix = ipaddress.ip_network(self.cidr, strict=False).prefixlen if self.cidr else 32
            family = "ipv6" if ":" in self.address else "ipv4"
            out.append(f"{key}.{family}.address = {self.address}/{prefix}")
            if self.gateway:
                out.append(f"{key}.{family}.gateway = {self.gateway}")
        return out


@dataclass
class ContainerConfig:
    """Everything that goes into ``<lxc_path>/<uuid>/config``."""

    name: str
    hostname: str
    rootfs: str
    """``overlay:<base>:<upper>`` or ``dir:<path>``, as ``lxc.rootfs.path`` wants it."""
    console_log: str
    log_file: str
    memory_mb: int = 0
    vcpus: int = 0
    halt_signal: str = "SIGUSR1"
    reboot_signal: str = "SIGTERM"
    networks: list[NetworkConfig] = field(default_factory=list)
    layout: str = "unified"
    #: ``lxc.mount.entry`` lines (the config drive's read-only bind mount).
    mounts: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def cgroup_lines(self) -> list[str]:
        """The flavor's limits as cgroup keys for this host's layout."""
        out: list[str] = []
        if self.layout == "legacy":
            if self.memory_mb > 0:
                out.append(f"lxc.cgroup.memory.limit_in_bytes = {self.memory_mb * 1024 * 1024}")
            if self.vcpus > 0:
                out.append(f"lxc.cgroup.cpu.cfs_period_us = {CPU_PERIOD_US}")
                out.append(f"lxc.cgroup.cpu.cfs_quota_us = {self.vcpus * CPU_PERIOD_US}")
        else:
            if self.memory_mb > 0:
                out.append(f"lxc.cgroup2.memory.max = {self.memory_mb * 1024 * 1024}")
            if self.vcpus > 0:
                out.append(f"lxc.cgroup2.cpu.max = {self.vcpus * CPU_PERIOD_US} {CPU_PERIOD_US}")
        return out

    def render(self) -> str:
        lines = ["# Written by novalite's lxc driver; recreated on every spawn."]
        if os.path.exists(COMMON_CONF):
            lines.append(f"lxc.include = {COMMON_CONF}")
        lines += [
            "lxc.arch = linux64",
            f"lxc.uts.name = {self.hostname}",
            f"lxc.rootfs.path = {self.rootfs}",
            "lxc.autodev = 1",
            "lxc.tty.max = 1",
            "lxc.pty.max = 4",
            # Reset common.conf's list; 'force' mounts cgroups even though the
            # container keeps CAP_SYS_ADMIN, so the limits are visible inside.
            "lxc.mount.auto =",
            "lxc.mount.auto = proc:mixed sys:ro cgroup:mixed:force",
            f"lxc.signal.halt = {self.halt_signal}",
            f"lxc.signal.reboot = {self.reboot_signal}",
            # lxcfs's post-stop hook (pulled in by common.conf) only sleeps.
            "lxc.hook.post-stop =",
            "lxc.apparmor.profile = unconfined",
            # What cloud-init's ds-identify reads in a container (init's environment)
            # to know it runs on OpenStack, as a VM's SMBIOS product name says.
            f"lxc.environment = product_name={PRODUCT_NAME}",
            f"lxc.console.logfile = {self.console_log}",
            "lxc.console.size = 1MB",
            "lxc.console.rotate = 1",
            f"lxc.log.file = {self.log_file}",
            "lxc.log.level = WARN",
        ]
        if self.networks:
            for index, net in enumerate(self.networks):
                lines += net.lines(index)
        else:
            lines.append("lxc.net.0.type = empty")
        lines += self.cgroup_lines()
        lines += self.mounts
        lines += self.extra
        return "\n".join(lines) + "\n"
