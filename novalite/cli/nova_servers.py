"""Server commands of `nova`: boot, list, show, delete, the power/lock actions and history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from novalite.cli.nova_app import app, emit, key_value_pairs, session, wants_json
from novalite.cli.nova_errors import CliError, CommandError
from novalite.cli.nova_find import find_flavor, find_image, find_server, get_server, image_name
from novalite.cli.output import (
    error,
    print_properties,
    print_table,
    server_columns,
    server_properties,
    server_row,
)

ServersArg = Annotated[list[str], typer.Argument(help="Name or ID of server(s).")]
ServerArg = Annotated[str, typer.Argument(help="Name or ID of server.")]


# -- boot -------------------------------------------------------------------


def _user_data(path: Path | None) -> str | None:
    if path is None:
        return None
    import base64

    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise CommandError(f"Can't open '{path}': {exc.strerror}") from None


def _networks(nic: str | None) -> str | None:
    """The ``networks`` value: 'auto' by default from 2.37 on, nothing before it."""
    if nic is not None and nic not in ("none", "auto"):
        raise CommandError("--nic must be 'none' or 'auto' (novalite has no Neutron networks)")
    if session().microversion_at_least(2, 37):
        return nic or "auto"
    if nic is not None:
        raise CommandError("--nic none|auto needs compute API microversion 2.37 or greater")
    return None


@app.command()
def boot(
    name: Annotated[str, typer.Argument(help="Name for the new server.")],
    flavor: Annotated[str, typer.Option("--flavor", help="Name or ID of flavor.")],
    image: Annotated[str, typer.Option("--image", help="Name or ID of image.")],
    key_name: Annotated[str | None, typer.Option("--key-name", help="Key pair name.")] = None,
    user_data: Annotated[
        Path | None, typer.Option("--user-data", help="File with user data for the server.")
    ] = None,
    availability_zone: Annotated[
        str | None, typer.Option("--availability-zone", help="Availability zone.")
    ] = None,
    min_count: Annotated[
        int | None, typer.Option("--min-count", min=1, help="Boot at least this many servers.")
    ] = None,
    max_count: Annotated[
        int | None, typer.Option("--max-count", min=1, help="Boot at most this many servers.")
    ] = None,
    nic: Annotated[str | None, typer.Option("--nic", help="'auto' (default) or 'none'.")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="Metadata key=value (repeatable).")
    ] = None,
    poll: Annotated[
        bool, typer.Option("--poll", help="Show progress until the server is ACTIVE or ERROR.")
    ] = False,
) -> None:
    """Boot a new server."""
    s = session()
    found_image = find_image(s, image)
    found_flavor = find_flavor(s, flavor)
    body: dict[str, Any] = {
        "name": name,
        "imageRef": found_image["id"],
        "flavorRef": found_flavor["id"],
        "min_count": min_count or 1,
        "max_count": max_count or min_count or 1,
    }
    optional = {
        "networks": _networks(nic),
        "key_name": key_name,
        "user_data": _user_data(user_data),
        "availability_zone": availability_zone,
        "metadata": key_value_pairs(meta or [], "--meta") or None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    created = s.compute_json("POST", "/servers", json={"server": body})
    server = created.get("server") or {}
    if "id" not in server:  # return_reservation_id
        emit(created, lambda: print_properties(created))
        return
    if poll:
        from novalite.cli.nova_wait import wait_for_server

        final = wait_for_server(s, server["id"], f"{name} ({server['id']})")
    else:
        final = s.compute_json("GET", f"/servers/{server['id']}")["server"]
    if server.get("adminPass"):
        final.setdefault("adminPass", server["adminPass"])
    final_image = found_image.get("name")
    emit(final, lambda: print_properties(server_properties(final, final_image)))


# -- list / show --------------------------------------------------------------


@app.command("list")
def list_servers(
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="Servers of all projects (admin).")
    ] = False,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Only servers on this host.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Only names matching this regular expression.")
    ] = None,
) -> None:
    """List servers."""
    params: dict[str, Any] = {"all_tenants": 1} if all_tenants else {}
    filters = {"status": status, "host": host, "name": name}
    params.update({key: value for key, value in filters.items() if value})
    servers = session().compute_list("/servers/detail", "servers", params or None)
    emit(
        servers,
        lambda: print_table(
            server_columns(all_tenants), [server_row(s, all_tenants) for s in servers]
        ),
    )


@app.command()
def show(server: ServerArg) -> None:
    """Show details about the given server."""
    s = session()
    found = get_server(s, server)
    if wants_json():
        emit(found, None)
        return
    print_properties(server_properties(found, image_name(s, found.get("image"))))


# -- delete -------------------------------------------------------------------


@app.command()
def delete(
    servers: ServersArg,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the servers are gone.")] = False,
) -> None:
    """Immediately shut down and delete specified server(s)."""
    s = session()
    deleted: dict[str, str] = {}
    failed = 0
    for ref in servers:
        try:
            found = find_server(s, ref)
            s.compute("DELETE", f"/servers/{found['id']}")
        except CliError as exc:
            error(exc.render())
            failed += 1
            continue
        deleted[found["id"]] = ref
        if not wants_json():
            print(f"Request to delete server {ref} has been accepted.")
    if wait and deleted:
        from novalite.cli.nova_wait import wait_for_delete

        wait_for_delete(s, deleted)
    if wants_json():
        emit([{"id": server_id, "name": ref} for server_id, ref in deleted.items()], None)
    if failed:
        raise CommandError("Unable to delete the specified server(s).")


# -- actions ------------------------------------------------------------------


def _act(refs: list[str], body: dict[str, Any], verb: str) -> None:
    """POST one action to each server; report each failure; fail if any failed."""
    s = session()
    failed = []
    for ref in refs:
        try:
            found = find_server(s, ref)
            s.compute("POST", f"/servers/{found['id']}/action", json=body)
        except CliError as exc:
            error(exc.render())
            failed.append(ref)
            continue
        if not wants_json():
            print(f"Request to {verb} server {ref} has been accepted.")
    if failed:
        raise CommandError(f"Unable to {verb} the specified server(s): {', '.join(failed)}")


@app.command()
def reboot(
    servers: ServersArg,
    hard: Annotated[bool, typer.Option("--hard", help="Hard reboot (power cycle).")] = False,
) -> None:
    """Reboot a server (soft by default)."""
    _act(servers, {"reboot": {"type": "HARD" if hard else "SOFT"}}, "reboot")


def _simple_action(command: str, action: str, verb: str, doc: str) -> None:
    def run(servers: ServersArg) -> None:
        _act(servers, {action: None}, verb)

    run.__doc__ = doc
    app.command(command)(run)


_simple_action("stop", "os-stop", "stop", "Stop the server(s).")
_simple_action("start", "os-start", "start", "Start the server(s).")
_simple_action("pause", "pause", "pause", "Pause the server(s).")
_simple_action("unpause", "unpause", "unpause", "Unpause the server(s).")
_simple_action("suspend", "suspend", "suspend", "Suspend the server(s).")
_simple_action("resume", "resume", "resume", "Resume the server(s).")
_simple_action("lock", "lock", "lock", "Lock the server(s): non-admins cannot act on them.")
_simple_action("unlock", "unlock", "unlock", "Unlock the server(s).")


@app.command("console-log")
def console_log(
    server: ServerArg,
    length: Annotated[int | None, typer.Option("--length", help="Only the last N lines.")] = None,
) -> None:
    """Get console log output of a server."""
    s = session()
    found = find_server(s, server)
    request: dict[str, Any] = {} if length is None else {"length": length}
    body = s.compute_json(
        "POST", f"/servers/{found['id']}/action", json={"os-getConsoleOutput": request}
    )
    if wants_json():
        emit(body, None)
        return
    output = str(body.get("output") or "")
    print(output, end="" if output.endswith("\n") or not output else "\n")


@app.command("instance-action-list")
def instance_action_list(server: ServerArg) -> None:
    """List the actions (history) of a server."""
    s = session()
    found = find_server(s, server)
    actions = s.compute_json("GET", f"/servers/{found['id']}/os-instance-actions").get(
        "instanceActions", []
    )
    columns = ["Action", "Request_ID", "Message", "Start_Time"]
    keys = ["action", "request_id", "message", "start_time"]
    if s.microversion_at_least(2, 58):
        columns.append("Updated_At")
        keys.append("updated_at")
    emit(actions, lambda: print_table(columns, [[a.get(k) for k in keys] for a in actions]))
