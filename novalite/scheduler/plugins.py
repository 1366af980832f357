"""Find scheduler filters and weighers through their entry-point groups.

``novalite.scheduler.filters`` and ``novalite.scheduler.weighers`` map a name (the
one users put in ``[scheduler] enabled_filters`` / ``weighers``) to a subclass of
:class:`novalite.scheduler.filters.Filter` or :class:`novalite.scheduler.weighers.Weigher`.
novalite's own filters and weighers are registered in its ``pyproject.toml`` exactly
as a third-party plugin registers in its own; both load through :mod:`novalite.plugins`.
"""

from __future__ import annotations

from typing import Any

from novalite import plugins
from novalite.exceptions import ConfigError
from novalite.plugins import PluginEntry
from novalite.scheduler.filters import Filter
from novalite.scheduler.weighers import Weigher

FILTERS = plugins.Group("novalite.scheduler.filters", kind="scheduler filter", base=Filter)
WEIGHERS = plugins.Group("novalite.scheduler.weighers", kind="scheduler weigher", base=Weigher)

#: kind -> (entry-point group, the [scheduler] key that names them)
KINDS: dict[str, tuple[plugins.Group, str]] = {
    "filter": (FILTERS, "enabled_filters"),
    "weigher": (WEIGHERS, "weighers"),
}

__all__ = ["FILTERS", "KINDS", "WEIGHERS", "PluginEntry", "discover", "load"]


def discover(kind: str) -> dict[str, PluginEntry]:
    """Every installed plugin of ``kind`` ("filter" or "weigher"), by name, loaded."""
    return plugins.discover(KINDS[kind][0])


def load(kind: str, name: str) -> type[Any]:
    """The class of the filter or weigher ``name``; ConfigError says why not."""
    group, key = KINDS[kind]
    try:
        entry = plugins.load(group, name)
    except plugins.PluginNotFound as exc:
        raise ConfigError(f"[scheduler] {key}: unknown {kind} {name!r} "
                          f"(entry-point group {group.name}; "
                          f"installed: {', '.join(exc.installed) or 'none'})") from None
    except plugins.PluginBroken as exc:
        raise ConfigError(f"[scheduler] {key}: {exc.entry.error}") from None
    assert entry.cls is not None
    return entry.cls
