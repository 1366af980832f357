"""``novalite``: run the service and administer it (serve, db sync, service list, drivers)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer

app = typer.Typer(help="OpenStack Nova, with Keystone and Glance subsets, as one process.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
service_app = typer.Typer(help="Compute services (nova-manage style).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(service_app, name="service")

ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", envvar="NOVALITE_CONFIG",
                                               help="Path to novalite.toml.")]


def _fail(message: str) -> None:
    typer.echo(f"novalite: error: {message}", err=True)
    raise typer.Exit(1)


def _config(path: str | None, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    from novalite.config import load
    from novalite.exceptions import ConfigError

    try:
        return load(path, environ)
    except ConfigError as exc:
        _fail(exc.message)


def _state_path_option(value: str | None) -> str | None:
    """--state-path: a directory, or a path where one can be made."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("expected a directory, got an empty path")
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.exists(path) and not os.path.isdir(path):
        raise typer.BadParameter(f"{path} exists and is not a directory")
    return path


def _port_option(value: int | None) -> int | None:
    if value is not None and not 0 < value < 65536:
        raise typer.BadParameter(f"{value}: expected a TCP port (1-65535)")
    return value


# (Help texts are rich markup: "\\[" is a literal bracket.)
PortOpt = Annotated[int | None, typer.Option(
    "--port", "-p", callback=_port_option, show_default=False,
    help="TCP port of the API listener (default 8774). Overrides \\[api] port and "
         "NOVALITE_API__PORT.")]
StatePathOpt = Annotated[str | None, typer.Option(
    "--state-path", callback=_state_path_option, show_default=False,
    help="Directory of all state: database, images, guests, clouds.yaml, openrc "
         "(default ~/.local/share/novalite). Overrides \\[DEFAULT] state_path and "
         "NOVALITE_STATE_PATH. One novalite serve per directory.")]


def serve_environ(environ: dict[str, str], port: int | None, state_path: str | None
                  ) -> dict[str, str]:
    """``environ`` with the command line's settings as the configuration's environment
    overrides: the command line wins over the environment, which wins over the file."""
    out = dict(environ)
    if port is not None:
        out["NOVALITE_API__PORT"] = str(port)
    if state_path is not None:
        out.pop("NOVALITE_DEFAULT__STATE_PATH", None)  # it would win over the shorthand
        out["NOVALITE_STATE_PATH"] = state_path
    return out


RoleOpt = Annotated[str, typer.Option(
    "--role", envvar="NOVALITE_ROLE",
    help="all: everything in one process. control: API, conductor, scheduler (owns the "
         "database). compute: the compute hosts of \\[compute] hosts, no database. "
         "control and compute talk over \\[DEFAULT] transport_url (RabbitMQ).")]


@app.command()
def serve(config: ConfigOpt = None, port: PortOpt = None, state_path: StatePathOpt = None,
          role: RoleOpt = "all") -> None:
    """Run novalite: API, scheduler, conductor and compute in one process (or one role)."""
    from novalite import log
    from novalite.conductor.lease import LeaseLost
    from novalite.exceptions import ConfigError

    cfg = _config(config, serve_environ(dict(os.environ), port, state_path))
    log.setup(cfg.logging.level, cfg.logging.format)
    try:
        from novalite.service import serve as run

        run(cfg, role)
    except (ConfigError, LeaseLost) as exc:
        _fail(exc.message)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # an actor failed: say so loudly, with the cause
        import structlog

        structlog.get_logger("novalite").exception("novalite failed", error=repr(exc))
        _fail(f"the service stopped because an actor failed: {exc!r}")


@app.command()
def version() -> None:
    """Print novalite's version and its driver contract version."""
    from novalite import __version__
    from novalite.virt.driver import CONTRACT_VERSION

    typer.echo(f"novalite {__version__} (driver contract {CONTRACT_VERSION})")


@app.command()
def drivers(fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table"
            ) -> None:
    """List installed hypervisor drivers and scheduler plugins, their versions, and
    whether each loads and can run here (and why not), and what driver "auto" picks."""
    from novalite.exceptions import ConfigError
    from novalite.scheduler import plugins
    from novalite.virt.driver import CONTRACT_VERSION
    from novalite.virt.registry import auto_select, discover

    drivers = discover()
    rows: list[dict[str, Any]]  # JSON rows: strings, booleans, None
    rows = [{"kind": "driver", "name": e.name, "distribution": e.distribution,
             "version": e.version, "contract": e.contract, "target": e.target,
             "usable": e.usable, "broken": e.broken, "status": e.status}
            for e in drivers.values()]
    for kind in ("filter", "weigher"):
        rows += [{"kind": kind, "name": p.name, "distribution": p.distribution,
                  "version": p.version, "contract": None, "target": p.target,
                  "usable": p.error is None, "broken": p.error is not None,
                  "status": p.status} for p in plugins.discover(kind).values()]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("Kind", "Name", "Distribution", "Version", "Contract", "Status",
                  title=f"driver contract {CONTRACT_VERSION}")
    for r in rows:
        short = r["status"].split(":", 1)[0]
        table.add_row(r["kind"], r["name"], r["distribution"], r["version"],
                      r["contract"] or "-", short)
    # Piped output keeps whole names (rich would squeeze the table to 80 columns).
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    # The reasons in full, one line each (a table cell would wrap or cut them).
    for r in rows:
        if r["status"] != "usable":
            typer.echo(f"{r['kind']} {r['name']} ({r['distribution']} {r['version']}): "
                       f"{r['status']}")
    name = None
    try:
        name, why = auto_select(drivers)
        typer.echo(f'[compute] driver = "auto" runs {name}: {why}')
    except ConfigError as exc:
        typer.echo(exc.message)
    from novalite.network.host import choose_mode
    chosen = drivers[name].cls if name is not None else None
    mode, why = choose_mode("auto", name, chosen is not None and bool(
        chosen.capabilities.get("supports_host_bridge")))
    typer.echo(f'[network] driver = "auto" runs {mode} (with {name}): {why}')


@db_app.command("sync")
def db_sync(config: ConfigOpt = None) -> None:
    """Create the database or upgrade it to this novalite's schema."""
    from novalite.db import migrate
    from novalite.db.engine import make_engine
    from novalite.exceptions import ConfigError

    cfg = _config(config)
    try:
        engine = make_engine(cfg.database.connection)
        before, after = migrate.sync(engine)
    except ConfigError as exc:
        _fail(exc.message)
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        typer.echo(f"{url}: already at schema revision {after}")
    else:
        typer.echo(f"{url}: upgraded from {before or 'empty'} to schema revision {after}")


@service_app.command("list")
def service_list(config: ConfigOpt = None) -> None:
    """List services with nova-manage's `:-)` (up) and `XXX` (down)."""
    from sqlmodel import Session, select

    from novalite.db.engine import make_engine
    from novalite.db.models import Service, utcnow

    cfg = _config(config)
    engine = make_engine(cfg.database.connection)
    try:
        with Session(engine) as s:
            services = s.exec(select(Service).order_by(Service.id)).all()  # type: ignore[arg-type]
    except Exception as exc:
        _fail(f"cannot read services from {cfg.database.connection}: {exc}")
    fmt = "{:<16} {:<24} {:<10} {:<9} {:<6} {}"
    typer.echo(fmt.format("Binary", "Host", "Zone", "Status", "State", "Updated_At"))
    for svc in services:
        age = (utcnow() - svc.updated_at).total_seconds() if svc.updated_at else None
        up = age is not None and age < cfg.compute.service_down_time and not svc.forced_down
        typer.echo(fmt.format(svc.binary, svc.host, svc.availability_zone,
                              "disabled" if svc.disabled else "enabled", ":-)" if up else "XXX",
                              svc.updated_at.isoformat() if svc.updated_at else "-"))
    from novalite.network.host import read_mode
    recorded = read_mode(os.path.join(cfg.state_path, "network"))
    if recorded is not None:
        typer.echo(f"Network: {recorded[0]} ({recorded[1]})")
    else:
        typer.echo(f'Network: no service has run on {cfg.state_path} yet ([network] driver = '
                   f'"{cfg.network.driver}")')


def _register_admin() -> None:
    from novalite.cli import admin

    admin.register(app)


_register_admin()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
