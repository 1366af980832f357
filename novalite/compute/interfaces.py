"""Network interfaces added to and removed from a server (Nova's ``os-interface``
attach and detach, ``compute/api.py`` ``attach_interface``/``detach_interface``).

Attach binds a port to the server (the caller's, or a new one on the network asked
for, else the default network) in one write, then asks the server's compute host to
give the guest a NIC for it (a call: the answer comes when the guest has it: QEMU
hot-plug, ``drivers.qemu.nics``); a refusal undoes the port. Detach asks the host to
remove the NIC first (the guest lets it go), then frees the port (deleted when Nova
made it). Servers in ACTIVE, PAUSED or STOPPED with no task, as Nova allows; an
attach to a host whose driver cannot is Nova's 400 (AttachInterfaceNotSupported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from novalite import states
from novalite.context import AuthContext
from novalite.exceptions import BadRequest, Conflict, InstanceInvalidState, NotFound
from novalite.rpc import current_context
from novalite.virt.driver import DriverError
from novalite.volume.attachments import host_refusal

if TYPE_CHECKING:
    from novalite.compute.api import ComputeAPI

#: The vm_states in which Nova attaches and detaches interfaces (task_state None).
INTERFACE_STATES = (states.ACTIVE, states.PAUSED, states.STOPPED)


async def _server(compute: ComputeAPI, ctx: AuthContext, server_id: str, action: str
                  ) -> Any:
    inst = (await compute.get(ctx, server_id)).instance
    compute._check_lock(ctx, inst)
    if inst.vm_state not in INTERFACE_STATES or inst.task_state is not None:
        state = ("task_state", inst.task_state) if inst.task_state is not None else \
            ("vm_state", inst.vm_state)
        raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid} while it is in "
                                   f"{state[0]} {state[1]}")
    if not inst.host:
        raise InstanceInvalidState(f"Cannot '{action}' instance {inst.uuid}: it has no host")
    caps = await compute.host_capabilities(inst.host)
    if not caps.get("supports_attach_interface"):
        if action == "attach_interface":  # Nova's AttachInterfaceNotSupported
            raise BadRequest(f"Attaching interfaces is not supported for instance "
                             f"{inst.uuid}.")
        raise Conflict(f"Network interfaces cannot be detached from instance {inst.uuid}: "
                       f"hot-plugging is not supported by this hypervisor (host "
                       f"{inst.host}).")
    return inst


async def attach(compute: ComputeAPI, ctx: AuthContext, server_id: str,
                 net_id: str | None, port_id: str | None, fixed_ip: str | None
                 ) -> dict[str, Any]:
    """Attach an interface; returns the server's port as Neutron shows it."""
    inst = await _server(compute, ctx, server_id, "attach_interface")
    port, addresses = await compute.network.attach_port(
        ctx, inst, net_id, port_id, fixed_ip, compute.cfg.network.name)
    try:
        if not addresses:
            raise DriverError(f"port {port} has no fixed IP to give the guest")
        await compute.rpc.compute(str(inst.host)).attach_interface(
            current_context(ctx), inst.uuid, inst.hostname or inst.name, addresses[0])
    except BaseException as exc:
        with trio.CancelScope(shield=True):
            await compute.network.detach_port(ctx, inst.uuid, port)
        raise host_refusal(exc, inst, "attach_interface") from None
    for shown in await compute.network.server_ports(ctx, inst.uuid):
        if shown["id"] == port:
            return shown
    raise NotFound(f"Port {port} could not be found.")  # deleted meanwhile


async def detach(compute: ComputeAPI, ctx: AuthContext, server_id: str, port_id: str
                 ) -> None:
    """Detach the server's interface of ``port_id`` (404 when it has none)."""
    inst = (await compute.get(ctx, server_id)).instance
    address = next((a for a in inst.addresses or [] if a.get("port_id") == port_id), None)
    if address is None:
        raise NotFound(f"Port {port_id} is not attached")
    inst = await _server(compute, ctx, server_id, "detach_interface")
    try:
        await compute.rpc.compute(str(inst.host)).detach_interface(
            current_context(ctx), inst.uuid, address)
    except BaseException as exc:
        raise host_refusal(exc, inst, "detach_interface") from None
    await compute.network.detach_port(ctx, inst.uuid, port_id)
