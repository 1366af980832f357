"""Real guests (a QEMU guest, an LXC container) on a compute host that is another
machine: a network namespace.

The control process (``--role control``: API, conductor, scheduler, the database) runs
on this machine; the compute process (``--role compute``, the qemu or lxc driver, no
database) runs in a network namespace of this test's own, joined to this machine by a
veth pair, so it reaches the control process only as another machine would: the image
API at the control's address on the link, the message bus through it. RabbitMQ is the
machine's own broker (a virtual host of this run's, :func:`tests.test_rpc.rabbit_vhost`),
which listens on loopback only: a ``socat`` of this test's own relays the link's
address to it (the broker sees a loopback client, as its ``guest`` user requires).

Through the public API, for each driver: the server is built on the remote host from
an image the compute host downloads over HTTP; its console log is read across the bus;
stop and start; the compute process is killed (SIGKILL) and its service goes ``XXX``
while the guest keeps running; started again, it is ``:-)`` and adopts the guest; the
delete removes the guest. Needs root (namespaces, veth), ``ip``, ``nsenter``,
``socat``, and QEMU or LXC.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

from novalite.testing import guest_images
from novalite.testing.server import RunningServer, free_port, start, wait_for
from tests.drivers.test_qemu_api import LINUX_BOOT, Cloud
from tests.test_multi_host import service_states
from tests.test_rpc import BROKER, rabbit_vhost  # noqa: F401 - the fixture

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

DOWN_TIME = 3.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Machine:
    """A network namespace joined to this machine by a veth pair: ``here`` is this
    machine's address on the link, ``there`` the namespace's."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name, self.veth = f"novalite-t-{tag}", f"nlt{tag}"
        third = int(tag[:2], 16)  # 198.18.0.0/15 is for tests of this kind (RFC 2544)
        self.here, self.there = f"198.18.{third}.1", f"198.18.{third}.2"
        _ip("netns", "add", self.name)
        #: Runs a command on the machine: its network only (``ip netns exec`` would also
        #: mount a sysfs of its own on /sys, hiding the cgroup tree LXC needs).
        self.enter = ["nsenter", f"--net=/run/netns/{self.name}", "--"]
        try:
            _ip("link", "add", f"{self.veth}h", "type", "veth", "peer", "name",
                f"{self.veth}n")
            _ip("link", "set", f"{self.veth}n", "netns", self.name)
            _ip("addr", "add", f"{self.here}/30", "dev", f"{self.veth}h")
            _ip("link", "set", f"{self.veth}h", "up")
            _ip("-n", self.name, "addr", "add", f"{self.there}/30", "dev", f"{self.veth}n")
            _ip("-n", self.name, "link", "set", f"{self.veth}n", "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", f"{self.veth}h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def machine() -> Iterator[Machine]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces and veth pairs need root")
    for tool in ("ip", "nsenter", "socat"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    check = hostcheck.check_qemu()
    if not check.usable:
        pytest.skip(f"host lacks QEMU: {check.reason}")
    m = Machine()
    try:
        yield m
    finally:
        m.remove()


@pytest.fixture
def broker_on_link(machine: Machine, rabbit_vhost: str  # noqa: F811
                   ) -> Iterator[str]:
    """The broker's URL as the namespace reaches it: this machine's link address, a
    port relayed (by a socat of this test's, ended by its pid) to the loopback broker."""
    port = free_port()
    relay = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind={machine.here},fork,"
                              f"reuseaddr", f"TCP:{BROKER.rsplit('@', 1)[1]}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        vhost = rabbit_vhost.rsplit("/", 1)[1]
        user = BROKER.rsplit("@", 1)[0]
        yield f"rabbit://{user}@{machine.here}:{port}/{vhost}"
    finally:
        relay.terminate()
        relay.wait(10)


def start_control(state: Path, machine: Machine, transport_url: str) -> RunningServer:
    """The control process, its API on this machine's address on the link."""
    return start(state, config={
        "DEFAULT": {"transport_url": transport_url},
        "api": {"host": machine.here},
        "compute": {"service_down_time": DOWN_TIME}}, extra_env={"NOVALITE_ROLE": "control"})


def start_compute(state: Path, machine: Machine, transport_url: str, control: RunningServer,
                  driver: str, host: str) -> RunningServer:
    """A compute process in the namespace: it knows the control process only by the
    image API's URL and the broker's."""
    return start(state, config={
        "DEFAULT": {"transport_url": transport_url},
        "compute": {"driver": driver, "hosts": [host],
                    "image_api_url": f"{control.url}/image",
                    "service_down_time": DOWN_TIME}},
        timeout=60, extra_env={"NOVALITE_ROLE": "compute"},
        prefix=machine.enter)


def test_a_qemu_guest_on_a_compute_host_in_another_namespace(
        tmp_path: Path, machine: Machine, broker_on_link: str, rabbit_vhost: str,  # noqa: F811
        qemu_pids: PidTracker) -> None:
    control = start_control(tmp_path / "control", machine, rabbit_vhost)
    compute_state = tmp_path / "compute"

    def start_compute_host() -> RunningServer:
        return start_compute(compute_state, machine, broker_on_link, control, "qemu",
                             "remote-q")

    compute: RunningServer | None = None
    cloud = Cloud.around(control, compute_state / "instances", qemu_pids)
    try:
        compute = start_compute_host()
        wait_for(lambda: service_states(control).get("remote-q") == ":-)", timeout=30)
        linux = guest_images.linux_guest()
        root = tmp_path / "root.img"
        root.write_bytes(bytes(1024 * 1024))
        image = cloud.upload_linux(linux, str(root), "linux-remote")
        sid = cloud.boot("far-qemu", image)
        server = cloud.wait_status(sid, "ACTIVE", LINUX_BOOT)
        assert server["OS-EXT-SRV-ATTR:host"] == "remote-q"
        # The guest runs under the compute process's namespace, not this machine's.
        pid = cloud.pid(sid)
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert guest_images.LINUX_MARKER in cloud.wait_console(sid, guest_images.LINUX_MARKER)
        cloud.action(sid, {"os-stop": None}, "SHUTOFF")
        cloud.action(sid, {"os-start": None}, "ACTIVE")
        cloud.wait_console(sid, guest_images.LINUX_MARKER, count=2)
        pid = cloud.pid(sid)

        # The compute machine's service dies; its guest does not.
        compute.stop(signal.SIGKILL)
        wait_for(lambda: service_states(control).get("remote-q") == "XXX",
                 timeout=DOWN_TIME + 15)
        assert qemu_process.is_our_qemu(pid, sid)
        compute = start_compute_host()
        wait_for(lambda: service_states(control).get("remote-q") == ":-)", timeout=30)
        assert any(e.get("event") == "adopted guests" for e in compute.log_events())
        server = cloud.wait_status(sid, "ACTIVE")
        assert server["OS-EXT-STS:power_state"] == 1 and cloud.pid(sid) == pid
        assert guest_images.LINUX_MARKER in cloud.console(sid)

        assert cloud.c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
        wait_for(lambda: cloud.c.get(f"/compute/v2.1/servers/{sid}").status_code == 404,
                 timeout=60, interval=0.2)
        wait_for(lambda: not qemu_process.is_our_qemu(pid, sid), timeout=30)
        for srv in (control, compute):
            errors = [e for e in srv.log_events() if e.get("level") == "error"]
            assert not errors, errors
    finally:
        cloud.c.close()
        if compute is not None:
            compute.stop()
        control.stop()


def test_an_lxc_container_on_a_compute_host_in_another_namespace(
        tmp_path: Path, machine: Machine, broker_on_link: str, rabbit_vhost: str,  # noqa: F811
        ) -> None:
    from novalite_drivers.lxc import LxcDriver

    from novalite.testing.rootfs import IMAGE_PROPERTIES, READY_MARKER, build_busybox_rootfs
    from tests.drivers.test_lxc_api import upload

    check = LxcDriver.check_host()
    if not check.usable:
        pytest.skip(f"lxc driver unusable here: {check.reason}")
    host = "remote-l"
    compute_state = tmp_path / "compute"
    lxc_path = str(compute_state / "drivers" / "lxc" / host / "containers")

    def lxc(tool: str, name: str, *args: str) -> str:
        """An ``lxc-*`` tool on the compute machine (its monitor sockets are there)."""
        return subprocess.run([*machine.enter, tool, "-P", lxc_path,
                               "-n", name, *args], capture_output=True, text=True,
                              timeout=60).stdout

    control = start_control(tmp_path / "control", machine, rabbit_vhost)
    compute: RunningServer | None = None
    c = control.client()
    try:
        compute = start_compute(compute_state, machine, broker_on_link, control, "lxc", host)
        wait_for(lambda: service_states(control).get(host) == ":-)", timeout=30)
        with open(build_busybox_rootfs(), "rb") as f:
            image = upload(c, "busybox-remote", f.read(), IMAGE_PROPERTIES)
        r = c.post("/compute/v2.1/servers", json={"server": {
            "name": "far-lxc", "imageRef": image, "flavorRef": "1"}})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]

        def status(want: str) -> dict[str, Any]:
            def check() -> dict[str, Any] | None:
                server: dict[str, Any] = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
                assert server["status"] != "ERROR", server.get("fault")
                return server if server["status"] == want and \
                    server["OS-EXT-STS:task_state"] is None else None
            return wait_for(check, timeout=60, interval=0.2)  # type: ignore[no-any-return]

        def console() -> str:
            r = c.post(f"/compute/v2.1/servers/{sid}/action",
                       json={"os-getConsoleOutput": {}})
            assert r.status_code == 200, r.text
            return str(r.json()["output"])

        assert status("ACTIVE")["OS-EXT-SRV-ATTR:host"] == host
        wait_for(lambda: READY_MARKER in console(), timeout=60, interval=0.2)
        assert "RUNNING" in lxc("lxc-info", sid, "-s")
        for action, want in (("os-stop", "SHUTOFF"), ("os-start", "ACTIVE")):
            r = c.post(f"/compute/v2.1/servers/{sid}/action", json={action: None})
            assert r.status_code == 202, r.text
            status(want)
        wait_for(lambda: console().count(READY_MARKER) >= 2, timeout=60, interval=0.2)

        compute.stop(signal.SIGKILL)
        wait_for(lambda: service_states(control).get(host) == "XXX", timeout=DOWN_TIME + 15)
        assert "RUNNING" in lxc("lxc-info", sid, "-s")  # the container outlives its service
        compute = start_compute(compute_state, machine, broker_on_link, control, "lxc", host)
        wait_for(lambda: service_states(control).get(host) == ":-)", timeout=30)
        assert status("ACTIVE")["OS-EXT-STS:power_state"] == 1
        assert READY_MARKER in console()

        assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
        wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404,
                 timeout=60, interval=0.2)
        assert not os.path.exists(os.path.join(lxc_path, sid))
        for srv in (control, compute):
            errors = [e for e in srv.log_events() if e.get("level") == "error"]
            assert not errors, errors
    finally:
        c.close()
        if compute is not None:
            compute.stop()
        control.stop()
        if os.path.isdir(lxc_path):  # what a failed test left: ours, by name, in our path
            for name in os.listdir(lxc_path):
                for tool, *args in (["lxc-stop", "-k"], ["lxc-destroy"]):
                    lxc(tool, name, *args)
