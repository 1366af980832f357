"""Boots per second over RabbitMQ beside one process, on the fake driver (one run, one ratio).

Two layouts of the same ``--hosts`` compute hosts, one after the other:

* **one process**: ``novalite serve`` (``--role all``, the in-memory transport);
* **over RabbitMQ**: ``novalite serve --role control`` and ``--computes`` processes of
  ``--role compute`` sharing the hosts, over the local RabbitMQ (127.0.0.1:5672,
  guest/guest) in a throwaway virtual host (deleted afterwards).

For each: servers/s (first POST to last ACTIVE), POSTs/s, p50/p99 boot latency (POST ->
``launched_at``), errors; over RabbitMQ also the broker connections per process
(``rabbitmqctl list_connections``) and each compute process's peak RSS. Then the ratio.

Usage::

    .venv/bin/python bench/amqp_boot.py [--boots 200] [--hosts 4] [--computes 2]
                                        [--clients 10]

A fake host holds 64 servers of flavor 42 (16 vCPUs x ``cpu_allocation_ratio`` 4, the
defaults): keep ``--boots`` within 64 x ``--hosts`` (beyond, boots
end in ERROR with NoValidHost and count as errors). A benchmark, not a test: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boot import boot_all, peak_rss_mb  # noqa: E402

from novalite.testing.server import RunningServer, start  # noqa: E402

BASE: dict[str, dict[str, Any]] = {
    # The service's own periodic defaults, not the test harness's 1 s.
    "compute": {"heartbeat_interval": 10.0, "power_sync_interval": 10.0},
    "logging": {"format": "json", "level": "info"},  # "novalite ready" is info
    "quota": {"instances": -1, "cores": -1, "ram": -1},
}


def merged(**sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {name: dict(values) for name, values in BASE.items()}
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out


def ctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def one_process(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    hosts = [f"host-{i}" for i in range(1, args.hosts + 1)]
    server = start(tmp / "single", config=merged(compute={"hosts": hosts}), timeout=60)
    try:
        return trio.run(boot_all, server, args.boots, args.clients)
    finally:
        server.stop()


def over_rabbitmq(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    vhost = f"novalite-bench-{uuid.uuid4().hex[:8]}"
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
    processes: list[RunningServer] = []
    try:
        control = start(tmp / "control", config=merged(DEFAULT={"transport_url": url}),
                        extra_env={"NOVALITE_ROLE": "control"}, timeout=60)
        processes.append(control)
        computes = []
        for k in range(args.computes):
            hosts = [f"host-{i}" for i in range(1, args.hosts + 1)
                     if i % args.computes == k]
            computes.append(start(tmp / f"compute-{k}", config=merged(
                DEFAULT={"transport_url": url},
                compute={"hosts": hosts, "image_api_url": f"{control.url}/image"}),
                extra_env={"NOVALITE_ROLE": "compute"}, timeout=60))
            processes.append(computes[-1])
        figures = trio.run(boot_all, control, args.boots, args.clients)
        connections = ctl("-q", "list_connections", "-p", vhost, "--no-table-headers", "name")
        figures["broker connections"] = len([c for c in connections.splitlines() if c.strip()])
        figures["connections/process"] = figures["broker connections"] / len(processes)
        for k, p in enumerate(computes):
            figures[f"compute-{k} peak RSS MB"] = peak_rss_mb(p.process.pid)
        return figures
    finally:
        for p in processes:
            p.stop()
        ctl("delete_vhost", vhost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boots", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--computes", type=int, default=2)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="novalite-bench-") as t:
        tmp = Path(t)
        single = one_process(args, tmp)
        multi = over_rabbitmq(args, tmp)
    print(f"{args.boots} boots, {args.hosts} fake hosts, {args.clients} clients")
    print(f"{'':24} {'one process':>12} {'over RabbitMQ':>14}")
    for key in ("servers/s", "post/s", "p50", "p99", "errors"):
        print(f"{key:24} {single[key]:12.3f} {multi[key]:14.3f}")
    for key, value in multi.items():
        if key not in single:
            print(f"{key:24} {'':12} {value:14.1f}")
    print(f"ratio (RabbitMQ / one process, servers/s): "
          f"{multi['servers/s'] / single['servers/s']:.2f}")


if __name__ == "__main__":
    main()
