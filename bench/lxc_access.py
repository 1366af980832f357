"""Benchmark: a container's metadata requests and console keystrokes through novalite,
each beside the same thing without novalite's relays.

Run as ``.venv/bin/python bench/lxc_access.py [--requests N] [--keys N]`` (root,
Debian's ``lxc`` and ``busybox-static``). One ``novalite serve`` (driver ``lxc``, a
known ``metadata_proxy_shared_secret``) boots one busybox container, then:

* metadata: busybox ``wget`` fetches ``openstack/latest/meta_data.json`` N times in a
  loop inside the container (169.254.169.254: the listener in the container's network
  namespace -> the compute host's per-guest UNIX relay, which signs it -> the metadata
  listener), beside the same busybox ``wget`` loop on the host straight to the metadata
  listener with the signature headers (no relay hops); requests per second each, and
  the service's CPU seconds per request (from ``/proc/<pid>/stat``) during the first;
* console: one character typed and its echo read back, N times, over the serial
  websocket (API -> token -> proxy -> compute host relay -> ``lxc-console``), beside
  the same on ``lxc-console`` run directly on a pty; median and range each.

Everything lives in one temporary directory, removed at the end; the container is
deleted through the API and the service stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from httpx_ws import connect_ws
from novalite_drivers.lxc import LxcDriver

from novalite.metadata.proxy import sign
from novalite.testing.rootfs import IMAGE_PROPERTIES, build_busybox_rootfs
from novalite.testing.server import RunningServer, free_port, start, wait_for

HOST = "bench-1"
SECRET = "bench-secret"
FLAVOR = {"name": "bench.access", "ram": 128, "vcpus": 1, "disk": 1}
PATH = "/openstack/latest/meta_data.json"


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wget_loop(n: int, url: str, headers: list[str]) -> str:
    args = " ".join(f"--header '{h}'" for h in headers)
    return (f"i=0; while [ $i -lt {n} ]; do wget -q -O /dev/null {args} {url} || exit 1; "
            f"i=$((i+1)); done")


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return time.monotonic() - started


def fmt(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"median {statistics.median(ms):6.2f} ms  (range {ms[0]:.2f}-{ms[-1]:.2f})"


def round_trips_ws(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as client, \
            connect_ws("http" + url.removeprefix("ws"), client) as ws:
        ws.send_bytes(b"\r")
        time.sleep(0.5)
        while True:  # drain the prompt
            try:
                ws.receive_bytes(timeout=0.3)
            except Exception:
                break
        for _ in range(n):
            started = time.monotonic()
            ws.send_bytes(b"x")
            got = b""
            while b"x" not in got:
                got += ws.receive_bytes(timeout=10)
            out.append(time.monotonic() - started)
        ws.send_bytes(b"\x15")  # ^U: clear the typed line
        time.sleep(0.5)  # let the input reach LXC before leaving
    return out


def round_trips_pty(lxc_path: str, name: str, n: int) -> list[float]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(["lxc-console", "-P", lxc_path, "-n", name, "-t", "0"],
                            stdin=slave, stdout=slave, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    os.close(slave)
    out = []
    try:
        time.sleep(0.5)
        while select.select([master], [], [], 0.3)[0]:
            os.read(master, 65536)
        for _ in range(n):
            started = time.monotonic()
            os.write(master, b"x")
            got = b""
            while b"x" not in got:
                select.select([master], [], [], 10)
                got += os.read(master, 65536)
            out.append(time.monotonic() - started)
        os.write(master, b"\x15")
        time.sleep(0.5)
    finally:
        os.write(master, b"\x01q")
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(master)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="metadata requests per side")
    parser.add_argument("--keys", type=int, default=50, help="keystrokes per side")
    args = parser.parse_args()
    check = LxcDriver.check_host()
    if not check.usable or shutil.which("busybox") is None:
        print(f"cannot run: {check.reason or 'busybox not found'}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="novalite-bench-lxc-access-"))
    srv: RunningServer | None = None
    md_port = free_port()
    try:
        srv = start(root / "state", config={
            "compute": {"driver": "lxc", "hosts": [HOST]},
            "metadata": {"metadata_listen_port": md_port,
                         "metadata_proxy_shared_secret": SECRET},
        }, timeout=60)
        c = srv.client()
        r = c.post("/image/v2/images", json={"name": "busybox", **IMAGE_PROPERTIES})
        image = r.json()["id"]
        with open(build_busybox_rootfs(), "rb") as f:
            c.put(f"/image/v2/images/{image}/file", content=f.read(),
                  headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        flavor = c.post("/compute/v2.1/flavors", json={"flavor": FLAVOR}).json()["flavor"]["id"]
        r = c.post("/compute/v2.1/servers", json={"server": {
            "name": "bench", "imageRef": image, "flavorRef": flavor}})
        sid = r.json()["server"]["id"]
        wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"]
                 == "ACTIVE", 60)
        project = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["tenant_id"]
        lxc_path = str(srv.state_path / "drivers" / "lxc" / HOST / "containers")
        attach = ["lxc-attach", "-P", lxc_path, "-n", sid, "--", "/bin/sh", "-c"]
        n = args.requests

        # Warm-ups, then the measured loops.
        wait_for(lambda: subprocess.run(attach + [wget_loop(1, "http://169.254.169.254" + PATH,
                                                            [])]).returncode == 0, 30)
        direct = ["busybox", "sh", "-c", wget_loop(n, f"http://127.0.0.1:{md_port}{PATH}", [
            f"X-Instance-ID: {sid}", f"X-Tenant-ID: {project}",
            f"X-Instance-ID-Signature: {sign(SECRET, sid)}"])]
        timed(direct[:3] + [wget_loop(1, f"http://127.0.0.1:{md_port}{PATH}", [
            f"X-Instance-ID: {sid}", f"X-Tenant-ID: {project}",
            f"X-Instance-ID-Signature: {sign(SECRET, sid)}"])])
        cpu0 = cpu_seconds(srv.process.pid)
        t_guest = timed(attach + [wget_loop(n, "http://169.254.169.254" + PATH, [])])
        cpu_guest = cpu_seconds(srv.process.pid) - cpu0
        t_direct = timed(direct)

        r = c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
                   json={"remote_console": {"protocol": "serial", "type": "serial"}})
        r.raise_for_status()
        ws_rt = round_trips_ws(r.json()["remote_console"]["url"], args.keys)
        pty_rt = round_trips_pty(lxc_path, sid, args.keys)

        print(f"lxc access, busybox container, {n} metadata requests and {args.keys} "
              f"keystrokes per side ({os.cpu_count()} CPUs)")
        print(f"metadata  in the container, 169.254.169.254 via relays  "
              f"{n / t_guest:7.1f} req/s  (service CPU {cpu_guest / n * 1000:.2f} ms/request)")
        print(f"metadata  on the host, straight to the listener, signed  "
              f"{n / t_direct:7.1f} req/s")
        print(f"ratio     relayed / direct throughput: {t_direct / t_guest:.2f}")
        print(f"console   keystroke echo over the serial websocket  {fmt(ws_rt)}")
        print(f"console   keystroke echo on lxc-console directly    {fmt(pty_rt)}")
        print(f"ratio     websocket / direct (medians): "
              f"{statistics.median(ws_rt) / statistics.median(pty_rt):.1f}x")
        c.delete(f"/compute/v2.1/servers/{sid}")
        wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, 60)
        return 0
    finally:
        if srv is not None:
            srv.stop()
            lxc_path = srv.state_path / "drivers" / "lxc" / HOST / "containers"
            for name in os.listdir(lxc_path) if lxc_path.is_dir() else []:
                for tool in (["lxc-stop", "-k"], ["lxc-destroy"]):
                    subprocess.run([tool[0], "-P", str(lxc_path), "-n", name, *tool[1:]],
                                   capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
