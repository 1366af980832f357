"""The transport contract: the line under the RPC clients.

Everything above this line - the typed clients (:mod:`novalite.rpc.conductor`,
:mod:`novalite.rpc.scheduler`, :mod:`novalite.rpc.compute`) and the one
:class:`~novalite.rpc.dispatcher.Dispatcher` every actor serves with - speaks
in encoded messages (``bytes``, made by :mod:`novalite.rpc.serializer`) and
topics (``conductor``, ``scheduler``, ``compute.<host>``). Everything below
it moves those bytes: :class:`~novalite.rpc.memory.MemoryTransport` between the
actors of one process, and a network transport (AMQP to RabbitMQ,
``[DEFAULT] transport_url``) between processes. A transport never looks inside
a message, and nothing above it knows which transport it runs on.

A transport has Nova's two verbs plus the two ends a server needs:

* :meth:`Transport.cast` - deliver bytes to a topic and return;
* :meth:`Transport.call` - deliver bytes to a topic and wait for the reply's bytes;
* :meth:`Transport.listen` - receive what is sent to a topic, as :class:`Incoming`;
* :meth:`Transport.reply` - answer an :class:`Incoming` call.

Rules every transport keeps:

* **Bounded inboxes.** What a topic has not consumed yet is bounded; a sender to a
  full inbox waits (backpressure) instead of the inbox growing without limit.
* **Unique call ids.** Each call gets an id unique across every process that shares
  the transport (not a per-process counter), and its reply reaches that call only.
* **Timeouts are the caller's cancel scope.** :meth:`Transport.call` waits as long
  as it is let; the RPC client wraps it in ``trio.move_on_after`` and raises
  :class:`~novalite.rpc.errors.CallTimeout`. A cancelled call is forgotten, and a
  reply that comes after is dropped.
* **Trio.** Every method runs under trio; blocking work goes to a thread.

Example, a whole round trip (what the clients and the dispatcher do)::

    transport = MemoryTransport()
    inbox = await transport.listen("scheduler")          # the actor's side
    ...
    async for incoming in inbox:
        answer = handle(incoming.data)
        if incoming.call_id is not None:
            await transport.reply(incoming, answer)
    ...
    reply = await transport.call("scheduler", request)   # a client's side
    await transport.cast("scheduler", note)
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import NamedTuple

import trio


class Incoming(NamedTuple):
    """One message as a listener receives it (a tuple: cheap to make, one per message).

    ``data`` is the encoded message, as the sender passed it. ``call_id`` is None
    for a cast; for a call it is the call's id and ``reply_to`` the address its
    reply goes to (the caller's transport; opaque to everything but the transport).
    """

    data: bytes
    call_id: str | None = None
    reply_to: str | None = None


class Transport(abc.ABC):
    """Moves encoded messages between topics; see the module's docstring for the rules."""

    #: Called in trio, with the ``time.time()`` the connection was lost, each time a
    #: transport between processes has its connection back: what was sent meanwhile may
    #: be lost (a broker restart), and a listener may reconcile. A transport within one
    #: process never loses a connection and never calls them.
    on_reconnected: list[Callable[[float], None]]

    @abc.abstractmethod
    async def listen(self, topic: str) -> trio.abc.ReceiveChannel[Incoming]:
        """Start receiving what is sent to ``topic``; return the topic's inbox.

        Must: create the topic's bounded inbox (from the moment this returns, sends
        to ``topic`` are accepted) and return its receiving end, which yields each
        message once, in the order it was sent by any one sender. The inbox ends
        (iteration stops) when the transport is closed (:meth:`aclose`).

        Returns: the receiving end of the inbox, of :class:`Incoming` messages.

        Raises: :class:`~novalite.rpc.errors.BusError` if this transport already
        listens on ``topic``.

        Example::

            inbox = await transport.listen("compute.host1")
            async for incoming in inbox:
                ...
        """

    @abc.abstractmethod
    async def cast(self, topic: str, data: bytes) -> None:
        """Deliver ``data`` to ``topic``'s inbox and return; no reply is expected.

        Must: put the message in the inbox, waiting while it is full (backpressure);
        a message that returned is delivered, unless the transport closes first.

        Returns: None once the message is in the inbox.

        Raises: :class:`~novalite.rpc.errors.UnknownTopic` when nobody listens on
        ``topic``; :class:`~novalite.rpc.errors.BusError` when the transport cannot
        carry the message (closed, connection lost).

        Example::

            await transport.cast("scheduler", encode({"method": "hosts_update", ...}))
        """

    @abc.abstractmethod
    async def call(self, topic: str, data: bytes) -> bytes:
        """Deliver ``data`` to ``topic`` as a call and wait for its reply.

        Must: give the call an id unique across processes and an address for its
        reply (the listener sees them as :attr:`Incoming.call_id` and
        :attr:`Incoming.reply_to`), deliver it as :meth:`cast` does, then wait for the
        bytes the listener passes to :meth:`reply`. It waits without limit: the
        caller bounds it with a cancel scope. When cancelled, it forgets the call
        (a late reply is dropped) and lets the cancellation through.

        Returns: the reply's bytes, exactly as the listener gave them.

        Raises: :class:`~novalite.rpc.errors.UnknownTopic` when nobody listens on
        ``topic``; :class:`~novalite.rpc.errors.BusError` when the transport cannot
        carry it.

        Example::

            with trio.move_on_after(30):
                reply = await transport.call("compute.host1", request)
        """

    @abc.abstractmethod
    async def reply(self, incoming: Incoming, data: bytes) -> None:
        """Send ``data`` as the reply to the call ``incoming``.

        Must: hand ``data`` to the one :meth:`call` waiting for ``incoming.call_id``
        (in this process or another). A caller that gave up (timed out, cancelled,
        gone) is not an error: the reply is dropped.

        Returns: None once the reply is on its way.

        Raises: :class:`ValueError` if ``incoming`` is a cast (it has no
        ``call_id``); :class:`~novalite.rpc.errors.BusError` when the transport cannot
        carry it.

        Example::

            await transport.reply(incoming, encode({"result": 42}))
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop: end every inbox this transport listens on and release its resources.

        Must: end the iteration of every inbox :meth:`listen` returned; calls waiting
        in this transport may stay waiting until their callers' timeouts. Closing
        twice is allowed.

        Returns: None. Raises: nothing.

        Example::

            try:
                ...
            finally:
                await transport.aclose()
        """


__all__ = ["Incoming", "Transport"]
