"""Root-filesystem images for LXC: validate, unpack once, share, export.

An image is a tarball of a root filesystem (optionally gzip/xz/bzip2/zstd
compressed). The first container booted from it unpacks it into a shared,
read-only *base* directory; every container then gets its own writable layer
(an overlayfs upper directory, or a full copy when overlayfs is unavailable).
A snapshot reads the container's merged view and packs it back into a tarball.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import trio

from novalite.virt.driver import ImageInfo, SpawnFailed

from .tools import LxcCommandError, run

#: Glance ``disk_format`` values the driver boots: a tarball stored "raw", or
#: Glance's own name for root-filesystem tarballs.
DISK_FORMATS = frozenset({"raw", "root-tar"})
#: Glance ``container_format`` values accepted around it.
CONTAINER_FORMATS = frozenset({"bare", "tar", "compressed"})
#: ``hypervisor_type`` image property values meaning "runs as a container".
HYPERVISOR_TYPES = frozenset({"lxc", "exe"})

#: What :meth:`LxcDriver.snapshot` writes: a gzip'd rootfs tarball.
SNAPSHOT_FORMAT = ("raw", "bare")

#: Name prefix of the throwaway directory used to probe overlayfs (not a container name).
PROBE_PREFIX = ".overlay-probe-"

#: Directories LXC mounts onto; created in every container's writable layer.
MOUNT_POINTS = ("dev", "proc", "sys", "tmp", "run")


def check_image(image: ImageInfo) -> None:
    """Raise :class:`SpawnFailed` unless the image's metadata and content look like a
    root-filesystem tarball (a QEMU disk, an ISO, a kernel are refused here)."""
    if image.disk_format not in DISK_FORMATS:
        raise SpawnFailed(
            f"image {image.name or image.id} has disk_format {image.disk_format!r}; the lxc "
            f"driver boots root-filesystem tarballs (disk_format {' or '.join(sorted(DISK_FORMATS))})"
        )
    if image.container_format not in CONTAINER_FORMATS:
        raise SpawnFailed(
            f"image {image.name or image.id} has container_format {image.container_format!r}; "
            f"the lxc driver accepts {', '.join(sorted(CONTAINER_FORMATS))}"
        )
    hv = image.properties.get("hypervisor_type")
    if hv and str(hv).lower() not in HYPERVISOR_TYPES:
        raise SpawnFailed(f"image {image.name or image.id} is for hypervisor_type {hv!r}, not lxc")
    if not os.path.isfile(image.path):
        raise SpawnFailed(f"image file {image.path} is missing from the cache")


def _is_tarball(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, EOFError, ValueError):
        # zstd and other formats tarfile cannot read: let tar decide.
        return path.endswith((".zst", ".tzst"))


def _has_init(root: str) -> bool:
    for candidate in ("sbin/init", "usr/sbin/init", "lib/systemd/systemd"):
        if os.path.lexists(os.path.join(root, candidate)):
            return True
    return False


class BaseStore:
    """Unpacked images, one read-only directory per image, shared by containers.

    Images are immutable in Glance, so a base is keyed by image id and size and
    unpacked at most once (per-image lock, unpack into a temporary directory,
    atomic rename). Bases are a cache, like Nova's ``_base`` directory: they
    are kept when their containers are destroyed.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._locks: dict[str, trio.Lock] = {}

    def key(self, image: ImageInfo) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", image.id) or "image"
        size = image.size or os.path.getsize(image.path)
        return f"{safe}-{size}"

    async def ensure(self, image: ImageInfo) -> str:
        """Return the base directory for ``image``, unpacking it on first use."""
        check_image(image)
        key = self.key(image)
        base = os.path.join(self.root, key)
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            if os.path.isdir(base):
                return base
            if not await trio.to_thread.run_sync(_is_tarball, image.path):
                raise SpawnFailed(
                    f"image {image.name or image.id} is not a root-filesystem tarball "
                    f"(disk_format {image.disk_format}): the lxc driver cannot boot it"
                )
            os.makedirs(self.root, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f".{key}.", dir=self.root)
            try:
                try:
                    await run(
                        [
                            "tar",
                            "-x",
                            "-f",
                            image.path,
                            "-C",
                            tmp,
                            "--numeric-owner",
                            "--xattrs",
                            "--xattrs-include=*",
                        ],
                        timeout=1800,
                    )
                except LxcCommandError as exc:
                    raise SpawnFailed(
                        f"cannot unpack image {image.name or image.id}: {exc.stderr or exc}"
                    ) from None
                if not _has_init(tmp):
                    raise SpawnFailed(
                        f"image {image.name or image.id} has no /sbin/init: "
                        "not a bootable root filesystem"
                    )
                os.chmod(tmp, 0o755)
                os.rename(tmp, base)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(lambda: shutil.rmtree(tmp, ignore_errors=True))
                raise
        return base


async def prepare_layer(base: str, container_dir: str, backend: str) -> str:
    """Create the container's writable root and return its ``lxc.rootfs.path`` value."""
    if backend == "overlay":
        upper = os.path.join(container_dir, "upper")
        os.makedirs(upper, exist_ok=True)
        for mount_point in MOUNT_POINTS:
            if not os.path.lexists(os.path.join(base, mount_point)):
                os.makedirs(os.path.join(upper, mount_point), exist_ok=True)
        # LXC puts overlayfs's work directory next to upper ("<dir>/work").
        return f"overlay:{base}:{upper}"
    rootfs = os.path.join(container_dir, "rootfs")
    await run(["cp", "-a", "--reflink=auto", base, rootfs], timeout=1800)
    for mount_point in MOUNT_POINTS:
        os.makedirs(os.path.join(rootfs, mount_point), exist_ok=True)
    return f"dir:{rootfs}"


async def overlay_usable(where: str) -> tuple[bool, str]:
    """Whether an overlayfs with its upper directory under ``where`` mounts here.

    Probed for real (mount, then unmount, a tiny overlay): the kernel may lack
    overlayfs, or the state directory may sit on a filesystem that cannot hold
    an upper directory (overlayfs itself, some network filesystems).
    """
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read().split():
                return False, "overlay is not in /proc/filesystems"
    except OSError as exc:
        return False, str(exc)
    probe = tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=where)
    try:
        dirs = {name: os.path.join(probe, name) for name in ("lower", "upper", "work", "merged")}
        for path in dirs.values():
            os.mkdir(path)
        options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        rc, _ = await run(
            ["mount", "-t", "overlay", "overlay", "-o", options, dirs["merged"]], check=False
        )
        if rc != 0:
            return False, f"mounting an overlay under {where} failed"
        await run(["umount", dirs["merged"]], check=False)
        return True, ""
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: shutil.rmtree(probe, ignore_errors=True))


@asynccontextmanager
async def merged_view(rootfs_path: str, scratch: str) -> AsyncIterator[str]:
    """Yield a directory showing the container's root filesystem as the guest sees it.

    For ``dir:`` that is the directory itself; for ``overlay:<base>:<upper>`` a
    read-only overlay of upper on base is mounted under ``scratch`` and
    unmounted (even on cancellation) afterwards.
    """
    kind, _, rest = rootfs_path.partition(":")
    if kind == "dir":
        yield rest
        return
    if kind not in ("overlay", "overlayfs"):
        raise ValueError(f"unsupported rootfs {rootfs_path!r}")
    base, _, upper = rest.partition(":")
    target = tempfile.mkdtemp(prefix="snapshot-", dir=scratch)
    try:
        await run(
            ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={upper}:{base}", target]
        )
        try:
            yield target
        finally:
            with trio.CancelScope(shield=True):
                await run(["umount", target], check=False)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: shutil.rmtree(target, ignore_errors=True))


@contextmanager
def tarball_destination(dest_path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path next to ``dest_path`` for a tarball to be written to.

    When the block succeeds the file is made world-readable and renamed over
    ``dest_path`` (atomic: readers and concurrent writers never see a partial
    tarball); when it fails, or is cancelled, the file is removed. Used for
    snapshots here and by :mod:`novalite.testing.rootfs` for test images.
    """
    dest = os.path.abspath(dest_path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(dest)}.", suffix=".part", dir=os.path.dirname(dest)
    )
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


async def pack_tarball(root: str, dest_path: str) -> None:
    """Pack ``root`` into a gzip'd tarball at ``dest_path`` (written atomically)."""
    with tarball_destination(dest_path) as tmp:
        rc, _ = await run(
            [
                "tar",
                "-c",
                "-z",
                "-f",
                tmp,
                "-C",
                root,
                "--numeric-owner",
                "--one-file-system",
                "--xattrs",
                "--xattrs-include=*",
                ".",
            ],
            check=False,
            timeout=3600,
        )
        if rc not in (0, 1):  # 1: "file changed as we read it", harmless here
            raise LxcCommandError(["tar"], rc, "cannot pack the container's root filesystem")
