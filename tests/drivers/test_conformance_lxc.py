"""The conformance kit against the lxc driver, booting the busybox root filesystem.

Skipped only where the host lacks LXC (tools or root). Every test's containers live
in a private LXC path under its tmp dir; whatever a failing test leaves there is
killed and removed by path, never by name.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from novalite_drivers.lxc import LxcDriver

from novalite.testing.conformance import DriverConformance, DriverFactory
from novalite.testing.rootfs import READY_MARKER, build_busybox_rootfs
from novalite.virt import DriverContext, ImageInfo


class TestLxcDriverConformance(DriverConformance):
    pytestmark = [pytest.mark.trio, pytest.mark.lxc]
    memory_mb = 96
    console_marker = READY_MARKER
    power_off_timeout = 10.0
    # The kit's address (no bridge on it, none configured): the container gets no veth,
    # only lo, and - with a metadata socket - 169.254.169.254 there.

    @pytest.fixture
    def driver_factory(self) -> DriverFactory:
        return LxcDriver

    @pytest.fixture
    def guest_image(self) -> ImageInfo:
        path = str(build_busybox_rootfs())
        return ImageInfo(id="busybox-rootfs", name="busybox.tar.gz", disk_format="raw",
                         container_format="bare", path=path, size=os.path.getsize(path),
                         properties={"hypervisor_type": "lxc"})

    def force_cleanup(self, context: DriverContext) -> None:
        lxc_path = os.path.join(context.state_path, "containers")
        if not os.path.isdir(lxc_path):
            return
        for name in os.listdir(lxc_path):
            for argv in (["lxc-unfreeze"], ["lxc-stop", "-k"], ["lxc-destroy"]):
                subprocess.run([argv[0], "-P", lxc_path, "-n", name, *argv[1:]],
                               capture_output=True, timeout=30)
