"""The compute host's metadata relay: one UNIX socket per guest, as Neutron's metadata agent.

A guest asks ``http://169.254.169.254/...``. The driver connects that address, for
that guest only, to the guest's own socket here (the qemu driver: QEMU's user-mode
``guestfwd`` runs ``socat`` per connection into ``<socket_dir>/<uuid>.sock``). The
relay knows which guest a socket belongs to because it made the socket for it, so a
guest cannot claim to be another: the identity comes from the path its bytes took,
never from what it sends. Each request is forwarded over HTTP to the metadata
service with Neutron's proxy headers: ``X-Instance-ID``, ``X-Tenant-ID`` and
``X-Instance-ID-Signature`` (HMAC-SHA256 of the uuid with the shared secret, Nova's
``metadata_proxy_shared_secret``), plus ``X-Forwarded-For`` (the guest's address).
The metadata service answers nothing else, so the host's loopback cannot read a
guest's data without the secret.

The relay runs in the compute host's process and reaches the metadata service by URL,
so a compute host on another machine works the same (DESIGN.md boundary 9).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import socket
import stat
import tempfile
from dataclasses import dataclass

import h11
import httpx
import structlog
import trio

log = structlog.get_logger("novalite.metadata.proxy")

#: Longest request body a guest may send (a password post is at most 1,020 bytes).
MAX_BODY = 65536
#: Seconds a guest's connection may stay idle.
IDLE_TIMEOUT = 30.0
#: Longest UNIX socket path (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107


def default_socket_dir(state_path: str) -> str:
    """``<state_path>/md``, or when that leaves no room for a socket name in a UNIX socket
    path, a directory of this user's under the temporary directory named after it."""
    path = os.path.join(state_path, "md")
    if len(os.path.join(path, "x" * 36 + ".sock")) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.path.abspath(state_path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"novalite-md-{os.getuid()}-{digest}")


def sign(secret: str, instance_id: str) -> str:
    """``X-Instance-ID-Signature``: HMAC-SHA256 of the instance id, hex (Nova's check)."""
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Guest:
    """Who is behind one socket."""

    uuid: str
    project_id: str
    address: str = ""


class MetadataProxy:
    """Per-guest listeners, all in one nursery (:meth:`run`), shared by the process's
    compute hosts. :meth:`open` makes a guest's socket, :meth:`close` removes it."""

    def __init__(self, socket_dir: str, metadata_url: str, shared_secret: str) -> None:
        self.socket_dir = socket_dir
        self.metadata_url = metadata_url.rstrip("/")
        self.secret = shared_secret
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}
        self._owners: dict[str, str | None] = {}
        self._client = httpx.AsyncClient(timeout=IDLE_TIMEOUT)

    def socket_path(self, uuid: str) -> str:
        """Where guest ``uuid``'s socket is (whether or not it is open)."""
        return os.path.join(self.socket_dir, f"{uuid}.sock")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Hold the listeners' nursery until cancelled (the sockets are removed then)."""
        os.makedirs(self.socket_dir, mode=0o700, exist_ok=True)
        info = os.lstat(self.socket_dir)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise ValueError(f"[metadata] socket_dir {self.socket_dir!r} is not a directory "
                             "of this user's")
        os.chmod(self.socket_dir, 0o700)
        if len(self.socket_path("x" * 36)) > MAX_SOCKET_PATH:
            raise ValueError(f"[metadata] socket_dir {self.socket_dir!r} is too long for "
                             f"UNIX socket paths ({MAX_SOCKET_PATH} bytes)")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for uuid in list(self._scopes):
                self._unlink(uuid)
            self._scopes.clear()
            with contextlib.suppress(OSError):  # only when empty
                os.rmdir(self.socket_dir)
            with trio.CancelScope(shield=True):
                await self._client.aclose()

    async def open(self, guest: Guest, owner: str | None = None) -> str:
        """Listen on guest's socket (replacing any left from an earlier run); its path.
        ``owner``: the compute host that runs the guest (several share this relay in
        one process; a guest moving between two of them is opened by the second)."""
        if self._nursery is None:
            raise RuntimeError("the metadata proxy is not running")
        self.close(guest.uuid)
        self._owners[guest.uuid] = owner
        path = self.socket_path(guest.uuid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(16)
        listener = trio.SocketListener(sock)
        scope = trio.CancelScope()
        self._scopes[guest.uuid] = scope
        self._nursery.start_soon(self._serve, guest, listener, scope)
        return path

    def close(self, uuid: str, owner: str | None = None) -> None:
        """Stop listening for guest ``uuid`` and remove its socket. Idempotent. With
        ``owner``: only while that host is the one that opened it (a host the guest
        moved away from leaves the new host's socket alone)."""
        if owner is not None and self._owners.get(uuid) not in (None, owner):
            return
        self._owners.pop(uuid, None)
        scope = self._scopes.pop(uuid, None)
        if scope is not None:
            scope.cancel()
            self._unlink(uuid)

    def _unlink(self, uuid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path(uuid))

    async def _serve(self, guest: Guest, listener: trio.SocketListener,
                     scope: trio.CancelScope) -> None:
        with scope:
            async with listener, trio.open_nursery() as nursery:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(self._connection, guest, stream)

    async def _connection(self, guest: Guest, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
        async with stream:
            try:
                while True:
                    request, body = await self._read_request(conn, stream)
                    if request is None:
                        return
                    status, headers, content = await self._forward(guest, request, body)
                    headers.append(("Content-Length", str(len(content))))
                    await stream.send_all(conn.send(h11.Response(
                        status_code=status, headers=headers)) or b"")
                    await stream.send_all(conn.send(h11.Data(data=content)) or b"")
                    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
            except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError,
                    trio.TooSlowError) as exc:
                log.debug("metadata connection ended", instance=guest.uuid, error=str(exc))

    async def _read_request(self, conn: h11.Connection, stream: trio.SocketStream
                            ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = b""
        with trio.fail_after(IDLE_TIMEOUT):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    if not data and request is None:
                        return None, b""
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_BODY:
                        raise h11.LocalProtocolError("request body too large")
                elif isinstance(event, h11.EndOfMessage):
                    return request, body
                elif isinstance(event, h11.ConnectionClosed):
                    return None, b""

    async def _forward(self, guest: Guest, request: h11.Request, body: bytes
                       ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {
            "X-Instance-ID": guest.uuid, "X-Tenant-ID": guest.project_id,
            "X-Instance-ID-Signature": sign(self.secret, guest.uuid),
            "X-Forwarded-For": guest.address,
        }
        for name, value in request.headers:
            if name.lower() == b"content-type":
                headers["Content-Type"] = value.decode("latin-1")
        target = request.target.decode("latin-1")
        if not target.startswith("/"):
            target = "/" + target
        try:
            r = await self._client.request(request.method.decode(), self.metadata_url + target,
                                           headers=headers, content=body)
        except httpx.HTTPError as exc:
            log.warning("metadata service unreachable", instance=guest.uuid, error=str(exc))
            return 502, [("Content-Type", "text/plain")], b"metadata service unreachable\n"
        out = [("Content-Type", r.headers.get("content-type", "text/plain"))]
        return r.status_code, out, r.content
