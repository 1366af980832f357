"""http://169.254.169.254/ inside a container: a listener in its own network namespace.

The compute host gives each guest a relay socket (``NetworkInfo.metadata_socket``, a
UNIX socket that signs every request with the guest's uuid; see
:mod:`novalite.metadata.proxy`), and the driver connects the guest's TCP connections
to 169.254.169.254:80 to it (capability ``supports_metadata_socket``), as QEMU's
``guestfwd`` does for a QEMU guest on user-mode networking.

For a container that is: 169.254.169.254/32 on the container's ``lo`` (brought up),
and a TCP listener on 169.254.169.254:80 *created inside the container's network
namespace* by novalite (a short-lived thread ``setns``-es into it, makes the socket
and exits; the socket stays in that namespace). Each connection it accepts is spliced
to the guest's relay socket. The guest is identified by which namespace the
connection arrived in, which no process outside that namespace can reach - another
container cannot connect to it, nor forge it by its source address; and the host's
own 169.254.169.254 (if any) is not this one.

Why not the container's veth and a host listener: a container without a network
(``lxc.net.0.type = empty``, the default) has no veth, and a veth's source address
can be forged by its owner; the namespace cannot. Why in-process and not a relay
process (``socat``) in the namespace: nothing extra to reap, and nothing keeps a
stopped container's namespace alive.

A container's namespace changes when it restarts (reboot, stop/start), so
:class:`MetadataRelays` re-creates the listener after each start the driver makes,
and its watcher notices restarts the guest makes itself (its init's pid changes).
While novalite is down, the container's metadata is unreachable (as a QEMU guest's
is); on start, the driver adopts running containers and listens again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
import trio

log = structlog.get_logger("novalite.drivers.lxc.metadata")

ADDRESS = "169.254.169.254"
PORT = 80
CLONE_NEWNET = 0x40000000
IP_FREEBIND = 15
#: Bytes copied at once in either direction.
CHUNK = 65536
#: How often the watcher looks for containers that restarted on their own.
WATCH_INTERVAL = 1.0
#: How long the watcher keeps looking for a restarted container to be RUNNING again.
RESTART_GRACE = 30.0


class NamespaceError(OSError):
    """The container's network namespace could not be entered or configured."""


def netns_inode(pid: int) -> int | None:
    """The inode of process ``pid``'s network namespace, or None when it is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _listen_in(pid: int) -> tuple[socket.socket, int]:
    """In a fresh thread: enter ``pid``'s network namespace, make the listening socket.
    The thread ends right after, so no thread of ours is left in another namespace."""
    result: dict[str, object] = {}

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                inode = os.fstat(fd).st_ino
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise NamespaceError(err, f"setns into {pid}'s network: {os.strerror(err)}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
                sock.bind((ADDRESS, PORT))
                sock.listen(16)
                sock.set_inheritable(False)
            except BaseException:
                sock.close()
                raise
            result["socket"], result["inode"] = sock, inode
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work, name=f"netns-{pid}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["socket"], result["inode"]  # type: ignore[return-value]


async def configure_loopback(pid: int) -> None:
    """``lo`` up with 169.254.169.254/32 in ``pid``'s network namespace (idempotent)."""
    if shutil.which("nsenter") is None or shutil.which("ip") is None:
        raise NamespaceError("nsenter and ip (util-linux, iproute2) are needed")
    enter = ["nsenter", f"--net=/proc/{pid}/ns/net", "--", "ip"]
    for argv in (["link", "set", "lo", "up"],
                 ["addr", "replace", f"{ADDRESS}/32", "dev", "lo"]):  # replace: idempotent
        proc = await trio.run_process(enter + argv, check=False, capture_stdout=True,
                                      capture_stderr=True, stdin=b"")
        if proc.returncode != 0:
            raise NamespaceError(f"ip {' '.join(argv)} in {pid}'s namespace failed: "
                                 f"{proc.stderr.decode(errors='replace').strip()}")


@dataclass
class _Relay:
    uuid: str
    socket_path: str
    pid: int
    inode: int
    scope: trio.CancelScope
    listener: trio.socket.SocketType


#: Asked for a container's init pid: None when it is not RUNNING (or gone).
PidLookup = Callable[[str], Awaitable[int | None]]


class MetadataRelays:
    """The driver's metadata listeners, one per running container that has a relay
    socket; runs inside the driver's :meth:`~novalite.virt.driver.Driver.run`."""

    def __init__(self, pid_of: PidLookup) -> None:
        self._pid_of = pid_of
        self._relays: dict[str, _Relay] = {}
        #: Containers whose listener is gone with their namespace: uuid -> (socket, since).
        self._restarting: dict[str, tuple[str, float]] = {}
        self._nursery: trio.Nursery | None = None
        self._attaching = trio.Lock()

    @property
    def running(self) -> bool:
        return self._nursery is not None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Hold the listeners and watch for restarts until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    await trio.sleep(WATCH_INTERVAL)
                    try:
                        await self._watch()
                    except Exception:  # never take the driver down; try again later
                        log.exception("metadata watcher failed")
        finally:
            self._nursery = None
            self._relays.clear()
            self._restarting.clear()

    async def attach(self, uuid: str, socket_path: str, pid: int) -> None:
        """Listen on 169.254.169.254:80 in container ``uuid``'s namespace (init ``pid``)
        and relay to ``socket_path``; replaces an earlier listener. Logs and gives up
        (the guest then has no metadata service) when the namespace cannot be set up."""
        async with self._attaching:  # one listener per namespace, even when raced
            if self._nursery is None:
                return
            self.detach(uuid)
            try:
                await configure_loopback(pid)
                sock, inode = await trio.to_thread.run_sync(_listen_in, pid)
            except OSError as exc:
                log.warning("no metadata service for the container", uuid=uuid,
                            error=str(exc))
                return
            scope = trio.CancelScope()
            listener = trio.socket.from_stdlib_socket(sock)
            self._relays[uuid] = _Relay(uuid, socket_path, pid, inode, scope, listener)
            self._nursery.start_soon(self._serve, uuid, socket_path, listener, scope)
            log.debug("metadata listener in the container's namespace", uuid=uuid, pid=pid)

    def detach(self, uuid: str) -> None:
        """Stop the container's listener (it stops or goes away). Idempotent."""
        self._restarting.pop(uuid, None)
        relay = self._relays.pop(uuid, None)
        if relay is not None:
            relay.scope.cancel()
            relay.listener.close()  # now, so that a new listener can bind at once

    def listening(self, uuid: str) -> bool:
        return uuid in self._relays

    async def _watch(self) -> None:
        """Re-attach containers whose init changed (a restart the guest made itself)."""
        now = trio.current_time()
        for uuid, relay in list(self._relays.items()):
            if netns_inode(relay.pid) != relay.inode:
                self.detach(uuid)
                self._restarting[uuid] = (relay.socket_path, now)
        for uuid, (path, since) in list(self._restarting.items()):
            pid = await self._pid_of(uuid)
            if pid is not None and uuid in self._restarting:
                await self.attach(uuid, path, pid)
            elif now - since > RESTART_GRACE:
                self._restarting.pop(uuid, None)

    async def _serve(self, uuid: str, socket_path: str, listener_sock: trio.socket.SocketType,
                     scope: trio.CancelScope) -> None:
        with scope:
            try:
                listener = trio.SocketListener(listener_sock)
                async with listener, trio.open_nursery() as nursery:
                    while True:
                        try:
                            stream = await listener.accept()
                        except OSError as exc:  # e.g. EMFILE: back off, keep serving
                            log.warning("metadata accept failed", uuid=uuid, error=str(exc))
                            await trio.sleep(0.5)
                            continue
                        nursery.start_soon(self._splice, uuid, socket_path, stream)
            except trio.ClosedResourceError:
                return  # detached
            except Exception:  # one guest's relay never takes the others down
                log.exception("metadata listener failed", uuid=uuid)

    async def _splice(self, uuid: str, socket_path: str, guest: trio.SocketStream) -> None:
        async with guest:
            try:
                relay = await trio.open_unix_socket(socket_path)
            except OSError as exc:
                log.warning("the guest's metadata relay is not there", uuid=uuid,
                            error=str(exc))
                return
            async with relay, trio.open_nursery() as nursery:
                nursery.start_soon(_copy, guest, relay, nursery.cancel_scope)
                nursery.start_soon(_copy, relay, guest, nursery.cancel_scope)


async def _copy(source: trio.SocketStream, sink: trio.SocketStream,
                done: trio.CancelScope) -> None:
    """Copy until ``source`` ends, then half-close ``sink`` (the request or answer is
    complete); any error ends both directions."""
    try:
        while data := await source.receive_some(CHUNK):
            await sink.send_all(data)
        with contextlib.suppress(OSError, trio.ClosedResourceError):
            await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        done.cancel()
