"""Live migration between hosts that share no disk (contract 1.5), in QMP steps.

The destination's QEMU is started from a launch.json built as for a spawn (its disks
new: overlays on this host's own cached base image) with ``-incoming defer -S``;
:func:`listen` then has it listen for the machine state on a TCP port
(``migrate-incoming`` on port 0, the port read back from ``query-migrate``) and
export its writable disks over NBD (``nbd-server-start`` + ``block-export-add``).
The source (:func:`send`) mirrors each writable disk's top layer to those exports
(``drive-mirror``, ``sync=top``, ``copy-mode=write-blocking``: once a mirror is
ready every guest write reaches both disks before it completes), then sends the
memory (``migrate``). When the migration completes the source is paused
(``postmigrate``), its mirrors are cancelled (a ready mirror ends without a switch)
and :func:`start` on the destination ends the NBD server and runs the guest
(``cont``). This is what libvirt does for Nova's non-shared block migration; QEMU 7.2's
own block migration (``migrate`` with ``blk``) is deprecated since 8.2 and gone in 9.1.

Read-only disks (the config drive) are not copied: the destination has its own copy.
A failure anywhere before the destination runs leaves the source running, its
mirrors cancelled.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import trio

from novalite.virt.driver import DriverError

from .qmp import QmpError, qmp_execute

#: The export name and mirror job name of a disk are built from its QEMU device name.
_JOB_PREFIX = "nl-mirror-"


async def _qmp(path: str, command: str, args: dict[str, Any] | None = None,
               timeout: float = 10.0) -> Any:
    try:
        return await qmp_execute(path, command, args, timeout)
    except QmpError as exc:
        raise DriverError(f"live migration: {exc}") from None


async def writable_disks(qmp_path: str) -> list[dict[str, str]]:
    """``[{"device", "node"}]`` of the guest's writable disks (no cdrom, no read-only)."""
    found = []
    for b in await _qmp(qmp_path, "query-block"):
        inserted = b.get("inserted")
        if not inserted or inserted.get("ro"):
            continue
        found.append({"device": str(b["device"] or b.get("qdev", "")),
                      "node": str(inserted["node-name"])})
    return found


def free_port(address: str) -> int:
    """A TCP port free on ``address`` now (QEMU's NBD server cannot report the one it
    was given as 0); a race with another listener fails the migration cleanly."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


async def listen(qmp_path: str, address: str) -> dict[str, Any]:
    """On the destination (QEMU started with ``-incoming defer -S``): listen for the
    machine state and export the writable disks; the data the source needs."""
    await _qmp(qmp_path, "migrate-incoming", {"uri": f"tcp:{address}:0"})
    info = await _qmp(qmp_path, "query-migrate")
    ports = [a for a in info.get("socket-address", []) if a.get("type") == "inet"]
    if not ports:
        raise DriverError("live migration: the destination QEMU reports no listening port")
    uri = f"tcp:{address}:{ports[0]['port']}"
    disks = await writable_disks(qmp_path)
    nbd_port = free_port(address)
    await _qmp(qmp_path, "nbd-server-start", {
        "addr": {"type": "inet", "data": {"host": address, "port": str(nbd_port)}}})
    for d in disks:
        await _qmp(qmp_path, "block-export-add", {
            "type": "nbd", "id": d["device"], "node-name": d["node"],
            "name": d["device"], "writable": True})
    return {"uri": uri, "nbd": {"host": address, "port": nbd_port},
            "disks": [d["device"] for d in disks]}


async def _mirrors(qmp_path: str) -> dict[str, dict[str, Any]]:
    jobs = await _qmp(qmp_path, "query-block-jobs")
    return {str(j["device"]): j for j in jobs if str(j["device"]).startswith(_JOB_PREFIX)}


async def cancel_mirrors(qmp_path: str) -> None:
    """End the mirror jobs (a ready one completes without switching disks) and wait
    until they are gone."""
    with contextlib.suppress(DriverError), trio.move_on_after(30):
        for job in await _mirrors(qmp_path):
            with contextlib.suppress(DriverError):
                await _qmp(qmp_path, "block-job-cancel", {"device": job, "force": True})
        while await _mirrors(qmp_path):
            await trio.sleep(0.02)


async def send(qmp_path: str, data: dict[str, Any], *, bandwidth_mib: int,
               downtime_ms: int, timeout: float) -> dict[str, Any]:
    """On the source: mirror the disks to the destination's exports, then migrate the
    memory. Returns QEMU's figures (``total-time``, ``downtime`` in ms) once the source
    is paused and its mirrors cancelled; raises DriverError with the guest running
    here as before otherwise."""
    disks = await writable_disks(qmp_path)
    if sorted(d["device"] for d in disks) != sorted(data.get("disks", [])):
        raise DriverError(f"live migration: the destination's disks "
                          f"{data.get('disks')} differ from the guest's "
                          f"{[d['device'] for d in disks]}")
    nbd = data["nbd"]
    host = str(nbd["host"])
    host = f"[{host}]" if ":" in host else host
    started = time.monotonic()
    try:
        with trio.fail_after(timeout):
            for d in disks:
                await _qmp(qmp_path, "drive-mirror", {
                    "device": d["device"], "job-id": _JOB_PREFIX + d["device"],
                    "target": f"nbd:{host}:{nbd['port']}:exportname={d['device']}",
                    "format": "raw", "sync": "top", "mode": "existing",
                    "copy-mode": "write-blocking",
                    **({"speed": bandwidth_mib << 20} if bandwidth_mib else {})})
            while True:
                jobs = await _mirrors(qmp_path)
                if len(jobs) < len(disks):
                    raise DriverError("live migration: copying a disk to the destination "
                                      "failed")
                if all(j.get("ready") for j in jobs.values()):
                    break
                await trio.sleep(0.02)
            await _qmp(qmp_path, "migrate-set-parameters", {
                "max-bandwidth": (bandwidth_mib << 20) if bandwidth_mib else 1 << 40,
                "downtime-limit": downtime_ms})
            await _qmp(qmp_path, "migrate", {"uri": str(data["uri"])})
            while True:
                info = await _qmp(qmp_path, "query-migrate")
                status = info.get("status")
                if status == "completed":
                    completed_at = time.time()
                    break
                if status in ("failed", "cancelled"):
                    raise DriverError("live migration failed: "
                                      f"{info.get('error-desc', status)}")
                await trio.sleep(0.01)
    except BaseException as exc:
        with trio.CancelScope(shield=True):
            if isinstance(exc, trio.TooSlowError):
                with contextlib.suppress(DriverError):
                    await _qmp(qmp_path, "migrate_cancel")
            await cancel_mirrors(qmp_path)
            with contextlib.suppress(DriverError):  # QEMU resumes a failed migration's
                status = (await _qmp(qmp_path, "query-status"))["status"]  # source itself
                if status in ("postmigrate", "paused", "finish-migrate"):
                    await _qmp(qmp_path, "cont")
        if isinstance(exc, trio.TooSlowError):
            raise DriverError(f"live migration did not complete in {timeout:.0f} s; "
                              "cancelled") from None
        raise
    await cancel_mirrors(qmp_path)
    return {"total_time_ms": int(info.get("total-time") or 0),
            "downtime_ms": int(info.get("downtime") or 0),
            "seconds": round(time.monotonic() - started, 3), "completed_at": completed_at}


async def start(qmp_path: str) -> None:
    """On the destination, the state received: end the NBD server and run the guest."""
    with trio.fail_after(60):
        while (await _qmp(qmp_path, "query-status"))["status"] == "inmigrate":
            await trio.sleep(0.01)
    with contextlib.suppress(DriverError):
        await _qmp(qmp_path, "nbd-server-stop")
    await _qmp(qmp_path, "cont")
