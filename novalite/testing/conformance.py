"""The driver conformance kit: a pytest suite every novalite driver must pass.

Point it at a driver by subclassing :class:`DriverConformance` in a test module
and overriding two fixtures (pytest and pytest-trio must be installed)::

    # tests/test_conformance.py of a plugin
    import pytest
    from novalite.testing.conformance import DriverConformance
    from novalite.virt import ImageInfo

    from mydriver import MyDriver


    class TestMyDriver(DriverConformance):
        console_marker = "login:"          # text the console shows once booted

        @pytest.fixture
        def driver_factory(self):
            return MyDriver                # any callable DriverContext -> Driver

        @pytest.fixture
        def guest_image(self, tmp_path):
            path = tmp_path / "image.img"
            path.write_bytes(b"...")       # something your driver boots
            return ImageInfo(id="img", name="image", disk_format="raw",
                             container_format="bare", path=str(path))

Then ``pytest -v``. Every test builds the driver the way novalite does (a fresh
:class:`~novalite.virt.driver.DriverContext` on a private directory, options =
the class's ``option_defaults`` updated with the ``driver_options`` fixture),
calls ``init_host``, starts ``run`` in a nursery, and at the end destroys what
is left, cancels ``run`` and calls ``cleanup_host``.

What it checks, each a test below: the declared name, contract version and
capabilities; the optional class hooks of contract 1.2 where the driver has them
(``auto_priority``/``auto_select`` answer well, and a ``demo_image`` is well formed
and boots on the driver); resource reporting; spawn, ``get_info`` and ``list_instances``;
each power action the driver claims in ``capabilities`` (and a clean
:class:`NotSupported` for the rest); console output; snapshots; adoption of
running and stopped guests by a new driver object on the same directories
(after the first one's ``run`` was cancelled and ``cleanup_host`` called);
idempotent ``destroy`` from every state; a failed spawn that leaves nothing
behind (a spawn from a missing image file must raise SpawnFailed unless the kit is
told ``reads_image_data = False``); no zombie child of the service left by
``destroy`` (a guest process nobody reaped, which ``kill(pid, 0)`` reports alive:
see :data:`ZOMBIE_TRAP`); and, after every ``destroy``, no leaked processes or
files.

"Processes of a guest" are found without the driver's help: every process whose
command line, control group, environment or working directory carries the
guest's uuid (QEMU's ``-uuid``, an LXC container's cgroup, a process driver's
working directory, ...). Override :meth:`DriverConformance.guest_processes` if
your guests carry none of these. "Files of a guest" are paths under the
driver's ``state_path`` and ``instances_path`` whose name contains the uuid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid as uuidlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

from novalite.virt.driver import (
    CAPABILITIES,
    CAPABILITY_METHODS,
    CONTRACT_VERSION,
    DemoImage,
    Driver,
    DriverContext,
    DriverError,
    HostCheck,
    HostResources,
    ImageInfo,
    InstanceInfo,
    InstanceNotFound,
    InstanceSpec,
    LifecycleEvent,
    NetworkInfo,
    NotSupported,
    PowerState,
    SpawnFailed,
    VolumeConnection,
)

__all__ = ["ZOMBIE_TRAP", "DriverConformance", "DriverFactory", "Harness", "guest_files",
           "guest_processes"]

#: Builds a driver from a context, as novalite does: usually the driver class itself.
DriverFactory = Callable[[DriverContext], Driver]

#: The address the kit hands to every spawn (override ``networks`` to hand none).
TEST_NETWORK = NetworkInfo(network="private", address="10.20.0.5", cidr="10.20.0.0/24",
                           gateway="10.20.0.1", mac="fa:16:3e:00:00:05")


def guest_processes(uuid: str) -> dict[int, str]:
    """Live processes that carry ``uuid`` in their cmdline, cgroup, environment or cwd.

    Returns ``{pid: "<where> <command line>"}``. Zombies and this process are skipped.
    """
    found: dict[int, str] = {}
    me = os.getpid()
    needle = uuid.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        where = None
        for part in ("cmdline", "cgroup", "environ"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    if needle in f.read():
                        where = part
                        break
            except OSError:
                continue
        if where is None:
            try:
                if uuid in os.readlink(f"/proc/{pid}/cwd"):
                    where = "cwd"
            except OSError:
                pass
        if where is None:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue  # a zombie holds no resources but its pid
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # it ended meanwhile
        found[pid] = f"{where}: {cmd[:200]}"
    return found


def _stat_fields(pid: int) -> list[bytes]:
    """``/proc/<pid>/stat`` after the command name: state, ppid, ... ([] when gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return []


def zombie_children() -> list[int]:
    """Children of this process that exited and were never reaped (state Z)."""
    me = str(os.getpid()).encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields[:2] == [b"Z", me]:
                found.append(int(entry))
    return found


#: The trap behind a zombie the kit finds, for its failure messages.
ZOMBIE_TRAP = (
    "A guest started with subprocess.Popen(..., start_new_session=True) is in its own "
    "session but still a child of the service: once it exits it stays a zombie until "
    "the service reaps it (waitpid), and os.kill(pid, 0) reports a zombie alive, so a "
    "driver waiting for it to die waits forever. Either reap your children (Popen.poll()"
    " / os.waitpid(pid, os.WNOHANG) whenever you look at a guest, as the process "
    "driver does) or start guests detached (fork twice, or the hypervisor's own "
    "daemonize, as QEMU's -daemonize), and tell a live process from a zombie by "
    "/proc/<pid>/stat's state (or psutil's status()), never by kill(pid, 0).")


def guest_files(roots: list[str], uuid: str) -> list[str]:
    """Paths under ``roots`` whose name contains ``uuid``."""
    hits: list[str] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                if uuid in name:
                    hits.append(os.path.join(dirpath, name))
    return hits



#: The NIC the kit attaches and detaches (capability supports_attach_interface).
_SECOND_NIC = NetworkInfo("conformance-2", "10.42.1.5", "10.42.1.0/24", "10.42.1.1",
                          "fa:16:3e:42:01:05")

class Harness:
    """One test's driver: builds it, runs it, restarts it, and cleans up after it.

    ``driver`` is the live driver object, ``context`` the context it was built with,
    ``events`` the :class:`LifecycleEvent` objects it emitted, ``uuids`` every guest
    the test spawned.
    """

    def __init__(self, kit: DriverConformance, factory: DriverFactory,
                 context: DriverContext, image: ImageInfo) -> None:
        self.kit = kit
        self.factory = factory
        self.context = context
        self.image = image
        self.events: list[LifecycleEvent] = []
        self.uuids: list[str] = []
        #: Where ``run`` lives; set by the fixture before :meth:`start`.
        self.nursery: trio.Nursery | None = None
        self._run_scope: trio.CancelScope | None = None
        self._run_done: trio.Event | None = None
        self.driver: Driver = self.build()

    def build(self) -> Driver:
        """A new driver object on the same directories and options (as a restart does)."""
        context = dataclasses.replace(self.context, emit_event=self.events.append)
        driver = self.factory(context)
        assert isinstance(driver, Driver), f"driver_factory returned {driver!r}, not a Driver"
        return driver

    async def start(self) -> None:
        """``init_host``, then ``run`` started in the nursery (as the compute actor does)."""
        with trio.fail_after(self.kit.step_timeout):
            await self.driver.init_host()
        scope, done = trio.CancelScope(), trio.Event()
        self._run_scope, self._run_done = scope, done

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await self.driver.run(task_status=task_status)
            finally:
                done.set()

        assert self.nursery is not None
        with trio.fail_after(self.kit.step_timeout):
            await self.nursery.start(run)

    async def stop(self) -> None:
        """Cancel ``run`` and call ``cleanup_host`` (as a service shutdown does)."""
        if self._run_scope is not None and self._run_done is not None:
            self._run_scope.cancel()
            with trio.fail_after(self.kit.step_timeout):
                await self._run_done.wait()
            self._run_scope = self._run_done = None
            with trio.fail_after(self.kit.step_timeout):
                await self.driver.cleanup_host()

    async def restart(self) -> Driver:
        """Stop this driver object and start a new one on the same state: adoption."""
        await self.stop()
        self.driver = self.build()
        await self.start()
        return self.driver

    def spec(self, **overrides: Any) -> InstanceSpec:
        uuid = str(uuidlib.uuid4())
        fields: dict[str, Any] = dict(
            uuid=uuid, name=f"conformance-{uuid[:8]}", hostname=f"guest-{uuid[:8]}",
            vcpus=self.kit.vcpus, memory_mb=self.kit.memory_mb, root_gb=self.kit.root_gb,
            flavor_name="conformance", metadata={"purpose": "conformance"})
        fields.update(overrides)
        return InstanceSpec(**fields)

    async def spawn(self, image: ImageInfo | None = None, **overrides: Any) -> str:
        """Spawn a guest of the kit's flavor from the test image; return its uuid."""
        spec = self.spec(**overrides)
        self.uuids.append(spec.uuid)
        with trio.fail_after(self.kit.step_timeout):
            await self.driver.spawn(spec, image or self.image, list(self.kit.networks))
        return spec.uuid

    async def state(self, uuid: str) -> PowerState:
        with trio.fail_after(self.kit.step_timeout):
            info = await self.driver.get_info(uuid)
        assert isinstance(info, InstanceInfo), f"get_info returned {info!r}"
        return PowerState(info.state)

    async def console(self, uuid: str, marker: str | None = None) -> str:
        """The console output; with ``marker``, wait (``boot_timeout``) until it shows."""
        with trio.fail_after(self.kit.boot_timeout):
            while True:
                text = await self.driver.get_console_output(uuid)
                assert isinstance(text, str), f"get_console_output returned {type(text)}"
                if marker is None or marker in text:
                    return text
                await trio.sleep(0.1)

    async def destroy(self, uuid: str) -> None:
        zombies_before = set(zombie_children())
        try:
            with trio.fail_after(self.kit.step_timeout):
                await self.driver.destroy(uuid)
        except Exception as exc:  # a driver waiting for a zombie to die waits forever
            zombies = set(zombie_children()) - zombies_before
            if zombies:
                pytest.fail(f"destroy failed ({type(exc).__name__}: {exc}) with zombie "
                            f"children of the service {sorted(zombies)}. {ZOMBIE_TRAP}")
            raise
        zombies = set(zombie_children()) - zombies_before
        assert not zombies, (f"destroy left zombie children of the service {sorted(zombies)}"
                             f". {ZOMBIE_TRAP}")

    async def assert_gone(self, uuid: str) -> None:
        """Nothing of the guest is left: not listed, not found, no process, no file."""
        assert uuid not in await self.driver.list_instances()
        with pytest.raises(InstanceNotFound):
            await self.driver.get_info(uuid)
        with trio.move_on_after(self.kit.leak_grace):
            while self.kit.guest_processes(self.context, uuid):
                await trio.sleep(0.1)
        left = self.kit.guest_processes(self.context, uuid)
        assert not left, f"destroy left processes of guest {uuid} running: {left}"
        files = guest_files([self.context.state_path, self.context.instances_path], uuid)
        assert not files, f"destroy left files of guest {uuid}: {files}"

    async def cleanup(self) -> None:
        """Destroy every guest that is left, stop the driver, then the kit's last resort."""
        with trio.CancelScope(shield=True):
            try:
                try:
                    listed = await self.driver.list_instances()
                except Exception:
                    listed = []
                for uuid in dict.fromkeys([*self.uuids, *listed]):
                    with trio.move_on_after(self.kit.step_timeout):
                        try:
                            await self.driver.destroy(uuid)
                        except Exception:
                            pass
                await self.stop()
            finally:
                self.kit.force_cleanup(self.context)


class DriverConformance:
    """Subclass as ``Test<YourDriver>`` and override the fixtures marked *override*.

    Class attributes tune the kit to the driver's guests.
    """

    pytestmark = pytest.mark.trio

    #: Flavor of every test guest.
    vcpus: int = 1
    memory_mb: int = 64
    root_gb: int = 1
    #: Text the console shows once a guest has booted; None only checks it is text.
    console_marker: str | None = None
    #: Seconds a guest may take to show ``console_marker``.
    boot_timeout: float = 60.0
    #: Seconds any single driver call may take before the test fails.
    step_timeout: float = 120.0
    #: ``timeout`` given to ``power_off``: keep it short for guests that ignore ACPI.
    power_off_timeout: float = 5.0
    #: Seconds a guest's processes may take to vanish after ``destroy`` returns.
    leak_grace: float = 5.0
    #: The addresses handed to every spawn.
    networks: tuple[NetworkInfo, ...] = (TEST_NETWORK,)
    #: The driver boots guests from the image's file (``ImageInfo.path``): a spawn from
    #: a missing file must raise SpawnFailed. False only for drivers that never read it.
    reads_image_data: bool = True
    #: A hot-unplug needs the guest's operating system to acknowledge it (QEMU's
    #: ``device_del``) and the kit's guest has none: the volume checks only attach.
    detach_needs_guest_os: bool = False

    # -- fixtures and hooks to override ------------------------------------------------
    @pytest.fixture
    def driver_factory(self) -> DriverFactory:
        """*Override*: return a callable ``factory(context) -> Driver`` (the class is one)."""
        pytest.fail("override the driver_factory fixture: return your Driver class")

    @pytest.fixture
    def guest_image(self, tmp_path: Path) -> ImageInfo:
        """*Override*: an :class:`ImageInfo` whose ``path`` your driver boots."""
        pytest.fail("override the guest_image fixture: return an ImageInfo your driver boots")

    @pytest.fixture
    def driver_options(self) -> Mapping[str, Any]:
        """Options over the driver's ``option_defaults`` (its novalite.toml section)."""
        return {}

    def guest_processes(self, context: DriverContext, uuid: str) -> dict[int, str]:
        """The guest's live processes (see the module docstring); override if needed."""
        return guest_processes(uuid)

    def force_cleanup(self, context: DriverContext) -> None:
        """Last resort after each test, after ``destroy``: remove what a buggy driver left
        (kill its processes by pid, never by name). The kit's own checks run before."""

    # -- the kit's fixtures -------------------------------------------------------------
    @pytest.fixture
    def driver_context(self, tmp_path: Path, driver_factory: DriverFactory,
                       driver_options: Mapping[str, Any]) -> DriverContext:
        defaults = dict(getattr(driver_factory, "option_defaults", {}) or {})
        return DriverContext(host="conformance-host", state_path=str(tmp_path / "state"),
                             instances_path=str(tmp_path / "instances"),
                             options={**defaults, **dict(driver_options)})

    @pytest.fixture
    async def harness(self, driver_factory: DriverFactory, driver_context: DriverContext,
                      guest_image: ImageInfo) -> AsyncIterator[Harness]:
        h = Harness(self, driver_factory, driver_context, guest_image)
        check = type(h.driver).check_host()
        if not check.usable:
            pytest.skip(f"driver {type(h.driver).name!r} cannot run here: {check.reason}")
        async with trio.open_nursery() as nursery:
            h.nursery = nursery
            try:
                await h.start()
                yield h
            finally:
                await h.cleanup()
                nursery.cancel_scope.cancel()

    # -- the contract's declarations ------------------------------------------------------
    async def test_declares_name_contract_version_and_capabilities(self, harness: Harness
                                                                   ) -> None:
        cls = type(harness.driver)
        assert cls.name and isinstance(cls.name, str), "set the class attribute `name`"
        assert cls.hypervisor_type, "set the class attribute `hypervisor_type`"
        major = str(cls.contract_version).split(".", 1)[0]
        assert major == CONTRACT_VERSION.split(".", 1)[0], (
            f"contract_version {cls.contract_version} is not compatible with "
            f"{CONTRACT_VERSION}")
        unknown = set(cls.capabilities) - set(CAPABILITIES)
        assert not unknown, f"unknown capabilities {sorted(unknown)}; known: {list(CAPABILITIES)}"
        assert all(isinstance(v, bool) for v in cls.capabilities.values())
        check = cls.check_host()
        assert check.usable and isinstance(check.reason, str)
        json.dumps(dict(cls.option_defaults))  # options are plain data

    async def test_reports_host_resources_as_plain_data(self, harness: Harness) -> None:
        with trio.fail_after(self.step_timeout):
            res = await harness.driver.get_available_resource()
        assert isinstance(res, HostResources)
        assert res.vcpus > 0 and res.memory_mb > 0 and res.local_gb >= 0
        assert res.hypervisor_type == type(harness.driver).hypervisor_type
        assert isinstance(res.hypervisor_version, int)
        assert res.hypervisor_hostname and isinstance(res.hypervisor_hostname, str)
        for triple in res.supported_instances:
            assert len(triple) == 3 and all(isinstance(x, str) for x in triple), triple
        json.dumps(dataclasses.asdict(res))  # crosses the bus as JSON

    # -- the optional class hooks (contract 1.2) ------------------------------------------------
    async def test_auto_selection_hook_answers_with_a_host_check(self, harness: Harness
                                                                 ) -> None:
        cls = type(harness.driver)
        priority = cls.auto_priority
        assert priority is None or (isinstance(priority, int)
                                    and not isinstance(priority, bool)), (
            f"auto_priority must be None or an int, not {priority!r}")
        check = cls.auto_select()
        assert isinstance(check, HostCheck), f"auto_select returned {check!r}, not a HostCheck"
        assert isinstance(check.usable, bool) and isinstance(check.reason, str)
        if not check.usable:
            assert check.reason, "auto_select declining must say why"

    async def test_demo_image_is_well_formed_and_boots_when_offered(
            self, harness: Harness, tmp_path: Path) -> None:
        cls = type(harness.driver)
        work_dir = tmp_path / "demo-work"
        work_dir.mkdir()
        with trio.fail_after(self.step_timeout):
            demo = await trio.to_thread.run_sync(cls.demo_image, str(work_dir))
        if demo is None:  # the driver offers no demo image: nothing more to check
            return
        assert isinstance(demo, DemoImage), f"demo_image returned {demo!r}, not a DemoImage"
        assert demo.disk_format and isinstance(demo.disk_format, str)
        assert demo.container_format and isinstance(demo.container_format, str)
        json.dumps(dict(demo.properties))  # Glance properties are plain data
        if demo.data is not None:
            assert isinstance(demo.data, bytes) and demo.data, "demo image data is empty"
            path = work_dir / "demo.img"
            path.write_bytes(demo.data)
        else:
            assert demo.path is not None
            path = Path(demo.path)
            assert path.resolve().is_relative_to(work_dir.resolve()), (
                f"demo image {path} is not under the work_dir {work_dir} it was given")
            assert path.is_file() and path.stat().st_size > 0, f"{path} is missing or empty"
        image = ImageInfo(id="demo", name="demo", disk_format=demo.disk_format,
                          container_format=demo.container_format, path=str(path),
                          size=path.stat().st_size, properties=dict(demo.properties))
        uuid = await harness.spawn(image)
        assert await harness.state(uuid) == PowerState.RUNNING
        await harness.destroy(uuid)
        await harness.assert_gone(uuid)

    # -- lifecycle ----------------------------------------------------------------------------
    async def test_spawn_runs_a_guest_and_destroy_removes_everything(self, harness: Harness
                                                                     ) -> None:
        assert await harness.driver.list_instances() == []
        uuid = await harness.spawn()
        assert await harness.state(uuid) == PowerState.RUNNING
        assert await harness.driver.list_instances() == [uuid]
        await harness.destroy(uuid)
        await harness.assert_gone(uuid)

    async def test_get_info_is_consistent_and_unknown_uuids_are_not_found(
            self, harness: Harness) -> None:
        uuid = await harness.spawn()
        first = await harness.driver.get_info(uuid)
        second = await harness.driver.get_info(uuid)
        for info in (first, second):
            assert isinstance(info, InstanceInfo) and isinstance(info.state, int)
            assert info.state == PowerState.RUNNING
            assert isinstance(info.handle, str)
            assert info.reason is None or isinstance(info.reason, str)
            assert info.vcpus in (0, self.vcpus) and info.memory_mb in (0, self.memory_mb)
        assert (first.vcpus, first.memory_mb) == (second.vcpus, second.memory_mb)
        with pytest.raises(InstanceNotFound):
            await harness.driver.get_info(str(uuidlib.uuid4()))

    async def test_list_instances_lists_every_guest(self, harness: Harness) -> None:
        first = await harness.spawn()
        second = await harness.spawn()
        listed = await harness.driver.list_instances()
        assert isinstance(listed, list) and all(isinstance(u, str) for u in listed)
        assert sorted(listed) == sorted([first, second])
        await harness.destroy(first)
        assert await harness.driver.list_instances() == [second]
        assert await harness.state(second) == PowerState.RUNNING

    async def test_destroy_is_idempotent(self, harness: Harness) -> None:
        await harness.destroy(str(uuidlib.uuid4()))  # never existed: no error
        uuid = await harness.spawn()
        await harness.destroy(uuid)
        await harness.destroy(uuid)
        await harness.assert_gone(uuid)

    async def test_failed_spawn_raises_spawn_failed_and_leaves_nothing(
            self, harness: Harness, tmp_path: Path) -> None:
        missing = dataclasses.replace(harness.image, id="missing-image",
                                      path=str(tmp_path / "no-such-image"))
        spec = harness.spec()
        try:
            with trio.fail_after(self.step_timeout):
                await harness.driver.spawn(spec, missing, list(self.networks))
        except SpawnFailed as exc:
            assert str(exc), "SpawnFailed needs a message: the user sees it as the fault"
        except DriverError as exc:  # allowed, but novalite will not reschedule
            pytest.fail(f"a missing image should raise SpawnFailed, got {exc!r}")
        else:
            harness.uuids.append(spec.uuid)
            await harness.destroy(spec.uuid)
            if self.reads_image_data:
                pytest.fail(
                    "spawn succeeded from an image whose file does not exist "
                    f"({missing.path}): check ImageInfo.path before creating anything and "
                    "raise SpawnFailed (set reads_image_data = False in the kit's "
                    "subclass only if your driver never reads image data, as fake)")
        await harness.assert_gone(spec.uuid)

    # -- optional actions: each capability ----------------------------------------------------
    @pytest.mark.parametrize("capability", list(CAPABILITY_METHODS))
    async def test_capability_works_when_claimed_and_is_cleanly_refused_otherwise(
            self, harness: Harness, capability: str, tmp_path: Path) -> None:
        driver = harness.driver
        uuid = await harness.spawn()
        if not type(driver).capabilities.get(capability, False):
            for method in CAPABILITY_METHODS[capability]:
                with pytest.raises(NotSupported) as caught:
                    await _call(driver, method, uuid, tmp_path, self.power_off_timeout)
                assert str(caught.value), f"{method}: NotSupported needs a message"
            assert await harness.state(uuid) == PowerState.RUNNING
            await harness.destroy(uuid)
            await harness.assert_gone(uuid)
            return
        check = getattr(self, f"_check_{capability}")
        await check(harness, uuid, tmp_path)
        await harness.destroy(uuid)  # from whatever state the check left the guest in
        await harness.assert_gone(uuid)

    async def _check_supports_ssh_forward(self, h: Harness, uuid: str,
                                          tmp_path: Path) -> None:
        """A guest spawned with ``ssh_host_port`` has that port listening on 127.0.0.1."""
        import dataclasses
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        nics = [dataclasses.replace(n, ssh_host_port=port if i == 0 else None)
                for i, n in enumerate(self.networks)]
        assert nics, "supports_ssh_forward: the kit's networks must hold an interface"
        spec = h.spec()
        h.uuids.append(spec.uuid)
        with trio.fail_after(self.step_timeout):
            await h.driver.spawn(spec, h.image, nics)
        with trio.fail_after(self.step_timeout):
            await trio.to_thread.run_sync(
                lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close())
        await h.destroy(spec.uuid)
        await h.assert_gone(spec.uuid)

    async def _check_supports_config_drive(self, h: Harness, uuid: str,
                                           tmp_path: Path) -> None:
        """A guest spawned with a config drive runs, and keeps running once the compute
        host has removed its file (the driver keeps its own copy)."""

        from novalite.metadata import configdrive

        if not configdrive.available():
            pytest.skip("xorriso is not installed: no config drive to attach")
        path = str(tmp_path / "config-drive.iso")
        await configdrive.build({"openstack/latest/meta_data.json": b"{}"}, path)
        spec = dataclasses.replace(h.spec(), config_drive=path)
        h.uuids.append(spec.uuid)
        with trio.fail_after(self.step_timeout):
            await h.driver.spawn(spec, h.image, list(self.networks))
        os.unlink(path)
        assert await h.state(spec.uuid) == PowerState.RUNNING
        await h.destroy(spec.uuid)
        await h.assert_gone(spec.uuid)

    async def _check_supports_host_bridge(self, h: Harness, uuid: str,
                                          tmp_path: Path) -> None:
        """Claimed by a driver of contract 1.5 or later (the capability came with 1.5).
        A NIC on a host bridge needs the compute host's plumbing (the bridge, the tap or
        veth it names) and root, which the kit does not set up: novalite's own
        tests/drivers/test_bridge_api.py boots guests of the qemu driver on bridges
        through the API, and test_bridge_network.py wires LXC containers too."""
        version = tuple(int(x) for x in type(h.driver).contract_version.split("."))
        assert version >= (1, 5), (
            f"supports_host_bridge came with contract 1.5; the driver says {version}")

    async def _check_supports_metadata_socket(self, h: Harness, uuid: str,
                                              tmp_path: Path) -> None:
        """A guest spawned with a metadata socket on its first interface runs."""
        import socket

        assert self.networks, "supports_metadata_socket: the kit's networks need an interface"
        path = str(tmp_path / "md.sock")
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path)
            listener.listen(1)
            nics = [dataclasses.replace(n, metadata_socket=path if i == 0 else None)
                    for i, n in enumerate(self.networks)]
            spec = h.spec()
            h.uuids.append(spec.uuid)
            with trio.fail_after(self.step_timeout):
                await h.driver.spawn(spec, h.image, nics)
            assert await h.state(spec.uuid) == PowerState.RUNNING
            await h.destroy(spec.uuid)
            await h.assert_gone(spec.uuid)

    async def _check_supports_resize(self, h: Harness, uuid: str, tmp_path: Path) -> None:
        """Contract 1.4: a same-host resize to a bigger flavor, reverted, then again and
        confirmed; the disk_info crosses the bus (plain JSON data); the guest is listed
        once and RUNNING at each end."""
        old = h.spec()  # the kit's flavor, for sizes
        bigger = dataclasses.replace(old, uuid=uuid, vcpus=old.vcpus + 1,
                                     memory_mb=old.memory_mb * 2, root_gb=old.root_gb + 1)
        host = h.driver.context.host
        for confirm in (False, True):
            with trio.fail_after(self.step_timeout * 2):
                disk_info = await h.driver.migrate_disk_and_power_off(uuid, host, bigger)
                disk_info = json.loads(json.dumps(disk_info))
                await h.driver.finish_migration(bigger, disk_info, list(self.networks), True)
            assert await h.state(uuid) == PowerState.RUNNING, "not RUNNING after finish"
            info = await h.driver.get_info(uuid)
            assert info.vcpus in (0, bigger.vcpus), "the new flavor's vCPUs"
            with trio.fail_after(self.step_timeout * 2):
                if confirm:
                    await h.driver.confirm_migration(uuid)
                else:
                    await h.driver.destroy(uuid)
                    await h.driver.finish_revert_migration(uuid, True)
            assert await h.state(uuid) == PowerState.RUNNING, \
                f"not RUNNING after {'confirm' if confirm else 'revert'}"
            assert (await h.driver.list_instances()).count(uuid) == 1

    async def _check_supports_live_migration(self, h: Harness, uuid: str,
                                             tmp_path: Path) -> None:
        """Contracts 1.4 and 1.5: the guest moves to a second object of the driver on
        directories of its own (another host that shares no disk): first a move given up
        after ``pre_live_migration`` (``rollback_live_migration_at_destination`` leaves
        nothing there, the guest runs here), then the whole move -
        ``pre_live_migration`` there, ``live_migration`` here with its data,
        ``post_live_migration_at_destination`` there, ``post_live_migration`` here
        (twice: idempotent). Each piece of data is plain JSON; the guest is RUNNING
        there and nothing of it is left here."""
        dest_context = dataclasses.replace(
            h.context, host="conformance-destination",
            state_path=str(tmp_path / "destination" / "state"),
            instances_path=str(tmp_path / "destination" / "instances"),
            emit_event=h.events.append)
        dest = h.factory(dest_context)
        spec = dataclasses.replace(h.spec(), uuid=uuid)
        nics = list(self.networks)
        limit = self.step_timeout * 2
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(self.step_timeout):
                    await dest.init_host()
                    await nursery.start(dest.run)
                with trio.fail_after(limit):
                    ready = await dest.pre_live_migration(spec, h.image, nics)
                assert json.loads(json.dumps(ready)) == ready, \
                    "pre_live_migration must return plain JSON data"
                with trio.fail_after(limit):
                    await dest.rollback_live_migration_at_destination(uuid)
                    await dest.rollback_live_migration_at_destination(uuid)
                assert uuid not in await dest.list_instances(), "rollback left the guest"
                left = guest_files([dest_context.state_path, dest_context.instances_path],
                                   uuid)
                assert not left, f"rollback_live_migration_at_destination left {left}"
                assert await h.state(uuid) == PowerState.RUNNING, \
                    "a rolled back migration stopped the guest"

                with trio.fail_after(limit):
                    ready = await dest.pre_live_migration(spec, h.image, nics)
                    extra = {"migrate_data": ready} if ready else {}
                    data = await h.driver.live_migration(uuid, dest_context.host, spec,
                                                         **extra)
                assert json.loads(json.dumps(data)) == data, \
                    "live_migration must return plain JSON data"
                with trio.fail_after(limit):
                    await dest.post_live_migration_at_destination(spec, data, nics)
                info = await dest.get_info(uuid)
                assert info.state == PowerState.RUNNING, \
                    "not RUNNING on the destination after the move"
                assert uuid in await dest.list_instances()
                with trio.fail_after(limit):
                    await h.driver.post_live_migration(uuid)
                    await h.driver.post_live_migration(uuid)
                assert uuid not in await h.driver.list_instances(), \
                    "post_live_migration left the guest listed on the source"
                left = guest_files([h.context.state_path, h.context.instances_path], uuid)
                assert not left, f"post_live_migration left files on the source: {left}"
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(self.step_timeout):
                    with contextlib.suppress(Exception):
                        await dest.destroy(uuid)
                    nursery.cancel_scope.cancel()
                    with contextlib.suppress(Exception):
                        await dest.cleanup_host()
                    self.force_cleanup(dest_context)
        left = guest_files([dest_context.state_path, dest_context.instances_path], uuid)
        assert not left, f"destroy on the destination left {left}"

    async def _check_supports_reboot(self, h: Harness, uuid: str, tmp_path: Path) -> None:
        for kind in ("HARD", "SOFT"):
            with trio.fail_after(self.step_timeout):
                await h.driver.reboot(uuid, kind)
            assert await h.state(uuid) == PowerState.RUNNING, f"not RUNNING after {kind} reboot"

    async def _check_supports_power_off(self, h: Harness, uuid: str, tmp_path: Path) -> None:
        with trio.fail_after(self.step_timeout + self.power_off_timeout):
            await h.driver.power_off(uuid, self.power_off_timeout)
        assert await h.state(uuid) == PowerState.SHUTDOWN
        assert uuid in await h.driver.list_instances(), "a SHUTDOWN guest stays listed"
        info = await h.driver.get_info(uuid)
        assert info.reason is None or isinstance(info.reason, str)
        with trio.fail_after(self.step_timeout):
            await h.driver.power_on(uuid)
        assert await h.state(uuid) == PowerState.RUNNING
        with trio.fail_after(self.step_timeout + self.power_off_timeout):
            await h.driver.power_off(uuid, self.power_off_timeout)
        assert await h.state(uuid) == PowerState.SHUTDOWN  # destroyed in this state

    async def _check_supports_pause(self, h: Harness, uuid: str, tmp_path: Path) -> None:
        with trio.fail_after(self.step_timeout):
            await h.driver.pause(uuid)
        assert await h.state(uuid) == PowerState.PAUSED
        with trio.fail_after(self.step_timeout):
            await h.driver.unpause(uuid)
        assert await h.state(uuid) == PowerState.RUNNING
        with trio.fail_after(self.step_timeout):
            await h.driver.pause(uuid)
        assert await h.state(uuid) == PowerState.PAUSED  # destroyed in this state

    async def _check_supports_suspend(self, h: Harness, uuid: str, tmp_path: Path) -> None:
        with trio.fail_after(self.step_timeout):
            await h.driver.suspend(uuid)
        assert await h.state(uuid) == PowerState.SUSPENDED
        with trio.fail_after(self.step_timeout):
            await h.driver.resume(uuid)
        assert await h.state(uuid) == PowerState.RUNNING
        with trio.fail_after(self.step_timeout):
            await h.driver.suspend(uuid)
        assert await h.state(uuid) == PowerState.SUSPENDED  # destroyed in this state

    async def _check_supports_console_output(self, h: Harness, uuid: str, tmp_path: Path
                                             ) -> None:
        text = await h.console(uuid, self.console_marker)
        assert isinstance(text, str)
        with pytest.raises(InstanceNotFound):
            await h.driver.get_console_output(str(uuidlib.uuid4()))

    async def _check_supports_vnc_console(self, h: Harness, uuid: str, tmp_path: Path
                                          ) -> None:
        """The stream speaks RFB from its first byte; closing it leaves the guest running."""
        with trio.fail_after(self.step_timeout):
            stream = await h.driver.open_vnc_console(uuid)
            try:
                greeting = await stream.receive_some(12)
            finally:
                await stream.aclose()
        assert greeting.startswith(b"RFB "), greeting
        assert await h.state(uuid) == PowerState.RUNNING
        with pytest.raises(InstanceNotFound):
            await h.driver.open_vnc_console(str(uuidlib.uuid4()))

    async def _check_supports_serial_console(self, h: Harness, uuid: str, tmp_path: Path
                                             ) -> None:
        """A serial session opens, takes input, and closes leaving the guest running."""
        with trio.fail_after(self.step_timeout):
            stream = await h.driver.open_serial_console(uuid)
            try:
                await stream.send_all(b"\n")
            finally:
                await stream.aclose()
        assert await h.state(uuid) == PowerState.RUNNING
        with pytest.raises(InstanceNotFound):
            await h.driver.open_serial_console(str(uuidlib.uuid4()))

    async def _check_supports_snapshot(self, h: Harness, uuid: str, tmp_path: Path) -> None:
        dest = tmp_path / "snapshot"
        with trio.fail_after(self.step_timeout):
            formats = await h.driver.snapshot(uuid, str(dest))
        assert isinstance(formats, tuple) and len(formats) == 2, formats
        assert all(isinstance(f, str) and f for f in formats), formats
        assert dest.is_file() and dest.stat().st_size > 0, "snapshot wrote nothing"
        assert await h.state(uuid) == PowerState.RUNNING, "snapshot changed the power state"

    async def _check_supports_rebuild(self, h: Harness, uuid: str, tmp_path: Path) -> None:
        """Rebuilt in place from the image (contract 1.4): the same uuid, RUNNING, listed."""
        with trio.fail_after(self.step_timeout):
            await h.driver.rebuild(h.spec(uuid=uuid), h.image, list(self.networks))
        assert await h.state(uuid) == PowerState.RUNNING, "not RUNNING after rebuild"
        assert uuid in await h.driver.list_instances()

    async def _check_supports_rescue(self, h: Harness, uuid: str, tmp_path: Path,
                                     stable: bool = False) -> None:
        """Rescued (contract 1.4): RUNNING from the rescue image, then unrescued: RUNNING
        from its own disk; unrescue of a guest not rescued is a DriverError."""
        with trio.fail_after(self.step_timeout):
            await h.driver.rescue(h.spec(uuid=uuid), h.image, list(self.networks),
                                  stable=stable)
        assert await h.state(uuid) == PowerState.RUNNING, "not RUNNING in rescue"
        with trio.fail_after(self.step_timeout):
            await h.driver.unrescue(uuid)
        assert await h.state(uuid) == PowerState.RUNNING, "not RUNNING after unrescue"
        with pytest.raises(InstanceNotFound):
            await h.driver.unrescue(str(uuidlib.uuid4()))

    async def _check_supports_stable_rescue(self, h: Harness, uuid: str,
                                            tmp_path: Path) -> None:
        await self._check_supports_rescue(h, uuid, tmp_path, stable=True)

    async def _check_supports_trigger_crash_dump(self, h: Harness, uuid: str,
                                                 tmp_path: Path) -> None:
        """An NMI is sent to a running guest (contract 1.4); an unknown uuid is not found."""
        with trio.fail_after(self.step_timeout):
            await h.driver.trigger_crash_dump(uuid)
        with pytest.raises(InstanceNotFound):
            await h.driver.trigger_crash_dump(str(uuidlib.uuid4()))

    async def _check_supports_attach_volume(self, h: Harness, uuid: str,
                                            tmp_path: Path) -> None:
        """A 1 MiB volume attaches to the running guest and detaches again; detaching
        twice is no error; the guest keeps running throughout."""
        path = tmp_path / "volume"
        path.write_bytes(b"\0" * (1 << 20))
        vid = "00000000-0000-4000-8000-000000000002"
        with trio.fail_after(self.step_timeout):
            await h.driver.attach_volume(uuid, VolumeConnection(vid, str(path), 1 << 20))
        assert await h.state(uuid) == PowerState.RUNNING, "attach changed the power state"
        if self.detach_needs_guest_os:  # the kit's guest cannot acknowledge an unplug
            return
        with trio.fail_after(self.step_timeout):
            await h.driver.detach_volume(uuid, vid)
            await h.driver.detach_volume(uuid, vid)
        assert await h.state(uuid) == PowerState.RUNNING, "detach changed the power state"

    async def _check_supports_attach_interface(self, h: Harness, uuid: str,
                                               tmp_path: Path) -> None:
        """A second NIC attaches to the running guest (twice is no error) and detaches
        again (twice is no error); the guest keeps running throughout."""
        with trio.fail_after(self.step_timeout):
            await h.driver.attach_interface(uuid, _SECOND_NIC)
            await h.driver.attach_interface(uuid, _SECOND_NIC)
        assert await h.state(uuid) == PowerState.RUNNING, "attach changed the power state"
        if self.detach_needs_guest_os:  # the kit's guest cannot acknowledge an unplug
            return
        with trio.fail_after(self.step_timeout):
            await h.driver.detach_interface(uuid, _SECOND_NIC)
            await h.driver.detach_interface(uuid, _SECOND_NIC)
        assert await h.state(uuid) == PowerState.RUNNING, "detach changed the power state"

    async def _check_supports_boot_from_volume(self, h: Harness, uuid: str,
                                               tmp_path: Path) -> None:
        """A guest spawned with ``root_volume`` (the kit's image copied into a raw file)
        runs; destroying it leaves the volume's data in place."""
        import shutil

        path = tmp_path / "root-volume"
        await trio.to_thread.run_sync(shutil.copyfile, h.image.path, path)
        if path.stat().st_size < 1 << 20:  # a volume is whole mebibytes at least
            os.truncate(path, 1 << 20)
        size = path.stat().st_size
        vid = "00000000-0000-4000-8000-000000000004"
        spec_uuid = await h.spawn(root_volume=VolumeConnection(vid, str(path), size))
        assert await h.state(spec_uuid) == PowerState.RUNNING
        if self.console_marker and type(h.driver).capabilities.get("supports_console_output"):
            await h.console(spec_uuid, self.console_marker)
        await h.destroy(spec_uuid)
        await h.assert_gone(spec_uuid)
        assert path.is_file() and path.stat().st_size == size, "destroy removed the volume"

    async def _check_supports_extend_volume(self, h: Harness, uuid: str,
                                            tmp_path: Path) -> None:
        """An attached volume grown on disk is announced to the guest without error."""
        path = tmp_path / "volume"
        path.write_bytes(b"\0" * (1 << 20))
        vid = "00000000-0000-4000-8000-000000000003"
        with trio.fail_after(self.step_timeout):
            await h.driver.attach_volume(uuid, VolumeConnection(vid, str(path), 1 << 20))
            with open(path, "r+b") as f:
                f.truncate(2 << 20)
            await h.driver.extend_volume(uuid, vid, 2 << 20)
            if not self.detach_needs_guest_os:
                await h.driver.detach_volume(uuid, vid)

    # -- adoption ------------------------------------------------------------------------------
    async def test_new_driver_object_adopts_running_and_stopped_guests(self, harness: Harness
                                                                       ) -> None:
        caps = type(harness.driver).capabilities
        running = await harness.spawn()
        if caps.get("supports_console_output") and self.console_marker:
            await harness.console(running, self.console_marker)
        stopped = None
        if caps.get("supports_power_off"):
            stopped = await harness.spawn()
            with trio.fail_after(self.step_timeout + self.power_off_timeout):
                await harness.driver.power_off(stopped, self.power_off_timeout)
        before = self.guest_processes(harness.context, running)

        driver = await harness.restart()  # run cancelled, cleanup_host, new object, init_host

        if before:  # guests outlive the driver object: the very same processes
            after = self.guest_processes(harness.context, running)
            assert set(before) <= set(after), (
                f"guest processes changed across the restart: {before} -> {after}")
        listed = set(await driver.list_instances())
        assert listed == {u for u in (running, stopped) if u}, listed
        assert await harness.state(running) == PowerState.RUNNING
        if stopped:
            assert await harness.state(stopped) == PowerState.SHUTDOWN
            with trio.fail_after(self.step_timeout):
                await driver.power_on(stopped)
            assert await harness.state(stopped) == PowerState.RUNNING
        if caps.get("supports_console_output"):
            await harness.console(running, self.console_marker)
        for uuid in (running, stopped):
            if uuid:
                await harness.destroy(uuid)
                await harness.assert_gone(uuid)


async def _call(driver: Driver, method: str, uuid: str, tmp_path: Path,
                power_off_timeout: float) -> Any:
    if method == "reboot":
        return await driver.reboot(uuid, "HARD")
    if method == "power_off":
        return await driver.power_off(uuid, power_off_timeout)
    if method == "snapshot":
        return await driver.snapshot(uuid, str(tmp_path / "snapshot"))
    if method in ("rebuild", "rescue"):  # contract 1.4: a spec and an image, never used
        spec = InstanceSpec(uuid=uuid, name="refused", hostname="refused", vcpus=1,
                            memory_mb=64, root_gb=0)
        image = ImageInfo(id="refused", name="refused", disk_format="raw",
                          container_format="bare", path=str(tmp_path / "no-image"))
        return await getattr(driver, method)(spec, image, [])
    if method in ("migrate_disk_and_power_off", "finish_migration"):
        spec = InstanceSpec(uuid=uuid, name="conformance", hostname="conformance",
                            vcpus=1, memory_mb=64, root_gb=1)
        if method == "finish_migration":
            return await driver.finish_migration(spec, {}, [], True)
        return await driver.migrate_disk_and_power_off(uuid, driver.context.host, spec)
    if method == "finish_revert_migration":
        return await driver.finish_revert_migration(uuid, True)
    spec = InstanceSpec(uuid=uuid, name="conformance", hostname="conformance", vcpus=1,
                        memory_mb=64, root_gb=1)
    if method == "live_migration":
        return await driver.live_migration(uuid, "conformance-destination", spec)
    if method == "post_live_migration_at_destination":
        return await driver.post_live_migration_at_destination(spec, {}, [])

    if method == "attach_volume":
        return await driver.attach_volume(uuid, VolumeConnection(
            "00000000-0000-4000-8000-000000000001", str(tmp_path / "volume"), 1 << 20))
    if method == "detach_volume":
        return await driver.detach_volume(uuid, "00000000-0000-4000-8000-000000000001")
    if method == "extend_volume":
        return await driver.extend_volume(uuid, "00000000-0000-4000-8000-000000000001",
                                          2 << 20)
    if method in ("attach_interface", "detach_interface"):
        return await getattr(driver, method)(uuid, _SECOND_NIC)
    return await getattr(driver, method)(uuid)
