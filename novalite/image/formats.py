"""What image data is, from its first bytes: the check behind ``disk_format``.

Glance trusts ``disk_format`` as the uploader states it; a qcow2 file uploaded
as ``raw`` then boots as garbage (or, worse, lets a guest read a host file
through a backing-file reference). novalite looks at the header of the data
while it streams in and refuses a mismatch with a message saying what the data
is. Only headers are read: the checks cost nothing per byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: Bytes of the start of the data that :func:`inspect` needs to decide.
HEADER_BYTES = 64 * 1024

QCOW2_MAGIC = b"QFI\xfb"
#: Formats recognised by a magic number at offset 0 (format -> magic).
MAGICS = {
    "qcow2": QCOW2_MAGIC,
    "vmdk": b"KDMV",
    "vhdx": b"vhdxfile",
    "vdi": b"<<< ",  # "<<< Oracle VM VirtualBox Disk Image >>>"
}
#: Formats novalite can tell apart from raw data by their header.
DETECTABLE = frozenset(MAGICS) | {"iso"}


class FormatMismatch(ValueError):
    """The data is not what ``disk_format`` says it is; the message says what it is."""


@dataclass(frozen=True)
class Inspection:
    """What the header says: the detected format (None: plain data) and qcow2 details."""

    detected: str | None
    virtual_size: int | None = None
    backing_file: bool = False


def inspect(header: bytes) -> Inspection:
    """Inspect the first bytes of image data (up to :data:`HEADER_BYTES`)."""
    if header.startswith(QCOW2_MAGIC) and len(header) >= 72:
        version, backing_offset, _backing_size, _cluster_bits, size = struct.unpack(
            ">IQIIQ", header[4:32])
        return Inspection("qcow2", virtual_size=size, backing_file=backing_offset != 0)
    for name, magic in MAGICS.items():
        if header.startswith(magic):
            return Inspection(name)
    # ISO 9660: the primary volume descriptor's identifier at 32769 (sector 16, +1).
    if header[32769:32774] == b"CD001":
        return Inspection("iso")
    return Inspection(None)


def check(disk_format: str, header: bytes) -> Inspection:
    """Raise :class:`FormatMismatch` when the data contradicts ``disk_format``.

    * ``qcow2`` data must carry the qcow2 header and no backing file;
    * ``raw`` (and ``iso``, ``aki``, ``ari``, ``ami``) data must not be a disk image
      of another detectable container format (qcow2, vmdk, vhdx, vdi);
    * other formats are taken as stated.
    """
    found = inspect(header)
    if disk_format == "qcow2":
        if found.detected != "qcow2":
            what = f"{found.detected} data" if found.detected else "not qcow2 (no qcow2 header)"
            raise FormatMismatch(f"disk_format is qcow2 but the uploaded data is {what}")
        if found.backing_file:
            raise FormatMismatch("qcow2 images with a backing file are refused: the backing "
                                 "file would be read from the compute host")
    elif disk_format in ("raw", "iso", "aki", "ari", "ami"):
        if found.detected in MAGICS:
            raise FormatMismatch(f"disk_format is {disk_format} but the uploaded data is a "
                                 f"{found.detected} image: upload it with "
                                 f"disk_format={found.detected}")
    elif disk_format in MAGICS and found.detected != disk_format:
        what = f"{found.detected} data" if found.detected else f"not {disk_format}"
        raise FormatMismatch(f"disk_format is {disk_format} but the uploaded data is {what}")
    return found


def virtual_size(disk_format: str, size: int, found: Inspection) -> int | None:
    """The guest-visible size: the qcow2 header's, the data's own for raw/iso, else None."""
    if disk_format == "qcow2":
        return found.virtual_size
    if disk_format in ("raw", "iso"):
        return size
    return None
