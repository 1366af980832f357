"""The in-memory transport: every actor in one process, topics as bounded memory channels.

This is the default transport and the one every test runs on. Messages cross it
as the encoded bytes the serializer made, exactly as they would cross a network,
so anything that is not plain data fails at the sender here too.

A call waits on a :class:`trio.Event` of its own (lighter than a channel per call);
its id is this transport's random prefix and a counter, unique across processes.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

import trio

from novalite import metrics
from novalite.rpc.errors import BusError, UnknownTopic
from novalite.rpc.transport import Incoming, Transport

#: Messages a topic holds before its senders wait.
INBOX_SIZE = 1024


class _Waiting:
    """A call waiting for its reply."""

    __slots__ = ("data", "done")

    def __init__(self) -> None:
        self.data = b""
        self.done = trio.Event()


class MemoryTransport(Transport):
    """:class:`~novalite.rpc.transport.Transport` between the tasks of one trio run."""

    def __init__(self, inbox_size: int = INBOX_SIZE) -> None:
        self.inbox_size = inbox_size
        #: This transport's reply address; the prefix of every call id it makes.
        self.address = f"memory.{uuid.uuid4().hex}"
        self._topics: dict[str, trio.MemorySendChannel[Incoming]] = {}
        self._pending: dict[str, _Waiting] = {}
        self._ids = itertools.count(1)
        self.on_reconnected: list[Callable[[float], None]] = []  # never called: one process
        metrics.watch_inboxes(self.inbox_depths)

    def inbox_depths(self) -> dict[str, int]:
        """Messages waiting in each topic's inbox (exported as a metric)."""
        return {topic: inbox.statistics().current_buffer_used
                for topic, inbox in self._topics.items()}

    async def listen(self, topic: str) -> trio.MemoryReceiveChannel[Incoming]:
        if topic in self._topics:
            raise BusError(f"topic {topic} already has a listener")
        send, receive = trio.open_memory_channel[Incoming](self.inbox_size)
        self._topics[topic] = send
        return receive

    async def _deliver(self, topic: str, incoming: Incoming) -> None:
        try:
            inbox = self._topics[topic]
        except KeyError:
            raise UnknownTopic(f"no actor listens on topic {topic}") from None
        try:
            await inbox.send(incoming)
        except trio.ClosedResourceError:
            raise BusError(f"the transport is closed (topic {topic})") from None

    async def cast(self, topic: str, data: bytes) -> None:
        metrics.RPC_MESSAGES.labels(topic, "cast").inc()
        await self._deliver(topic, Incoming(data))

    async def call(self, topic: str, data: bytes) -> bytes:
        call_id = f"{self.address}.{next(self._ids)}"
        waiting = self._pending[call_id] = _Waiting()
        metrics.RPC_MESSAGES.labels(topic, "call").inc()
        try:
            await self._deliver(topic, Incoming(data, call_id, self.address))
            await waiting.done.wait()
        finally:
            self._pending.pop(call_id, None)
        return waiting.data

    async def reply(self, incoming: Incoming, data: bytes) -> None:
        if incoming.call_id is None:
            raise ValueError("a cast has no caller to reply to")
        waiting = self._pending.get(incoming.call_id)
        if waiting is not None and not waiting.done.is_set():
            waiting.data = data
            waiting.done.set()

    async def aclose(self) -> None:
        topics, self._topics = self._topics, {}
        for inbox in topics.values():
            inbox.close()


__all__ = ["INBOX_SIZE", "MemoryTransport"]
