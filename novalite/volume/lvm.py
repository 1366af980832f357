"""The ``lvm`` volume backend: thin logical volumes in a volume group (Debian's ``lvm2``).

As Cinder's reference LVM driver with ``lvm_type = thin``: every volume is a thin
LV ``volume-<id>`` in the thin pool of the group named by ``[volume]
lvm_volume_group``; a snapshot is a thin snapshot ``snapshot-<id>`` of it (no copy:
it shares the origin's chunks until either is written). The pool (``[volume]
lvm_thin_pool``, default ``<group>-pool``) is made at start when missing, from 95%
of the group's free space, with zeroing on, so a chunk the pool hands out again is
zeroed before any volume can read it. The group itself is the operator's
(``pvcreate`` + ``vgcreate``): a missing group stops the service at start with the
command to run.

Deleted data is *discarded*: ``blkdiscard`` of the whole LV unmaps each of its
chunks (the pool's ``discards=passdown`` passes that down to the physical volume,
whose blocks then read as zeros), then ``lvremove``. The freed chunks go back to
the pool, which zeroes a chunk again before a new volume's first partial write
lands in it, so no later volume reads a deleted one's bytes.

A volume's location is ``<group>/<lv>``; its device ``/dev/<group>/<lv>``. Every
method runs ``lvm`` commands and blocks (the service calls them on threads); a
refused command is a :class:`~novalite.volume.backends.BackendError` with LVM's
own message.

Requires root and a kernel with device-mapper's thin-pool target (``dm_thin_pool``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from novalite.volume.backends import GIB, BackendError, VolumeBackend

#: LVM's environment: no prompts, no warnings about file descriptors the service holds.
_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}


def _run(*argv: str) -> str:
    """Run an LVM (or util-linux) command; its stdout, or BackendError with its stderr."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env={**os.environ, **_ENV}, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BackendError(f"{argv[0]} is not installed (Debian's lvm2)") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{' '.join(argv)} did not finish within 120s") from None
    if done.returncode != 0:
        reason = " ".join(line.strip() for line in done.stderr.splitlines()
                          if line.strip() and "leaked on" not in line)
        raise BackendError(f"{' '.join(argv[:2])}: {reason or f'exit {done.returncode}'}")
    return done.stdout


def device_size(path: str) -> int:
    """The size in bytes of a block device (or file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


class LVMBackend(VolumeBackend):
    """Thin LVs in ``[volume] lvm_volume_group``'s thin pool; deletion discards."""

    name = "lvm"

    def __init__(self, state_path: str, options: Any = None) -> None:
        super().__init__(state_path, options)
        self.group = str(getattr(options, "lvm_volume_group", "") or "novalite-volumes")
        self.pool = str(getattr(options, "lvm_thin_pool", "") or f"{self.group}-pool")
        if os.geteuid() != 0:
            raise BackendError("the lvm backend needs root (it runs lvcreate)")
        if shutil.which("lvcreate") is None:
            raise BackendError("lvcreate not found: install Debian's lvm2")
        groups = _run("vgs", "--noheadings", "-o", "vg_name").split()
        if self.group not in groups:
            raise BackendError(f"volume group {self.group!r} not found ([volume] "
                               f"lvm_volume_group; make it with: pvcreate DEVICE && "
                               f"vgcreate {self.group} DEVICE)")
        if not self._exists(self.pool):
            _run("lvcreate", "--type", "thin-pool", "--zero", "y", "--discards", "passdown",
                 "-l", "95%FREE", "-n", self.pool, self.group)

    def _lvs(self) -> set[str]:
        return set(_run("lvs", "--noheadings", "-o", "lv_name", self.group).split())

    def _exists(self, lv: str) -> bool:
        return lv in self._lvs()

    def _thin(self, lv: str, size_gb: int) -> str:
        _run("lvcreate", "--type", "thin", "--thinpool", self.pool, "-V", f"{size_gb}g",
             "-n", lv, "-y", self.group)
        return f"{self.group}/{lv}"

    def create(self, volume_id: str, size_gb: int) -> str:
        return self._thin(f"volume-{volume_id}", size_gb)

    def path(self, location: str) -> str:
        return f"/dev/{location}"

    def write_from(self, location: str, source: str) -> None:
        dev = self.path(location)
        # ``source``: a file (an image's bytes) or another volume's or snapshot's location.
        source = source if source.startswith("/") else self.path(source)
        size, needed = device_size(dev), device_size(source)
        if needed > size:
            raise BackendError(f"the source ({needed} bytes) is larger than the volume "
                               f"({size} bytes)")
        with open(source, "rb") as src, open(dev, "r+b", buffering=0) as dst:
            while chunk := src.read(1 << 20):
                if chunk.count(0) == len(chunk):  # a new thin LV reads zeros: stay thin
                    dst.seek(len(chunk), os.SEEK_CUR)
                else:
                    dst.write(chunk)
            os.fsync(dst.fileno())

    def extend(self, location: str, size_gb: int) -> None:
        if size_gb * GIB < device_size(self.path(location)):
            raise BackendError("a volume cannot shrink")
        _run("lvextend", "-L", f"{size_gb}g", location)

    def delete(self, location: str) -> None:
        lv = location.rsplit("/", 1)[-1]
        if not self._exists(lv):
            return
        # Thin snapshots skip activation by default: activate to discard them too.
        _run("lvchange", "-ay", "-K", location)
        _run("blkdiscard", self.path(location))
        _run("lvremove", "-y", location)

    def snapshot(self, location: str, snapshot_id: str) -> str:
        lv = f"snapshot-{snapshot_id}"
        _run("lvcreate", "--snapshot", "--setactivationskip", "n", "-n", lv, location)
        _run("lvchange", "-ay", f"{self.group}/{lv}")
        return f"{self.group}/{lv}"

    def delete_snapshot(self, location: str) -> None:
        self.delete(location)


__all__ = ["LVMBackend"]
