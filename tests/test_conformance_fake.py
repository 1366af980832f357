"""The conformance kit against the fake driver, the reference implementation."""

from __future__ import annotations

from pathlib import Path

import pytest
from novalite_drivers.fake import FakeDriver

from novalite.testing.conformance import DriverConformance, DriverFactory
from novalite.virt import ImageInfo

pytest_plugins = ["pytester"]


class TestFakeDriverConformance(DriverConformance):
    console_marker = "login:"
    reads_image_data = False  # fake guests live in a state file: no image is read

    @pytest.fixture
    def driver_factory(self) -> DriverFactory:
        return FakeDriver

    @pytest.fixture
    def guest_image(self, tmp_path: Path) -> ImageInfo:
        path = tmp_path / "fake.img"
        path.write_bytes(b"fake image")
        return ImageInfo(id="fake-image", name="fake", disk_format="raw",
                         container_format="bare", path=str(path), size=10)


# -- the kit catches the traps a driver written from the guide alone fell into -------------

_TRAPPED_DRIVERS = """
import os, subprocess, sys
import pytest
import trio
from novalite_drivers.fake import FakeDriver
from novalite.testing.conformance import DriverConformance
from novalite.virt import ImageInfo


class HappyWithoutImage(FakeDriver):
    name = "happy"


class ChildGuests(FakeDriver):
    name = "children"

    async def spawn(self, instance, image, network):
        await super().spawn(instance, image, network)
        # the trap: its own session, but still a child of the service
        self.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                       instance.uuid], start_new_session=True)

    async def destroy(self, uuid):
        child = getattr(self, "child", None)
        if child is not None:
            child.kill()  # never reaped: a zombie, which kill(pid, 0) calls alive
            while True:  # "wait until it is gone", the trap
                try:
                    os.kill(child.pid, 0)
                except ProcessLookupError:
                    break
                await trio.sleep(0.05)
        await super().destroy(uuid)


class Base(DriverConformance):
    @pytest.fixture
    def guest_image(self, tmp_path):
        path = tmp_path / "fake.img"
        path.write_bytes(b"fake image")
        return ImageInfo(id="i", name="i", disk_format="raw", container_format="bare",
                         path=str(path))


class TestHappyWithoutImage(Base):
    @pytest.fixture
    def driver_factory(self):
        return HappyWithoutImage


class TestChildGuests(Base):
    reads_image_data = False
    step_timeout = 3.0

    @pytest.fixture
    def driver_factory(self):
        return ChildGuests
"""


def test_the_kit_fails_a_driver_that_spawns_from_a_missing_image_or_leaves_zombies(
        pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_trapped=_TRAPPED_DRIVERS)
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "-k",
        "HappyWithoutImage and failed_spawn or ChildGuests and spawn_runs")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*spawn succeeded from an image whose file does not exist*",
                                 "*zombie children of the service*start_new_session=True*"])
