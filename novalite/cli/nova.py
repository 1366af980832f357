"""`nova`: novalite's own command-line client (novaclient's command names and output).

Entry point `main()`. Only typer, rich, httpx, PyYAML and the standard
library are used, most of them imported on first use; nothing of the server
side (database, trio, web framework) is imported. What keeps ``nova list``
near its 0.3 s budget, biggest first:

* httpx is imported without trio, anyio and h2, which httpcore would
  otherwise load eagerly (`client.lean_imports`, ~110 ms);
* typer's pydantic-based value coercion is replaced for our plain parameter
  types (`nova_params`, ~140 ms);
* the Keystone token, catalog and microversion are cached privately on disk
  (`nova_token_cache`: no password hash on the server, two round trips fewer);
* only the subcommand being run is built (`nova_app.build_command`, ~15 ms).

Every failure ends as one ``ERROR (<Title>): <message>`` line on stderr and a
non-zero exit status, never a traceback (``--debug`` shows unexpected ones).
"""

from __future__ import annotations

import sys
from importlib import import_module

from novalite.cli.nova_app import STATE, build_command, hoist_format_option

INTERRUPTED_EXIT = 130
# Commands are listed in the order they register: server commands first.
COMMAND_MODULES = ("novalite.cli.nova_servers", "novalite.cli.nova_listings",
                   "novalite.cli.nova_tenancy", "novalite.cli.nova_images",
                   "novalite.cli.nova_help")

for _module in COMMAND_MODULES:
    import_module(_module)


def main(argv: list[str] | None = None) -> None:
    """Run the `nova` command line and exit with its status."""
    from novalite.cli.client import lean_imports
    from novalite.cli.credentials import CredentialsError
    from novalite.cli.nova_errors import CliError
    from novalite.cli.output import error

    lean_imports()
    args = hoist_format_option(list(sys.argv[1:] if argv is None else argv))
    try:
        build_command(args).main(args=args, prog_name="nova")
    except CliError as exc:
        error(exc.render())
        sys.exit(exc.exit_code)
    except CredentialsError as exc:
        error(f"ERROR (CommandError): {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        error("... terminating nova client")
        sys.exit(INTERRUPTED_EXIT)
    except Exception as exc:  # the promise: never a traceback, unless asked for
        if STATE.debug:
            raise
        error(f"ERROR ({type(exc).__name__}): {exc}")
        sys.exit(1)
    finally:
        if STATE.session is not None:
            STATE.session.close()


if __name__ == "__main__":
    main()
