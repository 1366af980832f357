"""Cold migration and resize to another host: the stopped guest's disks travel over NBD.

The hosts share no disk (as in live migration, :mod:`.live`). On the source, once the
guest is off, each writable disk of the kept directory is exported read-only by a
``qemu-nbd`` of its own on a free port of ``live_migration_inbound_addr`` (the address
other hosts reach this one at). ``qemu-nbd --fork`` leaves a server that is not this
process's child (nothing to reap) and writes its pid to a file in the kept directory;
without ``--persistent`` it exits when the destination has read the disk and
disconnected, and :func:`stop_exports` ends any still running (by pid, after checking
that it is the ``qemu-nbd`` serving that file) when the move is confirmed, reverted
or undone.

The destination reads each export with ``qemu-img convert`` into a standalone disk of
the same format (a qcow2 root disk arrives flattened: it needs no image on the
destination to back it). The kernel and initrd of an AMI come from the destination's
own image cache, and the config drive is made again there, as for a spawn.

Example (source, then destination)::

    exports = await export_disks(kept_dir, [("disk.qcow2", "qcow2")], "127.0.0.1")
    await fetch_disks(exports, new_dir)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

import trio

from novalite.virt.driver import DriverError

from .live import free_port

#: Pid files of the exports, in the kept directory: ``nbd-<disk file>.pid``.
_PID_PREFIX = "nbd-"
#: Seconds a copy of one disk may take (a 20 GiB root over a slow link).
FETCH_TIMEOUT = 1800.0


def _pid_file(directory: str, name: str) -> str:
    return os.path.join(directory, f"{_PID_PREFIX}{name}.pid")


async def export_disks(directory: str, disks: list[tuple[str, str]], address: str
                       ) -> list[dict[str, Any]]:
    """Export each ``(file, format)`` of ``directory`` read-only over NBD on
    ``address``; returns ``[{"file", "format", "host", "port"}]`` for the destination.
    Raises DriverError (after ending the exports already started)."""
    exports: list[dict[str, Any]] = []
    try:
        for name, fmt in disks:
            port = free_port(address)
            proc = await trio.run_process(
                ["qemu-nbd", "--read-only", "--shared=1", f"--format={fmt}",
                 f"--bind={address}", f"--port={port}", "--fork",
                 f"--pid-file={_pid_file(directory, name)}", os.path.join(directory, name)],
                capture_stdout=True, capture_stderr=True, check=False,
                stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise DriverError(f"cannot export disk {name} for the move: "
                                  f"{proc.stderr.decode(errors='replace').strip()}")
            exports.append({"file": name, "format": fmt, "host": address, "port": port})
    except BaseException:
        with trio.CancelScope(shield=True):
            await stop_exports(directory)
        raise
    return exports


async def stop_exports(directory: str) -> None:
    """End the exports of ``directory`` still running (their pid files say which;
    a pid is signalled only while it is the ``qemu-nbd`` serving a file there)."""
    if not os.path.isdir(directory):
        return
    for entry in os.listdir(directory):
        if not (entry.startswith(_PID_PREFIX) and entry.endswith(".pid")):
            continue
        path = os.path.join(directory, entry)
        try:
            with open(path) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            argv, pid = [], 0
        served = entry[len(_PID_PREFIX):-len(".pid")]
        if pid and argv and os.path.basename(argv[0]) == b"qemu-nbd" and \
                os.path.join(directory, served).encode() in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def fetch_disks(exports: list[dict[str, Any]], directory: str) -> None:
    """Copy each export into ``directory`` under its file name and format."""
    for e in exports:
        url = f"nbd://{e['host']}:{int(e['port'])}"
        if ":" in str(e["host"]):
            url = f"nbd://[{e['host']}]:{int(e['port'])}"
        with trio.move_on_after(FETCH_TIMEOUT) as scope:
            proc = await trio.run_process(
                ["qemu-img", "convert", "-q", "-f", "raw", "-O", str(e["format"]), url,
                 os.path.join(directory, str(e["file"]))],
                capture_stdout=True, capture_stderr=True, check=False,
                stdin=subprocess.DEVNULL)
        if scope.cancelled_caught:
            raise DriverError(f"copying disk {e['file']} from {e['host']} timed out")
        if proc.returncode != 0:
            raise DriverError(f"cannot copy disk {e['file']} from {e['host']}: "
                              f"{proc.stderr.decode(errors='replace').strip()}")
