"""Guest disks through ``qemu-img``: overlays on cached images, blank disks, snapshots."""

from __future__ import annotations

import os
import struct
import subprocess

import trio

from novalite.virt.driver import ImageInfo, SpawnFailed

GiB = 1024**3
#: Root disks smaller than this are grown to it (see :func:`create_root_disk`).
MIN_BOOT_DISK = 1024**2
#: Image disk formats the driver boots, mapped to QEMU's format names.
DISK_FORMATS = {"raw": "raw", "ami": "raw", "img": "raw", "qcow2": "qcow2"}


async def qemu_img(*args: str, timeout: float = 120.0) -> str:
    """Run ``qemu-img``; return stdout or raise RuntimeError with its stderr."""
    with trio.fail_after(timeout):
        proc = await trio.run_process(
            ["qemu-img", *args], capture_stdout=True, capture_stderr=True, check=False,
            stdin=subprocess.DEVNULL,
        )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"qemu-img {args[0]} failed: {err}")
    return proc.stdout.decode(errors="replace")


def base_format(image: ImageInfo) -> str:
    """QEMU's format name for ``image``; SpawnFailed for formats QEMU cannot boot here."""
    fmt = DISK_FORMATS.get((image.disk_format or "").lower())
    if fmt is None:
        raise SpawnFailed(
            f"image {image.name or image.id} has disk_format {image.disk_format!r}; "
            f"the qemu driver boots {', '.join(sorted(DISK_FORMATS))}"
        )
    return fmt


_QCOW2_MAGIC = b"QFI\xfb"


def virtual_size(path: str, fmt: str) -> int:
    """The disk size a guest sees, read from the file itself (no ``qemu-img info``
    process on the boot path): a raw image's length, a qcow2 header's size field.
    ValueError when the file is not a qcow2 image; ``qemu-img create`` checks the rest."""
    if fmt == "raw":
        return os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(32)
    if len(header) < 32 or header[:4] != _QCOW2_MAGIC:
        raise ValueError("no qcow2 header (magic QFI\\xfb)")
    version = struct.unpack(">I", header[4:8])[0]
    if version not in (2, 3):
        raise ValueError(f"unsupported qcow2 version {version}")
    return int(struct.unpack(">Q", header[24:32])[0])


async def create_root_disk(image: ImageInfo, dest: str, root_gb: int) -> None:
    """qcow2 overlay on ``image.path`` (absolute backing path) grown to ``root_gb``
    (0 keeps the image's size). SpawnFailed when the image is unreadable or larger."""
    fmt = base_format(image)
    base = os.path.abspath(image.path)
    if not os.path.isfile(base):
        raise SpawnFailed(f"image file {base} of image {image.name or image.id} is missing")
    try:
        virtual = virtual_size(base, fmt)
    except ValueError as exc:
        raise SpawnFailed(f"image {image.name or image.id} is not a valid {fmt} image: {exc}") from None
    wanted = root_gb * GiB
    if wanted and wanted < virtual:
        raise SpawnFailed(
            f"flavor root disk ({root_gb} GiB) is smaller than image "
            f"{image.name or image.id} ({virtual} bytes)"
        )
    # SeaBIOS boots a virtio disk of one sector (a boot sector image) only once it is
    # 1 MiB; growing a qcow2 overlay costs nothing.
    wanted = max(wanted, MIN_BOOT_DISK)
    size = [str(wanted)] if wanted > virtual else []
    try:
        await qemu_img("create", "-q", "-f", "qcow2", "-b", base, "-F", fmt, dest, *size)
    except RuntimeError as exc:
        raise SpawnFailed(f"cannot create root disk: {exc}") from None


async def create_blank_disk(dest: str, size_bytes: int) -> None:
    """An empty qcow2 disk (ephemeral or swap)."""
    try:
        await qemu_img("create", "-q", "-f", "qcow2", dest, str(size_bytes))
    except RuntimeError as exc:
        raise SpawnFailed(f"cannot create disk {os.path.basename(dest)}: {exc}") from None


async def convert_to_qcow2(source: str, dest: str) -> None:
    """Flatten ``source`` (with its backing chain) into a standalone qcow2 at ``dest``."""
    await qemu_img("convert", "-U", "-f", "qcow2", "-O", "qcow2", source, dest, timeout=3600)
