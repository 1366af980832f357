"""Containers end to end: a real ``novalite serve`` with the lxc driver, over real HTTP.

One service (driver ``lxc``, shared with the package's other LXC API modules, one compute host, power sync every
second). A busybox root filesystem built by the suite is uploaded through the
Glance API and booted through the compute API; every check is made against the
real container with the ``lxc-*`` tools in novalite's private LXC path under
the service's ``state_path``. Teardown kills and destroys only containers in
that private path, by name, and stops the service by its PID.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from novalite_drivers.lxc import LxcDriver
from novalite_drivers.lxc.config import cgroup_layout
from novalite_drivers.lxc.layout import cgroup_mounts

from novalite.testing.rootfs import (
    HALT_MARKER,
    IMAGE_PROPERTIES,
    READY_MARKER,
    build_busybox_rootfs,
)
from novalite.testing.server import RunningServer, start, wait_for
from tests.helpers import wait_gone, wait_status

_check = LxcDriver.check_host()
pytestmark = [
    pytest.mark.lxc,
    pytest.mark.skipif(not _check.usable, reason=f"lxc driver unusable here: {_check.reason}"),
]

HOST = "lxc-1"
POWER_SYNC_INTERVAL = 1.0
#: Slack for a machine shared with other test runs.
TIMEOUT = 30.0
CONFIG: dict[str, dict[str, Any]] = {
    "compute": {"driver": "lxc", "hosts": [HOST], "power_sync_interval": POWER_SYNC_INTERVAL},
    "lxc": {"start_timeout": 20.0, "soft_reboot_timeout": 15.0},
}
#: A flavor of our own: 96 MiB and 2 vCPUs (a CFS quota of two CPUs).
FLAVOR = {"name": "lxc.test", "ram": 96, "vcpus": 2, "disk": 1}


class Service:
    """The module's ``novalite serve``, which a test may kill and start again."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.lxc_path = str(state_path / "drivers" / "lxc" / HOST / "containers")
        self.srv: RunningServer = start(state_path, config=CONFIG, timeout=60)
        self._client: httpx.Client | None = None

    def client(self) -> httpx.Client:
        """The admin's compute API client for the running service."""
        if self._client is None:
            self._client = self.srv.client()
        return self._client

    def restart(self) -> None:
        self.close_client()
        self.srv = start(self.state_path, config=CONFIG, timeout=60)

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def lxc(self, tool: str, name: str, *args: str, timeout: float = 30) -> (
            subprocess.CompletedProcess[str]):
        """An ``lxc-*`` tool on novalite's private LXC path, as an operator would run it."""
        return subprocess.run([tool, "-P", self.lxc_path, "-n", name, *args],
                              capture_output=True, text=True, timeout=timeout)

    def state(self, name: str) -> tuple[str, int | None]:
        """``lxc-info``'s state and init pid for a container ("" when there is none)."""
        out = self.lxc("lxc-info", name, "-s", "-p").stdout
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":")
                                                       for line in out.splitlines())}
        pid = fields.get("PID", "")
        return fields.get("State", ""), int(pid) if pid.isdigit() else None

    def attach(self, name: str, script: str) -> str:
        proc = self.lxc("lxc-attach", name, "--", "/bin/sh", "-c", script)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def containers(self) -> list[str]:
        out = subprocess.run(["lxc-ls", "-1", "-P", self.lxc_path], capture_output=True,
                             text=True, timeout=30).stdout
        return out.split()

    def cleanup(self) -> None:
        """Kill and destroy the containers left in our private LXC path, by name."""
        if not os.path.isdir(self.lxc_path):
            return
        for name in os.listdir(self.lxc_path):
            for tool, *args in (["lxc-unfreeze"], ["lxc-stop", "-k"], ["lxc-destroy"]):
                self.lxc(tool, name, *args)


@pytest.fixture(scope="module")
def service(lxc_service: Service) -> Service:
    """The package's lxc service (``lxc_service`` in conftest.py), shared with
    test_lxc_access.py."""
    return lxc_service


@pytest.fixture(scope="module")
def rootfs_image(service: Service) -> str:
    """The busybox rootfs tarball, uploaded through the Glance API with its properties."""
    with open(build_busybox_rootfs(), "rb") as f:
        return upload(service.client(), "busybox-rootfs", f.read(), IMAGE_PROPERTIES)


@pytest.fixture(scope="module")
def flavor(service: Service) -> str:
    r = service.client().post("/compute/v2.1/flavors", json={"flavor": FLAVOR})
    assert r.status_code == 200, r.text
    return str(r.json()["flavor"]["id"])


def upload(c: httpx.Client, name: str, data: bytes, properties: dict[str, str]) -> str:
    r = c.post("/image/v2/images", json={"name": name, **properties})
    assert r.status_code == 201, r.text
    image_id = str(r.json()["id"])
    r = c.put(f"/image/v2/images/{image_id}/file", content=data,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert c.get(f"/image/v2/images/{image_id}").json()["status"] == "active"
    return image_id


def boot(c: httpx.Client, name: str, image: str, flavor: str) -> str:
    body = {"server": {"name": name, "imageRef": image, "flavorRef": flavor}}
    r = c.post("/compute/v2.1/servers", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def boot_active(service: Service, name: str, image: str, flavor: str) -> tuple[httpx.Client, str]:
    """Boot a server and wait for ACTIVE; returns the client and the server's id."""
    c = service.client()
    sid = boot(c, name, image, flavor)
    wait_status(c, sid, "ACTIVE", TIMEOUT)
    return c, sid


def boot_to_error(service: Service, name: str, properties: dict[str, str], flavor: str
                  ) -> dict[str, Any]:
    """Upload a 512-byte disk image with ``properties``, boot it, wait for ERROR."""
    c = service.client()
    disk = b"\xeb\xfe" + bytes(508) + b"\x55\xaa"  # a boot sector that loops forever
    image = upload(c, f"{name}-disk", disk, {"disk_format": "raw", "container_format": "bare",
                                            **properties})
    sid = boot(c, name, image, flavor)
    return wait_status(c, sid, "ERROR", TIMEOUT)


def action(c: httpx.Client, sid: str, body: dict[str, Any], status: str) -> dict[str, Any]:
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json=body)
    assert r.status_code == 202, r.text
    return wait_status(c, sid, status, TIMEOUT)


def console(c: httpx.Client, sid: str) -> str:
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}})
    assert r.status_code == 200, r.text
    return str(r.json()["output"])


def wait_console(c: httpx.Client, sid: str, count: int = 1) -> str:
    return str(wait_for(lambda: (out := console(c, sid)).count(READY_MARKER) >= count and out,
                        TIMEOUT, interval=0.1))


def delete(service: Service, sid: str) -> None:
    c = service.client()
    assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_gone(c, sid, TIMEOUT)


# -- tests -------------------------------------------------------------------------------
def test_rootfs_image_boots_a_container_whose_console_shows_the_guest(
    service: Service, rootfs_image: str, flavor: str
) -> None:
    c = service.client()
    sid = boot(c, "boots", rootfs_image, flavor)
    server = wait_status(c, sid, "ACTIVE", TIMEOUT)
    assert server["OS-EXT-STS:power_state"] == 1
    assert server["OS-EXT-SRV-ATTR:host"] == HOST

    state, pid = service.state(sid)
    assert state == "RUNNING"
    assert pid and Path(f"/proc/{pid}/comm").read_text().strip() == "init"
    assert service.containers() == [sid]
    assert not Path("/var/lib/lxc", sid).exists()  # never the system's container directory
    output = wait_console(c, sid)
    assert "boots" in output  # the guest's hostname is the server's
    delete(service, sid)


def test_the_demo_image_is_the_drivers_busybox_rootfs_and_boots(
    service: Service, flavor: str
) -> None:
    """First start registered ``demo`` from the lxc driver's own hook, no test helper."""
    c = service.client()
    images = c.get("/image/v2/images", params={"name": "demo"}).json()["images"]
    assert len(images) == 1
    demo = images[0]
    assert (demo["disk_format"], demo["container_format"], demo["hypervisor_type"]) == (
        "raw", "bare", "lxc")
    data = c.get(f"/image/v2/images/{demo['id']}/file").content
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
    assert {"./sbin/init", "./bin/busybox", "./etc/inittab"} <= names
    c, sid = boot_active(service, "demo-guest", demo["id"], flavor)
    assert "demo-guest" in wait_console(c, sid)
    delete(service, sid)


def test_flavor_memory_and_vcpus_are_cgroup_limits_inside_the_container(
    service: Service, rootfs_image: str, flavor: str
) -> None:
    c, sid = boot_active(service, "limits", rootfs_image, flavor)

    if cgroup_layout() == "legacy":
        memory = service.attach(sid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
        cpu = service.attach(sid, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                                  "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        assert cpu.split() == ["200000", "100000"]
    else:
        memory = service.attach(sid, "cat /sys/fs/cgroup/memory.max")
        cpu = service.attach(sid, "cat /sys/fs/cgroup/cpu.max")
        assert cpu.split() == ["200000", "100000"]
    assert int(memory) == FLAVOR["ram"] * 1024 * 1024
    delete(service, sid)


def test_stop_start_reboot_pause_unpause_drive_the_real_container(
    service: Service, rootfs_image: str, flavor: str
) -> None:
    c, sid = boot_active(service, "lifecycle", rootfs_image, flavor)
    wait_console(c, sid)

    server = action(c, sid, {"os-stop": None}, "SHUTOFF")
    assert server["OS-EXT-STS:power_state"] == 4
    assert service.state(sid) == ("STOPPED", None)
    assert console(c, sid).count(HALT_MARKER) == 1  # init was asked to halt, not killed

    action(c, sid, {"os-start": None}, "ACTIVE")
    state, first = service.state(sid)
    assert state == "RUNNING" and first
    wait_console(c, sid, count=2)

    action(c, sid, {"reboot": {"type": "SOFT"}}, "ACTIVE")
    state, second = service.state(sid)
    assert state == "RUNNING" and second not in (None, first)
    assert wait_console(c, sid, count=3).count(HALT_MARKER) == 2  # soft: init shut down

    action(c, sid, {"reboot": {"type": "HARD"}}, "ACTIVE")
    state, third = service.state(sid)
    assert state == "RUNNING" and third not in (None, first, second)

    server = action(c, sid, {"pause": None}, "PAUSED")
    assert server["OS-EXT-STS:power_state"] == 3
    assert service.state(sid)[0] == "FROZEN"
    action(c, sid, {"unpause": None}, "ACTIVE")
    assert service.state(sid) == ("RUNNING", third)

    actions = c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
    assert {"create", "stop", "start", "reboot", "pause", "unpause"} <= {
        a["action"] for a in actions["instanceActions"]}
    delete(service, sid)


def test_containers_outlive_a_killed_service_and_are_adopted(
    service: Service, rootfs_image: str, flavor: str
) -> None:
    c, sid = boot_active(service, "survivor", rootfs_image, flavor)
    _, pid = service.state(sid)

    service.srv.stop(signal.SIGKILL)
    assert service.state(sid) == ("RUNNING", pid)  # the container did not die with it
    service.restart()

    c = service.client()
    server = wait_status(c, sid, "ACTIVE", TIMEOUT)
    assert server["OS-EXT-STS:power_state"] == 1
    assert service.state(sid) == ("RUNNING", pid)  # adopted, not restarted
    assert READY_MARKER in console(c, sid)
    # Its metadata listener is made again in its namespace (see test_lxc_access.py).
    md = "wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json"
    assert sid in wait_for(lambda: service.lxc("lxc-attach", sid, "--", "/bin/sh", "-c",
                                               md).stdout, TIMEOUT, interval=0.2)
    action(c, sid, {"os-stop": None}, "SHUTOFF")
    assert service.state(sid)[0] == "STOPPED"
    action(c, sid, {"os-start": None}, "ACTIVE")
    assert service.state(sid)[0] == "RUNNING"
    delete(service, sid)


def test_container_stopped_behind_the_service_back_shows_shutoff(
    service: Service, rootfs_image: str, flavor: str
) -> None:
    c, sid = boot_active(service, "external-stop", rootfs_image, flavor)

    proc = service.lxc("lxc-stop", sid, "-k")
    assert proc.returncode == 0, proc.stderr
    stopped_at = time.monotonic()
    server = wait_status(c, sid, "SHUTOFF", TIMEOUT)
    # Within a power-sync interval or two (plus slack for a loaded machine).
    assert time.monotonic() - stopped_at < 2 * POWER_SYNC_INTERVAL + 3
    assert server["OS-EXT-STS:power_state"] == 4
    action(c, sid, {"os-start": None}, "ACTIVE")
    assert service.state(sid)[0] == "RUNNING"
    delete(service, sid)


def test_delete_leaves_no_container_directory_process_or_cgroup(
    service: Service, rootfs_image: str, flavor: str
) -> None:
    c, sid = boot_active(service, "doomed", rootfs_image, flavor)
    action(c, sid, {"pause": None}, "PAUSED")  # even a frozen container goes
    _, pid = service.state(sid)
    assert pid

    delete(service, sid)
    assert sid not in service.containers()
    assert service.state(sid) == ("", None)
    assert not os.path.exists(os.path.join(service.lxc_path, sid))
    assert not os.path.exists(f"/proc/{pid}")
    for proc in Path("/proc").iterdir():  # no init, no `lxc monitor` naming the container
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        assert sid.encode() not in cmdline, f"process {proc.name} left: {cmdline!r}"
    assert sid not in Path("/proc/self/mountinfo").read_text()
    for mount in cgroup_mounts():
        assert not [e for e in os.listdir(mount) if e.endswith(sid)], mount


def test_qemu_image_on_an_lxc_only_service_ends_in_no_valid_host(
    service: Service, flavor: str
) -> None:
    server = boot_to_error(service, "wrong-hypervisor", {"hypervisor_type": "qemu"}, flavor)
    assert "No valid host" in server["fault"]["message"]
    assert "ImagePropertiesFilter" in server["fault"]["message"]
    assert server["id"] not in service.containers()
    delete(service, server["id"])


def test_disk_image_without_hypervisor_type_fails_plainly_and_leaves_nothing(
    service: Service, flavor: str
) -> None:
    # No hypervisor_type: the scheduler lets it through, the driver refuses it.
    server = boot_to_error(service, "not-a-rootfs", {}, flavor)
    assert "not a root-filesystem tarball" in server["fault"]["message"]
    assert server["id"] not in service.containers()
    assert not os.path.exists(os.path.join(service.lxc_path, server["id"]))
    delete(service, server["id"])


def test_rootfs_whose_init_cannot_start_ends_in_error_with_lxc_reason(
    service: Service, flavor: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        data = b"not an executable\n"
        info = tarfile.TarInfo("./sbin/init")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    c = service.client()
    image = upload(c, "broken-rootfs", broken.read_bytes(), IMAGE_PROPERTIES)
    sid = boot(c, "cannot-start", image, flavor)

    server = wait_status(c, sid, "ERROR", TIMEOUT)
    assert "failed to start" in server["fault"]["message"]  # with LXC's reason:
    assert "/sbin/init" in server["fault"]["message"]  # "Failed to exec /sbin/init"
    assert sid not in service.containers()
    assert not os.path.exists(os.path.join(service.lxc_path, sid))
    delete(service, sid)
