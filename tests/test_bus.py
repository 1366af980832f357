"""The bus: call/cast, remote errors, timeouts, plain data only, backpressure."""

from __future__ import annotations

import pytest
import trio

from novalite.bus import Bus, BusError, CallTimeout, Message, RemoteError


async def test_call_cast_errors_and_context() -> None:
    bus = Bus()
    seen: list[tuple[str, str]] = []

    async def handler(msg: Message) -> object:
        seen.append((msg.method, msg.request_id))
        if msg.method == "boom":
            raise ValueError("no such thing")
        if msg.method == "slow":
            await trio.sleep(5)
        return {"echo": msg.args}

    async with trio.open_nursery() as nursery:
        inbox = bus.register("conductor")
        nursery.start_soon(bus.serve, "conductor", inbox, handler)
        assert await bus.call("conductor", "echo", {"request_id": "req-1"}, x=[1, "a"]) == \
            {"echo": {"x": [1, "a"]}}
        with pytest.raises(RemoteError) as err:
            await bus.call("conductor", "boom")
        assert err.value.exc_type == "ValueError" and err.value.message == "no such thing"
        with pytest.raises(CallTimeout):
            await bus.call("conductor", "slow", timeout=0.05)
        with pytest.raises(BusError, match="not plain data"):
            await bus.cast("conductor", "echo", obj=object())
        await bus.cast("conductor", "echo", {"request_id": "req-2"})
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert ("echo", "req-1") in seen and ("echo", "req-2") in seen


async def test_full_inbox_applies_backpressure() -> None:
    bus = Bus(inbox_size=2)
    bus.register("compute.h1")  # nobody serves it
    await bus.cast("compute.h1", "x")
    await bus.cast("compute.h1", "x")
    with trio.move_on_after(0.1) as scope:
        await bus.cast("compute.h1", "x")
    assert scope.cancelled_caught
