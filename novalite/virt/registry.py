"""Find drivers through the ``novalite.drivers`` entry-point group.

Built-in drivers are registered in novalite's own ``pyproject.toml`` exactly as a
third-party plugin registers in its own, and load through the same
:mod:`novalite.plugins` loader: there is no other path. On top of the loader this
module checks what the driver contract asks of a driver class: a compatible
contract version, and whether it can run on this host (:meth:`Driver.check_host`);
and it answers ``[compute] driver = "auto"`` by asking the installed drivers
(:meth:`Driver.auto_select`, by :attr:`Driver.auto_priority`).
"""

from __future__ import annotations

from dataclasses import dataclass

from novalite import plugins
from novalite.exceptions import ConfigError
from novalite.plugins import PluginEntry
from novalite.virt.driver import CONTRACT_VERSION, Driver, HostCheck

DRIVERS = plugins.Group("novalite.drivers", kind="driver", base=Driver,
                        base_name="novalite.virt.Driver")
GROUP = DRIVERS.name


@dataclass
class DriverEntry(PluginEntry):
    """One installed driver: where it comes from and whether it loads and can run here."""

    #: The contract version the driver class declares (None when it did not import).
    contract: str | None = None
    check: HostCheck | None = None

    @property
    def usable(self) -> bool:
        return self.cls is not None and self.check is not None and self.check.usable

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


def _checked(found: PluginEntry) -> DriverEntry:
    """The loader's entry with the contract version checked and the host checked."""
    entry = DriverEntry(found.name, found.distribution, found.version, found.target,
                        found.cls, found.error)
    if entry.cls is None:
        return entry
    cls, entry.cls = entry.cls, None
    declared = str(getattr(cls, "contract_version", None) or "?")
    entry.contract = declared
    if _major(declared) != _major(CONTRACT_VERSION):
        entry.error = (
            f"{entry.where(DRIVERS)} implements driver contract {declared}, but this novalite "
            f"provides contract {CONTRACT_VERSION} (major versions must match)"
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
    return {name: _checked(entry) for name, entry in plugins.discover(DRIVERS).items()}


def load_driver(name: str) -> type[Driver]:
    """The driver class configured as ``[compute] driver``; ConfigError says why not."""
    try:
        entry = _checked(plugins.load(DRIVERS, name))
    except plugins.PluginNotFound as exc:
        raise ConfigError(
            f"[compute] driver = {name!r}: no such driver installed "
            f"(entry-point group {GROUP}; installed: {', '.join(exc.installed) or 'none'})"
        ) from None
    except plugins.PluginBroken as exc:
        entry = _checked(exc.entry)
    if entry.error:
        raise ConfigError(f"[compute] driver = {name!r} cannot be loaded: {entry.error}")
    assert entry.cls is not None and entry.check is not None
    if not entry.check.usable:
        raise ConfigError(f"[compute] driver = {name!r} cannot run here: {entry.check.reason}")
    return entry.cls


def auto_select(found: dict[str, DriverEntry] | None = None) -> tuple[str, str]:
    """The driver ``[compute] driver = "auto"`` runs, and why.

    Asks every installed, usable driver that has an :attr:`Driver.auto_priority`,
    highest priority first, whether it wants to run here (:meth:`Driver.auto_select`);
    the first that says yes wins. The reason names the drivers passed over and why
    (with the built-ins: kvm where KVM runs Linux guests, else qemu where QEMU is
    installed, else fake). Raises ConfigError when no driver volunteers.
    """
    found = discover() if found is None else found
    candidates = sorted(
        (e for e in found.values() if e.cls is not None and e.cls.auto_priority is not None),
        key=lambda e: (-int(e.cls.auto_priority or 0), e.name))  # type: ignore[union-attr]
    passed_over: list[str] = []
    for entry in candidates:
        assert entry.cls is not None
        if not entry.usable:
            passed_over.append(f"{entry.name}: {entry.status}")
            continue
        try:
            check = entry.cls.auto_select()
        except Exception as exc:  # a plugin's hook may fail in any way
            check = HostCheck(False, f"auto_select failed: {type(exc).__name__}: {exc}")
        if check.usable:
            why = check.reason or f"{entry.name} is usable"
            if passed_over:
                why += f"; not {'; not '.join(passed_over)}"
            return entry.name, why
        passed_over.append(f"{entry.name}: {check.reason}")
    raise ConfigError(
        "[compute] driver = 'auto': no installed driver can be chosen here ("
        + ("; ".join(passed_over) or "none offers itself for auto-selection")
        + "); set [compute] driver, see `novalite drivers`")
