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
    #: The contract version the driver class declares (None when it did not import).
    contract: str | None = None
    error: str | None = None
    check: HostCheck | None = None

    @property
    def usable(self) -> bool:
        return self.cls is not None and self.check is not None and self.check.usable

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> str:
        if self.error:
            return f"broken: {self.error}"
        assert self.check is not None
        if self.check.usable:
            return f"usable ({self.check.reason})" if self.check.reason else "usable"
        return f"not usable here: {self.check.reason}"


def _major(version: str) -> str:
    return str(version).split(".", 1)[0]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or repr(exc)


def origin(ep: EntryPoint) -> tuple[str, str]:
    """(distribution name, version) of an entry point, "?" when unknown."""
    dist = ep.dist
    return (dist.name if dist else "?"), (dist.version if dist else "?")


def _load(ep: EntryPoint) -> DriverEntry:
    dist, version = origin(ep)
    entry = DriverEntry(ep.name, dist, version, ep.value)
    where = f"driver {ep.name!r} from distribution {dist} {version}"
    try:
        cls = ep.load()
    except (Exception, SystemExit) as exc:  # a plugin may fail in any way on import
        entry.error = (f"{where}: cannot import {ep.value}: {type(exc).__name__}: "
                       f"{_one_line(exc)}")
        return entry
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        entry.error = f"{where}: {ep.value} is not a subclass of novalite.virt.Driver"
        return entry
    declared = str(getattr(cls, "contract_version", None) or "?")
    entry.contract = declared
    if _major(declared) != _major(CONTRACT_VERSION):
        entry.error = (
            f"{where} implements driver contract {declared}, but this novalite provides "
            f"contract {CONTRACT_VERSION} (major versions must match)"
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
        raise ConfigError(f"[compute] driver = {name!r} cannot be loaded: {entry.error}")
    assert entry.cls is not None and entry.check is not None
    if not entry.check.usable:
        raise ConfigError(f"[compute] driver = {name!r} cannot run here: {entry.check.reason}")
    return entry.cls
