"""Image data on disk: streamed in with its hashes computed on the way, streamed out verified.

Data of image ``<id>`` lives in ``<state_path>/images/<id>``. An upload writes
``<id>.part`` beside it and renames it into place only when every check passed,
so a crash or an interrupted upload leaves a ``.part`` file at worst, which
:meth:`DataStore.remove_partials` deletes at the next start.

The incoming stream is gathered into blocks of :data:`BLOCK` bytes (the received
chunks themselves, not copied into one buffer). Each block goes to three *lanes*, each a trio task
that runs its step on a worker thread: md5, sha512, and the write (with a CRC-32);
meanwhile written data is flushed to disk every :data:`SYNC_EVERY` bytes, so the
final fsync does not wait for the whole image. hashlib, zlib and file writes
release the GIL, so on a machine with several cores the lanes run in parallel
with each other and with the event loop receiving the next block. A lane holds
at most :data:`LANE_DEPTH` blocks, so memory stays at a few blocks whatever the
image size. The hashes are most of an upload's CPU time (md5 ~600 MiB/s and
sha512 ~700 MiB/s on one core of the 2-core development machine): there they, not
the disk, bound an upload (``bench/image_io.py`` prints both).

The CRC-32 is recorded on the data file as the extended attribute
:data:`CRC_XATTR`; downloads verify against it (zlib's CRC-32 runs at several
GiB/s, md5 at a fraction of that) and fall back to the md5 ``checksum`` when the
file has none (a file system without user xattrs, data stored before). Either
check catches data that changed on disk since upload; md5 remains the checksum a
client verifies, as with Glance.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from novalite.exceptions import StorageFull
from novalite.image import formats
from novalite.image.errors import DataRejected

log = structlog.get_logger("novalite.image")

#: Bytes gathered into one block before it goes to the md5, sha512 and write lanes.
BLOCK = 4 << 20
#: Blocks one lane may have waiting (memory held: about ``(LANE_DEPTH + 2) * BLOCK``).
LANE_DEPTH = 2
#: A block made of more chunks than this is joined first (one ``writev`` takes ~1024).
MAX_PIECES = 256
#: Bytes per read of a download (and per HTTP body message).
READ_BLOCK = 4 << 20
#: Blocks of a download read ahead of the one being sent.
READ_AHEAD = 2
#: Bytes written between two flushes to disk during an upload (see :class:`_Syncer`).
SYNC_EVERY = 64 << 20
#: Extended attribute of a data file holding the CRC-32 of its bytes, as 8 hex digits.
CRC_XATTR = "user.novalite.crc32"

Block = tuple[bytes, ...]


@dataclass
class Received:
    """What :meth:`DataStore.receive` wrote: the ``.part`` file and its measurements."""

    tmp_path: str
    size: int
    md5: str
    sha512: str
    inspection: formats.Inspection
    crc32: int = 0


class DataCorrupt(Exception):
    """Stored image data no longer matches its checksum."""


def _write_all(fd: int, block: Block) -> None:
    views = [memoryview(chunk) for chunk in block]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]


class _FileWriter:
    """The write lane's step: writes a block and adds it to the CRC-32."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.crc = 0
        self.written = 0

    def __call__(self, block: Block) -> None:
        _write_all(self.fd, block)
        for chunk in block:
            self.crc = zlib.crc32(chunk, self.crc)
            self.written += len(chunk)


class _Syncer:
    """Flushes what the write lane wrote to disk while the upload goes on.

    An ``fdatasync`` on a worker thread each time :data:`SYNC_EVERY` more bytes were
    written (one at a time, never blocking the lanes), so the disk works during the
    upload and the final fsync has little left to wait for, rather than the whole
    image. Correctness rests on that final fsync; these only move the work earlier.
    """

    def __init__(self, nursery: trio.Nursery, writer: _FileWriter) -> None:
        self.nursery = nursery
        self.writer = writer
        self.synced = 0
        self.busy = False

    def poke(self) -> None:
        """Start a sync if enough was written since the last one and none is running."""
        if not self.busy and self.writer.written - self.synced >= SYNC_EVERY:
            self.busy = True
            self.nursery.start_soon(self._sync)

    async def _sync(self) -> None:
        upto = self.writer.written
        await trio.to_thread.run_sync(os.fdatasync, self.writer.fd)
        self.synced, self.busy = upto, False


def _hash_lane(h: Any) -> Callable[[Block], None]:
    def update(block: Block) -> None:
        for chunk in block:
            h.update(chunk)
    return update


def _start_lane(nursery: trio.Nursery, step: Callable[[Block], None],
                after: Callable[[], None] | None = None) -> trio.MemorySendChannel[Block]:
    """A task applying ``step`` to each block sent to the returned channel, on a worker thread.

    ``after()`` runs in the task after each step. Close the channel to end the task
    once it has processed every block sent.
    """
    send, receive = trio.open_memory_channel[Block](LANE_DEPTH)

    async def run() -> None:
        async with receive:
            async for block in receive:
                await trio.to_thread.run_sync(step, block)
                if after is not None:
                    after()

    nursery.start_soon(run)
    return send


def _head(block: Block, size: int) -> bytes:
    out = b""
    for chunk in block:
        if len(out) >= size:
            break
        out += chunk[: size - len(out)]
    return out


def _recorded_crc(fd: int) -> int | None:
    try:
        return int(os.getxattr(fd, CRC_XATTR), 16)
    except (OSError, ValueError):  # no xattr support, none recorded, or garbage
        return None


def _record_crc(fd: int, crc: int) -> None:
    try:
        os.setxattr(fd, CRC_XATTR, f"{crc:08x}".encode())
    except OSError as exc:  # e.g. no user xattrs here: downloads verify md5 instead
        log.debug("CRC-32 not recorded; downloads will verify md5", error=str(exc))


class DataStore:
    """The directory of image data files."""

    def __init__(self, path: str) -> None:
        self.path = path

    def final_path(self, image_id: str) -> str:
        return os.path.join(self.path, image_id)

    def part_path(self, image_id: str) -> str:
        return os.path.join(self.path, image_id + ".part")

    def remove_partials(self) -> list[str]:
        """Delete every ``.part`` file (left by a crash mid-upload); returns their names."""
        if not os.path.isdir(self.path):
            return []
        removed = []
        for name in os.listdir(self.path):
            if name.endswith(".part"):
                os.unlink(os.path.join(self.path, name))
                removed.append(name)
        return removed

    async def receive(self, image_id: str, disk_format: str, chunks: AsyncIterator[bytes], *,
                      limit: int | None = None, drain_on_error: bool = True,
                      progress: Callable[[int], Any] | None = None) -> Received:
        """Stream ``chunks`` into ``<id>.part``, checking the format on the first block.

        ``limit``: most bytes accepted (the project's remaining quota); more raises
        :class:`~novalite.image.errors.QuotaExceeded413`. A format mismatch raises
        :class:`~novalite.image.errors.DataRejected`. With ``drain_on_error`` the rest of
        the stream is read and discarded before raising, so an HTTP client still sending
        its body gets the error response. On any error the ``.part`` file is removed.
        ``progress(bytes_so_far)`` is awaited after each block when given.
        """
        from novalite.image.errors import QuotaExceeded413

        os.makedirs(self.path, exist_ok=True)
        tmp = self.part_path(image_id)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        md5 = hashlib.md5(usedforsecurity=False)
        sha = hashlib.sha512()
        writer = _FileWriter(fd)
        size = 0
        inspection: formats.Inspection | None = None
        pending: list[bytes] = []
        pending_bytes = 0
        ok = False

        async def flush(lanes: Sequence[trio.MemorySendChannel[Block]]) -> None:
            nonlocal pending, pending_bytes, inspection
            if not pending:
                return
            block = tuple(pending) if len(pending) <= MAX_PIECES else (b"".join(pending),)
            pending, pending_bytes = [], 0
            if inspection is None:
                inspection = formats.check(disk_format, _head(block, formats.HEADER_BYTES))
            for lane in lanes:
                await lane.send(block)

        rejected: BaseException | None = None
        try:
            try:
                async with trio.open_nursery() as nursery:
                    syncer = _Syncer(nursery, writer)
                    lanes = [_start_lane(nursery, _hash_lane(md5)),
                             _start_lane(nursery, _hash_lane(sha)),
                             _start_lane(nursery, writer, after=syncer.poke)]
                    try:
                        async for chunk in chunks:
                            if not chunk:
                                continue
                            size += len(chunk)
                            if limit is not None and size > limit:
                                raise QuotaExceeded413(limit)
                            pending.append(chunk)
                            pending_bytes += len(chunk)
                            if pending_bytes >= BLOCK:
                                await flush(lanes)
                                if progress is not None:
                                    await progress(size)
                        await flush(lanes)
                    except formats.FormatMismatch as exc:
                        rejected = DataRejected(str(exc))
                        nursery.cancel_scope.cancel()
                    except QuotaExceeded413 as exc:
                        rejected = exc
                        nursery.cancel_scope.cancel()
                    finally:
                        for lane in lanes:
                            lane.close()
            except BaseExceptionGroup as group:  # one failing task: raise its own exception
                if len(group.exceptions) == 1:
                    raise _storage_full(group.exceptions[0]) from None
                raise
            if rejected is not None:
                if drain_on_error:
                    await _drain(chunks)
                raise rejected
            if inspection is None:  # no data at all
                inspection = formats.check(disk_format, b"")
            _record_crc(fd, writer.crc)
            try:
                await trio.to_thread.run_sync(os.fsync, fd)
            except OSError as exc:
                raise _storage_full(exc) from None
            ok = True
        finally:
            os.close(fd)
            if not ok and os.path.exists(tmp):
                os.unlink(tmp)
        return Received(tmp, size, md5.hexdigest(), sha.hexdigest(), inspection, writer.crc)

    def check_space(self, size: int) -> None:
        """Raise StorageFull (413) when ``size`` more bytes cannot fit on the store's disk."""
        path = self.path
        while not os.path.isdir(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        free = shutil.disk_usage(path).free
        if size > free:
            raise StorageFull(f"Image storage media is full: {size} bytes were declared "
                              f"and {free} bytes are free")

    def install(self, image_id: str, received: Received) -> str:
        """Rename the ``.part`` file into place; returns the final path."""
        final = self.final_path(image_id)
        os.replace(received.tmp_path, final)
        return final

    @staticmethod
    async def send(path: str, expected_md5: str | None,
                   send: Callable[[bytes], Awaitable[None]],
                   on_mismatch: Callable[[str], Any] | None = None) -> None:
        """Pass a data file to ``send`` in blocks, verifying it on the way.

        Blocks are read ahead on a worker thread while ``send`` sends the previous
        ones, and checked on another (see :class:`_Verification`). The last block is
        held back until the whole file is read: on a mismatch (the stored data changed
        since upload) :class:`DataCorrupt` is raised instead of sending it, which cuts
        the HTTP response short, so the client sees an incomplete body rather than bad
        data passed off as good.
        """
        fd = await trio.to_thread.run_sync(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        held = b""  # the last block goes out only once the whole file checked out
        try:
            verification = _Verification(fd, expected_md5)
            try:
                async with trio.open_nursery() as nursery:
                    blocks_out, blocks_in = trio.open_memory_channel[bytes](READ_AHEAD)
                    checker = _start_lane(nursery, verification.update)

                    async def reader() -> None:
                        async with blocks_out, checker:
                            while data := await trio.to_thread.run_sync(os.read, fd, READ_BLOCK):
                                await checker.send((data,))
                                await blocks_out.send(data)

                    nursery.start_soon(reader)
                    async with blocks_in:
                        async for data in blocks_in:
                            if held:
                                await send(held)
                            held = data
            except BaseExceptionGroup as group:  # one failing task: raise its own exception
                if len(group.exceptions) == 1:
                    raise _storage_full(group.exceptions[0]) from None
                raise
        finally:
            os.close(fd)
        problem = verification.problem()
        if problem is None:
            if held:
                await send(held)
            return
        message = f"stored data of {os.path.basename(path)} {problem}: download cut short"
        log.error("image data corrupt", path=path, error=message)
        if on_mismatch is not None:
            on_mismatch(message)
        raise DataCorrupt(message)


class _Verification:
    """The cheapest honest check of a stored file against what was recorded at upload.

    Its CRC-32 (:data:`CRC_XATTR`, several GiB/s) when the file carries one, else its
    md5 ``checksum`` (~600 MiB/s), else nothing to check against. Both catch data that
    changed on disk since it was stored; neither is a defence against someone who can
    rewrite the store (they could rewrite the records too).
    """

    def __init__(self, fd: int, expected_md5: str | None) -> None:
        self.expected_crc = _recorded_crc(fd)
        self.expected_md5 = expected_md5 if self.expected_crc is None else None
        self.crc = 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def update(self, block: Block) -> None:
        for chunk in block:
            if self.expected_crc is not None:
                self.crc = zlib.crc32(chunk, self.crc)
            elif self.expected_md5:
                self.md5.update(chunk)

    def problem(self) -> str | None:
        """What is wrong with the data read, or None when it checked out."""
        if self.expected_crc is not None and self.crc != self.expected_crc:
            return (f"has CRC-32 {self.crc:08x}, expected {self.expected_crc:08x} "
                    "(recorded at upload)")
        if self.expected_md5 and self.md5.hexdigest() != self.expected_md5:
            return f"has md5 {self.md5.hexdigest()}, expected {self.expected_md5}"
        return None


def _storage_full(exc: BaseException) -> BaseException:
    """Glance's 413 for a write that found the disk full; other errors as they are."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"Image storage media is full: {exc.strerror}")
    return exc


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


async def file_chunks(path: str, chunk: int = READ_BLOCK) -> AsyncIterator[bytes]:
    """A local file as an async stream of chunks (read on worker threads)."""
    f = await trio.to_thread.run_sync(open, path, "rb")
    try:
        while data := await trio.to_thread.run_sync(f.read, chunk):
            yield data
    finally:
        f.close()
