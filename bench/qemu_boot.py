"""Benchmark: a VM booted through novalite against bare ``qemu-system-x86_64``.

Run as ``.venv/bin/python bench/qemu_boot.py [--runs N]`` (Debian's
``qemu-system-x86``, ``qemu-utils``; the test guests are built on first use by
:mod:`novalite.testing.guest_images`).

Guests, each booted both ways with the same flags:

* TCG, Linux: the Debian cloud kernel + busybox initramfs (AKI/ARI/AMI images
  uploaded through the Glance API), marker :data:`~guest_images.LINUX_MARKER`;
* TCG, the 512-byte boot sector, marker :data:`~guest_images.BOOT_MARKER`;
* KVM: Linux where KVM runs it; where ``/dev/kvm`` is the nested ``kvm_pvm``
  module (Linux kernels cannot boot there) the boot sector, and the output says so.

novalite side: ``POST /servers`` -> ``GET`` shows ACTIVE, and -> the marker appears
in ``os-getConsoleOutput`` (both polled every :data:`POLL` s), then delete.
Bare side: the guest's own command line, rebuilt from the ``launch.json`` the driver
wrote (same machine, accelerator, CPU model, memory, disks, NIC, kernel, initrd and
append), run in the foreground (no ``-daemonize``) with the serial port on a pipe
instead of the ring buffer; timed from ``Popen`` to the marker on that pipe.

Printed: medians (and ranges) over N runs after one warm-up of each, the overhead
and ratio against the target (novalite adds at most 10% or 100 ms, whichever is
larger), and the RSS of the service beside the guest's QEMU. Everything lives in a
temporary directory removed at the end; only processes started here are ended, by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

from novalite.testing import guest_images
from novalite.testing.server import RunningServer, start

#: Seconds between polls of the server's status, and of its console: every POLL for
#: the first FAST_WINDOW seconds after ACTIVE, then every POLL_CONSOLE. A console poll
#: costs the service ~4 ms of CPU (an HTTP request, a QMP exchange): polled every 10 ms
#: for a whole Linux boot it would take a fifth of a core from the guest on a 2-core
#: machine, so after the first second the console is polled like a (very impatient)
#: user would, and the marker's time carries up to POLL_CONSOLE of detection delay.
POLL = 0.01
POLL_CONSOLE = 0.05
FAST_WINDOW = 1.0
TIMEOUT = 180.0
FLAVOR = "42"  # m1.nano: 1 vCPU, 128 MiB, 1 GiB disk


def poll(check: Callable[[], bool], what: str, timeout: float = TIMEOUT,
         interval: float = POLL) -> float:
    """Call ``check`` every ``interval`` s until true; return the perf_counter then."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Guest:
    label: str
    marker: str
    image: str  # image id on the service


@dataclass
class Sample:
    active: float
    marker: float
    guest_rss: float = 0.0


class Service:
    """One ``novalite serve`` with a given driver, in its own state directory."""

    def __init__(self, root: Path, driver: str) -> None:
        self.driver = driver
        self.srv: RunningServer = start(root / driver, timeout=60, config={
            "compute": {"driver": driver, "power_sync_interval": 10.0,
                        "shutdown_timeout": 10.0},
        })
        self.c = self.srv.client()
        self.instances = root / driver / "instances"

    def upload(self, name: str, path: str, disk_format: str, container_format: str,
               **props: Any) -> str:
        r = self.c.post("/image/v2/images", json={"name": name, "disk_format": disk_format,
                                                  "container_format": container_format,
                                                  **props})
        r.raise_for_status()
        image_id = str(r.json()["id"])
        with open(path, "rb") as f:
            self.c.put(f"/image/v2/images/{image_id}/file", content=f.read(),
                       headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        return image_id

    def upload_linux(self, linux: guest_images.LinuxGuest, root: str) -> str:
        kernel = self.upload("bench-kernel", linux.kernel, "aki", "aki")
        ramdisk = self.upload("bench-ramdisk", linux.initrd, "ari", "ari")
        return self.upload("bench-linux", root, "ami", "ami", kernel_id=kernel,
                           ramdisk_id=ramdisk, os_command_line=linux.append)

    def boot(self, guest: Guest, keep: Callable[[str], None] | None = None) -> Sample:
        """Boot, time ACTIVE and the marker, then delete (``keep`` sees it first)."""
        c = self.c
        body = {"server": {"name": "bench", "imageRef": guest.image, "flavorRef": FLAVOR}}
        t0 = time.perf_counter()
        r = c.post("/compute/v2.1/servers", json=body)
        r.raise_for_status()
        sid = r.json()["server"]["id"]

        def active() -> bool:
            server = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
            if server["status"] == "ERROR":
                raise RuntimeError(f"boot failed: {server.get('fault')}")
            return bool(server["status"] == "ACTIVE")

        def marker() -> bool:
            r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}})
            return r.status_code == 200 and guest.marker in r.json()["output"]

        t_active = poll(active, "ACTIVE")
        try:
            t_marker = poll(marker, "the marker on the console", timeout=FAST_WINDOW)
        except RuntimeError:
            t_marker = poll(marker, "the marker on the console", interval=POLL_CONSOLE)
        pid = qemu_process.live_pid(str(self.instances / sid), sid)
        sample = Sample(t_active - t0, t_marker - t0, rss_mib(pid) if pid else 0.0)
        if keep is not None:
            keep(sid)
        c.delete(f"/compute/v2.1/servers/{sid}").raise_for_status()
        poll(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, "delete", 60)
        return sample

    def close(self) -> None:
        self.c.close()
        self.srv.stop()
        # Never leave a guest behind: only QEMUs whose pidfile is ours, verified by cmdline.
        if self.instances.is_dir():
            for uuid in os.listdir(self.instances):
                pid = qemu_process.live_pid(str(self.instances / uuid), uuid)
                if pid is not None:
                    qemu_process.kill_qemu(pid, uuid)


def bare_argv(launch_dir: str, work: Path) -> list[str]:
    """The guest's command line from its launch.json, foreground, serial on stdout."""
    cfg = qemu_process.LaunchConfig.load(launch_dir)
    for disk in cfg.disks:  # the same disks, as overlays of the same bases, in work/
        src = os.path.join(launch_dir, disk.path)
        shutil.copyfile(src, work / disk.path)
    for name in (cfg.kernel, cfg.initrd):
        if name:
            shutil.copyfile(os.path.join(launch_dir, name), work / name)
    argv = qemu_process.build_argv(cfg, str(work))
    argv.remove("-daemonize")
    ring = argv.index(f"ringbuf,id={qemu_process.CONSOLE_CHARDEV},"
                      f"size={cfg.console_ring_bytes}")
    argv[ring] = f"stdio,id={qemu_process.CONSOLE_CHARDEV},signal=off"
    return argv


def bare_boot(argv: list[str], work: Path, marker: str) -> Sample:
    """Start QEMU, read its serial output until ``marker``; then end it (by its PID)."""
    for name in (qemu_process.QMP_SOCKET, qemu_process.EVENTS_SOCKET):
        (work / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    qemu = subprocess.Popen(argv, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        assert qemu.stdout is not None
        seen = b""
        deadline = t0 + TIMEOUT
        while marker.encode() not in seen:
            chunk = os.read(qemu.stdout.fileno(), 65536)
            if not chunk or time.perf_counter() > deadline:
                raise RuntimeError(f"bare QEMU ended or timed out before {marker!r}: "
                                   f"{seen[-500:]!r}")
            seen += chunk
        t = time.perf_counter() - t0
        return Sample(t, t, rss_mib(qemu.pid))
    finally:
        qemu.send_signal(signal.SIGKILL)
        qemu.wait()


def median_range(values: list[float]) -> str:
    return (f"{statistics.median(values):6.3f} s "
            f"[{min(values):.3f}-{max(values):.3f}]")


def measure(service: Service, guest: Guest, runs: int, work: Path) -> dict[str, Any]:
    """One warm-up of each side, then ``runs`` alternating pairs."""
    captured: dict[str, list[str]] = {}

    def capture(sid: str) -> None:
        argv_dir = work / "bare"
        argv_dir.mkdir(exist_ok=True)
        captured["argv"] = bare_argv(str(service.instances / sid), argv_dir)

    service.boot(guest, keep=capture)  # warm-up; also yields the guest's command line
    argv = captured["argv"]
    bare_boot(argv, work / "bare", guest.marker)  # warm-up
    ours: list[Sample] = []
    bare: list[Sample] = []
    for _ in range(runs):
        bare.append(bare_boot(argv, work / "bare", guest.marker))
        ours.append(service.boot(guest))
    shutil.rmtree(work / "bare")
    return {"ours": ours, "bare": bare, "argv": argv}


def report(label: str, result: dict[str, Any], service_rss: float) -> bool:
    ours, bare = result["ours"], result["bare"]
    b = statistics.median(s.marker for s in bare)
    m = statistics.median(s.marker for s in ours)
    overhead = m - b
    allowed = max(0.10 * b, 0.100)
    ok = overhead <= allowed
    print(f"\n== {label}")
    print(f"   bare qemu   Popen -> marker on serial   {median_range([s.marker for s in bare])}")
    print(f"   novalite    POST -> ACTIVE              {median_range([s.active for s in ours])}")
    print(f"   novalite    POST -> marker on console   {median_range([s.marker for s in ours])}")
    print(f"   overhead    {overhead * 1000:+7.0f} ms   ratio {m / b:.3f}   target <= "
          f"{allowed * 1000:.0f} ms (10% or 100 ms)   {'OK' if ok else 'OVER TARGET'}")
    print(f"   RSS         guest QEMU {statistics.median(s.guest_rss for s in ours):.0f} MiB "
          f"under novalite, {statistics.median(s.guest_rss for s in bare):.0f} MiB bare; "
          f"novalite serve {service_rss:.0f} MiB")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured boots per side")
    parser.add_argument("--only", default="tcg-linux,tcg-sector,kvm",
                        help="comma-separated subset of tcg-linux, tcg-sector, kvm")
    args = parser.parse_args()
    if not hostcheck.check_qemu().usable:
        print(f"cannot run: {hostcheck.check_qemu().reason}")
        return 2
    linux = guest_images.linux_guest()
    sector = guest_images.boot_sector_image()
    print(f"qemu boot benchmark: {args.runs} runs per side after one warm-up, medians "
          f"[min-max]; novalite polled every {POLL * 1000:.0f} ms (console: for "
          f"{FAST_WINDOW:.0f} s after ACTIVE, then every {POLL_CONSOLE * 1000:.0f} ms); "
          f"{os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    all_ok = True
    with tempfile.TemporaryDirectory(prefix="novalite-bench-") as tmp:
        root = Path(tmp)
        blank = root / "root.img"
        blank.write_bytes(bytes(1024 * 1024))
        only = set(args.only.split(","))
        plan = [p for p, name in ((("qemu", "linux"), "tcg-linux"),
                                  (("qemu", "sector"), "tcg-sector")) if name in only]
        kvm = hostcheck.check_kvm()
        runs_linux = hostcheck.kvm_runs_linux()
        if "kvm" not in only:
            pass
        elif not kvm.usable:
            print(f"KVM: skipped, {kvm.reason}")
        elif runs_linux.usable:
            plan.append(("kvm", "linux"))
        else:
            print(f"KVM: Linux cannot run here ({runs_linux.reason});\n     "
                  "KVM is measured with the 512-byte boot sector instead")
            plan.append(("kvm", "sector"))
        services: dict[str, Service] = {}
        try:
            for driver, kind in plan:
                if driver not in services:
                    services[driver] = Service(root, driver)
                service = services[driver]
                if kind == "linux":
                    guest = Guest(f"{driver.upper()}: Linux (cloud kernel + busybox "
                                  f"initramfs, 128 MiB)", guest_images.LINUX_MARKER,
                                  service.upload_linux(linux, str(blank)))
                else:
                    guest = Guest(f"{driver.upper()}: 512-byte boot sector (real mode)",
                                  guest_images.BOOT_MARKER,
                                  service.upload("bench-sector", sector, "raw", "bare"))
                result = measure(service, guest, args.runs, root)
                all_ok &= report(guest.label, result, rss_mib(service.srv.process.pid))
        finally:
            for service in services.values():
                service.close()
    print("\nall within target" if all_ok else "\nsome over target")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
