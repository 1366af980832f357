"""One dispatcher for every actor: a topic's messages to the endpoint's RPC methods.

An actor is an endpoint object; its methods marked :func:`method` are what its
topic answers, by name - nothing else is reachable over the bus. Each RPC method
is a coroutine that takes the request's
:class:`~novalite.context.RequestContext` first and the message's arguments by
keyword::

    class SchedulerManager:
        @rpc.method
        async def host_usage(self, ctx: RequestContext) -> dict[str, Any]: ...

        @rpc.method(name="release")          # a wire name of its own
        async def release_claim(self, ctx: RequestContext, instance_uuid: str) -> str | None:
            ...

    await nursery.start(Dispatcher("scheduler", manager).serve, transport)

For each message the dispatcher decodes it, binds ``request_id`` (and ``actor``,
the topic) in structlog's context variables so every log line of the handler
carries them, runs the method - concurrently with the topic's other messages,
at most ``max_concurrency`` at once - and, for a call, replies with the result or
the exception (:mod:`novalite.rpc.serializer`). A cast whose method raises is
logged.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

import structlog
import trio

from novalite.context import RequestContext
from novalite.rpc.errors import BusError, UnknownMethod
from novalite.rpc.serializer import decode, encode, error_payload
from novalite.rpc.transport import Incoming, Transport

log = structlog.get_logger("novalite.rpc")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_MARK = "__novalite_rpc_method__"


@overload
def method(fn: F, /) -> F: ...
@overload
def method(*, name: str | None = None) -> Callable[[F], F]: ...


def method(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Expose a coroutine method over the bus, under its own name or ``name``."""

    def mark(f: F) -> F:
        if not inspect.iscoroutinefunction(cast(Any, f)):
            raise TypeError(f"RPC method {f.__qualname__} must be a coroutine function")
        setattr(f, _MARK, name or f.__name__)
        return f

    return mark(fn) if fn is not None else mark


def rpc_methods(endpoint: object) -> dict[str, Callable[..., Awaitable[Any]]]:
    """The endpoint's RPC methods by wire name (bound)."""
    table: dict[str, Callable[..., Awaitable[Any]]] = {}
    for attr, fn in inspect.getmembers(type(endpoint), inspect.iscoroutinefunction):
        wire = getattr(fn, _MARK, None)
        if wire is None:
            continue
        if wire in table:
            raise TypeError(f"{type(endpoint).__name__} exposes {wire} twice")
        table[wire] = getattr(endpoint, attr)
    return table


class Dispatcher:
    """Serves one topic with an endpoint's :func:`method`-marked methods."""

    def __init__(self, topic: str, endpoint: object, *, max_concurrency: int = 256) -> None:
        self.topic = topic
        self.methods = rpc_methods(endpoint)
        self.max_concurrency = max_concurrency
        self._log: Any = log

    async def serve(self, transport: Transport, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the topic, report started, and handle its messages until the
        transport closes the inbox (or this task is cancelled)."""
        inbox = await transport.listen(self.topic)
        task_status.started()
        await self.serve_inbox(transport, inbox)

    async def serve_inbox(self, transport: Transport,
                          inbox: trio.abc.ReceiveChannel[Incoming]) -> None:
        """Handle the messages of ``inbox`` (what ``transport.listen(topic)`` returned)
        until it ends: for many topics at once, listen to each first, then serve."""
        limiter = trio.CapacityLimiter(self.max_concurrency)
        # Bound once logging is configured: a filtered-out debug line then costs nothing.
        self._log = log.bind()
        async with trio.open_nursery() as nursery:
            async for incoming in inbox:
                token = object()
                await limiter.acquire_on_behalf_of(token)
                nursery.start_soon(self._handle, transport, incoming, limiter, token)

    async def _handle(self, transport: Transport, incoming: Incoming,
                      limiter: trio.CapacityLimiter, token: object) -> None:
        name = "?"
        try:
            message = decode(incoming.data)
            name = message["method"]
            ctx = RequestContext.from_dict(message.get("context"))
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(request_id=ctx.request_id, actor=self.topic)
            handler = self.methods.get(name)
            if handler is None:
                raise UnknownMethod(f"{self.topic} has no method {name}")
            self._log.debug("rpc message", method=name, call=incoming.call_id is not None)
            result = await handler(ctx, **message.get("args", {}))
        except Exception as exc:
            if incoming.call_id is None:
                self._log.exception("cast failed", topic=self.topic, method=name)
            else:
                self._log.debug("call failed", topic=self.topic, method=name, error=str(exc))
                await transport.reply(incoming, encode(error_payload(exc)))
        else:
            if incoming.call_id is not None:
                try:
                    payload = encode({"result": result})
                except BusError as exc:
                    payload = encode(error_payload(exc))
                await transport.reply(incoming, payload)
        finally:
            limiter.release_on_behalf_of(token)


__all__ = ["Dispatcher", "method", "rpc_methods"]
