"""Benchmark: live migration of a real QEMU guest through novalite, beside bare QEMU
doing the same migration by hand; resize and shelve/unshelve wall times.

Run as ``.venv/bin/python bench/live_migration.py [--runs N]`` (Debian's
``qemu-system-x86``, ``qemu-utils``; the Linux test guest is built on first use by
:mod:`novalite.testing.guest_images`).

The guest: the Debian cloud kernel + busybox initramfs (TCG), on a 256 MiB flavor,
booted until its marker is on the console (so its memory holds a booted kernel, not
only zero pages).

* novalite: one ``novalite serve`` with two qemu hosts; ``os-migrateLive`` back and
  forth N times, timed from the POST to the migration ``completed`` and the server
  ACTIVE on the other host (polled every 10 ms). Downtime: QMP's ``downtime`` (the
  source's figure, from its last stop to the end of the copy) and the guest's whole
  pause (that, plus the hop from the source to the destination's ``cont``), both from
  the service's log.
* bare QEMU: the same guest's command line (its launch.json) started by hand twice in
  a temporary directory - the source booted to its marker (both guests then idle
  :data:`SETTLE` seconds before their first migration), the destination with
  ``-incoming defer -S`` - and the same QMP steps (NBD export, drive-mirror, migrate,
  cont) sent directly, timed from starting the destination to it running.
* a cold migration of the same guest to the other host (its disk exported over NBD
  and copied there) to VERIFY_RESIZE and confirm;
* resize (m1 256 MiB -> 512 MiB, same host) to VERIFY_RESIZE and confirm; shelve (to
  SHELVED_OFFLOADED) and unshelve (to ACTIVE), on a one-host service.

Everything lives in a temporary directory removed at the end; only processes started
here are ended, by PID.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from novalite_drivers.qemu import hostcheck, launch, live
from novalite_drivers.qemu import process as qemu_process
from novalite_drivers.qemu.qmp import qmp_execute

from novalite.testing import guest_images
from novalite.testing.server import RunningServer, start

HOSTS = ("bench-a", "bench-b")
POLL = 0.01
TIMEOUT = 300.0
#: Seconds each guest runs idle after its marker before it is migrated: a guest still
#: booting dirties its memory while it is copied, which is another benchmark.
SETTLE = 5.0


def poll(check: Callable[[], Any], what: str, timeout: float = TIMEOUT,
         interval: float = POLL) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


class Service:
    def __init__(self, root: Path, hosts: tuple[str, ...]) -> None:
        self.root = root
        self.hosts = hosts
        self.srv: RunningServer = start(root, timeout=60, config={
            "compute": {"driver": "qemu", "hosts": list(hosts),
                        "power_sync_interval": 10.0, "shutdown_timeout": 10.0}})
        self.c = self.srv.client()

    def instances(self, host: str) -> Path:
        return self.root / "instances" / host if len(self.hosts) > 1 \
            else self.root / "instances"

    def upload(self, name: str, path: str, disk_format: str, container_format: str,
               **props: Any) -> str:
        r = self.c.post("/image/v2/images", json={"name": name, "disk_format": disk_format,
                                                  "container_format": container_format,
                                                  **props})
        r.raise_for_status()
        image_id = str(r.json()["id"])
        with open(path, "rb") as f:
            self.c.put(f"/image/v2/images/{image_id}/file", content=f.read(),
                       headers={"Content-Type": "application/octet-stream"}
                       ).raise_for_status()
        return image_id

    def linux_image(self, linux: guest_images.LinuxGuest, root: str) -> str:
        kernel = self.upload("bench-kernel", linux.kernel, "aki", "aki")
        ramdisk = self.upload("bench-ramdisk", linux.initrd, "ari", "ari")
        return self.upload("bench-linux", root, "ami", "ami", kernel_id=kernel,
                           ramdisk_id=ramdisk, os_command_line=linux.append)

    def flavor(self, name: str, ram: int) -> str:
        r = self.c.post("/compute/v2.1/flavors", json={"flavor": {
            "name": name, "ram": ram, "vcpus": 1, "disk": 1}})
        r.raise_for_status()
        return str(r.json()["flavor"]["id"])

    def server(self, sid: str) -> dict[str, Any]:
        r = self.c.get(f"/compute/v2.1/servers/{sid}")
        r.raise_for_status()
        server: dict[str, Any] = r.json()["server"]
        if server["status"] == "ERROR":
            raise RuntimeError(f"server in ERROR: {server.get('fault')}")
        return server

    def settled(self, sid: str, status: str) -> bool:
        s = self.server(sid)
        return bool(s["status"] == status and s["OS-EXT-STS:task_state"] is None)

    def console_has(self, sid: str, marker: str) -> bool:
        r = self.c.post(f"/compute/v2.1/servers/{sid}/action",
                        json={"os-getConsoleOutput": {}})
        return r.status_code == 200 and marker in r.json()["output"]

    def action(self, sid: str, body: dict[str, Any]) -> float:
        t0 = time.perf_counter()
        r = self.c.post(f"/compute/v2.1/servers/{sid}/action", json=body)
        if r.status_code not in (202, 204):
            raise RuntimeError(f"{body}: {r.status_code} {r.text}")
        return t0

    def boot(self, name: str, image: str, flavor: str) -> str:
        r = self.c.post("/compute/v2.1/servers", json={"server": {
            "name": name, "imageRef": image, "flavorRef": flavor}})
        r.raise_for_status()
        sid = str(r.json()["server"]["id"])
        poll(lambda: self.settled(sid, "ACTIVE"), "ACTIVE")
        poll(lambda: self.console_has(sid, guest_images.LINUX_MARKER), "the guest's marker",
             interval=0.2)
        return sid

    def close(self) -> None:
        self.c.close()
        self.srv.stop()
        for host in self.hosts:
            d = self.instances(host)
            if d.is_dir():
                for uuid in os.listdir(d):
                    pid = qemu_process.live_pid(str(d / uuid), uuid)
                    if pid is not None:
                        qemu_process.kill_qemu(pid, uuid)


def median_range(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    fmt = "{:.0f}" if unit == "ms" else "{:.2f}"
    return (f"{fmt.format(statistics.median(v))} {unit} "
            f"({fmt.format(min(v))}-{fmt.format(max(v))})")


def novalite_live(svc: Service, sid: str, runs: int) -> list[dict[str, float]]:
    results = []
    for i in range(runs):
        here = svc.server(sid)["OS-EXT-SRV-ATTR:host"]
        there = next(h for h in svc.hosts if h != here)
        seen = len(svc.srv.log_events())
        t0 = svc.action(sid, {"os-migrateLive": {"host": there, "block_migration": "auto"}})

        def done(there: str = there) -> bool:
            s = svc.server(sid)
            return bool(s["OS-EXT-SRV-ATTR:host"] == there and s["status"] == "ACTIVE"
                        and s["OS-EXT-STS:task_state"] is None)

        t1 = poll(done, "the migration")
        events = svc.srv.log_events()[seen:]
        src = next(e for e in events if e.get("event") == "guest live-migrated")
        dst = next(e for e in events if e.get("event") == "guest runs on the destination")
        results.append({"total": t1 - t0, "qemu_total": src["total_time_ms"] / 1000,
                        "downtime": src["downtime_ms"] / 1000,
                        "paused": dst["paused_ms"] / 1000})
        print(f"  novalite run {i + 1}: {here} -> {there} {t1 - t0:.2f} s, QMP downtime "
              f"{src['downtime_ms']} ms, guest paused {dst['paused_ms']} ms", flush=True)
    return results


async def _bare_once(launch_dir: str, work: Path) -> dict[str, float]:
    """The guest's launch.json started twice by hand, migrated with the same QMP steps."""
    cfg = qemu_process.LaunchConfig.load(launch_dir)
    dirs = {}
    for side in ("src", "dst"):
        d = work / side
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        info = json.loads((await trio.run_process(
            ["qemu-img", "info", "-U", "--output=json",
             os.path.join(launch_dir, "disk.qcow2")], capture_stdout=True)).stdout)
        await trio.run_process(["qemu-img", "create", "-q", "-f", "qcow2",
                                "-b", info["backing-filename"],
                                "-F", info.get("backing-filename-format", "raw"),
                                str(d / "disk.qcow2"), str(info["virtual-size"])])
        for name in ("kernel", "initrd", "disk.config"):
            if os.path.exists(os.path.join(launch_dir, name)):
                shutil.copyfile(os.path.join(launch_dir, name), d / name)
        nics = [qemu_process.NicConfig(n.address, n.cidr, n.gateway, n.mac)
                for n in cfg.nics]
        qemu_process.LaunchConfig(**{**cfg.__dict__, "nics": nics,
                                     "uuid": cfg.uuid}).save(str(d))
        dirs[side] = d
    src, dst = (str(dirs["src"]), str(dirs["dst"]))
    try:
        await launch.start_qemu(src, cfg.uuid)
        deadline = time.monotonic() + TIMEOUT
        text = b""
        while guest_images.LINUX_MARKER.encode() not in text:
            if time.monotonic() > deadline:
                raise RuntimeError("bare source guest did not boot")
            text += base64.b64decode(await qmp_execute(
                os.path.join(src, qemu_process.QMP_SOCKET), "ringbuf-read",
                {"device": qemu_process.CONSOLE_CHARDEV, "size": 65536, "format": "base64"}))
            await trio.sleep(0.2)
        await trio.sleep(SETTLE)  # as the novalite guest: booted, then idle a while
        t0 = time.perf_counter()
        await launch.start_qemu(dst, cfg.uuid, "defer", wait=False)
        data = await live.listen(os.path.join(dst, qemu_process.QMP_SOCKET), "127.0.0.1")
        figures = await live.send(os.path.join(src, qemu_process.QMP_SOCKET), data,
                                  bandwidth_mib=0, downtime_ms=500, timeout=TIMEOUT)
        await live.start(os.path.join(dst, qemu_process.QMP_SOCKET))
        t1 = time.perf_counter()
        paused = figures["downtime_ms"] / 1000 + (time.time() - figures["completed_at"])
        return {"total": t1 - t0, "qemu_total": figures["total_time_ms"] / 1000,
                "downtime": figures["downtime_ms"] / 1000, "paused": paused}
    finally:
        for d in (src, dst):
            pid = qemu_process.read_pid(d)
            if pid is not None:
                qemu_process.kill_qemu(pid, cfg.uuid)


def bare_live(launch_dir: str, work: Path, runs: int) -> list[dict[str, float]]:
    results = []
    for i in range(runs):
        r = trio.run(_bare_once, launch_dir, work)
        print(f"  bare run {i + 1}: {r['total']:.2f} s, QMP downtime "
              f"{r['downtime'] * 1000:.0f} ms, guest paused {r['paused'] * 1000:.0f} ms",
              flush=True)
        results.append(r)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    check = hostcheck.check_qemu()
    if not check.usable:
        print(f"skipped: {check.reason}")
        return 0
    linux = guest_images.linux_guest()
    root = Path(tempfile.mkdtemp(prefix="novalite-bench-live-"))
    try:
        blank = root / "root.img"
        blank.write_bytes(bytes(1024 * 1024))
        svc = Service(root / "two-hosts", HOSTS)
        try:
            flavor = svc.flavor("bench.256", 256)
            image = svc.linux_image(linux, str(blank))
            sid = svc.boot("bench-live", image, flavor)
            print(f"live migration of a 256 MiB Linux guest (TCG), {args.runs} runs each way",
                  flush=True)
            time.sleep(SETTLE)
            ours = novalite_live(svc, sid, args.runs)
            host = svc.server(sid)["OS-EXT-SRV-ATTR:host"]
            launch_dir = str(svc.instances(host) / sid)
            bare = bare_live(launch_dir, root / "bare", args.runs)
            t0 = svc.action(sid, {"migrate": None})
            cold = poll(lambda: svc.settled(sid, "VERIFY_RESIZE"), "VERIFY_RESIZE") - t0
            t0 = svc.action(sid, {"confirmResize": None})
            cold_confirm = poll(lambda: svc.settled(sid, "ACTIVE"), "ACTIVE") - t0
        finally:
            svc.close()
        one = Service(root / "one-host", ("bench-one",))
        try:
            small, big = one.flavor("bench.256", 256), one.flavor("bench.512", 512)
            image = one.linux_image(linux, str(blank))
            sid = one.boot("bench-resize", image, small)
            t0 = one.action(sid, {"resize": {"flavorRef": big}})
            resize = poll(lambda: one.settled(sid, "VERIFY_RESIZE"), "VERIFY_RESIZE") - t0
            t0 = one.action(sid, {"confirmResize": None})
            confirm = poll(lambda: one.settled(sid, "ACTIVE"), "ACTIVE") - t0
            t0 = one.action(sid, {"shelve": None})
            shelve = poll(lambda: one.settled(sid, "SHELVED_OFFLOADED"), "offloaded") - t0
            t0 = one.action(sid, {"unshelve": None})
            unshelve = poll(lambda: one.settled(sid, "ACTIVE"), "ACTIVE") - t0
        finally:
            one.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def col(results: list[dict[str, float]], key: str, ms: bool = False) -> str:
        return median_range([r[key] for r in results], "ms" if ms else "s",
                            1000.0 if ms else 1.0)

    print("\nlive migration, 256 MiB guest      novalite              bare QEMU (by hand)"
          "      ratio")
    for key, label, ms in (("total", "total wall time", False),
                           ("qemu_total", "QEMU's total-time", False),
                           ("downtime", "QMP downtime", True),
                           ("paused", "guest paused", True)):
        a = statistics.median(r[key] for r in ours)
        b = statistics.median(r[key] for r in bare)
        print(f"  {label:<32} {col(ours, key, ms):<21} {col(bare, key, ms):<24} "
              f"{a / b if b else float('nan'):.2f}")
    print(f"\ncold migration to the other host (disk over NBD): {cold:.2f} s to "
          f"VERIFY_RESIZE, confirm {cold_confirm:.2f} s")
    print(f"resize 256 -> 512 MiB (same host): {resize:.2f} s to VERIFY_RESIZE, "
          f"confirm {confirm:.2f} s")
    print(f"shelve (offloaded): {shelve:.2f} s, unshelve: {unshelve:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
