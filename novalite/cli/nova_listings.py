"""Listing commands of `nova`: flavors, compute services and hypervisors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from novalite.cli.nova_app import app, emit, session
from novalite.cli.output import print_table


def _show(items: list[dict[str, Any]], columns: Sequence[tuple[str, Any]]) -> None:
    """Emit ``items``; the table shows ``(heading, key or function)`` columns."""

    def value(item: Mapping[str, Any], how: Any) -> Any:
        return how(item) if callable(how) else item.get(how)

    emit(
        items,
        lambda: print_table(
            [heading for heading, _ in columns],
            [[value(item, how) for _, how in columns] for item in items],
        ),
    )


@app.command("flavor-list")
def flavor_list(
    all_flavors: Annotated[
        bool, typer.Option("--all", help="Public and private flavors (admin).")
    ] = False,
) -> None:
    """List flavors."""
    s = session()
    params = {"is_public": "None"} if all_flavors else None
    flavors = s.compute_list("/flavors/detail", "flavors", params)
    columns: list[tuple[str, Any]] = [
        ("ID", "id"),
        ("Name", "name"),
        ("Memory_MiB", "ram"),
        ("Disk", "disk"),
        ("Ephemeral", "OS-FLV-EXT-DATA:ephemeral"),
        ("Swap", "swap"),
        ("VCPUs", "vcpus"),
        ("RXTX_Factor", "rxtx_factor"),
        ("Is_Public", "os-flavor-access:is_public"),
    ]
    if s.microversion_at_least(2, 55):
        columns.append(("Description", "description"))
    _show(flavors, columns)


@app.command("service-list")
def service_list(
    host: Annotated[str | None, typer.Option("--host", help="Only this host.")] = None,
    binary: Annotated[str | None, typer.Option("--binary", help="Only this binary.")] = None,
) -> None:
    """List compute services."""
    s = session()
    params = {key: value for key, value in {"host": host, "binary": binary}.items() if value}
    services = s.compute_json("GET", "/os-services", params=params or None).get("services", [])
    columns: list[tuple[str, Any]] = [
        ("Id", "id"),
        ("Binary", "binary"),
        ("Host", "host"),
        ("Zone", "zone"),
        ("Status", "status"),
        ("State", "state"),
        ("Updated_at", "updated_at"),
        ("Disabled Reason", "disabled_reason"),
    ]
    if s.microversion_at_least(2, 11):
        columns.append(("Forced down", "forced_down"))
    _show(services, columns)


@app.command("hypervisor-list")
def hypervisor_list() -> None:
    """List hypervisors."""
    hypervisors = session().compute_list("/os-hypervisors/detail", "hypervisors")
    _show(
        hypervisors,
        [
            ("ID", "id"),
            ("Hypervisor hostname", "hypervisor_hostname"),
            ("State", "state"),
            ("Status", "status"),
            ("Hypervisor Type", "hypervisor_type"),
            ("Host IP", "host_ip"),
        ],
    )
