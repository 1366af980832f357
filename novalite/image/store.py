"""Image data on disk: streamed in with its hashes computed on the way, streamed out verified.

Data of image ``<id>`` lives in ``<state_path>/images/<id>``. An upload writes
``<id>.part`` beside it and renames it into place only when every check passed,
so a crash or an interrupted upload leaves a ``.part`` file at worst, which
:meth:`DataStore.remove_partials` deletes at the next start.

The incoming stream is gathered into blocks of :data:`BLOCK` bytes; each block
is hashed (md5 and sha512) and written on a worker thread while the event loop
receives the next one, so memory stays at a few blocks whatever the image size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import structlog
import trio

from novalite.image import formats
from novalite.image.errors import DataRejected

log = structlog.get_logger("novalite.image")

#: Bytes hashed and written per worker-thread hop.
BLOCK = 4 << 20
#: Bytes per chunk of a download.
READ_CHUNK = 1 << 20


@dataclass
class Received:
    """What :meth:`DataStore.receive` wrote: the ``.part`` file and its measurements."""

    tmp_path: str
    size: int
    md5: str
    sha512: str
    inspection: formats.Inspection


class _Sink:
    """Hashes and writes blocks (on a worker thread).

    md5 runs on a second thread while sha512 and the write run on this one:
    hashlib releases the GIL for large buffers, and the two hashes are the bulk
    of an upload's CPU time (each ~600 MiB/s on one core).
    """

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha = hashlib.sha512()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-md5")

    def consume(self, block: bytes) -> None:
        md5_done = self.pool.submit(self.md5.update, block)
        self.sha.update(block)
        self.f.write(block)
        md5_done.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


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
        f = open(tmp, "wb")  # noqa: SIM115 - closed in the finally below
        sink = _Sink(f)
        size = 0
        inspection: formats.Inspection | None = None
        pending: list[bytes] = []
        pending_bytes = 0
        ok = False
        send, recv = trio.open_memory_channel[bytes](2)

        async def writer() -> None:
            async with recv:
                async for block in recv:
                    await trio.to_thread.run_sync(sink.consume, block)

        async def flush(final: bool) -> None:
            nonlocal pending, pending_bytes, inspection
            if not pending:
                return
            block = b"".join(pending)
            pending, pending_bytes = [], 0
            if inspection is None:
                if len(block) < formats.HEADER_BYTES and not final:
                    pending, pending_bytes = [block], len(block)
                    return
                inspection = formats.check(disk_format, block[: formats.HEADER_BYTES])
            await send.send(block)

        rejected: BaseException | None = None
        try:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(writer)
                    async with send:
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
                                    await flush(False)
                                    if progress is not None:
                                        await progress(size)
                            await flush(True)
                        except formats.FormatMismatch as exc:
                            rejected = DataRejected(str(exc))
                            nursery.cancel_scope.cancel()
                        except QuotaExceeded413 as exc:
                            rejected = exc
                            nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:  # one failing task: raise its own exception
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            if rejected is not None:
                if drain_on_error:
                    await _drain(chunks)
                raise rejected
            if inspection is None:  # no data at all
                inspection = formats.check(disk_format, b"")
            await trio.to_thread.run_sync(f.flush)
            await trio.to_thread.run_sync(os.fsync, f.fileno())
            ok = True
        finally:
            sink.close()
            f.close()
            if not ok and os.path.exists(tmp):
                os.unlink(tmp)
        return Received(tmp, size, sink.md5.hexdigest(), sink.sha.hexdigest(), inspection)

    def install(self, image_id: str, received: Received) -> str:
        """Rename the ``.part`` file into place; returns the final path."""
        final = self.final_path(image_id)
        os.replace(received.tmp_path, final)
        return final

    @staticmethod
    async def read(path: str, expected_md5: str | None,
                   on_mismatch: Callable[[str], Any] | None = None) -> AsyncIterator[bytes]:
        """Stream a data file, checking its md5 against ``expected_md5`` at the end.

        The last chunk is held back until the whole file is read: on a mismatch (the
        stored data changed since upload) :class:`DataCorrupt` is raised instead of
        sending it, which cuts the HTTP response short, so the client sees an
        incomplete body rather than bad data passed off as good.
        """
        md5 = hashlib.md5(usedforsecurity=False)

        def chunk_of(f: BinaryIO) -> bytes:
            data = f.read(READ_CHUNK)
            md5.update(data)
            return data

        f = await trio.to_thread.run_sync(open, path, "rb")
        held = b""  # the last chunk goes out only once the whole file checked out
        try:
            while data := await trio.to_thread.run_sync(chunk_of, f):
                if held:
                    yield held
                held = data
        finally:
            f.close()
        if not expected_md5 or md5.hexdigest() == expected_md5:
            if held:
                yield held
        else:
            message = (f"stored data of {os.path.basename(path)} has md5 {md5.hexdigest()}, "
                       f"expected {expected_md5}: download cut short")
            log.error("image data corrupt", path=path, error=message)
            if on_mismatch is not None:
                on_mismatch(message)
            raise DataCorrupt(message)


class DataCorrupt(Exception):
    """Stored image data no longer matches its checksum."""


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


async def file_chunks(path: str, chunk: int = READ_CHUNK) -> AsyncIterator[bytes]:
    """A local file as an async stream of chunks (read on worker threads)."""
    f = await trio.to_thread.run_sync(open, path, "rb")
    try:
        while data := await trio.to_thread.run_sync(f.read, chunk):
            yield data
    finally:
        f.close()
