"""Guests on a host bridge (issue 19's data plane): the compute host's network layer
(:mod:`novalite.network.host`) with the real qemu driver and two Linux test guests, and
(where the lxc driver runs) a busybox LXC container on the same bridge.

The ports are plain NetworkInfo data built here, as the control plane would send them.
Each run uses its own names (bridge ``nlbr-<random>``, a random 10.x.y.0/24, nftables
tables ``nlt<random>``, dnsmasq files under ``/run/nlt<random>``) so parallel runs do
not collide, and removes everything it made.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import uuid as uuidlib

import pytest
import trio
from novalite_drivers.lxc import LxcDriver
from novalite_drivers.qemu import QemuDriver, hostcheck

from novalite.network.host import (
    HostNetwork,
    Port,
    bridge_name,
    can_manage,
    tap_name,
    veth_name,
)
from novalite.network.host.dnsmasq import Dnsmasq
from novalite.network.host.nft import short
from novalite.testing import guest_images
from novalite.testing.rootfs import build_busybox_rootfs
from novalite.virt.driver import DriverContext, ImageInfo, InstanceSpec, NetworkInfo

pytestmark = [
    pytest.mark.skipif(not hostcheck.check_qemu().usable,
                       reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}"),
    pytest.mark.skipif(not can_manage()[0],
                       reason=f"cannot manage host networks here: {can_manage()[1]}"),
]

#: The LXC container part runs where the lxc driver can (else only the QEMU guests).
LXC_USABLE = LxcDriver.check_host().usable
BOOT = 120.0  # TCG Linux on a loaded 2-core machine


def rule(direction: str, protocol: str | None = None, port: int | None = None,
         prefix: str | None = None, group: list[str] | None = None) -> dict[str, object]:
    return {"direction": direction, "ethertype": "IPv4", "protocol": protocol,
            "port_range_min": port, "port_range_max": port, "remote_ip_prefix": prefix,
            "remote_group_addresses": group or []}


def nft_table(table: str) -> str:
    out = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True)
    return out.stdout


class Guest:
    def __init__(self, driver: QemuDriver, uuid: str, address: str, port_id: str) -> None:
        self.driver, self.uuid, self.address, self.port_id = driver, uuid, address, port_id

    async def console(self) -> str:
        return await self.driver.get_console_output(self.uuid)

    async def wait(self, marker: str, timeout: float = BOOT) -> str:
        with trio.fail_after(timeout):
            while marker not in (out := await self.console()):
                await trio.sleep(0.2)
            return out

    async def sh(self, command: str, timeout: float = 30.0) -> tuple[int, str]:
        """Run ``command`` on the guest's serial console; (exit status, what it printed)."""
        token = f"DONE{secrets.token_hex(4)}"
        out = ""
        with trio.fail_after(timeout):
            stream = await self.driver.open_serial_console(self.uuid)
            async with stream:
                await stream.send_all(f"{command}\recho {token}-$?\r".encode())
                while not (m := re.search(rf"{token}-(\d+)", out)):
                    out += (await stream.receive_some(4096)).decode(errors="replace")
        return int(m.group(1)), out


async def serve_metadata(path: str, body: str) -> None:
    """An HTTP server on a UNIX socket answering ``body`` to everything."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(8)

    async def answer(stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.receive_some(4096)
                await stream.send_all(f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n"
                                      f"\r\n{body}".encode())

    await trio.serve_listeners(answer, [trio.SocketListener(sock)])


async def host_connect(address: str, port: int) -> str | None:
    """What the guest's service answers to the host, or None when it cannot connect."""
    with trio.move_on_after(3):
        try:
            stream = await trio.open_tcp_stream(address, port)
        except OSError:
            return None
        async with stream:
            await stream.send_all(b"hello\n")
            data = b""
            with contextlib.suppress(trio.BrokenResourceError):
                while chunk := await stream.receive_some(100):
                    data += chunk
            return data.decode()
    return None


async def test_two_guests_on_a_bridge_with_security_groups(tmp_path, make_driver, linux_guest):
    tag = secrets.token_hex(3)
    table, runtime = f"nlt{tag}", f"/run/nlt{tag}"
    network_id = uuidlib.uuid4().hex
    bridge = bridge_name(network_id)
    n = secrets.randbelow(250) + 2
    m = secrets.randbelow(256)
    cidr, gateway = f"10.{n}.{m}.0/24", f"10.{n}.{m}.1"
    addresses = [f"10.{n}.{m}.{i}" for i in (11, 12)]
    lxc_address = f"10.{n}.{m}.13"
    group = rule("ingress", group=[*addresses, lxc_address])  # the default group
    base_rules = [rule("egress"), group, rule("ingress", "icmp", prefix="0.0.0.0/0")]
    state = str(tmp_path / "net")
    root = tmp_path / "root.raw"
    root.write_bytes(bytes(1024 * 1024))
    image = ImageInfo(id="img", name="linux", disk_format="raw", container_format="bare",
                      path=str(root), kernel_path=linux_guest.kernel,
                      ramdisk_path=linux_guest.initrd,
                      properties={"os_command_line": linux_guest.append})
    driver = make_driver()
    await driver.init_host()
    lxc_driver = LxcDriver(DriverContext(host="h", state_path=str(tmp_path / "lxc-state"),
                                         instances_path=str(tmp_path / "lxc")))
    rootfs = ""
    if LXC_USABLE:
        await lxc_driver.init_host()
        rootfs = build_busybox_rootfs()
    guests: list[Guest] = []
    hn = HostNetwork(state, table=table, runtime_dir=runtime)
    md_sockets = [str(tmp_path / f"md{i}.sock") for i in range(2)]
    try:
        async with trio.open_nursery() as nursery:
            for i, path in enumerate(md_sockets):  # stand-ins for the metadata relay
                nursery.start_soon(serve_metadata, path, f"metadata-of-vm{i}")
            await nursery.start(hn.run)
            for i, address in enumerate(addresses):
                port_id, uuid = str(uuidlib.uuid4()), str(uuidlib.uuid4())
                info = NetworkInfo(network="private", address=address, cidr=cidr,
                                   gateway=gateway, mac=f"fa:16:3e:{tag[:2]}:{tag[2:4]}:1{i}",
                                   port_id=port_id, network_id=network_id, bridge=bridge,
                                   dns=[gateway], mtu=1500, security_rules=base_rules)
                await hn.plug(Port.from_info(info, uuid, f"vm{i}", "tap",
                                             metadata_socket=md_sockets[i]))
                spec = InstanceSpec(uuid=uuid, name=f"vm{i}", hostname=f"vm{i}", vcpus=1,
                                    memory_mb=128, root_gb=0)
                await driver.spawn(spec, image, [info])
                guests.append(Guest(driver, uuid, address, port_id))
            a, b = guests
            for g in guests:  # dnsmasq leased each guest exactly its port's address
                out = await g.wait(guest_images.LINUX_MARKER)
                assert f"{guest_images.IP_MARKER} {g.address}/24 router {gateway}" in out
            # Guest to guest by address: ping, and TCP to a busybox nc server.
            rc, out = await b.sh("nc -ll -p 7000 -e echo pong &")
            assert rc == 0, out
            rc, out = await a.sh(f"ping -c 2 -W 3 {b.address}")
            assert rc == 0, out
            rc, out = await a.sh(f"echo hi | nc -w 3 {b.address} 7000")
            assert rc == 0 and "pong" in out, out
            # The host reaches a guest's address (ICMP is open to all).
            assert subprocess.run(["busybox", "ping", "-c", "1", "-W", "3", b.address],
                                  capture_output=True).returncode == 0
            # Port 7000 is closed to the host (outside the group) ...
            assert await host_connect(b.address, 7000) is None
            # ... opened by a rule on the running guest, closed again without it.
            assert await hn.update_port_security(
                b.port_id, [*base_rules, rule("ingress", "tcp", 7000, "0.0.0.0/0")])
            assert await host_connect(b.address, 7000) == "pong\n"
            assert await hn.update_port_security(b.port_id, base_rules)
            assert await host_connect(b.address, 7000) is None
            # 169.254.169.254 reaches each guest's own metadata relay, and no other's.
            for i, g in enumerate(guests):
                rc, out = await g.sh("wget -q -O - http://169.254.169.254/")
                assert rc == 0 and f"metadata-of-vm{i}" in out, out
            a_relay = hn._relays[a.port_id][1]
            rc, out = await b.sh(f"wget -q -T 3 -O - http://{gateway}:{a_relay}/")
            assert rc != 0 and "metadata-of-vm0" not in out, out
            if LXC_USABLE:  # an LXC container (a veth) and the QEMU guests on one bridge
                port_id, uuid = str(uuidlib.uuid4()), str(uuidlib.uuid4())
                info = NetworkInfo(network="private", address=lxc_address, cidr=cidr,
                                   gateway=gateway, mac=f"fa:16:3e:{tag[:2]}:{tag[2:4]}:20",
                                   port_id=port_id, network_id=network_id, bridge=bridge,
                                   security_rules=base_rules)
                await hn.plug(Port.from_info(info, uuid, "ct0", "veth"))
                await lxc_driver.spawn(InstanceSpec(uuid=uuid, name="ct0", hostname="ct0",
                                                    vcpus=1, memory_mb=96, root_gb=1),
                                       ImageInfo(id="rootfs", name="rootfs", disk_format="raw",
                                                 container_format="bare", path=rootfs,
                                                 properties={"hypervisor_type": "lxc"}),
                                       [info])
                assert os.path.exists(f"/sys/class/net/{veth_name(port_id)}")
                attach = ["lxc-attach", "-P", lxc_driver.lxc_path, "-n", uuid, "--"]
                ping = await trio.run_process([*attach, "ping", "-c", "2", "-W", "3", a.address],
                                              capture_stdout=True, check=False)
                assert ping.returncode == 0, ping.stdout
                rc, out = await a.sh(f"ping -c 2 -W 3 {lxc_address}")
                assert rc == 0, out
                await lxc_driver.destroy(uuid)
                await hn.unplug_instance(uuid)
                assert not os.path.exists(f"/sys/class/net/{veth_name(port_id)}")
                assert short(port_id) not in nft_table(table)
            # A guest cannot speak as another: a spoofed source address goes nowhere.
            rc, out = await a.sh(f"ip addr add 10.{n}.{m}.99/24 dev eth0 && "
                                 f"ping -c 1 -W 2 -I 10.{n}.{m}.99 {b.address}")
            assert rc != 0, out
            await a.sh(f"ip addr del 10.{n}.{m}.99/24 dev eth0")
            nursery.cancel_scope.cancel()  # the service dies: nothing is torn down

        # Guests stay connected without the service.
        rc, out = await a.sh(f"ping -c 1 -W 3 {b.address}")
        assert rc == 0, out
        # Some of the host's state goes missing meanwhile; the next start re-creates it.
        dns = Dnsmasq(os.path.join(runtime, bridge), bridge, cidr, gateway, 1500, "novalocal")
        old_pid = dns.pid()
        assert old_pid is not None
        os.kill(old_pid, signal.SIGTERM)
        subprocess.run(["nft", "delete", "table", "ip", table], check=True)
        subprocess.run(["ip", "link", "del", bridge], check=True)
        rc, out = await a.sh(f"ping -c 1 -W 2 {b.address}")
        assert rc != 0, out  # the guests lost their bridge
        hn = HostNetwork(state, table=table, runtime_dir=runtime)
        async with trio.open_nursery() as nursery:
            await nursery.start(hn.run)
            assert dns.pid() not in (None, old_pid)
            assert f"sg-in-{short(b.port_id)}" in nft_table(table)
            rc, out = await a.sh(f"ping -c 2 -W 3 {b.address}")
            assert rc == 0, out  # the taps are back on a new bridge: same QEMUs, same addresses
            assert await host_connect(b.address, 7000) is None  # and enforcement is back
            # Deleting a guest leaves no tap, DHCP entry or rule of it.
            await driver.destroy(a.uuid)
            await hn.unplug_instance(a.uuid)
            assert not os.path.exists(f"/sys/class/net/{tap_name(a.port_id)}")
            with open(dns.hosts_file) as f:
                hosts = f.read()
            assert a.address not in hosts and b.address in hosts
            assert short(a.port_id) not in nft_table(table)
            # The network's last port takes the bridge, dnsmasq and rules with it.
            await driver.destroy(b.uuid)
            await hn.unplug_instance(b.uuid)
            assert not os.path.exists(f"/sys/class/net/{bridge}")
            assert not os.path.exists(f"/sys/class/net/{tap_name(b.port_id)}")
            assert dns.pid() is None and not os.path.exists(dns.directory)
            assert "sg-" not in nft_table(table)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for g in guests:
                with contextlib.suppress(Exception):
                    await driver.destroy(g.uuid)
            for name in os.listdir(lxc_driver.lxc_path) if LXC_USABLE else []:
                for argv in (["lxc-stop", "-k"], ["lxc-destroy"]):
                    subprocess.run([argv[0], "-P", lxc_driver.lxc_path, "-n", name, *argv[1:]],
                                   capture_output=True, timeout=30)
            cleanup = HostNetwork(state, table=table, runtime_dir=runtime)
            with contextlib.suppress(Exception):
                await cleanup.start()
            await cleanup.remove_all()
            for family in ("ip", "bridge"):
                subprocess.run(["nft", "delete", "table", family, table], capture_output=True)
            assert not os.path.exists(f"/sys/class/net/{bridge}")
