"""The config drive of a container: the ``config-2`` ISO's files at a read-only path.

The compute host builds the same ``config-2`` ISO 9660 image for every driver
(``InstanceSpec.config_drive``, capability ``supports_config_drive``). A container
has no disks to attach it to, so the driver unpacks the image's files (the
``openstack/`` and ``ec2/`` trees) into ``<container dir>/config-drive/`` with
``xorriso -osirrox`` (the tool that built it) and bind-mounts that directory
read-only into the container (``lxc.mount.entry ... bind,ro``) at ``[lxc]
config_drive_path``, by default ``/var/lib/cloud/seed/config_drive``: cloud-init's
own seed directory for its ConfigDrive datasource, which it (and ``ds-identify``)
reads without looking for a device, so a stock cloud-init finds it.

Why unpack instead of loop-mounting the ISO: a bind mount needs no loop device (none
to leak when a container dies with novalite down, none on hosts without
``loop.ko``), and the files survive the compute host removing its ISO after spawn.
"""

from __future__ import annotations

import os
import shutil

import trio

from .tools import LxcCommandError, run

DIRECTORY = "config-drive"
"""The unpacked files' directory inside the container's directory."""

TOOL = "xorriso"


async def unpack(iso: str, dest: str) -> None:
    """Unpack ISO 9660 image ``iso`` into the new directory ``dest``; its files are
    read-only. Raises :class:`LxcCommandError`."""
    if shutil.which(TOOL) is None:
        raise LxcCommandError([TOOL], 127, f"{TOOL} not found on PATH (Debian package "
                                           f"xorriso): cannot unpack the config drive")
    tmp = dest + ".tmp"
    await trio.to_thread.run_sync(shutil.rmtree, tmp, True)
    await run([TOOL, "-osirrox", "on", "-indev", iso, "-extract", "/", tmp], timeout=60)
    await trio.to_thread.run_sync(os.replace, tmp, dest)


def mount_entry(source: str, target: str) -> str:
    """The ``lxc.mount.entry`` line putting ``source`` read-only at ``target`` (an
    absolute path inside the container; created when missing)."""
    return f"lxc.mount.entry = {source} {target.strip('/')} none bind,ro,create=dir 0 0"


def valid_target(target: str) -> bool:
    """An absolute path inside the container without spaces or ``..``."""
    parts = target.split("/")
    return (target.startswith("/") and target.strip("/") != "" and ".." not in parts
            and not any(c.isspace() for c in target))
