"""``novalite serve``: one trio nursery running the api, conductor, scheduler and compute actors.

Start order is explicit (``nursery.start``): database, scheduler, conductor,
every compute host (adopting its guests), then the API listener. A failing
actor fails the nursery, so the service goes down loudly with the cause.
SIGINT/SIGTERM stop the listener, give in-flight work ``[api] graceful_timeout``
seconds, then end the actors; guests keep running.

Roles (``novalite serve --role``): ``all`` runs everything in one process;
``control`` the API, conductor and scheduler (it owns the database); ``compute`` the
compute hosts of ``[compute] hosts`` and their drivers, with no database connection:
they reach the conductor over the bus (``[DEFAULT] transport_url``).
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

import structlog
import trio

from novalite import __version__
from novalite.config import Config, check_driver_sections
from novalite.exceptions import ConfigError, DatabaseUnavailable
from novalite.rpc import BusError, Clients, Dispatcher, transport_for
from novalite.rpc.compute import topic as compute_topic
from novalite.rpc.conductor import ConductorClient
from novalite.virt import registry
from novalite.virt.driver import Driver, DriverContext

if TYPE_CHECKING:
    from novalite.conductor.lease import ControlLease, LeaseLost

log = structlog.get_logger("novalite.service")

#: What ``novalite serve --role`` runs: everything, the control plane, or compute hosts.
ROLES = ("all", "control", "compute")


def choose_driver(cfg: Config) -> tuple[str, str]:
    """The driver to run and why: the configured one, or for "auto" the installed driver
    that volunteers first (the built-ins: kvm, qemu, then fake)."""
    if cfg.compute.driver != "auto":
        return cfg.compute.driver, "configured in [compute] driver"
    return registry.auto_select()


class Service:
    """Everything one ``novalite serve`` owns."""

    def __init__(self, cfg: Config, role: str = "all") -> None:
        self.cfg = cfg
        if role not in ROLES:
            raise ConfigError(f"--role {role}: expected one of {', '.join(ROLES)}")
        if role != "all" and not cfg.DEFAULT.transport_url:
            raise ConfigError(f"--role {role} needs [DEFAULT] transport_url (rabbit://...): "
                              "the other roles run in other processes")
        self.role = role
        #: Everything between actors crosses this (one process: the in-memory transport).
        self.transport = transport_for(cfg.DEFAULT.transport_url)
        self.rpc = Clients(self.transport)
        self.started_at = time.monotonic()
        self.driver_name, self.driver_reason = choose_driver(cfg)
        self.driver_cls: type[Driver] = registry.load_driver(self.driver_name)
        found = registry.discover()
        for entry in found.values():  # broken plugins other than ours: say so, carry on
            if entry.broken and entry.name != self.driver_name:
                log.warning("driver plugin is broken; not loaded", driver=entry.name,
                            distribution=entry.distribution, version=entry.version,
                            error=entry.error, hint="novalite drivers")
        installed = set(found)
        check_driver_sections(self.cfg, installed)
        self.driver_options = cfg.driver_options(self.driver_name,
                                                 dict(self.driver_cls.option_defaults))
        self.metadata_proxy: Any = None  # set by start_metadata
        self.ready = trio.Event()
        self.stopping = trio.Event()
        self.api_done = trio.Event()
        #: Set when another control process took the control lease (the process stops).
        self.lease_lost: LeaseLost | None = None

    # -- database and first-start bootstrap --------------------------------------
    async def open_database(self) -> None:
        from novalite.db import migrate
        from novalite.db.engine import Database

        self.db = Database(self.cfg.database.connection)
        before, head = await trio.to_thread.run_sync(migrate.sync, self.db.engine)
        if before != head:
            log.info("database schema ready", revision=head, was=before or "empty")

    async def bootstrap(self) -> None:
        from novalite import bootstrap
        from novalite.identity.service import IdentityService
        from novalite.image.service import ImageService

        self.images = ImageService(self.db, self.cfg)
        await self.images.recover()  # uploads a crash interrupted: back to queued, no .part
        if self.cfg.keystone_authtoken.auth_url:
            from novalite.identity.external import ExternalIdentity

            external = ExternalIdentity(self.cfg)
            await external.bootstrap()
            self.identity: IdentityService | ExternalIdentity = external
        else:
            embedded = IdentityService(self.db, self.cfg)
            password = await embedded.bootstrap()
            self.identity = embedded
            clouds = bootstrap.write_clouds_yaml(self.cfg, password)
            if clouds:
                log.info("admin credentials written", clouds_yaml=clouds, cloud="novalite",
                         hint=f"export OS_CLIENT_CONFIG_FILE={clouds} OS_CLOUD=novalite")
        await bootstrap.default_flavors(self.db)
        from novalite.network.ports import ensure_default_network

        await self.db.write(lambda s: ensure_default_network(s, self.cfg))
        if self.cfg.glance.api_servers:
            log.info("images are served by an external Glance; no demo image registered",
                     glance=self.cfg.glance.api_servers[0])
        else:
            await bootstrap.demo_image(self.images, self.driver_cls, self.cfg)

    # -- actors ----------------------------------------------------------------------
    async def run_actor(self, topic: str, endpoint: object, *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(topic, endpoint).serve, self.transport)
            log.info("actor ready", actor=topic)
            task_status.started()

    async def run_compute(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                          ) -> None:
        from novalite.compute.host.consoles import ConsoleRelay
        from novalite.compute.host.fleet import BATCH_TIMEOUT, ComputeFleet
        from novalite.compute.host.image_cache import ImageCache
        from novalite.compute.host.manager import ComputeManager
        from novalite.image.glance_client import image_api_url
        from novalite.network.host import HostNetwork, NetworkSetupError, choose_mode, write_mode

        # The compute side holds the image API's URL: here derived from this process's
        # own configuration; a compute host on another machine is configured with it.
        cache = ImageCache(os.path.join(self.cfg.state_path, "image-cache"),
                           self.cfg.compute.image_api_url or image_api_url(self.cfg),
                           max_age=self.cfg.image.cache_max_age)
        managers = []
        relay = ConsoleRelay(self.cfg.vnc.server_listen, self.cfg.vnc.server_proxyclient_address)
        events_send, events_recv = trio.open_memory_channel[Any](1000)
        host_network = None
        try:
            mode, why = choose_mode(self.cfg.network.driver, self.driver_name, bool(
                self.driver_cls.capabilities.get("supports_host_bridge")))
        except NetworkSetupError as exc:
            raise ConfigError(str(exc)) from None
        log.info("network mode", mode=mode, why=why)
        write_mode(os.path.join(self.cfg.state_path, "network"), mode, why)
        if mode == "bridge":
            host_network = HostNetwork(os.path.join(self.cfg.state_path, "network"),
                                       table=self.cfg.network.nft_table,
                                       domain=self.cfg.metadata.dhcp_domain or "novalocal")
        for host in self.cfg.host_names:
            context = DriverContext(
                host=host,
                state_path=os.path.join(self.cfg.state_path, "drivers", self.driver_name, host),
                # Several hosts in one process: one instance directory each (a guest
                # moving between them is in two places at once); one host: "instances".
                instances_path=os.path.join(self.cfg.state_path, "instances",
                                            *([host] if len(self.cfg.host_names) > 1
                                              else [])),
                options=dict(self.driver_options), vnc_enabled=self.cfg.vnc.enabled,
                serial_console_enabled=self.cfg.serial_console.enabled)
            driver = self.driver_cls(context)
            relay.add_host(host, driver)
            manager = ComputeManager(host, driver, self.rpc.conductor,
                                     availability_zone=self.cfg.compute.availability_zone,
                                     image_cache=cache,
                                     shutdown_timeout=self.cfg.compute.shutdown_timeout,
                                     events=events_send, consoles=relay,
                                     metadata=self.metadata_proxy,
                                     dhcp_domain=self.cfg.metadata.dhcp_domain,
                                     network=host_network)
            context.emit_event = manager.emit_event
            managers.append(manager)
        self.managers = managers
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(relay.serve)  # consoles reach guests through it
                if host_network is not None:  # re-creates what guests need, before adoption
                    await nursery.start(host_network.run)
                for m in managers:  # every topic exists before the first host reports
                    dispatcher = Dispatcher(compute_topic(m.host), m)
                    inbox = await self.transport.listen(dispatcher.topic)
                    nursery.start_soon(dispatcher.serve_inbox, self.transport, inbox)
                # Periodic tasks run batched for all hosts: thousands of hosts stay light.
                fleet = ComputeFleet(managers, ConductorClient(self.transport, BATCH_TIMEOUT),
                                     self.cfg.compute, events_recv)
                await fleet.start()
                for m in managers:  # the drivers' own background tasks (Driver.run)
                    await nursery.start(m.run_driver)
                nursery.start_soon(fleet.run)
                if managers:  # one cache shared by this process's hosts: one pruner
                    nursery.start_soon(managers[0].periodic, self.cfg.image.cache_prune_interval,
                                       cache.prune)
                log.info("actor ready", actor="compute", hosts=len(managers),
                         driver=self.driver_name)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                for m in managers:
                    try:
                        await m.driver.cleanup_host()
                    except Exception:
                        log.exception("driver cleanup failed", host=m.host)
                await cache.api.aclose()

    async def start_metadata(self, nursery: trio.Nursery) -> None:
        """nova-api-metadata on its listener, and the compute hosts' relay to it
        (:mod:`novalite.metadata`)."""
        import secrets

        from novalite.metadata import service as metadata
        from novalite.metadata.proxy import MetadataProxy, default_socket_dir

        md = self.cfg.metadata
        try:
            sock = metadata.bind(md.metadata_listen, md.metadata_listen_port)
        except OSError as exc:
            raise ConfigError(f"[metadata] cannot listen on {md.metadata_listen}:"
                              f"{md.metadata_listen_port}: {exc.strerror or exc}") from None
        port = sock.getsockname()[1]
        secret = md.metadata_proxy_shared_secret or secrets.token_hex(32)
        app = metadata.MetadataApp(self.db, secret, md.dhcp_domain)
        await nursery.start(metadata.serve, app, sock, self.stopping)
        url = md.metadata_url or f"http://{md.metadata_listen}:{port}"
        self.metadata_proxy = MetadataProxy(
            md.socket_dir or default_socket_dir(self.cfg.state_path), url, secret)
        await nursery.start(self.metadata_proxy.run)
        log.info("actor ready", actor="metadata", url=url)

    async def run_api(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                      ) -> None:
        """Serve the API until ``stopping`` (:mod:`novalite.api.listener`)."""
        from hypercorn.config import Config as HypercornConfig

        from novalite import metrics
        from novalite.api import listener
        from novalite.api.app import build_app
        from novalite.compute.api import ComputeAPI
        from novalite.compute.hosts import HostAPI

        compute = ComputeAPI(self.db, self.cfg, self.rpc)
        hosts = HostAPI(self.db, self.cfg, self.rpc.scheduler, flavor_cache=compute.flavors)
        app = build_app(self.identity, self.images, compute, hosts)
        metrics.on_scrape(self.count_instances)
        hc = HypercornConfig()
        hc.bind = [f"{self.cfg.api.host}:{self.cfg.api.port}"]
        if self.cfg.vnc.novncproxy_port:  # the console proxy on a port of its own too
            hc.bind.append(f"{self.cfg.api.host}:{self.cfg.vnc.novncproxy_port}")
        hc.accesslog = None
        hc.errorlog = None
        hc.graceful_timeout = self.cfg.api.graceful_timeout
        hc.include_server_header = False
        api = self.cfg.api
        limits = listener.ConnectionLimits(
            keep_alive_timeout=api.keep_alive_timeout, header_timeout=api.header_timeout,
            client_socket_timeout=api.client_socket_timeout,
            max_connections=api.max_connections, backlog=api.backlog)
        log.info("api listener limits", keep_alive_timeout=limits.keep_alive_timeout,
                 header_timeout=limits.header_timeout,
                 client_socket_timeout=limits.client_socket_timeout,
                 max_connections=listener.connection_cap(limits.max_connections))
        try:
            await listener.serve(app, hc, limits, shutdown_trigger=self.stopping.wait,
                                 task_status=task_status)
        except (OSError, BaseExceptionGroup) as exc:
            # The bind fails inside the listener's nursery: an OSError, or a group of them.
            error = _only_oserror(exc)
            if error is None:
                raise
            raise ConfigError(f"cannot listen on {self.cfg.api.host}:{self.cfg.api.port}: "
                              f"{error.strerror or error}") from None
        finally:
            self.api_done.set()

    async def count_instances(self) -> None:
        """Refresh ``novalite_instances{host, vm_state}`` (before each metrics scrape)."""
        from sqlmodel import col, func, select

        from novalite import metrics
        from novalite.db.models import Instance

        rows = await self.db.read(lambda s: s.exec(
            select(Instance.host, Instance.vm_state, func.count()).where(
                col(Instance.deleted) == 0).group_by(Instance.host, Instance.vm_state)).all())
        metrics.set_instances({(host or "", state): int(n) for host, state, n in rows})

    # -- the whole service ---------------------------------------------------------------
    async def run(self) -> None:
        if self.role == "compute":
            await self.run_compute_role()
            return
        from novalite.conductor.lease import ControlLease
        from novalite.conductor.manager import ConductorManager
        from novalite.conductor.recovery import reconcile_at_start
        from novalite.scheduler.manager import SchedulerManager

        log.info("novalite starting", version=__version__, config=self.cfg.source,
                 state_path=self.cfg.state_path, driver=self.driver_name,
                 why=self.driver_reason, hosts=len(self.cfg.host_names))
        _check_port(self.cfg.api.host, self.cfg.api.port)
        await self.open_database()
        await self.bootstrap()
        # Over a broker, other control processes may share the database: the scheduler,
        # recovery and the periodic checks run in the one holding the control lease.
        lease = (ControlLease(self.db, self.cfg.compute.service_down_time)
                 if self.cfg.DEFAULT.transport_url else None)
        leading = lease is None or await lease.acquire()
        scheduler = SchedulerManager(self.db, self.cfg)
        conductor = ConductorManager(self.db, self.cfg, self.transport)
        if leading:
            await reconcile_at_start(self.db)  # what a crash left; before any claim loads
            await scheduler.load()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.watch_signals, nursery.cancel_scope)
                if leading:
                    await nursery.start(self.lead, lease, scheduler, conductor,
                                        nursery.cancel_scope)
                else:
                    assert lease is not None  # only a process with a lease stands by
                    nursery.start_soon(self.stand_by, lease, scheduler, conductor,
                                       nursery.cancel_scope)
                await nursery.start(self.run_actor, "conductor", conductor)
                await self.start_metadata(nursery)
                if self.role == "all":
                    await nursery.start(self.run_compute)
                self.images.nursery = nursery  # web-download imports run here
                await nursery.start(self.run_api)
                log.info("novalite ready", url=self.cfg.public_url,
                         seconds=round(time.monotonic() - self.started_at, 3))
                self.ready.set()
                await self.api_done.wait()
                # The listener has drained; give casts in flight a moment, then stop actors.
                with trio.move_on_after(min(2.0, self.cfg.api.graceful_timeout)):
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if lease is not None and self.lease_lost is None:
                    with trio.move_on_after(5):
                        try:
                            await lease.release()  # a standby takes over at once
                        except Exception:
                            log.warning("control lease not released", exc_info=True)
                await self.transport.aclose()
            self.db.close()
        if self.lease_lost is not None:
            raise self.lease_lost
        log.info("novalite stopped; guests keep running")

    async def stand_by(self, lease: ControlLease, scheduler: Any, conductor: Any,
                       stop: trio.CancelScope) -> None:
        """Until this process holds the control lease: poll for it; then lead."""
        period = lease.ttl / 3
        said = False
        while True:
            try:
                if await lease.acquire():
                    break
                if not said:
                    held = await lease.held_by()
                    log.info("control standby: another control process schedules",
                             holder=held[0] if held else None, lease=lease.holder)
                    said = True
            except DatabaseUnavailable:
                log.warning("control lease not checked: the database is unavailable")
            await trio.sleep(period)
        from novalite.conductor.recovery import reconcile_at_start

        log.warning("control lease taken over: this process schedules now", lease=lease.holder)
        # What the last holder left in flight, but the builds this process's own
        # conductor is carrying; then the claims as the database has them.
        await reconcile_at_start(self.db, in_flight=set(conductor.in_flight))
        await scheduler.load()
        await self.lead(lease, scheduler, conductor, stop)

    async def lead(self, lease: ControlLease | None, scheduler: Any, conductor: Any,
                   stop: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The scheduler, the periodic checks, and (with a lease) its renewal: when the
        lease turns out to be another process's, the whole process stops (LeaseLost)."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run_actor, "scheduler", scheduler)
            nursery.start_soon(conductor.watch_builds)
            nursery.start_soon(conductor.watch_soft_deleted)
            nursery.start_soon(conductor.finish_interrupted_detaches)
            task_status.started()
            if lease is None:
                return
            if self.ready.is_set():
                log.info("control lease held", lease=lease.holder)
            while True:
                await trio.sleep(lease.ttl / 3)
                try:
                    held = await lease.acquire()
                except DatabaseUnavailable:
                    continue  # nobody else can take it meanwhile
                if not held:
                    from novalite.conductor.lease import LeaseLost

                    owner = await lease.held_by()
                    self.lease_lost = LeaseLost(
                        f"another control process ({owner[0] if owner else 'unknown'}) took "
                        f"the control lease this one scheduled by; stopping so that one "
                        f"process schedules (start this one again: it waits as a standby)")
                    log.critical("control lease lost", lease=lease.holder,
                                 holder=owner[0] if owner else None)
                    self.stopping.set()
                    stop.cancel()  # at once: no scheduling from here on
                    return

    async def run_compute_role(self) -> None:
        """``--role compute``: this machine's compute hosts, no database; the conductor
        (a control process) is reached over the bus and waited for at start."""
        log.info("novalite starting", version=__version__, config=self.cfg.source,
                 role=self.role, state_path=self.cfg.state_path, driver=self.driver_name,
                 why=self.driver_reason, hosts=len(self.cfg.host_names))
        md = self.cfg.metadata
        if md.metadata_url and md.metadata_proxy_shared_secret:
            from novalite.metadata.proxy import MetadataProxy, default_socket_dir

            self.metadata_proxy = MetadataProxy(
                md.socket_dir or default_socket_dir(self.cfg.state_path), md.metadata_url,
                md.metadata_proxy_shared_secret)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.watch_signals, nursery.cancel_scope)
                if self.metadata_proxy is not None:
                    await nursery.start(self.metadata_proxy.run)
                await self.wait_for_conductor()
                await nursery.start(self.run_compute)
                log.info("novalite ready", role=self.role, hosts=self.cfg.host_names,
                         seconds=round(time.monotonic() - self.started_at, 3))
                self.ready.set()
                await self.stopping.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.transport.aclose()
        log.info("novalite stopped; guests keep running")

    async def wait_for_conductor(self) -> None:
        """Until a conductor answers over the bus (back-off 0.5 s doubling to 10 s)."""
        from novalite.context import RequestContext

        delay = 0.5
        while True:
            try:
                await self.rpc.conductor.instances_on_hosts(RequestContext.system(), [],
                                                            brief=True)
                return
            except BusError as exc:  # no conductor yet, or no broker: wait
                log.warning("waiting for a conductor", error=str(exc), retry_in=delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def watch_signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.stopping.is_set():
                    log.warning("second signal: stopping now")
                    scope.cancel()
                    return
                log.info("signal received; stopping", signal=signal.Signals(signum).name,
                         graceful_timeout=self.cfg.api.graceful_timeout)
                self.stopping.set()


def _only_oserror(exc: BaseException) -> OSError | None:
    """``exc`` when it is an OSError, or the first of a group made of OSErrors alone."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        found = [_only_oserror(e) for e in exc.exceptions]
        if found and all(f is not None for f in found):
            return found[0]
    return None


def _check_port(host: str, port: int) -> None:
    """Fail with a clear message when the API port is taken (before any actor is disturbed)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except OSError as exc:
        raise ConfigError(f"[api] cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def harden_process(cfg: Config) -> None:
    """Before anything is written: files this process creates are its user's alone
    (umask 077), the open-file limit is raised to the hard limit, and an existing state
    directory, database, WAL and image files lose any group/other access."""
    from novalite.api.listener import raise_open_file_limit

    os.umask(0o077)
    soft, hard = raise_open_file_limit()
    log.debug("open-file limit", soft=soft, hard=hard)
    tighten_state_modes(cfg)


def tighten_state_modes(cfg: Config) -> None:
    """chmod go-rwx the state directory (unless it looks shared: sticky, not ours, or the
    home directory), its database files and the service's own subdirectories."""
    import stat

    state = cfg.state_path
    try:
        st = os.stat(state)
    except FileNotFoundError:
        return  # created at start, under the umask
    shared = (st.st_mode & stat.S_ISVTX or st.st_uid != os.geteuid()
              or os.path.realpath(state) in ("/", os.path.realpath(os.path.expanduser("~"))))
    if shared:
        if st.st_mode & 0o077:
            log.warning("state directory is accessible to other users; not changed",
                        state_path=state, mode=oct(st.st_mode & 0o777))
    else:
        _chmod(state, 0o700)
    sqlite = cfg.database.connection.removeprefix("sqlite:///")
    if sqlite != cfg.database.connection:
        for suffix in ("", "-wal", "-shm", "-journal"):
            _chmod(sqlite + suffix, 0o600)
    for sub in ("images", "image-cache", "instances", "drivers"):
        path = os.path.join(state, sub)
        if not os.path.isdir(path):
            continue
        _chmod(path, 0o700)
        if sub in ("images", "image-cache"):
            for entry in os.scandir(path):
                if entry.is_file(follow_symlinks=False):
                    _chmod(entry.path, 0o600)


def _chmod(path: str, mode: int) -> None:
    try:
        st = os.stat(path, follow_symlinks=False)
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~mode:
            os.chmod(path, st.st_mode & mode & 0o777)
    except FileNotFoundError:
        pass


def serve(cfg: Config, role: str = "all") -> None:
    """Run the service (or one ``role`` of it) until a signal stops it."""
    from novalite.statelock import hold  # one service per state directory

    with hold(cfg.state_path):
        harden_process(cfg)
        trio.run(Service(cfg, role).run)
