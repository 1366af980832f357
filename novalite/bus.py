"""The message bus: Nova's RPC verbs over in-process channels.

Topics are ``conductor``, ``scheduler`` and ``compute.<host>``. An actor
registers a topic and receives :class:`Message` objects from a bounded inbox;
senders use :meth:`Bus.call` (request and wait for the reply, with a timeout)
or :meth:`Bus.cast` (fire and forget). A full inbox blocks the sender:
backpressure, never unbounded growth.

Everything that crosses the bus is plain data. Each message is encoded to
JSON bytes by the sender and decoded by the receiver - the very serializer a
network transport (AMQP) would use - so a non-serializable argument fails at
the sender, under test and in production alike.

Example::

    bus = Bus()
    inbox = bus.register("scheduler")
    ...
    reply = await bus.call("scheduler", "select_destinations", spec=spec, timeout=30)
    await bus.cast("compute.host1", "build_and_run", instance=inst)

A handler that raises makes :meth:`Bus.call` raise :class:`RemoteError`, whose
``exc_type`` and ``message`` name the remote exception.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
import trio

log = structlog.get_logger("novalite.bus")

DEFAULT_TIMEOUT = 60.0
INBOX_SIZE = 1024


class BusError(Exception):
    """The bus could not deliver a message."""


class UnknownTopic(BusError):
    """Nobody listens on that topic."""


class CallTimeout(BusError):
    """A call got no reply in time."""


class RemoteError(Exception):
    """The handler of a call raised; ``exc_type`` and ``message`` say what it raised."""

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


#: orjson, held close to plain JSON: datetimes, dataclasses, subclasses of the JSON
#: types and non-string keys are refused rather than converted on the way (a UUID
#: object still passes as its string, and NaN as null).
_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
           | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _refuse(value: Any) -> Any:
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def encode(payload: dict[str, Any]) -> bytes:
    """Serialize a message; fails on anything that is not plain data."""
    try:
        return orjson.dumps(payload, default=_refuse, option=_STRICT)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise BusError(f"message is not plain data: {exc}") from None


def decode(data: bytes) -> dict[str, Any]:
    return orjson.loads(data)  # type: ignore[no-any-return]


@dataclass
class Message:
    """One delivered message: ``method``, keyword ``args`` and the request ``context``."""

    topic: str
    method: str
    args: dict[str, Any]
    context: dict[str, Any]
    reply_id: int | None = None

    @property
    def request_id(self) -> str:
        return self.context.get("request_id", "")


class _Waiting:
    """A call waiting for its reply (lighter than a memory channel per call)."""

    __slots__ = ("data", "done")

    def __init__(self) -> None:
        self.data = b""
        self.done = trio.Event()


@dataclass
class _Topic:
    send: trio.MemorySendChannel[bytes]
    receive: trio.MemoryReceiveChannel[bytes]


@dataclass
class Bus:
    """In-process transport with Nova's ``call`` and ``cast``."""

    inbox_size: int = INBOX_SIZE
    _topics: dict[str, _Topic] = field(default_factory=dict)
    _pending: dict[int, _Waiting] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def register(self, topic: str) -> trio.MemoryReceiveChannel[bytes]:
        """Create ``topic``'s inbox and return its receiving end (raw encoded messages)."""
        if topic in self._topics:
            raise BusError(f"topic {topic} is already registered")
        send, receive = trio.open_memory_channel[bytes](self.inbox_size)
        self._topics[topic] = _Topic(send, receive)
        return receive

    def unregister(self, topic: str) -> None:
        t = self._topics.pop(topic, None)
        if t is not None:
            t.send.close()

    def has_topic(self, topic: str) -> bool:
        return topic in self._topics

    async def _deliver(self, topic: str, payload: dict[str, Any]) -> None:
        data = encode(payload)
        try:
            t = self._topics[topic]
        except KeyError:
            raise UnknownTopic(f"no actor listens on topic {topic}") from None
        await t.send.send(data)

    async def cast(self, topic: str, method: str, context: dict[str, Any] | None = None,
                   **args: Any) -> None:
        """Send ``method(**args)`` to ``topic`` and return at once."""
        await self._deliver(topic, {"method": method, "args": args, "context": context or {}})

    async def call(self, topic: str, method: str, context: dict[str, Any] | None = None,
                   timeout: float = DEFAULT_TIMEOUT, **args: Any) -> Any:
        """Send ``method(**args)`` to ``topic`` and return its result.

        Raises :class:`RemoteError` if the handler raised, :class:`CallTimeout`
        after ``timeout`` seconds, :class:`UnknownTopic` if nobody listens.
        """
        reply_id = next(self._ids)
        waiting = self._pending[reply_id] = _Waiting()
        try:
            with trio.move_on_after(timeout) as scope:
                await self._deliver(
                    topic,
                    {"method": method, "args": args, "context": context or {},
                     "reply_id": reply_id},
                )
                await waiting.done.wait()
            if scope.cancelled_caught:
                raise CallTimeout(f"{topic}.{method} got no reply within {timeout:g} s")
        finally:
            self._pending.pop(reply_id, None)
        reply = decode(waiting.data)
        if "error" in reply:
            raise RemoteError(reply["error"]["type"], reply["error"]["message"])
        return reply["result"]

    def _reply(self, reply_id: int, data: bytes) -> None:
        """Hand the encoded reply to its caller (gone if it timed out)."""
        waiting = self._pending.get(reply_id)
        if waiting is not None and not waiting.done.is_set():
            waiting.data = data
            waiting.done.set()

    async def serve(
        self,
        topic: str,
        inbox: trio.MemoryReceiveChannel[bytes],
        handler: Callable[[Message], Awaitable[Any]],
        max_concurrency: int = 256,
    ) -> None:
        """Run ``handler`` for every message of ``inbox``, concurrently, until it closes.

        The handler's return value (plain data) is the call's reply; an exception
        becomes a :class:`RemoteError` at the caller (and is logged for casts).
        """
        limiter = trio.CapacityLimiter(max_concurrency)

        async def handle(msg: Message, token: object) -> None:
            structlog.contextvars.clear_contextvars()
            if msg.request_id:
                structlog.contextvars.bind_contextvars(request_id=msg.request_id)
            try:
                result = await handler(msg)
            except Exception as exc:
                if msg.reply_id is None:
                    log.exception("cast failed", topic=topic, method=msg.method)
                else:
                    log.debug("call failed", topic=topic, method=msg.method, error=str(exc))
                    self._reply(msg.reply_id, encode({"error": {
                        "type": type(exc).__name__, "message": str(exc)}}))
            else:
                if msg.reply_id is not None:
                    try:
                        payload = encode({"result": result})
                    except BusError as exc:
                        payload = encode({"error": {"type": "BusError", "message": str(exc)}})
                    self._reply(msg.reply_id, payload)
            finally:
                limiter.release_on_behalf_of(token)

        async with trio.open_nursery() as nursery:
            async for data in inbox:
                raw = decode(data)
                msg = Message(topic, raw["method"], raw.get("args", {}), raw.get("context", {}),
                              raw.get("reply_id"))
                token = object()
                await limiter.acquire_on_behalf_of(token)
                nursery.start_soon(handle, msg, token)
