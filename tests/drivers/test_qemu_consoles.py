"""Consoles of a real QEMU guest through the API and the console proxy.

One Linux guest (its busybox init runs a shell on ttyS0): a command typed over the
serial websocket runs and its output comes back, while the console log keeps
recording; the VNC websocket speaks RFB from QEMU's VNC server on the guest's UNIX
socket. Both go API -> token -> proxy -> the compute host's relay -> the driver.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from httpx_ws import connect_ws
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

from novalite.testing import guest_images
from tests.drivers.test_qemu_api import FLAVOR, LINUX_BOOT, Cloud

if TYPE_CHECKING:
    from tests.drivers.conftest import PidTracker

pytestmark = pytest.mark.skipif(not hostcheck.check_qemu().usable,
                                reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory,
          module_qemu_pids: PidTracker) -> Iterator[Cloud]:
    config = {"compute": {"driver": "qemu", "power_sync_interval": 1.0}}
    cloud = Cloud(tmp_path_factory.mktemp("qemu-consoles"), config, module_qemu_pids)
    try:
        yield cloud
    finally:
        cloud.close()


@pytest.fixture(scope="module")
def vm(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    linux = guest_images.linux_guest()
    root = tmp_path_factory.mktemp("root-disk") / "root.img"
    root.write_bytes(bytes(1024 * 1024))
    image = cloud.upload_linux(linux, str(root), "linux-console")
    sid = cloud.boot("console-1", image)
    assert FLAVOR
    cloud.wait_status(sid, "ACTIVE", LINUX_BOOT)
    cloud.wait_console(sid, guest_images.LINUX_MARKER)
    yield sid
    cloud.c.delete(f"/compute/v2.1/servers/{sid}")


def console_url(cloud: Cloud, sid: str, protocol: str, kind: str) -> str:
    r = cloud.c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
                     json={"remote_console": {"protocol": protocol, "type": kind}})
    assert r.status_code == 200, r.text
    return str(r.json()["remote_console"]["url"])


def receive_until(ws: object, marker: bytes, timeout: float = 30) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while marker not in got:
        assert time.monotonic() < deadline, f"no {marker!r} in {got[-500:]!r}"
        got += ws.receive_bytes(timeout=timeout)  # type: ignore[attr-defined]
    return got


def test_a_command_typed_on_the_serial_console_runs_in_the_guest(cloud: Cloud,
                                                                 vm: str) -> None:
    url = console_url(cloud, vm, "serial", "serial")
    with httpx.Client(timeout=30) as client, \
            connect_ws("http" + url.removeprefix("ws"), client) as ws:
        ws.send_bytes(b"echo con$((6*7))sole; (sleep 2; echo AFTER-SESSION) &\r")
        receive_until(ws, b"con42sole")
    # The console log recorded the session, and records again after it (the ring is back).
    log = cloud.wait_console(vm, "AFTER-SESSION", timeout=30)
    assert "con42sole" in log
    # A second session works the same way.
    with httpx.Client(timeout=30) as client, \
            connect_ws("http" + url.removeprefix("ws"), client) as ws:
        ws.send_bytes(b"uname -s\r")
        receive_until(ws, b"Linux")


def test_the_vnc_console_speaks_rfb_from_the_guests_unix_socket(cloud: Cloud,
                                                                 vm: str) -> None:
    url = console_url(cloud, vm, "vnc", "novnc")
    parts = urllib.parse.urlsplit(url)
    assert parts.path == "/vnc_lite.html"
    path = urllib.parse.parse_qs(parts.query)["path"][0]  # "?token=..." (Nova's shape)
    assert path.startswith("?token=")
    ws_url = f"http://{parts.netloc}/{path}"
    with httpx.Client(timeout=30) as client, \
            connect_ws(ws_url, client, subprotocols=["binary"]) as ws:
        assert ws.subprotocol == "binary"
        assert ws.receive_bytes(timeout=30).startswith(b"RFB 003.008")
    # The guest has a display only on a UNIX socket: no TCP port of QEMU's listens.
    directory = cloud.instance_dir(vm)
    assert qemu_process.LaunchConfig.load(directory).vnc
    assert (cloud.state / "instances" / vm / qemu_process.VNC_SOCKET).is_socket()


def _screendump(cloud: Cloud, vm: str, path: str) -> tuple[int, int, bytes]:
    """QEMU's own screendump of the guest (PPM P6) as (width, height, RGB bytes)."""
    import trio
    from novalite_drivers.qemu.qmp import qmp_execute

    sock = str(cloud.state / "instances" / vm / qemu_process.QMP_SOCKET)
    trio.run(qmp_execute, sock, "screendump", {"filename": path})
    data = open(path, "rb").read()
    header, rest = data.split(b"\n", 1)
    assert header == b"P6"
    size, rest = rest.split(b"\n", 1)
    _maxval, pixels = rest.split(b"\n", 1)
    width, height = (int(n) for n in size.split())
    return width, height, pixels


def test_the_novnc_page_shows_the_guest_screen_and_keys_reach_the_guest(
        cloud: Cloud, vm: str, tmp_path: object) -> None:
    import shutil

    playwright = pytest.importorskip("playwright.sync_api")
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (./dev test installs it)")
    # Something on the guest's screen, and whatever is typed on it copied to the serial
    # log: set up over the serial console.
    serial = console_url(cloud, vm, "serial", "serial")
    with httpx.Client(timeout=30) as client, \
            connect_ws("http" + serial.removeprefix("ws"), client) as ws:
        ws.send_bytes(b"clear > /dev/tty1; echo NOVALITE-SCREEN > /dev/tty1; "
                      b"(cat /dev/tty1 > /dev/ttyS0 &); echo set-up-$((1+1))\r")
        receive_until(ws, b"set-up-2")
    url = console_url(cloud, vm, "vnc", "novnc")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page()
            started = time.monotonic()
            page.goto(url)
            page.wait_for_function(
                """() => { const c = document.querySelector('#screen canvas');
                           if (!c || c.width < 100) return false;
                           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                           for (let i = 0; i < d.length; i += 4)
                               if (d[i] > 64 || d[i+1] > 64 || d[i+2] > 64) return true;
                           return false; }""", timeout=60_000)
            first_frame = time.monotonic() - started
            width, height, dump = _screendump(cloud, vm, str(tmp_path) + "/screen.ppm")
            canvas = page.evaluate(
                """() => { const c = document.querySelector('#screen canvas');
                           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                           return [c.width, c.height, Array.from(d.data)]; }""")
            assert (canvas[0], canvas[1]) == (width, height)
            rgba = canvas[2]
            diff = sum(abs(rgba[i * 4 + k] - dump[i * 3 + k])
                       for i in range(width * height) for k in range(3))
            assert diff / (width * height * 3) < 8, "the page differs from QEMU's screendump"
            page.locator("#screen canvas").click()
            page.keyboard.type("typed-in-novnc\n")
            cloud.wait_console(vm, "typed-in-novnc", timeout=30)
            print(f"console URL to first non-blank frame: {first_frame:.2f} s")
        finally:
            browser.close()


def test_real_clients_show_the_novnc_url(cloud: Cloud, vm: str) -> None:
    import json

    from tests.test_real_clients import CLIENTS, run

    if not (CLIENTS / "openstack").exists():
        pytest.skip("the real OpenStack clients are not installed")
    shown = json.loads(run(cloud.srv, str(CLIENTS / "openstack"), "console", "url", "show",
                           "--novnc", "-f", "json", vm))
    assert "/vnc_lite.html?path=%3Ftoken%3D" in shown["url"]
    out = run(cloud.srv, str(CLIENTS / "nova"), "get-vnc-console", vm, "novnc")
    assert "/vnc_lite.html?path=%3Ftoken%3D" in out
    page = httpx.get(shown["url"], timeout=30)
    if page.status_code == 404:
        pytest.skip("noVNC is not installed (./dev installs it)")
    assert page.status_code == 200 and "RFB" in page.text
