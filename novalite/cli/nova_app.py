"""The `nova` typer application, its global options and the per-process session.

Command modules (`nova_servers`, `nova_listings`) register on `app`; the
session is built on first use, so ``nova --help`` touches no credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from novalite.cli.client import Session

FORMAT_OPTIONS = ("-f", "--format")
HELP_OPTIONS = ["-h", "--help"]


class OutputFormat(StrEnum):
    """How results are printed."""

    table = "table"
    json = "json"


@dataclass
class State:
    """Process-wide settings from the global options."""

    format: OutputFormat = OutputFormat.table
    debug: bool = False
    session: Session | None = None


STATE = State()

app = typer.Typer(
    name="nova",
    help="Command-line client for novalite's compute API (OpenStack Nova v2.1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    epilog='See "nova help COMMAND" for help on a specific command.',
    context_settings={"help_option_names": HELP_OPTIONS, "max_content_width": 100},
)


@app.callback()
def global_options(
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            *FORMAT_OPTIONS,
            help="Output format: 'table' for people, 'json' for programs "
            "(may also follow the subcommand).",
            case_sensitive=False,
        ),
    ] = OutputFormat.table,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")
    ] = False,
) -> None:
    """Command-line client for novalite's compute API (OpenStack Nova v2.1).

    Credentials come from OS_* variables, OS_CLOUD + clouds.yaml, or the
    clouds.yaml that `novalite serve` writes to its state directory.
    """
    STATE.format = output_format
    STATE.debug = debug


def session() -> Session:
    """The authenticated session of this process, built on first use."""
    if STATE.session is None:
        from novalite.cli.client import Session
        from novalite.cli.credentials import load_credentials

        STATE.session = Session(load_credentials())
    return STATE.session


def wants_json() -> bool:
    return STATE.format is OutputFormat.json


def emit(data: Any, render: Any) -> None:
    """Print ``data`` as JSON with ``-f json``, else call ``render()`` for a table."""
    if wants_json():
        from novalite.cli.output import print_json

        print_json(data)
    else:
        render()


def key_value_pairs(values: list[str], option: str) -> dict[str, str]:
    """``["k=v", ...]`` of a repeatable ``option`` as a dict; a value without ``=`` or
    with an empty key is an error naming the option."""
    from novalite.cli.nova_errors import CommandError

    out = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"{option} expects key=value, got '{pair}'")
        out[key] = value
    return out


def command_name_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (after the global options), if any."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in FORMAT_OPTIONS:
            index += 2
        elif token.startswith("-"):
            index += 1
        else:
            return token
    return None


def build_command(argv: list[str]) -> Any:
    """The click command to run ``argv``: only the named subcommand is built when it exists
    (building all of them costs ~20 ms), with fast value coercion installed."""
    from copy import copy

    from typer.main import get_command, get_command_name

    from novalite.cli.nova_params import install_fast_coercion

    name = command_name_in(argv)
    wanted = [
        info
        for info in app.registered_commands
        if info.callback is not None
        and (info.name or get_command_name(info.callback.__name__)) == name
    ]
    target = app
    if wanted:
        target = copy(app)
        target.registered_commands = wanted
    command = get_command(target)
    install_fast_coercion(command, HELP_OPTIONS)
    if not wanted:  # the help lists every command: each with its whole first paragraph
        for subcommand in getattr(command, "commands", {}).values():
            if not subcommand.short_help and subcommand.help:
                subcommand.short_help = " ".join(subcommand.help.split("\n\n")[0].split())
    return command


def hoist_format_option(argv: list[str]) -> list[str]:
    """Move ``-f X`` / ``--format X`` / ``--format=X`` given after the subcommand to the front,
    so ``nova list -f json`` works like ``nova -f json list``."""
    moved: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            rest.extend(argv[index:])
            break
        if token in FORMAT_OPTIONS and index + 1 < len(argv):
            moved += [token, argv[index + 1]]
            index += 2
            continue
        if token.startswith("--format=") or (token.startswith("-f") and len(token) > 2):
            moved.append(token)
        else:
            rest.append(token)
        index += 1
    return moved + rest
