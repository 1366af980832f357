"""The sender the typed clients are built on: one topic, ``call`` and ``cast``.

Actors and the compute API never use it directly: they send through the typed
clients (:class:`~novalite.rpc.conductor.ConductorClient`,
:class:`~novalite.rpc.scheduler.SchedulerClient`,
:class:`~novalite.rpc.compute.ComputeClient`), whose methods name what they send.
"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from novalite.context import AuthContext, RequestContext
from novalite.rpc.errors import CallTimeout
from novalite.rpc.serializer import decode, encode, result_of
from novalite.rpc.transport import Transport

#: Seconds a call waits for its reply unless its client or method says otherwise.
DEFAULT_TIMEOUT = 60.0


class RpcClient:
    """Sends to one topic over a transport: Nova's ``call`` and ``cast``."""

    __slots__ = ("timeout", "topic", "transport")

    def __init__(self, transport: Transport, topic: str,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.transport = transport
        self.topic = topic
        self.timeout = timeout

    async def cast(self, ctx: RequestContext, method: str, args: dict[str, Any]) -> None:
        """Send ``method(ctx, **args)`` and return once it is delivered.

        Raises :class:`~novalite.rpc.errors.BusError` if ``args`` is not plain data,
        :class:`~novalite.rpc.errors.UnknownTopic` if nobody listens."""
        await self.transport.cast(self.topic, encode(
            {"method": method, "args": args, "context": ctx.to_dict()}))

    async def call(self, ctx: RequestContext, method: str, args: dict[str, Any],
                   timeout: float | None = None) -> Any:
        """Send ``method(ctx, **args)`` and return its result.

        Raises what the handler raised (novalite's own exception types as themselves,
        others as :class:`~novalite.rpc.errors.RemoteError`),
        :class:`~novalite.rpc.errors.CallTimeout` after ``timeout`` seconds (the
        client's own by default), :class:`~novalite.rpc.errors.BusError` if ``args``
        is not plain data, :class:`~novalite.rpc.errors.UnknownTopic` if nobody
        listens."""
        data = encode({"method": method, "args": args, "context": ctx.to_dict()})
        limit = self.timeout if timeout is None else timeout
        with trio.move_on_after(limit) as scope:
            reply = await self.transport.call(self.topic, data)
        if scope.cancelled_caught:
            raise CallTimeout(f"{self.topic}.{method} got no reply within {limit:g} s")
        return result_of(decode(reply))


def current_context(auth: AuthContext | None = None) -> RequestContext:
    """The :class:`RequestContext` of the request this task serves.

    Its request id is the one bound in structlog's context variables (the API binds
    it for each HTTP request, the dispatcher for each message); a fresh one if none
    is bound. With ``auth``, the context is the caller's; without, the service's own
    (:meth:`RequestContext.system`) under that request id.
    """
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if auth is not None and request_id:
        return RequestContext.from_auth(auth, str(request_id))
    if auth is not None:
        return RequestContext.from_auth(auth, RequestContext.system().request_id)
    return RequestContext.system(str(request_id) if request_id else None)


__all__ = ["DEFAULT_TIMEOUT", "RpcClient", "current_context"]
