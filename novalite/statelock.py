"""One ``novalite serve`` per state directory.

Two services on one state directory would share a database, an image store and
the guests' files, each believing it alone owns them. :func:`hold` takes an
exclusive ``fcntl.flock`` on ``<state_path>/novalite.lock`` for as long as the
service runs; a second ``novalite serve`` on that directory stops at once with
:class:`StatePathInUse`, naming the directory and the PID of the one running.

The lock belongs to an open file, not to the file on disk: the kernel releases it
however the holder ends (``kill -9`` included), so a restart never meets a stale
lock, and nothing needs cleaning up. The descriptor is close-on-exec, so the
guests a driver starts (which outlive the service) never hold it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from novalite.exceptions import ConfigError

LOCK_FILE = "novalite.lock"


class StatePathInUse(ConfigError):
    """Another ``novalite serve`` holds this state directory."""

    def __init__(self, state_path: str, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "pid unknown"
        super().__init__(
            f"state path {state_path} is in use by another novalite serve ({holder}); "
            "stop that one first, or give this one another --state-path")
        self.state_path = state_path
        self.pid = pid


def lock_path(state_path: str) -> str:
    return os.path.join(state_path, LOCK_FILE)


def holder_pid(state_path: str) -> int | None:
    """The PID recorded by the service that holds (or last held) the lock, if any."""
    try:
        with open(lock_path(state_path)) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextmanager
def hold(state_path: str) -> Iterator[None]:
    """Hold the state directory's lock for the ``with`` block (creating the directory).

    Raises :class:`StatePathInUse` at once, without waiting, when another process holds
    it; :class:`~novalite.exceptions.ConfigError` when the directory cannot be created.
    """
    try:
        os.makedirs(state_path, exist_ok=True)
        # Readable by the service's user only, as everything in the state directory.
        fd = os.open(lock_path(state_path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise ConfigError(f"state path {state_path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StatePathInUse(state_path, holder_pid(state_path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # still ours: no other process can hold it yet
    finally:
        os.close(fd)
