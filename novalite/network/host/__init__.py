"""The compute host's network plumbing: nova-network's flat DHCP on a Linux bridge.

No database: plain port data in (the build's :class:`~novalite.virt.driver.NetworkInfo`
fields), host state out. For each network a bridge ``nlbr-<network8>`` holding the
gateway address, with one dnsmasq serving static DHCP (MAC -> address per port) and
DNS for instance names; for each port a device on that bridge (a QEMU tap
``nltap-<port8>`` created here, or an LXC veth ``nlveth-<port8>`` that LXC creates);
and one nftables table pair (``ip``/``bridge`` family, named ``novalite``) with egress
NAT, per-port security groups and anti-spoofing, and 169.254.169.254:80 DNAT'd to a
per-guest metadata relay listener on the gateway (see :mod:`.nft`).

How a guest cannot pose as another: the bridge table drops every frame from a port's
device whose source MAC, ARP sender or IPv4 source is not the port's own (DHCP's
0.0.0.0 excepted), and drops DHCP server replies from guests. The metadata relay a
guest's connection reaches is chosen by its (unforgeable) source address, and each
relay listener accepts only that address (an ``input`` rule), so a guest reaches only
its own metadata.

Ports are persisted under ``state_dir/ports/<port_id>.json``: :meth:`HostNetwork.start`
re-creates whatever is missing (bridge, address, dnsmasq, taps, the ruleset) and adopts
what exists; nothing stops when the service stops, so guests stay connected. A
bridge and its dnsmasq are removed with their network's last port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from novalite.network.host import nft
from novalite.network.host.dnsmasq import Dnsmasq, Lease

log = structlog.get_logger("novalite.network")

BRIDGE_PREFIX = "nlbr-"
TAP_PREFIX = "nltap-"
VETH_PREFIX = "nlveth-"
DEFAULT_TABLE = "novalite"
DEFAULT_RUNTIME_DIR = ""  # "": /run/<table>/net


def bridge_name(network_id: str) -> str:
    return BRIDGE_PREFIX + network_id.replace("-", "")[:8]


def tap_name(port_id: str) -> str:
    return TAP_PREFIX + nft.short(port_id)


def veth_name(port_id: str) -> str:
    return VETH_PREFIX + nft.short(port_id)


class NetworkSetupError(Exception):
    """The host could not set up a port's network (the build fails)."""


def can_manage() -> tuple[bool, str]:
    """Whether this process may manage bridges and nftables, and why not."""
    if os.geteuid() != 0:
        try:
            with open("/proc/self/status") as f:
                caps = next(line for line in f if line.startswith("CapEff:"))
            if not int(caps.split()[1], 16) & (1 << 12):  # CAP_NET_ADMIN
                return False, "not root and no CAP_NET_ADMIN"
        except (OSError, StopIteration, ValueError):
            return False, "not root"
    from shutil import which
    missing = [b for b in ("ip", "nft", "dnsmasq") if which(b) is None
               and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        return False, f"missing {', '.join(missing)} (Debian: iproute2, nftables, dnsmasq-base)"
    if not os.path.isdir("/proc/sys/net/bridge"):
        return False, "no br_netfilter (security groups need bridge-nf-call-iptables)"
    return True, "root" if os.geteuid() == 0 else "CAP_NET_ADMIN"


MODES = ("auto", "bridge", "user")


def choose_mode(configured: str, driver: str | None = None,
                driver_bridges: bool = True) -> tuple[str, str]:
    """``[network] driver`` -> ("bridge" | "user", why). ``driver``: the compute driver's
    name, ``driver_bridges``: whether it puts NICs on host bridges (capability
    ``supports_host_bridge``); without it "auto" runs user-mode networking and
    "bridge" is an error."""
    if configured == "user":
        return "user", '[network] driver = "user": per-guest user-mode networking'
    if not driver_bridges:
        if configured == "bridge":
            raise NetworkSetupError(f'[network] driver = "bridge" but the {driver} compute '
                                    "driver puts no NIC on a host bridge")
        return "user", (f"per-guest user-mode networking: the {driver} compute driver puts "
                        "no NIC on a host bridge")
    ok, why = can_manage()
    if configured == "bridge":
        if not ok:
            raise NetworkSetupError(f'[network] driver = "bridge" but this host cannot '
                                    f"manage networks: {why}")
        return "bridge", f'[network] driver = "bridge" ({why})'
    if ok:
        return "bridge", f"bridges, dnsmasq and nftables managed here ({why})"
    return "user", f"per-guest user-mode networking: cannot manage networks ({why})"


MODE_FILE = "mode.json"


def write_mode(state_dir: str, mode: str, why: str) -> None:
    """Record the mode this service runs (``<state_dir>/mode.json``) for
    ``novalite service list``."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, MODE_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump({"mode": mode, "why": why, "pid": os.getpid()}, f)
    os.replace(path + ".tmp", path)


def read_mode(state_dir: str) -> tuple[str, str] | None:
    """The mode the last service on ``state_dir`` ran, and why (None: no record)."""
    try:
        with open(os.path.join(state_dir, MODE_FILE)) as f:
            data = json.load(f)
        return str(data["mode"]), str(data["why"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Port:
    """One guest interface on this host, as persisted."""

    port_id: str
    instance_uuid: str
    hostname: str
    network_id: str
    bridge: str
    mac: str
    address: str
    cidr: str
    gateway: str
    kind: str = "tap"  # "tap" (created here) or "veth" (created by LXC)
    dns: list[str] = field(default_factory=list)
    mtu: int = 1500
    security_rules: list[dict[str, Any]] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    metadata_socket: str | None = None
    #: The compute host (of this process) whose guest it is.
    host: str = ""

    @property
    def device(self) -> str:
        return tap_name(self.port_id) if self.kind == "tap" else veth_name(self.port_id)

    @classmethod
    def from_info(cls, info: Any, instance_uuid: str, hostname: str, kind: str,
                  metadata_socket: str | None = None, host: str = "") -> Port:
        """From a NetworkInfo (or any object/mapping with its fields)."""
        get = info.get if isinstance(info, Mapping) else (lambda k, d=None: getattr(info, k, d))
        network_id = get("network_id") or ""
        return cls(port_id=str(get("port_id")), instance_uuid=instance_uuid,
                   hostname=hostname, network_id=network_id,
                   bridge=get("bridge") or bridge_name(network_id),
                   mac=str(get("mac")).lower(), address=str(get("address")),
                   cidr=str(get("cidr")), gateway=str(get("gateway")), kind=kind, dns=list(get("dns") or []),
                   mtu=int(get("mtu") or 1500),
                   security_rules=[dict(r) for r in get("security_rules") or []],
                   security_group_ids=list(get("security_group_ids") or []),
                   metadata_socket=metadata_socket, host=host)


async def _run(*argv: str, stdin: bytes | None = None, check: bool = True) -> str:
    result = await trio.run_process(list(argv), stdin=stdin, capture_stdout=True,
                                    capture_stderr=True, check=False)
    if check and result.returncode != 0:
        raise NetworkSetupError(f"{' '.join(argv[:4])}: "
                                f"{result.stderr.decode(errors='replace').strip()}")
    return str(result.stdout.decode(errors="replace"))


async def _check_free(cidr: str, bridge: str) -> None:
    """Refuse a network whose addresses the host already routes elsewhere (its LAN,
    a VPN, another bridge): novalite never takes over the host's own networks."""
    net = ipaddress.ip_network(cidr, strict=False)
    for line in (await _run("ip", "-o", "-4", "route", "show")).splitlines():
        words = line.split()
        if not words or words[0] == "default" or "dev" not in words:
            continue
        dev = words[words.index("dev") + 1]
        try:
            routed = ipaddress.ip_network(words[0], strict=False)
        except ValueError:
            continue
        if dev != bridge and routed.overlaps(net):
            raise NetworkSetupError(
                f"network {cidr} overlaps the host's route to {routed} on {dev}: novalite "
                "leaves the host's networks alone (choose another [network] cidr or "
                "subnet)")


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


class HostNetwork:
    """Bridges, dnsmasqs, taps and the nftables table of one compute service."""

    def __init__(self, state_dir: str, *, table: str = DEFAULT_TABLE,
                 runtime_dir: str = DEFAULT_RUNTIME_DIR, domain: str = "novalocal") -> None:
        self.state_dir = state_dir
        self.ports_dir = os.path.join(state_dir, "ports")
        self.table = table
        self._default_runtime = not runtime_dir
        self.runtime_dir = runtime_dir or f"/run/{table}/net"
        self.domain = domain
        self.ports: dict[str, Port] = {}
        self._lock = trio.Lock()
        #: Ports whose rules changed and are not yet applied; one applier at a time.
        self._pending_security: set[str] = set()
        self._apply_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        #: port_id -> (listener's cancel scope, host TCP port) of its metadata relay.
        self._relays: dict[str, tuple[trio.CancelScope, int]] = {}
        self._warned_forwarding = False

    # -- life ---------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Re-create what the persisted ports need, then hold the metadata relays
        until cancelled. Nothing is torn down at the end: guests stay connected."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self.start()
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                for scope, _ in self._relays.values():
                    scope.cancel()
                self._relays.clear()

    async def start(self) -> None:
        """Load the persisted ports and make the host match them (idempotent)."""
        os.makedirs(self.ports_dir, mode=0o700, exist_ok=True)
        for name in sorted(os.listdir(self.ports_dir)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.ports_dir, name)) as f:
                    port = Port(**json.load(f))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("unreadable port state skipped", file=name, error=str(exc))
                continue
            self.ports[port.port_id] = port
        async with self._lock:
            for bridge in sorted({p.bridge for p in self.ports.values()}):
                await self._ensure_network(bridge)
            for port in self.ports.values():
                await self._ensure_device(port)
                await self._ensure_relay(port)
            if self.ports:  # with none, leave the table alone (another service's, maybe)
                await self._apply_rules()
        if self.ports:
            log.info("host network restored", ports=len(self.ports),
                     bridges=len({p.bridge for p in self.ports.values()}))

    # -- ports ----------------------------------------------------------------------
    async def plug(self, port: Port) -> str:
        """Put ``port`` on its bridge (creating network, tap, DHCP entry and rules);
        returns the device name. Idempotent for the same port."""
        async with self._lock:
            self.ports[port.port_id] = port
            self._save(port)
            try:
                await self._ensure_network(port.bridge)
                await self._ensure_device(port)
                await self._ensure_relay(port)
                await self._apply_rules()
            except Exception:
                with trio.CancelScope(shield=True):
                    await self._remove_locked([port.port_id])
                raise
        log.info("port plugged", port=port.port_id, device=port.device, bridge=port.bridge,
                 address=port.address, instance=port.instance_uuid)
        return port.device

    async def unplug_instance(self, instance_uuid: str) -> None:
        """Remove every port of an instance (and networks left without ports)."""
        async with self._lock:
            await self._remove_locked([p.port_id for p in self.ports.values()
                                       if p.instance_uuid == instance_uuid])

    def instances(self, host: str) -> set[str]:
        """The instances of compute host ``host`` with ports here."""
        return {p.instance_uuid for p in self.ports.values() if p.host == host}

    async def unplug(self, port_id: str) -> None:
        async with self._lock:
            await self._remove_locked([port_id])

    async def update_port_security(self, port_id: str,
                                   security_rules: Sequence[Mapping[str, Any]],
                                   security_group_ids: Sequence[str] | None = None) -> bool:
        """Replace a port's rules, in effect when this returns; False when the port is
        not here. Concurrent calls are applied together: whoever gets to apply writes
        the chains of every port changed meanwhile in one ``nft -f`` transaction (a
        group's rule change reaching 100 ports costs a few transactions, not 100)."""
        port = self.ports.get(port_id)
        if port is None:
            return False
        port.security_rules = [dict(r) for r in security_rules]
        if security_group_ids is not None:
            port.security_group_ids = list(security_group_ids)
        self._save(port)
        self._pending_security.add(port_id)
        async with self._apply_lock:
            if port_id in self._pending_security:  # else a batch before this one had it
                async with self._lock:
                    batch = [p for pid in sorted(self._pending_security)
                             if (p := self.ports.get(pid)) is not None]
                    self._pending_security.clear()
                    try:  # only these ports' chains, in one transaction
                        await _run("nft", "-f", "-", stdin="".join(
                            nft.render_port(self.table, self._port_rules(p))
                            for p in batch).encode())
                    except NetworkSetupError:  # chains went missing: the whole table
                        await self._apply_rules()
                log.info("port security updated", ports=len(batch))
        return port_id in self.ports

    async def remove_all(self) -> None:
        """Remove everything this host network made (all ports, bridges, the table)."""
        async with self._lock:
            await self._remove_locked(list(self.ports))
            await _run("nft", "-f", "-", stdin=nft.render(nft.Ruleset(self.table)).encode())

    # -- internals ------------------------------------------------------------------
    def _save(self, port: Port) -> None:
        os.makedirs(self.ports_dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.ports_dir, f"{port.port_id}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(dataclasses.asdict(port), f)
        os.replace(path + ".tmp", path)

    def _dnsmasq(self, bridge: str) -> Dnsmasq:
        port = next(p for p in self.ports.values() if p.bridge == bridge)
        return Dnsmasq(os.path.join(self.runtime_dir, bridge), bridge, port.cidr, port.gateway,
                       port.mtu, self.domain)

    async def _ensure_network(self, bridge: str) -> None:
        port = next(p for p in self.ports.values() if p.bridge == bridge)
        prefix = ipaddress.ip_network(port.cidr, strict=False).prefixlen
        if not _link_exists(bridge):
            await _check_free(port.cidr, bridge)
            await _run("ip", "link", "add", bridge, "type", "bridge")
            log.info("bridge created", bridge=bridge, cidr=port.cidr)
        address = f"{port.gateway}/{prefix}"
        shown = await _run("ip", "-o", "-4", "addr", "show", "dev", bridge)
        if f" {address} " not in shown:
            await _run("ip", "addr", "replace", address, "dev", bridge)
        await _run("ip", "link", "set", bridge, "mtu", str(port.mtu), "up")
        with contextlib.suppress(OSError):  # route between this bridge and the uplink
            with open(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding", "w") as f:
                f.write("1")
        if not self._warned_forwarding:
            self._warned_forwarding = True
            with contextlib.suppress(OSError), open("/proc/sys/net/ipv4/ip_forward") as f:
                if f.read().strip() == "0":  # the host's own setting: novalite leaves it
                    log.warning("IPv4 forwarding is off on this host: guests reach each "
                                "other and the host, but not beyond it (sysctl -w "
                                "net.ipv4.ip_forward=1 enables their NAT'd egress)")
        leases = [Lease(p.mac, p.address, p.hostname) for p in self.ports.values()
                  if p.bridge == bridge]
        # dnsmasq re-reads its files as an unprivileged user: the directories above them
        # must be searchable whatever the service's umask (077).
        for directory in ([os.path.dirname(self.runtime_dir)] if self._default_runtime
                          else []) + [self.runtime_dir]:
            os.makedirs(directory, exist_ok=True)
            os.chmod(directory, 0o755)
        try:
            await self._dnsmasq(bridge).ensure(leases)
        except OSError as exc:
            raise NetworkSetupError(str(exc)) from None

    async def _ensure_device(self, port: Port) -> None:
        if port.kind != "tap":
            return  # LXC creates (and deletes) the container's veth itself
        dev = port.device
        if not _link_exists(dev):
            await _run("ip", "tuntap", "add", "dev", dev, "mode", "tap")
        await _run("ip", "link", "set", dev, "master", port.bridge, "mtu", str(port.mtu), "up")

    async def _ensure_relay(self, port: Port) -> None:
        """A TCP listener on the gateway address relaying to the guest's metadata socket."""
        if not port.metadata_socket or self._nursery is None or port.port_id in self._relays:
            return
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await sock.bind((port.gateway, 0))
        sock.listen(16)
        scope = trio.CancelScope()
        self._relays[port.port_id] = (scope, sock.getsockname()[1])
        self._nursery.start_soon(self._relay, trio.SocketListener(sock), port.metadata_socket,
                                 scope)

    async def _relay(self, listener: trio.SocketListener, path: str,
                     scope: trio.CancelScope) -> None:
        async def splice(a: trio.abc.Stream, b: trio.abc.Stream) -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while data := await a.receive_some(65536):
                    await b.send_all(data)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await b.aclose()

        async def one(stream: trio.SocketStream) -> None:
            try:
                upstream = await trio.open_unix_socket(path)
            except OSError:
                await stream.aclose()
                return
            async with stream, upstream, trio.open_nursery() as n:
                n.start_soon(splice, stream, upstream)
                n.start_soon(splice, upstream, stream)

        with scope:
            async with listener, trio.open_nursery() as nursery:
                while True:
                    nursery.start_soon(one, await listener.accept())

    def _port_rules(self, p: Port) -> nft.PortRules:
        relay = self._relays.get(p.port_id)
        return nft.PortRules(p.port_id, p.device, p.bridge, p.mac, p.address, p.cidr,
                             p.gateway, p.security_rules, relay[1] if relay else None)

    async def _apply_rules(self) -> None:
        networks: dict[str, nft.NetRules] = {}
        ports = []
        for p in sorted(self.ports.values(), key=lambda x: x.port_id):
            networks.setdefault(p.bridge, nft.NetRules(p.bridge, str(
                ipaddress.ip_network(p.cidr, strict=False)), p.gateway))
            ports.append(self._port_rules(p))
        script = nft.render(nft.Ruleset(self.table, list(networks.values()), ports))
        await _run("nft", "-f", "-", stdin=script.encode())

    async def _remove_locked(self, port_ids: list[str]) -> None:
        removed = [self.ports.pop(i) for i in port_ids if i in self.ports]
        if not removed:
            return
        for port in removed:
            relay = self._relays.pop(port.port_id, None)
            if relay is not None:
                relay[0].cancel()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.ports_dir, f"{port.port_id}.json"))
            if port.kind == "tap" and _link_exists(port.device):
                await _run("ip", "link", "del", port.device, check=False)
        await self._apply_rules()
        for bridge in sorted({p.bridge for p in removed}):
            if any(p.bridge == bridge for p in self.ports.values()):
                await self._ensure_network(bridge)  # rewrites the DHCP entries, SIGHUP
                continue
            gone = removed[0]
            first = next(p for p in removed if p.bridge == bridge)
            await Dnsmasq(os.path.join(self.runtime_dir, bridge), bridge, first.cidr,
                          first.gateway, first.mtu, self.domain).stop()
            if _link_exists(bridge):
                await _run("ip", "link", "del", bridge, check=False)
            log.info("network removed", bridge=bridge, last_port=gone.port_id)
        with contextlib.suppress(OSError):  # only when empty
            os.rmdir(self.runtime_dir)
            if self._default_runtime:
                os.rmdir(os.path.dirname(self.runtime_dir))
        for port in removed:
            log.info("port unplugged", port=port.port_id, device=port.device)
