"""Find drivers through the ``novalite.drivers`` entry-point group.

Built-in drivers are registered in novalite's own ``pyproject.toml`` exactly as a
third-party plugin registers in its own: there is no other path.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from novalite.exceptions import ConfigError
from novalite.virt.driver import CONTRACT_VERSION, Driver, HostCheck

GROUP = "novalite.drivers"


@dataclass
class DriverEntry:
    """One installed driver: where it comes from and whether it loads and can run here."""

    name: str
    distribution: str
    version: str
    target: str
    cls: type[Driver] | None = None
    error: str | None = None
    check: HostCheck | None = None

    @property
    def usable(self) -> bool:
        return self.cls is not None and self.check is not None and self.check.usable

    @property
    def status(self) -> str:
        if self.error:
            return f"broken: {self.error}"
        assert self.check is not None
        return "usable" if self.check.usable else f"not usable here: {self.check.reason}"


def _major(version: str) -> str:
    return str(version).split(".", 1)[0]


def _load(ep: EntryPoint) -> DriverEntry:
    dist = ep.dist.name if ep.dist else "?"
    version = ep.dist.version if ep.dist else "?"
    entry = DriverEntry(ep.name, dist, version, ep.value)
    try:
        cls = ep.load()
    except Exception as exc:  # a plugin may fail in any way on import
        entry.error = f"cannot import {ep.value}: {type(exc).__name__}: {exc}"
        return entry
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        entry.error = f"{ep.value} is not a novalite.virt.Driver subclass"
        return entry
    declared = getattr(cls, "contract_version", None) or "?"
    if _major(declared) != _major(CONTRACT_VERSION):
        entry.error = (
            f"driver {ep.name!r} from distribution {dist} {version} implements driver "
            f"contract {declared}, but this novalite provides {CONTRACT_VERSION} "
            f"(major versions must match)"
        )
        return entry
    entry.cls = cls
    try:
        entry.check = cls.check_host()
    except Exception as exc:
        entry.check = HostCheck(False, f"check_host failed: {type(exc).__name__}: {exc}")
    return entry


def discover() -> dict[str, DriverEntry]:
    """Every driver installed, by entry-point name, loaded and checked against this host."""
    found: dict[str, DriverEntry] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        found.setdefault(ep.name, _load(ep))
    return found


def load_driver(name: str) -> type[Driver]:
    """The driver class configured as ``[compute] driver``; ConfigError says why not."""
    eps = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not eps:
        known = ", ".join(sorted({ep.name for ep in entry_points(group=GROUP)})) or "none"
        raise ConfigError(
            f"[compute] driver = {name!r}: no such driver installed "
            f"(entry-point group {GROUP}; installed: {known})"
        )
    entry = _load(eps[0])
    if entry.error:
        raise ConfigError(f"[compute] driver = {name!r}: {entry.error}")
    assert entry.cls is not None and entry.check is not None
    if not entry.check.usable:
        raise ConfigError(f"[compute] driver = {name!r} cannot run here: {entry.check.reason}")
    return entry.cls
