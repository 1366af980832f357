"""Connection hygiene of the API listener, against a service of the test's own.

Slow clients (headers a byte at a time), idle clients and clients that stop
reading are cut within the configured timeouts; a connection the client closed
gives its descriptor back at once; at ``max_connections`` new clients wait
instead of costing descriptors; a process short of descriptors keeps answering.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig

from novalite.api.listener import ConnectionLimits, serve
from novalite.testing.server import RunningServer, start, wait_for

HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 2.0
SOCKET_TIMEOUT = 3.0
#: Slack for the service to notice and a loaded test machine to schedule it.
SLACK = 2.0


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start(tmp_path_factory.mktemp("conn"), config={"api": {
        "header_timeout": HEADER_TIMEOUT, "keep_alive_timeout": KEEP_ALIVE,
        "client_socket_timeout": SOCKET_TIMEOUT}})
    try:
        yield srv
    finally:
        srv.stop()


def _address(srv: RunningServer) -> tuple[str, int]:
    return "127.0.0.1", int(srv.url.rsplit(":", 1)[1])


def _fds(srv: RunningServer) -> int:
    return len(os.listdir(f"/proc/{srv.process.pid}/fd"))


def _sockets(srv: RunningServer) -> int:
    """The server's open socket descriptors (its files come and go with its work)."""
    fd_dir = f"/proc/{srv.process.pid}/fd"
    count = 0
    for name in os.listdir(fd_dir):
        try:
            count += os.readlink(f"{fd_dir}/{name}").startswith("socket:")
        except FileNotFoundError:
            pass
    return count


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed ``sock`` (EOF or reset); never blocks."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):  # the rest of an answer, then EOF
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def _drain_response(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_slowloris_connections_are_cut_after_the_header_timeout(
        listener: RunningServer) -> None:
    request = b"GET /compute/ HTTP/1.1\r\nHost: novalite\r\nX-Padding: " + b"a" * 200
    socks = [socket.create_connection(_address(listener)) for _ in range(100)]
    started = time.monotonic()
    open_at_deadline = len(socks)
    try:
        sent = 0
        # One byte per connection every 0.1 s, never finishing the headers.
        while time.monotonic() - started < HEADER_TIMEOUT + SLACK and sent < len(request):
            for sock in socks:
                try:
                    sock.send(request[sent:sent + 1])
                except OSError:
                    pass
            sent += 1
            time.sleep(0.1)
        open_at_deadline = sum(not _closed_by_server(s) for s in socks)
    finally:
        for sock in socks:
            sock.close()
    elapsed = time.monotonic() - started
    print(f"slowloris: {len(socks)} connections, {open_at_deadline} still open after "
          f"{elapsed:.1f} s (header_timeout {HEADER_TIMEOUT} s)")
    assert open_at_deadline == 0


def test_idle_connections_are_cut_after_the_keep_alive_timeout(listener: RunningServer
                                                               ) -> None:
    silent = [socket.create_connection(_address(listener)) for _ in range(20)]
    served = []
    for _ in range(20):  # one complete request each, then nothing
        sock = socket.create_connection(_address(listener))
        sock.sendall(b"GET /compute/ HTTP/1.1\r\nHost: novalite\r\n\r\n")
        assert b" 200 " in _drain_response(sock).split(b"\r\n")[0] + b" "
        served.append(sock)
    time.sleep(KEEP_ALIVE + SLACK)
    try:
        still_open = [s for s in silent + served if not _closed_by_server(s)]
        assert still_open == []
    finally:
        for sock in silent + served:
            sock.close()


def test_a_client_that_stops_reading_is_cut_after_the_socket_timeout(
        listener: RunningServer) -> None:
    token = listener.token()
    time.sleep(0.2)
    before = _sockets(listener)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(_address(listener))
    # Pipelined requests whose answers (megabytes in all) the client never reads.
    request = (f"GET /compute/v2.1/flavors/detail HTTP/1.1\r\nHost: novalite\r\n"
               f"X-Auth-Token: {token}\r\n\r\n").encode()
    sock.setblocking(False)
    try:
        with pytest.raises(BlockingIOError):
            for _ in range(100_000):
                sock.send(request)
        # The server's writes stall; after client_socket_timeout it closes its end
        # (its descriptor is back) although this client never read nor closed.
        wait_for(lambda: _sockets(listener) <= before, timeout=SOCKET_TIMEOUT + SLACK * 2)
    finally:
        sock.close()


def test_descriptors_are_released_when_clients_close(listener: RunningServer) -> None:
    with httpx.Client(base_url=listener.url) as warm:
        warm.get("/compute/")
    time.sleep(0.2)
    before, fds_before = _sockets(listener), _fds(listener)
    for _ in range(200):  # a new connection each, closed by the client after its answer
        with httpx.Client(base_url=listener.url) as client:
            assert client.get("/compute/").status_code == 200
    # Well before keep_alive_timeout: the descriptors are back as soon as clients close.
    after = wait_for(lambda: (n := _sockets(listener)) <= before and n, timeout=1.0)
    print(f"descriptors: {fds_before} before ({before} sockets), {_fds(listener)} after "
          f"200 closed connections ({after} sockets)")
    assert after <= before


def test_at_max_connections_new_clients_wait(tmp_path: Path) -> None:
    srv = start(tmp_path / "state", config={"api": {"max_connections": 3,
                                                    "keep_alive_timeout": 30.0}})
    try:
        held = [socket.create_connection(_address(srv)) for _ in range(3)]
        time.sleep(0.3)
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"{srv.url}/compute/", timeout=1.0)
        held.pop().close()  # one slot free: the next client is served
        assert httpx.get(f"{srv.url}/compute/", timeout=5.0).status_code == 200
        for sock in held:
            sock.close()
    finally:
        srv.stop()


def test_short_of_descriptors_the_service_keeps_answering(tmp_path: Path) -> None:
    srv = start(tmp_path / "state")
    try:
        pid = srv.process.pid
        # Leave the service about 60 spare descriptors (it raised its own soft limit
        # at start; lower it from outside, as a small `ulimit -n` would).
        limit = _fds(srv) + 60
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        started = time.monotonic()
        for _ in range(300):  # five times the spare descriptors, one connection each
            with httpx.Client(base_url=srv.url, timeout=5) as client:
                assert client.get("/compute/").status_code == 200
        print(f"300 sequential connections under a limit of {limit} descriptors: "
              f"{time.monotonic() - started:.1f} s")
        # Run out on purpose (idle connections held open), then recover at once.
        held = []
        for _ in range(100):
            try:
                held.append(socket.create_connection(_address(srv), timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        for sock in held:
            sock.close()
        started = time.monotonic()
        assert httpx.get(f"{srv.url}/compute/", timeout=10).status_code == 200
        assert time.monotonic() - started < 2.0
        assert any(e.get("event") == "accept failed: out of descriptors; retrying"
                   for e in srv.log_events())
    finally:
        srv.stop()


# -- an answer before the body: the client is not left blocked writing ------------------


async def _answer_413_without_reading(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An application that, like a quota refused before an upload is read, answers 413
    late enough that the client has filled every buffer on the way."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await trio.sleep(0.5)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-length", b"9"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": b"too large"})


def _upload_everything(port: int, size: int) -> dict[str, Any]:
    """Send ``size`` bytes of body in full, each send allowed 3 s; then read the answer."""
    out: dict[str, Any] = {"sent": 0}
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"PUT /v2/images/x/file HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        sock.settimeout(3)
        started = time.monotonic()
        try:
            while out["sent"] < size:
                out["sent"] += sock.send(b"y" * 65536)
        except OSError as exc:
            out["error"] = repr(exc)
        out["seconds"] = time.monotonic() - started
        out["answer"] = sock.recv(4096)
    return out


async def test_an_early_413_does_not_leave_the_client_blocked_writing() -> None:
    """The listener's real connection handling (novalite.api.listener.serve) over a
    socket: a 64 MiB upload refused before it is read gets its 413, and the client can
    finish sending (the service reads and drops the rest) instead of blocking until its
    write timeout, the flake seen as httpx.WriteTimeout under load."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, _answer_413_without_reading, config,
                                    ConnectionLimits(), shutdown_trigger=stop.wait))
        out = await trio.to_thread.run_sync(_upload_everything, port, 64 << 20)
        stop.set()
    assert "error" not in out, out
    assert out["sent"] == 64 << 20
    assert out["answer"].startswith(b"HTTP/1.1 413"), out["answer"]


def test_stopping_closes_idle_keep_alive_connections_at_once(tmp_path: Path) -> None:
    """SIGTERM waits for requests in flight, not for clients that merely keep their
    connection open: an idle keep-alive client (here, and the compute host's own image
    client after a boot) does not hold the stop for ``graceful_timeout``."""
    srv = start(tmp_path / "state", config={"api": {"graceful_timeout": 30.0,
                                                    "keep_alive_timeout": 60.0}})
    try:
        c = srv.client()
        image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
        sid = c.post("/compute/v2.1/servers", json={"server": {
            "name": "keep-alive", "imageRef": image, "flavorRef": "1"}}).json()["server"]["id"]
        wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"]
                 == "ACTIVE")
        held = socket.create_connection(_address(srv))
        held.sendall(b"GET /compute/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 200 " in _drain_response(held)
        began = time.monotonic()
        assert srv.stop() == 0
        took = time.monotonic() - began
        # Far below the 30 s graceful timeout (an idle connection used to hold it all).
        assert took < 10, f"stopping took {took:.1f} s"
        held.settimeout(5)  # the rest of the answer, then EOF: closed by the service
        while held.recv(65536):
            pass
        held.close()
        c.close()
    finally:
        srv.stop()
