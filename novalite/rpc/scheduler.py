"""The typed client of the ``scheduler`` topic (Nova's ``scheduler/rpcapi.py``).

The scheduler (:class:`~novalite.scheduler.manager.SchedulerManager`) owns the
resource view of every host in memory; these are the only messages that reach it.
"""

from __future__ import annotations

from typing import Any

from novalite.context import RequestContext
from novalite.rpc.client import DEFAULT_TIMEOUT, RpcClient
from novalite.rpc.transport import Transport

TOPIC = "scheduler"


class SchedulerClient:
    """Sends to the scheduler."""

    def __init__(self, transport: Transport, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._rpc = RpcClient(transport, TOPIC, timeout)

    async def select_destinations(self, ctx: RequestContext, specs: list[dict[str, Any]],
                                  *, persist: bool = True) -> list[dict[str, Any]]:
        """Choose a host for each request spec and claim its resources there, all or none.

        ``specs`` are :class:`~novalite.scheduler.host_state.RequestSpec` dicts, placed
        in order, each seeing the claims of the ones before. With ``persist=False``
        the claims are only in memory and the caller writes their ``allocation`` rows
        (releasing the claims with :meth:`release` if it cannot).

        Returns one destination per spec, ``{"host", "node", "allocation"}``.
        Raises :class:`~novalite.exceptions.NoValidHost` (saying what each filter
        removed) when one spec fits nowhere; then nothing is claimed.

        Example::

            [dest] = await scheduler.select_destinations(ctx, [spec], persist=False)
        """
        result: list[dict[str, Any]] = await self._rpc.call(
            ctx, "select_destinations", {"specs": specs, "persist": persist})
        return result

    async def release(self, ctx: RequestContext, instance_uuid: str) -> str | None:
        """Drop the instance's claim (in memory and its allocation row).

        Returns the host the claim was on, None if there was none."""
        result: str | None = await self._rpc.call(ctx, "release",
                                                  {"instance_uuid": instance_uuid})
        return result

    async def move_claim(self, ctx: RequestContext, spec: dict[str, Any],
                         migration_uuid: str) -> dict[str, Any]:
        """Choose the destination of a resize or cold migration (``spec``: a
        :class:`~novalite.scheduler.host_state.RequestSpec` dict with the new flavor's
        sizes; the source in ``ignore_hosts`` unless same-host moves are allowed) and
        claim it for the instance; its old claim is then held by ``migration_uuid``
        until :meth:`release` (confirm) or :meth:`revert_move_claim` (revert).

        Returns ``{"host", "node"}``. Raises :class:`~novalite.exceptions.NoValidHost`;
        then nothing is claimed and nothing moved.

        Example::

            dest = await scheduler.move_claim(ctx, spec, migration.uuid)
        """
        result: dict[str, Any] = await self._rpc.call(
            ctx, "move_claim", {"spec": spec, "migration_uuid": migration_uuid})
        return result

    async def revert_move_claim(self, ctx: RequestContext, instance_uuid: str,
                                migration_uuid: str) -> None:
        """Undo :meth:`move_claim`: the destination's claim dropped, the source's given
        back to the instance."""
        await self._rpc.call(ctx, "revert_move_claim", {"instance_uuid": instance_uuid,
                                                        "migration_uuid": migration_uuid})

    async def host_update(self, ctx: RequestContext, host: str, *,
                          resources: dict[str, Any] | None = None,
                          availability_zone: str | None = None,
                          disabled: bool | None = None, heartbeat: bool = False) -> None:
        """Tell the scheduler (cast) what changed on one host: its ``resources`` (a
        driver's :class:`~novalite.virt.driver.HostResources` as a dict), its service's
        ``availability_zone``, whether it is ``disabled`` (or forced down), or that it
        sent a ``heartbeat`` just now. Only what is given changes."""
        await self._rpc.cast(ctx, "host_update", _host_update(
            host, resources, availability_zone, disabled, heartbeat))

    async def hosts_update(self, ctx: RequestContext, updates: list[dict[str, Any]]) -> None:
        """Many hosts' :meth:`host_update` in one message (cast); each update is a dict
        with ``host`` and any of ``resources``, ``availability_zone``, ``disabled``,
        ``heartbeat``."""
        await self._rpc.cast(ctx, "hosts_update", {"updates": updates})

    async def build_result(self, ctx: RequestContext, host: str, success: bool) -> None:
        """Count a failed build on ``host``, or start its count over after a success
        (cast; the BuildFailureWeigher weighs hosts by it)."""
        await self._rpc.cast(ctx, "build_result", {"host": host, "success": success})

    async def aggregates_changed(self, ctx: RequestContext) -> None:
        """Reload the host aggregates (zones, metadata, ratio overrides) from the
        database; returns once the scheduler sees the change."""
        await self._rpc.call(ctx, "aggregates_changed", {})

    async def host_usage(self, ctx: RequestContext) -> dict[str, dict[str, int]]:
        """What is claimed on each host: ``{host: {"vcpus_used", "memory_mb_used",
        "disk_gb_used", "running_vms"}}``."""
        result: dict[str, dict[str, int]] = await self._rpc.call(ctx, "host_usage", {})
        return result


def _host_update(host: str, resources: dict[str, Any] | None, availability_zone: str | None,
                 disabled: bool | None, heartbeat: bool) -> dict[str, Any]:
    """One host update as the scheduler reads it: only the keys that were given."""
    update: dict[str, Any] = {"host": host}
    if resources is not None:
        update["resources"] = resources
    if availability_zone is not None:
        update["availability_zone"] = availability_zone
    if disabled is not None:
        update["disabled"] = disabled
    if heartbeat:
        update["heartbeat"] = True
    return update


__all__ = ["TOPIC", "SchedulerClient"]
