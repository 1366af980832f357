"""A full disk gives clean answers: the state directory on a small tmpfs of the test's
own (mounted under a temporary directory as root, filled, unmounted and removed at
the end).

An upload whose Content-Length cannot fit is refused (413) before its body is read;
with the disk full, image data gets Glance's 413 (image storage media is full), and
token issue, image create and boot answer their API's 503 body when the database
cannot write (or succeed, where the database still had room): never a bare 500.
Once space is freed, everything works again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from novalite.testing.server import RunningServer, start

pytestmark = pytest.mark.backends("sqlite")

SIZE_MB = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700",
                           "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(path: Path) -> Path:
    """Fill the filesystem holding ``path``; returns the filler file."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def _token_request(srv: RunningServer) -> httpx.Response:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": "novalite-test-admin"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    return httpx.post(f"{srv.url}/identity/v3/auth/tokens", json=body, timeout=30)


def _declared_upload(srv: RunningServer, image_id: str, length: int) -> tuple[float, bytes]:
    """PUT image data declaring ``length`` bytes, sending none: (seconds to answer, answer)."""
    port = int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        started = time.monotonic()
        sock.sendall((f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: novalite\r\n"
                      f"X-Auth-Token: {srv.token()}\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      f"Content-Length: {length}\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        while len(answer.split(b"\r\n\r\n", 1)[1]) < length:
            answer += sock.recv(65536)
        return time.monotonic() - started, answer


def test_a_full_disk_gives_clean_answers(small_disk: Path, tmp_path: Path) -> None:
    # The configuration and the log stay on the test's own disk; all state on the small one.
    srv = start(tmp_path / "harness", config={"DEFAULT": {"state_path": str(small_disk / "state")}})
    try:
        c = srv.client()
        demo = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
        queued = c.post("/image/v2/images", json={
            "name": "waits", "disk_format": "raw", "container_format": "bare"}).json()
        # Larger than the whole disk: 413 at once, the body never read.
        seconds, answer = _declared_upload(srv, queued["id"], 10 * SIZE_MB << 20)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert seconds < 5
        assert b"storage" in answer.lower()

        filler = fill(small_disk)
        r = c.put(f"/image/v2/images/{queued['id']}/file", content=os.urandom(2 << 20),
                  headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 413, r.text
        assert r.json()["title"] == "Request Entity Too Large"
        assert "full" in r.json()["message"]
        assert c.get(f"/image/v2/images/{queued['id']}").json()["status"] == "queued"

        answers = {}
        for _ in range(20):  # enough writes to need new database pages
            answers["token"] = _token_request(srv)
            answers["image create"] = c.post("/image/v2/images", json={
                "name": "x" * 200, "disk_format": "raw", "container_format": "bare",
                "description": "y" * 2000})
            answers["boot"] = c.post("/compute/v2.1/servers", json={"server": {
                "name": "full-" + "z" * 200, "imageRef": demo, "flavorRef": "1"}})
            statuses = {k: r.status_code for k, r in answers.items()}
            print(statuses)
            assert all(code < 500 or code == 503 for code in statuses.values()), statuses
            if all(code == 503 for code in statuses.values()):
                break
        for name, r in answers.items():
            if r.status_code == 503:
                body = r.json()
                if name == "token":
                    assert body["error"]["code"] == 503
                elif name == "image create":
                    assert body["code"].startswith("503")
                else:
                    assert body["serviceUnavailable"]["code"] == 503

        filler.unlink()  # space again: everything works
        assert _token_request(srv).status_code == 201
        r = c.put(f"/image/v2/images/{queued['id']}/file", content=os.urandom(1 << 20),
                  headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        c.close()
    finally:
        srv.stop()
