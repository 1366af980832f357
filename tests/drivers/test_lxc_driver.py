"""The lxc driver against real LXC containers (busybox root filesystems).

Every test runs in its own private LXC path under pytest's tmp dir, and the
``driver`` fixture kills and removes whatever containers are left there, even
when the test fails. Skipped only where the host has no LXC tools or no root.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import threading
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from novalite_drivers.lxc import LxcDriver
from novalite_drivers.lxc.config import cgroup_layout
from novalite_drivers.lxc.layout import cgroup_mounts

from novalite.testing.rootfs import HALT_MARKER, READY_MARKER, build_busybox_rootfs
from novalite.virt.driver import (
    DriverContext,
    ImageInfo,
    InstanceNotFound,
    InstanceSpec,
    NetworkInfo,
    NotSupported,
    PowerState,
    SpawnFailed,
)

_check = LxcDriver.check_host()
pytestmark = [
    pytest.mark.lxc,
    pytest.mark.skipif(not _check.usable, reason=f"lxc driver unusable here: {_check.reason}"),
]


# -- fixtures and helpers ------------------------------------------------------
@pytest.fixture(scope="session")
def rootfs_tarball() -> str:
    """The busybox rootfs tarball, built once into the shared guest-image cache."""
    return build_busybox_rootfs()


def make_image(path: str, disk_format: str = "raw", container_format: str = "bare") -> ImageInfo:
    return ImageInfo(
        id=f"img-{Path(path).stem}-{os.path.getsize(path)}",
        name=Path(path).name,
        disk_format=disk_format,
        container_format=container_format,
        path=path,
        size=os.path.getsize(path),
        properties={"hypervisor_type": "lxc"},
    )


def make_spec(vcpus: int = 1, memory_mb: int = 96) -> InstanceSpec:
    uuid = str(uuidlib.uuid4())
    return InstanceSpec(
        uuid=uuid,
        name=f"test-{uuid[:8]}",
        hostname=f"guest-{uuid[:8]}",
        vcpus=vcpus,
        memory_mb=memory_mb,
        root_gb=1,
    )


def lxc(driver: LxcDriver, tool: str, name: str, *args: str) -> subprocess.CompletedProcess:
    """Run an lxc-* tool against the driver's private LXC path (as an operator would)."""
    return subprocess.run(
        [tool, "-P", driver.lxc_path, "-n", name, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def lxc_state(driver: LxcDriver, name: str) -> tuple[str, int | None]:
    out = lxc(driver, "lxc-info", name, "-s", "-p").stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    pid = fields.get("PID", "").strip()
    return fields.get("State", "").strip(), int(pid) if pid.isdigit() else None


def attach(driver: LxcDriver, name: str, script: str) -> str:
    proc = lxc(driver, "lxc-attach", name, "--", "/bin/sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def make_context(tmp_path: Path, **options: object) -> DriverContext:
    return DriverContext(
        host="lxc-test",
        state_path=str(tmp_path / "state"),
        instances_path=str(tmp_path / "instances"),
        options=options,
    )


def cleanup_lxc_path(lxc_path: str) -> None:
    """Kill and remove every container in a private LXC path (test teardown)."""
    if not os.path.isdir(lxc_path):
        return
    for name in os.listdir(lxc_path):
        for argv in (["lxc-unfreeze"], ["lxc-stop", "-k"], ["lxc-destroy"]):
            subprocess.run(
                [argv[0], "-P", lxc_path, "-n", name, *argv[1:]], capture_output=True, timeout=30
            )
    subprocess.run(["rm", "-rf", lxc_path], check=False)


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[LxcDriver]:
    drv = LxcDriver(make_context(tmp_path))
    try:
        await drv.init_host()
        yield drv
    finally:
        cleanup_lxc_path(drv.lxc_path)


async def wait_console(driver: LxcDriver, uuid: str, marker: str, count: int = 1) -> str:
    with trio.fail_after(10):
        while True:
            text = await driver.get_console_output(uuid)
            if text.count(marker) >= count:
                return text
            await trio.sleep(0.05)


# -- lifecycle -----------------------------------------------------------------
async def test_spawn_starts_busybox_init_and_console_shows_marker(
    driver: LxcDriver, rootfs_tarball: str
) -> None:
    spec = make_spec()
    await driver.spawn(spec, make_image(rootfs_tarball), [])

    assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING
    state, pid = lxc_state(driver, spec.uuid)
    assert state == "RUNNING"
    assert pid and Path(f"/proc/{pid}/comm").read_text().strip() == "init"
    assert await driver.list_instances() == [spec.uuid]
    console = await wait_console(driver, spec.uuid, READY_MARKER)
    assert spec.hostname in console  # lxc.uts.name is the instance's hostname
    # The container lives under the private path, never in the system default one.
    assert Path(driver.lxc_path, spec.uuid, "config").is_file()
    assert not Path("/var/lib/lxc", spec.uuid).exists()


async def test_flavor_limits_are_cgroup_limits_visible_inside(
    driver: LxcDriver, rootfs_tarball: str
) -> None:
    spec = make_spec(vcpus=1, memory_mb=96)
    await driver.spawn(spec, make_image(rootfs_tarball), [])

    if cgroup_layout() == "legacy":
        memory = attach(driver, spec.uuid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
        cpu = attach(driver, spec.uuid, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        assert cpu.split() == ["100000"]
    else:
        memory = attach(driver, spec.uuid, "cat /sys/fs/cgroup/memory.max")
        cpu = attach(driver, spec.uuid, "cat /sys/fs/cgroup/cpu.max")
        assert cpu.split() == ["100000", "100000"]
    assert int(memory) == 96 * 1024 * 1024
    info = await driver.get_info(spec.uuid)
    assert (info.vcpus, info.memory_mb) == (1, 96)


async def test_pause_freezes_and_unpause_thaws(driver: LxcDriver, rootfs_tarball: str) -> None:
    spec = make_spec()
    await driver.spawn(spec, make_image(rootfs_tarball), [])

    await driver.pause(spec.uuid)
    assert lxc_state(driver, spec.uuid)[0] == "FROZEN"
    assert (await driver.get_info(spec.uuid)).state == PowerState.PAUSED
    await driver.unpause(spec.uuid)
    assert lxc_state(driver, spec.uuid)[0] == "RUNNING"
    assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING


async def test_power_off_halts_cleanly_and_power_on_keeps_the_rootfs(
    driver: LxcDriver, rootfs_tarball: str
) -> None:
    spec = make_spec()
    await driver.spawn(spec, make_image(rootfs_tarball), [])
    await wait_console(driver, spec.uuid, READY_MARKER)
    attach(driver, spec.uuid, "echo kept > /root/mark")

    await driver.power_off(spec.uuid, timeout=10)
    assert lxc_state(driver, spec.uuid)[0] == "STOPPED"
    assert (await driver.get_info(spec.uuid)).state == PowerState.SHUTDOWN
    assert HALT_MARKER in await driver.get_console_output(spec.uuid)  # init was asked to halt

    await driver.power_on(spec.uuid)
    assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING
    assert attach(driver, spec.uuid, "cat /root/mark").strip() == "kept"
    await wait_console(driver, spec.uuid, READY_MARKER, count=2)


async def test_reboot_soft_and_hard_restart_init(driver: LxcDriver, rootfs_tarball: str) -> None:
    spec = make_spec()
    await driver.spawn(spec, make_image(rootfs_tarball), [])
    await wait_console(driver, spec.uuid, READY_MARKER)
    _, first = lxc_state(driver, spec.uuid)

    await driver.reboot(spec.uuid, "SOFT")
    state, second = lxc_state(driver, spec.uuid)
    assert state == "RUNNING" and second != first
    console = await wait_console(driver, spec.uuid, READY_MARKER, count=2)
    assert HALT_MARKER in console  # the guest's init ran its shutdown actions

    await driver.reboot(spec.uuid, "HARD")
    state, third = lxc_state(driver, spec.uuid)
    assert state == "RUNNING" and third not in (first, second)
    assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING


async def test_soft_reboot_falls_back_to_hard_when_init_ignores_it(
    tmp_path: Path, rootfs_tarball: str
) -> None:
    # SIGWINCH means nothing to busybox init: the soft reboot times out.
    drv = LxcDriver(make_context(tmp_path, soft_reboot_timeout=1.0, reboot_signal="SIGWINCH"))
    try:
        await drv.init_host()
        spec = make_spec()
        await drv.spawn(spec, make_image(rootfs_tarball), [])
        _, first = lxc_state(drv, spec.uuid)
        with trio.fail_after(10):
            await drv.reboot(spec.uuid, "SOFT")
        state, second = lxc_state(drv, spec.uuid)
        assert state == "RUNNING" and second != first
    finally:
        cleanup_lxc_path(drv.lxc_path)


async def test_snapshot_is_a_rootfs_tarball_that_spawns_again(
    driver: LxcDriver, rootfs_tarball: str, tmp_path: Path
) -> None:
    spec = make_spec()
    await driver.spawn(spec, make_image(rootfs_tarball), [])
    attach(driver, spec.uuid, "echo from-snapshot > /root/mark; rm /bin/vi")

    dest = tmp_path / "snap.tar.gz"
    formats = await driver.snapshot(spec.uuid, str(dest))
    assert formats == ("raw", "bare")
    assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING  # thawed again
    with tarfile.open(dest) as tar:
        names = set(tar.getnames())
    assert {"./sbin/init", "./root/mark"} <= names
    assert "./bin/vi" not in names  # the overlay's whiteout was honoured

    clone = make_spec()
    await driver.spawn(clone, make_image(str(dest), *formats), [])
    assert (await driver.get_info(clone.uuid)).state == PowerState.RUNNING
    assert attach(driver, clone.uuid, "cat /root/mark").strip() == "from-snapshot"
    await wait_console(driver, clone.uuid, READY_MARKER)


async def test_containers_outlive_their_spawner_and_are_adopted(
    tmp_path: Path, rootfs_tarball: str
) -> None:
    context = make_context(tmp_path)
    spec = make_spec()
    # Spawn from a separate Python process that then exits, as the service would.
    script = textwrap.dedent(
        f"""
        import trio
        from novalite.virt.driver import DriverContext, ImageInfo, InstanceSpec
        from novalite_drivers.lxc import LxcDriver

        async def main():
            d = LxcDriver(DriverContext(host="lxc-test", state_path={context.state_path!r},
                                        instances_path={context.instances_path!r}))
            await d.init_host()
            await d.spawn(InstanceSpec(uuid={spec.uuid!r}, name="adopt", hostname="adopt",
                                       vcpus=1, memory_mb=64, root_gb=1),
                          ImageInfo(id="busybox", name="busybox", disk_format="raw",
                                    container_format="bare", path={rootfs_tarball!r}), [])

        trio.run(main)
        """
    )
    lxc_path = os.path.join(context.state_path, "containers")
    try:
        proc = await trio.run_process(
            [sys.executable, "-c", script], capture_stderr=True, check=False
        )
        assert proc.returncode == 0, proc.stderr.decode()

        adopter = LxcDriver(context)
        await adopter.init_host()
        assert await adopter.list_instances() == [spec.uuid]
        assert (await adopter.get_info(spec.uuid)).state == PowerState.RUNNING
        await adopter.destroy(spec.uuid)
        assert await adopter.list_instances() == []
    finally:
        cleanup_lxc_path(lxc_path)


async def test_external_lxc_stop_shows_as_shutdown(
    driver: LxcDriver, rootfs_tarball: str, tmp_path: Path
) -> None:
    spec = make_spec()
    await driver.spawn(spec, make_image(rootfs_tarball), [])

    assert lxc(driver, "lxc-stop", spec.uuid, "-k").returncode == 0
    assert (await driver.get_info(spec.uuid)).state == PowerState.SHUTDOWN
    # A stopped container snapshots too (its overlay is mounted read-only for it).
    await driver.snapshot(spec.uuid, str(tmp_path / "stopped.tar.gz"))
    with tarfile.open(tmp_path / "stopped.tar.gz") as tar:
        assert "./sbin/init" in tar.getnames()
    await driver.power_on(spec.uuid)
    assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING


async def test_concurrent_spawns_share_one_unpacked_base(
    driver: LxcDriver, rootfs_tarball: str, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.tar.gz"
    shutil.copyfile(rootfs_tarball, fresh)
    image = make_image(str(fresh))
    specs = [make_spec() for _ in range(3)]
    async with trio.open_nursery() as nursery:
        for spec in specs:
            nursery.start_soon(driver.spawn, spec, image, [])

    assert await driver.list_instances() == sorted(s.uuid for s in specs)
    for spec in specs:
        assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING
    assert os.listdir(driver.bases.root) == [driver.bases.key(image)]
    # each container writes to its own layer only
    attach(driver, specs[0].uuid, "echo mine > /root/only-here")
    assert attach(driver, specs[1].uuid, "ls /root").strip() == ""


async def test_destroy_leaves_nothing_behind(driver: LxcDriver, rootfs_tarball: str) -> None:
    spec = make_spec()
    await driver.spawn(spec, make_image(rootfs_tarball), [])
    await driver.pause(spec.uuid)  # even a frozen container goes

    await driver.destroy(spec.uuid)
    ls = subprocess.run(["lxc-ls", "-P", driver.lxc_path], capture_output=True, text=True)
    assert ls.stdout.strip() == ""
    assert os.listdir(driver.lxc_path) == []
    assert driver.lxc_path not in Path("/proc/self/mounts").read_text()
    assert await driver.list_instances() == []
    with pytest.raises(InstanceNotFound):
        await driver.get_info(spec.uuid)
    await driver.destroy(spec.uuid)  # idempotent
    await driver.destroy("never-existed")


# -- failures --------------------------------------------------------------------
def _no_container_left(driver: LxcDriver) -> None:
    assert os.listdir(driver.lxc_path) == []
    assert (
        subprocess.run(
            ["lxc-ls", "-P", driver.lxc_path], capture_output=True, text=True
        ).stdout.strip()
        == ""
    )
    # no half-unpacked base either
    assert [e for e in os.listdir(driver.bases.root) if e.startswith(".")] == []


async def test_non_tarball_images_fail_with_spawnfailed(driver: LxcDriver, tmp_path: Path) -> None:
    disk = tmp_path / "disk.qcow2"
    disk.write_bytes(b"QFI\xfb\x00\x00\x00\x03" + bytes(65536))
    for image in (make_image(str(disk), "qcow2"), make_image(str(disk), "raw")):
        with pytest.raises(SpawnFailed, match="tarball"):
            await driver.spawn(make_spec(), image, [])
        _no_container_left(driver)

    hollow = tmp_path / "hollow.tar.gz"
    with tarfile.open(hollow, "w:gz") as tar:
        info = tarfile.TarInfo("./etc")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    with pytest.raises(SpawnFailed, match="init"):
        await driver.spawn(make_spec(), make_image(str(hollow)), [])
    _no_container_left(driver)


async def test_rootfs_that_cannot_start_fails_and_leaves_nothing(
    driver: LxcDriver, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        data = b"not an executable\n"
        info = tarfile.TarInfo("./sbin/init")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    spec = make_spec()
    with pytest.raises(SpawnFailed, match="failed to start"):
        await driver.spawn(spec, make_image(str(broken)), [])
    _no_container_left(driver)
    for mount in cgroup_mounts():  # LXC's cgroups for the container are gone too
        assert not Path(mount, f"lxc.monitor.{spec.uuid}").exists()
        assert not Path(mount, f"lxc.payload.{spec.uuid}").exists()


# -- host and options ------------------------------------------------------------
async def test_host_resources_and_unsupported_suspend(driver: LxcDriver) -> None:
    res = await driver.get_available_resource()
    assert res.hypervisor_type == "lxc"
    assert res.vcpus == os.cpu_count()
    assert res.memory_mb > 0 and res.local_gb > 0
    assert res.hypervisor_version >= 1_000_000
    assert not driver.capabilities["supports_suspend"]
    with pytest.raises(NotSupported):
        await driver.suspend("anything")


async def test_copy_backend_runs_containers_too(tmp_path: Path, rootfs_tarball: str) -> None:
    drv = LxcDriver(make_context(tmp_path, rootfs_backend="copy"))
    try:
        await drv.init_host()
        spec = make_spec()
        await drv.spawn(spec, make_image(rootfs_tarball), [])
        assert (await drv.get_info(spec.uuid)).state == PowerState.RUNNING
        assert Path(drv.lxc_path, spec.uuid, "rootfs", "sbin", "init").is_symlink()
        await drv.destroy(spec.uuid)
        assert os.listdir(drv.lxc_path) == []
    finally:
        cleanup_lxc_path(drv.lxc_path)


def test_rootfs_builder_is_idempotent_and_safe_concurrently(tmp_path: Path) -> None:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(build_busybox_rootfs(cache_dir=tmp_path)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert os.listdir(tmp_path) == [Path(results[0]).name]  # no temporary files left
    assert os.path.getsize(results[0]) < 2 * 1024 * 1024
    with tarfile.open(results[0]) as tar:
        init = tar.getmember("./sbin/init")
        assert init.issym() and tar.getmember("./etc/inittab").isfile()
    assert build_busybox_rootfs(cache_dir=tmp_path) == results[0]


@pytest.fixture
def bridge() -> Iterator[str]:
    """A throwaway Linux bridge (no address, no routes) for the optional networking."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2's ip is not installed")
    name = f"nvlbr{os.getpid() % 100000}"
    made = subprocess.run(["ip", "link", "add", name, "type", "bridge"], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a bridge here: {made.stderr.decode().strip()}")
    try:
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


async def test_optional_bridge_gives_the_guest_its_fixed_address(
    tmp_path: Path, rootfs_tarball: str, bridge: str
) -> None:
    drv = LxcDriver(make_context(tmp_path, bridge=bridge))
    net = NetworkInfo(
        network="private",
        address="10.254.7.5",
        cidr="10.254.7.0/24",
        gateway="10.254.7.1",
        mac="fa:16:3e:00:07:05",
    )
    try:
        await drv.init_host()
        spec = make_spec()
        await drv.spawn(spec, make_image(rootfs_tarball), [net])
        shown = attach(drv, spec.uuid, "ip addr show eth0; ip route")
        assert "10.254.7.5/24" in shown and "fa:16:3e:00:07:05" in shown
        assert "default via 10.254.7.1" in shown
        await drv.destroy(spec.uuid)
    finally:
        cleanup_lxc_path(drv.lxc_path)


async def test_missing_bridge_fails_spawn_cleanly(tmp_path: Path, rootfs_tarball: str) -> None:
    drv = LxcDriver(make_context(tmp_path, bridge="no-such-br0"))
    try:
        await drv.init_host()
        with pytest.raises(SpawnFailed, match="no-such-br0"):
            await drv.spawn(make_spec(), make_image(rootfs_tarball), [])
        assert os.listdir(drv.lxc_path) == []
    finally:
        cleanup_lxc_path(drv.lxc_path)
