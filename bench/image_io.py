"""Image upload and download throughput against `cp` on the same disk, and the service's RSS.

Usage: .venv/bin/python bench/image_io.py [--size-mib 1024] [--rounds 2] [--dir DIR]

Generates a file of ``--size-mib`` MiB in a temporary directory (under ``--dir``,
default the system temp dir), times ``cp`` + ``sync`` of it on that disk, then
measures on this machine, in the same run, what bounds an upload: the hashes a
Glance upload must compute (md5 ``checksum`` and sha512 ``os_hash_value``), each
on one core and together on parallel threads, and the service's store pipeline
alone (no HTTP). It then starts a real ``novalite serve`` (fake driver) whose
state lives on the same disk and, with two clients (httpx in this process, and
curl), uploads the file with a streaming ``PUT /image/v2/images/{id}/file`` and
downloads it back to a file on that disk (synced, like cp). Each figure is the
best of ``--rounds``. Next to each transfer: the CPU seconds the service and the
client used, and any other load on the machine during it (the clients share the
machine's cores with the service; other load skews the figure). Last, the peak
RSS of the service (VmHWM) before and after. Target: upload and download at
least 70% of cp's throughput, RSS flat. Everything is removed at the end; the
service is stopped by its PID.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from novalite.image.store import DataStore
from novalite.testing.server import RunningServer, start

BLOCK = 4 << 20


@dataclass
class Timing:
    """One timed run: wall seconds, CPU seconds of the service and the client, other load."""

    seconds: float
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    other_cpu: float = 0.0


def peak_rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MiB, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_cpu() -> float:
    """CPU seconds all processes of the machine have used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process and of its reaped children (curl, cp)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], Any], server_pid: int | None = None) -> Timing:
    server0 = process_cpu(server_pid) if server_pid else 0.0
    client0, busy0 = own_cpu(), machine_busy_cpu()
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    server = (process_cpu(server_pid) - server0) if server_pid else 0.0
    client, busy = own_cpu() - client0, machine_busy_cpu() - busy0
    return Timing(seconds, server, client, max(0.0, busy - server - client))


def best(runs: list[Timing]) -> Timing:
    return min(runs, key=lambda t: t.seconds)


def make_file(path: Path, size: int) -> None:
    block = os.urandom(BLOCK)
    with open(path, "wb") as f:
        for _ in range(size // BLOCK):
            f.write(block)
        f.write(block[: size % BLOCK])
        f.flush()
        os.fsync(f.fileno())


def blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while data := f.read(BLOCK):
            yield data


def file_crc32(path: Path) -> int:
    crc = 0
    for data in blocks(path):
        crc = zlib.crc32(data, crc)
    return crc


def cp_sync(src: Path, dst: Path) -> None:
    subprocess.run(["cp", str(src), str(dst)], check=True)
    subprocess.run(["sync", str(dst)], check=True)  # uploads and downloads end synced too


# -- what bounds an upload on this machine -------------------------------------------


def hash_rate(size: int, steps: list[Callable[[bytes], Any]]) -> float:
    """MiB/s of running every step over ``size`` bytes, each step on its own thread."""
    data = os.urandom(BLOCK)
    count = max(1, size // BLOCK)

    def run(step: Callable[[bytes], Any]) -> None:
        for _ in range(count):
            step(data)

    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count * BLOCK / (1 << 20) / (time.perf_counter() - started)


def crc_step() -> Callable[[bytes], Any]:
    crc = [0]

    def step(data: bytes) -> None:
        crc[0] = zlib.crc32(data, crc[0])
    return step


def store_only(directory: Path, size: int) -> None:
    """The service's upload data path (DataStore.receive) fed from memory: no HTTP."""
    chunk = os.urandom(1 << 20)

    async def chunks() -> Any:
        for _ in range(size >> 20):
            yield chunk

    async def main() -> None:
        received = await DataStore(str(directory)).receive("bench", "raw", chunks())
        os.unlink(received.tmp_path)

    trio.run(main)


# -- transfers through the service ---------------------------------------------------


def new_image(c: httpx.Client) -> str:
    r = c.post("/image/v2/images", json={
        "name": "bench", "disk_format": "raw", "container_format": "bare"})
    r.raise_for_status()
    return str(r.json()["id"])


def upload_httpx(c: httpx.Client, image_id: str, src: Path, size: int) -> None:
    r = c.put(f"/image/v2/images/{image_id}/file", content=blocks(src),
              headers={"Content-Type": "application/octet-stream",
                       "Content-Length": str(size)})
    r.raise_for_status()


def upload_curl(srv: RunningServer, image_id: str, src: Path) -> None:
    subprocess.run(["curl", "-sSf", "-T", str(src), "-H", f"X-Auth-Token: {srv.token()}",
                    "-H", "Content-Type: application/octet-stream",
                    f"{srv.url}/image/v2/images/{image_id}/file"], check=True)


def download_httpx(c: httpx.Client, image_id: str, out: Path) -> None:
    with c.stream("GET", f"/image/v2/images/{image_id}/file") as resp, open(out, "wb") as f:
        resp.raise_for_status()
        for data in resp.iter_bytes():
            f.write(data)
        f.flush()
        os.fsync(f.fileno())


def download_curl(srv: RunningServer, image_id: str, out: Path) -> None:
    subprocess.run(["curl", "-sSf", "-o", str(out), "-H", f"X-Auth-Token: {srv.token()}",
                    f"{srv.url}/image/v2/images/{image_id}/file"], check=True)
    if str(out) != os.devnull:
        subprocess.run(["sync", str(out)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--dir", default=None, help="where the temporary files go")
    args = parser.parse_args()
    size = args.size_mib << 20
    mib = size / (1 << 20)
    work = Path(tempfile.mkdtemp(prefix="novalite-image-io-", dir=args.dir))
    srv = None
    try:
        src = work / "image.raw"
        make_file(src, size)
        md5 = hashlib.md5(usedforsecurity=False)
        for data in blocks(src):
            md5.update(data)
        src_crc = file_crc32(src)

        def fresh(name: str) -> Path:
            path = work / name
            if path.exists():
                path.unlink()
            return path

        cp = best([timed(lambda: cp_sync(src, fresh("cp.raw"))) for _ in range(args.rounds)])
        fresh("cp.raw")
        def md5_step() -> Callable[[bytes], Any]:
            return hashlib.md5(usedforsecurity=False).update

        def sha512_step() -> Callable[[bytes], Any]:
            return hashlib.sha512().update

        hashes = {name: max(hash_rate(size, [step() for step in steps])
                            for _ in range(args.rounds))
                  for name, steps in {
                      "md5": [md5_step],
                      "sha512": [sha512_step],
                      "crc32": [crc_step],
                      "md5 + sha512 (two threads)": [md5_step, sha512_step],
                      "md5 + sha512 + crc32 (three threads)": [md5_step, sha512_step,
                                                               crc_step],
                  }.items()}
        store = best([timed(lambda: store_only(work / "store", size))
                      for _ in range(args.rounds)])

        srv = start(work / "state")
        pid = srv.process.pid
        rss_idle, _ = peak_rss_mib(pid)
        uploads: dict[str, list[Timing]] = {"httpx": [], "curl": []}
        downloads: dict[str, list[Timing]] = {"httpx": [], "curl": [], "null": []}
        peak_after_upload: float | None = None
        with httpx.Client(base_url=srv.url, timeout=httpx.Timeout(600, connect=10),
                          headers={"X-Auth-Token": srv.token()}) as c:
            for _ in range(args.rounds):
                for client in ("httpx", "curl"):
                    image_id = new_image(c)
                    out = fresh("download.raw")
                    if client == "httpx":
                        up = partial(upload_httpx, c, image_id, src, size)
                        down = partial(download_httpx, c, image_id, out)
                    else:
                        up = partial(upload_curl, srv, image_id, src)
                        down = partial(download_curl, srv, image_id, out)
                    uploads[client].append(timed(up, pid))
                    if peak_after_upload is None:
                        _, peak_after_upload = peak_rss_mib(pid)
                    shown = c.get(f"/image/v2/images/{image_id}").json()
                    assert shown["status"] == "active" and shown["checksum"] == md5.hexdigest()
                    downloads[client].append(timed(down, pid))
                    assert out.stat().st_size == size and file_crc32(out) == src_crc
                    fresh("download.raw")
                    if client == "curl":
                        downloads["null"].append(timed(
                            partial(download_curl, srv, image_id, Path(os.devnull)), pid))
                    c.delete(f"/image/v2/images/{image_id}").raise_for_status()
        rss_end, peak = peak_rss_mib(pid)

        def rate(t: Timing) -> float:
            return mib / t.seconds

        def line(label: str, t: Timing, note: str = "") -> str:
            cpu = (f"  cpu: service {t.server_cpu:4.1f} s, client {t.client_cpu:4.1f} s"
                   if t.server_cpu else "")
            other = f", other load {t.other_cpu:.1f} s" if t.other_cpu >= 0.3 else ""
            return (f"{label:28s}{t.seconds:6.2f} s {rate(t):7.1f} MiB/s "
                    f"{100 * rate(t) / rate(cp):5.1f}% of cp{cpu}{other}{note}")

        print(f"image size                  {args.size_mib} MiB (on {work}), "
              f"{os.cpu_count()} cores, best of {args.rounds}")
        print(f"cp + sync                   {cp.seconds:6.2f} s {rate(cp):7.1f} MiB/s  "
              f"(target 70%: {0.7 * rate(cp):.0f} MiB/s)")
        print("hash ceilings on this machine (an upload computes md5 and sha512, and a "
              "crc32 for downloads):")
        for name, value in hashes.items():
            print(f"  {name:38s}{value:7.1f} MiB/s {100 * value / rate(cp):5.1f}% of cp")
        print(line("store only (no HTTP)", store,
                   "  (md5 + sha512 + crc32 + write + fsync)"))
        for client in ("httpx", "curl"):
            print(line(f"upload   PUT /file, {client}", best(uploads[client])))
        ceiling = hashes["md5 + sha512 + crc32 (three threads)"]
        fastest = max(rate(best(runs)) for runs in uploads.values())
        print(f"  -> the best upload is {100 * fastest / ceiling:.0f}% of what hashing alone "
              f"allows here ({ceiling:.0f} MiB/s, before any write, fsync or HTTP)")
        for client in ("httpx", "curl"):
            print(line(f"download GET /file, {client}", best(downloads[client]),
                       "  (verified, to a synced file)"))
        print(line("download to /dev/null, curl", best(downloads["null"]),
                   "  (verified; the service's side alone)"))
        print(f"service RSS                 idle {rss_idle:.1f} MiB, peak after first upload "
              f"{peak_after_upload:.1f} MiB, peak overall {peak:.1f} MiB, "
              f"at end {rss_end:.1f} MiB")
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
