"""nova-api-metadata: the metadata service on its own listener (``[metadata]``, port 8775).

It answers only requests relayed by a compute host (:mod:`novalite.metadata.proxy`),
as Nova does with ``service_metadata_proxy``: each must carry ``X-Instance-ID``,
``X-Tenant-ID`` and ``X-Instance-ID-Signature`` (HMAC-SHA256 of the instance id with
``metadata_proxy_shared_secret``). Nova's answers otherwise: 400 when a header is
missing, 403 for a wrong signature, 404 when the instance does not exist or the
tenant is not the instance's. The content comes from :mod:`novalite.metadata.content`;
``/openstack/<version>/password`` takes the guest's one POST
(:mod:`novalite.metadata.password`).
"""

from __future__ import annotations

import hmac
import socket
from typing import Any

import structlog
import trio
from sqlmodel import Session, select

from novalite.db.engine import Database
from novalite.db.models import Instance, InstanceSystemMetadata
from novalite.metadata import content, password
from novalite.metadata.proxy import sign

log = structlog.get_logger("novalite.metadata")

Headers = list[tuple[bytes, bytes]]


def read_password(s: Session, uuid: str) -> str:
    """The password the guest of ``uuid`` posted ("" when none)."""
    rows = s.exec(select(InstanceSystemMetadata).where(
        InstanceSystemMetadata.instance_uuid == uuid,
        InstanceSystemMetadata.key.in_(password.KEYS))).all()  # type: ignore[attr-defined]
    return password.from_chunks({r.key: r.value for r in rows})


def write_password(s: Session, uuid: str, value: str) -> None:
    """Store ``value`` as the password of ``uuid`` (Nova's four 255-character items)."""
    rows = {r.key: r for r in s.exec(select(InstanceSystemMetadata).where(
        InstanceSystemMetadata.instance_uuid == uuid,
        InstanceSystemMetadata.key.in_(password.KEYS))).all()}  # type: ignore[attr-defined]
    for key, chunk in password.to_chunks(value).items():
        row = rows.get(key) or InstanceSystemMetadata(instance_uuid=uuid, key=key)
        row.value = chunk
        s.add(row)


def instance_data(s: Session, uuid: str, dhcp_domain: str) -> content.InstanceData | None:
    """The metadata of the live instance ``uuid``, or None."""
    inst = s.exec(select(Instance).where(Instance.uuid == uuid, Instance.deleted == 0)).first()
    if inst is None:
        return None
    return content.InstanceData(
        uuid=inst.uuid, name=inst.display_name, hostname=inst.hostname,
        project_id=inst.project_id, user_id=inst.user_id,
        availability_zone=inst.availability_zone or "", launch_index=inst.launch_index,
        reservation_id=inst.reservation_id, ec2_id=inst.id or 0, image_ref=inst.image_ref,
        flavor_name=str(inst.flavor.get("name", "")), key_name=inst.key_name,
        key_data=inst.key_data, user_data=inst.user_data, metadata=dict(inst.metadata_),
        addresses=tuple(inst.addresses), password=read_password(s, uuid),
        dhcp_domain=dhcp_domain)


class MetadataApp:
    """The ASGI application of the metadata listener."""

    def __init__(self, db: Database, shared_secret: str, dhcp_domain: str) -> None:
        self.db = db
        self.secret = shared_secret
        self.dhcp_domain = dhcp_domain

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > 65536:
                await _send(send, 413, b"Request is too large.")
                return
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        status, payload, content_type = await self.handle(
            scope["method"], scope["path"], headers, body)
        log.info("metadata request", method=scope["method"], path=scope["path"],
                 status=status, instance=headers.get("x-instance-id"),
                 remote=headers.get("x-forwarded-for"))
        await _send(send, status, payload if scope["method"] != "HEAD" else b"",
                    content_type)

    async def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
                     ) -> tuple[int, bytes, str]:
        """(status, body, content type) of one request (see the module docstring)."""
        uuid = headers.get("x-instance-id")
        tenant = headers.get("x-tenant-id")
        signature = headers.get("x-instance-id-signature", "")
        if not uuid:
            return 400, b"X-Instance-ID header is missing from request.", content.TEXT
        if not tenant:
            return 400, b"X-Tenant-ID header is missing from request.", content.TEXT
        if not hmac.compare_digest(sign(self.secret, uuid), signature):
            log.warning("metadata request with a bad signature", instance=uuid,
                        remote=headers.get("x-forwarded-for"))
            return 403, b"Invalid proxy request signature.", content.TEXT
        data = await self.db.read(lambda s: instance_data(s, uuid, self.dhcp_domain))
        if data is None or data.project_id != tenant:
            return 404, b"The resource could not be found.", content.TEXT
        try:
            item = content.lookup(data, path)
        except content.NotFound:
            return 404, b"The resource could not be found.", content.TEXT
        if item.password:
            if method == "POST":
                return await self._post_password(uuid, body)
            if method not in ("GET", "HEAD"):
                return 400, b"GET and POST only are supported.", content.TEXT
        elif method not in ("GET", "HEAD"):
            return 405, b"The method is not allowed for this resource.", content.TEXT
        return 200, item.body, item.content_type

    async def _post_password(self, uuid: str, body: bytes) -> tuple[int, bytes, str]:
        def work(s: Session) -> tuple[int, bytes, str]:
            try:
                value = password.check_post(read_password(s, uuid), body)
            except password.PasswordError as exc:
                return exc.status, str(exc).encode(), content.TEXT
            write_password(s, uuid, value)
            return 200, b"", content.TEXT

        return await self.db.write(work)


async def _send(send: Any, status: int, body: bytes, content_type: str = content.TEXT
                ) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", f"{content_type}; charset=UTF-8".encode()
                             if content_type == content.TEXT else content_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def bind(host: str, port: int) -> socket.socket:
    """The metadata listener's socket, bound (``port`` 0: any free port)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(infos[0][4])
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


async def serve(app: MetadataApp, sock: socket.socket, stopping: trio.Event, *,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on the bound ``sock`` (Hypercorn's trio worker) until ``stopping``;
    started with the listener's bind."""
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve as hypercorn_serve

    hc = HypercornConfig()
    hc.bind = [f"fd://{sock.detach()}"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 2.0
    hc.include_server_header = False
    await hypercorn_serve(app, hc, shutdown_trigger=stopping.wait,  # type: ignore[arg-type]
                          task_status=task_status)
