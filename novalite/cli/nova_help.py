"""`nova help [COMMAND]`, as python-novaclient has it: every command with its one-line
description, or one command's options; an unknown command is an error (exit 1)."""

from __future__ import annotations

from typing import Annotated

import typer

from novalite.cli.nova_app import app


@app.command("help")
def help_command(
    command: Annotated[
        str | None, typer.Argument(metavar="command", help="The command to describe.")
    ] = None,
) -> None:
    """Display help about this program or one of its subcommands."""
    from typer.core import TyperGroup

    from novalite.cli.nova_app import build_command
    from novalite.cli.nova_errors import CommandError

    nova = build_command([])  # every command, as `nova --help` shows them
    context = typer.Context(nova, info_name="nova", **nova.context_settings)
    if command is None:
        typer.echo(nova.get_help(context))
        return
    assert isinstance(nova, TyperGroup)
    subcommand = nova.get_command(context, command)
    if subcommand is None:
        raise CommandError(f"'{command}' is not a valid subcommand")
    typer.echo(subcommand.get_help(typer.Context(subcommand, info_name=command,
                                                 parent=context)))
