"""The compute API v2.1, mounted at ``/compute``: one router per resource family."""

from __future__ import annotations

from starlette.routing import Route

from novalite.api import (
    aggregates,
    availability_zones,
    compute_services,
    compute_volumes,
    extensions,
    flavors,
    hosts,
    hypervisors,
    images,
    instance_actions,
    ips,
    keypairs,
    limits,
    migrations,
    quotas,
    remote_consoles,
    security_groups_proxy,
    server_actions,
    server_diagnostics,
    server_groups,
    server_lifecycle,  # noqa: F401  (registers its actions with server_actions)
    server_lifecycle_b,
    server_metadata,
    server_networks,
    server_password,
    server_tags,
    servers,
    usage,
    versions,
    volume_attachments,
)
from novalite.api.framework import Authenticator, Router, Services, starlette_routes

#: Every router of the compute API, in the order they are listed (matching puts
#: literal path segments before parameters whatever this order).
ROUTERS: list[Router] = [
    versions.router, servers.router, server_actions.router, instance_actions.router,
    flavors.router, compute_services.router, hypervisors.router, keypairs.router,
    quotas.router, server_groups.router, aggregates.router, availability_zones.router,
    remote_consoles.router, limits.router, hosts.router, usage.router, extensions.router,
    images.router, server_password.router,
    server_metadata.router, server_tags.router, ips.router, server_diagnostics.router,
    migrations.router,
    volume_attachments.router,
    server_networks.router,
    security_groups_proxy.router,
    compute_volumes.router,
]
#: Modules that only register server actions (on server_actions' registry).
ACTION_MODULES = [server_lifecycle_b]


def routes(services: Services, authenticate: Authenticator) -> list[Route]:
    """The routes under ``/compute``; each authenticated one also answers with the
    project id after ``v2.1`` (novaclient may use such URLs, CLIENTS.md §7)."""
    return [*starlette_routes(ROUTERS, services, authenticate=authenticate,
                              max_version=services.max_version),
            *starlette_routes(ROUTERS, services, authenticate=authenticate,
                              max_version=services.max_version, prefix="{project_id}")]
