"""The qemu and kvm drivers end to end: a real ``novalite serve``, real HTTP, real QEMU.

One service with the qemu driver (TCG) boots one Linux guest (Debian cloud kernel and
a busybox initramfs, uploaded through the Glance API as AKI/ARI/AMI images) and the
tests below drive it, in file order, through every lifecycle action, a ``kill -9`` of
the service, a guest killed behind the service's back, and delete. Each action is
checked on the real QEMU process: its pidfile under ``<state>/instances/<uuid>/``,
the process table and QMP ``query-status``. A second service with the kvm driver boots
the 512-byte boot sector (the only guest nested ``kvm_pvm`` runs) and refuses Linux.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process
from novalite_drivers.qemu.qmp import qmp_execute

from novalite.testing import guest_images
from novalite.testing.server import RunningServer, start, wait_for

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

pytestmark = pytest.mark.skipif(not hostcheck.check_qemu().usable,
                                reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}")

#: Seconds between the service's power-state syncs (the QMP events are faster).
POWER_SYNC = 1.0
#: m1.nano: 1 vCPU, 128 MiB (the least the Debian cloud kernel boots in), 1 GiB disk.
FLAVOR = "42"
LINUX_BOOT = 120.0  # seconds a TCG Linux boot may take on a loaded 2-core machine


class Cloud:
    """A ``novalite serve`` on one state directory, restartable on the same port."""

    def __init__(self, state: Path, config: dict[str, dict[str, Any]],
                 pids: PidTracker) -> None:
        self.state = state
        self.config = config
        self.pids = pids
        pids.roots.append(str(state / "instances"))
        self.srv: RunningServer = start(state, config=config, timeout=60)
        self.port = int(self.srv.url.rsplit(":", 1)[1])
        self.c = self.srv.client()

    @classmethod
    def around(cls, srv: RunningServer, instances: Path, pids: PidTracker) -> Cloud:
        """The helpers over a service started elsewhere, whose guests (QEMU processes
        the tracker ends at teardown) live under ``instances`` (a compute process's)."""
        cloud = cls.__new__(cls)
        cloud.state, cloud.config, cloud.pids = instances.parent, {}, pids
        pids.roots.append(str(instances))
        cloud.srv, cloud.port = srv, int(srv.url.rsplit(":", 1)[1])
        cloud.c = srv.client()
        return cloud

    def restart(self) -> None:
        self.srv = start(self.state, port=self.port, config=self.config, timeout=60)
        self.c.close()
        self.c = self.srv.client()

    def close(self) -> None:
        self.c.close()
        self.srv.stop()

    # -- API helpers -----------------------------------------------------------------
    def upload(self, name: str, path: str, disk_format: str, container_format: str,
               **properties: Any) -> str:
        """Create an image through the Glance API and upload ``path`` as its data."""
        body = {"name": name, "disk_format": disk_format,
                "container_format": container_format, **properties}
        r = self.c.post("/image/v2/images", json=body)
        assert r.status_code == 201, r.text
        image_id = str(r.json()["id"])
        with open(path, "rb") as f:
            r = self.c.put(f"/image/v2/images/{image_id}/file", content=f.read(),
                           headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        assert self.c.get(f"/image/v2/images/{image_id}").json()["status"] == "active"
        return image_id

    def upload_linux(self, linux: guest_images.LinuxGuest, root: str, name: str) -> str:
        """AKI + ARI + an AMI whose ``kernel_id``/``ramdisk_id`` name them (Nova's way)."""
        kernel = self.upload(f"{name}-kernel", linux.kernel, "aki", "aki")
        ramdisk = self.upload(f"{name}-ramdisk", linux.initrd, "ari", "ari")
        return self.upload(name, root, "ami", "ami", kernel_id=kernel, ramdisk_id=ramdisk,
                           os_command_line=linux.append)

    def boot(self, name: str, image: str, **extra: Any) -> str:
        body = {"server": {"name": name, "imageRef": image, "flavorRef": FLAVOR, **extra}}
        r = self.c.post("/compute/v2.1/servers", json=body)
        assert r.status_code == 202, r.text
        return str(r.json()["server"]["id"])

    def show(self, sid: str) -> dict[str, Any]:
        r = self.c.get(f"/compute/v2.1/servers/{sid}")
        assert r.status_code == 200, r.text
        return r.json()["server"]  # type: ignore[no-any-return]

    def wait_status(self, sid: str, status: str, timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            server = self.show(sid)
            assert server["status"] != "ERROR" or status == "ERROR", server.get("fault")
            done = server["status"] == status and server["OS-EXT-STS:task_state"] is None
            return server if done else None

        return wait_for(check, timeout, interval=0.1)  # type: ignore[no-any-return]

    def action(self, sid: str, body: dict[str, Any], status: str,
               timeout: float = 60) -> dict[str, Any]:
        r = self.c.post(f"/compute/v2.1/servers/{sid}/action", json=body)
        assert r.status_code == 202, r.text
        return self.wait_status(sid, status, timeout)

    def console(self, sid: str) -> str:
        r = self.c.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"os-getConsoleOutput": {}})
        assert r.status_code == 200, r.text
        return str(r.json()["output"])

    def wait_console(self, sid: str, marker: str, count: int = 1,
                     timeout: float = LINUX_BOOT) -> str:
        return wait_for(lambda: (out := self.console(sid)).count(marker) >= count and out,
                        timeout, interval=0.2)  # type: ignore[no-any-return]

    # -- the real QEMU behind a server -------------------------------------------------
    def instance_dir(self, sid: str) -> str:
        return str(self.state / "instances" / sid)

    def pid(self, sid: str) -> int:
        """The live QEMU of ``sid``, from its pidfile (verified against /proc)."""
        pid = qemu_process.live_pid(self.instance_dir(sid), sid)
        assert pid is not None, f"no QEMU process for server {sid}"
        self.pids.pids[pid] = sid
        return pid

    def qmp_status(self, sid: str) -> str:
        path = os.path.join(self.instance_dir(sid), qemu_process.QMP_SOCKET)
        return str(trio.run(qmp_execute, path, "query-status")["status"])


def assert_no_qemu(sid: str, pid: int) -> None:
    assert not qemu_process.is_our_qemu(pid, sid), f"QEMU {pid} of {sid} still runs"


def wait_no_qemu(cloud: Cloud, sid: str, timeout: float = 10) -> None:
    wait_for(lambda: qemu_process.live_pid(cloud.instance_dir(sid), sid) is None, timeout)


# -- qemu (TCG): one Linux guest through everything ------------------------------------


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory,
          module_qemu_pids: PidTracker) -> Iterator[Cloud]:
    config = {
        "compute": {"driver": "qemu", "power_sync_interval": POWER_SYNC,
                    "shutdown_timeout": 20.0},
        "qemu": {"power_button_grace": 2.0},
    }
    cloud = Cloud(tmp_path_factory.mktemp("qemu-api"), config, module_qemu_pids)
    try:
        yield cloud
    finally:
        cloud.close()


@pytest.fixture(scope="module")
def linux_server(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Linux guest, booted once through the API; its server id."""
    linux = guest_images.linux_guest()
    root = tmp_path_factory.mktemp("root-disk") / "root.img"
    root.write_bytes(bytes(1024 * 1024))
    image = cloud.upload_linux(linux, str(root), "linux-test")
    return cloud.boot("linux-1", image, metadata={"ssh_forward": "true"})


def test_linux_guest_boots_through_the_api(cloud: Cloud, linux_server: str) -> None:
    sid = linux_server
    server = cloud.wait_status(sid, "ACTIVE", LINUX_BOOT)
    assert server["OS-EXT-STS:power_state"] == 1
    address = server["addresses"]["private"][0]["addr"]
    pid = cloud.pid(sid)
    cmdline = open(f"/proc/{pid}/cmdline").read().split("\0")
    assert "accel=tcg" in cmdline[cmdline.index("-machine") + 1]
    assert cmdline[cmdline.index("-m") + 1] == "128"
    assert os.getsid(pid) != os.getsid(cloud.srv.process.pid), "QEMU has its own session"
    assert cloud.qmp_status(sid) == "running"
    console = cloud.wait_console(sid, guest_images.LINUX_MARKER)
    # The guest's DHCP lease is the address the API shows.
    assert f"{guest_images.IP_MARKER} {address}/24" in console
    # ssh_forward=true: a host port forwarded to the guest's port 22, shown as metadata,
    # listening on 127.0.0.1 (QEMU's user network accepts for the guest).
    port = int(server["metadata"]["ssh_host_port"])
    assert f"hostfwd=tcp:127.0.0.1:{port}-{address}:22" in ",".join(cmdline)
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_lifecycle_actions_act_on_the_real_qemu(cloud: Cloud, linux_server: str) -> None:
    sid = linux_server
    marker = guest_images.LINUX_MARKER
    cloud.wait_console(sid, marker)
    boots = cloud.console(sid).count(marker)
    pid = cloud.pid(sid)

    # stop: ACPI power button, the guest's acpid powers it off, the process ends.
    began = time.monotonic()
    server = cloud.action(sid, {"os-stop": None}, "SHUTOFF")
    assert time.monotonic() - began < 15, "an ACPI guest stops well before the timeout"
    assert server["OS-EXT-STS:power_state"] == 4
    assert_no_qemu(sid, pid)
    assert os.path.isdir(cloud.instance_dir(sid)), "stop keeps the disks"
    # start: a new QEMU on the same disks, and the guest boots again.
    cloud.action(sid, {"os-start": None}, "ACTIVE")
    pid = cloud.pid(sid)
    boots += 1
    cloud.wait_console(sid, marker, boots)

    # HARD reboot: a reset of the same process.
    cloud.action(sid, {"reboot": {"type": "HARD"}}, "ACTIVE")
    assert cloud.pid(sid) == pid
    boots += 1
    cloud.wait_console(sid, marker, boots)
    # SOFT reboot: ACPI power-off, then QEMU is started again.
    cloud.action(sid, {"reboot": {"type": "SOFT"}}, "ACTIVE")
    assert_no_qemu(sid, pid)
    pid = cloud.pid(sid)
    boots += 1
    cloud.wait_console(sid, marker, boots)

    server = cloud.action(sid, {"pause": None}, "PAUSED")
    assert server["OS-EXT-STS:power_state"] == 3
    assert cloud.qmp_status(sid) == "paused"
    cloud.action(sid, {"unpause": None}, "ACTIVE")
    assert cloud.qmp_status(sid) == "running"
    assert cloud.pid(sid) == pid

    # suspend: memory saved to disk, the process ends; resume restores it (no new boot).
    server = cloud.action(sid, {"suspend": None}, "SUSPENDED")
    assert server["OS-EXT-STS:power_state"] == 7
    assert_no_qemu(sid, pid)
    assert os.path.getsize(os.path.join(cloud.instance_dir(sid), "suspend.state")) > 0
    cloud.action(sid, {"resume": None}, "ACTIVE")
    pid = cloud.pid(sid)
    assert cloud.qmp_status(sid) == "running"
    assert not os.path.exists(os.path.join(cloud.instance_dir(sid), "suspend.state"))
    assert cloud.console(sid).count(marker) == boots, "resumed, not rebooted"

    actions = cloud.c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
    done = [a["action"] for a in actions["instanceActions"]]
    for name in ("create", "stop", "start", "reboot", "pause", "unpause", "suspend",
                 "resume"):
        assert name in done


def test_resize_gives_the_real_guest_more_memory_cpus_and_disk(cloud: Cloud,
                                                               linux_server: str) -> None:
    """Same-host resize on QEMU: a new QEMU with the new flavor's memory and vCPUs on
    a copy of the disk grown to the new size; confirm removes the kept directory."""
    from novalite_drivers.qemu import disks as qemu_disks

    sid = linux_server
    cloud.wait_status(sid, "ACTIVE", LINUX_BOOT)
    cloud.wait_console(sid, guest_images.LINUX_MARKER)
    r = cloud.c.post("/compute/v2.1/flavors", json={"flavor": {
        "name": "qemu-bigger", "ram": 256, "vcpus": 2, "disk": 2}})
    assert r.status_code == 200, r.text
    pid = cloud.pid(sid)
    server = cloud.action(sid, {"resize": {"flavorRef": r.json()["flavor"]["id"]}},
                          "VERIFY_RESIZE", timeout=120)
    assert server["flavor"]["ram"] == 256 and server["flavor"]["vcpus"] == 2
    assert_no_qemu(sid, pid)
    pid = cloud.pid(sid)
    cmdline = open(f"/proc/{pid}/cmdline").read().split("\0")
    assert cmdline[cmdline.index("-m") + 1] == "256"
    assert cmdline[cmdline.index("-smp") + 1] == "2"
    root = os.path.join(cloud.instance_dir(sid), qemu_process.ROOT_DISK)
    assert qemu_disks.virtual_size(root, "qcow2") == 2 * qemu_disks.GiB
    kept = cloud.instance_dir(sid) + "_resize"
    assert os.path.isdir(kept), "the old guest is kept until the resize is confirmed"
    cloud.wait_console(sid, guest_images.LINUX_MARKER)  # the guest boots on the new size
    assert cloud.c.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"confirmResize": None}).status_code == 204
    cloud.wait_status(sid, "ACTIVE")
    wait_for(lambda: not os.path.isdir(kept), 10)
    assert cloud.pid(sid) == pid


def test_guest_survives_kill_9_of_the_service_and_is_adopted(cloud: Cloud,
                                                            linux_server: str) -> None:
    sid = linux_server
    cloud.wait_status(sid, "ACTIVE")
    pid = cloud.pid(sid)
    boots = cloud.console(sid).count(guest_images.LINUX_MARKER)
    cloud.srv.stop(signal.SIGKILL)
    assert cloud.srv.process.returncode == -signal.SIGKILL
    assert qemu_process.is_our_qemu(pid, sid), "the guest outlives the service"
    assert cloud.qmp_status(sid) == "running"

    cloud.restart()
    assert "adopting running QEMU guest" in cloud.srv.log()
    server = cloud.wait_status(sid, "ACTIVE")
    assert server["OS-EXT-STS:power_state"] == 1
    assert cloud.pid(sid) == pid
    assert cloud.console(sid).count(guest_images.LINUX_MARKER) == boots
    # The adopted guest still obeys: a HARD reboot boots it again in the same process.
    cloud.action(sid, {"reboot": {"type": "HARD"}}, "ACTIVE")
    cloud.wait_console(sid, guest_images.LINUX_MARKER, boots + 1)
    assert cloud.pid(sid) == pid
    cloud.action(sid, {"pause": None}, "PAUSED")
    assert cloud.qmp_status(sid) == "paused"
    cloud.action(sid, {"unpause": None}, "ACTIVE")


def test_guest_killed_behind_the_services_back_goes_shutoff(cloud: Cloud,
                                                           linux_server: str) -> None:
    sid = linux_server
    cloud.wait_status(sid, "ACTIVE")
    pid = cloud.pid(sid)
    os.kill(pid, signal.SIGKILL)  # our own guest: cloud.pid() checked it is its QEMU
    began = time.monotonic()
    server = cloud.wait_status(sid, "SHUTOFF", timeout=2 * POWER_SYNC + 5)
    assert time.monotonic() - began <= 2 * POWER_SYNC + 1
    assert server["OS-EXT-STS:power_state"] == 4
    # Started again by the user, it boots on the same disk.
    cloud.action(sid, {"os-start": None}, "ACTIVE")
    assert cloud.qmp_status(sid) == "running"


def test_guest_gone_while_the_service_was_down_is_shutoff(cloud: Cloud,
                                                         linux_server: str) -> None:
    sid = linux_server
    cloud.wait_status(sid, "ACTIVE")
    pid = cloud.pid(sid)
    cloud.srv.stop(signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    cloud.restart()
    server = cloud.wait_status(sid, "SHUTOFF", timeout=10)
    assert server["OS-EXT-STS:power_state"] == 4
    cloud.action(sid, {"os-start": None}, "ACTIVE")


def test_delete_leaves_no_process_and_no_files(cloud: Cloud, linux_server: str) -> None:
    sid = linux_server
    cloud.wait_status(sid, "ACTIVE")
    pid = cloud.pid(sid)
    assert cloud.c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_for(lambda: cloud.c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 30)
    assert_no_qemu(sid, pid)
    assert not os.path.exists(cloud.instance_dir(sid))
    assert os.listdir(cloud.state / "instances") == []


# -- kvm ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kvm_cloud(tmp_path_factory: pytest.TempPathFactory,
              module_qemu_pids: PidTracker) -> Iterator[Cloud]:
    check = hostcheck.check_kvm()
    if not check.usable:
        pytest.skip(f"KVM unusable here: {check.reason}")
    config = {
        "compute": {"driver": "kvm", "power_sync_interval": POWER_SYNC,
                    "shutdown_timeout": 20.0},
        "kvm": {"power_button_grace": 1.0},
    }
    cloud = Cloud(tmp_path_factory.mktemp("kvm-api"), config, module_qemu_pids)
    try:
        yield cloud
    finally:
        cloud.close()


def test_kvm_boots_the_boot_sector_and_stops_a_guest_without_acpi(kvm_cloud: Cloud) -> None:
    cloud = kvm_cloud
    image = cloud.upload("bootsector", guest_images.boot_sector_image(), "raw", "bare")
    sid = cloud.boot("real-mode-1", image)
    cloud.wait_status(sid, "ACTIVE")
    pid = cloud.pid(sid)
    cmdline = open(f"/proc/{pid}/cmdline").read().split("\0")
    assert "accel=kvm" in cmdline[cmdline.index("-machine") + 1]
    # Real mode under nested KVM reaches the serial port in seconds, not milliseconds.
    cloud.wait_console(sid, guest_images.BOOT_MARKER, timeout=60)
    # The boot sector never enables the ACPI power button: stop does not wait for it
    # the whole shutdown_timeout (20 s) but goes hard after power_button_grace (1 s).
    began = time.monotonic()
    cloud.action(sid, {"os-stop": None}, "SHUTOFF")
    assert time.monotonic() - began < 8
    assert_no_qemu(sid, pid)
    assert cloud.c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_for(lambda: cloud.c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 30)
    assert not os.path.exists(cloud.instance_dir(sid))


def test_linux_guest_under_nested_kvm_fails_with_the_reason(kvm_cloud: Cloud,
                                                            tmp_path: Path) -> None:
    if not hostcheck.is_kvm_pvm():
        pytest.skip("/dev/kvm is not the nested kvm_pvm module here: Linux runs under KVM")
    cloud = kvm_cloud
    root = tmp_path / "root.img"
    root.write_bytes(bytes(1024 * 1024))
    image = cloud.upload_linux(guest_images.linux_guest(), str(root), "linux-on-kvm")
    sid = cloud.boot("linux-kvm", image)
    began = time.monotonic()
    server = cloud.wait_status(sid, "ERROR", timeout=30)
    assert time.monotonic() - began < 30, "refused at once, not after a hung boot"
    assert "kvm_pvm" in server["fault"]["message"]
    assert "cannot run Linux kernels" in server["fault"].get("details", "")
    assert not os.path.exists(cloud.instance_dir(sid))
    assert cloud.c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204

