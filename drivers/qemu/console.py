"""A guest's interactive consoles: its VNC server and its serial port (contract 1.3).

VNC: a guest spawned with consoles enabled has a standard VGA device and QEMU's VNC
server on ``vnc.sock`` in its directory (a UNIX socket: no TCP port is open to
anyone); :func:`open_vnc` connects to it, once per viewer.

Serial: the serial port normally feeds the ``ringbuf`` chardev that keeps
``console.log`` capped (see :mod:`.process`). A session swaps the port's backend
for its duration with QMP ``chardev-change``: to a socket chardev on one end of a
socketpair whose other end novalite holds (passed over QMP with ``getfd``: no path,
no listening socket), with ``logfile=console.log`` so the log keeps everything
typed and answered meanwhile; closing the session swaps the ring buffer back. One
session per guest at a time. If novalite dies during a session, the port stays on
the (closed) socket and QEMU keeps appending to ``console.log`` itself;
:func:`restore_ring` (called when guests are adopted) puts the ring buffer back.
"""

from __future__ import annotations

import os
import socket

import trio

from novalite.virt.driver import DriverError

from . import process as proc
from .qmp import QmpClient, QmpError, _connect_unix

#: The name under which the session's socket is handed to QEMU (``getfd``).
_FD_NAME = "novalite-serial"


async def open_vnc(directory: str, uuid: str) -> trio.SocketStream:
    """A stream to the guest's VNC server; DriverError when it has none or is down."""
    path = os.path.join(directory, proc.VNC_SOCKET)
    if not proc.LaunchConfig.load(directory).vnc:
        raise DriverError(f"guest {uuid} has no display (it was spawned with VNC disabled)")
    if proc.live_pid(directory, uuid) is None:
        raise DriverError(f"guest {uuid} is not running")
    try:
        return await _connect_unix(path)
    except OSError as exc:
        raise DriverError(f"cannot reach the VNC server of guest {uuid}: {exc}") from None


def _ring_backend(ring_bytes: int) -> dict[str, object]:
    return {"type": "ringbuf", "data": {"size": ring_bytes}}


async def restore_ring(directory: str) -> None:
    """Put the serial port back on its ring buffer if a session was left open (novalite
    stopped during it). Never raises."""
    qmp_path = os.path.join(directory, proc.QMP_SOCKET)
    try:
        async with await QmpClient.connect(qmp_path, 5.0) as qmp:
            chardevs = await qmp.execute("query-chardev")
            for dev in chardevs or []:
                if dev.get("label") == proc.CONSOLE_CHARDEV and dev.get("filename") != "ringbuf":
                    ring = proc.LaunchConfig.load(directory).console_ring_bytes
                    await qmp.execute("chardev-change", {"id": proc.CONSOLE_CHARDEV,
                                                         "backend": _ring_backend(ring)})
    except (QmpError, OSError, ValueError):
        pass


class SerialSession(trio.abc.Stream):
    """One interactive session on a guest's serial port; ``aclose`` ends it."""

    def __init__(self, stream: trio.SocketStream, directory: str, ring_bytes: int,
                 on_close: list[str], uuid: str) -> None:
        self._stream = stream
        self._directory = directory
        self._ring = ring_bytes
        self._sessions = on_close
        self._uuid = uuid
        self._closed = False

    @classmethod
    async def open(cls, directory: str, uuid: str, sessions: list[str]) -> SerialSession:
        """Swap the port to a socketpair end; ``sessions`` lists the uuids with one open."""
        if uuid in sessions:
            raise DriverError(f"the serial console of guest {uuid} is in use")
        if proc.live_pid(directory, uuid) is None:
            raise DriverError(f"guest {uuid} is not running")
        cfg = proc.LaunchConfig.load(directory)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sessions.append(uuid)
        try:
            async with await QmpClient.connect(os.path.join(directory, proc.QMP_SOCKET),
                                               5.0) as qmp:
                await qmp.execute("getfd", {"fdname": _FD_NAME}, fds=[theirs.fileno()])
                await qmp.execute("chardev-change", {"id": proc.CONSOLE_CHARDEV, "backend": {
                    "type": "socket", "data": {
                        "addr": {"type": "fd", "data": {"str": _FD_NAME}}, "server": False,
                        "logfile": os.path.abspath(os.path.join(directory, proc.CONSOLE_LOG)),
                        "logappend": True}}})
        except QmpError as exc:
            sessions.remove(uuid)
            ours.close()
            raise DriverError(f"cannot open the serial console of guest {uuid}: {exc}") from None
        finally:
            theirs.close()
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
        return cls(stream, directory, cfg.console_ring_bytes, sessions, uuid)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        """End the session: close our end, put the ring buffer back (QEMU may be gone)."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            await self._stream.aclose()
            try:
                async with await QmpClient.connect(
                        os.path.join(self._directory, proc.QMP_SOCKET), 5.0) as qmp:
                    await qmp.execute("chardev-change", {"id": proc.CONSOLE_CHARDEV,
                                                         "backend": _ring_backend(self._ring)})
            except QmpError:
                pass  # the guest stopped meanwhile: its next start has the ring again
            finally:
                if self._uuid in self._sessions:
                    self._sessions.remove(self._uuid)
