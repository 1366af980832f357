"""The qemu and kvm drivers against real QEMU processes: boot, every lifecycle action,
adoption, failures. Most tests boot the 512-byte boot sector; one boots Linux."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import uuid as uuidlib

import pytest
import trio
from novalite_drivers.qemu import KvmDriver, acpi, hostcheck, make_boot_sector
from novalite_drivers.qemu import process as qemu_process
from novalite_drivers.qemu.disks import qemu_img
from novalite_drivers.qemu.qmp import QmpClient, QmpError, qmp_execute

from novalite.testing import guest_images
from novalite.virt.driver import (
    ImageInfo,
    InstanceNotFound,
    InstanceSpec,
    NetworkInfo,
    PowerState,
    SpawnFailed,
)

NET = NetworkInfo(network="private", address="10.20.0.5", cidr="10.20.0.0/24",
                  gateway="10.20.0.1", mac="fa:16:3e:00:00:05", ssh_host_port=None)


def make_spec(memory_mb: int = 32, **kw) -> InstanceSpec:
    uuid = str(uuidlib.uuid4())
    fields = dict(uuid=uuid, name=f"vm-{uuid[:8]}", hostname=f"vm-{uuid[:8]}", vcpus=1,
                  memory_mb=memory_mb, root_gb=0)
    fields.update(kw)
    return InstanceSpec(**fields)


def disk_image(path: str, disk_format: str = "raw", **kw) -> ImageInfo:
    return ImageInfo(id="img", name=os.path.basename(path), disk_format=disk_format,
                     container_format="bare", path=path, **kw)


async def wait_console(driver, uuid: str, marker: str, count: int = 1,
                       timeout: float = 30.0) -> str:
    with trio.fail_after(timeout):
        while True:
            out = await driver.get_console_output(uuid)
            if out.count(marker) >= count:
                return out
            await trio.sleep(0.1)


def instance_dir(driver, uuid: str) -> str:
    return os.path.join(driver.context.instances_path, uuid)


def qemu_pid(driver, uuid: str) -> int:
    pid = qemu_process.live_pid(instance_dir(driver, uuid), uuid)
    assert pid is not None, "no live QEMU process for the guest"
    return pid


async def qmp_status(driver, uuid: str) -> str:
    path = os.path.join(instance_dir(driver, uuid), qemu_process.QMP_SOCKET)
    return (await qmp_execute(path, "query-status"))["status"]


async def power_button(driver, uuid: str) -> bool | None:
    path = os.path.join(instance_dir(driver, uuid), qemu_process.QMP_SOCKET)
    async with await QmpClient.connect(path) as qmp:
        return await acpi.power_button_enabled(qmp)


def assert_gone(driver, uuid: str, pid: int) -> None:
    assert not qemu_process.is_our_qemu(pid, uuid)
    assert not os.path.exists(f"/proc/{pid}") or not os.path.exists(instance_dir(driver, uuid))
    assert not os.path.exists(instance_dir(driver, uuid))


def test_boot_sector_is_512_bytes_with_signature():
    sector = make_boot_sector("hello")
    assert len(sector) == 512 and sector[-2:] == b"\x55\xaa" and b"hello\r\n\0" in sector
    with pytest.raises(ValueError):
        make_boot_sector("x" * 600)


async def test_boot_sector_guest_through_every_lifecycle_action(make_driver, boot_sector,
                                                                tmp_path):
    driver = make_driver(soft_reboot_timeout=30, power_button_grace=0.5)
    await driver.init_host()
    spec = make_spec(root_gb=1, ephemeral_gb=1, swap_mb=16)
    await driver.spawn(spec, disk_image(boot_sector), [NET])
    uuid = spec.uuid
    pid = qemu_pid(driver, uuid)
    assert os.getsid(pid) != os.getsid(0), "QEMU must run in its own session"
    assert await driver.list_instances() == [uuid]
    info = await driver.get_info(uuid)
    assert (info.state, info.vcpus, info.memory_mb) == (PowerState.RUNNING, 1, 32)
    await wait_console(driver, uuid, guest_images.BOOT_MARKER)
    disk = os.path.join(instance_dir(driver, uuid), "disk.qcow2")
    assert "virtual size: 1 GiB" in await qemu_img("info", "-U", disk)

    await driver.pause(uuid)
    assert await qmp_status(driver, uuid) == "paused"
    assert (await driver.get_info(uuid)).state == PowerState.PAUSED
    await driver.unpause(uuid)
    assert await qmp_status(driver, uuid) == "running"

    await driver.reboot(uuid, "HARD")
    await wait_console(driver, uuid, guest_images.BOOT_MARKER, count=2)
    # The boot sector never enables the ACPI power button, so a press would be lost:
    # SOFT reboot resets it once it has been up power_button_grace, not after 30 s.
    assert await power_button(driver, uuid) is False
    began = trio.current_time()
    await driver.reboot(uuid, "SOFT")
    assert trio.current_time() - began < 5
    await wait_console(driver, uuid, guest_images.BOOT_MARKER, count=3)
    assert qemu_pid(driver, uuid) == pid

    snap = str(tmp_path / "snap.qcow2")
    assert await driver.snapshot(uuid, snap) == ("qcow2", "bare")
    assert "file format: qcow2" in await qemu_img("info", snap)
    assert "backing file" not in await qemu_img("info", snap)
    assert await qmp_status(driver, uuid) == "running"

    began = trio.current_time()
    await driver.power_off(uuid, timeout=30)
    assert trio.current_time() - began < 5, "no ACPI: stopped hard without waiting 30 s"
    assert not qemu_process.is_our_qemu(pid, uuid)
    assert (await driver.get_info(uuid)).state == PowerState.SHUTDOWN
    assert (await driver.get_console_output(uuid)).count(guest_images.BOOT_MARKER) == 3
    await driver.power_on(uuid)
    pid = qemu_pid(driver, uuid)
    assert "dhcpstart=10.20.0.5" in open(f"/proc/{pid}/cmdline").read()
    assert (await driver.get_info(uuid)).state == PowerState.RUNNING
    await wait_console(driver, uuid, guest_images.BOOT_MARKER, count=4)

    await driver.suspend(uuid)
    assert not qemu_process.is_our_qemu(pid, uuid)
    assert (await driver.get_info(uuid)).state == PowerState.SUSPENDED
    await driver.resume(uuid)
    pid = qemu_pid(driver, uuid)
    assert await qmp_status(driver, uuid) == "running"
    assert (await driver.get_info(uuid)).state == PowerState.RUNNING

    await driver.destroy(uuid)
    assert_gone(driver, uuid, pid)
    await driver.destroy(uuid)  # idempotent
    with pytest.raises(InstanceNotFound):
        await driver.get_info(uuid)
    assert driver.events == [], "the driver's own actions are not reported as events"


async def test_adoption_and_guest_killed_behind_the_drivers_back(make_driver, boot_sector):
    first = make_driver()
    await first.init_host()
    spec = make_spec()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ssh_port = probe.getsockname()[1]
    net = dataclasses.replace(NET, ssh_host_port=ssh_port)
    await first.spawn(spec, disk_image(boot_sector), [net])
    # The host port is forwarded to the guest's port 22.
    stream = await trio.open_tcp_stream("127.0.0.1", ssh_port)
    await stream.aclose()
    await first.cleanup_host()  # the service stops; the guest keeps running
    pid = qemu_pid(first, spec.uuid)

    second = make_driver()
    await second.init_host()
    assert await second.list_instances() == [spec.uuid]
    assert (await second.get_info(spec.uuid)).state == PowerState.RUNNING
    await wait_console(second, spec.uuid, guest_images.BOOT_MARKER)

    os.kill(pid, signal.SIGKILL)
    with trio.fail_after(10):
        while not second.events:
            await trio.sleep(0.05)
    assert second.events[0].uuid == spec.uuid
    assert second.events[0].state == PowerState.SHUTDOWN
    assert (await second.get_info(spec.uuid)).state == PowerState.SHUTDOWN
    await second.destroy(spec.uuid)
    assert not os.path.exists(instance_dir(second, spec.uuid))


async def test_spawn_failures_leave_nothing_behind(make_driver, tmp_path):
    driver = make_driver()
    await driver.init_host()
    bogus = tmp_path / "bogus.qcow2"
    bogus.write_bytes(b"not a qcow2 image" * 100)
    spec = make_spec()
    with pytest.raises(SpawnFailed, match="not a valid qcow2 image"):
        await driver.spawn(spec, disk_image(str(bogus), "qcow2"), [NET])
    assert not os.path.exists(instance_dir(driver, spec.uuid))

    with pytest.raises(SpawnFailed, match="disk_format"):
        await driver.spawn(make_spec(), disk_image(str(bogus), "vmdk"), [NET])

    # QEMU itself refuses (unknown machine type): its message is in the fault.
    sector = tmp_path / "boot.img"
    sector.write_bytes(make_boot_sector("x"))
    broken = make_driver(machine_type="no-such-machine")
    spec = make_spec()
    with pytest.raises(SpawnFailed, match="unsupported machine type"):
        await broken.spawn(spec, disk_image(str(sector)), [NET])
    assert os.listdir(driver.context.instances_path) == []

    missing = make_driver(qemu_binary="/nonexistent/qemu-system-x86_64")
    with pytest.raises(SpawnFailed, match="not found"):
        await missing.spawn(make_spec(), disk_image(str(sector)), [NET])
    assert os.listdir(driver.context.instances_path) == []


async def test_linux_guest_boots_and_powers_itself_off_on_acpi(make_driver, linux_guest,
                                                              tmp_path):
    root = tmp_path / "empty.raw"
    root.write_bytes(bytes(1024 * 1024))
    image = disk_image(str(root), kernel_path=linux_guest.kernel,
                       ramdisk_path=linux_guest.initrd,
                       properties={"os_command_line": linux_guest.append})
    driver = make_driver()
    await driver.init_host()
    spec = make_spec(memory_mb=128)
    await driver.spawn(spec, image, [NET])
    console = await wait_console(driver, spec.uuid, guest_images.LINUX_MARKER, timeout=60)
    # DHCP handed the guest exactly the address novalite allocated.
    assert f"{guest_images.IP_MARKER} 10.20.0.5/24 router 10.20.0.1" in console
    pid = qemu_pid(driver, spec.uuid)
    # The init loads the ACPI button driver before it prints the marker.
    assert await power_button(driver, spec.uuid) is True
    # The ACPI power button pressed behind the driver's back: the guest powers off,
    # and the driver notices without polling.
    path = os.path.join(instance_dir(driver, spec.uuid), qemu_process.QMP_SOCKET)
    with trio.fail_after(20):
        while not driver.events:
            # pressed again if acpid had not yet opened the button when first pressed
            with contextlib.suppress(QmpError):
                await qmp_execute(path, "system_powerdown")
            with trio.move_on_after(2):
                while not driver.events:
                    await trio.sleep(0.05)
    assert driver.events[-1].state == PowerState.SHUTDOWN
    assert "guest-shutdown" in driver.events[-1].reason
    assert not qemu_process.is_our_qemu(pid, spec.uuid)
    assert (await driver.get_info(spec.uuid)).state == PowerState.SHUTDOWN
    await driver.destroy(spec.uuid)


@pytest.fixture
def need_kvm() -> None:
    check = hostcheck.check_kvm()
    if not check.usable:
        pytest.skip(f"KVM unusable here: {check.reason}")


async def test_kvm_driver_boots_boot_sector(make_driver, boot_sector, need_kvm):
    driver = make_driver(KvmDriver)
    await driver.init_host()
    spec = make_spec()
    await driver.spawn(spec, disk_image(boot_sector), [NET])
    pid = qemu_pid(driver, spec.uuid)
    assert "accel=kvm" in open(f"/proc/{pid}/cmdline").read()
    await wait_console(driver, spec.uuid, guest_images.BOOT_MARKER, timeout=60)
    await driver.destroy(spec.uuid)
    assert not qemu_process.is_our_qemu(pid, spec.uuid)


async def test_kvm_driver_refuses_linux_on_kvm_pvm(make_driver, tmp_path, need_kvm):
    if not hostcheck.is_kvm_pvm():
        pytest.skip("/dev/kvm is not kvm_pvm here: Linux guests run under KVM")
    assert not hostcheck.kvm_runs_linux().usable
    root = tmp_path / "root.raw"
    root.write_bytes(bytes(512))
    driver = make_driver(KvmDriver)
    spec = make_spec()
    with pytest.raises(SpawnFailed, match="kvm_pvm"):
        await driver.spawn(spec, disk_image(str(root), properties={"os_type": "linux"}), [NET])
    assert not os.path.exists(instance_dir(driver, spec.uuid))


async def test_available_resource_reports_the_real_host(make_driver):
    driver = make_driver()
    await driver.init_host()
    res = await driver.get_available_resource()
    assert res.vcpus == os.cpu_count() and res.memory_mb > 256 and res.local_gb > 0
    assert res.hypervisor_type == "qemu" and res.hypervisor_version >= 7_000_000


def test_console_log_stays_under_its_cap(tmp_path):
    log = str(tmp_path / "console.log")
    for i in range(200):
        qemu_process.append_capped(log, f"line {i:04d}\n".encode(), max_bytes=1000)
        assert os.path.getsize(log) <= 1000
    assert qemu_process.read_tail(log, 1000).endswith("line 0199\n")
    qemu_process.append_capped(log, b"x" * 5000, max_bytes=1000)
    assert os.path.getsize(log) == 500


def test_dhcp_leases_exactly_the_allocated_address():
    nic = qemu_process.NicConfig("10.0.0.3", "10.0.0.0/24", "10.0.0.1", "fa:16:3e:00:00:01", 2222)
    option = qemu_process.netdev_option(nic, "vm1")
    assert "net=10.0.0.0/24,host=10.0.0.1,dhcpstart=10.0.0.3,dns=10.0.0.2" in option
    assert option.endswith("hostfwd=tcp:127.0.0.1:2222-10.0.0.3:22")


_SPAWN_THEN_DIE = """
import os, signal, sys, trio
from novalite.virt.driver import DriverContext, ImageInfo, InstanceSpec, NetworkInfo
from novalite_drivers.qemu import QemuDriver

async def main():
    driver = QemuDriver(DriverContext("h", sys.argv[1], sys.argv[2]))
    await driver.init_host()
    await driver.spawn(InstanceSpec(sys.argv[3], "vm", "vm", 1, 32, 0),
                       ImageInfo("i", "i", "raw", "bare", sys.argv[4]),
                       [NetworkInfo("n", "10.1.0.9", "10.1.0.0/24", "10.1.0.1", "fa:16:3e:0:0:9")])
    os.kill(os.getpid(), signal.SIGKILL)

trio.run(main)
"""


async def test_guest_survives_kill_9_of_the_service_and_is_adopted(make_driver, boot_sector,
                                                                  tmp_path):
    import sys

    driver = make_driver()
    spec = make_spec()
    result = await trio.run_process(
        [sys.executable, "-c", _SPAWN_THEN_DIE, str(tmp_path / "state"),
         driver.context.instances_path, spec.uuid, boot_sector],
        check=False, capture_stderr=True,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    await driver.init_host()
    assert await driver.list_instances() == [spec.uuid]
    assert (await driver.get_info(spec.uuid)).state == PowerState.RUNNING
    await wait_console(driver, spec.uuid, guest_images.BOOT_MARKER)
    await driver.destroy(spec.uuid)
    assert not os.path.exists(instance_dir(driver, spec.uuid))


async def test_destroy_removes_a_kept_copy_and_its_exports(make_driver, tmp_path):
    """A cold move that failed on its destination leaves the source only its kept copy,
    exported over NBD: deleting the server ends the export and removes the copy."""
    from novalite_drivers.qemu import coldmove

    def running(pid: int) -> bool:  # a zombie (not reaped by PID 1 here) has ended
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    driver = make_driver()
    uuid = "00000000-0000-4000-8000-00000000c01d"
    kept = os.path.join(driver.context.instances_path, uuid + "_resize")
    os.makedirs(kept)
    with open(os.path.join(kept, "disk.qcow2"), "wb") as f:
        f.truncate(1 << 20)
    exports = await coldmove.export_disks(kept, [("disk.qcow2", "raw")], "127.0.0.1")
    with open(os.path.join(kept, "nbd-disk.qcow2.pid")) as f:
        pid = int(f.read())
    try:
        assert exports[0]["port"] and running(pid)
        await driver.destroy(uuid)
        assert not os.path.exists(kept)
        with trio.fail_after(10):
            while running(pid):
                await trio.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
