"""The busybox root filesystem tarball for LXC guests, as tests and benchmarks use it.

The tarball itself is the lxc driver's (:mod:`novalite_drivers.lxc.rootfs`: busybox
init that prints :data:`READY_MARKER` once booted and :data:`HALT_MARKER` on the
way down; it is also the driver's ``demo`` image). This module adds a cache keyed
by busybox's content, so a test session builds it once::

    from novalite.testing.rootfs import build_busybox_rootfs
    path = build_busybox_rootfs()          # cached, e.g. .cache/guest-images/...
    build_busybox_rootfs("/tmp/demo.tar.gz")  # or at a path of your choice

Builds are idempotent and safe to run concurrently (from threads or processes).
"""

from __future__ import annotations

import os
from pathlib import Path

from novalite_drivers.lxc import rootfs as _rootfs
from novalite_drivers.lxc.rootfs import (
    DEFAULT_BUSYBOX,
    HALT_MARKER,
    READY_MARKER,
    RootfsBuildError,
)

__all__ = [
    "HALT_MARKER",
    "IMAGE_PROPERTIES",
    "READY_MARKER",
    "RootfsBuildError",
    "build_busybox_rootfs",
    "default_cache_dir",
]

#: Glance properties to register the tarball with, so it boots on the lxc driver.
IMAGE_PROPERTIES = {
    "disk_format": "raw",
    "container_format": "bare",
    "hypervisor_type": "lxc",
}


def default_cache_dir() -> Path:
    """``$NOVALITE_IMAGE_CACHE``, else ``<repository>/.cache/guest-images``."""
    env = os.environ.get("NOVALITE_IMAGE_CACHE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".cache" / "guest-images"


def build_busybox_rootfs(
    dest_path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    busybox: str = DEFAULT_BUSYBOX,
) -> str:
    """Build (or reuse) the busybox rootfs tarball and return its path.

    With ``dest_path`` the tarball is written there (kept if it already
    exists); without, it goes into ``cache_dir`` (default
    :func:`default_cache_dir`) under a name keyed by busybox's content, so a
    new busybox or layout builds a new file. Raises :class:`RootfsBuildError`
    when busybox is missing or not statically linked.
    """
    if dest_path is None:
        _rootfs.check_busybox(busybox)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        dest_path = cache / f"busybox-rootfs-{_rootfs.content_key(busybox)}.tar.gz"
    return _rootfs.build_busybox_rootfs(dest_path, busybox=busybox)


if __name__ == "__main__":  # pragma: no cover - manual use
    print(build_busybox_rootfs())
