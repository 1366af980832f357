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
        if not wants_json():
            _preload_rich()
    return STATE.session


def _preload_rich() -> None:
    """Import rich's table machinery on a thread while the main thread waits on the network.

    httpx is imported first, so the two threads do not import the same modules;
    the main thread's later ``import rich...`` simply waits for this one.
    """
    import threading

    from novalite.cli.client import preload_httpx

    def load() -> None:
        try:
            import rich.console  # noqa: F401
            import rich.markup  # noqa: F401
            import rich.table  # noqa: F401
        except Exception:  # a failure here resurfaces, with its message, at the real import
            return

    preload_httpx()
    threading.Thread(target=load, name="preload-rich", daemon=True).start()


def wants_json() -> bool:
    return STATE.format is OutputFormat.json


def emit(data: Any, render: Any) -> None:
    """Print ``data`` as JSON with ``-f json``, else call ``render()`` for a table."""
    if wants_json():
        from novalite.cli.output import print_json

        print_json(data)
    else:
        render()


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
