"""Rebuild, rescue and crash dumps on a real QEMU guest through the API: one
512-byte boot-sector guest (the cheapest real guest) rebuilt from a second image,
rescued with a boot sector that also reads the guest's own disk, and sent an NMI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu.bootsector import make_boot_sector, make_rescue_boot_sector

from novalite.testing.server import wait_for
from tests.drivers.test_qemu_api import Cloud, wait_no_qemu

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

pytestmark = pytest.mark.skipif(not hostcheck.check_qemu().usable,
                                reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}")

FIRST, SECOND, RESCUE = "NOVALITE-FIRST-IMAGE", "NOVALITE-SECOND-IMAGE", "NOVALITE-RESCUE"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory,
          module_qemu_pids: PidTracker) -> Iterator[Cloud]:
    config = {"compute": {"driver": "qemu", "power_sync_interval": 1.0,
                          "shutdown_timeout": 5.0},
              "qemu": {"power_button_grace": 1.0}}
    cloud = Cloud(tmp_path_factory.mktemp("qemu-rebuild"), config, module_qemu_pids)
    try:
        yield cloud
    finally:
        cloud.close()


def _image(cloud: Cloud, directory: Path, name: str, data: bytes) -> str:
    path = directory / f"{name}.img"
    path.write_bytes(data)
    return cloud.upload(name, str(path), "raw", "bare")


def test_rebuild_rescue_and_crash_dump_on_a_real_guest(cloud: Cloud, tmp_path: Path) -> None:
    first = _image(cloud, tmp_path, "first", make_boot_sector(FIRST))
    second = _image(cloud, tmp_path, "second", make_boot_sector(SECOND))
    rescue = _image(cloud, tmp_path, "rescue", make_rescue_boot_sector(RESCUE))
    sid = cloud.boot("rebuilt", first)
    before = cloud.wait_status(sid, "ACTIVE")
    cloud.wait_console(sid, FIRST, timeout=60)
    old_pid = cloud.pid(sid)

    # rebuild: a new QEMU on a new overlay of the second image; same id and addresses
    after = cloud.action(sid, {"rebuild": {"imageRef": second}}, "ACTIVE", timeout=90)
    assert after["image"]["id"] == second and after["addresses"] == before["addresses"]
    out = cloud.wait_console(sid, SECOND, timeout=60)
    assert FIRST not in out  # the old disk (and its console) is gone
    assert cloud.pid(sid) != old_pid

    # rescue: the rescue image boots and reads the guest's own disk, the second disk
    r = cloud.c.post(f"/compute/v2.1/servers/{sid}/action",
                     json={"rescue": {"rescue_image_ref": rescue}})
    assert r.status_code == 200, r.text
    cloud.wait_status(sid, "RESCUE", timeout=90)
    out = cloud.wait_console(sid, RESCUE, timeout=60)
    wait_for(lambda: SECOND in cloud.console(sid).split(RESCUE, 1)[-1], 30)
    assert os.path.exists(os.path.join(cloud.instance_dir(sid), "disk.rescue.qcow2"))

    # trigger_crash_dump: QMP inject-nmi into the rescued guest
    r = cloud.c.post(f"/compute/v2.1/servers/{sid}/action", json={"trigger_crash_dump": None},
                     headers={"OpenStack-API-Version": "compute 2.17"})
    assert r.status_code == 202, r.text

    # unrescue: the guest's own disk boots again, the rescue disk is gone
    cloud.action(sid, {"unrescue": None}, "ACTIVE", timeout=90)
    cloud.wait_console(sid, SECOND, count=2, timeout=60)
    assert not os.path.exists(os.path.join(cloud.instance_dir(sid), "disk.rescue.qcow2"))
    actions = cloud.c.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()
    assert [a["action"] for a in actions["instanceActions"]][:4] == [
        "unrescue", "trigger_crash_dump", "rescue", "rebuild"]

    assert cloud.c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    wait_for(lambda: cloud.c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 30)
    wait_no_qemu(cloud, sid)
