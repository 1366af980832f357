"""Guest networking on novalite's bridges beside the same guests wired by hand (one run).

Needs root (or CAP_NET_ADMIN), QEMU, dnsmasq and nftables. Everything it makes has
this run's names (bridges ``nlbr-b<tag>``/``nlbr-r<tag>``, taps ``nltap-*``, nftables
tables ``nlb<tag>``, ``/run/nlb<tag>``) and is removed at the end, also on failure.

1. **Set-up per guest**: the compute host's :meth:`HostNetwork.plug` for each of the
   two test guests' ports (bridge, dnsmasq, tap, DHCP entry, the nftables ruleset), as
   the build does it before the driver spawns the guest.
2. **On novalite's bridge**: two QEMU (TCG) Linux test guests, their addresses leased
   by the bridge's dnsmasq, the default group's rules (plus ICMP and TCP 5001 open)
   enforced per port: guest-to-guest TCP throughput (busybox ``dd`` into ``nc``, the
   receiver's ``nc`` into ``/dev/null``) and ping latency (``ping -c 20``).
3. **Wired by hand**: the same two QEMU processes, their taps moved to a bare Linux
   bridge made here with ``ip link`` (no dnsmasq, no nftables table): the same
   measurements; then the ratio.
4. **A rule change on 100 ports**: 98 more ports (taps without guests) join the group;
   one rule added to every port (as a security group rule change pushes it: one
   ``update_port_security`` per port, each one ``nft -f`` transaction of that port's
   chains), and the whole table re-rendered once, for reference.

Usage::

    sudo .venv/bin/python bench/bridge_net.py [--mbytes 32] [--ports 100]

A benchmark, not a test: it asserts nothing and prints each figure beside its reference.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from novalite_drivers.qemu import QemuDriver  # noqa: E402

from novalite.network.host import HostNetwork, Port, bridge_name, can_manage, tap_name  # noqa: E402
from novalite.testing import guest_images  # noqa: E402
from novalite.virt.driver import DriverContext, ImageInfo, InstanceSpec, NetworkInfo  # noqa: E402

BOOT = 180.0


def rule(direction: str, protocol: str | None = None, port: int | None = None,
         prefix: str | None = None, group: list[str] | None = None) -> dict[str, object]:
    return {"direction": direction, "ethertype": "IPv4", "protocol": protocol,
            "port_range_min": port, "port_range_max": port, "remote_ip_prefix": prefix,
            "remote_group_addresses": group or []}


class Guest:
    def __init__(self, driver: QemuDriver, uuid: str, address: str, port_id: str) -> None:
        self.driver, self.uuid, self.address, self.port_id = driver, uuid, address, port_id

    async def wait(self, marker: str, timeout: float = BOOT) -> str:
        with trio.fail_after(timeout):
            while marker not in (out := await self.driver.get_console_output(self.uuid)):
                await trio.sleep(0.2)
            return out

    async def sh(self, command: str, timeout: float = 120.0) -> tuple[int, str]:
        token = f"DONE{secrets.token_hex(4)}"
        out = ""
        with trio.fail_after(timeout):
            stream = await self.driver.open_serial_console(self.uuid)
            async with stream:
                await stream.send_all(f"{command}\recho {token}-$?\r".encode())
                while not (m := re.search(rf"{token}-(\d+)", out)):
                    out += (await stream.receive_some(4096)).decode(errors="replace")
        return int(m.group(1)), out


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


async def measure(a: Guest, b: Guest, mbytes: int, port: int) -> tuple[float, float]:
    """(MB/s from a to b over TCP, mean ping RTT in ms)."""
    rc, out = await b.sh(f"nc -l -p {port} > /dev/null &")
    await trio.sleep(0.5)
    started = time.monotonic()
    rc, out = await a.sh(f"dd if=/dev/zero bs=65536 count={mbytes * 16} 2>/dev/null | "
                         f"nc -w 5 {b.address} {port}")
    elapsed = time.monotonic() - started
    if rc != 0:
        raise RuntimeError(f"transfer failed: {out[-400:]}")
    rc, out = await a.sh(f"ping -c 20 -i 0.2 {b.address}")
    m = re.search(r"min/avg/max = [\d.]+/([\d.]+)/", out)
    if rc != 0 or not m:
        raise RuntimeError(f"ping failed: {out[-400:]}")
    return mbytes / elapsed, float(m.group(1))


async def main(args: argparse.Namespace) -> None:
    ok, why = can_manage()
    if not ok:
        sys.exit(f"cannot manage host networks here: {why}")
    tag = secrets.token_hex(2)
    table = f"nlb{tag}"
    network_id = f"b{tag}" + uuidlib.uuid4().hex[5:]
    bridge, ref_bridge = bridge_name(network_id), f"nlbr-r{tag}"
    n, m = secrets.randbelow(200) + 30, secrets.randbelow(250)
    cidr, gateway = f"10.{n}.{m}.0/24", f"10.{n}.{m}.1"
    work = tempfile.mkdtemp(prefix="bridge-bench-")
    linux = guest_images.linux_guest()
    root = os.path.join(work, "root.raw")
    with open(root, "wb") as f:
        f.write(bytes(1024 * 1024))
    image = ImageInfo(id="img", name="linux", disk_format="raw", container_format="bare",
                      path=root, kernel_path=linux.kernel, ramdisk_path=linux.initrd,
                      properties={"os_command_line": linux.append})
    driver = QemuDriver(DriverContext(host="bench", state_path=os.path.join(work, "state"),
                                      instances_path=os.path.join(work, "instances"),
                                      options=dict(QemuDriver.option_defaults)))
    await driver.init_host()
    hn = HostNetwork(os.path.join(work, "net"), table=table)
    guests: list[Guest] = []
    addresses = [f"10.{n}.{m}.{i}" for i in range(10, 10 + args.ports)]
    group = rule("ingress", group=addresses)
    rules = [rule("egress"), group, rule("ingress", "icmp", prefix="0.0.0.0/0")]
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(hn.run)
            # 1. set-up per guest, then 2. the guests on novalite's bridge.
            plug_times = []
            for i in range(2):
                port_id, uuid = str(uuidlib.uuid4()), str(uuidlib.uuid4())
                info = NetworkInfo(network="bench", address=addresses[i], cidr=cidr,
                                   gateway=gateway, mac=f"fa:16:3e:00:{tag[:2]}:{i:02x}",
                                   port_id=port_id, network_id=network_id, bridge=bridge,
                                   dns=[gateway], mtu=1500, security_rules=rules)
                started = time.monotonic()
                await hn.plug(Port.from_info(info, uuid, f"vm{i}", "tap"))
                plug_times.append(time.monotonic() - started)
                await driver.spawn(InstanceSpec(uuid=uuid, name=f"vm{i}", hostname=f"vm{i}",
                                                vcpus=1, memory_mb=128, root_gb=0),
                                   image, [info])
                guests.append(Guest(driver, uuid, addresses[i], port_id))
            a, b = guests
            for g in guests:
                out = await g.wait(guest_images.LINUX_MARKER)
                if f"{guest_images.IP_MARKER} {g.address}/24" not in out:
                    raise RuntimeError(f"{g.address} got no lease: {out[-400:]}")
            print(f"network set-up per guest (HostNetwork.plug): first port of the network "
                  f"{plug_times[0] * 1000:.0f} ms (bridge, dnsmasq, tap, ruleset), second "
                  f"{plug_times[1] * 1000:.0f} ms (tap, DHCP entry, ruleset)")
            await hn.update_port_security(b.port_id, [*rules, rule("ingress", "tcp", 5001,
                                                                   "0.0.0.0/0")])
            nl_mbs, nl_rtt = await measure(a, b, args.mbytes, 5001)
            print(f"novalite bridge  : {nl_mbs:7.1f} MB/s guest->guest TCP, "
                  f"{nl_rtt:.3f} ms mean ping RTT")
            # 4. a rule change on 100 ports (the 2 guests' and 98 more taps).
            extra_times = []
            for i in range(2, args.ports):
                port_id = str(uuidlib.uuid4())
                info = NetworkInfo(network="bench", address=addresses[i], cidr=cidr,
                                   gateway=gateway, mac=f"fa:16:3e:01:{i // 256:02x}:{i % 256:02x}",
                                   port_id=port_id, network_id=network_id, bridge=bridge,
                                   security_rules=rules)
                started = time.monotonic()
                await hn.plug(Port.from_info(info, str(uuidlib.uuid4()), f"p{i}", "tap"))
                extra_times.append(time.monotonic() - started)
            print(f"plug with {args.ports} ports on the network: median "
                  f"{statistics.median(extra_times) * 1000:.0f} ms, last "
                  f"{extra_times[-1] * 1000:.0f} ms (the whole ruleset is rewritten per plug)")
            changed = [*rules, rule("ingress", "tcp", 22, "0.0.0.0/0")]
            started = time.monotonic()  # the pushes as the network service sends them
            async with trio.open_nursery() as pushes:
                for port in list(hn.ports.values()):
                    pushes.start_soon(hn.update_port_security, port.port_id, changed)
            together = time.monotonic() - started
            started = time.monotonic()  # one after the other (one transaction each)
            for port in list(hn.ports.values()):
                await hn.update_port_security(port.port_id, rules)
            one_by_one = time.monotonic() - started
            started = time.monotonic()
            async with hn._lock:
                await hn._apply_rules()
            whole = time.monotonic() - started
            print(f"rule change on {len(hn.ports)} ports: {together * 1000:.0f} ms pushed "
                  f"side by side (coalesced transactions) vs {one_by_one * 1000:.0f} ms one "
                  f"port after the other ({one_by_one * 1000 / len(hn.ports):.1f} ms each); "
                  f"the whole table re-rendered once: {whole * 1000:.0f} ms")
            for port in [p for p in hn.ports.values() if p.port_id not in
                         (a.port_id, b.port_id)]:
                await hn.unplug(port.port_id)
            # 3. the same QEMU processes wired by hand: a bare bridge, no rules, no dnsmasq.
            for family in ("ip", "bridge"):
                subprocess.run(["nft", "delete", "table", family, table], check=True)
            ip("link", "add", ref_bridge, "type", "bridge")
            ip("link", "set", ref_bridge, "up")
            for g in guests:
                ip("link", "set", tap_name(g.port_id), "nomaster")
                ip("link", "set", tap_name(g.port_id), "master", ref_bridge)
            ref_mbs, ref_rtt = await measure(a, b, args.mbytes, 5002)
            print(f"by hand (bare)   : {ref_mbs:7.1f} MB/s guest->guest TCP, "
                  f"{ref_rtt:.3f} ms mean ping RTT")
            print(f"ratio novalite/by hand: throughput {nl_mbs / ref_mbs:.2f}, "
                  f"latency {nl_rtt / ref_rtt:.2f}")
            for g in guests:  # back on novalite's bridge for the clean-up
                ip("link", "set", tap_name(g.port_id), "nomaster")
                ip("link", "set", tap_name(g.port_id), "master", bridge)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for g in guests:
                with contextlib.suppress(Exception):
                    await driver.destroy(g.uuid)
            cleanup = HostNetwork(os.path.join(work, "net"), table=table)
            with contextlib.suppress(Exception):
                await cleanup.start()
            await cleanup.remove_all()
            for family in ("ip", "bridge"):
                subprocess.run(["nft", "delete", "table", family, table], capture_output=True)
            for name in (bridge, ref_bridge):
                if os.path.exists(f"/sys/class/net/{name}"):
                    subprocess.run(["ip", "link", "del", name], capture_output=True)
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbytes", type=int, default=16, help="MB sent guest to guest")
    parser.add_argument("--ports", type=int, default=100, help="ports for the rule change")
    trio.run(main, parser.parse_args())
