"""Prometheus metrics: what the service counts, served at ``/metrics``.

Every metric lives in :data:`REGISTRY` (not prometheus_client's global one, so a
test process that makes many transports or apps counts nothing twice). Code
that does the work counts it here with one line (``metrics.BUILDS.labels(
"success").inc()``); values that are cheaper to read than to track (inbox
depths, instances per state, open descriptors) are read when scraped.
Labels have bounded values: a route is its template (``/compute/v2.1/servers/
{server_id}``), never the URL a client sent.

This module imports nothing of novalite, so any layer may count.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series

#: Everything novalite exports (and the process's CPU, memory and descriptors).
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_open_fds, process_max_fds, memory, CPU

# -- HTTP ------------------------------------------------------------------------------
REQUESTS = Counter("novalite_http_requests", "HTTP requests answered",
                   ["route", "method", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "novalite_http_request_duration_seconds", "Time to answer an HTTP request",
    ["route", "method"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
OPEN_CONNECTIONS = Gauge("novalite_http_open_connections", "Client connections open now",
                         registry=REGISTRY)
ACCEPT_ERRORS = Counter("novalite_http_accept_errors",
                        "Connections not accepted for lack of descriptors or memory",
                        ["errno"], registry=REGISTRY)

# -- the bus ---------------------------------------------------------------------------
RPC_MESSAGES = Counter("novalite_rpc_messages", "Messages sent on the bus, by topic and kind",
                       ["topic", "kind"], registry=REGISTRY)

# -- builds, instances, database -------------------------------------------------------
BUILDS = Counter("novalite_builds", "Instance builds finished on a compute host, by outcome",
                 ["outcome"], registry=REGISTRY)
BUILD_SECONDS = Histogram(
    "novalite_build_duration_seconds", "Time a compute host took to build an instance",
    ["outcome"], registry=REGISTRY,
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0))
INSTANCES = Gauge("novalite_instances", "Instances (not deleted) by host and vm_state",
                  ["host", "vm_state"], registry=REGISTRY)
DB_RETRIES = Counter("novalite_db_retries", "Database operations retried, by reason",
                     ["reason"], registry=REGISTRY)


def topic_label(topic: str) -> str:
    """A bus topic as a label: ``compute.<host>`` stays (one per host, bounded by the
    configuration); a reply address (random per transport) is ``reply``."""
    return "reply" if topic.startswith("memory.") else topic


def route_label(scope: Mapping[str, Any]) -> str:
    """The route template an ASGI request matched (after routing), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    return f"{scope.get('root_path', '')}{path}"


def observe_request(scope: Mapping[str, Any], status: int, seconds: float) -> None:
    """Count one answered HTTP request."""
    route, method = route_label(scope), str(scope.get("method", ""))
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method).observe(seconds)


class _Inboxes(Collector):
    """``novalite_rpc_inbox_depth{topic}``: messages waiting in each topic's inbox, read
    from every live transport that called :func:`watch_inboxes`."""

    def __init__(self) -> None:
        self.sources: list[weakref.WeakMethod[Callable[[], dict[str, int]]]] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("novalite_rpc_inbox_depth",
                                   "Messages waiting in a topic's inbox", labels=["topic"])
        alive = []
        for ref in self.sources:
            depths = ref()
            if depths is None:
                continue
            alive.append(ref)
            for topic, depth in sorted(depths().items()):
                family.add_metric([topic_label(topic)], depth)
        self.sources = alive
        yield family


_INBOXES = _Inboxes()
REGISTRY.register(_INBOXES)


def watch_inboxes(depths: Callable[[], dict[str, int]]) -> None:
    """Export the inbox depths a bound method returns ({topic: waiting}) while its
    object lives."""
    _INBOXES.sources.append(weakref.WeakMethod(depths))


#: Awaited before each scrape to refresh values read from elsewhere (the database).
_REFRESH: list[Callable[[], Awaitable[None]]] = []


def on_scrape(refresh: Callable[[], Awaitable[None]]) -> None:
    """Await ``refresh()`` before each scrape (e.g. to count instances per state)."""
    _REFRESH.append(refresh)


def set_instances(counts: dict[tuple[str, str], int]) -> None:
    """Replace ``novalite_instances``: {(host, vm_state): count}."""
    INSTANCES.clear()
    for (host, state), count in counts.items():
        INSTANCES.labels(host, state).set(count)


async def scrape() -> tuple[bytes, str]:
    """The exposition text and its content type, after the refresh hooks ran."""
    for refresh in _REFRESH:
        await refresh()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
