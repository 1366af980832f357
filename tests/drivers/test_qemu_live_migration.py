"""Live and cold migration of a real QEMU guest between two compute hosts of one novalite.

One ``novalite serve`` runs two qemu hosts (each its own instance directory: they
share nothing but this machine). The guest is a boot sector that prints a banner once,
then a counter about four times a second; its counter lives in guest memory. Through
the API (``os-migrateLive``): the guest moves while it counts, its console shows every
number once and in order across the move and the banner once (no restart), the
source's QEMU and files are gone. Then a destination QEMU that dies mid-migration: the
guest keeps counting on its source, the migration is ``error``, the server ACTIVE with
a fault, nothing left on the destination. Then the cold moves: a resize and a cold
migration to the other host (the disk copied over NBD), confirmed and reverted.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process
from novalite_drivers.qemu.bootsector import make_counter_boot_sector
from novalite_drivers.qemu.qmp import qmp_execute

from novalite.testing.server import wait_for
from tests.drivers.test_qemu_api import Cloud

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

pytestmark = pytest.mark.skipif(not hostcheck.check_qemu().usable,
                                reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}")

HOSTS = ("lm-a", "lm-b")
BANNER = "COUNTER-BOOTED"
TICK = re.compile(r"^TICK (\d+)\r?$", re.M)


class TwoHosts(Cloud):
    def instance_dir_on(self, host: str, sid: str) -> str:
        return str(self.state / "instances" / host / sid)

    def live_pid(self, host: str, sid: str) -> int | None:
        return qemu_process.live_pid(self.instance_dir_on(host, sid), sid)

    def qmp_status_on(self, host: str, sid: str) -> str:
        path = os.path.join(self.instance_dir_on(host, sid), qemu_process.QMP_SOCKET)
        return str(trio.run(qmp_execute, path, "query-status")["status"])

    def failed_events(self, sid: str) -> list[dict[str, Any]]:
        """The Error events of the server's last live-migration action."""
        h = {"OpenStack-API-Version": "compute 2.84"}
        actions = self.c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions",
                             headers=h).json()["instanceActions"]
        live = [a for a in actions if a["action"] == "live-migration"]
        detail = self.c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/"
                            f"{live[0]['request_id']}", headers=h).json()["instanceAction"]
        return [e for e in detail["events"] if e["result"] == "Error"]

    def host(self, sid: str) -> str:
        return str(self.show(sid)["OS-EXT-SRV-ATTR:host"])

    def migrations(self, sid: str) -> list[dict[str, Any]]:
        r = self.c.get("/compute/v2.1/os-migrations", params={"instance_uuid": sid},
                       headers={"OpenStack-API-Version": "compute 2.80"})
        assert r.status_code == 200, r.text
        return list(r.json()["migrations"])

    def ticks(self, sid: str) -> list[int]:
        return [int(n) for n in TICK.findall(self.console(sid))]

    def live_migrate(self, sid: str, host: str) -> None:
        r = self.c.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"os-migrateLive": {"host": host, "block_migration": "auto"}},
                        headers={"OpenStack-API-Version": "compute 2.30"})
        assert r.status_code == 202, r.text


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory,
          module_qemu_pids: PidTracker) -> Iterator[TwoHosts]:
    state = tmp_path_factory.mktemp("qemu-live")
    for host in HOSTS:
        module_qemu_pids.roots.append(str(state / "instances" / host))
    config = {"compute": {"driver": "qemu", "hosts": list(HOSTS),
                          "power_sync_interval": 1.0}}
    cloud = TwoHosts(state, config, module_qemu_pids)
    try:
        yield cloud
    finally:
        cloud.close()


@pytest.fixture(scope="module")
def counter(cloud: TwoHosts, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The counting guest, booted once; its server id."""
    disk = tmp_path_factory.mktemp("counter") / "counter.img"
    disk.write_bytes(make_counter_boot_sector(BANNER, "TICK "))
    image = cloud.upload("counter", str(disk), "raw", "bare")
    sid = cloud.boot("counter", image, metadata={"ssh_forward": "true"})
    cloud.wait_status(sid, "ACTIVE")
    wait_for(lambda: len(cloud.ticks(sid)) >= 3, 30, interval=0.2)
    return sid


def _tcp_sockets(pid: int, state: str) -> int:
    """How many TCP sockets of process ``pid`` are in ``state`` (/proc/net/tcp's hex:
    01 established, 0A listening)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
                  for fd in os.listdir(f"/proc/{pid}/fd")
                  if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
        with open("/proc/net/tcp") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return 0
    return sum(1 for r in rows if r[3] == state and r[9] in inodes)


def _assert_counting(ticks: list[int]) -> None:
    assert ticks and ticks == list(range(ticks[0], ticks[0] + len(ticks))), (
        f"the counter has a gap or restarted: {ticks}")


def test_live_migration_moves_the_running_guest(cloud: TwoHosts, counter: str) -> None:
    sid = counter
    source = cloud.host(sid)
    dest = next(h for h in HOSTS if h != source)
    source_pid = cloud.live_pid(source, sid)
    assert source_pid is not None
    before = cloud.ticks(sid)[-1]
    old_port = cloud.show(sid)["metadata"]["ssh_host_port"]
    cloud.live_migrate(sid, dest)
    wait_for(lambda: cloud.migrations(sid) and cloud.migrations(sid)[0]["status"]
             in ("completed", "error"), 60, interval=0.1)
    m = cloud.migrations(sid)[0]
    assert (m["migration_type"], m["status"]) == ("live-migration", "completed"), m
    server = cloud.wait_status(sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == dest
    # The source's QEMU is gone and its files too; the guest runs on the destination.
    assert wait_for(lambda: not qemu_process.is_our_qemu(source_pid, sid), 10)
    assert not os.path.exists(cloud.instance_dir_on(source, sid))
    dest_pid = cloud.live_pid(dest, sid)
    assert dest_pid is not None and dest_pid != source_pid
    assert not os.path.exists(os.path.join(cloud.instance_dir_on(dest, sid), "incoming"))
    # Its ssh forward moved with it: a new host port, listening (QEMU's hostfwd there).
    port = int(server["metadata"]["ssh_host_port"])
    assert str(port) != old_port
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # It counted on through the move: every number once, in order, one boot.
    wait_for(lambda: cloud.ticks(sid)[-1] >= before + 8, 30, interval=0.2)
    console = cloud.console(sid)
    assert console.count(BANNER) == 1, "the guest booted again"
    _assert_counting(cloud.ticks(sid))


def test_destination_dying_mid_migration_leaves_the_guest_running(
        cloud: TwoHosts, counter: str) -> None:
    sid = counter
    source = cloud.host(sid)
    dest = next(h for h in HOSTS if h != source)
    source_pid = cloud.live_pid(source, sid)
    assert source_pid is not None
    stopped: list[int] = []
    done = threading.Event()

    def freeze_destination() -> None:
        # As soon as the source has connected to the destination's QEMU (its disks'
        # copy, or its memory's), stop that QEMU: the source's copy hangs on it (or,
        # if everything was sent already, the guest waits there) until the test kills
        # it below.
        while not done.is_set():
            pid = cloud.live_pid(dest, sid)
            if pid is not None and _tcp_sockets(pid, "01") >= 1:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=freeze_destination, daemon=True)
    watcher.start()
    try:
        cloud.live_migrate(sid, dest)
        wait_for(lambda: stopped and cloud.migrations(sid)[0]["status"]
                 in ("running", "post-migrating"), 30, interval=0.05)
        time.sleep(0.5)
        os.kill(stopped[0], signal.SIGKILL)
    finally:
        done.set()
        watcher.join()
    wait_for(lambda: cloud.migrations(sid)[0]["status"] == "error", 60, interval=0.1)
    server = cloud.wait_status(sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == source
    errors = cloud.failed_events(sid)  # the fault, as the instance action shows it
    assert errors and errors[0]["host"] == source, errors
    # Still the same QEMU on the source, still counting; nothing left on the destination.
    assert cloud.live_pid(source, sid) == source_pid
    assert cloud.qmp_status_on(source, sid) == "running"
    last = cloud.ticks(sid)[-1]
    wait_for(lambda: cloud.ticks(sid)[-1] >= last + 4, 30, interval=0.2)
    assert cloud.console(sid).count(BANNER) == 1
    _assert_counting(cloud.ticks(sid))
    wait_for(lambda: not os.path.exists(cloud.instance_dir_on(dest, sid)), 20)


def _qemu_io(disk: str, command: str) -> str:
    """``qemu-io`` on a guest's disk while no QEMU runs on it."""
    import subprocess

    out = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, disk],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout, out
    return out.stdout


def test_resize_and_cold_migration_move_the_disk_to_the_other_host(
        cloud: TwoHosts, counter: str) -> None:
    """The hosts share no disk: a resize of the stopped guest lands on the other host
    with the guest's own disk (bytes written into it before are there) grown to the new
    flavor's size and flattened; confirm removes the source's copy and its NBD exports.
    Then a cold migration of the running guest back, reverted: it runs where it was."""
    from novalite_drivers.qemu import disks as qemu_disks

    sid = counter
    source = cloud.host(sid)
    dest = next(h for h in HOSTS if h != source)
    cloud.action(sid, {"os-stop": None}, "SHUTOFF")
    root = os.path.join(cloud.instance_dir_on(source, sid), qemu_process.ROOT_DISK)
    _qemu_io(root, "write -P 0x5a 1M 64k")  # what the guest wrote, as far as a disk knows
    r = cloud.c.post("/compute/v2.1/flavors", json={"flavor": {
        "name": "lm-bigger", "ram": 64, "vcpus": 2, "disk": 2}})
    assert r.status_code == 200, r.text
    server = cloud.action(sid, {"resize": {"flavorRef": r.json()["flavor"]["id"]}},
                          "VERIFY_RESIZE", timeout=120)
    assert server["OS-EXT-SRV-ATTR:host"] == dest and server["flavor"]["vcpus"] == 2
    assert server["OS-EXT-STS:power_state"] == 4  # stopped it was, stopped it stays
    moved = os.path.join(cloud.instance_dir_on(dest, sid), qemu_process.ROOT_DISK)
    _qemu_io(moved, "read -P 0x5a 1M 64k")
    assert qemu_disks.virtual_size(moved, "qcow2") == 2 * qemu_disks.GiB
    assert "backing file" not in subprocess_out(["qemu-img", "info", moved])
    kept = cloud.instance_dir_on(source, sid) + "_resize"
    assert os.path.isdir(kept)
    assert cloud.c.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"confirmResize": None}).status_code == 204
    cloud.wait_status(sid, "SHUTOFF")
    wait_for(lambda: not os.path.exists(kept), 15)
    # The guest's metadata relay (one per process, shared by its hosts) stays open: the
    # host it left closes only what it opened itself.
    from novalite.metadata.proxy import default_socket_dir

    relay = Path(default_socket_dir(str(cloud.state))) / f"{sid}.sock"
    assert relay.exists()
    cloud.action(sid, {"os-start": None}, "ACTIVE")
    wait_for(lambda: cloud.ticks(sid)[:3] == [1, 2, 3], 30, interval=0.2)

    # Running, moved back cold, then reverted: the guest runs on this host again.
    pid = cloud.live_pid(dest, sid)
    server = cloud.action(sid, {"migrate": None}, "VERIFY_RESIZE", timeout=120)
    assert server["OS-EXT-SRV-ATTR:host"] == source
    assert cloud.live_pid(source, sid) is not None
    assert cloud.c.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"revertResize": None}).status_code == 202
    server = cloud.wait_status(sid, "ACTIVE", timeout=60)
    assert server["OS-EXT-SRV-ATTR:host"] == dest
    assert cloud.live_pid(dest, sid) not in (None, pid)  # started again from its disk
    wait_for(lambda: not os.path.exists(cloud.instance_dir_on(source, sid)), 15)
    assert not os.path.exists(cloud.instance_dir_on(dest, sid) + "_resize")
    assert relay.exists()  # opened again where the guest came back to


def subprocess_out(argv: list[str]) -> str:
    import subprocess

    return subprocess.run(argv, capture_output=True, text=True, check=True,
                          timeout=30).stdout


def test_evacuate_boots_the_guest_again_on_the_other_host(cloud: TwoHosts,
                                                          counter: str) -> None:
    """Its host forced down, the server is rebuilt from its image on the other host: a
    new QEMU there that boots (the banner again, the counter from 1)."""
    sid = counter
    source = cloud.host(sid)
    dest = next(h for h in HOSTS if h != source)
    old_pid = cloud.live_pid(source, sid)
    h = {"OpenStack-API-Version": "compute 2.53"}
    services = {s["host"]: s["id"] for s in cloud.c.get(
        "/compute/v2.1/os-services", params={"binary": "nova-compute"},
        headers=h).json()["services"]}
    assert cloud.c.put(f"/compute/v2.1/os-services/{services[source]}",
                       json={"forced_down": True}, headers=h).status_code == 200
    try:
        r = cloud.c.post(f"/compute/v2.1/servers/{sid}/action", json={"evacuate": {}},
                         headers={"OpenStack-API-Version": "compute 2.94"})
        assert r.status_code == 200, r.text
        server = cloud.wait_status(sid, "ACTIVE")
        assert server["OS-EXT-SRV-ATTR:host"] == dest
        new_pid = cloud.live_pid(dest, sid)
        assert new_pid is not None and new_pid != old_pid
        wait_for(lambda: cloud.ticks(sid)[:3] == [1, 2, 3], 30, interval=0.2)
        assert cloud.console(sid).count(BANNER) == 1  # a new guest: its own console
    finally:
        cloud.c.put(f"/compute/v2.1/os-services/{services[source]}",
                    json={"forced_down": False}, headers=h)
    r = cloud.c.delete(f"/compute/v2.1/servers/{sid}")
    assert r.status_code == 204
    wait_for(lambda: cloud.c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 30)
    assert not os.listdir(Path(cloud.state) / "instances" / dest)
    # The old host still runs its stale guest (it was never really down): a restart of
    # its service would remove it (tests/test_evacuate.py); here the module's pid
    # tracker ends it.
