"""The typed client of a compute host's topic, ``compute.<host>`` (Nova's ``compute/rpcapi.py``).

One client per host: ``ComputeClient(transport, host)`` is cheap to make. The
compute actor (:class:`~novalite.compute.host.manager.ComputeManager`) records what
happens through the conductor; these messages only start the work, except
:meth:`ComputeClient.get_console_output` and :meth:`ComputeClient.get_console`, which
answer.
"""

from __future__ import annotations

from typing import Any

from novalite.context import RequestContext
from novalite.rpc.client import DEFAULT_TIMEOUT, RpcClient
from novalite.rpc.transport import Transport

#: Seconds to wait for a guest's console output.
CONSOLE_TIMEOUT = 30.0


def topic(host: str) -> str:
    """The topic of the compute host ``host``."""
    return f"compute.{host}"


class ComputeClient:
    """Sends to the compute actor of one host."""

    __slots__ = ("_rpc", "host")

    def __init__(self, transport: Transport, host: str,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self._rpc = RpcClient(transport, topic(host), timeout)

    async def build_and_run_instance(self, ctx: RequestContext, instance: dict[str, Any],
                                     image: dict[str, Any] | None,
                                     kernel: dict[str, Any] | None,
                                     ramdisk: dict[str, Any] | None, spec: dict[str, Any],
                                     tried: list[str], networks: str) -> None:
        """Build the instance on this host (cast): fetch its images, spawn the guest,
        and record each step through the conductor.

        ``instance`` is the conductor's instance payload; ``image``, ``kernel`` and
        ``ramdisk`` the image payloads (kernel and ramdisk may be None; image None
        fails the build). ``spec`` and ``tried`` (the hosts tried so far, this one
        last) come back to the conductor with a failure so that it can reschedule;
        ``networks`` is the boot's ``networks`` choice ("auto", "none").

        Example::

            await ComputeClient(transport, "host1").build_and_run_instance(
                ctx, instance, image, None, None, spec, ["host1"], "auto")
        """
        await self._rpc.cast(ctx, "build_and_run_instance", {
            "instance": instance, "image": image, "kernel": kernel, "ramdisk": ramdisk,
            "spec": spec, "tried": tried, "networks": networks})

    async def update_port_security(self, ctx: RequestContext, port_id: str,
                                   security_rules: list[dict[str, Any]]) -> None:
        """A port on this host has new security rules (cast): its groups' rules or the
        members of a remote group changed. ``security_rules`` are resolved as
        ``NetworkInfo.security_rules`` are (remote groups expanded to addresses); the
        host applies them to the running guest's port at once."""
        await self._rpc.cast(ctx, "update_port_security", {
            "port_id": port_id, "security_rules": security_rules})

    async def terminate_instance(self, ctx: RequestContext, uuid: str) -> None:
        """Destroy the guest (cast); the conductor then soft-deletes the record and
        frees its address and claim (or records a fault if the guest resists)."""
        await self._rpc.cast(ctx, "terminate_instance", {"uuid": uuid})

    async def power_action(self, ctx: RequestContext, uuid: str, action: str,
                           reboot_type: str = "SOFT") -> None:
        """Run a power action on the guest (cast): ``stop``, ``start``, ``reboot`` (of
        ``reboot_type`` SOFT or HARD), ``pause``, ``unpause``, ``suspend``, ``resume``;
        the record's task_state is cleared when it is done, a fault recorded if it
        fails."""
        await self._rpc.cast(ctx, "power_action", {"uuid": uuid, "action": action,
                                                   "reboot_type": reboot_type})

    async def snapshot_instance(self, ctx: RequestContext, uuid: str, image_id: str) -> None:
        """Snapshot the guest's disk into the queued image ``image_id`` (cast); the
        image is deleted again if the snapshot fails."""
        await self._rpc.cast(ctx, "snapshot_instance", {"uuid": uuid, "image_id": image_id})

    async def get_console_output(self, ctx: RequestContext, uuid: str) -> str:
        """The guest's console log, as the driver keeps it.

        Raises :class:`~novalite.virt.driver.InstanceNotFound` when the hypervisor has
        no such guest, another :class:`~novalite.virt.driver.DriverError` when the
        driver fails, :class:`~novalite.rpc.errors.CallTimeout` after
        :data:`CONSOLE_TIMEOUT` seconds.

        Example::

            text = await ComputeClient(transport, inst.host).get_console_output(ctx, uuid)
        """
        result: str = await self._rpc.call(ctx, "get_console_output", {"uuid": uuid},
                                           timeout=CONSOLE_TIMEOUT)
        return result

    async def get_console(self, ctx: RequestContext, uuid: str, console_type: str,
                          token_hash: str, expires: float) -> dict[str, Any]:
        """Grant a console token: the host lets the token whose SHA-256 is
        ``token_hash`` open the guest's ``console_type`` console ("novnc" or
        "serial") until ``expires`` (Unix time), and answers where the console proxy
        connects: ``{"host": ..., "port": ...}`` (its console relay, see
        :mod:`novalite.console.relay`).

        Raises :class:`~novalite.virt.driver.NotSupported` when the host's driver has
        no such console, :class:`~novalite.virt.driver.InstanceNotFound` when the
        guest is gone, :class:`~novalite.rpc.errors.CallTimeout` after
        :data:`CONSOLE_TIMEOUT` seconds.

        Example::

            where = await ComputeClient(transport, inst.host).get_console(
                ctx, uuid, "serial", token_hash(token), time.time() + 600)
        """
        result: dict[str, Any] = await self._rpc.call(
            ctx, "get_console", {"uuid": uuid, "console_type": console_type,
                                 "token_hash": token_hash, "expires": expires},
            timeout=CONSOLE_TIMEOUT)
        return result


__all__ = ["CONSOLE_TIMEOUT", "ComputeClient", "topic"]
