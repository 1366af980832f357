"""The ``lvm`` volume backend through the Cinder API: thin LVs and thin snapshots in
a volume group on a loop-device physical volume the test makes (a sparse file) and
removes again; a deleted volume's data never readable again.

Needs root and Debian's ``lvm2``; the volume tests need a kernel with device-mapper
(``device-mapper`` in ``/proc/misc``). Each is skipped only where this machine truly lacks it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, start
from tests.test_volumes import cinder, project_id_of

pytestmark = pytest.mark.backends("sqlite")  # the storage is under test, not the database

ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
MIB = 1024 * 1024


def run(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=120)
    if check and done.returncode:
        raise AssertionError(f"{argv}: {done.stderr}")
    return done.stdout


def _lacks() -> str | None:
    if os.geteuid() != 0:
        return "not root (LVM needs root)"
    if shutil.which("vgcreate") is None or shutil.which("losetup") is None:
        return "Debian's lvm2 (or losetup) is not installed"
    return None


def _device_mapper() -> bool:
    """Whether the kernel has device-mapper (lvm2 makes ``/dev/mapper/control`` even
    where the kernel has none: /proc/misc is the kernel's own list)."""
    with open("/proc/misc") as f:
        return any(line.split()[1:] == ["device-mapper"] for line in f if line.strip())


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A volume group of its own on a 4 GiB sparse file through a loop device; gone
    (group, PV label, loop device, file) at the end."""
    if reason := _lacks():
        pytest.skip(reason)
    if not _device_mapper():
        pytest.skip("this kernel has no device-mapper (not in /proc/misc; dm_mod cannot be "
                    "loaded here): LVM cannot activate a logical volume")
    image = tmp_path_factory.mktemp("pv") / "pv.img"
    with open(image, "wb") as f:
        f.truncate(4 * 1024 * MIB)
    loop = run("losetup", "--find", "--show", str(image)).strip()
    name = f"nltest-{secrets.token_hex(3)}"
    try:
        run("pvcreate", "-y", loop)
        run("vgcreate", name, loop)
        yield name
    finally:
        run("vgremove", "-f", name, check=False)
        run("pvremove", "-y", loop, check=False)
        run("losetup", "-d", loop, check=False)
        image.unlink()


def test_a_missing_volume_group_stops_the_service_naming_it(tmp_path: Path) -> None:
    if reason := _lacks():
        pytest.skip(reason)
    missing = f"nltest-missing-{secrets.token_hex(3)}"
    with pytest.raises(RuntimeError) as err:
        start(tmp_path, config={"volume": {"backend": "lvm", "lvm_volume_group": missing}})
    assert f"volume group '{missing}' not found" in str(err.value)
    assert f"vgcreate {missing}" in str(err.value)


@pytest.fixture(scope="module")
def srv(group: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start(tmp_path_factory.mktemp("lvm"), config={
        "volume": {"backend": "lvm", "lvm_volume_group": group}})
    try:
        yield s
    finally:
        s.stop()


def lvs(group: str) -> dict[str, dict[str, str]]:
    out = run("lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", "|",
              "-o", "lv_name,lv_size,segtype,origin,pool_lv", group)
    rows = {}
    for line in out.splitlines():
        name, size, segtype, origin, pool = (x.strip() for x in line.split("|"))
        rows[name] = {"size": size, "segtype": segtype, "origin": origin, "pool": pool}
    return rows


def read(path: str, length: int, offset: int = 0) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def made(c: httpx.Client, **body: Any) -> dict[str, Any]:
    r = c.post("/volumes", json={"volume": body})
    assert r.status_code == 202, r.text
    vol: dict[str, Any] = r.json()["volume"]
    assert vol["status"] == "available", vol
    return vol


def test_thin_volumes_snapshots_extend_and_deleted_data_gone(srv: RunningServer,
                                                             group: str) -> None:
    c = cinder(srv, srv.token(), project_id_of(srv, srv.token()))
    pool = f"{group}-pool"
    assert lvs(group)[pool]["segtype"] == "thin-pool"  # made at start

    # An image holding known bytes, 1 MiB in: the volume made from it holds them.
    marker = b"novalite-lvm-" + secrets.token_hex(8).encode()
    payload = b"\0" * MIB + marker + b"\0" * (MIB - len(marker))
    a = srv.client()
    image = a.post("/image/v2/images", json={"name": "lvm-img", "disk_format": "raw",
                                             "container_format": "bare"}).json()
    assert a.put(f"/image/v2/images/{image['id']}/file", content=payload, headers={
        "Content-Type": "application/octet-stream"}).status_code == 204
    vol = made(c, size=1, imageRef=image["id"])
    lv = f"volume-{vol['id']}"
    dev = f"/dev/{group}/{lv}"
    row = lvs(group)[lv]
    assert (row["segtype"], row["pool"], int(row["size"])) == ("thin", pool, 1024 * MIB)
    assert read(dev, len(marker), MIB) == marker

    # A snapshot is a thin snapshot of it; a volume from the snapshot has the bytes.
    r = c.post("/snapshots", json={"snapshot": {"volume_id": vol["id"], "name": "s"}})
    assert r.status_code == 202, r.text
    snap = r.json()["snapshot"]
    assert c.get(f"/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available"
    assert lvs(group)[f"snapshot-{snap['id']}"]["origin"] == lv
    copy = made(c, size=2, snapshot_id=snap["id"])
    copy_dev = f"/dev/{group}/volume-{copy['id']}"
    assert read(copy_dev, len(marker), MIB) == marker
    assert int(lvs(group)[f"volume-{copy['id']}"]["size"]) == 2048 * MIB

    # Extend: the LV grows, the data stays.
    r = c.post(f"/volumes/{vol['id']}/action", json={"os-extend": {"new_size": 3}})
    assert r.status_code == 202, r.text
    assert int(lvs(group)[lv]["size"]) == 3072 * MIB
    assert read(dev, len(marker), MIB) == marker

    # A volume with snapshots cannot go (Cinder's 400); then snapshot and volume go.
    assert c.delete(f"/volumes/{vol['id']}").status_code == 400
    assert c.delete(f"/snapshots/{snap['id']}").status_code == 202
    assert c.delete(f"/volumes/{vol['id']}").status_code == 202
    assert c.get(f"/volumes/{vol['id']}").status_code == 404
    assert lv not in lvs(group) and f"snapshot-{snap['id']}" not in lvs(group)

    # The freed chunks go back to the pool; a new volume never reads the old bytes.
    fresh = made(c, size=3)
    fresh_dev = f"/dev/{group}/volume-{fresh['id']}"
    with open(fresh_dev, "rb") as f:
        while chunk := f.read(4 * MIB):
            assert marker not in chunk
            if f.tell() >= 64 * MIB:
                break
    for v in (copy, fresh):
        assert c.delete(f"/volumes/{v['id']}").status_code == 202
    assert set(lvs(group)) == {pool}
