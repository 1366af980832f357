"""The proxy's side of a compute host's console relay: the seam between the console
proxy and the host that owns the guest (DESIGN.md boundary 9).

A compute host runs a small TCP listener (``[vnc] server_listen``, a port chosen at
start; :mod:`novalite.compute.host.consoles`). When the API issues a console token it
asks the compute host over RPC to *grant* it: the host keeps the token's SHA-256,
the guest and the console kind until the token expires, and answers with the
listener's address, which is stored with the token. The proxy connects there,
sends one line, ``NOVALITE-CONSOLE <token>\\n``; the host hashes the token, finds the
grant and answers ``OK\\n`` (then raw console bytes both ways) or ``ERR <reason>\\n``
and closes. Nothing in between assumes one machine: a compute host elsewhere is
reached at its ``[vnc] server_proxyclient_address``; the token itself is the
credential, and neither side stores it in clear.
"""

from __future__ import annotations

import hashlib

import trio

#: The first line the proxy sends: this prefix, the token, a newline.
HELLO = b"NOVALITE-CONSOLE "
#: The longest first line either side accepts.
MAX_LINE = 512
#: Seconds either side waits for the other's first line.
HANDSHAKE_TIMEOUT = 10.0


class RelayRefused(Exception):
    """The compute host refused the connection (the message says why)."""


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a console token is stored and granted."""
    return hashlib.sha256(token.encode()).hexdigest()


async def read_line(stream: trio.abc.ReceiveStream) -> tuple[bytes, bytes]:
    """One ``\\n``-terminated line (without it) and whatever followed it in the same read.

    Raises :class:`RelayRefused` on EOF or a line longer than :data:`MAX_LINE`.
    """
    buf = bytearray()
    while b"\n" not in buf:
        if len(buf) > MAX_LINE:
            raise RelayRefused("handshake line too long")
        chunk = await stream.receive_some(MAX_LINE)
        if not chunk:
            raise RelayRefused("connection closed during the handshake")
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    return line, rest


async def connect(host: str, port: int, token: str) -> tuple[trio.SocketStream, bytes]:
    """Open the console behind ``token`` at the relay ``host:port``.

    Returns the stream (raw console bytes from now on) and the first of those bytes if
    they arrived with the answer. Raises :class:`RelayRefused` or OSError.
    """
    with trio.fail_after(HANDSHAKE_TIMEOUT):
        stream = await trio.open_tcp_stream(host, port)
        try:
            await stream.send_all(HELLO + token.encode() + b"\n")
            line, rest = await read_line(stream)
        except BaseException:
            await stream.aclose()
            raise
    if line != b"OK":
        await stream.aclose()
        raise RelayRefused(line.decode("utf-8", "replace").removeprefix("ERR ").strip())
    return stream, rest
