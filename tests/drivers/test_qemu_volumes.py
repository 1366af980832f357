"""A volume on a real QEMU Linux guest, through the API: hot-plugged over QMP, read and
written from inside the guest (its shell on the serial console), detached once the
guest released it. One guest for the module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from httpx_ws import connect_ws
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

from novalite.testing import guest_images
from tests.drivers.test_qemu_api import LINUX_BOOT, Cloud
from tests.drivers.test_qemu_consoles import console_url, receive_until

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

pytestmark = pytest.mark.skipif(not hostcheck.check_qemu().usable,
                                reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}")

MARKER = b"NOVALITE-VOLUME-BYTES-4242"
WRITTEN = b"WRITTEN-BY-THE-GUEST-77"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory,
          module_qemu_pids: PidTracker) -> Iterator[Cloud]:
    config = {"compute": {"driver": "qemu", "power_sync_interval": 1.0}}
    cloud = Cloud(tmp_path_factory.mktemp("qemu-volumes"), config, module_qemu_pids)
    try:
        yield cloud
    finally:
        cloud.close()


@pytest.fixture(scope="module")
def vm(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    linux = guest_images.linux_guest()
    root = tmp_path_factory.mktemp("root-disk") / "root.img"
    root.write_bytes(bytes(1024 * 1024))
    image = cloud.upload_linux(linux, str(root), "linux-volumes")
    sid = cloud.boot("volumes-1", image)
    cloud.wait_status(sid, "ACTIVE", LINUX_BOOT)
    cloud.wait_console(sid, guest_images.LINUX_MARKER)
    yield sid
    cloud.c.delete(f"/compute/v2.1/servers/{sid}")


def shell(cloud: Cloud, sid: str, command: bytes, marker: bytes) -> bytes:
    url = console_url(cloud, sid, "serial", "serial")
    with httpx.Client(timeout=30) as client, \
            connect_ws("http" + url.removeprefix("ws"), client) as ws:
        ws.send_bytes(command + b"\r")
        return receive_until(ws, marker, timeout=60)


def test_a_volume_attached_to_a_running_guest_is_read_and_written_inside_it(
        cloud: Cloud, vm: str) -> None:
    c = cloud.c
    pid = c.get("/identity/v3/auth/tokens", headers={
        "X-Subject-Token": cloud.srv.token()}).json()["token"]["project"]["id"]
    volumes = f"/volume/v3/{pid}/volumes"
    r = c.post(volumes, json={"volume": {"size": 1, "name": "data"}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    data = cloud.state / "volumes" / f"volume-{vid}"
    with open(data, "r+b") as f:  # known bytes, as a backend holds them
        f.write(MARKER)
    url = f"/compute/v2.1/servers/{vm}/os-volume_attachments"
    r = c.post(url, json={"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    assert r.json()["volumeAttachment"]["device"] == "/dev/vdb"
    assert c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "in-use"
    assert qemu_process.LaunchConfig.load(cloud.instance_dir(vm)).volumes[0]["volume_id"] \
        == vid
    # Inside the guest: a new disk whose serial is the volume's, holding the bytes.
    out = shell(cloud, vm,
                b"for i in $(seq 100); do [ -b /dev/vdb ] && break; sleep 0.2; done; "
                b"cat /sys/block/vdb/serial; echo; "
                b"dd if=/dev/vdb bs=26 count=1 2>/dev/null | hexdump -C; echo read-$((40+2))",
                b"read-42")
    assert vid[:20].encode() in out
    assert b"NOVALITE-VOLUME-" in out.replace(b"\r", b"")  # hexdump -C's ASCII column
    out = shell(cloud, vm,
                b"printf " + WRITTEN + b" | dd of=/dev/vdb bs=512 seek=1 conv=fsync "
                b"2>/dev/null; sync; echo wrote-$((40+3))", b"wrote-43")
    # Detach: the guest releases the disk (DEVICE_DELETED), the volume is available
    # again and holds what the guest wrote.
    r = c.delete(f"{url}/{vid}")
    assert r.status_code == 202, r.text
    assert c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "available"
    assert qemu_process.LaunchConfig.load(cloud.instance_dir(vm)).volumes == []
    with open(data, "rb") as f:
        f.seek(512)
        assert f.read(len(WRITTEN)) == WRITTEN
    out = shell(cloud, vm, b"[ -b /dev/vdb ] || echo gone-$((40+4))", b"gone-44")
    assert c.delete(f"{volumes}/{vid}").status_code == 202
    assert not data.exists()
