"""The conformance kit against the fake driver, the reference implementation."""

from __future__ import annotations

from pathlib import Path

import pytest
from novalite_drivers.fake import FakeDriver

from novalite.testing.conformance import DriverConformance, DriverFactory
from novalite.virt import ImageInfo


class TestFakeDriverConformance(DriverConformance):
    console_marker = "login:"

    @pytest.fixture
    def driver_factory(self) -> DriverFactory:
        return FakeDriver

    @pytest.fixture
    def guest_image(self, tmp_path: Path) -> ImageInfo:
        path = tmp_path / "fake.img"
        path.write_bytes(b"fake image")
        return ImageInfo(id="fake-image", name="fake", disk_format="raw",
                         container_format="bare", path=str(path), size=10)
