"""Fixtures for the driver tests: real QEMU processes, always cleaned up, and one
``novalite serve`` with the lxc driver that the LXC modules share."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process
from novalite_drivers.qemu.driver import QemuDriver

from novalite.testing import guest_images
from novalite.virt.driver import DriverContext, LifecycleEvent


@pytest.fixture
def need_qemu() -> None:
    check = hostcheck.check_qemu()
    if not check.usable:
        pytest.skip(f"host lacks QEMU: {check.reason}")


@pytest.fixture(scope="session")
def image_cache() -> str:
    return guest_images.cache_dir()


@pytest.fixture(scope="session")
def boot_sector(image_cache: str) -> str:
    return guest_images.boot_sector_image(image_cache)


@pytest.fixture(scope="session")
def linux_guest(image_cache: str) -> guest_images.LinuxGuest:
    return guest_images.linux_guest(image_cache)


class PidTracker:
    """Remembers every QEMU pid a test's drivers start, to kill them at teardown."""

    def __init__(self) -> None:
        self.roots: list[str] = []
        self.pids: dict[int, str] = {}

    def scan(self) -> None:
        for root in self.roots:
            if not os.path.isdir(root):
                continue
            for uuid in os.listdir(root):
                pid = qemu_process.read_pid(os.path.join(root, uuid))
                if pid is not None and qemu_process.is_our_qemu(pid, uuid):
                    self.pids[pid] = uuid

    def kill_all(self) -> None:
        self.scan()
        for pid, uuid in self.pids.items():
            if qemu_process.is_our_qemu(pid, uuid):  # never a pid we did not start
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def qemu_pids() -> Iterator[PidTracker]:
    tracker = PidTracker()
    try:
        yield tracker
    finally:
        tracker.kill_all()


@pytest.fixture(scope="module")
def module_qemu_pids() -> Iterator[PidTracker]:
    """A :class:`PidTracker` for a module's services (their ``instances`` dirs)."""
    tracker = PidTracker()
    try:
        yield tracker
    finally:
        tracker.kill_all()


DriverFactory = Callable[..., QemuDriver]


@pytest.fixture
def make_driver(tmp_path, qemu_pids: PidTracker, need_qemu) -> DriverFactory:
    """``make_driver(cls=QemuDriver, **options)`` -> driver on this test's instances dir.

    Each driver has ``.events``, the LifecycleEvents it emitted.
    """
    instances = str(tmp_path / "instances")
    qemu_pids.roots.append(instances)

    def factory(cls: type[QemuDriver] = QemuDriver, **options) -> QemuDriver:
        events: list[LifecycleEvent] = []
        context = DriverContext(
            host="test-host", state_path=str(tmp_path / "state"), instances_path=instances,
            options={**cls.option_defaults, **options}, emit_event=events.append,
        )
        driver = cls(context)
        driver.events = events  # type: ignore[attr-defined]
        return driver

    return factory


@pytest.fixture(scope="package")
def lxc_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``novalite serve`` with the lxc driver for every LXC API module (its start is
    the slow part); stopped, and its private LXC path emptied, after the package."""
    from tests.drivers.test_lxc_api import Service

    svc = Service(tmp_path_factory.mktemp("lxc-api"))
    try:
        yield svc
    finally:
        svc.close_client()
        svc.srv.stop()
        svc.cleanup()
