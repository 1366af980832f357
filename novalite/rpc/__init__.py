"""RPC between novalite's actors: typed clients above a transport line.

Layers, top to bottom::

    ConductorClient  SchedulerClient  ComputeClient(host)    what actors send (typed)
    RpcClient                                                call/cast on one topic
    serializer                                               plain data <-> bytes, errors
    Transport: MemoryTransport | AmqpTransport               bytes between topics
    Dispatcher + @rpc.method                                 what actors answer

An actor is served with ``Dispatcher(topic, endpoint).serve(transport)``; its
methods marked ``@rpc.method`` take a :class:`~novalite.context.RequestContext`
first. Every client method takes one too: the request id follows the work.

Example::

    transport = MemoryTransport()
    clients = Clients(transport)
    await nursery.start(Dispatcher("scheduler", scheduler).serve, transport)
    await clients.scheduler.release(ctx, instance_uuid)
    await clients.compute("host1").terminate_instance(ctx, instance_uuid)
"""

from __future__ import annotations

from novalite.rpc.client import DEFAULT_TIMEOUT, RpcClient, current_context
from novalite.rpc.compute import ComputeClient
from novalite.rpc.conductor import ConductorClient
from novalite.rpc.dispatcher import Dispatcher, method
from novalite.rpc.errors import BusError, CallTimeout, RemoteError, UnknownMethod, UnknownTopic
from novalite.rpc.memory import MemoryTransport
from novalite.rpc.scheduler import SchedulerClient
from novalite.rpc.transport import Incoming, Transport


def transport_for(url: str) -> Transport:
    """The transport ``[DEFAULT] transport_url`` names: empty for the in-memory transport
    (one process), ``rabbit://`` or ``rabbits://`` for AMQP to RabbitMQ
    (:mod:`novalite.rpc.amqp`)."""
    if not url:
        return MemoryTransport()
    from novalite.rpc.amqp import AmqpTransport

    return AmqpTransport(url)


class Clients:
    """The typed clients of every topic over one transport, for the compute API layer."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.conductor = ConductorClient(transport)
        self.scheduler = SchedulerClient(transport)

    def compute(self, host: str) -> ComputeClient:
        """The client of the compute host ``host``."""
        return ComputeClient(self.transport, host)


__all__ = ["DEFAULT_TIMEOUT", "BusError", "CallTimeout", "Clients", "ComputeClient",
           "ConductorClient", "Dispatcher", "Incoming", "MemoryTransport", "RemoteError",
           "RpcClient", "SchedulerClient", "Transport", "UnknownMethod", "UnknownTopic",
           "current_context", "method", "transport_for"]
