"""Find scheduler filters and weighers through their entry-point groups.

``novalite.scheduler.filters`` and ``novalite.scheduler.weighers`` map a name (the
one users put in ``[scheduler] enabled_filters`` / ``weighers``) to a subclass of
:class:`novalite.scheduler.filters.Filter` or :class:`novalite.scheduler.weighers.Weigher`.
novalite's own filters and weigher are registered in its ``pyproject.toml`` exactly
as a third-party plugin registers in its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from novalite.exceptions import ConfigError
from novalite.scheduler.filters import Filter
from novalite.scheduler.weighers import Weigher

#: kind -> (entry-point group, base class, the [scheduler] key that names them)
KINDS: dict[str, tuple[str, type[Any], str]] = {
    "filter": ("novalite.scheduler.filters", Filter, "enabled_filters"),
    "weigher": ("novalite.scheduler.weighers", Weigher, "weighers"),
}


@dataclass
class PluginEntry:
    """One installed filter or weigher: where it comes from and whether it loads."""

    kind: str
    name: str
    distribution: str
    version: str
    target: str
    cls: type[Any] | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        return f"broken: {self.error}" if self.error else "usable"


def _load(kind: str, ep: EntryPoint) -> PluginEntry:
    _group, base, _key = KINDS[kind]
    dist, version = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "?")
    entry = PluginEntry(kind, ep.name, dist, version, ep.value)
    where = f"scheduler {kind} {ep.name!r} from distribution {dist} {version}"
    try:
        cls = ep.load()
    except (Exception, SystemExit) as exc:  # a plugin may fail in any way on import
        message = " ".join(str(exc).split()) or repr(exc)
        entry.error = f"{where}: cannot import {ep.value}: {type(exc).__name__}: {message}"
        return entry
    if not (isinstance(cls, type) and issubclass(cls, base)):
        entry.error = (f"{where}: {ep.value} is not a subclass of "
                       f"{base.__module__}.{base.__qualname__}")
        return entry
    entry.cls = cls
    return entry


def discover(kind: str) -> dict[str, PluginEntry]:
    """Every installed plugin of ``kind`` ("filter" or "weigher"), by name, loaded."""
    group = KINDS[kind][0]
    found: dict[str, PluginEntry] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        found.setdefault(ep.name, _load(kind, ep))
    return found


def load(kind: str, name: str) -> type[Any]:
    """The class of the filter or weigher ``name``; ConfigError says why not."""
    group, _base, key = KINDS[kind]
    eps = [ep for ep in entry_points(group=group) if ep.name == name]
    if not eps:
        known = ", ".join(sorted({ep.name for ep in entry_points(group=group)})) or "none"
        raise ConfigError(f"[scheduler] {key}: unknown {kind} {name!r} "
                          f"(entry-point group {group}; installed: {known})")
    entry = _load(kind, eps[0])
    if entry.error:
        raise ConfigError(f"[scheduler] {key}: {entry.error}")
    assert entry.cls is not None
    return entry.cls
