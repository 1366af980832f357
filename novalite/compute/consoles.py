"""Remote consoles: the rules Nova's ``get_vnc_console``/``get_serial_console`` apply,
and console tokens (nova-consoleauth's role).

A console URL is issued in four steps: the server is looked up as its owner may see
it (another project's server is a 404); its state is checked (409 unless ACTIVE on
a host, as Nova); its compute host grants a fresh token (by hash) the guest's
console and says where its console relay listens; the token's hash is stored with
that address (:mod:`novalite.console.tokens`). The URL is Nova's shape:
``<novncproxy_base_url>?path=%3Ftoken%3D<token>`` for noVNC,
``<serial base_url>?token=<token>`` for the serial console.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from novalite import states
from novalite.config import Config
from novalite.console import tokens
from novalite.context import AuthContext
from novalite.exceptions import BadRequest, InstanceInvalidState, NotFound, NovaliteError
from novalite.rpc import Clients, RemoteError, current_context
from novalite.virt.driver import InstanceNotFound, NotSupported

if TYPE_CHECKING:
    from novalite.compute.api import ComputeAPI


class FeatureNotSupported(NovaliteError):
    """501, as Nova's ``raise_feature_not_supported``: the hypervisor has no such console."""

    code = 501
    title = "notImplemented"


#: (protocol, type) novalite serves -> the console kind a compute host opens.
SERVED = {("vnc", "novnc"): "novnc", ("serial", "serial"): "serial"}
#: Protocols Nova knows but novalite's hypervisors never offer.
UNAVAILABLE_PROTOCOLS = ("spice", "rdp", "mks")


def novnc_base_url(cfg: Config) -> str:
    return cfg.vnc.novncproxy_base_url or f"{cfg.console_proxy_url}/vnc_lite.html"


def serial_base_url(cfg: Config) -> str:
    if cfg.serial_console.base_url:
        return cfg.serial_console.base_url
    proxy = urllib.parse.urlsplit(cfg.console_proxy_url)
    scheme = "wss" if proxy.scheme == "https" else "ws"
    return f"{scheme}://{proxy.netloc}{proxy.path.rstrip('/')}/"


@dataclass
class ConsoleAPI:
    """Issues console URLs and shows tokens; built over the compute API layer."""

    compute: ComputeAPI

    @property
    def cfg(self) -> Config:
        return self.compute.cfg

    @property
    def rpc(self) -> Clients:
        return self.compute.rpc

    async def get_console(self, ctx: AuthContext, server_id: str, protocol: str,
                          console_type: str | None) -> str:
        """The URL of a fresh console of ``server_id``; raises Nova's errors."""
        inst = (await self.compute.get(ctx, server_id)).instance
        if protocol in UNAVAILABLE_PROTOCOLS:
            raise BadRequest(f"Unavailable console type {console_type or protocol}.")
        kind = SERVED.get((protocol, console_type or ""))
        if kind is None:
            raise BadRequest(f"Invalid console type {console_type}")
        if (kind == "novnc" and not self.cfg.vnc.enabled) or \
                (kind == "serial" and not self.cfg.serial_console.enabled):
            raise BadRequest(f"Unavailable console type {console_type}.")
        label = {"novnc": "get_vnc_console", "serial": "get_serial_console"}[kind]
        if not inst.host:
            raise InstanceInvalidState(f"Instance {inst.uuid} is not ready")
        if inst.task_state in (states.DELETING, "migrating"):
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid} while it is in "
                                       f"task_state {inst.task_state}")
        if inst.vm_state != states.ACTIVE:
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid} while it is in "
                                       f"vm_state {inst.vm_state}")
        capability = {"novnc": "supports_vnc_console", "serial": "supports_serial_console"}
        if not (await self.compute.host_capabilities(inst.host)).get(capability[kind]):
            raise FeatureNotSupported("The requested functionality is not supported.")
        token = tokens.new_token()
        ttl = self.cfg.consoleauth.token_ttl
        try:
            where = await self.rpc.compute(str(inst.host)).get_console(
                current_context(ctx), inst.uuid, kind, tokens.token_hash(token),
                time.time() + ttl)
        except NotSupported:
            raise FeatureNotSupported("The requested functionality is not supported.") from None
        except InstanceNotFound:
            raise InstanceInvalidState(f"Instance {inst.uuid} is not ready") from None
        except RemoteError as exc:
            raise InstanceInvalidState(f"Cannot '{label}' instance {inst.uuid}: "
                                       f"{exc.message}") from None
        base = novnc_base_url(self.cfg) if kind == "novnc" else serial_base_url(self.cfg)
        await self.compute.db.write(lambda s: tokens.add(
            s, token, instance_uuid=inst.uuid, compute_host=str(inst.host), console_type=kind,
            host=str(where["host"]), port=int(where["port"]), access_url_base=base, ttl=ttl))
        if kind == "novnc":
            return f"{base}?path=%3Ftoken%3D{token}"
        return f"{base}?token={token}"

    async def show_token(self, token: str) -> dict[str, Any]:
        """``GET /os-console-auth-tokens/{token}`` (admins): what the token opens."""
        row = await self.compute.db.read(lambda s: tokens.validate(s, token))
        if row is None:
            raise NotFound("Token not found")
        return {"instance_uuid": row.instance_uuid, "host": row.host, "port": row.port,
                "internal_access_path": row.internal_access_path}


_APIS: dict[int, ConsoleAPI] = {}


def console_api(compute: ComputeAPI) -> ConsoleAPI:
    """The ConsoleAPI over ``compute`` (one per compute API object)."""
    api = _APIS.get(id(compute))
    if api is None or api.compute is not compute:
        api = _APIS[id(compute)] = ConsoleAPI(compute)
    return api
