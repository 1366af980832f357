"""Key pair, quota and limits commands of `nova` (novaclient's names and output)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from novalite.cli.nova_app import app, emit, session, wants_json
from novalite.cli.nova_errors import CommandError
from novalite.cli.output import print_properties, print_table

QUOTA_KEYS = ("instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups",
              "server_group_members")


# -- key pairs --------------------------------------------------------------------
@app.command("keypair-add")
def keypair_add(
    name: Annotated[str, typer.Argument(help="Name of key.")],
    pub_key: Annotated[Path | None, typer.Option(
        "--pub-key", help="Path to a public SSH key (e.g. ~/.ssh/id_ed25519.pub); without "
        "it a key pair is generated and its private key printed once.")] = None,
) -> None:
    """Create a new key pair for use with servers."""
    s = session()
    body: dict[str, Any] = {"name": name}
    if pub_key is not None:
        try:
            body["public_key"] = pub_key.expanduser().read_text()
        except OSError as exc:
            raise CommandError(f"Can't open '{pub_key}': {exc.strerror}") from None
    if pub_key is not None:
        kp = s.compute_json("POST", "/os-keypairs", json={"keypair": body})["keypair"]
    else:  # generation ended at microversion 2.92
        kp = s.compute_at("2.91", "POST", "/os-keypairs", {"keypair": body})["keypair"]
    if wants_json():
        emit(kp, None)
    elif "private_key" in kp:
        print(kp["private_key"], end="" if kp["private_key"].endswith("\n") else "\n")


@app.command("keypair-list")
def keypair_list() -> None:
    """Print a list of key pairs for a user."""
    items = [k["keypair"] for k in session().compute_json("GET", "/os-keypairs")["keypairs"]]
    emit(items, lambda: print_table(["Name", "Type", "Fingerprint"],
                                    [[k["name"], k.get("type", "ssh"), k["fingerprint"]]
                                     for k in items]))


@app.command("keypair-show")
def keypair_show(name: Annotated[str, typer.Argument(help="Name of key.")]) -> None:
    """Show details about the given key pair."""
    kp = session().compute_json("GET", f"/os-keypairs/{name}")["keypair"]
    emit(kp, lambda: print_properties({k: kp.get(k) for k in (
        "created_at", "fingerprint", "id", "name", "public_key", "type", "user_id")}))


@app.command("keypair-delete")
def keypair_delete(name: Annotated[str, typer.Argument(help="Name of key.")]) -> None:
    """Delete a key pair."""
    session().compute("DELETE", f"/os-keypairs/{name}")


# -- quotas and limits ----------------------------------------------------------------
def _project(s: Any, tenant: str | None) -> str:
    if tenant:
        return tenant
    s.authenticate()
    return str(s.project_id)


def _quota_rows(quota_set: dict[str, Any]) -> dict[str, Any]:
    return {k: quota_set[k] for k in QUOTA_KEYS if k in quota_set}


@app.command("quota-show")
def quota_show(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Project ID (admin for "
                                                "others').")] = None,
) -> None:
    """List the quotas for a project (the caller's by default)."""
    s = session()
    qs = s.compute_json("GET", f"/os-quota-sets/{_project(s, tenant)}")["quota_set"]
    rows = _quota_rows(qs)
    emit(rows, lambda: print_table(["Quota", "Limit"], list(rows.items())))


@app.command("quota-defaults")
def quota_defaults() -> None:
    """List the default quotas."""
    s = session()
    qs = s.compute_json("GET", f"/os-quota-sets/{_project(s, None)}/defaults")["quota_set"]
    rows = _quota_rows(qs)
    emit(rows, lambda: print_table(["Quota", "Limit"], list(rows.items())))


@app.command("quota-update")
def quota_update(
    tenant: Annotated[str, typer.Argument(help="Project ID to update.")],
    instances: Annotated[int | None, typer.Option("--instances")] = None,
    cores: Annotated[int | None, typer.Option("--cores")] = None,
    ram: Annotated[int | None, typer.Option("--ram", help="MiB.")] = None,
    key_pairs: Annotated[int | None, typer.Option("--key-pairs")] = None,
    metadata_items: Annotated[int | None, typer.Option("--metadata-items")] = None,
    server_groups: Annotated[int | None, typer.Option("--server-groups")] = None,
    server_group_members: Annotated[int | None, typer.Option("--server-group-members")] = None,
) -> None:
    """Update the quotas of a project (admin); -1 is unlimited."""
    values = {k: v for k, v in {
        "instances": instances, "cores": cores, "ram": ram, "key_pairs": key_pairs,
        "metadata_items": metadata_items, "server_groups": server_groups,
        "server_group_members": server_group_members}.items() if v is not None}
    if not values:
        raise CommandError("Give at least one quota to update, e.g. --instances 20")
    qs = session().compute_json("PUT", f"/os-quota-sets/{tenant}",
                                json={"quota_set": values})["quota_set"]
    rows = _quota_rows(qs)
    emit(rows, lambda: print_table(["Quota", "Limit"], list(rows.items())))


@app.command("limits")
def limits() -> None:
    """Print the absolute limits and usage of the caller's project."""
    absolute = session().compute_json("GET", "/limits")["limits"]["absolute"]
    pairs = [("Cores", "maxTotalCores", "totalCoresUsed"),
             ("Instances", "maxTotalInstances", "totalInstancesUsed"),
             ("Keypairs", "maxTotalKeypairs", None),
             ("RAM", "maxTotalRAMSize", "totalRAMUsed"),
             ("Server Meta", "maxServerMeta", None),
             ("ServerGroups", "maxServerGroups", "totalServerGroupsUsed"),
             ("ServerGroupMembers", "maxServerGroupMembers", None)]
    rows = [[name, absolute.get(used) if used else None, absolute.get(limit)]
            for name, limit, used in pairs]
    emit(absolute, lambda: print_table(["Name", "Used", "Max"], rows))
