"""Per-guest QMP event listeners, so power changes are noticed without polling.

The driver contract gives a driver no nursery of its own, so each listener runs as a
trio *system task* (``trio.lowlevel.spawn_system_task``) that catches everything it
raises; it lives until the guest's QEMU exits, :meth:`Watchers.stop` cancels it, or
the trio run ends. Each listener holds the guest's ``events.sock`` monitor (the
driver's commands use the separate ``qmp.sock``), turns QMP events into
:class:`LifecycleEvent` through a callback, and drains the serial console ring
buffer every ``drain_interval`` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from novalite.virt.driver import PowerState

from .qmp import QmpClient, QmpError

log = structlog.get_logger("novalite.drivers.qemu")

#: Called with (uuid, state, reason, client, wall-clock time of the event); client is
#: None once QEMU has exited.
EventHandler = Callable[
    [str, "PowerState | None", str, "QmpClient | None", float], Awaitable[None]
]
Drainer = Callable[[str, QmpClient], Awaitable[None]]
#: Called with the uuid when the guest was reset (it boots again from its firmware).
ResetHandler = Callable[[str], None]

_EVENT_STATES: dict[str, PowerState | None] = {
    "RESET": None,  # a reboot: still running (SeaBIOS resets again by itself after one)
    "RESUME": PowerState.RUNNING,
    "STOP": PowerState.PAUSED,
    "SHUTDOWN": None,  # reported when the process is gone (EOF), with this reason
    "POWERDOWN": None,  # ACPI button pressed: the guest decides; nothing changed yet
}


class Watchers:
    """The running listeners, one per guest uuid."""

    def __init__(self, on_event: EventHandler, drain: Drainer, drain_interval: float,
                 on_reset: ResetHandler | None = None) -> None:
        self._on_event = on_event
        self._on_reset = on_reset
        self._drain = drain
        self._interval = drain_interval
        self._scopes: dict[str, trio.CancelScope] = {}

    def start(self, uuid: str, directory: str) -> None:
        """Listen to guest ``uuid`` (replacing a previous listener)."""
        self.stop(uuid)
        scope = trio.CancelScope()
        self._scopes[uuid] = scope
        trio.lowlevel.spawn_system_task(
            self._run, uuid, os.path.join(directory, "events.sock"), scope,
            name=f"qemu-events-{uuid}",
        )

    def stop(self, uuid: str) -> None:
        """Stop listening to ``uuid`` (no event is emitted)."""
        scope = self._scopes.pop(uuid, None)
        if scope is not None:
            scope.cancel()

    def stop_all(self) -> None:
        for uuid in list(self._scopes):
            self.stop(uuid)

    def watching(self, uuid: str) -> bool:
        return uuid in self._scopes

    async def _run(self, uuid: str, path: str, scope: trio.CancelScope) -> None:
        try:
            with scope:
                await self._listen(uuid, path, scope)
        except Exception:  # a system task must never raise
            log.exception("QMP event listener failed", instance=uuid)
        finally:
            if self._scopes.get(uuid) is scope:
                del self._scopes[uuid]

    async def _listen(self, uuid: str, path: str, scope: trio.CancelScope) -> None:
        try:
            client = await QmpClient.connect(path, timeout=10.0)
        except QmpError as exc:
            log.warning("cannot listen to guest", instance=uuid, error=str(exc))
            return
        reason = "qemu process exited"
        async with client:
            try:
                while True:
                    event: dict[str, Any] | None = None
                    with trio.move_on_after(self._interval):
                        event = await client.next_event()
                    if event is not None:
                        name = str(event.get("event"))
                        if name == "RESET" and self._on_reset is not None:
                            self._on_reset(uuid)
                        if name == "SHUTDOWN":
                            data = event.get("data") or {}
                            reason = f"guest shut down ({data.get('reason', 'unknown')})"
                        if _EVENT_STATES.get(name) is not None:
                            stamp = event.get("timestamp") or {}
                            when = stamp.get("seconds", 0) + stamp.get("microseconds", 0) / 1e6
                            await self._on_event(uuid, _EVENT_STATES[name],
                                                 f"QMP event {name}", client, when)
                    await self._drain(uuid, client)
            except QmpError:
                pass  # QEMU closed the monitor: the process has exited
        if self._scopes.get(uuid) is scope:
            del self._scopes[uuid]  # ended: the handler may start a new listener
        await self._on_event(uuid, PowerState.SHUTDOWN, reason, None, time.time())
