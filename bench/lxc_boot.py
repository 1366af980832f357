"""Benchmark: a container booted through novalite against bare ``lxc-start``.

Run as ``.venv/bin/python bench/lxc_boot.py [--runs N]`` (root, Debian's ``lxc`` and
``busybox-static``). Both sides boot the same busybox root filesystem
(:func:`novalite.testing.rootfs.build_busybox_rootfs`) with the same LXC
configuration: the bare side renders its config with the lxc driver's own
:class:`ContainerConfig` (its own ``-P`` path in a temporary directory,
``lxc.apparmor.profile = unconfined``, ``lxc.net.0.type = empty``, an overlayfs
layer on the unpacked rootfs, the same cgroup limits).

Printed per side, median and range over N runs (default 15) after one warm-up (which also
unpacks the image once on both sides):

* novalite: ``POST /servers`` -> the server shows ACTIVE, and -> the guest's
  ready marker appears in ``os-getConsoleOutput``;
* bare: ``lxc-start -d`` -> it returns (RUNNING), and -> the marker appears in
  the console log file;
* the ratio of the two "ready" medians, and the service's RSS.

Everything lives in one temporary directory, removed at the end; only the
containers started here are stopped (by name, in the private LXC paths), and
the service is stopped by its PID.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from novalite_drivers.lxc import LxcDriver
from novalite_drivers.lxc.config import ContainerConfig, cgroup_layout

from novalite.testing.rootfs import (
    IMAGE_PROPERTIES,
    READY_MARKER,
    build_busybox_rootfs,
)
from novalite.testing.server import RunningServer, start

HOST = "bench-1"
FLAVOR = {"name": "bench.lxc", "ram": 128, "vcpus": 1, "disk": 1}
#: Seconds between looks at the console, on both sides (adds up to this much to each).
POLL = 0.01
#: Seconds between GETs while waiting for ACTIVE; the time itself comes from launched_at,
#: so polling slowly keeps the client from loading the service it measures.
POLL_ACTIVE = 0.02
TIMEOUT = 60.0


def poll(check: Callable[[], bool], what: str, interval: float = POLL) -> float:
    """Call ``check`` every ``interval`` s until true; return the monotonic time it was."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


# -- novalite ----------------------------------------------------------------------
def novalite_boot(c: httpx.Client, image: str, flavor: str, name: str) -> tuple[float, float]:
    """Boot one server; return (seconds to ACTIVE, seconds to the marker), then delete it.

    ACTIVE is when the service recorded it (``OS-SRV-USG:launched_at``, set in the
    same write that makes the server ACTIVE), against the wall clock at the POST.
    """
    body = {"server": {"name": name, "imageRef": image, "flavorRef": flavor}}
    wall0, t0 = time.time(), time.monotonic()
    r = c.post("/compute/v2.1/servers", json=body)
    r.raise_for_status()
    sid = r.json()["server"]["id"]
    launched: list[str] = []

    def active() -> bool:
        server = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
        if server["status"] == "ERROR":
            raise RuntimeError(f"boot failed: {server.get('fault')}")
        launched.append(server["OS-SRV-USG:launched_at"])
        return bool(server["status"] == "ACTIVE")

    def ready() -> bool:
        r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}})
        return READY_MARKER in r.json()["output"]

    poll(active, "ACTIVE", POLL_ACTIVE)
    t_ready = poll(ready, "the ready marker")
    at = dt.datetime.fromisoformat(launched[-1])
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    c.delete(f"/compute/v2.1/servers/{sid}").raise_for_status()
    poll(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, "delete",
         POLL_ACTIVE)
    return at.timestamp() - wall0, t_ready - t0


def upload_rootfs(c: httpx.Client, tarball: str) -> str:
    r = c.post("/image/v2/images", json={"name": "busybox-rootfs", **IMAGE_PROPERTIES})
    r.raise_for_status()
    image = r.json()["id"]
    with open(tarball, "rb") as f:
        c.put(f"/image/v2/images/{image}/file", content=f.read(),
              headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    return str(image)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- bare lxc-start ----------------------------------------------------------------
class Bare:
    """``lxc-start`` by hand in a private LXC path, with the driver's configuration."""

    def __init__(self, root: Path, tarball: str) -> None:
        self.path = root / "containers"
        self.base = root / "base"
        self.path.mkdir(mode=0o700, parents=True)
        self.base.mkdir()
        subprocess.run(["tar", "-x", "-f", tarball, "-C", str(self.base), "--numeric-owner"],
                       check=True)
        self.layout = cgroup_layout()
        self.started: list[str] = []

    def lxc(self, tool: str, name: str, *args: str) -> None:
        subprocess.run([tool, "-P", str(self.path), "-n", name, *args], check=True,
                       capture_output=True, timeout=TIMEOUT)

    def boot(self, name: str) -> tuple[float, float]:
        """Create and start one container; return (seconds to RUNNING, to the marker)."""
        cdir = self.path / name
        upper = cdir / "upper"
        upper.mkdir(parents=True)
        config = ContainerConfig(
            name=name, hostname=name, rootfs=f"overlay:{self.base}:{upper}",
            console_log=str(cdir / "console.log"), log_file=str(cdir / "lxc.log"),
            memory_mb=FLAVOR["ram"], vcpus=FLAVOR["vcpus"], layout=self.layout)
        (cdir / "config").write_text(config.render())
        console = cdir / "console.log"
        self.started.append(name)
        t0 = time.monotonic()
        self.lxc("lxc-start", name, "-d", "-o", str(cdir / "lxc.log"), "-l", "WARN")
        t_running = time.monotonic()
        t_ready = poll(lambda: console.exists() and READY_MARKER in console.read_text(
            errors="replace"), "the marker on the bare container's console")
        self.remove(name)
        return t_running - t0, t_ready - t0

    def remove(self, name: str) -> None:
        subprocess.run(["lxc-stop", "-P", str(self.path), "-n", name, "-k"],
                       capture_output=True, timeout=TIMEOUT)
        subprocess.run(["lxc-destroy", "-P", str(self.path), "-n", name],
                       capture_output=True, timeout=TIMEOUT)
        shutil.rmtree(self.path / name, ignore_errors=True)

    def cleanup(self) -> None:
        for name in self.started:
            if (self.path / name).exists():
                self.remove(name)


# -- report ------------------------------------------------------------------------
def fmt(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"median {statistics.median(ms):7.1f} ms   (range {ms[0]:.1f}-{ms[-1]:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="measured boots per side")
    args = parser.parse_args()
    check = LxcDriver.check_host()
    if not check.usable:
        print(f"cannot run: {check.reason}", file=sys.stderr)
        return 2
    tarball = build_busybox_rootfs()
    root = Path(tempfile.mkdtemp(prefix="novalite-bench-lxc-"))
    srv: RunningServer | None = None
    bare: Bare | None = None
    try:
        srv = start(root / "state", config={
            "compute": {"driver": "lxc", "hosts": [HOST]},
        }, timeout=60)
        c = srv.client()
        image = upload_rootfs(c, tarball)
        r = c.post("/compute/v2.1/flavors", json={"flavor": FLAVOR})
        r.raise_for_status()
        flavor = r.json()["flavor"]["id"]
        bare = Bare(root / "bare", tarball)

        novalite_boot(c, image, flavor, "warm-up")  # unpacks the image once
        bare.boot("warm-up")
        nl_active, nl_ready, bare_running, bare_ready = [], [], [], []
        for i in range(args.runs):  # interleaved, so load on the machine hits both alike
            active, ready = novalite_boot(c, image, flavor, f"bench-{i}")
            nl_active.append(active)
            nl_ready.append(ready)
            running, ready = bare.boot(f"bench-{i}")
            bare_running.append(running)
            bare_ready.append(ready)
        rss = rss_mib(srv.process.pid)

        print(f"lxc boot, busybox rootfs, {args.runs} runs each after a warm-up "
              f"(LXC {subprocess.run(['lxc-start', '--version'], capture_output=True, text=True).stdout.strip()}, "
              f"{os.cpu_count()} CPUs)")
        print(f"novalite  POST /servers -> ACTIVE         {fmt(nl_active)}")
        print(f"novalite  POST /servers -> console marker {fmt(nl_ready)}")
        print(f"bare      lxc-start -d  -> RUNNING        {fmt(bare_running)}")
        print(f"bare      lxc-start -d  -> console marker {fmt(bare_ready)}")
        print(f"ratio     novalite / bare, to the marker: "
              f"{statistics.median(nl_ready) / statistics.median(bare_ready):.1f}x")
        print(f"service   RSS {rss:.0f} MiB (novalite serve, pid {srv.process.pid})")
        return 0
    finally:
        if srv is not None:
            srv.stop()
        if bare is not None:
            bare.cleanup()
        if srv is not None:  # containers the service still holds, in its private path
            lxc_path = srv.state_path / "drivers" / "lxc" / HOST / "containers"
            for name in os.listdir(lxc_path) if lxc_path.is_dir() else []:
                for tool in (["lxc-stop", "-k"], ["lxc-destroy"]):
                    subprocess.run([tool[0], "-P", str(lxc_path), "-n", name, *tool[1:]],
                                   capture_output=True, timeout=TIMEOUT)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
