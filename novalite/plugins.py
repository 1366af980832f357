"""One loader for every entry-point group novalite reads plugins from.

A plugin is a class that an installed distribution names in one of novalite's
entry-point groups; novalite's own built-ins register in its ``pyproject.toml``
exactly as a third party registers in its own, so they load through here too:

- ``novalite.drivers``: subclasses of :class:`novalite.virt.driver.Driver`, used by
  :mod:`novalite.virt.registry` (which adds the contract-version and host checks);
- ``novalite.scheduler.filters`` and ``novalite.scheduler.weighers``: subclasses of
  ``Filter`` and ``Weigher``, used by :mod:`novalite.scheduler.plugins`.

For each entry this module reports where it comes from (name, distribution,
version, target) and whether it loaded or is broken, and why: an import that
fails in any way, or an object that is not a subclass of the group's base class.
A broken plugin never stops the others from loading; the group's user decides
what a broken entry means (``novalite serve`` refuses only a broken plugin it
is configured to use).

Adding a group (the network and volume backends are next):

1. Define the base class the plugins subclass, documented method by method as
   :class:`novalite.virt.driver.Driver` is.
2. Next to it, declare the group::

       BACKENDS = plugins.Group("novalite.volume.backends", kind="volume backend",
                                base=VolumeBackend)

3. Register the built-ins in ``pyproject.toml`` under
   ``[project.entry-points."novalite.volume.backends"]``, as a third party would.
4. Load with ``plugins.load(BACKENDS, name)`` (raises :class:`PluginNotFound` or
   :class:`PluginBroken`: turn them into a :class:`~novalite.exceptions.ConfigError`
   naming the configuration key) and list with ``plugins.discover(BACKENDS)``; add
   the group's rows to ``novalite drivers`` (:mod:`novalite.cli.main`).

Checks a group needs beyond the base class (the drivers' contract version and
host check) belong to the group's user, on the :class:`PluginEntry` it gets back.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = ["Group", "PluginBroken", "PluginEntry", "PluginNotFound", "discover", "installed",
           "load", "origin"]


@dataclass(frozen=True)
class Group:
    """An entry-point group and what its entries must be."""

    #: The entry-point group name, e.g. "novalite.drivers".
    name: str
    #: What one entry is called in messages: "driver", "scheduler filter", ...
    kind: str
    #: The class every entry must subclass.
    base: type[Any]
    #: How messages name the base class; default ``<module>.<qualname>``.
    base_name: str = ""

    @property
    def base_label(self) -> str:
        return self.base_name or f"{self.base.__module__}.{self.base.__qualname__}"


@dataclass
class PluginEntry:
    """One installed entry: where it comes from, and its class or why it is broken."""

    name: str
    distribution: str
    version: str
    #: The entry point's value, "module:attribute".
    target: str
    #: The loaded class; None when the entry is broken.
    cls: type[Any] | None = None
    #: Why the entry is broken (one line, naming the plugin and its distribution).
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def loaded(self) -> bool:
        return self.cls is not None and self.error is None

    @property
    def status(self) -> str:
        return f"broken: {self.error}" if self.error else "usable"

    def where(self, group: Group) -> str:
        """``driver 'fake' from distribution novalite 0.1.0``: how messages name it."""
        return (f"{group.kind} {self.name!r} from distribution "
                f"{self.distribution} {self.version}")


class PluginNotFound(LookupError):
    """No entry of this name is installed in the group."""

    def __init__(self, group: Group, name: str, installed: list[str]) -> None:
        super().__init__(f"no {group.kind} {name!r} installed (entry-point group {group.name};"
                         f" installed: {', '.join(installed) or 'none'})")
        self.group, self.name, self.installed = group, name, installed


class PluginBroken(Exception):
    """The entry is installed but does not load; ``entry.error`` says why."""

    def __init__(self, entry: PluginEntry) -> None:
        super().__init__(entry.error)
        self.entry = entry


def origin(ep: EntryPoint) -> tuple[str, str]:
    """(distribution name, version) of an entry point, "?" when unknown."""
    dist = ep.dist
    return (dist.name if dist else "?"), (dist.version if dist else "?")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or repr(exc)


def _load(group: Group, ep: EntryPoint) -> PluginEntry:
    dist, version = origin(ep)
    entry = PluginEntry(ep.name, dist, version, ep.value)
    try:
        cls = ep.load()
    except (Exception, SystemExit) as exc:  # a plugin may fail in any way on import
        entry.error = (f"{entry.where(group)}: cannot import {ep.value}: "
                       f"{type(exc).__name__}: {_one_line(exc)}")
        return entry
    if not (isinstance(cls, type) and issubclass(cls, group.base)):
        entry.error = f"{entry.where(group)}: {ep.value} is not a subclass of {group.base_label}"
        return entry
    entry.cls = cls
    return entry


def _entry_points(group: Group) -> list[EntryPoint]:
    return sorted(entry_points(group=group.name), key=lambda e: e.name)


def installed(group: Group) -> list[str]:
    """The names installed in ``group``, sorted, without importing anything."""
    return sorted({ep.name for ep in _entry_points(group)})


def discover(group: Group) -> dict[str, PluginEntry]:
    """Every entry installed in ``group``, by name, each loaded or marked broken.

    When two distributions register one name, the first in name order wins.
    """
    found: dict[str, PluginEntry] = {}
    for ep in _entry_points(group):
        if ep.name not in found:
            found[ep.name] = _load(group, ep)
    return found


def load(group: Group, name: str) -> PluginEntry:
    """The loaded entry ``name`` of ``group`` (importing only that one).

    Raises :class:`PluginNotFound` when no such entry is installed and
    :class:`PluginBroken` when it does not load.
    Example: ``plugins.load(DRIVERS, "fake").cls is FakeDriver``.
    """
    eps = [ep for ep in _entry_points(group) if ep.name == name]
    if not eps:
        raise PluginNotFound(group, name, installed(group))
    entry = _load(group, eps[0])
    if entry.broken:
        raise PluginBroken(entry)
    return entry
