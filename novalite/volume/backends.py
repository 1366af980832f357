"""Storage backends: where volume data lives (entry-point group ``novalite.volume.backends``).

A backend is a class registered as a plugin (``pyproject.toml``)::

    [project.entry-points."novalite.volume.backends"]
    file = "novalite.volume.backends:FileBackend"

The volume service makes one per process with ``cls(state_path, options)``
(``options``: the ``[volume]`` section, for a backend's own keys) and calls its
methods from worker threads (they may block). A volume's data is reached by the
compute host as a *path on its machine* (:meth:`VolumeBackend.path`): the built-in
``file`` backend is local to the one machine that runs the service; a backend for
compute hosts on other machines would export the volume (iSCSI, NBD) and answer the
path of the device the host connected, as Cinder's ``initialize_connection`` does.

Deleted data: a backend never lets a later volume read a deleted volume's bytes.
The ``file`` backend *discards* them: the file is unlinked (its blocks go back to the
file system, which hands them out zeroed to the next file that grows into them) and
a new volume starts as a fresh sparse file that reads as zeros.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any

from novalite import plugins

GIB = 1024 ** 3


class BackendError(Exception):
    """The backend could not do what was asked; the message says why."""


class VolumeBackend(abc.ABC):
    """One storage backend. Every method may block (the service runs them on threads)."""

    #: The entry-point name.
    name: str = ""

    def __init__(self, state_path: str, options: Any = None) -> None:
        """``options``: the ``[volume]`` section (a backend reads its own keys from it).
        Raises :class:`BackendError` when the backend cannot work here (the service
        then refuses to start, naming the key)."""
        self.state_path = state_path
        self.options = options

    @abc.abstractmethod
    def create(self, volume_id: str, size_gb: int) -> str:
        """Make an empty volume of ``size_gb`` GiB that reads as zeros; returns its
        location (what :meth:`path` and the others take). Raises :class:`BackendError`.
        Example: ``backend.create(vid, 1) == "/state/volumes/volume-<vid>"``."""

    @abc.abstractmethod
    def path(self, location: str) -> str:
        """The path of the volume's raw data on this machine, for a guest to use as
        a disk. Example: ``backend.path(loc) == "/state/volumes/volume-<vid>"``."""

    @abc.abstractmethod
    def write_from(self, location: str, source: str) -> None:
        """Copy the raw bytes of the file ``source`` to the start of the volume
        (an image's data, another volume, a snapshot). Raises :class:`BackendError`
        when it does not fit."""

    @abc.abstractmethod
    def extend(self, location: str, size_gb: int) -> None:
        """Grow the volume to ``size_gb`` GiB, keeping its data."""

    @abc.abstractmethod
    def delete(self, location: str) -> None:
        """Remove the volume; its data is never readable again (no error if gone)."""

    @abc.abstractmethod
    def snapshot(self, location: str, snapshot_id: str) -> str:
        """A point-in-time copy of the volume; returns the snapshot's location."""

    @abc.abstractmethod
    def delete_snapshot(self, location: str) -> None:
        """Remove a snapshot made by :meth:`snapshot` (no error if gone)."""


class FileBackend(VolumeBackend):
    """Each volume a sparse raw file under ``<state_path>/volumes`` (mode 0600);
    snapshots are sparse copies beside it. Deleting unlinks (discards) the file."""

    name = "file"

    @property
    def directory(self) -> Path:
        path = Path(self.state_path) / "volumes"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def _new_file(self, name: str, size: int) -> str:
        path = self.directory / name
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except OSError as exc:
            raise BackendError(f"cannot create {path}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return str(path)

    def create(self, volume_id: str, size_gb: int) -> str:
        return self._new_file(f"volume-{volume_id}", size_gb * GIB)

    def path(self, location: str) -> str:
        return location

    def write_from(self, location: str, source: str) -> None:
        size = os.path.getsize(location)
        if os.path.getsize(source) > size:
            raise BackendError(f"the source ({os.path.getsize(source)} bytes) is larger "
                               f"than the volume ({size} bytes)")
        with open(source, "rb") as src, open(location, "r+b") as dst:
            while chunk := src.read(1 << 20):
                if chunk.count(0) == len(chunk):  # keep the file sparse
                    dst.seek(len(chunk), os.SEEK_CUR)
                else:
                    dst.write(chunk)

    def extend(self, location: str, size_gb: int) -> None:
        if size_gb * GIB < os.path.getsize(location):
            raise BackendError("a volume cannot shrink")
        os.truncate(location, size_gb * GIB)

    def delete(self, location: str) -> None:
        try:
            os.unlink(location)
        except FileNotFoundError:
            pass

    def snapshot(self, location: str, snapshot_id: str) -> str:
        dest = self._new_file(f"snapshot-{snapshot_id}", os.path.getsize(location))
        self.write_from(dest, location)
        return dest

    def delete_snapshot(self, location: str) -> None:
        self.delete(location)


BACKENDS = plugins.Group("novalite.volume.backends", kind="volume backend",
                         base=VolumeBackend)


def load_backend(name: str, state_path: str, options: Any = None) -> VolumeBackend:
    """The configured backend (``[volume] backend``); a ConfigError naming the key."""
    from novalite.exceptions import ConfigError

    try:
        entry = plugins.load(BACKENDS, name)
    except (plugins.PluginNotFound, plugins.PluginBroken) as exc:
        raise ConfigError(f"[volume] backend = {name!r}: {exc}") from None
    assert entry.cls is not None
    try:
        backend: VolumeBackend = entry.cls(state_path, options)
    except BackendError as exc:
        raise ConfigError(f"[volume] backend = {name!r}: {exc}") from None
    return backend


__all__ = ["BACKENDS", "BackendError", "FileBackend", "VolumeBackend", "load_backend"]
