"""`novalite project|user create` and `novalite policy`: administration without a
Keystone client. They work on the configured database directly, so they also work
while the service is stopped; each prints what it created."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import typer

project_app = typer.Typer(help="Projects (Keystone, domain Default).", no_args_is_help=True)
user_app = typer.Typer(help="Users (Keystone, domain Default).", no_args_is_help=True)
ConfigOpt = Annotated[str | None, typer.Option("--config", envvar="NOVALITE_CONFIG",
                                               help="Path to novalite.toml.")]


def _run(config: str | None, work: Any) -> Any:
    """Run ``work(admin)`` (an async function of an IdentityAdmin) on the configured DB."""
    import trio

    from novalite.cli.main import _config, _fail
    from novalite.db import migrate
    from novalite.db.engine import Database
    from novalite.exceptions import NovaliteError
    from novalite.identity.admin import IdentityAdmin
    from novalite.identity.service import IdentityService

    cfg = _config(config)
    try:
        db = Database(cfg.database.connection)
        migrate.sync(db.engine)
    except NovaliteError as exc:
        _fail(exc.message)
    identity = IdentityService(db, cfg)

    async def main() -> Any:
        await identity.bootstrap()  # the roles exist, even before the first serve
        return await work(IdentityAdmin(identity))

    try:
        return trio.run(main)
    except NovaliteError as exc:
        _fail(exc.message)
    finally:
        db.close()


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="Project name.")],
    description: Annotated[str, typer.Option("--description")] = "",
    config: ConfigOpt = None,
) -> None:
    """Create a project."""
    project = _run(config, lambda admin: admin.create_project(
        {"name": name, "description": description}))
    typer.echo(f"created project {project.name} (id {project.id})")


@project_app.command("list")
def project_list(config: ConfigOpt = None) -> None:
    """List projects."""
    for p in _run(config, lambda admin: admin.list_projects()):
        typer.echo(f"{p.id}  {p.name}")


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="User name.")],
    project: Annotated[str, typer.Option("--project", help="Project name or id.")],
    role: Annotated[str, typer.Option("--role", help="admin, member or reader.")] = "member",
    password: Annotated[str | None, typer.Option(
        "--password", help="Password; generated and printed when not given.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a user with a role on a project."""
    generated = password is None
    password = password or secrets.token_urlsafe(12)

    async def work(admin: Any) -> Any:
        proj = await admin.get_project(project)
        await admin.get_role(role)
        user = await admin.create_user({"name": name, "password": password,
                                         "default_project_id": proj.id})
        await admin.grant(proj.id, user.id, role)
        return user, proj

    user, proj = _run(config, work)
    typer.echo(f"created user {user.name} (id {user.id}) with role {role} on project "
               f"{proj.name}")
    if generated:
        typer.echo(f"password: {password}")


def policy(fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table"
           ) -> None:
    """Print the policy table: each rule, the roles that pass it and the operations
    (method, path, server action) it guards."""
    from novalite import policy as pol
    from novalite.api.app import policy_operations

    rows = pol.table()
    operations = policy_operations()
    if fmt == "json":
        import json

        typer.echo(json.dumps([{"rule": r, "kind": k, "roles": w.split(", "),
                                "operations": operations.get(r, [])}
                               for r, k, w in rows], indent=2))
        return
    width = max(len(r) for r, _, _ in rows)
    typer.echo(f"{'Rule':<{width}}  {'Kind':<15} {'Who may':<21} Operations")
    for rule, kind, who in rows:
        ops = operations.get(rule) or [""]
        typer.echo(f"{rule:<{width}}  {kind:<15} {who:<21} {ops[0]}".rstrip())
        for op in ops[1:]:
            typer.echo(f"{'':<{width + 2 + 16 + 22}}{op}")


def register(app: typer.Typer) -> None:
    app.add_typer(project_app, name="project")
    app.add_typer(user_app, name="user")
    app.command("policy")(policy)
