"""The console proxy (nova-novncproxy and nova-serialproxy in one): a websocket
endpoint at ``/`` and noVNC's pages, served by ``novalite serve``.

By default it is served on the API's listener (``[vnc] novncproxy_port = 0``), so a
console URL looks like ``http://127.0.0.1:8774/vnc_lite.html?path=%3Ftoken%3D…``
(Nova's shape, on the API's port) and the serial one ``ws://127.0.0.1:8774/?token=…``;
with ``novncproxy_port = 6080`` the same application is also served on that port, as
Nova's own proxy. The token says which console it opens, so one endpoint serves both.

A websocket is refused (HTTP 403, before anything is proxied) when its token is
unknown, expired or its instance deleted (:func:`novalite.console.tokens.validate`),
or when its ``Origin`` header names another host than the one the browser asked
(``Host``) and is not in ``[console] allowed_origins``, or its scheme does not match
the token's base URL (Nova's ``websocketproxy`` rule: an ``ws``/``wss`` base also
accepts ``http``/``https``; ``X-Forwarded-Proto`` wins over the Origin's scheme). A
request without ``Origin`` is a non-browser client and is let through. The bytes
then go to the compute host's console relay (:mod:`novalite.console.relay`), never
straight to a guest. The websocket's ``binary`` subprotocol (websockify's) is
accepted when offered; frames sent to the client are binary, text frames from
clients (serial terminals) are taken as UTF-8.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from http.cookies import CookieError, SimpleCookie
from typing import Any

import structlog
import trio
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from novalite.config import Config
from novalite.console import relay, tokens
from novalite.db.engine import Database

log = structlog.get_logger("novalite.console")

#: Bytes read at once from the compute host's relay.
CHUNK = 65536
#: Policy violation: the close code of a refused websocket (HTTP 403 before accept).
REFUSED = 1008


def novnc_path(cfg: Config) -> str | None:
    """The directory holding noVNC (``vnc_lite.html``), or None when none is installed."""
    candidates = [cfg.vnc.novnc_path] if cfg.vnc.novnc_path else [
        os.path.join(sys.prefix, "share", "novnc"), "/usr/share/novnc"]
    for path in candidates:
        if os.path.isfile(os.path.join(path, "vnc_lite.html")):
            return path
    return None


def origin_refusal(headers: Any, access_url_base: str | None,
                   allowed_origins: list[str]) -> str | None:
    """Why Nova's proxy would refuse this request's ``Origin``, or None when it is fine."""
    origin_url = headers.get("origin")
    if origin_url is None:
        return None  # not a browser
    host = headers.get("host", "")
    expected = [urllib.parse.urlsplit(f"//{host}").hostname or host, *allowed_origins]
    origin = urllib.parse.urlsplit(origin_url)
    scheme = headers.get("x-forwarded-proto") or origin.scheme
    if not origin.hostname or not scheme:
        return "Origin header not valid."
    if origin.hostname not in expected:
        return "Origin header does not match this host."
    base_scheme = urllib.parse.urlsplit(access_url_base or "").scheme
    if not base_scheme:
        return "No access_url_base in connect_info. Cannot validate protocol"
    protos = [base_scheme] + {"ws": ["http"], "wss": ["https"]}.get(base_scheme, [])
    if scheme not in protos:
        return "Origin header protocol does not match this host."
    return None


def _token(websocket: WebSocket) -> str:
    token = websocket.query_params.get("token", "")
    if not token and (raw := websocket.headers.get("cookie")):
        for part in raw.split(";"):  # noVNC's convention: the token in a cookie
            try:
                cookie = SimpleCookie(part.strip())
            except CookieError:
                continue
            if "token" in cookie:
                token = cookie["token"].value
    return token


class ConsoleProxy:
    """The websocket endpoint; one per service."""

    def __init__(self, db: Database, cfg: Config) -> None:
        self.db = db
        self.cfg = cfg

    def routes(self) -> list[BaseRoute]:
        """``/`` (websocket) and, when installed, noVNC's files at the root."""
        out: list[BaseRoute] = [WebSocketRoute("/", self.endpoint)]
        path = novnc_path(self.cfg)
        if path is not None:
            out.append(Mount("/", StaticFiles(directory=path)))
        else:
            log.warning("noVNC is not installed; VNC console URLs will not load",
                        hint="./dev installs it, or set [vnc] novnc_path")
        return out

    async def endpoint(self, websocket: WebSocket) -> None:
        token = _token(websocket)
        row = await self.db.read(lambda s: tokens.validate(s, token))
        if row is None:
            log.info("console refused", reason="invalid or expired token")
            await websocket.close(code=REFUSED)
            return
        why = origin_refusal(websocket.headers, row.access_url_base,
                             self.cfg.console.allowed_origins)
        if why is not None:
            log.info("console refused", reason=why, instance=row.instance_uuid)
            await websocket.close(code=REFUSED)
            return
        try:
            stream, first = await relay.connect(row.host, int(row.port or 0), token)
        except (relay.RelayRefused, OSError, trio.TooSlowError) as exc:
            log.warning("console unavailable", instance=row.instance_uuid, error=str(exc))
            await websocket.close(code=REFUSED)
            return
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol="binary" if "binary" in offered else None)
        log.info("console connected", instance=row.instance_uuid,
                 console_type=row.console_type)
        async with stream:
            if first:
                await websocket.send_bytes(first)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._to_guest, websocket, stream, nursery.cancel_scope)
                nursery.start_soon(self._to_client, websocket, stream, nursery.cancel_scope)
        try:
            await websocket.close()
        except RuntimeError:
            pass  # the client closed first
        log.info("console disconnected", instance=row.instance_uuid)

    @staticmethod
    async def _to_guest(websocket: WebSocket, stream: trio.SocketStream,
                        scope: trio.CancelScope) -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode()
                await stream.send_all(data)
        except (WebSocketDisconnect, trio.BrokenResourceError, trio.ClosedResourceError,
                OSError, RuntimeError):
            pass
        scope.cancel()

    @staticmethod
    async def _to_client(websocket: WebSocket, stream: trio.SocketStream,
                         scope: trio.CancelScope) -> None:
        try:
            while data := await stream.receive_some(CHUNK):
                await websocket.send_bytes(data)
        except (WebSocketDisconnect, trio.BrokenResourceError, trio.ClosedResourceError,
                OSError, RuntimeError):
            pass
        scope.cancel()
