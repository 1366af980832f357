"""Image upload and download throughput against `cp` on the same disk, and the service's RSS.

Usage: .venv/bin/python bench/image_io.py [--size-mib 1024] [--dir DIR]

Generates a file of ``--size-mib`` MiB in a temporary directory (under ``--dir``,
default the system temp dir), times ``cp`` of it on that disk, starts a real
``novalite serve`` (fake driver) whose state lives on the same disk, uploads the
file with a streaming PUT, downloads it back to a file, and prints the throughput
of each next to cp's, and the peak RSS of the service process (VmHWM) before and
after. Target: upload and download at least 70% of cp's throughput, RSS flat.
Everything is removed at the end; the service is stopped by its PID.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from novalite.testing.server import start

BLOCK = 4 << 20


def peak_rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MiB, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def make_file(path: Path, size: int) -> None:
    block = os.urandom(BLOCK)
    with open(path, "wb") as f:
        for _ in range(size // BLOCK):
            f.write(block)
        f.write(block[: size % BLOCK])
        f.flush()
        os.fsync(f.fileno())


def drop_copy(path: Path) -> None:
    if path.exists():
        path.unlink()


def timed_cp(src: Path, dst: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    subprocess.run(["sync", str(dst)], check=True)  # the upload fsyncs too
    return time.perf_counter() - started


def blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while data := f.read(BLOCK):
            yield data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="where the temporary files go")
    args = parser.parse_args()
    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="novalite-image-io-", dir=args.dir))
    srv = None
    try:
        src = work / "image.raw"
        make_file(src, size)
        md5 = hashlib.md5(usedforsecurity=False)
        for data in blocks(src):
            md5.update(data)
        cp_times = []
        for i in range(2):
            dst = work / f"cp-{i}.raw"
            cp_times.append(timed_cp(src, dst))
            drop_copy(dst)
        cp_seconds = min(cp_times)
        srv = start(work / "state")
        pid = srv.process.pid
        rss_idle, _ = peak_rss_mib(pid)
        with httpx.Client(base_url=srv.url, timeout=httpx.Timeout(600, connect=10),
                          headers={"X-Auth-Token": srv.token()}) as c:
            image = c.post("/image/v2/images", json={
                "name": "bench", "disk_format": "raw", "container_format": "bare"}).json()
            started = time.perf_counter()
            r = c.put(f"/image/v2/images/{image['id']}/file", content=blocks(src),
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Length": str(size)})
            up_seconds = time.perf_counter() - started
            r.raise_for_status()
            shown = c.get(f"/image/v2/images/{image['id']}").json()
            assert shown["status"] == "active" and shown["checksum"] == md5.hexdigest()
            _, peak_after_upload = peak_rss_mib(pid)
            out = work / "download.raw"
            started = time.perf_counter()
            with c.stream("GET", f"/image/v2/images/{image['id']}/file") as resp, \
                    open(out, "wb") as f:
                resp.raise_for_status()
                for data in resp.iter_bytes(BLOCK):
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
            down_seconds = time.perf_counter() - started
            assert out.stat().st_size == size
            drop_copy(out)
        rss_end, peak = peak_rss_mib(pid)

        def rate(seconds: float) -> float:
            return size / (1 << 20) / seconds

        cp_rate = rate(cp_seconds)
        print(f"image size            {args.size_mib} MiB (on {work})")
        print(f"cp                    {cp_seconds:6.2f} s  {cp_rate:7.1f} MiB/s")
        print(f"upload   (PUT /file)  {up_seconds:6.2f} s  {rate(up_seconds):7.1f} MiB/s  "
              f"{100 * rate(up_seconds) / cp_rate:5.1f}% of cp  "
              "(md5 + sha512 + format check + fsync)")
        print(f"download (GET /file)  {down_seconds:6.2f} s  {rate(down_seconds):7.1f} MiB/s  "
              f"{100 * rate(down_seconds) / cp_rate:5.1f}% of cp  (md5 verified)")
        print(f"service RSS           idle {rss_idle:.1f} MiB, peak after upload "
              f"{peak_after_upload:.1f} MiB, peak overall {peak:.1f} MiB, "
              f"at end {rss_end:.1f} MiB")
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
