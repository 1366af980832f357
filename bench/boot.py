"""Boot benchmark on the fake driver: the figures of the core issue.

Runs a real ``novalite serve`` (fake driver, ``--hosts`` compute actors), then
``--clients`` concurrent HTTP clients POST ``--boots`` servers as fast as the API
takes them. Prints, per database backend:

* servers/s from the first POST to the last server ACTIVE,
* p50/p99 boot latency (POST sent -> the server's ``launched_at``, when it
  turned ACTIVE; client and server share this machine's clock),
* ``GET /servers/detail`` time with all the servers present (median of 5),
* ``novalite serve`` start-to-ready time (empty state dir, then a restart),
* the service's peak RSS (VmHWM),
* ``nova list`` wall time (the CLI, token cache warm) with 20 servers and with all.

Usage::

    .venv/bin/python bench/boot.py [--boots 1000] [--hosts 100] [--clients 20]
                                   [--db sqlite|mariadb|both]

``--db mariadb`` creates a throwaway database on the MariaDB at 127.0.0.1:3306
(root, empty password) and drops it afterwards. This is a benchmark, not a test:
it asserts nothing and prints the targets beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from novalite.testing.server import RunningServer, novalite_bin, start  # noqa: E402

TARGETS = {"servers/s": ">= 300", "p99": "< 0.5 s", "detail": "< 100 ms",
           "ready": "< 1.5 s", "rss": "< 150 MB", "nova list": "< 0.3 s"}


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=UTC).timestamp()


def ready_seconds(server: RunningServer, started_at: float, occurrence: int = -1) -> float:
    """Wall time from ``started_at`` to the service's "novalite ready" log line."""
    lines = [json.loads(line) for line in server.log().splitlines()
             if '"novalite ready"' in line]
    return parse_ts(lines[occurrence]["timestamp"]) - started_at


def reference_seconds() -> float:
    """A fixed pure-Python workload (10 million additions), timed: on a shared virtual
    machine the same code runs up to twice as slow at times, and this shows it."""
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def boot_all(server: RunningServer, boots: int, clients: int) -> dict[str, float]:
    """POST ``boots`` servers from ``clients`` concurrent clients; wait for all ACTIVE."""
    headers = {"X-Auth-Token": server.token(), "OpenStack-API-Version": "compute 2.96"}
    sent: dict[str, float] = {}
    counter = iter(range(boots))
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=clients + 2)) as http:
        image = (await http.get("/image/v2/images", params={"name": "demo"})).json()
        image_ref = image["images"][0]["id"]

        async def client() -> None:
            for i in counter:
                body = {"server": {"name": f"bench-{i}", "imageRef": image_ref,
                                   "flavorRef": "42", "networks": "none"}}
                t = time.time()
                r = await http.post("/compute/v2.1/servers", json=body)
                if r.status_code != 202:
                    raise RuntimeError(f"boot {i}: {r.status_code} {r.text}")
                sent[r.json()["server"]["id"]] = t

        first = time.time()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client)
        posted = time.time()
        while True:
            building = (await http.get("/compute/v2.1/servers",
                                       params={"status": "BUILD"})).json()["servers"]
            if not building:
                break
            await trio.sleep(0.5)
        detail = (await http.get("/compute/v2.1/servers/detail")).json()["servers"]
        latencies, last = [], 0.0
        errors = 0
        for s in detail:
            if s["id"] not in sent:
                continue
            if s["status"] != "ACTIVE":
                errors += 1
                continue
            launched = parse_ts(s["OS-SRV-USG:launched_at"])
            latencies.append(launched - sent[s["id"]])
            last = max(last, launched)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            r = await http.get("/compute/v2.1/servers/detail")
            times.append(time.perf_counter() - t)
            assert len(r.json()["servers"]) >= boots
    latencies.sort()
    return {
        "servers/s": len(latencies) / (last - first),
        "post/s": boots / (posted - first),
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": errors,
        "detail": statistics.median(times),
    }


def nova_list_seconds(server: RunningServer, home: Path, extra: list[str]) -> float:
    env = {**os.environ, **server.env, "XDG_CACHE_HOME": str(home / "cache")}
    cmd = [novalite_bin("nova"), "list", *extra]
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warms the token cache
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        runs.append(time.perf_counter() - t)
    return min(runs)


def mariadb_url() -> tuple[str, Any]:
    import pymysql

    name = f"novalite_bench_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")

    def drop() -> None:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()

    return f"mysql+pymysql://root:@127.0.0.1:3306/{name}", drop


def run(backend: str, args: argparse.Namespace) -> dict[str, float]:
    drop = None
    config: dict[str, dict[str, Any]] = {
        # The service's own defaults, not the test harness's 1 s periodic tasks.
        "compute": {"hosts": args.hosts, "heartbeat_interval": 10.0,
                    "power_sync_interval": 10.0},
        "logging": {"format": "json", "level": "info"},
        # The admin project boots them all: no quota in the way.
        "quota": {"instances": -1, "cores": -1, "ram": -1},
    }
    if backend == "mariadb":
        url, drop = mariadb_url()
        config["database"] = {"connection": url}
    try:
        with tempfile.TemporaryDirectory(prefix="novalite-bench-") as tmp:
            state = Path(tmp) / "state"
            t0 = time.time()
            server = start(state, config=config, timeout=60)
            fresh_ready = ready_seconds(server, t0)
            server.stop()
            t0 = time.time()
            server = start(state, config=config, timeout=60)
            try:
                figures = {"ready (fresh)": fresh_ready, "ready": ready_seconds(server, t0)}
                figures["nova list (20)"] = _nova_list_small(server, Path(tmp))
                spy = None
                if args.profile:  # py-spy (pip install py-spy) samples the service while it boots
                    spy = subprocess.Popen(["py-spy", "record", "--gil", "--format", "raw", "-r", "200",
                                            "-o", f"{args.profile}.{backend}", "--pid",
                                            str(server.process.pid)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                    time.sleep(1)
                reference = reference_seconds()
                cpu0, wall0 = cpu_seconds(server.process.pid), time.monotonic()
                figures.update(trio.run(boot_all, server, args.boots, args.clients))
                used = cpu_seconds(server.process.pid) - cpu0
                figures["cpu"] = used / (time.monotonic() - wall0)
                figures["cpu/boot"] = used / args.boots * 1000
                figures["reference"] = (reference + reference_seconds()) / 2
                if spy:
                    spy.send_signal(2)
                    spy.wait()
                figures["nova list"] = nova_list_seconds(server, Path(tmp), [])
                figures["rss"] = peak_rss_mb(server.process.pid)
            finally:
                server.stop()
            return figures
    finally:
        if drop:
            drop()


def _nova_list_small(server: RunningServer, home: Path) -> float:
    c = server.client()
    image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
    r = c.post("/compute/v2.1/servers", json={"server": {
        "name": "small", "imageRef": image, "flavorRef": "42", "networks": "none",
        "min_count": 20, "max_count": 20}})
    r.raise_for_status()
    deadline = time.monotonic() + 30
    while c.get("/compute/v2.1/servers", params={"status": "BUILD"}).json()["servers"]:
        if time.monotonic() > deadline:
            raise RuntimeError("20 servers not ACTIVE within 30 s")
        time.sleep(0.1)
    seconds = nova_list_seconds(server, home, [])
    for s in c.get("/compute/v2.1/servers", params={"name": "^small"}).json()["servers"]:
        c.delete(f"/compute/v2.1/servers/{s['id']}")
    while c.get("/compute/v2.1/servers", params={"name": "^small"}).json()["servers"]:
        time.sleep(0.1)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--profile", metavar="FILE",
                        help="sample the service with py-spy during the boots (FILE.<db>)")
    parser.add_argument("--db", choices=("sqlite", "mariadb", "both"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "mariadb"] if args.db == "both" else [args.db]
    results = {}
    for backend in backends:
        print(f"running {args.boots} boots on {args.hosts} fake hosts, {args.clients} clients, "
              f"{backend} ...", file=sys.stderr, flush=True)
        try:
            results[backend] = run(backend, args)
        except Exception as exc:  # a backend that cannot run is reported, not fatal
            print(f"{backend}: failed: {exc}", file=sys.stderr)
    rows = [
        ("servers/s (first POST -> last ACTIVE)", "servers/s", "{:.0f}", TARGETS["servers/s"]),
        ("POSTs accepted/s", "post/s", "{:.0f}", ""),
        ("boot latency p50", "p50", "{:.3f} s", ""),
        ("boot latency p99", "p99", "{:.3f} s", TARGETS["p99"]),
        ("service CPU use during the boots", "cpu", "{:.0%}", "of one core"),
        ("service CPU time per boot (incl. polling)", "cpu/boot", "{:.2f} ms", ""),
        ("servers not ACTIVE", "errors", "{:.0f}", "0"),
        ("machine speed: 10M Python additions", "reference", "{:.2f} s", "lower is faster"),
        (f"GET /servers/detail ({args.boots} servers)", "detail", "{:.3f} s", TARGETS["detail"]),
        ("serve start-to-ready, empty state", "ready (fresh)", "{:.2f} s", ""),
        ("serve start-to-ready, restart", "ready", "{:.2f} s", TARGETS["ready"]),
        ("peak RSS of novalite serve", "rss", "{:.0f} MB", TARGETS["rss"]),
        ("nova list, 20 servers", "nova list (20)", "{:.2f} s", TARGETS["nova list"]),
        (f"nova list, {args.boots} servers", "nova list", "{:.2f} s", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  " + "".join(f"{b:>12}" for b in results) + "   target")
    for label, key, fmt, target in rows:
        cells = "".join(f"{fmt.format(results[b][key]):>12}" for b in results)
        print(f"{label:{width}}  {cells}   {target}")


if __name__ == "__main__":
    main()
