"""The property-based fuzzer (schemathesis) over every route, with a larger budget than the
suite's (tests/test_openapi.py): figures per mount, no assertion.

A ``novalite serve`` of its own (fake driver, SQLite, a temporary state directory)
answers; the fuzzer reads each mount's ``<mount>/openapi.json`` and sends requests
with an admin token in two passes:

1. **made-up ids**: every operation, path parameters as generated (most requests
   on one resource end at its 404, the rest reach validation and the handlers);
2. **real ids**: path parameters bound to resources the bench made first (a server
   on the fake driver, an image with data, a flavor, an aggregate, a server group,
   a volume, the admin project), so requests reach past the lookup; DELETE is left
   out in this pass.

Printed per mount and pass: operations tested, requests the service answered (from
its log), 5xx answers (the goal is 0, each listed) and seconds.

Usage::

    .venv/bin/python bench/fuzz_api.py [--examples 25] [--phases examples,coverage,fuzzing]
                                       [--mounts /compute,/image,/identity,/volume,/network]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from novalite.testing.fuzz import MOUNTS, FuzzResult, fuzz
from novalite.testing.server import RunningServer, start


def _fixtures(srv: RunningServer) -> dict[str, dict[str, str]]:
    """Resources to bind path parameters to, per mount."""
    with srv.client() as c:
        project = c.get("/identity/v3/auth/projects").json()["projects"][0]["id"]
        flavor = c.get("/compute/v2.1/flavors").json()["flavors"][0]["id"]
        image = c.post("/image/v2/images", json={
            "name": "fuzz", "disk_format": "raw", "container_format": "bare"}).json()["id"]
        c.put(f"/image/v2/images/{image}/file", content=b"\0" * 65536,
              headers={"Content-Type": "application/octet-stream"})
        server = c.post("/compute/v2.1/servers", json={"server": {
            "name": "fuzz", "imageRef": image, "flavorRef": flavor,
            "networks": "none"}}).json()["server"]["id"]
        aggregate = c.post("/compute/v2.1/os-aggregates", json={"aggregate": {
            "name": "fuzz"}}).json()["aggregate"]["id"]
        group = c.post("/compute/v2.1/os-server-groups", json={"server_group": {
            "name": "fuzz", "policy": "affinity"}}).json()["server_group"]["id"]
        volume = c.post("/volume/v3/volumes", json={"volume": {"size": 1, "name": "fuzz"}}
                        ).json()["volume"]["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = c.get(f"/compute/v2.1/servers/{server}").json()["server"]
            if shown["status"] in ("ACTIVE", "ERROR"):
                break
            time.sleep(0.5)
        host = shown.get("OS-EXT-SRV-ATTR:host") or ""
    compute = {"server_id": server, "image_id": image, "flavor_id": str(flavor),
               "aggregate_id": str(aggregate), "group_id": group, "tenant_id": project,
               "volume_id": volume}
    if host:
        compute["host"] = host
    return {"/compute": compute, "/image": {"image_id": image},
            "/volume": {"volume_id": volume, "target": project}}


def _line(label: str, r: FuzzResult) -> str:
    return (f"  {label:<9} operations {r.operations:>4}  test cases {r.test_cases:>6}  "
            f"requests {r.requests:>6}  5xx {len(r.server_errors):>3} "
            f"(and 501 {len(r.not_implemented)})  {r.seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=25)
    parser.add_argument("--phases", default="examples,coverage,fuzzing")
    parser.add_argument("--mounts", default=",".join(MOUNTS))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    mounts = tuple(m for m in args.mounts.split(",") if m)
    with tempfile.TemporaryDirectory(prefix="novalite-fuzz-bench-") as tmp:
        srv = start(Path(tmp) / "state", timeout=120)
        try:
            fixtures = _fixtures(srv)
            results: list[tuple[str, FuzzResult]] = []
            r = fuzz(srv, mounts, max_examples=args.examples, phases=args.phases,
                     seed=args.seed, timeout=7200)
            results.append(("made-up", r))
            print(_line("made-up", r), flush=True)
            srv.token(fresh=True)  # the fuzzer may have revoked it
            bound = tuple(m for m in mounts if m in fixtures)
            if bound:
                parameters = {k: v for m in bound for k, v in fixtures[m].items()}
                r = fuzz(srv, bound, max_examples=args.examples, phases=args.phases,
                         parameters=parameters, exclude_methods=("DELETE",),
                         seed=args.seed, timeout=7200)
                results.append(("real ids", r))
                print(_line("real ids", r), flush=True)
            alive = httpx.get(f"{srv.url}/", timeout=10).status_code
        finally:
            srv.stop()
    total = sum(r.requests for _, r in results)
    errors = [e for _, r in results for e in r.server_errors]
    print(f"total: {results[0][1].operations} operations, {total} requests, {len(errors)} "
          f"server errors (goal 0); service still answering: {alive}")
    for e in sorted(set(errors)):
        print("  5xx:", e)
    for e in sorted({e for _, r in results for e in r.not_implemented}):
        print("  501 (Nova's answer for what the driver does not do):", e)


if __name__ == "__main__":
    main()
