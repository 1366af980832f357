"""One dnsmasq per bridge, as nova-network ran it (Debian's ``dnsmasq-base``).

Static DHCP only: a fixed MAC -> address entry per port in ``hosts`` (dnsmasq's
``--dhcp-hostsfile``) and the instance hostnames in ``names`` (``--addn-hosts``);
both are rewritten and dnsmasq re-reads them on SIGHUP. dnsmasq daemonizes and
outlives the service; the next run adopts it by its pid file (checking that the pid
is a dnsmasq started with that pid file) or starts a new one.
"""

from __future__ import annotations

import ipaddress
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
import trio

log = structlog.get_logger("novalite.network")

DNSMASQ = "dnsmasq"


@dataclass(frozen=True)
class Lease:
    mac: str
    address: str
    hostname: str


class Dnsmasq:
    """The DHCP/DNS server of one bridge; its files under ``directory``."""

    def __init__(self, directory: str, bridge: str, cidr: str, gateway: str, mtu: int,
                 domain: str) -> None:
        self.directory = directory
        self.bridge = bridge
        self.net = ipaddress.ip_network(cidr, strict=False)
        self.gateway = gateway
        self.mtu = mtu
        self.domain = domain
        self.pid_file = os.path.join(directory, "dnsmasq.pid")
        self.hosts_file = os.path.join(directory, "hosts")
        self.names_file = os.path.join(directory, "names")

    def argv(self) -> list[str]:
        return [
            DNSMASQ, "--conf-file=/dev/null", "--no-hosts", "--strict-order",
            "--bind-dynamic", f"--interface={self.bridge}", "--except-interface=lo",
            f"--listen-address={self.gateway}", f"--pid-file={self.pid_file}",
            f"--dhcp-hostsfile={self.hosts_file}", f"--addn-hosts={self.names_file}",
            f"--dhcp-range=set:{self.bridge},{self.net.network_address},static,"
            f"{self.net.netmask},3600s",
            f"--dhcp-option=tag:{self.bridge},option:router,{self.gateway}",
            f"--dhcp-option=tag:{self.bridge},option:dns-server,{self.gateway}",
            f"--dhcp-option-force=tag:{self.bridge},option:mtu,{self.mtu}",
            f"--domain={self.domain}", f"--local=/{self.domain}/", "--leasefile-ro",
            "--dhcp-authoritative", "--dhcp-no-override", "--no-ping",
        ]

    def pid(self) -> int | None:
        """The pid of this bridge's running dnsmasq, or None."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip() or 0)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        if pid and os.path.basename(args[0]) == b"dnsmasq" and \
                f"--pid-file={self.pid_file}".encode() in args:
            return pid
        return None

    def _write(self, leases: Iterable[Lease]) -> None:
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        os.chmod(self.directory, 0o755)  # dnsmasq re-reads as its unprivileged user
        leases = sorted(leases, key=lambda x: x.address)
        for path, text in (
            (self.hosts_file, "".join(f"{x.mac},{x.hostname},{x.address}\n" for x in leases)),
            (self.names_file, "".join(f"{x.address} {x.hostname}.{self.domain} {x.hostname}\n"
                                      for x in leases)),
        ):
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)

    async def ensure(self, leases: Iterable[Lease]) -> int:
        """Write the entries; SIGHUP the running dnsmasq or start one. Its pid."""
        self._write(leases)
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            return pid
        result = await trio.run_process(self.argv(), capture_stdout=True, capture_stderr=True,
                                        check=False, start_new_session=True)
        if result.returncode != 0:
            raise OSError(f"dnsmasq on {self.bridge} failed: "
                          f"{result.stderr.decode(errors='replace').strip()}")
        for _ in range(50):
            pid = self.pid()
            if pid is not None:
                log.info("dnsmasq started", bridge=self.bridge, pid=pid)
                return pid
            await trio.sleep(0.02)
        raise OSError(f"dnsmasq on {self.bridge} wrote no pid file")

    async def stop(self) -> None:
        """End this bridge's dnsmasq (by its verified pid) and remove its files."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if self.pid() is None:
                    break
                await trio.sleep(0.02)
        for path in (self.pid_file, self.hosts_file, self.names_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.directory)
        except OSError:
            pass
