"""The config drive: the metadata trees on a ``config-2`` labelled ISO 9660 image.

Built on the compute host (it needs no database: the files come from
:func:`novalite.metadata.content.config_drive_files`) with ``xorriso -as mkisofs``
and the options Nova passes its ``mkisofs_cmd`` (Rock Ridge and Joliet names, label
``config-2``). Why xorriso: it is GNU's maintained ISO 9660 writer, packaged by
Debian (``./dev`` installs it); ``genisoimage``, Nova's default, comes from cdrkit,
unmaintained since 2010, and a Python writer (pycdlib) would be a new dependency
for what one ``xorriso`` run does in ~10 ms.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping

import trio

LABEL = "config-2"
TOOL = "xorriso"


class ConfigDriveError(Exception):
    """The config drive could not be built (``xorriso`` missing or failing)."""


def available() -> bool:
    """Whether this host can build config drives."""
    return shutil.which(TOOL) is not None


def _build(files: Mapping[str, bytes], dest: str, publisher: str) -> None:
    if not available():
        raise ConfigDriveError(f"cannot build the config drive: {TOOL} is not installed "
                               f"(Debian package xorriso)")
    with tempfile.TemporaryDirectory(prefix="configdrive-") as root:
        for path, data in files.items():
            target = os.path.join(root, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
        tmp = dest + ".tmp"
        argv = [TOOL, "-as", "mkisofs", "-o", tmp, "-ldots", "-allow-lowercase",
                "-allow-multidot", "-l", "-publisher", publisher, "-quiet", "-J", "-r",
                "-V", LABEL, root]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise ConfigDriveError(f"{TOOL} failed to build the config drive: "
                                   f"{result.stderr.strip()[-1000:]}")
        os.replace(tmp, dest)


async def build(files: Mapping[str, bytes], dest: str,
                publisher: str = "OpenStack Compute (novalite)") -> None:
    """Write an ISO 9660 image labelled ``config-2`` holding ``files`` (path -> bytes)
    to ``dest``. Raises :class:`ConfigDriveError`."""
    await trio.to_thread.run_sync(_build, files, dest, publisher)
