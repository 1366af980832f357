"""The HTTP listener: Hypercorn's trio worker, with the connection hygiene it lacks.

:func:`serve` does what ``hypercorn.trio.serve`` does (lifespan, sockets, one
:class:`~hypercorn.trio.tcp_server.TCPServer` per connection, graceful shutdown)
with five differences, each closing a way for clients to exhaust the service:

* **A connection the client closed is released at once.** Hypercorn keeps its
  keep-alive timer running after the peer hung up, so every closed connection
  held its descriptor for ``keep_alive_timeout`` seconds.
* **Header timeout.** A request line and headers must arrive within
  ``header_timeout`` seconds of their first byte (slowloris clients sending a
  byte at a time are cut). An idle connection is cut after ``keep_alive_timeout``
  (Hypercorn's own timer, which also covers a connection that sends nothing).
* **Socket timeout.** Each read and each write may wait ``client_socket_timeout``
  seconds (Hypercorn's ``read_timeout`` bounds reads only; its writes are
  shielded and could wait forever on a client that never reads).
* **A cap on connections, and no stall when descriptors run out.** At
  ``max_connections`` the listener stops accepting (new clients wait in the
  kernel's backlog); an ``EMFILE``/``ENFILE`` from ``accept`` is logged once per
  burst and retried after a short pause instead of flooding the log.
* **An answer before the request body is read** (a 413) does not leave the client
  blocked writing: what the application's queue cannot take is dropped, the
  connection closes our side and reads and drops what still comes for
  :data:`LINGER` seconds (a lingering close, as nginx does), then closes.

Hypercorn settings used as they are: ``keep_alive_timeout``, ``read_timeout``
(set to ``client_socket_timeout``), ``h11_max_incomplete_size`` (16 KiB of
request line and headers at most: larger gets 400), ``backlog``,
``graceful_timeout``.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from math import inf
from typing import Any

import h11
import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

from novalite import metrics

log = structlog.get_logger("novalite.api")

#: Errors of ``accept`` that mean "out of descriptors or memory": retry after a pause.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
#: Seconds between two accepts while descriptors are exhausted.
ACCEPT_RETRY_DELAY = 0.05
#: Descriptors kept for the service's own files (database, images, guests, logs).
FD_RESERVE = 128
#: Seconds a connection answered before its request body was read keeps reading (and
#: dropping) what the client still sends, so the client gets the answer, not a reset.
LINGER = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """How long and how many: see the module docstring."""

    keep_alive_timeout: float = 30.0
    header_timeout: float = 10.0
    client_socket_timeout: float = 60.0
    max_connections: int = 1000
    backlog: int = 1024


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        target = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    else:
        target = hard
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. above the kernel's nr_open
            log.warning("cannot raise the open-file limit", soft=soft, hard=hard, error=str(exc))
    return soft, hard


def connection_cap(configured: int) -> int:
    """``configured``, lowered to fit the open-file limit less :data:`FD_RESERVE`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - FD_RESERVE))


class _Connection(TCPServer):
    """One client connection: Hypercorn's, plus the header and write timeouts and the
    release on client close."""

    def __init__(self, app: AppWrapper, config: HypercornConfig, context: WorkerContext,
                 state: ConnectionState, limits: ConnectionLimits, stream: Any) -> None:
        super().__init__(app, config, context, state, stream)
        self.limits = limits
        #: No request in progress: between requests, or before the first.
        self._idle = True
        self._header_deadline = inf
        self._peer_gone = False
        #: Set when the server closed its side while the client may still be sending.
        self._linger_until: float | None = None
        #: Around the reader's hand-over of received bytes to the protocol: an early
        #: answer cancels it (:meth:`_stop_handing_over`).
        self._handing_over: trio.CancelScope | None = None
        #: Around the reader's wait for bytes; cancelled to close an idle connection
        #: when the service stops (:meth:`_watch_for_stop`).
        self._reading: trio.CancelScope | None = None
        self._stopping = False

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self._idle = event.idle
            self._header_deadline = inf
            self._end_read_if_idle()
            if event.idle and self._peer_gone:
                await self.idle_task.stop()  # nothing more can come: release the socket now
                return
        elif isinstance(event, RawData):
            await self._send(event.data)
            if self._answered_early():
                self._stop_handing_over()
            return
        await super().protocol_send(event)

    def _answered_early(self) -> bool:
        """True when the response is complete while the client is still sending its
        request body (a 413 for a declared size, a quota refused before reading)."""
        connection = getattr(getattr(self.protocol, "protocol", None), "connection", None)
        return (isinstance(connection, h11.Connection)
                and connection.our_state in (h11.DONE, h11.MUST_CLOSE)
                and connection.their_state is h11.SEND_BODY)

    def _stop_handing_over(self) -> None:
        """The application answered without reading the body: it reads no more of it.
        Hypercorn's queue to the application holds a few chunks and then waits, and
        would wait forever: the reader would stop reading, the client block writing
        until its own timeout (and the stream's ``http.disconnect`` never be queued).
        From now on what the queue cannot take is dropped, and a hand-over already
        waiting is cancelled; the connection then closes and lingers (:meth:`_close`)."""
        stream = getattr(self.protocol.protocol, "stream", None)
        put = getattr(stream, "app_put", None)
        channel = getattr(put, "__self__", None)
        if isinstance(channel, trio.MemorySendChannel):
            async def put_or_drop(message: Any) -> None:
                try:
                    channel.send_nowait(message)
                except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                    pass

            stream.app_put = put_or_drop  # type: ignore[union-attr]
        if self._handing_over is not None:
            self._handing_over.cancel()

    async def _send(self, data: bytes) -> None:
        async with self.send_lock:
            broken = False
            try:
                # Shielded as Hypercorn does (a response is not cut by a cancelled app),
                # but bounded: a client that stops reading is disconnected.
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self.limits.client_socket_timeout
                    await self.stream.send_all(data)
                broken = scope.cancelled_caught
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                broken = True
            if broken:
                with trio.CancelScope(shield=True):
                    await self.stream.aclose()
        if broken:
            await self.protocol.handle(Closed())

    async def _close(self) -> None:
        if self._peer_gone or self._linger_until is not None:
            await super()._close()
            return
        # An answer sent before the request was read to its end (a 413 for a declared
        # size, say): end our side, and let _read_data drop what the client still sends
        # until it stops or LINGER passes; closing now would reset the connection and
        # lose the answer in the client's kernel.
        self._linger_until = trio.current_time() + LINGER
        # The reader may be blocked handing request body to an application that answered
        # without reading it (Hypercorn's queue to the app holds a few chunks, then
        # waits): no more reads would happen, the client would block writing until its
        # timeout. Cancel the hand-over; from now on the reader drops what arrives.
        if self._handing_over is not None:
            self._handing_over.cancel()
        try:
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError,
                AttributeError):
            await self.stream.aclose()

    async def _read_data(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_for_stop)
            await self._read_loop()
            nursery.cancel_scope.cancel()

    async def _watch_for_stop(self) -> None:
        """When the service stops, an idle connection closes at once (a busy one when its
        answer is out). Hypercorn does that from its idle task, which a response ending
        as the next request starts can leave stopped: a keep-alive client (the compute
        hosts' own image client) then held the shutdown for the whole graceful timeout."""
        await self.context.terminated.wait()
        self._stopping = True
        self._end_read_if_idle()

    def _end_read_if_idle(self) -> None:
        if self._stopping and self._idle and self._reading is not None:
            self._reading.cancel()

    async def _read_loop(self) -> None:
        socket_timeout = self.limits.client_socket_timeout
        while True:
            if self._stopping and self._idle:  # went idle between two reads
                break
            deadline = trio.current_time() + socket_timeout
            if self._linger_until is not None:
                deadline = min(deadline, self._linger_until)
            elif self._idle:
                deadline = min(deadline, self._header_deadline)
            try:
                with trio.fail_at(deadline), trio.CancelScope() as self._reading:
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            if self._reading.cancelled_caught:  # idle while the service stops
                break
            if self._linger_until is not None:  # answered and closed: drop it
                if not data:
                    break
                continue
            if self._idle and data and self._header_deadline == inf:
                self._header_deadline = trio.current_time() + self.limits.header_timeout
            with trio.CancelScope() as self._handing_over:
                await self.protocol.handle(RawData(bytes(data)))
            self._handing_over = None
            if data == b"":
                break
        self._peer_gone = True
        await self.idle_task.stop()
        await self.protocol.handle(Closed())


async def _serve_connection(app: AppWrapper, config: HypercornConfig, context: WorkerContext,
                            state: ConnectionState, limits: ConnectionLimits,
                            slots: trio.Semaphore, stream: Any) -> None:
    metrics.OPEN_CONNECTIONS.inc()
    try:
        await _Connection(app, config, context, state, limits, stream).run()
    finally:
        metrics.OPEN_CONNECTIONS.dec()
        slots.release()


async def _accept_loop(listener: trio.SocketListener, nursery: trio.Nursery,
                       handler: Callable[[Any], Awaitable[None]],
                       slots: trio.Semaphore) -> None:
    short_since: float | None = None
    slots_total = slots.value
    async with listener:
        while True:
            await slots.acquire()  # at the cap: stop accepting, clients wait in the backlog
            try:
                stream = await listener.accept()
            except OSError as exc:
                slots.release()
                if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                metrics.ACCEPT_ERRORS.labels(errno.errorcode.get(exc.errno or 0, "?")).inc()
                if short_since is None:
                    short_since = trio.current_time()
                    log.warning("accept failed: out of descriptors; retrying",
                                error=os.strerror(exc.errno or 0),
                                open_connections=slots_total - slots.value)
                await trio.sleep(ACCEPT_RETRY_DELAY)
                continue
            if short_since is not None:
                log.info("accepting again", seconds_short=round(
                    trio.current_time() - short_since, 3))
                short_since = None
            nursery.start_soon(handler, stream)


async def serve(app: Any, config: HypercornConfig, limits: ConnectionLimits, *,
                shutdown_trigger: Callable[[], Awaitable[Any]],
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the ASGI ``app`` on ``config.bind`` until ``shutdown_trigger`` returns; then
    stop accepting and give open requests ``config.graceful_timeout`` seconds."""
    config.keep_alive_timeout = limits.keep_alive_timeout
    config.read_timeout = int(limits.client_socket_timeout)
    config.backlog = limits.backlog
    wrapped = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    slots = trio.Semaphore(connection_cap(limits.max_connections))

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners = []
            binds = []
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
            handler = partial(_serve_connection, wrapped, config, context,
                              ConnectionState(lifespan_state.copy()), limits, slots)
            log.info("api listening", binds=binds)
            task_status.started()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    for listener in listeners:
                        nursery.start_soon(_accept_loop, listener, server_nursery, handler,
                                           slots)
            except BaseExceptionGroup as error:
                _, others = error.split(ShutdownError)
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = (trio.current_time()
                                                        + config.graceful_timeout)
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
