"""Guests on bridges through the public API (issue 19): a real ``novalite serve`` with
``[network] driver = "bridge"`` and the qemu driver boots three Linux test guests, two
on the default network ``private`` and one on a second network made through the
Neutron API, and every check below runs on them, in file order:

* the guests reach each other by address (ping, a TCP port with busybox ``nc``), the
  host reaches a guest's address, the second network is isolated from the first;
* security groups: a port closed from outside the group is refused, a rule made with
  ``POST /v2.0/security-group-rules`` opens it on the running guest, deleting the rule
  closes it again;
* ``kill -9`` of the service leaves the guests connected; the next start re-creates a
  dnsmasq, a bridge and a ruleset that went missing, with the same address for all;
* deleting the servers leaves no tap, dnsmasq entry, nftables rule or bridge behind.

Commands run on the guests over the serial console websocket (API -> console proxy ->
QEMU). The service's names are its own (a random 10.x.y.0/24, nftables tables
``nlt<random>``) and everything it made is removed at the end, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from httpx_ws import connect_ws
from novalite_drivers.qemu import hostcheck

from novalite.network.host import BRIDGE_PREFIX, TAP_PREFIX, can_manage
from novalite.network.host.nft import short
from novalite.testing import guest_images
from novalite.testing.server import wait_for
from tests.drivers.test_qemu_api import LINUX_BOOT, Cloud

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

pytestmark = [
    pytest.mark.skipif(not hostcheck.check_qemu().usable,
                       reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}"),
    pytest.mark.skipif(not can_manage()[0],
                       reason=f"cannot manage host networks here: {can_manage()[1]}"),
]

N = "/network/v2.0"


@dataclass
class Net:
    tag: str
    table: str
    cidr: str
    cidr2: str
    servers: dict[str, str] = field(default_factory=dict)  # name -> id
    addresses: dict[str, str] = field(default_factory=dict)  # name -> address
    ports: dict[str, str] = field(default_factory=dict)  # name -> port id
    bridges: set[str] = field(default_factory=set)
    image: str = ""


def _nft(table: str) -> str:
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True,
                          text=True).stdout


def _links(prefix: str) -> set[str]:
    return {n for n in os.listdir("/sys/class/net") if n.startswith(prefix)}


def _cleanup(net: Net, state: str) -> None:
    """Whatever a failed run left: only this run's names (its bridges and taps, its
    tables, dnsmasqs started with its runtime directory)."""
    for port_id in net.ports.values():
        tap = TAP_PREFIX + short(port_id)
        if os.path.exists(f"/sys/class/net/{tap}"):
            subprocess.run(["ip", "link", "del", tap], check=False)
    runtime = f"/run/{net.table}/net"
    if os.path.isdir(runtime):
        for bridge in os.listdir(runtime):
            net.bridges.add(bridge)
            pid_file = os.path.join(runtime, bridge, "dnsmasq.pid")
            with contextlib.suppress(OSError, ValueError):
                pid = int(open(pid_file).read().strip())
                if f"--pid-file={pid_file}".encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                    os.kill(pid, signal.SIGTERM)
        subprocess.run(["rm", "-rf", f"/run/{net.table}"], check=False)
    for bridge in net.bridges:
        if os.path.exists(f"/sys/class/net/{bridge}"):
            subprocess.run(["ip", "link", "del", bridge], check=False)
    for family in ("ip", "bridge"):
        subprocess.run(["nft", "delete", "table", family, net.table], capture_output=True,
                       check=False)


@pytest.fixture(scope="module")
def net() -> Net:
    tag = secrets.token_hex(3)
    n, m = secrets.randbelow(200) + 30, secrets.randbelow(250)
    return Net(tag=tag, table=f"nlt{tag}", cidr=f"10.{n}.{m}.0/24",
               cidr2=f"10.{n}.{m + 1}.0/24")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, module_qemu_pids: PidTracker,
          net: Net) -> Iterator[Cloud]:
    state = tmp_path_factory.mktemp("bridge-api")
    config = {"compute": {"driver": "qemu", "power_sync_interval": 1.0},
              "network": {"driver": "bridge", "cidr": net.cidr, "nft_table": net.table}}
    cloud = Cloud(state, config, module_qemu_pids)
    try:
        yield cloud
    finally:
        cloud.close()
        module_qemu_pids.kill_all()
        _cleanup(net, str(state))


def sh(cloud: Cloud, sid: str, command: str, timeout: float = 30) -> tuple[int, str]:
    """Run ``command`` on a guest's serial console through the API; (status, output)."""
    r = cloud.c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
                     json={"remote_console": {"protocol": "serial", "type": "serial"}})
    assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    token = f"DONE{secrets.token_hex(4)}"
    got = ""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=timeout) as client, \
            connect_ws("http" + url.removeprefix("ws"), client) as ws:
        ws.send_bytes(f"{command}\recho {token}-$?\r".encode())
        while not (found := re.search(rf"{token}-(\d+)", got)):
            assert time.monotonic() < deadline, f"{command!r} gave no answer: {got[-500:]!r}"
            got += ws.receive_bytes(timeout=timeout).decode(errors="replace")
    return int(found.group(1)), got


def host_connect(address: str, port: int) -> str | None:
    """What the guest's service answers the host, or None when it cannot connect."""
    try:
        with socket.create_connection((address, port), timeout=1.5) as sock:
            sock.settimeout(3)
            sock.sendall(b"hello\n")
            data = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(100):
                    data += chunk
            return data.decode()
    except OSError:
        return None


def host_ping(address: str) -> bool:
    return subprocess.run(["busybox", "ping", "-c", "1", "-W", "3", address],
                          capture_output=True).returncode == 0


def default_group(cloud: Cloud) -> str:
    groups = cloud.c.get(f"{N}/security-groups", params={"name": "default"}).json()
    return str(groups["security_groups"][0]["id"])


def add_rule(cloud: Cloud, group: str, **rule: Any) -> str:
    r = cloud.c.post(f"{N}/security-group-rules", json={"security_group_rule": {
        "security_group_id": group, "direction": "ingress", "ethertype": "IPv4", **rule}})
    assert r.status_code == 201, r.text
    return str(r.json()["security_group_rule"]["id"])


@pytest.fixture(scope="module")
def guests(cloud: Cloud, net: Net, tmp_path_factory: pytest.TempPathFactory) -> Net:
    """vm1 and vm2 on ``private``, vm3 on a second network; all ACTIVE with their lease."""
    r = cloud.c.post(f"{N}/networks", json={"network": {"name": "second"}})
    assert r.status_code == 201, r.text
    second = r.json()["network"]["id"]
    r = cloud.c.post(f"{N}/subnets", json={"subnet": {"network_id": second, "cidr": net.cidr2,
                                                      "ip_version": 4}})
    assert r.status_code == 201, r.text
    private = cloud.c.get(f"{N}/networks", params={"name": "private"}).json()["networks"][0]
    net.bridges |= {BRIDGE_PREFIX + private["id"].replace("-", "")[:8],
                    BRIDGE_PREFIX + second.replace("-", "")[:8]}
    root = tmp_path_factory.mktemp("root-disk") / "root.img"
    root.write_bytes(bytes(1024 * 1024))
    image = net.image = cloud.upload_linux(guest_images.linux_guest(), str(root),
                                           "linux-bridge")
    for name, network in (("vm1", private["id"]), ("vm2", private["id"]), ("vm3", second)):
        net.servers[name] = cloud.boot(name, image, networks=[{"uuid": network}])
    for name, sid in net.servers.items():
        server = cloud.wait_status(sid, "ACTIVE", LINUX_BOOT)
        (addr,) = [a["addr"] for addrs in server["addresses"].values() for a in addrs]
        net.addresses[name] = addr
        ports = cloud.c.get(f"{N}/ports", params={"device_id": sid}).json()["ports"]
        net.ports[name] = ports[0]["id"]
    for name, sid in net.servers.items():  # dnsmasq leased each guest its port's address
        console = cloud.wait_console(sid, guest_images.LINUX_MARKER)
        assert f"{guest_images.IP_MARKER} {net.addresses[name]}/24" in console, console
    return net


def test_guests_reach_each_other_and_the_host_reaches_them(cloud: Cloud, guests: Net) -> None:
    a, b = guests.servers["vm1"], guests.servers["vm2"]
    b_addr = guests.addresses["vm2"]
    assert TAP_PREFIX + short(guests.ports["vm2"]) in _links(TAP_PREFIX)
    rc, out = sh(cloud, b, "nc -ll -p 7000 -e echo pong &")
    assert rc == 0, out
    rc, out = sh(cloud, a, f"ping -c 2 -W 3 {b_addr}")
    assert rc == 0, out
    rc, out = sh(cloud, a, f"echo hi | nc -w 3 {b_addr} 7000")
    assert rc == 0 and "pong" in out, out
    # 169.254.169.254 on the bridge is the metadata service, answering as the guest's own.
    rc, out = sh(cloud, a, "timeout 10 wget -q -O - "
                 "http://169.254.169.254/openstack/latest/meta_data.json")
    assert rc == 0 and '"uuid"' in out and a in out, out
    # The host is outside the default group: nothing gets in until a rule says so.
    assert not host_ping(b_addr)
    add_rule(cloud, default_group(cloud), protocol="icmp", remote_ip_prefix="0.0.0.0/0")
    assert wait_for(lambda: host_ping(b_addr), 10)


def test_a_second_network_is_isolated(cloud: Cloud, guests: Net) -> None:
    a, c = guests.servers["vm1"], guests.servers["vm3"]
    # The same default group's ICMP rule lets the host in.
    assert wait_for(lambda: host_ping(guests.addresses["vm3"]), 10), _nft(guests.table)
    rc, out = sh(cloud, a, f"ping -c 1 -W 1 {guests.addresses['vm3']}")
    assert rc != 0, out
    rc, out = sh(cloud, c, f"ping -c 1 -W 1 {guests.addresses['vm1']}")
    assert rc != 0, out


def test_an_interface_on_the_second_network_is_hot_plugged_and_unplugged(
        cloud: Cloud, guests: Net) -> None:
    """vm1 (on ``private``) gets a NIC on the second network: a tap on that bridge,
    dnsmasq leases the new port its address, and vm1 reaches vm3 there (both in the
    default group); after the detach the tap and the guest's NIC are gone."""
    a = guests.servers["vm1"]
    second = cloud.c.get(f"{N}/networks", params={"name": "second"}).json()["networks"][0]
    r = cloud.c.post(f"/compute/v2.1/servers/{a}/os-interface",
                     json={"interfaceAttachment": {"net_id": second["id"]}})
    assert r.status_code == 200, r.text
    made = r.json()["interfaceAttachment"]
    tap = TAP_PREFIX + short(made["port_id"])
    assert tap in _links(TAP_PREFIX)
    address = made["fixed_ips"][0]["ip_address"]
    rc, out = sh(cloud, a, "for i in $(seq 50); do [ -e /sys/class/net/eth1 ] && break; "
                 "sleep 0.2; done; ip link set eth1 up && udhcpc -i eth1 -n -q -t 5 -T 1 "
                 "-s /bin/dhcp-event", timeout=60)
    assert rc == 0 and address in out, out
    rc, out = sh(cloud, a, f"ping -c 2 -W 3 {guests.addresses['vm3']}")
    assert rc == 0, out
    r = cloud.c.delete(f"/compute/v2.1/servers/{a}/os-interface/{made['port_id']}")
    assert r.status_code == 202, r.text
    assert tap not in _links(TAP_PREFIX)
    rc, out = sh(cloud, a, "[ -e /sys/class/net/eth1 ]")
    assert rc != 0, out


def test_a_rule_opens_a_port_on_the_running_guest_and_its_deletion_closes_it(
        cloud: Cloud, guests: Net) -> None:
    b_addr = guests.addresses["vm2"]
    assert host_connect(b_addr, 7000) is None  # closed from outside the group
    rule = add_rule(cloud, default_group(cloud), protocol="tcp", port_range_min=7000,
                    port_range_max=7000, remote_ip_prefix="0.0.0.0/0")
    assert wait_for(lambda: host_connect(b_addr, 7000), 10) == "pong\n"
    assert cloud.c.delete(f"{N}/security-group-rules/{rule}").status_code == 204
    assert wait_for(lambda: host_connect(b_addr, 7000) is None, 10)


def test_kill_9_leaves_guests_connected_and_a_restart_recreates_what_is_missing(
        cloud: Cloud, guests: Net) -> None:
    a, b = guests.servers["vm1"], guests.servers["vm2"]
    b_addr = guests.addresses["vm2"]
    private_bridge = next(br for br in guests.bridges
                          if os.path.exists(f"/run/{guests.table}/net/{br}/dnsmasq.pid"))
    cloud.srv.stop(signal.SIGKILL)
    # No console proxy now: the guests answer the host by address, still on their bridge.
    assert host_ping(b_addr) and host_ping(guests.addresses["vm1"])
    # Meanwhile the host loses the private network's dnsmasq, bridge and the ruleset.
    pid_file = f"/run/{guests.table}/net/{private_bridge}/dnsmasq.pid"
    old_pid = int(open(pid_file).read())
    os.kill(old_pid, signal.SIGTERM)
    subprocess.run(["nft", "delete", "table", "ip", guests.table], check=True)
    subprocess.run(["ip", "link", "del", private_bridge], check=True)
    cloud.restart()
    modes = [e for e in cloud.srv.log_events() if e.get("event") == "network mode"]
    assert len(modes) == 2 and modes[-1]["mode"] == "bridge", modes
    assert os.path.exists(f"/sys/class/net/{private_bridge}")
    assert int(open(pid_file).read()) != old_pid
    assert f"sg-in-{short(guests.ports['vm2'])}" in _nft(guests.table)
    rc, out = sh(cloud, a, f"ping -c 2 -W 3 {b_addr}")
    assert rc == 0, out  # the same QEMUs' taps on the new bridge
    assert host_connect(b_addr, 7000) is None  # enforcement is back
    # A new DHCP request gets the same address from the new dnsmasq.
    rc, out = sh(cloud, b, "udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/dhcp-event >/dev/null 2>&1")
    assert wait_for(lambda: cloud.console(b).count(f"{guest_images.IP_MARKER} {b_addr}/24")
                    >= 2, 15)
    for name, sid in guests.servers.items():
        (addr,) = [x["addr"] for xs in cloud.show(sid)["addresses"].values() for x in xs]
        assert addr == guests.addresses[name]


def host_route() -> str | None:
    """A network the host routes on a device not novalite's (its LAN), or None."""
    for line in subprocess.run(["ip", "-o", "-4", "route", "show"], capture_output=True,
                               text=True).stdout.splitlines():
        words = line.split()
        if words and words[0] != "default" and "/" in words[0] and "dev" in words and \
                not words[words.index("dev") + 1].startswith(BRIDGE_PREFIX):
            return words[0]
    return None


def test_a_network_overlapping_the_hosts_own_is_refused_on_the_host(
        cloud: Cloud, guests: Net) -> None:
    routed = host_route()
    if routed is None:
        pytest.skip("the host routes no network of its own besides the default route")
    r = cloud.c.post(f"{N}/networks", json={"network": {"name": "lan"}})
    lan = r.json()["network"]["id"]
    r = cloud.c.post(f"{N}/subnets", json={"subnet": {"network_id": lan, "cidr": routed,
                                                      "ip_version": 4}})
    assert r.status_code == 201, r.text
    sid = cloud.boot("vm-lan", guests.image, networks=[{"uuid": lan}])
    server = cloud.wait_status(sid, "ERROR", 60)
    assert server["status"] == "ERROR"
    bridge = BRIDGE_PREFIX + lan.replace("-", "")[:8]
    assert not os.path.exists(f"/sys/class/net/{bridge}")  # nothing half-made
    assert f"overlaps the host's route to {routed}" in cloud.srv.log()
    assert cloud.c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_for(lambda: cloud.c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 30)
    assert cloud.c.delete(f"{N}/networks/{lan}").status_code == 204


def test_deleting_the_servers_leaves_nothing_behind(cloud: Cloud, guests: Net) -> None:
    for sid in guests.servers.values():
        assert cloud.c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    for sid in guests.servers.values():
        wait_for(lambda sid=sid: cloud.c.get(f"/compute/v2.1/servers/{sid}").status_code
                 == 404, 60)
    taps = {TAP_PREFIX + short(p) for p in guests.ports.values()}
    assert not taps & _links(TAP_PREFIX)
    assert not guests.bridges & _links(BRIDGE_PREFIX)
    ruleset = _nft(guests.table)
    assert not any(short(p) in ruleset for p in guests.ports.values()), ruleset
    assert not os.path.exists(f"/run/{guests.table}/net")  # no dnsmasq, no host entries
    assert not any(short(p) in " ".join(os.listdir(f"{cloud.state}/network/ports"))
                   for p in guests.ports.values())
