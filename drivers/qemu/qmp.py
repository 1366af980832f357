"""A small QMP (QEMU Machine Protocol) client on trio.

QEMU's official Python QMP library is asyncio-only, so novalite keeps its own:
connect to a unix socket, negotiate capabilities, execute commands (each one
bounded by a timeout) and read asynchronous events. One :class:`QmpClient` is
used by one task at a time; the driver opens a short-lived client per command
batch on the guest's command socket and keeps a long-lived one per guest on its
event socket.

Example::

    async with await QmpClient.connect("/path/qmp.sock") as qmp:
        status = await qmp.execute("query-status")
"""

from __future__ import annotations

import array
import json
import os
import socket
from typing import Any

import trio

#: Default seconds to wait for a greeting or a command's answer.
DEFAULT_TIMEOUT = 10.0
_MAX_SUN_PATH = 100


class QmpError(Exception):
    """A QMP exchange failed (connection refused, closed, malformed answer)."""


class QmpCommandError(QmpError):
    """QEMU answered a command with an error; ``error_class`` is QEMU's class name."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"QMP command {command!r} failed: {error_class}: {desc}")
        self.error_class = error_class
        self.desc = desc


class QmpTimeout(QmpError):
    """QEMU did not answer within the timeout."""


async def _connect_unix(path: str) -> trio.SocketStream:
    """Connect to ``path``, also when it is longer than sockaddr_un allows.

    A long path is reached through ``/proc/self/fd/<dirfd>/<name>``.
    """
    if len(path.encode()) <= _MAX_SUN_PATH:
        return await trio.open_unix_socket(path)
    dirfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_CLOEXEC)
    try:
        short = f"/proc/self/fd/{dirfd}/{os.path.basename(path)}"
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await sock.connect(short)
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)
    finally:
        os.close(dirfd)


class QmpClient:
    """One QMP session. Create it with :meth:`connect`; close it with :meth:`aclose`."""

    def __init__(self, stream: trio.SocketStream, path: str, timeout: float) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._next_id = 0
        self.path = path
        self.timeout = timeout
        #: Events read while waiting for a command's answer, oldest first.
        self.pending_events: list[dict[str, Any]] = []
        self.greeting: dict[str, Any] = {}

    @classmethod
    async def connect(cls, path: str, timeout: float = DEFAULT_TIMEOUT) -> QmpClient:
        """Connect, read the greeting and negotiate capabilities, all within ``timeout``.

        Raises :class:`QmpError` if the socket is absent or refuses, :class:`QmpTimeout`
        if QEMU does not greet or answer in time.
        """
        try:
            with trio.fail_after(timeout):
                stream = await _connect_unix(path)
        except trio.TooSlowError:
            raise QmpTimeout(f"QMP connect to {path} timed out after {timeout}s") from None
        except OSError as exc:
            raise QmpError(f"cannot connect to QMP socket {path}: {exc}") from None
        client = cls(stream, path, timeout)
        try:
            try:
                with trio.fail_after(timeout):
                    client.greeting = await client._read_message()
            except trio.TooSlowError:
                raise QmpTimeout(
                    f"QMP socket {path} sent no greeting within {timeout}s "
                    "(QEMU hung, or another client holds the monitor)"
                ) from None
            if "QMP" not in client.greeting:
                raise QmpError(f"not a QMP greeting on {path}: {client.greeting!r}")
            await client.execute("qmp_capabilities")
        except BaseException:
            await client.aclose()
            raise
        return client

    async def __aenter__(self) -> QmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (never raises)."""
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    async def _read_message(self) -> dict[str, Any]:
        """One JSON message; cancel-safe (partial input stays buffered)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    raise QmpError(f"malformed QMP message from {self.path}: {line[:200]!r}") from None
                if not isinstance(message, dict):
                    raise QmpError(f"unexpected QMP message from {self.path}: {message!r}")
                return message
            try:
                data = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise QmpError(f"QMP connection {self.path} broken: {exc}") from None
            if not data:
                raise QmpError(f"QMP connection {self.path} closed by QEMU")
            self._buffer += data

    async def execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None,
        fds: list[int] | None = None,
    ) -> Any:
        """Run ``command`` and return its ``return`` value. ``fds`` are passed along
        with the command (SCM_RIGHTS), as ``getfd`` expects.

        Raises :class:`QmpCommandError` on QEMU's error answer, :class:`QmpTimeout` when
        no answer comes within ``timeout`` (default: the client's), :class:`QmpError`
        when the connection breaks (``quit`` answers before closing, so it succeeds).
        """
        self._next_id += 1
        ident = f"novalite-{self._next_id}"
        request: dict[str, Any] = {"execute": command, "id": ident}
        if arguments:
            request["arguments"] = arguments
        limit = self.timeout if timeout is None else timeout
        try:
            with trio.fail_after(limit):
                try:
                    data = json.dumps(request).encode() + b"\n"
                    if fds:
                        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      array.array("i", fds).tobytes())]
                        sent = await self._stream.socket.sendmsg([data], ancillary)
                        data = data[sent:]
                    if data:
                        await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise QmpError(f"QMP connection {self.path} broken: {exc}") from None
                while True:
                    message = await self._read_message()
                    if "event" in message:
                        self.pending_events.append(message)
                        continue
                    if message.get("id") != ident:
                        continue
                    if "error" in message:
                        err = message["error"]
                        raise QmpCommandError(
                            command, str(err.get("class", "?")), str(err.get("desc", ""))
                        )
                    return message.get("return")
        except trio.TooSlowError:
            raise QmpTimeout(
                f"QMP command {command!r} on {self.path} got no answer within {limit}s"
            ) from None

    async def next_event(self) -> dict[str, Any]:
        """Wait for and return the next event (``{"event": NAME, "data": ..., ...}``).

        Raises :class:`QmpError` when QEMU closes the connection (it exited).
        """
        if self.pending_events:
            return self.pending_events.pop(0)
        while True:
            message = await self._read_message()
            if "event" in message:
                return message


async def qmp_execute(
    path: str, command: str, arguments: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Any:
    """Connect to ``path``, run one command, disconnect; the whole exchange within ``timeout``."""
    try:
        with trio.fail_after(timeout):
            async with await QmpClient.connect(path, timeout) as qmp:
                return await qmp.execute(command, arguments, timeout)
    except trio.TooSlowError:
        raise QmpTimeout(f"QMP {command!r} on {path} timed out after {timeout}s") from None
