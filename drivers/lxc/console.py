"""An interactive session on a container's console (``/dev/console``), contract 1.3.

LXC gives every container a pty pair for its ``/dev/console``; the container's
``lxc monitor`` holds the master end, writes everything to ``lxc.console.logfile``
(the console log) and lets one client at a time attach through its command socket,
which is what ``lxc-console -t 0`` does. A session here is that client, run on a pty
novalite allocates (``lxc-console`` refuses a stdin that is not a terminal): bytes
sent go to the pty's master and reach the container's console; what the container
writes there comes back from the master.

Why ``lxc-console`` rather than a pty of novalite's as ``lxc.console.path``: the
monitor keeps owning the console, so it works for any running container - one
started before novalite, adopted after a restart - and the console log keeps
recording, while no session is open too; a pty of novalite's as the console would
be tied to one novalite process and lost with it. The alternative of speaking LXC's
command-socket protocol directly (to receive the console's fd) would copy LXC
internals that change between releases; ``lxc-console`` is its supported client.

``lxc-console`` interprets its escape key (``-e``, Ctrl-a here) followed by ``q``
as "detach"; the session doubles every Ctrl-a it sends, which ``lxc-console``
passes on as one Ctrl-a, so the stream is transparent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import struct
import subprocess
import termios

import structlog
import trio

from novalite.virt.driver import DriverError

log = structlog.get_logger("novalite.drivers.lxc.console")

ESCAPE = b"\x01"
"""``lxc-console``'s escape key (Ctrl-a, its default); doubled on the way in."""

#: How long ``lxc-console`` may take to attach (or to refuse) before the session opens.
ATTACH_TIMEOUT = 5.0
#: ``lxc-console``'s answer when another client holds the console.
IN_USE = "Denied access to tty"
#: Quiet time after the last input before detaching: LXC 5.0's monitor stops the
#: container when a console client leaves while its input is still being relayed.
SETTLE = 0.3
#: Longest wait for the input to drain before detaching anyway.
DRAIN_TIMEOUT = 2.0


class ConsoleSession(trio.abc.Stream):
    """One ``lxc-console -t 0`` client on a pty; ``aclose`` detaches it."""

    def __init__(self, uuid: str, process: trio.Process, master: int, slave_path: str
                 ) -> None:
        self.uuid = uuid
        self._process = process
        self._stream = trio.lowlevel.FdStream(master)
        #: lxc-console's terminal, opened briefly to see its unread input (holding it
        #: open would hide lxc-console's exit from our reads of the master).
        self._slave_path = slave_path
        self._send_lock = trio.StrictFIFOLock()
        self._last_input = trio.current_time()

    @classmethod
    async def open(cls, lxc_path: str, uuid: str) -> ConsoleSession:
        """Attach to container ``uuid``'s console; :class:`DriverError` when it is in use
        or LXC refuses."""
        master, slave = pty.openpty()
        slave_path = os.ttyname(slave)
        # Raw on our side too: no echo or line editing between the websocket and LXC.
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        argv = ["lxc-console", "-P", lxc_path, "-n", uuid, "-t", "0", "-e", "^a"]
        try:
            process = await trio.lowlevel.open_process(
                argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                start_new_session=True, env={**os.environ, "LC_ALL": "C", "TERM": "vt100"})
        except OSError as exc:
            os.close(master)
            raise DriverError(f"cannot run lxc-console: {exc}") from None
        finally:
            os.close(slave)
        # lxc-console either stays attached or exits at once with its reason.
        assert process.stderr is not None
        stderr = b""
        with trio.move_on_after(ATTACH_TIMEOUT):
            async for chunk in process.stderr:
                stderr += chunk
                if b"Connected to tty" in stderr:
                    break
        if b"Connected to tty" not in stderr or process.poll() is not None:
            if not await _exited(process, 1.0):
                process.kill()
                await process.wait()
            await process.stderr.aclose()
            os.close(master)
            text = stderr.decode(errors="replace").strip()
            if IN_USE in text:
                raise DriverError(f"the console of container {uuid} is in use")
            raise DriverError(f"cannot attach to the console of container {uuid}: "
                              f"{text.splitlines()[-1] if text else 'lxc-console exited'}")
        return cls(uuid, process, master, slave_path)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._send_lock:
            await self._stream.send_all(bytes(data).replace(ESCAPE, ESCAPE + ESCAPE))
            self._last_input = trio.current_time()

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            return await self._stream.receive_some(max_bytes)
        except trio.BrokenResourceError:  # EIO: lxc-console went away (container stopped)
            return b""

    async def aclose(self) -> None:
        """Detach (escape, ``q``), then make sure ``lxc-console`` is gone; the container
        and its console log are untouched."""
        with trio.CancelScope(shield=True):
            await self._settle()
            if self._process.poll() is None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError,
                                         trio.BusyResourceError):
                    with trio.move_on_after(1):
                        await self._stream.send_all(ESCAPE + b"q")
                if not await _exited(self._process, 1.0):
                    self._process.terminate()
                    if not await _exited(self._process, 2.0):
                        self._process.kill()
                        await self._process.wait()
            await self._stream.aclose()
            if self._process.stderr is not None:
                await self._process.stderr.aclose()
        log.debug("console session closed", uuid=self.uuid)


    async def _settle(self) -> None:
        """Wait until lxc-console has read our input and it had time to reach LXC."""
        with trio.move_on_after(DRAIN_TIMEOUT):
            while self._process.poll() is None and _unread(self._slave_path) > 0:
                await trio.sleep(0.02)
            await trio.sleep_until(self._last_input + SETTLE)


def _unread(path: str) -> int:
    """Bytes waiting in terminal ``path``'s input queue."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0
    finally:
        os.close(fd)


async def _exited(process: trio.Process, timeout: float) -> bool:
    """Whether ``process`` exits within ``timeout`` seconds (reaped then)."""
    with trio.move_on_after(timeout):
        await process.wait()
        return True
    return False
