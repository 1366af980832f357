"""A volume on a real QEMU Linux guest, through the API: hot-plugged over QMP, read and
written from inside the guest (its shell on the serial console), detached once the
guest released it; moved to a second guest that boots from a volume made from an
image; extended while attached; kept (``available``, with its data) when the server
it booted goes. Two guests for the module: ``vm`` and the boot-from-volume one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from httpx_ws import connect_ws
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

from novalite.testing import guest_images
from novalite.testing.server import wait_for
from tests.drivers.test_qemu_api import LINUX_BOOT, Cloud
from tests.drivers.test_qemu_consoles import console_url, receive_until

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

pytestmark = pytest.mark.skipif(not hostcheck.check_qemu().usable,
                                reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}")

MARKER = b"NOVALITE-VOLUME-BYTES-4242"
WRITTEN = b"WRITTEN-BY-THE-GUEST-77"
#: At the start of the image's root data: the boot-from-volume guest finds it on /dev/vda.
ROOT_MARKER = b"NOVALITE-IMAGE-ROOT-DATA-5151"
MOVED = b"MOVED-BETWEEN-GUESTS-6161"


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
    root.write_bytes(ROOT_MARKER + bytes(1024 * 1024 - len(ROOT_MARKER)))
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


def volumes_url(cloud: Cloud) -> str:
    """The volumes collection of the admin project the cloud's client acts in."""
    pid = cloud.c.get("/identity/v3/auth/tokens", headers={
        "X-Subject-Token": cloud.srv.token()}).json()["token"]["project"]["id"]
    return f"/volume/v3/{pid}/volumes"


def new_volume(cloud: Cloud, volumes: str, name: str) -> str:
    """A blank 1 GiB volume; returns its id."""
    r = cloud.c.post(volumes, json={"volume": {"size": 1, "name": name}})
    assert r.status_code == 202, r.text
    return str(r.json()["volume"]["id"])


def test_a_volume_attached_to_a_running_guest_is_read_and_written_inside_it(
        cloud: Cloud, vm: str) -> None:
    c = cloud.c
    volumes = volumes_url(cloud)
    vid = new_volume(cloud, volumes, "data")
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


def test_boot_from_volume_move_a_volume_between_guests_extend_it_and_keep_the_root(
        cloud: Cloud, vm: str) -> None:
    """A volume made from the image boots a second guest (its root disk holds the
    image's bytes); a volume the first guest wrote is read by the second; an attached
    volume extended shows its new size in the guest; the server's deletion
    (``delete_on_termination`` false) leaves its root volume ``available`` with what
    the guest wrote on it."""
    c = cloud.c
    volumes = volumes_url(cloud)
    image = c.get("/image/v2/images", params={"name": "linux-volumes"}).json()["images"][0]
    r = c.post(volumes, json={"volume": {"size": 1, "imageRef": image["id"], "name": "root"}})
    assert r.status_code == 202, r.text
    root = r.json()["volume"]
    assert root["status"] == "available" and root["bootable"] == "true"
    bfv = cloud.boot("volumes-bfv", "", block_device_mapping_v2=[{
        "boot_index": 0, "uuid": root["id"], "source_type": "volume",
        "destination_type": "volume", "delete_on_termination": False}])
    # Meanwhile the first guest writes known bytes on a data volume, which is detached.
    vid = new_volume(cloud, volumes, "moving")
    url = f"/compute/v2.1/servers/{vm}/os-volume_attachments"
    r = c.post(url, json={"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    shell(cloud, vm, b"for i in $(seq 100); do [ -b /dev/vdb ] && break; sleep 0.2; done; "
                     b"printf " + MOVED + b" | dd of=/dev/vdb conv=fsync 2>/dev/null; "
                     b"sync; echo moved-$((40+5))", b"moved-45")
    assert c.delete(f"{url}/{vid}").status_code == 202
    assert c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "available"

    # The second guest booted from the volume: the image's bytes are its /dev/vda.
    server = cloud.wait_status(bfv, "ACTIVE", LINUX_BOOT)
    assert [v["id"] for v in server["os-extended-volumes:volumes_attached"]] == [root["id"]]
    cloud.wait_console(bfv, guest_images.LINUX_MARKER)
    out = shell(cloud, bfv, b"dd if=/dev/vda bs=29 count=1 2>/dev/null; echo; "
                            b"printf KEPT-BY-THE-ROOT | dd of=/dev/vda bs=4096 seek=1 "
                            b"conv=fsync 2>/dev/null; sync; echo root-$((40+6))", b"root-46")
    assert ROOT_MARKER in out
    assert ROOT_MARKER.decode() in cloud.console(bfv)

    # The data volume, attached there: the first guest's bytes.
    url2 = f"/compute/v2.1/servers/{bfv}/os-volume_attachments"
    r = c.post(url2, json={"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    out = shell(cloud, bfv, b"for i in $(seq 100); do [ -b /dev/vdb ] && break; sleep 0.2; "
                            b"done; dd if=/dev/vdb bs=25 count=1 2>/dev/null; echo; "
                            b"cat /sys/block/vdb/size; echo read-$((40+7))", b"read-47")
    assert MOVED in out and b"2097152" in out  # 1 GiB in 512-byte sectors

    # Extended while attached (Cinder 3.42): the guest sees 2 GiB.
    r = c.post(f"{volumes}/{vid}/action", json={"os-extend": {"new_size": 2}},
               headers={"OpenStack-API-Version": "volume 3.42"})
    assert r.status_code == 202, r.text
    assert c.get(f"{volumes}/{vid}").json()["volume"]["size"] == 2
    out = shell(cloud, bfv, b"for i in $(seq 50); do [ $(cat /sys/block/vdb/size) = 4194304 "
                            b"] && break; sleep 0.2; done; cat /sys/block/vdb/size; "
                            b"echo size-$((40+8))", b"size-48")
    assert b"4194304" in out
    assert c.delete(f"{url2}/{vid}").status_code == 202

    # The server goes; its root volume stays (delete_on_termination false), with the
    # image's bytes and what the guest wrote.
    assert c.delete(f"/compute/v2.1/servers/{bfv}").status_code == 204
    wait_for(lambda: c.get(f"/compute/v2.1/servers/{bfv}").status_code == 404, 30)
    shown = c.get(f"{volumes}/{root['id']}").json()["volume"]
    assert shown["status"] == "available" and shown["attachments"] == []
    with open(cloud.state / "volumes" / f"volume-{root['id']}", "rb") as f:
        data = f.read(4096 + 16)
    assert data.startswith(ROOT_MARKER) and data[4096:] == b"KEPT-BY-THE-ROOT"
    for v in (vid, root["id"]):
        assert c.delete(f"{volumes}/{v}").status_code == 202


def test_a_disk_a_killed_attach_left_in_the_guest_is_removed_at_restart(
        cloud: Cloud, vm: str) -> None:
    """The service killed (SIGKILL) after QEMU hot-plugged a volume and before anything
    recorded it (the attach's answer never came): at the restart the volume is
    ``available``, so the adopted guest must not keep the disk. It is unplugged, the
    log says so, and the volume attaches and detaches again (QEMU's node is free)."""
    import os
    import signal

    import trio
    from novalite_drivers.qemu import volumes as qemu_volumes

    volumes = volumes_url(cloud)
    vid = new_volume(cloud, volumes, "interrupted")
    cloud.srv.stop(signal.SIGKILL)
    # What the killed attach had done: QEMU has the disk, nothing else knows of it.
    trio.run(qemu_volumes.hot_plug,
             os.path.join(cloud.instance_dir(vm), qemu_process.QMP_SOCKET),
             {"volume_id": vid, "path": str(cloud.state / "volumes" / f"volume-{vid}")})
    cloud.restart()
    c = cloud.c
    assert c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "available"
    removed = [e for e in cloud.srv.log_events()
               if e.get("event") == "removed volumes an interrupted attach left in the guest"]
    assert removed and removed[-1]["volumes"] == [vid], removed
    shell(cloud, vm, b"[ -b /dev/vdb ] || echo nodisk-$((40+5))", b"nodisk-45")
    url = f"/compute/v2.1/servers/{vm}/os-volume_attachments"
    r = c.post(url, json={"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    assert c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "in-use"
    assert c.delete(f"{url}/{vid}").status_code == 202
    assert c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "available"
    assert c.delete(f"{volumes}/{vid}").status_code == 202


def test_a_disk_an_attach_killed_before_its_record_left_is_detached_at_restart(
        cloud: Cloud, vm: str) -> None:
    """The narrower window: QEMU has the disk and launch.json records it, but the
    service was killed (SIGKILL) before the database said ``in-use``, so the records
    still say ``attaching``. At the restart the attach is undone by the compute host
    (the guest cannot be known to lack the disk): the volume ends ``available``, the
    guest has no ``/dev/vdb``, and it attaches again."""
    import signal
    import sqlite3

    volumes = volumes_url(cloud)
    vid = new_volume(cloud, volumes, "attach-killed-late")
    url = f"/compute/v2.1/servers/{vm}/os-volume_attachments"
    r = cloud.c.post(url, json={"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    shell(cloud, vm, b"for i in $(seq 100); do [ -b /dev/vdb ] && break; sleep 0.2; done; "
          b"[ -b /dev/vdb ] && echo disk-$((40+2))", b"disk-42")
    cloud.srv.stop(signal.SIGKILL)
    # What the kill leaves: the guest and launch.json have the disk, the records
    # are still those the attach wrote first.
    with sqlite3.connect(cloud.state / "novalite.sqlite") as conn:
        conn.execute("UPDATE volumes SET status='attaching' WHERE id=?", (vid,))
        conn.execute("UPDATE volume_attachments SET attach_status='attaching', "
                     "attached_at=NULL WHERE volume_id=?", (vid,))
    cloud.restart()
    c = cloud.c
    wait_for(lambda: c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "available",
             timeout=60, interval=0.5)
    assert c.get(f"{volumes}/{vid}").json()["volume"]["attachments"] == []
    assert any(e.get("event") == "interrupted detach finished" and e.get("volume") == vid
               for e in cloud.srv.log_events())
    shell(cloud, vm, b"[ -b /dev/vdb ] || echo nodisk-$((40+6))", b"nodisk-46")
    assert qemu_process.LaunchConfig.load(cloud.instance_dir(vm)).volumes == []
    r = c.post(url, json={"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    assert c.delete(f"{url}/{vid}").status_code == 202
    assert c.get(f"{volumes}/{vid}").json()["volume"]["status"] == "available"
    assert c.delete(f"{volumes}/{vid}").status_code == 202
