"""Scheduler benchmark: ``select_destinations`` latency, and a service with 10,000 hosts.

Part 1 measures the scheduler itself: a :class:`SchedulerManager` in this process
with the default ``[scheduler]`` filters and weighers over N synthetic host
states (varied capacity and usage, some disabled, two zones), calling
``select_destinations`` (choose and claim; the claim is released again so every
call sees the same view). Prints p50/p99 at 100, 1,000 and 10,000 hosts.

Part 2 runs a real ``novalite serve`` with ``[compute] hosts = 10000`` fake
hosts and prints its start-to-ready time, its RSS, and boot throughput (HTTP
POSTs from concurrent clients until every server is ACTIVE).

Usage::

    .venv/bin/python bench/scheduler.py [--hosts 100,1000,10000] [--calls 2000]
                                        [--service-hosts 10000] [--boots 500] [--no-service]

A benchmark, not a test: it asserts nothing and prints the targets beside the figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from novalite import log  # noqa: E402
from novalite.config import Config  # noqa: E402
from novalite.scheduler.host_state import RequestSpec  # noqa: E402
from novalite.scheduler.manager import SchedulerManager  # noqa: E402

TARGETS = {100: "", 1000: "p50 < 2 ms", 10000: "p50 < 10 ms"}


def synthetic_scheduler(hosts: int, seed: int = 1) -> SchedulerManager:
    rng = random.Random(seed)
    sched = SchedulerManager(None, Config())  # type: ignore[arg-type]  # no database needed
    now = time.monotonic()
    for i in range(hosts):
        name = f"compute-{i + 1}"
        sched._update_node(name, {
            "vcpus": rng.choice((16, 32, 64)), "memory_mb": rng.choice((65536, 131072, 262144)),
            "local_gb": rng.choice((1024, 2048)), "hypervisor_type": "fake",
            "hypervisor_version": 1000, "cpu_info": {"arch": "x86_64"},
            "supported_instances": [["x86_64", "fake", "hvm"]]})
        sched.host_update({"host": name, "heartbeat": True, "disabled": rng.random() < 0.02,
                           "availability_zone": "nova" if i % 2 else "zone-b"})
        sched.hosts[name].last_seen = now + 3600  # stays "up" for the whole run
        for _ in range(rng.randrange(0, 20)):  # existing usage
            sched._claim(name, str(uuid.uuid4()), 2, 4096, 20)
    return sched


async def measure(hosts: int, calls: int) -> tuple[float, float, float]:
    sched = synthetic_scheduler(hosts)
    times = []
    for i in range(calls):
        spec = RequestSpec(instance_uuid=str(uuid.uuid4()), vcpus=2, memory_mb=4096,
                           disk_gb=20, image_properties={"architecture": "x86_64"},
                           availability_zone="nova" if i % 4 == 0 else None)
        t = time.perf_counter()
        dest = await sched.select_destinations(spec, persist=False)
        times.append(time.perf_counter() - t)
        sched._release(dest["allocation"]["instance_uuid"])
    times.sort()
    return (statistics.median(times) * 1000, times[int(len(times) * 0.99)] * 1000,
            statistics.mean(times) * 1000)


def rss_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def service(hosts: int, boots: int, clients: int) -> dict[str, float]:
    import boot as boot_bench  # bench/boot.py

    from novalite.testing.server import start

    config = {"compute": {"hosts": hosts, "heartbeat_interval": 10.0,
                          "power_sync_interval": 10.0},
              "quota": {"instances": -1, "cores": -1, "ram": -1},
              "logging": {"format": "json", "level": "info"}}
    with tempfile.TemporaryDirectory(prefix="novalite-bench-sched-") as tmp:
        t0 = time.time()
        srv = start(Path(tmp) / "state", config=config, timeout=600)
        try:
            ready = boot_bench.ready_seconds(srv, t0)
            time.sleep(12)  # a heartbeat round and a power-sync round of every host
            idle = rss_mb(srv.process.pid, "VmRSS")
            figures = trio.run(boot_bench.boot_all, srv, boots, clients)
            return {"ready": ready, "rss idle": idle,
                    "rss after": rss_mb(srv.process.pid, "VmRSS"),
                    "rss peak": rss_mb(srv.process.pid, "VmHWM"), **figures}
        finally:
            srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="100,1000,10000")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--service-hosts", type=int, default=10000)
    parser.add_argument("--boots", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--no-service", action="store_true")
    args = parser.parse_args()
    log.setup("info")  # as the service runs by default: no per-request debug lines
    cfg = Config().scheduler
    print(f"filters: {', '.join(cfg.enabled_filters)}")
    print(f"weighers: {', '.join(cfg.weighers)}")
    print(f"{'hosts':>8} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}   target")
    for n in (int(x) for x in args.hosts.split(",")):
        p50, p99, mean = trio.run(measure, n, args.calls if n < 10000 else args.calls // 4)
        print(f"{n:>8} {p50:>9.3f} {p99:>9.3f} {mean:>9.3f}   {TARGETS.get(n, '')}",
              flush=True)
    if args.no_service:
        return
    print(f"\nnovalite serve with {args.service_hosts} fake hosts, {args.boots} boots, "
          f"{args.clients} clients (sqlite) ...", flush=True)
    f = service(args.service_hosts, args.boots, args.clients)
    rows = [("start-to-ready", f"{f['ready']:.1f} s", ""),
            ("RSS idle (after a heartbeat round)", f"{f['rss idle']:.0f} MB", "< 300 MB"),
            ("RSS after the boots", f"{f['rss after']:.0f} MB", "< 300 MB"),
            ("peak RSS (VmHWM)", f"{f['rss peak']:.0f} MB", ""),
            ("boots/s (first POST -> last ACTIVE)", f"{f['servers/s']:.0f}", ""),
            ("POSTs accepted/s", f"{f['post/s']:.0f}", ""),
            ("boot latency p50 / p99", f"{f['p50']:.3f} / {f['p99']:.3f} s", ""),
            ("servers not ACTIVE", f"{f['errors']:.0f}", "0")]
    width = max(len(r[0]) for r in rows)
    for label, value, target in rows:
        print(f"{label:{width}}  {value:>16}   {target}")


if __name__ == "__main__":
    main()
