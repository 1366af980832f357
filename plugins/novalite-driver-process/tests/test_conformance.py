"""novalite's conformance kit, pointed at the process driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from novalite_driver_process import ProcessDriver

from novalite.testing.conformance import DriverConformance, DriverFactory
from novalite.virt import ImageInfo

GREETING = "process guest up"


class TestProcessDriverConformance(DriverConformance):
    console_marker = GREETING
    power_off_timeout = 2.0

    @pytest.fixture
    def driver_factory(self) -> DriverFactory:
        return ProcessDriver

    @pytest.fixture
    def driver_options(self) -> dict[str, object]:
        return {"poll_interval": 0.2, "soft_reboot_timeout": 2.0}

    @pytest.fixture
    def guest_image(self, tmp_path: Path) -> ImageInfo:
        script = tmp_path / "guest.sh"
        script.write_text(f'echo "{GREETING} as $NOVALITE_HOSTNAME"\n'
                          "while true; do sleep 1; done\n")
        return ImageInfo(id="guest-sh", name="guest.sh", disk_format="raw",
                         container_format="bare", path=str(script),
                         size=script.stat().st_size,
                         properties={"process_command": 'sh "$NOVALITE_IMAGE"'})
