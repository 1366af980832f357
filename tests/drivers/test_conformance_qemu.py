"""The conformance kit against the qemu and kvm drivers, booting the 512-byte boot sector.

Skipped only where the host lacks QEMU (or, for kvm, a usable /dev/kvm). The boot
sector ignores ACPI, so power-off and SOFT reboot use short timeouts and fall back
to a hard stop/reset, as the contract allows.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from novalite_drivers.qemu import KvmDriver, QemuDriver
from novalite_drivers.qemu import process as qemu_process

from novalite.testing import guest_images
from novalite.testing.conformance import DriverConformance, DriverFactory
from novalite.virt import DriverContext, ImageInfo


class TestQemuDriverConformance(DriverConformance):
    pytestmark = [pytest.mark.trio, pytest.mark.qemu]
    memory_mb = 32
    console_marker = guest_images.BOOT_MARKER
    power_off_timeout = 0.5
    detach_needs_guest_os = True  # the boot sector cannot acknowledge an unplug

    @pytest.fixture
    def driver_factory(self) -> DriverFactory:
        return QemuDriver

    @pytest.fixture
    def driver_options(self) -> dict[str, object]:
        return {"soft_reboot_timeout": 0.5}

    @pytest.fixture
    def guest_image(self, tmp_path: Path) -> ImageInfo:
        path = guest_images.boot_sector_image()
        return ImageInfo(id="bootsector", name="bootsector", disk_format="raw",
                         container_format="bare", path=path, size=os.path.getsize(path))

    def force_cleanup(self, context: DriverContext) -> None:
        """Kill, by pid, any QEMU of this test's guests the driver left running."""
        root = context.instances_path
        for uuid in os.listdir(root) if os.path.isdir(root) else []:
            pid = qemu_process.live_pid(os.path.join(root, uuid), uuid)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


class TestKvmDriverConformance(TestQemuDriverConformance):
    pytestmark = [pytest.mark.trio, pytest.mark.qemu, pytest.mark.kvm]

    @pytest.fixture
    def driver_factory(self) -> DriverFactory:
        return KvmDriver
