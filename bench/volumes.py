"""Benchmark: a volume inside a guest through novalite against the same file attached by
hand to bare ``qemu-system-x86_64``; and the time to attach and detach.

Run as ``.venv/bin/python bench/volumes.py [--runs N] [--mib M]`` (Debian's
``qemu-system-x86``; the Linux test guest is built on first use by
:mod:`novalite.testing.guest_images`).

1. ``novalite serve`` on the qemu driver boots the Linux test guest (TCG), makes a
   1 GiB volume (``file`` backend) and attaches it (``os-volume_attachments``: QMP
   hot-plug). Inside the guest, on its serial console (the websocket console), busybox
   ``dd`` writes M MiB to the disk with ``oflag=direct conv=fsync`` and reads them
   back with ``iflag=direct`` (the guest's page cache out of the way), N times each.
2. Bare QEMU: the guest's own command line, rebuilt from the ``launch.json`` the driver
   wrote (same machine, accelerator, CPU, memory, kernel, initrd), without novalite's
   volume, and the very same volume file added by hand with ``-drive
   file=...,format=raw,if=none,cache=writeback -device virtio-blk-pci``; serial on a
   pipe. The same ``dd`` commands.
3. Attach and detach, N times each: through the API (``POST`` answered once QEMU has the
   disk; ``DELETE`` answered once the guest released it, ``DEVICE_DELETED``), beside
   the same QMP commands sent by hand to the bare QEMU (``blockdev-add`` +
   ``device_add``; ``device_del``, the wait for ``DEVICE_DELETED``, ``blockdev-del``).

Printed: medians (and ranges) of MiB/s both ways and their ratio (novalite / bare), and
the attach and detach times beside the bare QMP ones. Everything lives in a temporary
directory removed at the end; only the processes started here are ended, by PID.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from httpx_ws import connect_ws  # noqa: E402
from novalite_drivers.qemu import hostcheck  # noqa: E402
from novalite_drivers.qemu import process as qemu_process  # noqa: E402
from novalite_drivers.qemu import volumes as qemu_volumes  # noqa: E402

from novalite.testing import guest_images  # noqa: E402
from novalite.testing.server import RunningServer, start, wait_for  # noqa: E402

FLAVOR = "42"  # m1.nano: 1 vCPU, 128 MiB
BOOT_TIMEOUT = 180.0
TIMES = re.compile(rb"T=([0-9.]+),([0-9.]+),([0-9.]+)")


def say(*parts: Any) -> None:
    print("==>", *parts, file=sys.stderr, flush=True)


def dd_commands(dev: str, mib: int, tag: int) -> bytes:
    """Write then read ``mib`` MiB of ``dev`` (direct I/O), timed by the guest's
    /proc/uptime (10 ms steps; the test guest's busybox dd reports no time)."""
    up = "$(cut -d' ' -f1 /proc/uptime)"
    return (f"a={up}; dd if=/dev/zero of={dev} bs=1M count={mib} oflag=direct conv=fsync "
            f"2>/dev/null; b={up}; dd if={dev} of=/dev/null bs=1M count={mib} "
            f"iflag=direct 2>/dev/null; c={up}; echo T=$a,$b,$c; "
            f"echo DD-DONE-$(({tag}+1))\r").encode()


def parse_dd(out: bytes, mib: int) -> tuple[float, float]:
    """(write MiB/s, read MiB/s) from the three uptimes the commands print."""
    found = TIMES.findall(out)
    if not found:
        raise RuntimeError(f"no times in {out[-600:]!r}")
    a, b, c = (float(x) for x in found[-1])
    return mib / max(b - a, 0.01), mib / max(c - b, 0.01)


class Serial:
    """The novalite guest's serial console (a websocket)."""

    def __init__(self, c: httpx.Client, sid: str) -> None:
        r = c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
                   json={"remote_console": {"protocol": "serial", "type": "serial"}})
        r.raise_for_status()
        self.url = "http" + str(r.json()["remote_console"]["url"]).removeprefix("ws")

    def run(self, command: bytes, marker: bytes, timeout: float = 300) -> bytes:
        with httpx.Client(timeout=timeout) as client, connect_ws(self.url, client) as ws:
            ws.send_bytes(command)
            got = b""
            deadline = time.monotonic() + timeout
            while marker not in got:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no {marker!r} in {got[-600:]!r}")
                got += ws.receive_bytes(timeout=timeout)
            return got


class Bare:
    """Bare QEMU with the serial port on pipes."""

    def __init__(self, argv: list[str], work: Path) -> None:
        for name in (qemu_process.QMP_SOCKET, qemu_process.EVENTS_SOCKET):
            (work / name).unlink(missing_ok=True)
        self.qmp = str(work / qemu_process.QMP_SOCKET)
        self.proc = subprocess.Popen(argv, cwd=work, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = BOOT_TIMEOUT) -> bytes:
        assert self.proc.stdout is not None
        start_at = len(self.seen)
        deadline = time.monotonic() + timeout
        while marker not in self.seen[start_at:]:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk or time.monotonic() > deadline:
                raise RuntimeError(f"bare QEMU ended or timed out before {marker!r}: "
                                   f"{self.seen[-600:]!r}")
            self.seen += chunk
        return self.seen[start_at:]

    def run(self, command: bytes, marker: bytes) -> bytes:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command)
        self.proc.stdin.flush()
        return self.read_until(marker, 300)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def bare_argv(launch_dir: str, work: Path, volume_path: str) -> list[str]:
    """The guest's command line from launch.json, without novalite's volumes, with
    ``volume_path`` added by hand; foreground, serial on stdio."""
    cfg = qemu_process.LaunchConfig.load(launch_dir)
    cfg.volumes = []
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
    return [*argv, "-drive", f"file={volume_path},format=raw,if=none,id=benchvol,"
                             f"cache=writeback", "-device", "virtio-blk-pci,drive=benchvol"]


def med(values: list[float]) -> str:
    return (f"{statistics.median(values):8.1f}  ({min(values):.1f}-{max(values):.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=64, help="MiB per dd run")
    args = parser.parse_args()
    check = hostcheck.check_qemu()
    if not check.usable:
        say(f"QEMU is not usable here: {check.reason}")
        return 1
    linux = guest_images.linux_guest()
    work = Path(tempfile.mkdtemp(prefix="novalite-bench-volumes-"))
    srv: RunningServer | None = None
    bare: Bare | None = None
    try:
        srv = start(work / "state", timeout=60, config={
            "compute": {"driver": "qemu", "power_sync_interval": 10.0,
                        "shutdown_timeout": 10.0}})
        c = srv.client()
        pid = c.get("/identity/v3/auth/tokens", headers={
            "X-Subject-Token": srv.token()}).json()["token"]["project"]["id"]
        volumes = f"/volume/v3/{pid}/volumes"

        def upload(name: str, path: str, fmt: str, **props: Any) -> str:
            r = c.post("/image/v2/images", json={"name": name, "disk_format": fmt,
                                                 "container_format": fmt, **props})
            r.raise_for_status()
            with open(path, "rb") as f:
                c.put(f"/image/v2/images/{r.json()['id']}/file", content=f.read(),
                      headers={"Content-Type": "application/octet-stream"}
                      ).raise_for_status()
            return str(r.json()["id"])

        root = work / "root.img"
        root.write_bytes(bytes(1 << 20))
        image = upload("bench-linux", str(root), "ami",
                       kernel_id=upload("bench-kernel", linux.kernel, "aki"),
                       ramdisk_id=upload("bench-ramdisk", linux.initrd, "ari"),
                       os_command_line=linux.append)
        r = c.post("/compute/v2.1/servers", json={"server": {
            "name": "bench-volumes", "imageRef": image, "flavorRef": FLAVOR}})
        r.raise_for_status()
        sid = r.json()["server"]["id"]
        say("booting the guest")
        wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"]
                 == "ACTIVE", BOOT_TIMEOUT, 0.2)
        wait_for(lambda: guest_images.LINUX_MARKER in c.post(
            f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}}
        ).json()["output"], BOOT_TIMEOUT, 0.5)
        r = c.post(volumes, json={"volume": {"size": 1, "name": "bench"}})
        r.raise_for_status()
        vid = r.json()["volume"]["id"]
        path = str(work / "state" / "volumes" / f"volume-{vid}")
        attachments = f"/compute/v2.1/servers/{sid}/os-volume_attachments"
        serial = Serial(c, sid)

        # -- attach / detach through the API --------------------------------------------
        attach_api, detach_api = [], []
        for _ in range(args.runs + 1):
            t0 = time.perf_counter()
            c.post(attachments, json={"volumeAttachment": {"volumeId": vid}}
                   ).raise_for_status()
            t1 = time.perf_counter()
            serial.run(b"for i in $(seq 200); do [ -b /dev/vdb ] && break; sleep 0.1; "
                       b"done; echo SEEN-$((1+1))\r", b"SEEN-2")
            t2 = time.perf_counter()
            c.delete(f"{attachments}/{vid}").raise_for_status()
            t3 = time.perf_counter()
            if c.get(f"{volumes}/{vid}").json()["volume"]["status"] != "available":
                raise RuntimeError("the volume is not available after the detach")
            attach_api.append((t1 - t0) * 1000)
            detach_api.append((t3 - t2) * 1000)
        attach_api, detach_api = attach_api[1:], detach_api[1:]  # the first is a warm-up

        # -- throughput inside the novalite guest ---------------------------------------
        c.post(attachments, json={"volumeAttachment": {"volumeId": vid}}).raise_for_status()
        serial.run(b"for i in $(seq 200); do [ -b /dev/vdb ] && break; sleep 0.1; done; "
                   b"echo SEEN-$((1+2))\r", b"SEEN-3")
        ours_w, ours_r = [], []
        for i in range(args.runs + 1):
            say(f"novalite guest: dd run {i}")
            w, rd = parse_dd(serial.run(dd_commands("/dev/vdb", args.mib, i),
                                        f"DD-DONE-{i + 1}".encode()), args.mib)
            ours_w.append(w)
            ours_r.append(rd)
        ours_w, ours_r = ours_w[1:], ours_r[1:]
        (work / "bare").mkdir()
        argv = bare_argv(str(work / "state" / "instances" / sid), work / "bare", path)
        c.delete(f"{attachments}/{vid}").raise_for_status()
        c.delete(f"/compute/v2.1/servers/{sid}").raise_for_status()
        wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 60)

        # -- bare QEMU: the same file by hand ------------------------------------------
        say("booting bare QEMU with the volume file")
        bare = Bare(argv, work / "bare")
        bare.read_until(guest_images.LINUX_MARKER.encode())
        bare.run(b"\r", b"#")
        # The root disk is vda; the volume added by hand is the next virtio disk.
        dev = "/dev/vdb" if b"vdb" in bare.run(b"ls /sys/block; echo LS-$((1+3))\r",
                                               b"LS-4") else "/dev/vda"
        bare_w, bare_r = [], []
        for i in range(args.runs + 1):
            say(f"bare QEMU: dd run {i}")
            w, rd = parse_dd(bare.run(dd_commands(dev, args.mib, 10 + i),
                                      f"DD-DONE-{11 + i}".encode()), args.mib)
            bare_w.append(w)
            bare_r.append(rd)
        bare_w, bare_r = bare_w[1:], bare_r[1:]

        # -- attach / detach by hand over QMP on the bare QEMU --------------------------
        attach_qmp, detach_qmp = [], []
        other = work / "other.img"
        with open(other, "wb") as f:
            f.truncate(1 << 30)
        record = {"volume_id": "00000000-bench-0000-0000-000000000000", "path": str(other)}

        async def cycle() -> tuple[float, float]:
            t0 = time.perf_counter()
            await qemu_volumes.hot_plug(bare.qmp, record)  # type: ignore[union-attr]
            t1 = time.perf_counter()
            await trio.sleep(1.0)  # as above, the guest sees the disk before the detach
            t2 = time.perf_counter()
            await qemu_volumes.hot_unplug(bare.qmp, record["volume_id"])  # type: ignore[union-attr]
            return (t1 - t0) * 1000, (time.perf_counter() - t2) * 1000

        for _ in range(args.runs + 1):
            a, d = trio.run(cycle)
            attach_qmp.append(a)
            detach_qmp.append(d)
        attach_qmp, detach_qmp = attach_qmp[1:], detach_qmp[1:]

        print(f"\nVolume I/O inside a TCG Linux guest (busybox dd, {args.mib} MiB, direct I/O),"
              f" median (range) of {args.runs} runs after a warm-up")
        print(f"{'':26}{'novalite':>24}{'bare QEMU':>24}{'ratio':>8}")
        for label, ours, ref in (("sequential write MiB/s", ours_w, bare_w),
                                 ("sequential read MiB/s", ours_r, bare_r)):
            ratio = statistics.median(ours) / statistics.median(ref)
            print(f"{label:26}{med(ours):>24}{med(ref):>24}{ratio:>8.2f}")
        print(f"\n{'':26}{'API (ms)':>24}{'bare QMP (ms)':>24}")
        print(f"{'attach':26}{med(attach_api):>24}{med(attach_qmp):>24}")
        print(f"{'detach (guest released)':26}{med(detach_api):>24}{med(detach_qmp):>24}")
        print(f"\nbare command line: {' '.join(argv)}")
        return 0
    finally:
        if bare is not None:
            bare.close()
        if srv is not None:
            srv.stop()
            instances = work / "state" / "instances"
            if instances.is_dir():  # never leave a guest behind (pidfile + cmdline checked)
                for uuid in os.listdir(instances):
                    qpid = qemu_process.live_pid(str(instances / uuid), uuid)
                    if qpid is not None:
                        qemu_process.kill_qemu(qpid, uuid)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
