"""Third-party plugins, as their authors and users see them.

The examples in ``plugins/`` are installed into the test environment by pip
(``./dev test`` does it) and found through their entry points, never imported
from the source tree. Broken and incompatible plugins are real throwaway
distributions, installed with ``pip install --target`` into this test's tmp dir
and put on the subprocess's ``PYTHONPATH``: nothing is left in ``.venv``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from novalite import plugins
from novalite.scheduler.plugins import WEIGHERS
from novalite.testing.conformance import guest_processes
from novalite.testing.server import (
    RunningServer,
    free_port,
    novalite_bin,
    start,
    wait_for,
    write_config,
)
from novalite.virt import CONTRACT_VERSION, Driver
from novalite.virt.registry import DRIVERS
from tests.helpers import wait_gone, wait_status

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
EXAMPLES = {"novalite_driver_process": "novalite-driver-process",
            "novalite_weigher_pack": "novalite-weigher-pack"}
PROCESS = {"compute": {"driver": "process"}, "process": {"poll_interval": 0.2}}


@pytest.fixture(scope="module", autouse=True)
def examples_installed() -> None:
    """The examples must be pip-installed (./dev test does it), not on the source path."""
    for module, dist in EXAMPLES.items():
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, (
            f"{dist} is not installed: run ./dev test, or "
            f".venv/bin/pip install ./plugins/{dist}")
        assert str(PLUGINS) not in spec.origin, f"{module} is imported from the source tree"


def novalite(*args: str, env: dict[str, str] | None = None, timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NOVALITE_", "OS_"))}
    full.update(env or {})
    return subprocess.run([novalite_bin(), *args], capture_output=True, text=True,
                          timeout=timeout, env=full)


# -- discovery ---------------------------------------------------------------------------
def test_novalite_drivers_lists_the_installed_examples_with_their_versions() -> None:
    listing = novalite("drivers", "-f", "json")
    assert listing.returncode == 0, listing.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(listing.stdout)}
    process = rows[("driver", "process")]
    assert (process["distribution"], process["version"]) == ("novalite-driver-process", "0.1.0")
    assert process["contract"] == "1.1" and process["usable"] is True
    pack = rows[("weigher", "PackWeigher")]
    assert (pack["distribution"], pack["version"], pack["status"]) == (
        "novalite-weigher-pack", "0.1.0", "usable")
    # The built-ins come through the same groups.
    assert rows[("driver", "fake")]["distribution"] == "novalite"
    assert rows[("weigher", "RAMWeigher")]["distribution"] == "novalite"

    table = novalite("drivers").stdout
    assert f"driver contract {CONTRACT_VERSION}" in table
    line = next(x for x in table.splitlines() if " process " in x)
    assert "novalite-driver-process" in line and "0.1.0" in line and "usable" in line
    assert "PackWeigher" in table and "novalite-weigher-pack" in table


def test_one_loader_reports_every_group_the_same_way() -> None:
    """Drivers and scheduler plugins, built-in or not, come through novalite.plugins."""
    drivers = plugins.discover(DRIVERS)
    assert {"fake", "qemu", "kvm", "lxc", "process"} <= set(drivers)
    fake = drivers["fake"]
    assert (fake.distribution, fake.target, fake.loaded, fake.broken) == (
        "novalite", "novalite_drivers.fake:FakeDriver", True, False)
    assert fake.cls is not None and issubclass(fake.cls, Driver)
    pack = plugins.load(WEIGHERS, "PackWeigher")
    assert (pack.distribution, pack.version, pack.status) == (
        "novalite-weigher-pack", "0.1.0", "usable")
    with pytest.raises(plugins.PluginNotFound) as missing:
        plugins.load(WEIGHERS, "NoSuchWeigher")
    assert "RAMWeigher" in missing.value.installed and "PackWeigher" in missing.value.installed


# -- the example driver through the API -------------------------------------------------------
@pytest.fixture
def guest_killer() -> Iterator[list[str]]:
    """Instance uuids whose processes are killed (by pid) if a test leaves them."""
    uuids: list[str] = []
    yield uuids
    for uuid in uuids:
        for pid in guest_processes(uuid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def process_image(c: httpx.Client, name: str, script: str) -> str:
    r = c.post("/image/v2/images", json={
        "name": name, "disk_format": "raw", "container_format": "bare",
        "hypervisor_type": "process", "process_command": 'sh "$NOVALITE_IMAGE"'})
    assert r.status_code == 201, r.text
    image_id = str(r.json()["id"])
    r = c.put(f"/image/v2/images/{image_id}/file", content=script.encode(),
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    return image_id


def boot(c: httpx.Client, name: str, image_id: str) -> str:
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": name, "imageRef": image_id, "flavorRef": "1"}})
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def session_leaders(uuid: str) -> set[int]:
    """The guest's long-lived process: the leader of its own session (not its `sleep`s)."""
    leaders = set()
    for pid in guest_processes(uuid):
        try:
            if os.getsid(pid) == pid:
                leaders.add(pid)
        except ProcessLookupError:
            pass
    return leaders


def console(c: httpx.Client, sid: str) -> str:
    r = c.post(f"/compute/v2.1/servers/{sid}/action",
               json={"os-getConsoleOutput": {"length": 50}})
    assert r.status_code == 200, r.text
    return str(r.json()["output"])


def test_boot_on_the_process_driver_reaches_active_and_survives_a_restart(
        tmp_path: Path, guest_killer: list[str]) -> None:
    state = tmp_path / "state"
    srv = start(state, config=PROCESS)
    try:
        with srv.client() as c:
            image = process_image(c, "hello", 'echo "hello from $NOVALITE_HOSTNAME"\n'
                                              "while true; do sleep 1; done\n")
            sid = boot(c, "hello-1", image)
            guest_killer.append(sid)
            server = wait_status(c, sid, "ACTIVE", timeout=30)
            assert server["OS-EXT-STS:power_state"] == 1
            assert wait_for(lambda: "hello from hello-1" in console(c, sid))
            pids = session_leaders(sid)
            assert len(pids) == 1, "the guest is a real process, in a session of its own"

            assert c.post(f"/compute/v2.1/servers/{sid}/action",
                          json={"os-stop": None}).status_code == 202
            wait_status(c, sid, "SHUTOFF", timeout=30)
            assert not guest_processes(sid)
            assert c.post(f"/compute/v2.1/servers/{sid}/action",
                          json={"os-start": None}).status_code == 202
            wait_status(c, sid, "ACTIVE", timeout=30)
            wait_for(lambda: console(c, sid).count("hello from hello-1") == 2)
            pids = session_leaders(sid)
    finally:
        assert srv.stop() == 0
    assert session_leaders(sid) == pids, "the guest outlives the service"

    srv = start(state, config=PROCESS)
    try:
        with srv.client() as c:
            assert wait_status(c, sid, "ACTIVE")["OS-EXT-STS:power_state"] == 1
            assert session_leaders(sid) == pids, "adopted, not restarted"
            assert "hello from hello-1" in console(c, sid)
            assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
            wait_gone(c, sid, timeout=30)
            assert not guest_processes(sid)
    finally:
        srv.stop()


def test_a_guest_process_that_exits_by_itself_becomes_shutoff(
        tmp_path: Path, guest_killer: list[str]) -> None:
    srv = start(tmp_path / "state", config=PROCESS)
    try:
        with srv.client() as c:
            image = process_image(c, "short", "echo short-lived; sleep 1; exit 3\n")
            sid = boot(c, "short-1", image)
            guest_killer.append(sid)
            server = wait_status(c, sid, "SHUTOFF", timeout=30)
            assert server["OS-EXT-STS:power_state"] == 4
            assert "short-lived" in console(c, sid)
    finally:
        srv.stop()


def test_the_pack_weigher_plugin_puts_every_instance_on_one_host(tmp_path: Path) -> None:
    srv = start(tmp_path / "state", config={
        "compute": {"hosts": ["compute-a", "compute-b"]},
        "scheduler": {"weighers": ["PackWeigher"]}})
    try:
        with srv.client() as c:
            image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
            sids = [boot(c, f"packed-{i}", image) for i in range(4)]
            hosts = {wait_status(c, sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"] for sid in sids}
            assert len(hosts) == 1, hosts
    finally:
        srv.stop()


# -- the conformance kit on the example, as its author runs it -----------------------------------
@pytest.mark.parametrize("dist", sorted(EXAMPLES.values()))
def test_the_examples_own_tests_pass(dist: str) -> None:
    """Each example's tests/ (for the driver: the whole conformance kit), run in its dir."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests"], cwd=PLUGINS / dist, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and "skipped" not in result.stdout, result.stdout[-2000:]
    if dist == "novalite-driver-process":  # the kit's 14 tests
        assert int(passed.group(1)) >= 14, result.stdout[-2000:]


# -- broken and incompatible plugins ---------------------------------------------------------------
BROKEN = {
    "name": "novalite-driver-broken", "version": "0.1.0", "module": "novalite_broken_driver",
    "entry": "broken = \"novalite_broken_driver:BrokenDriver\"",
    "code": "import hypervisor_sdk_that_is_not_installed  # noqa\n",
}
FUTURE = {
    "name": "novalite-driver-future", "version": "3.1.4", "module": "novalite_future_driver",
    "entry": "future = \"novalite_future_driver:FutureDriver\"",
    "code": textwrap.dedent("""\
        from novalite_drivers.fake import FakeDriver

        class FutureDriver(FakeDriver):
            name = "future"
            contract_version = "2.0"
        """),
}


BROKEN_WEIGHER = {
    "name": "novalite-weigher-broken", "version": "0.3.0", "module": "novalite_broken_weigher",
    "group": "novalite.scheduler.weighers",
    "entry": "BrokenWeigher = \"novalite_broken_weigher:BrokenWeigher\"",
    "code": "raise RuntimeError('the weigher needs a licence key')\n",
}
#: A third-party driver that volunteers for driver = "auto" and offers its demo image.
EAGER = {
    "name": "novalite-driver-eager", "version": "0.2.0", "module": "novalite_eager_driver",
    "entry": "eager = \"novalite_eager_driver:EagerDriver\"",
    "code": textwrap.dedent("""\
        from novalite.virt import DemoImage, HostCheck
        from novalite_drivers.fake import FakeDriver

        class EagerDriver(FakeDriver):
            name = "eager"
            contract_version = "1.2"
            auto_priority = 1000

            @classmethod
            def auto_select(cls):
                return HostCheck(True, "the eager driver volunteers first")

            @classmethod
            def demo_image(cls, work_dir):
                return DemoImage("raw", "bare", data=b"the eager demo image\\n",
                                 properties={"description": "eager's own demo"})
        """),
}


def _write_dist(root: Path, dist: dict[str, str]) -> Path:
    src = root / dist["name"]
    (src / dist["module"]).mkdir(parents=True)
    (src / dist["module"] / "__init__.py").write_text(dist["code"])
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist['name']}"
        version = "{dist['version']}"

        [project.entry-points."{dist.get('group', 'novalite.drivers')}"]
        {dist['entry']}

        [tool.setuptools]
        packages = ["{dist['module']}"]
        """))
    return src


def _pip_target(root: Path, dists: tuple[dict[str, str], ...]) -> dict[str, str]:
    """PYTHONPATH holding ``dists``, pip-installed into ``root/site``."""
    target = root / "site"
    sources = [str(_write_dist(root, d)) for d in dists]
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                             "--target", str(target), *sources],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"PYTHONPATH": str(target)}


@pytest.fixture(scope="module")
def bad_plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PYTHONPATH holding the broken and the incompatible plugins, pip-installed there."""
    return _pip_target(tmp_path_factory.mktemp("bad-plugins"), (BROKEN, FUTURE, BROKEN_WEIGHER))


@pytest.fixture(scope="module")
def eager_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _pip_target(tmp_path_factory.mktemp("eager-plugin"), (EAGER,))


def expected_broken() -> str:
    return ("driver 'broken' from distribution novalite-driver-broken 0.1.0: cannot import "
            "novalite_broken_driver:BrokenDriver: ModuleNotFoundError: No module named "
            "'hypervisor_sdk_that_is_not_installed'")


def expected_future() -> str:
    return ("driver 'future' from distribution novalite-driver-future 3.1.4 implements driver "
            f"contract 2.0, but this novalite provides contract {CONTRACT_VERSION} "
            "(major versions must match)")


def test_novalite_drivers_shows_broken_and_incompatible_plugins(bad_plugins: dict[str, str]
                                                                ) -> None:
    table = novalite("drivers", env=bad_plugins)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(" broken " in x and "novalite-driver-broken" in x and "0.1.0" in x
               for x in lines), table.stdout
    assert f"driver broken (novalite-driver-broken 0.1.0): broken: {expected_broken()}" in lines
    assert any(" future " in x and "novalite-driver-future" in x and "2.0" in x
               for x in lines), table.stdout
    assert f"driver future (novalite-driver-future 3.1.4): broken: {expected_future()}" in lines

    rows = {r["name"]: r for r in json.loads(novalite("drivers", "-f", "json",
                                                      env=bad_plugins).stdout)}
    assert rows["broken"]["broken"] is True and rows["broken"]["usable"] is False
    assert rows["future"]["contract"] == "2.0" and rows["future"]["broken"] is True
    assert rows["fake"]["usable"] is True  # the others are unaffected


def test_a_broken_scheduler_plugin_is_reported_like_a_broken_driver(
        tmp_path: Path, bad_plugins: dict[str, str]) -> None:
    error = ("scheduler weigher 'BrokenWeigher' from distribution novalite-weigher-broken "
             "0.3.0: cannot import novalite_broken_weigher:BrokenWeigher: RuntimeError: the "
             "weigher needs a licence key")
    listing = novalite("drivers", env=bad_plugins).stdout.splitlines()
    assert (f"weigher BrokenWeigher (novalite-weigher-broken 0.3.0): broken: {error}"
            in listing), listing
    config = write_config(tmp_path / "novalite.toml", {
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "api": {"host": "127.0.0.1", "port": free_port()},
        "compute": {"driver": "fake"}, "scheduler": {"weighers": ["BrokenWeigher"]}})
    result = novalite("serve", "--config", str(config), env=bad_plugins)
    assert result.returncode == 1
    # (after the warnings about the broken drivers it does not use)
    assert result.stderr.splitlines()[-1] == f"novalite: error: [scheduler] weighers: {error}"


@pytest.mark.parametrize("driver, expected", [("broken", expected_broken),
                                              ("future", expected_future)])
def test_serve_refuses_to_start_on_a_broken_or_incompatible_configured_driver(
        tmp_path: Path, bad_plugins: dict[str, str], driver: str, expected: object) -> None:
    config = write_config(tmp_path / "novalite.toml", {
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "api": {"host": "127.0.0.1", "port": free_port()},
        "compute": {"driver": driver}})
    started = time.monotonic()
    result = novalite("serve", "--config", str(config), env=bad_plugins)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"novalite: error: [compute] driver = '{driver}' cannot be loaded: {expected()}"]  # type: ignore[operator]
    assert time.monotonic() - started < 30


def test_serve_starts_despite_a_broken_plugin_it_does_not_use(
        tmp_path: Path, bad_plugins: dict[str, str]) -> None:
    srv: RunningServer = start(tmp_path / "state", extra_env=bad_plugins)
    try:
        events = [json.loads(x) for x in srv.log().splitlines() if x.startswith("{")]
        warnings = {e["driver"]: e for e in events
                    if e.get("event") == "driver plugin is broken; not loaded"}
        assert warnings["broken"]["distribution"] == "novalite-driver-broken"
        assert warnings["broken"]["error"] == expected_broken()
        assert warnings["future"]["error"] == expected_future()
        with srv.client() as c:
            assert c.get("/compute/v2.1/servers").status_code == 200
    finally:
        assert srv.stop() == 0


# -- the contract's class hooks: auto-selection and the demo image ---------------------------
def test_auto_picks_the_driver_that_volunteers_first_and_registers_its_demo_image(
        tmp_path: Path, eager_plugin: dict[str, str]) -> None:
    listing = novalite("drivers", env=eager_plugin).stdout.splitlines()
    assert '[compute] driver = "auto" runs eager: the eager driver volunteers first' in listing
    srv = start(tmp_path / "state", config={"compute": {"driver": "auto"}},
                extra_env=eager_plugin)
    try:
        starting = next(e for e in srv.log_events() if e.get("event") == "novalite starting")
        assert starting["driver"] == "eager"
        assert starting["why"] == "the eager driver volunteers first"
        with srv.client() as c:
            demo = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]
            assert demo["description"] == "eager's own demo"
            data = c.get(f"/image/v2/images/{demo['id']}/file").content
            assert data == b"the eager demo image\n"
            sid = boot(c, "eager-1", demo["id"])
            wait_status(c, sid, "ACTIVE")
    finally:
        assert srv.stop() == 0
    # The demo image's bytes were a file only while they were registered.
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.startswith("demo")]


def test_the_built_in_demo_image_is_the_boot_sector(tmp_path: Path) -> None:
    srv = start(tmp_path / "state")  # driver fake: the same image as qemu and kvm
    try:
        with srv.client() as c:
            demo = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]
            data = c.get(f"/image/v2/images/{demo['id']}/file").content
    finally:
        srv.stop()
    assert len(data) == 512 and data.endswith(b"\x55\xaa")
    assert b"novalite demo guest" in data
    assert demo["description"] == "512-byte real-mode boot sector that prints to COM1"
