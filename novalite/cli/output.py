"""How the `nova` client prints: rich tables for people, JSON for programs.

rich is imported on first use, so ``-f json`` never pays for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

# Nova's power_state values (nova/compute/power_state.py).
POWER_STATES: dict[int, str] = {
    0: "NOSTATE",
    1: "Running",
    3: "Paused",
    4: "Shutdown",
    6: "Crashed",
    7: "Suspended",
}
# Wide enough that a table written to a pipe or file is never wrapped.
PIPE_WIDTH = 1000

_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """The rich console for stdout (or stderr); unwrapped when not a terminal."""
    found = _consoles.get(stderr)
    if found is None:
        from rich.console import Console

        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else PIPE_WIDTH
        found = Console(file=stream, width=width, highlight=False, soft_wrap=False)
        _consoles[stderr] = found
    return found


def print_json(data: Any) -> None:
    """Machine-readable output: the API objects, as JSON, on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> str:
    """One table cell: ``-`` for nothing, JSON for structures, text otherwise."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table with the given column headings."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell(value)) for value in row))
    console().print(table)


def print_properties(properties: Mapping[str, Any]) -> None:
    """A two-column Property/Value table, like ``nova show``."""
    print_table(["Property", "Value"], sorted(properties.items()))


def power_state_name(value: Any) -> str:
    if value is None or value == "":
        return "NOSTATE"
    try:
        return POWER_STATES.get(int(value), str(value))
    except (TypeError, ValueError):
        return str(value)


def format_networks(addresses: Any) -> str:
    """``private=10.0.0.5, fd00::5; public=...`` from a server's ``addresses``."""
    if not isinstance(addresses, dict):
        return ""
    parts = []
    for network, entries in sorted(addresses.items()):
        ips = [str(entry.get("addr")) for entry in entries or [] if isinstance(entry, dict)]
        parts.append(f"{network}={', '.join(ips)}")
    return "; ".join(parts)


def server_row(server: Mapping[str, Any], with_tenant: bool = False) -> list[Any]:
    """One ``nova list`` row: ID, Name, [Tenant ID], Status, Task State, Power State, Networks."""
    row: list[Any] = [server.get("id"), server.get("name")]
    if with_tenant:
        row.append(server.get("tenant_id"))
    row += [
        server.get("status"),
        server.get("OS-EXT-STS:task_state"),
        power_state_name(server.get("OS-EXT-STS:power_state")),
        format_networks(server.get("addresses")),
    ]
    return row


def server_columns(with_tenant: bool = False) -> list[str]:
    columns = ["ID", "Name"]
    if with_tenant:
        columns.append("Tenant ID")
    return columns + ["Status", "Task State", "Power State", "Networks"]


def server_properties(server: Mapping[str, Any], image_name: str | None) -> dict[str, Any]:
    """The rows of ``nova show``: the server flattened the way novaclient shows it."""
    properties: dict[str, Any] = {}
    for key, value in server.items():
        if key in {"links", "addresses", "flavor", "image", "fault"}:
            continue
        properties[key] = value
    if "OS-EXT-STS:power_state" in server:
        properties["OS-EXT-STS:power_state"] = power_state_name(server["OS-EXT-STS:power_state"])
    for network, entries in (server.get("addresses") or {}).items():
        ips = [str(entry.get("addr")) for entry in entries or [] if isinstance(entry, dict)]
        properties[f"{network} network"] = ", ".join(ips)
    properties.update(_flavor_properties(server.get("flavor")))
    properties["image"] = _image_text(server.get("image"), image_name)
    fault = server.get("fault")
    if isinstance(fault, dict):
        properties["fault"] = fault.get("message") or fault
    return properties


def _flavor_properties(flavor: Any) -> dict[str, Any]:
    if not isinstance(flavor, dict):
        return {"flavor": flavor}
    if "original_name" not in flavor:  # before 2.47: a reference {id, links}
        return {"flavor": flavor.get("id")}
    return {f"flavor:{key}": value for key, value in flavor.items()}


def _image_text(image: Any, image_name: str | None) -> str:
    if not image:
        return "Attempt to boot from volume - no image supplied"
    image_id = image.get("id") if isinstance(image, dict) else str(image)
    return f"{image_name} ({image_id})" if image_name else str(image_id)


def error(message: str) -> None:
    """One line on stderr (no markup interpretation)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
