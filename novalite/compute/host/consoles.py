"""The compute host's console relay: where the console proxy reaches a guest's console.

The host owns the guest's end (a driver stream: QEMU's VNC UNIX socket, its serial
port, the fake driver's echo console); the proxy never touches it. Protocol and
rationale: :mod:`novalite.console.relay`. One relay serves every compute host of
the process (each grant names its host); it keeps grants in memory only: after a
restart, users ask for a new console URL, as after a token expiry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from novalite.console import relay as protocol
from novalite.virt.driver import Driver, DriverError

log = structlog.get_logger("novalite.compute.consoles")

#: Bytes read at once from either side of a relayed console.
CHUNK = 65536
#: Console kind -> the driver method that opens it.
OPENERS = {"novnc": "open_vnc_console", "serial": "open_serial_console"}


@dataclass(frozen=True)
class Grant:
    """What one token opens, until when."""

    host: str
    uuid: str
    console_type: str
    expires: float


class ConsoleRelay:
    """Grants console tokens and relays the proxy's connections to the drivers' streams."""

    def __init__(self, listen: str, proxyclient_address: str) -> None:
        self.listen = listen
        self.address = proxyclient_address
        self.port = 0
        self._drivers: dict[str, Driver] = {}
        self._grants: dict[str, Grant] = {}

    def add_host(self, host: str, driver: Driver) -> None:
        """Serve the consoles of ``host``'s guests through ``driver``."""
        self._drivers[host] = driver

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Listen (port chosen now) until cancelled."""
        listeners = await trio.open_tcp_listeners(0, host=self.listen)
        self.port = listeners[0].socket.getsockname()[1]
        log.info("console relay listening", address=f"{self.listen}:{self.port}")
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    def grant(self, host: str, uuid: str, console_type: str, token_hash: str,
              expires: float) -> dict[str, Any]:
        """Let the token whose SHA-256 is ``token_hash`` open this console until
        ``expires`` (Unix time); returns where the proxy connects."""
        now = time.time()
        for key in [k for k, g in self._grants.items() if g.expires <= now]:
            del self._grants[key]
        self._grants[token_hash] = Grant(host, uuid, console_type, expires)
        return {"host": self.address, "port": self.port}

    def revoke_instance(self, uuid: str) -> None:
        """Forget every grant of a guest (it is deleted, or moves away)."""
        for key in [k for k, g in self._grants.items() if g.uuid == uuid]:
            del self._grants[key]

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                with trio.fail_after(protocol.HANDSHAKE_TIMEOUT):
                    line, rest = await protocol.read_line(stream)
                grant = self._check(line)
                driver = self._drivers.get(grant.host)
                if driver is None:
                    raise protocol.RelayRefused(f"host {grant.host} is not served here")
                opener = getattr(driver, OPENERS[grant.console_type])
                console = await opener(grant.uuid)
            except (protocol.RelayRefused, DriverError) as exc:
                await _answer(stream, f"ERR {exc}".encode())
                return
            except (trio.TooSlowError, trio.BrokenResourceError, OSError):
                return
            log.info("console opened", instance=grant.uuid, console_type=grant.console_type)
            async with console:
                await stream.send_all(b"OK\n")
                if rest:
                    await console.send_all(rest)
                await splice(stream, console)
            log.info("console closed", instance=grant.uuid, console_type=grant.console_type)

    def _check(self, line: bytes) -> Grant:
        if not line.startswith(protocol.HELLO):
            raise protocol.RelayRefused("bad handshake")
        token = line[len(protocol.HELLO):].decode("ascii", "replace").strip()
        grant = self._grants.get(protocol.token_hash(token))
        if grant is None or grant.expires <= time.time():
            raise protocol.RelayRefused("unknown or expired console token")
        return grant


async def _answer(stream: trio.abc.SendStream, line: bytes) -> None:
    try:
        await stream.send_all(line.replace(b"\n", b" ") + b"\n")
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def splice(a: trio.abc.Stream, b: trio.abc.Stream) -> None:
    """Copy bytes both ways until either side ends; then both directions stop."""
    async def copy(src: trio.abc.Stream, dst: trio.abc.Stream, scope: trio.CancelScope
                   ) -> None:
        try:
            while data := await src.receive_some(CHUNK):
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, a, b, nursery.cancel_scope)
        nursery.start_soon(copy, b, a, nursery.cancel_scope)
