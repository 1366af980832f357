"""Image data as it streams: uploads of several blocks, and stored data checked on download.

Over real HTTP against a real service (see :mod:`tests.test_images` for the rest of
the image API). The service hashes uploads in blocks on worker threads and verifies
stored data on the way out against the CRC-32 it recorded at upload (else the md5):
what a user sees is exact data and hashes, and a download cut short, never bad data
passed off as good, when the data changed on disk.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator

import httpx
import pytest

from novalite.testing.server import RunningServer, wait_for
from tests.test_images import create, show, upload


def test_data_of_several_blocks_in_small_chunks_round_trips(server: RunningServer) -> None:
    """Several store blocks, the first MiB as 1000-byte HTTP chunks: hashed and kept exactly."""
    data = os.urandom((9 << 20) + 12345)
    head = 1_000_000

    def pieces() -> Iterator[bytes]:  # a body of unknown length: chunked transfer encoding
        for i in range(0, head, 1000):
            yield data[i:i + 1000]
        for i in range(head, len(data), 3 << 20):
            yield data[i:i + (3 << 20)]

    with server.client() as c:
        image = create(c, name="chunks")
        r = c.put(f"/image/v2/images/{image['id']}/file", content=pieces(),
                  headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        shown = show(c, image["id"])
        assert shown["size"] == len(data)
        assert shown["checksum"] == hashlib.md5(data).hexdigest()
        assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
        with c.stream("GET", f"/image/v2/images/{image['id']}/file") as r:
            next(r.iter_bytes())  # a client that goes away mid-download
        r = c.get(f"/image/v2/images/{image['id']}/file")
        assert r.status_code == 200 and r.content == data


def test_download_of_data_changed_on_disk_is_cut_short(server: RunningServer) -> None:
    """Stored data checks against the CRC-32 recorded at upload, else its md5."""
    data = os.urandom((5 << 20) + 777)
    with server.client() as c:
        image = create(c, name="rotting")
        assert upload(c, image["id"], data).status_code == 204
        stored = server.state_path / "images" / image["id"]
        try:
            recorded: bytes | None = os.getxattr(stored, "user.novalite.crc32")
        except OSError:  # a file system without user xattrs: downloads verify md5
            recorded = None
        if recorded is not None:
            assert int(recorded, 16) == zlib.crc32(data)
        with open(stored, "r+b") as f:  # one bit flips on disk
            f.seek(4096)
            byte = f.read(1)[0]
            f.seek(4096)
            f.write(bytes([byte ^ 1]))
        with pytest.raises(httpx.RemoteProtocolError):  # the body stops short
            c.get(f"/image/v2/images/{image['id']}/file")
        if recorded is not None:
            wait_for(lambda: "has CRC-32" in server.log(), 10)
            os.removexattr(stored, "user.novalite.crc32")  # as data stored without one
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(f"/image/v2/images/{image['id']}/file")
        wait_for(lambda: f"has md5 {hashlib.md5(data).hexdigest()}" not in server.log()
                 and f"expected {hashlib.md5(data).hexdigest()}" in server.log(), 10)
