"""Benchmark: consoles of a QEMU guest through novalite's console proxy.

Run as ``.venv/bin/python bench/consoles.py [--runs N]`` (Debian's
``qemu-system-x86``, ``qemu-utils``, ``chromium``; Playwright from the test extras;
noVNC under ``.venv/share/novnc`` or ``/usr/share/novnc``). The guest is the suite's
Linux test guest (Debian cloud kernel, busybox initramfs, a shell on ttyS0), 128 MiB,
TCG. Printed, each beside its reference:

* **console URL -> first framebuffer update in the browser**: headless Chromium
  (Debian's, driven by Playwright, as tests/drivers/test_qemu_consoles.py) already
  running; timed from ``POST /servers/{id}/remote-consoles`` to noVNC's canvas showing
  the guest's screen (not blank), with the API call and the page load apart; the
  browser's own start beside it. ``--screenshot PATH`` saves the page (PNG).
* **keystroke round trip on the serial websocket**: one character sent over the
  websocket -> its echo back (the guest's shell echoes it), sequentially; reference:
  the same guest under bare QEMU (its command line rebuilt from the driver's
  ``launch.json``) with the serial port on a pipe, the same character written there.
* **proxy CPU per MB relayed**: an RFB client over the VNC websocket (handshake,
  raw encoding, full-screen non-incremental update requests) reads frames for a few
  seconds; the ``novalite serve`` process's CPU (the proxy and the compute host's
  relay are both in it) per MB of websocket payload it relayed.
* **the cost of VGA**: the same guest booted by a service with ``[vnc] enabled =
  true`` and one with ``false`` (``-vga std -vnc unix:`` against ``-vga none``),
  alternately: POST -> the guest's ready marker on the console log, and the QEMU
  process's RSS then.

Everything lives in a temporary directory removed at the end; only processes started
here are ended, by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_ws import connect_ws
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from novalite.testing import guest_images  # noqa: E402
from novalite.testing.server import RunningServer, start  # noqa: E402

FLAVOR = "42"  # m1.nano
TIMEOUT = 180.0
POLL = 0.05
#: A canvas that shows something: any pixel brighter than this in a channel.
NON_BLANK_JS = """() => { const c = document.querySelector('#screen canvas');
    if (!c || c.width < 100) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4)
        if (d[i] > 64 || d[i+1] > 64 || d[i+2] > 64) return true;
    return false; }"""
SCREEN_TEXT = (
    b"clear > /dev/tty1; "
    b"(echo; echo '  novalite: the noVNC console of a QEMU guest'; echo; "
    b"echo \"  hostname: $(hostname)   kernel: $(uname -r)\"; echo; "
    b"echo '  / # ls /'; ls / | tr '\\n' ' '; echo; echo; "
    b"echo '  / # free -m'; free -m; echo; "
    b"echo '  / # ip -4 addr show eth0'; ip -4 addr show eth0; echo) > /dev/tty1; "
    b"echo screen-$((1+1))\r")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def med(values: list[float], unit: str = "s", scale: float = 1.0, fmt: str = ".2f") -> str:
    v = [x * scale for x in values]
    return (f"{statistics.median(v):{fmt}} {unit} "
            f"[{min(v):{fmt}}-{max(v):{fmt}}]")


class Cloud:
    def __init__(self, root: Path, vnc: bool) -> None:
        self.srv: RunningServer = start(root, timeout=60, config={
            "compute": {"driver": "qemu", "power_sync_interval": 10.0,
                        "shutdown_timeout": 10.0},
            "vnc": {"enabled": vnc}})
        self.c = self.srv.client()
        self.instances = root / "instances"

    def upload(self, name: str, path: str, fmt: str, **props: Any) -> str:
        r = self.c.post("/image/v2/images", json={"name": name, "disk_format": fmt,
                                                  "container_format": fmt, **props})
        r.raise_for_status()
        image_id = str(r.json()["id"])
        with open(path, "rb") as f:
            self.c.put(f"/image/v2/images/{image_id}/file", content=f.read(), headers={
                "Content-Type": "application/octet-stream"}).raise_for_status()
        return image_id

    def upload_linux(self, linux: guest_images.LinuxGuest, root: str) -> str:
        kernel = self.upload("con-kernel", linux.kernel, "aki")
        ramdisk = self.upload("con-ramdisk", linux.initrd, "ari")
        return self.upload("con-linux", root, "ami", kernel_id=kernel, ramdisk_id=ramdisk,
                           os_command_line=linux.append)

    def console_log(self, sid: str) -> str:
        r = self.c.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"os-getConsoleOutput": {}})
        return str(r.json()["output"]) if r.status_code == 200 else ""

    def boot(self, image: str) -> tuple[str, float]:
        """POST and wait for the guest's ready marker; (id, seconds)."""
        t0 = time.perf_counter()
        r = self.c.post("/compute/v2.1/servers", json={"server": {
            "name": "con-guest", "imageRef": image, "flavorRef": FLAVOR}})
        r.raise_for_status()
        sid = str(r.json()["server"]["id"])
        deadline = t0 + TIMEOUT
        while time.perf_counter() < deadline:
            if guest_images.LINUX_MARKER in self.console_log(sid):
                return sid, time.perf_counter() - t0
            time.sleep(POLL)
        raise RuntimeError("the guest did not come up")

    def qemu_pid(self, sid: str) -> int:
        pid = qemu_process.live_pid(str(self.instances / sid), sid)
        assert pid is not None
        return pid

    def console_url(self, sid: str, protocol: str, kind: str) -> str:
        r = self.c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
                        json={"remote_console": {"protocol": protocol, "type": kind}})
        r.raise_for_status()
        return str(r.json()["remote_console"]["url"])

    def delete(self, sid: str) -> None:
        self.c.delete(f"/compute/v2.1/servers/{sid}")
        deadline = time.perf_counter() + 60
        while (self.c.get(f"/compute/v2.1/servers/{sid}").status_code != 404
               and time.perf_counter() < deadline):
            time.sleep(POLL)

    def close(self) -> None:
        self.c.close()
        self.srv.stop()
        if self.instances.is_dir():  # never leave a guest behind: only our pidfiles
            for uuid in os.listdir(self.instances):
                pid = qemu_process.live_pid(str(self.instances / uuid), uuid)
                if pid is not None:
                    qemu_process.kill_qemu(pid, uuid)


def ws_http(url: str) -> str:
    return "http" + url.removeprefix("ws")


def receive_until(ws: Any, marker: bytes, timeout: float = 30) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while marker not in got:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {marker!r} in {got[-300:]!r}")
        got += ws.receive_bytes(timeout=timeout)
    return got


# -- the browser -----------------------------------------------------------------------


def browser_frames(cloud: Cloud, sid: str, runs: int, screenshot: str | None
                   ) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"api": [], "load": [], "frame": [], "start": []}
    with sync_playwright() as p:
        t = time.perf_counter()
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox"])
        out["start"].append(time.perf_counter() - t)
        try:
            for i in range(runs + 1):  # the first warms the page cache up
                page = browser.new_page(viewport={"width": 800, "height": 560})
                t0 = time.perf_counter()
                url = cloud.console_url(sid, "vnc", "novnc")
                t_api = time.perf_counter()
                page.goto(url)
                t_load = time.perf_counter()
                page.wait_for_function(NON_BLANK_JS, timeout=60_000, polling="raf")
                t_frame = time.perf_counter()
                if i:
                    out["api"].append(t_api - t0)
                    out["load"].append(t_load - t0)
                    out["frame"].append(t_frame - t0)
                if screenshot and i == runs:
                    time.sleep(1.0)  # let the rest of the screen arrive
                    page.screenshot(path=screenshot)
                page.close()
        finally:
            browser.close()
    return out


# -- the serial console ----------------------------------------------------------------


def keystrokes_ws(url: str, count: int) -> list[float]:
    times = []
    with httpx.Client(timeout=30) as client, \
            connect_ws(ws_http(url), client, subprotocols=["binary"]) as ws:
        ws.send_bytes(b"\x15echo ready-$((2+2))\r")
        receive_until(ws, b"ready-4")
        time.sleep(0.5)
        for i in range(count):
            ch = bytes([ord("a") + i % 26])
            t = time.perf_counter()
            ws.send_bytes(ch)
            receive_until(ws, ch, timeout=10)
            times.append(time.perf_counter() - t)
        ws.send_bytes(b"\x15\r")
    return times


def keystrokes_bare(argv: list[str], work: Path, count: int) -> list[float]:
    for name in (qemu_process.QMP_SOCKET, qemu_process.EVENTS_SOCKET):
        (work / name).unlink(missing_ok=True)
    qemu = subprocess.Popen(argv, cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert qemu.stdin is not None and qemu.stdout is not None
    out = qemu.stdout.fileno()

    def until(marker: bytes, timeout: float) -> None:
        got = b""
        deadline = time.monotonic() + timeout
        while marker not in got:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare QEMU: no {marker!r} in {got[-300:]!r}")
            got += os.read(out, 65536)

    def send(data: bytes) -> None:
        qemu.stdin.write(data)  # type: ignore[union-attr]
        qemu.stdin.flush()  # type: ignore[union-attr]

    try:
        until(guest_images.LINUX_MARKER.encode(), TIMEOUT)
        time.sleep(1.0)
        send(b"\x15echo ready-$((2+2))\r")
        until(b"ready-4", 30)
        time.sleep(0.5)
        times = []
        for i in range(count):
            ch = bytes([ord("a") + i % 26])
            t = time.perf_counter()
            send(ch)
            until(ch, 10)
            times.append(time.perf_counter() - t)
        return times
    finally:
        qemu.send_signal(signal.SIGKILL)
        qemu.wait()


def bare_argv(launch_dir: str, work: Path) -> list[str]:
    """The guest's command line from its launch.json, foreground, serial on stdio."""
    cfg = qemu_process.LaunchConfig.load(launch_dir)
    work.mkdir(exist_ok=True)
    for disk in cfg.disks:
        shutil.copyfile(os.path.join(launch_dir, disk.path), work / disk.path)
    for name in (cfg.kernel, cfg.initrd):
        if name:
            shutil.copyfile(os.path.join(launch_dir, name), work / name)
    argv = qemu_process.build_argv(cfg, str(work))
    argv.remove("-daemonize")
    ring = argv.index(f"ringbuf,id={qemu_process.CONSOLE_CHARDEV},"
                      f"size={cfg.console_ring_bytes}")
    argv[ring] = f"stdio,id={qemu_process.CONSOLE_CHARDEV},signal=off"
    return argv


# -- VNC through the proxy -------------------------------------------------------------


class RfbOverWs:
    """Just enough of an RFB 3.8 client (security None, raw encoding) over a websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.buf = b""
        self.received = 0

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.ws.receive_bytes(timeout=30)
            self.received += len(chunk)
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def handshake(self) -> tuple[int, int, int]:
        version = self.read(12)
        if not version.startswith(b"RFB 003."):
            raise RuntimeError(f"not RFB: {version!r}")
        self.ws.send_bytes(b"RFB 003.008\n")
        types = self.read(self.read(1)[0])
        if 1 not in types:
            raise RuntimeError(f"no 'None' security type offered: {list(types)}")
        self.ws.send_bytes(b"\x01")
        if struct.unpack(">I", self.read(4))[0] != 0:
            raise RuntimeError("security handshake failed")
        self.ws.send_bytes(b"\x01")  # ClientInit: shared
        width, height = struct.unpack(">HH", self.read(4))
        bpp = self.read(16)[0]
        self.read(struct.unpack(">I", self.read(4))[0])  # the desktop's name
        self.ws.send_bytes(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: raw
        return width, height, bpp

    def full_frame(self, width: int, height: int, bpp: int) -> None:
        self.ws.send_bytes(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        while True:
            kind = self.read(1)[0]
            if kind == 0:
                break
            if kind == 2:  # bell
                continue
            if kind == 3:  # server cut text
                self.read(3)
                self.read(struct.unpack(">I", self.read(4))[0])
                continue
            raise RuntimeError(f"unexpected RFB message {kind}")
        self.read(1)
        for _ in range(struct.unpack(">H", self.read(2))[0]):
            _x, _y, w, h, enc = struct.unpack(">HHHHi", self.read(12))
            if enc != 0:
                raise RuntimeError(f"unexpected encoding {enc}")
            self.read(w * h * bpp // 8)


def vnc_cpu_per_mb(cloud: Cloud, sid: str, seconds: float) -> dict[str, float]:
    url = cloud.console_url(sid, "vnc", "novnc")
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.parse_qs(parts.query)["path"][0]
    svc = cloud.srv.process.pid
    qemu = cloud.qemu_pid(sid)
    with httpx.Client(timeout=30) as client, \
            connect_ws(f"http://{parts.netloc}/{path}", client,
                       subprotocols=["binary"]) as ws:
        rfb = RfbOverWs(ws)
        width, height, bpp = rfb.handshake()
        rfb.full_frame(width, height, bpp)
        frames = 0
        start_bytes = rfb.received
        c0, q0, t0 = cpu_seconds(svc), cpu_seconds(qemu), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            rfb.full_frame(width, height, bpp)
            frames += 1
        c1, q1, t1 = cpu_seconds(svc), cpu_seconds(qemu), time.perf_counter()
    mb = (rfb.received - start_bytes) / 1e6
    return {"mb": mb, "frames": frames, "secs": t1 - t0, "width": width, "height": height,
            "bpp": bpp, "svc_cpu": c1 - c0, "qemu_cpu": q1 - q0}


# -- VGA or not ------------------------------------------------------------------------


def vga_cost(clouds: dict[bool, Cloud], images: dict[bool, str], runs: int
             ) -> dict[bool, dict[str, list[float]]]:
    out: dict[bool, dict[str, list[float]]] = {v: {"boot": [], "rss": []} for v in clouds}
    for _ in range(runs):
        for vnc, cloud in clouds.items():
            sid, took = cloud.boot(images[vnc])
            out[vnc]["boot"].append(took)
            out[vnc]["rss"].append(rss_mib(cloud.qemu_pid(sid)))
            cloud.delete(sid)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keys", type=int, default=50, help="keystrokes per side")
    parser.add_argument("--vnc-seconds", type=float, default=10.0)
    parser.add_argument("--screenshot", default="", help="save the noVNC page (PNG)")
    args = parser.parse_args()
    if not hostcheck.check_qemu().usable:
        print(f"cannot run: {hostcheck.check_qemu().reason}")
        return 2
    if shutil.which("chromium") is None:
        print("cannot run: Debian's chromium is not installed")
        return 2
    linux = guest_images.linux_guest()
    print(f"console benchmark: medians [min-max]; {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="novalite-bench-con-") as tmp:
        root = Path(tmp)
        blank = root / "root.img"
        blank.write_bytes(bytes(1024 * 1024))
        clouds: dict[bool, Cloud] = {}
        try:
            clouds[True] = Cloud(root / "vnc", True)
            cloud = clouds[True]
            image = cloud.upload_linux(linux, str(blank))
            sid, _ = cloud.boot(image)
            argv = bare_argv(str(cloud.instances / sid), root / "bare")
            serial = cloud.console_url(sid, "serial", "serial")
            with httpx.Client(timeout=30) as client, \
                    connect_ws(ws_http(serial), client, subprotocols=["binary"]) as ws:
                ws.send_bytes(SCREEN_TEXT)
                receive_until(ws, b"screen-2")

            frames = browser_frames(cloud, sid, args.runs, args.screenshot or None)
            print("\n== console URL request -> first framebuffer update in the browser "
                  f"(headless Chromium, noVNC vnc_lite.html; {args.runs} runs)")
            print(f"   POST remote-consoles answered        {med(frames['api'], 'ms', 1000, '.0f')}")
            print(f"   page loaded (noVNC's scripts)        {med(frames['load'], 'ms', 1000, '.0f')}")
            print(f"   first non-blank frame on the canvas  {med(frames['frame'], 'ms', 1000, '.0f')}")
            print(f"   (the browser's own start, once: {frames['start'][0] * 1000:.0f} ms)")
            if args.screenshot:
                print(f"   screenshot: {args.screenshot}")

            ws_times = keystrokes_ws(cloud.console_url(sid, "serial", "serial"), args.keys)
            bare_times = keystrokes_bare(argv, root / "bare", args.keys)
            b, m = statistics.median(bare_times), statistics.median(ws_times)
            print(f"\n== keystroke round trip on the serial console ({args.keys} keys, "
                  "sequential; the guest's shell echoes each)")
            print(f"   bare QEMU, serial on a pipe           {med(bare_times, 'ms', 1000, '.1f')}")
            print(f"   novalite serial websocket             {med(ws_times, 'ms', 1000, '.1f')}"
                  f"   +{(m - b) * 1000:.1f} ms, ratio {m / b:.2f}; p95 "
                  f"{sorted(ws_times)[int(0.95 * len(ws_times))] * 1000:.1f} ms")

            v = vnc_cpu_per_mb(cloud, sid, args.vnc_seconds)
            print(f"\n== VNC through the proxy: {v['frames']} full {v['width']}x{v['height']}x"
                  f"{v['bpp']} raw frames in {v['secs']:.1f} s, {v['mb']:.0f} MB "
                  f"({v['mb'] / v['secs']:.1f} MB/s)")
            print(f"   novalite serve CPU (proxy + compute host relay) "
                  f"{v['svc_cpu'] * 1000 / v['mb']:.1f} ms per MB "
                  f"({v['svc_cpu'] / v['secs'] * 100:.0f}% of a core); "
                  f"QEMU's VNC server beside it {v['qemu_cpu'] * 1000 / v['mb']:.1f} ms per MB")
            cloud.delete(sid)

            clouds[False] = Cloud(root / "novnc", False)
            images = {True: image, False: clouds[False].upload_linux(linux, str(blank))}
            cost = vga_cost(clouds, images, args.runs)
            print(f"\n== [vnc] enabled: the guest with and without VGA ({args.runs} boots "
                  "each, alternately; POST -> ready marker on the console log)")
            for vnc in (False, True):
                flags = "-vga std -vnc unix:vnc.sock" if vnc else "-vga none"
                print(f"   enabled = {str(vnc).lower():5s} ({flags:27s}) boot "
                      f"{med(cost[vnc]['boot'])}   QEMU RSS {med(cost[vnc]['rss'], 'MiB', 1, '.1f')}")
            db = statistics.median(cost[True]["boot"]) - statistics.median(cost[False]["boot"])
            dr = statistics.median(cost[True]["rss"]) - statistics.median(cost[False]["rss"])
            print(f"   VGA costs {db * 1000:+.0f} ms of boot and {dr:+.1f} MiB of RSS per guest")
        finally:
            for c in clouds.values():
                c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
