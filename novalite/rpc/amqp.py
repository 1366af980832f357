"""The AMQP 0-9-1 transport: topics as RabbitMQ queues, for compute hosts on other machines.

Selected by ``[DEFAULT] transport_url = "rabbit://user:pass@host:5672/vhost"``
(oslo.messaging's option; ``rabbits://`` for TLS). It keeps the contract of
:mod:`novalite.rpc.transport` as the in-memory transport does:

* **Topics** are queues of the default exchange, named ``<prefix><topic>``
  (``conductor``, ``scheduler``, ``compute.<host>``), non-durable, and deleted by the
  broker once nobody has consumed them for ``QUEUE_EXPIRES`` seconds (``x-expires``):
  a topic rides out a dropped connection or a restarting process (messages sent
  meanwhile wait in its queue), while a message to a topic nobody serves is returned
  by the broker (``mandatory``) and the sender gets
  :class:`~novalite.rpc.errors.UnknownTopic`, as in one process. Two processes that
  listen on one topic (two control processes) share its messages.
* **Calls** use RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``): no reply queue
  to declare or clean up; the call id is this transport's random address and a counter.
* **Bounded.** A topic's queue holds at most ``inbox_size - prefetch`` messages
  (``x-max-length`` with ``reject-publish``) and its consumer at most ``prefetch``
  unacknowledged; a message is acknowledged when the listener takes it. Publishes are
  confirmed (replies excepted: their caller's wait is their check): a rejected one
  (full queue) is retried with back-off, so a sender to a full topic waits, as the
  contract asks.
* **Faults.** The connection is remade with back-off (0.5 s doubling to 10 s) and the
  topics listened on are consumed again. A call waiting when the connection drops
  fails with :class:`~novalite.rpc.errors.BusError` (its reply could not come back);
  a message taken off a connection that then died is not handed out by this
  transport (it was never acknowledged: the broker redelivers it, and that copy is
  handed out). A message is acknowledged as the listener takes it, before its handler
  runs: at most once, but for the instant between the take and the broker's receipt
  of the acknowledgement (a connection lost then redelivers a message already taken).
  A broker restart loses what its (non-durable) queues held: the callbacks in
  :attr:`on_reconnected` run when the connection is back (the conductor then puts the
  builds that never reached it into ERROR), and the build timeout catches the rest.
  The broker's credentials are never logged (only host, port and virtual host).

The client is pika's ``BlockingConnection``, confined to one I/O thread per transport
(pika is not thread-safe: every use of the connection happens in that thread, work is
handed to it with ``add_callback_threadsafe`` and results come back to trio with
``TrioToken.run_sync_soon``). The maintained asyncio clients (aio-pika, aiormq) do not
run under trio; pika is maintained, speaks RabbitMQ's extensions (publisher confirms,
direct reply-to, ``mandatory`` returns) and costs one thread and one broker connection
per process.

Example::

    transport = AmqpTransport("rabbit://guest:guest@127.0.0.1:5672/")
    try:
        await nursery.start(Dispatcher("scheduler", scheduler).serve, transport)
        ...
    finally:
        await transport.aclose()
"""

from __future__ import annotations

import itertools
import math
import os
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import structlog
import trio

from novalite import metrics
from novalite.rpc.errors import BusError, UnknownTopic
from novalite.rpc.memory import INBOX_SIZE
from novalite.rpc.transport import Incoming, Transport

log = structlog.get_logger("novalite.rpc.amqp")

#: RabbitMQ's pseudo-queue for direct replies.
REPLY_TO = "amq.rabbitmq.reply-to"
#: Messages a topic's consumer holds unacknowledged, at most.
PREFETCH = 64
#: Seconds an operation waits for a connection to the broker before it fails.
CONNECT_WAIT = 30.0
#: Seconds a topic's queue outlives its last consumer.
QUEUE_EXPIRES = 60.0
#: Seconds the broker may block this connection's publishes before it is remade.
BLOCKED_TIMEOUT = 60.0


def connection_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for an oslo.messaging style ``rabbit://`` or ``rabbits://`` URL.

    ``rabbits://`` (and ``amqps://``) connect with TLS, verifying the broker's
    certificate against the system's trust store and its host name."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"rabbit": "amqp", "rabbits": "amqps", "amqp": "amqp", "amqps": "amqps"}.get(
        parts.scheme)
    if scheme is None:
        raise ValueError(f"transport_url must start with rabbit:// or rabbits://, "
                         f"not {parts.scheme}://")
    path = parts.path or "/"
    if path == "/":
        path = "/%2F"  # the default virtual host "/" (pika reads "/" as the empty name)
    params = pika.URLParameters(urllib.parse.urlunsplit(
        (scheme, parts.netloc, path, parts.query, "")))
    if scheme == "amqps":
        params.ssl_options = pika.SSLOptions(ssl.create_default_context(),
                                             server_hostname=parts.hostname)
    # Named in the broker's connection list (rabbitmqctl list_connections client_properties).
    params.client_properties = {"connection_name":
                                f"novalite {socket.gethostname()} pid {os.getpid()}"}
    # A broker that blocks publishers (memory or disk alarm) this long: reconnect.
    params.blocked_connection_timeout = BLOCKED_TIMEOUT
    return params


def safe_url(url: str) -> str:
    """``url`` without its password, for log lines and messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Inbox(trio.abc.ReceiveChannel[Incoming]):
    """A topic's inbox: takes a message and acknowledges it to the broker."""

    def __init__(self, transport: AmqpTransport,
                 receive: trio.MemoryReceiveChannel[tuple[Incoming, int, int]]) -> None:
        self._transport = transport
        self._receive = receive

    async def receive(self) -> Incoming:
        while True:
            incoming, generation, tag = await self._receive.receive()
            if generation == self._transport._generation:
                self._transport._ack(generation, tag)
                return incoming
            # Taken off a connection that died: unacknowledged, so the broker
            # redelivers it if its queue outlived that connection. Not handed out twice.

    async def aclose(self) -> None:
        await self._receive.aclose()


class _Waiting:
    """A call waiting for its reply, or an operation for the I/O thread."""

    __slots__ = ("data", "done", "error")

    def __init__(self) -> None:
        self.data: Any = b""
        self.error: BaseException | None = None
        self.done = trio.Event()


class AmqpTransport(Transport):
    """:class:`~novalite.rpc.transport.Transport` between processes, over RabbitMQ."""

    def __init__(self, url: str, *, prefix: str = "", inbox_size: int = INBOX_SIZE,
                 prefetch: int = PREFETCH, connect_wait: float = CONNECT_WAIT) -> None:
        self.params = connection_parameters(url)
        self.url = safe_url(url)
        self.prefix = prefix
        self.prefetch = max(1, min(prefetch, inbox_size // 2))
        self.queue_length = max(1, inbox_size - self.prefetch)
        self.connect_wait = connect_wait
        #: This transport's reply address prefix: every call id starts with it.
        self.address = f"amqp.{uuid.uuid4().hex}"
        self._ids = itertools.count(1)
        self._topics: dict[str, trio.MemorySendChannel[tuple[Incoming, int, int]]] = {}
        self._pending: dict[str, _Waiting] = {}   # calls, by call id (trio thread only)
        self._ops: set[_Waiting] = set()          # operations handed to the I/O thread
        self._generation = 0                      # the connection trio knows is up; 0: none
        self._connected = trio.Event()
        self._closed = False
        # I/O thread state
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listening: list[str] = []           # topics, read by the I/O thread on connect
        self._conn: Any = None
        self._channel: Any = None        # confirmed publishes, consumers, direct reply-to
        self._reply_channel: Any = None  # replies: no confirm to wait for
        self._io_generation = 0
        self._consuming: set[str] = set()
        self.connections_made = 0
        self.on_reconnected: list[Callable[[float], None]] = []
        self._lost_at: float | None = None        # when the connection was lost (trio side)

    # -- the trio side ------------------------------------------------------------------
    def _start(self) -> None:
        if self._closed:
            raise BusError("the transport is closed")
        if self._thread is None:
            self._token = trio.lowlevel.current_trio_token()
            self._thread = threading.Thread(target=self._run, name="novalite-amqp",
                                            daemon=True)
            self._thread.start()

    async def _wait_connected(self) -> int:
        self._start()
        if self._generation == 0:
            with trio.move_on_after(self.connect_wait):
                await self._connected.wait()
            if self._generation == 0:
                raise BusError(f"no connection to the broker at {self.url} "
                               f"within {self.connect_wait:g} s")
        return self._generation

    async def _submit(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(channel)`` in the I/O thread on the current connection; its result."""
        generation = await self._wait_connected()
        op = _Waiting()
        self._ops.add(op)
        token = self._token
        assert token is not None

        def in_io() -> None:
            try:
                if generation != self._io_generation:
                    raise BusError("the connection to the broker was lost")
                op.data = work(self._channel)
            except BaseException as exc:  # handed to the trio side
                op.error = exc
            try:
                token.run_sync_soon(op.done.set)
            except trio.RunFinishedError:
                pass

        try:
            try:
                self._conn.add_callback_threadsafe(in_io)
            except Exception:
                raise BusError("the connection to the broker was lost") from None
            await op.done.wait()
        finally:
            self._ops.discard(op)
        if op.error is not None:
            raise op.error
        return op.data

    async def _publish(self, topic: str, data: bytes,
                       properties: pika.BasicProperties | None) -> None:
        queue = self.prefix + topic
        delay = 0.01
        while True:
            def publish(channel: Any) -> None:
                channel.basic_publish("", queue, data, properties, mandatory=True)
            try:
                await self._submit(publish)
                return
            except pika.exceptions.UnroutableError:
                raise UnknownTopic(f"no actor listens on topic {topic}") from None
            except pika.exceptions.NackError:
                await trio.sleep(delay)  # the topic's queue is full: wait (backpressure)
                delay = min(delay * 2, 0.5)
            except (pika.exceptions.AMQPError, OSError) as exc:
                raise BusError(f"cannot send to topic {topic}: {type(exc).__name__}") \
                    from None

    async def listen(self, topic: str) -> trio.abc.ReceiveChannel[Incoming]:
        if topic in self._topics:
            raise BusError(f"topic {topic} already has a listener")
        send, receive = trio.open_memory_channel[tuple[Incoming, int, int]](math.inf)
        # Unbounded here, bounded by the broker: it hands out ``prefetch`` unacknowledged
        # messages per connection, and a message is acknowledged when taken.
        self._topics[topic] = send
        with self._lock:
            self._listening.append(topic)
        try:
            await self._submit(lambda channel: self._consume(channel, topic))
        except BaseException:
            del self._topics[topic]
            with self._lock:
                self._listening.remove(topic)
            raise
        return _Inbox(self, receive)

    async def cast(self, topic: str, data: bytes) -> None:
        metrics.RPC_MESSAGES.labels(topic, "cast").inc()
        await self._publish(topic, data, None)

    async def call(self, topic: str, data: bytes) -> bytes:
        call_id = f"{self.address}.{next(self._ids)}"
        waiting = self._pending[call_id] = _Waiting()
        metrics.RPC_MESSAGES.labels(topic, "call").inc()
        try:
            await self._publish(topic, data, pika.BasicProperties(
                correlation_id=call_id, reply_to=REPLY_TO))
            await waiting.done.wait()
        finally:
            self._pending.pop(call_id, None)
        if waiting.error is not None:
            raise waiting.error
        return bytes(waiting.data)

    async def reply(self, incoming: Incoming, data: bytes) -> None:
        if incoming.call_id is None or incoming.reply_to is None:
            raise ValueError("a cast has no caller to reply to")
        reply_to, call_id = incoming.reply_to, incoming.call_id

        def publish(channel: Any) -> None:  # unconfirmed: the caller's wait is the check
            self._reply_channel.basic_publish("", reply_to, data,
                                              pika.BasicProperties(correlation_id=call_id))
        try:
            await self._submit(publish)
        except BusError:
            raise
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BusError(f"cannot send a reply: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        self._closed = True
        topics, self._topics = self._topics, {}
        for inbox in topics.values():
            inbox.close()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            conn = self._conn
            if conn is not None:
                try:
                    conn.add_callback_threadsafe(self._close_connection)  # now, not in 1 s
                except Exception:
                    pass
            with trio.move_on_after(5):
                await trio.to_thread.run_sync(thread.join, abandon_on_cancel=True)

    def _ack(self, generation: int, tag: int) -> None:
        def ack() -> None:
            if generation == self._io_generation:
                self._channel.basic_ack(tag)
        try:
            self._conn.add_callback_threadsafe(ack)
        except Exception:
            pass  # the connection is gone: the broker requeues the message itself

    def _on_connected(self, generation: int) -> None:
        self._generation = generation
        self._connected.set()
        lost, self._lost_at = self._lost_at, None
        if lost is not None:
            for callback in list(self.on_reconnected):
                callback(lost)

    def _on_disconnected(self, generation: int) -> None:
        if self._lost_at is None and not self._closed:
            self._lost_at = time.time()
        if self._generation == generation:
            self._generation = 0
            self._connected = trio.Event()
        for op in list(self._ops):
            if not op.done.is_set():
                op.error = BusError("the connection to the broker was lost")
                op.done.set()
        for call_id, waiting in list(self._pending.items()):
            if not waiting.done.is_set():
                waiting.error = BusError(
                    f"the connection to the broker was lost while call {call_id} "
                    "waited for its reply")
                waiting.done.set()

    def _on_message(self, topic: str, generation: int, tag: int, incoming: Incoming) -> None:
        inbox = self._topics.get(topic)
        if inbox is not None:
            try:
                inbox.send_nowait((incoming, generation, tag))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

    def _on_reply(self, call_id: str, data: bytes) -> None:
        waiting = self._pending.get(call_id)
        if waiting is not None and not waiting.done.is_set():
            waiting.data = data
            waiting.done.set()

    # -- the I/O thread -----------------------------------------------------------------
    def _to_trio(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._token is not None
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            self._stop.set()

    def _consume(self, channel: Any, topic: str) -> None:
        if topic in self._consuming:
            return
        queue = self.prefix + topic
        channel.queue_declare(queue, arguments={
            "x-max-length": self.queue_length, "x-overflow": "reject-publish",
            "x-expires": int(QUEUE_EXPIRES * 1000)})
        generation = self._io_generation

        def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            self._to_trio(self._on_message, topic, generation, method.delivery_tag,
                          Incoming(body, properties.correlation_id, properties.reply_to))

        channel.basic_consume(queue, on_message)
        self._consuming.add(topic)

    def _connect(self, generation: int) -> None:
        conn = self._conn = pika.BlockingConnection(self.params)
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=self.prefetch)

        def on_reply(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            if properties.correlation_id:
                self._to_trio(self._on_reply, properties.correlation_id, body)

        channel.basic_consume(REPLY_TO, on_reply, auto_ack=True)
        self._reply_channel = conn.channel()
        self._channel = channel
        self._io_generation = generation
        self._consuming = set()
        with self._lock:
            topics = list(self._listening)
        for topic in topics:
            self._consume(channel, topic)

    def _run(self) -> None:
        delay = 0.5
        generation = 0
        where = {"broker": self.url}
        while not self._stop.is_set():
            generation += 1
            try:
                self._connect(generation)
            except Exception as exc:
                log.warning("broker unreachable", **where, error=type(exc).__name__,
                            retry_in=delay)
                self._close_connection()
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            self.connections_made += 1
            if generation > 1:
                log.info("broker connected", **where)
            self._to_trio(self._on_connected, generation)
            try:
                while not self._stop.is_set():
                    self._conn.process_data_events(time_limit=1)
                    if self._channel is None or not self._channel.is_open \
                            or not self._reply_channel.is_open:
                        raise BusError("the broker closed the channel")  # reconnect
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("broker connection lost", **where, error=type(exc).__name__)
            finally:
                self._io_generation = 0
                self._to_trio(self._on_disconnected, generation)
                self._close_connection()
        self._close_connection()

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._channel = self._reply_channel = None
        if conn is not None:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:
                pass


__all__ = ["PREFETCH", "QUEUE_EXPIRES", "REPLY_TO", "AmqpTransport", "connection_parameters", "safe_url"]
