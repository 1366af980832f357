"""RPC: typed clients over a transport, one dispatcher, errors by type, the request context.

The conformance tests run on both transports: the in-memory one every actor of a
process shares, and AMQP to the local RabbitMQ (127.0.0.1:5672, guest/guest) in a
virtual host of this test run's own, deleted at the end. Where that broker cannot be
reached, the AMQP runs skip and say why.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import structlog
import trio

from novalite import rpc
from novalite.context import RequestContext
from novalite.exceptions import NoValidHost
from novalite.rpc import (
    BusError,
    CallTimeout,
    Dispatcher,
    MemoryTransport,
    RemoteError,
    RpcClient,
    SchedulerClient,
    UnknownMethod,
    UnknownTopic,
)
from novalite.rpc.serializer import decode, encode
from novalite.rpc.transport import Transport
from novalite.virt.driver import InstanceNotFound, SpawnFailed

BROKER = "guest:guest@127.0.0.1:5672"


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def rabbit_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this test run's own on the local broker; its URL."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: no local RabbitMQ")
    vhost = f"novalite-test-{uuid.uuid4().hex[:12]}"
    made = _rabbitmqctl("add_vhost", vhost)
    if made.returncode != 0:
        pytest.skip(f"the local RabbitMQ cannot be reached: {made.stderr.strip()[:200]}")
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"rabbit://{BROKER}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


MakeTransport = Callable[..., Transport]


@pytest.fixture(params=["memory", "amqp"])
async def make_transport(request: pytest.FixtureRequest) -> AsyncIterator[MakeTransport]:
    """Makes transports of one kind (``inbox_size`` as MemoryTransport's), closed after
    the test. Two made in one test are two processes on one bus."""
    made: list[Transport] = []
    if request.param == "memory":
        def make(inbox_size: int = rpc.memory.INBOX_SIZE) -> Transport:
            made.append(MemoryTransport(inbox_size))
            return made[-1]
    else:
        from novalite.rpc.amqp import AmqpTransport

        url = request.getfixturevalue("rabbit_vhost")
        prefix = f"{uuid.uuid4().hex[:8]}."  # queues of this test's own (the vhost goes at the end)

        def make(inbox_size: int = rpc.memory.INBOX_SIZE) -> Transport:
            made.append(AmqpTransport(url, prefix=prefix, inbox_size=inbox_size,
                                      connect_wait=10))
            return made[-1]
    try:
        yield make
    finally:
        for transport in made:
            await transport.aclose()


class Echo:
    """An endpoint with a bit of everything."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    @rpc.method
    async def echo(self, ctx: RequestContext, **args: Any) -> dict[str, Any]:
        bound = structlog.contextvars.get_contextvars()
        self.seen.append(("echo", ctx.request_id, bound.get("request_id", "")))
        return {"echo": args, "user": ctx.user_id, "roles": list(ctx.roles)}

    @rpc.method
    async def boom(self, ctx: RequestContext) -> None:
        raise ValueError("no such thing")

    @rpc.method
    async def no_host(self, ctx: RequestContext) -> None:
        raise NoValidHost("No valid host was found. 2 hosts removed")

    @rpc.method
    async def no_guest(self, ctx: RequestContext, uuid: str) -> None:
        raise InstanceNotFound(f"no guest {uuid}")

    @rpc.method(name="spawn")
    async def spawn_guest(self, ctx: RequestContext) -> None:
        raise SpawnFailed("out of disk")

    @rpc.method
    async def slow(self, ctx: RequestContext) -> None:
        await trio.sleep(5)

    @rpc.method
    async def opaque(self, ctx: RequestContext) -> object:
        return object()  # not plain data: the caller gets BusError, not a hang

    async def not_exposed(self, ctx: RequestContext) -> str:
        return "secret"


CTX = RequestContext("req-1", user_id="u1", project_id="p1", roles=("member",))


async def test_call_cast_errors_and_context(make_transport: MakeTransport) -> None:
    transport = make_transport()
    endpoint = Echo()
    client = RpcClient(transport, "conductor")
    async with trio.open_nursery() as nursery:
        await nursery.start(Dispatcher("conductor", endpoint).serve, transport)
        assert await client.call(CTX, "echo", {"x": [1, "a"]}) == \
            {"echo": {"x": [1, "a"]}, "user": "u1", "roles": ["member"]}
        with pytest.raises(RemoteError) as err:
            await client.call(CTX, "boom", {})
        assert err.value.exc_type == "ValueError" and err.value.message == "no such thing"
        with pytest.raises(CallTimeout):
            await client.call(CTX, "slow", {}, timeout=0.05)
        with pytest.raises(BusError, match="not plain data"):
            await client.cast(CTX, "echo", {"obj": object()})
        with pytest.raises(BusError, match="not plain data"):
            await client.call(CTX, "opaque", {})
        with pytest.raises(UnknownMethod):
            await client.call(CTX, "not_exposed", {})
        await client.cast(RequestContext.system("req-2"), "echo", {})
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    # The handler saw the sender's request id, and it was bound for its log lines.
    assert ("echo", "req-1", "req-1") in endpoint.seen
    assert ("echo", "req-2", "req-2") in endpoint.seen


async def test_novalite_exceptions_arrive_as_themselves(make_transport: MakeTransport) -> None:
    transport = make_transport()
    client = RpcClient(transport, "compute.h1")
    async with trio.open_nursery() as nursery:
        await nursery.start(Dispatcher("compute.h1", Echo()).serve, transport)
        with pytest.raises(NoValidHost) as no_host:
            await client.call(CTX, "no_host", {})
        assert no_host.value.message == "No valid host was found. 2 hosts removed"
        with pytest.raises(InstanceNotFound, match="no guest abc"):
            await client.call(CTX, "no_guest", {"uuid": "abc"})
        with pytest.raises(SpawnFailed, match="out of disk"):  # a wire name of its own
            await client.call(CTX, "spawn", {})
        nursery.cancel_scope.cancel()


async def test_a_remote_error_passed_on_keeps_its_type(make_transport: MakeTransport) -> None:
    """An actor that lets another's RemoteError through hands on the original type."""
    transport = make_transport()

    class Relay:
        @rpc.method
        async def relay(self, ctx: RequestContext) -> None:
            await RpcClient(transport, "inner").call(ctx, "boom", {})

    async with trio.open_nursery() as nursery:
        await nursery.start(Dispatcher("inner", Echo()).serve, transport)
        await nursery.start(Dispatcher("outer", Relay()).serve, transport)
        with pytest.raises(RemoteError) as err:
            await RpcClient(transport, "outer").call(CTX, "relay", {})
        assert (err.value.exc_type, err.value.message) == ("ValueError", "no such thing")
        nursery.cancel_scope.cancel()


async def test_unknown_topic(make_transport: MakeTransport) -> None:
    with pytest.raises(UnknownTopic):
        await SchedulerClient(make_transport()).host_usage(CTX)


async def test_call_ids_are_unique_across_transports(make_transport: MakeTransport) -> None:
    """Two transports (two processes) never make the same call id."""
    seen: list[str] = []
    transports = [make_transport(), make_transport()]
    async with trio.open_nursery() as nursery:
        for t in transports:
            inbox = await t.listen("scheduler")

            async def answer(t: Transport = t,
                             inbox: trio.abc.ReceiveChannel[rpc.Incoming] = inbox) -> None:
                async for incoming in inbox:
                    assert incoming.call_id is not None
                    seen.append(incoming.call_id)
                    await t.reply(incoming, encode({"result": None}))

            nursery.start_soon(answer)
        for t in transports:
            for _ in range(3):
                await t.call("scheduler", b"{}")
        nursery.cancel_scope.cancel()
    assert len(seen) == 6 and len(set(seen)) == 6


async def test_a_late_reply_is_dropped(make_transport: MakeTransport) -> None:
    transport = make_transport()
    inbox = await transport.listen("conductor")
    with trio.move_on_after(0.05):
        await transport.call("conductor", b"{}")
    with trio.fail_after(5):
        incoming = await inbox.receive()
    await transport.reply(incoming, b'{"result": 1}')  # the caller is gone: no error


async def test_full_inbox_applies_backpressure(make_transport: MakeTransport) -> None:
    transport = make_transport(inbox_size=2)
    await transport.listen("compute.h1")  # nobody serves it
    client = RpcClient(transport, "compute.h1")
    await client.cast(CTX, "x", {})
    await client.cast(CTX, "x", {})
    with trio.move_on_after(0.1) as scope:
        await client.cast(CTX, "x", {})
    assert scope.cancelled_caught


async def test_closing_the_transport_ends_the_dispatchers(make_transport: MakeTransport) -> None:
    transport = make_transport()
    async with trio.open_nursery() as nursery:
        await nursery.start(Dispatcher("scheduler", Echo()).serve, transport)
        await transport.aclose()
    # In one process the topic is gone; over a broker the transport itself is closed.
    with pytest.raises(UnknownTopic if isinstance(transport, MemoryTransport) else BusError):
        await transport.cast("scheduler", b"{}")


def test_messages_carry_the_context_as_plain_data() -> None:
    ctx = RequestContext("req-9", "u", "p", ("admin",), auth_token="tok")
    data = encode({"method": "m", "args": {}, "context": ctx.to_dict()})
    assert RequestContext.from_dict(decode(data)["context"]) == ctx


def test_endpoints_expose_only_marked_methods() -> None:
    from novalite.rpc.dispatcher import rpc_methods

    assert set(rpc_methods(Echo())) == {"echo", "boom", "no_host", "no_guest", "spawn",
                                        "slow", "opaque"}
    with pytest.raises(TypeError):
        rpc.method(lambda self, ctx: None)  # type: ignore[type-var]


# -- is a compute host alive? Its service heartbeat says, not a topic of this process -------
@pytest.mark.parametrize("down_time", [60.0, 2.0])
def test_a_server_whose_host_left_the_service_is_deleted(tmp_path: Any, down_time: float
                                                         ) -> None:
    """A host that left ``[compute] hosts`` is down once its heartbeat is older than
    ``service_down_time``: its servers are deleted by the API. Before that (it may just be
    restarting elsewhere) a delete that finds nobody serving its topic deletes them too."""
    import time

    from novalite.testing.server import start, wait_for
    from tests.helpers import boot, wait_status

    state = tmp_path / "state"
    config: dict[str, dict[str, Any]] = {"compute": {"hosts": ["leaving"],
                                                     "service_down_time": down_time}}
    srv = start(state, config=config)
    try:
        with srv.client() as c:
            sid = boot(c, "orphan")
            wait_status(c, sid, "ACTIVE")
    finally:
        srv.stop()
    if down_time < 60:
        time.sleep(down_time + 0.5)  # the heartbeat of "leaving" grows stale
    srv = start(state, config={"compute": {"hosts": ["staying"],
                                           "service_down_time": down_time}})
    try:
        with srv.client() as c:
            assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
            wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404)
            assert not [e for e in srv.log_events() if e.get("level") == "error"]
    finally:
        srv.stop()


def test_transport_urls() -> None:
    """oslo.messaging's URLs: rabbits:// is TLS with the broker's certificate verified,
    the default virtual host is "/", and the password stays out of what is logged."""
    import ssl

    from novalite.exceptions import ConfigError
    from novalite.rpc.amqp import connection_parameters, safe_url

    tls = connection_parameters("rabbits://nova:s3cret@broker.example:5671/nova")
    assert tls.ssl_options is not None and tls.port == 5671
    assert tls.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert tls.ssl_options.server_hostname == "broker.example"
    plain = connection_parameters("rabbit://nova:s3cret@broker.example:5672/")
    assert plain.ssl_options is None and plain.virtual_host == "/"
    assert plain.credentials.password == "s3cret"
    assert safe_url("rabbit://nova:s3cret@broker.example:5672/nova") == \
        "rabbit://nova@broker.example:5672/nova"
    with pytest.raises(ValueError, match="rabbit://"):
        connection_parameters("kafka://broker:9092")
    from novalite import config

    with pytest.raises(ConfigError, match="transport_url") as err:
        config.load(environ={"NOVALITE_DEFAULT__TRANSPORT_URL": "kafka://u:pw@b/"})
    assert "pw" not in err.value.message
