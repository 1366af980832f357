"""novalite's configuration: one typed schema, read from TOML, overridable by environment.

Sections are named like nova.conf's where the idea is the same. Every key has a
default, so an empty file (or none) runs. Environment variables override the
file: ``NOVALITE_<SECTION>__<KEY>`` (``NOVALITE_API__PORT=8775``,
``NOVALITE_DEFAULT__STATE_PATH=/tmp/x``); ``NOVALITE_STATE_PATH`` is a shorthand
for the latter. Values from the environment are parsed as TOML values when they
parse (``8775``, ``true``, ``["a", "b"]``), else taken as strings.

An unknown section or key, or a value of the wrong type, raises
:class:`~novalite.exceptions.ConfigError` naming the key, the value and what was
expected. Driver sections (``[fake]``, ``[qemu]``, ...) are checked against the
installed driver's ``option_defaults``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from typing import Any

from novalite.exceptions import ConfigError

ENV_PREFIX = "NOVALITE_"


def default_state_path() -> str:
    """Per-user data directory (``~/.local/share/novalite`` on Linux)."""
    import platformdirs

    return platformdirs.user_data_dir("novalite")


@dataclass
class DefaultSection:
    """``[DEFAULT]``: where all state lives."""

    state_path: str = ""
    #: Attach a config drive to every guest, asked for or not (Nova's option).
    force_config_drive: bool = False
    #: Seconds a deleted server stays SOFT_DELETED (restorable) before it is reclaimed
    #: (Nova's option; 0, the default, deletes at once).
    reclaim_instance_interval: float = 0
    #: The bus between processes (oslo.messaging's option): empty for one process (the
    #: in-memory transport), else ``rabbit://user:pass@host:5672/vhost`` (``rabbits://``
    #: for TLS). Keep the password out of the file with NOVALITE_DEFAULT__TRANSPORT_URL.
    transport_url: str = ""
    #: Seconds after which a resize or cold migration waiting in VERIFY_RESIZE is
    #: confirmed by itself (Nova's option); 0: never.
    resize_confirm_window: float = 0.0
    #: Whether a resize or cold migration may choose the host the server is on. Nova's
    #: default is False; novalite's is True, because one novalite often has one compute
    #: host, where a resize could otherwise never succeed.
    allow_resize_to_same_host: bool = True
    #: Seconds a SHELVED server keeps its guest and resources before it is offloaded
    #: (Nova's option); 0: offloaded at once, -1: never.
    shelved_offload_time: float = 0.0


@dataclass
class ApiSection:
    """``[api]``: the one HTTP listener serving /identity, /image and /compute."""

    host: str = "127.0.0.1"
    port: int = 8774
    #: The URL clients reach the listener at (catalog URLs); default http://host:port.
    public_url: str = ""
    #: Highest compute microversion advertised.
    max_microversion: str = "2.96"
    #: Seconds in-flight requests get to finish on SIGINT/SIGTERM.
    graceful_timeout: float = 10.0
    #: Seconds an idle connection (between requests, or before its first) is kept open.
    keep_alive_timeout: float = 30.0
    #: Seconds a request line and its headers have to arrive, from their first byte.
    header_timeout: float = 10.0
    #: Seconds one read or one write on a client connection may wait (nova.conf's
    #: ``[wsgi] client_socket_timeout``): a stalled client is disconnected.
    client_socket_timeout: float = 60.0
    #: Connections served at once; beyond it new clients wait in the listen backlog.
    #: Capped below the open-file limit (less a reserve for the service's own files).
    max_connections: int = 1000
    #: The listen backlog (connections the kernel queues before they are accepted).
    backlog: int = 1024
    #: Largest request body read (bytes; oslo.middleware's sizelimit default, 112 KiB):
    #: more is answered 413. Image data (``PUT .../file``) is not read through it.
    max_request_body_size: int = 114688


@dataclass
class DatabaseSection:
    """``[database]``: an SQLAlchemy URL as in nova.conf; default SQLite under state_path."""

    connection: str = ""


@dataclass
class ComputeSection:
    """``[compute]``: the driver and the compute hosts this process runs."""

    #: An entry-point name in ``novalite.drivers``, or "auto" (kvm, qemu or fake).
    driver: str = "auto"
    #: Host names, or a number N meaning compute-1 ... compute-N. Empty: this machine.
    hosts: list[str] | int = field(default_factory=list)
    availability_zone: str = "nova"
    heartbeat_interval: float = 10.0
    power_sync_interval: float = 10.0
    resource_update_interval: float = 60.0
    #: Seconds after the last heartbeat before a compute service counts as down.
    service_down_time: float = 60.0
    shutdown_timeout: float = 60.0
    #: Seconds an instance may stay in BUILD before it is set to ERROR (Nova's option;
    #: 0 turns the check off, Nova's default). One hour: a multi-GB image fetched over a
    #: slow link and converted builds well within it, and nothing waits forever.
    instance_build_timeout: float = 3600.0
    #: Seconds between the checks for instances stuck in BUILD (and after a database
    #: outage, the reconciliation runs at once).
    build_check_interval: float = 60.0
    #: The image API compute hosts fetch images from and upload snapshots to; default
    #: this process's own (``<public_url>/image``, or ``[glance] api_servers``). A
    #: ``--role compute`` process on another machine names the control process's.
    image_api_url: str = ""


@dataclass
class SchedulerSection:
    """``[scheduler]`` (nova.conf's [filter_scheduler] merged in).

    Filters and weighers are named as in Nova and loaded through the
    ``novalite.scheduler.filters`` / ``novalite.scheduler.weighers`` entry points.
    A weigher's multiplier: positive spreads (more free resource wins), negative
    packs. Per-host allocation ratios: aggregate metadata ``cpu_allocation_ratio``,
    ``ram_allocation_ratio``, ``disk_allocation_ratio`` override these for the
    aggregate's hosts.
    """

    enabled_filters: list[str] = field(
        default_factory=lambda: [
            "ComputeFilter",
            "AvailabilityZoneFilter",
            "ResourceFilter",
            "ComputeCapabilitiesFilter",
            "ImagePropertiesFilter",
            "ServerGroupAntiAffinityFilter",
            "ServerGroupAffinityFilter",
            "SameHostFilter",
            "DifferentHostFilter",
        ]
    )
    weighers: list[str] = field(
        default_factory=lambda: [
            "RAMWeigher",
            "CPUWeigher",
            "DiskWeigher",
            "NumInstancesWeigher",
            "ServerGroupSoftAffinityWeigher",
            "ServerGroupSoftAntiAffinityWeigher",
            "BuildFailureWeigher",
        ]
    )
    ram_weight_multiplier: float = 1.0
    cpu_weight_multiplier: float = 1.0
    disk_weight_multiplier: float = 1.0
    num_instances_weight_multiplier: float = 0.0
    soft_affinity_weight_multiplier: float = 1.0
    soft_anti_affinity_weight_multiplier: float = 1.0
    build_failure_weight_multiplier: float = 1000000.0
    #: Choose at random among the best N weighed hosts (1: always the best).
    host_subset_size: int = 1
    #: NumInstancesFilter's limit.
    max_instances_per_host: int = 50
    #: IsolatedHostsFilter: these hosts run only these images (image ids).
    isolated_hosts: list[str] = field(default_factory=list)
    isolated_images: list[str] = field(default_factory=list)
    restrict_isolated_hosts_to_isolated_images: bool = True
    max_attempts: int = 3
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0


@dataclass
class IdentitySection:
    """``[identity]``: the embedded Keystone subset."""

    #: The admin user's password; empty: generated on first start and written to clouds.yaml.
    admin_password: str = ""
    token_expiration: int = 3600
    region: str = "RegionOne"
    #: Failed password logins in a row that lock a user's account (Keystone's
    #: ``[security_compliance] lockout_failure_attempts``; 0: never lock, Keystone's default).
    lockout_failure_attempts: int = 10
    #: Seconds an account stays locked after its last failed login (Keystone's
    #: ``lockout_duration``); failures older than this no longer count.
    lockout_duration: float = 300.0


@dataclass
class KeystoneAuthtokenSection:
    """``[keystone_authtoken]``: validate tokens against an external Keystone.

    With ``auth_url`` set, the embedded identity is off: ``/identity`` is not
    served, and each token is checked with that Keystone (as keystonemiddleware
    does) using these service credentials.
    """

    auth_url: str = ""
    username: str = "nova"
    password: str = ""
    project_name: str = "service"
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    #: Seconds a validated token is trusted before Keystone is asked again.
    cache_seconds: float = 30.0


@dataclass
class GlanceSection:
    """``[glance]``: an external Glance to use instead of the embedded image service."""

    #: Glance endpoints, e.g. ["http://glance.example:9292"]; empty: the embedded one.
    api_servers: list[str] = field(default_factory=list)


@dataclass
class NetworkSection:
    """``[network]``: the default network that ``networks: "auto"`` allocates from."""

    name: str = "private"
    cidr: str = "10.0.0.0/24"
    #: How guests' ports reach their network: "bridge" (a Linux bridge per network,
    #: dnsmasq, nftables NAT and security groups; needs root or CAP_NET_ADMIN), "user"
    #: (QEMU's per-guest user-mode networking) or "auto": bridge when this process is
    #: root or has CAP_NET_ADMIN (and ip, nft, dnsmasq, br_netfilter are there), user
    #: otherwise. The service logs the mode it runs and why ("network mode").
    driver: str = "auto"
    #: The nftables tables (``ip`` and ``bridge`` family) holding every rule novalite
    #: makes, and the name of its runtime directory ``/run/<nft_table>/net``.
    nft_table: str = "novalite"


@dataclass
class QuotaSection:
    """``[quota]``: each project's default limits (Nova's defaults; -1 is unlimited).

    Admins override them per project through ``os-quota-sets``.
    """

    instances: int = 10
    cores: int = 20
    ram: int = 51200
    key_pairs: int = 100
    metadata_items: int = 128
    server_groups: int = 10
    server_group_members: int = 10


@dataclass
class VolumeSection:
    """``[volume]``: the block storage service (a Cinder v3 subset) and its backend."""

    #: The storage backend (entry-point group ``novalite.volume.backends``): ``file``
    #: keeps each volume as a sparse raw file under ``<state_path>/volumes``.
    backend: str = "file"
    #: The name of the one volume type (Cinder's default type).
    default_volume_type: str = "__DEFAULT__"
    #: Each project's default limits (Cinder's defaults; -1 is unlimited).
    quota_volumes: int = 10
    quota_gigabytes: int = 1000
    quota_snapshots: int = 10
    #: The ``lvm`` backend (Cinder's reference LVM driver, thin): the volume group its
    #: volumes are made in (it must exist: ``vgcreate``), and the thin pool in it (made
    #: at start when missing, from 95% of the group's free space; "" = ``<group>-pool``).
    lvm_volume_group: str = "novalite-volumes"
    lvm_thin_pool: str = ""


@dataclass
class ImageSection:
    """``[image]``: the embedded image service (Glance v2) and the compute hosts' image cache."""

    #: Total bytes of image data each project may store, in MiB (-1: unlimited).
    storage_quota_mb: int = -1
    #: Seconds an image unused by any guest stays in a compute host's cache.
    cache_max_age: float = 86400.0
    #: Seconds between two prunes of the compute hosts' image cache.
    cache_prune_interval: float = 600.0
    #: Images per page of ``GET /v2/images`` when no ``limit`` is given (Glance's 25).
    list_limit: int = 25


@dataclass
class MetadataSection:
    """``[metadata]``: nova-api-metadata, which guests reach at http://169.254.169.254/.

    Guests never reach the listener directly: each guest's compute host relays its
    requests, signed with ``metadata_proxy_shared_secret`` (Nova's option for Neutron's
    metadata proxy; empty: a random one for this process, which is enough while the
    compute hosts run in it). See :mod:`novalite.metadata`.
    """

    metadata_listen: str = "127.0.0.1"
    #: 0: any free port (the compute hosts of this process are told which).
    metadata_listen_port: int = 8775
    metadata_proxy_shared_secret: str = ""
    #: The URL compute hosts reach the listener at; default http://listen:port.
    metadata_url: str = ""
    #: Appended to guests' hostnames in the metadata ("" for none), as Nova's dhcp_domain.
    dhcp_domain: str = "novalocal"
    #: Where the compute hosts put the guests' relay sockets; default <state_path>/md
    #: (or, when that path is too long for UNIX sockets, a directory under /tmp).
    socket_dir: str = ""


@dataclass
class ImportFilteringSection:
    """``[import_filtering_opts]``: which URLs the web-download image import may fetch
    (Glance's options and defaults). An allow list, when set, wins over its deny list.
    Hosts resolving to loopback, link-local, multicast or unspecified addresses are
    refused unless ``allowed_hosts`` names them."""

    allowed_schemes: list[str] = field(default_factory=lambda: ["http", "https"])
    disallowed_schemes: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)
    disallowed_hosts: list[str] = field(default_factory=list)
    allowed_ports: list[int] = field(default_factory=lambda: [80, 443])
    disallowed_ports: list[int] = field(default_factory=list)


@dataclass
class MetricsSection:
    """``[metrics]``: Prometheus metrics at ``/metrics``.

    An admin token may always scrape. ``loopback_without_token`` serves them
    without a token to clients connecting from 127.0.0.1 or ::1 (a Prometheus on
    the same machine); behind a reverse proxy on the same machine, every client
    looks local: leave it off there.
    """

    enabled: bool = True
    loopback_without_token: bool = False


@dataclass
class LoggingSection:
    """``[logging]``."""

    level: str = "info"
    #: "auto" (pretty on a terminal, JSON lines otherwise), "pretty" or "json".
    format: str = "auto"


@dataclass
class VncSection:
    """``[vnc]``: graphical consoles (noVNC) and where their proxy is served."""

    #: Guests get a display and a VNC server (on a UNIX socket) only when true.
    enabled: bool = True
    #: The URL users are sent to; default ``http://<proxy host:port>/vnc_lite.html``.
    novncproxy_base_url: str = ""
    #: The console proxy's own port; 0 serves it on the API's listener (the default).
    novncproxy_port: int = 0
    #: Where noVNC's files are; "" = ``<venv>/share/novnc`` (./dev) or /usr/share/novnc.
    novnc_path: str = ""
    #: Address the compute host's console relay listens on (port chosen at start).
    server_listen: str = "127.0.0.1"
    #: Address the console proxy connects to, to reach the compute host's relay.
    server_proxyclient_address: str = "127.0.0.1"


@dataclass
class SerialConsoleSection:
    """``[serial_console]``: interactive serial consoles over a websocket."""

    enabled: bool = True
    #: The websocket URL users are sent to; default ``ws://<proxy host:port>/``.
    base_url: str = ""


@dataclass
class ConsoleauthSection:
    """``[consoleauth]``: console tokens."""

    #: Seconds a console token stays valid (Nova's default).
    token_ttl: int = 600


@dataclass
class ConsoleSection:
    """``[console]``: the console proxy."""

    #: Host names besides the proxy's own that a browser's Origin header may name.
    allowed_origins: list[str] = field(default_factory=list)


SECTIONS: dict[str, type] = {
    "DEFAULT": DefaultSection,
    "api": ApiSection,
    "database": DatabaseSection,
    "compute": ComputeSection,
    "scheduler": SchedulerSection,
    "identity": IdentitySection,
    "keystone_authtoken": KeystoneAuthtokenSection,
    "glance": GlanceSection,
    "network": NetworkSection,
    "quota": QuotaSection,
    "volume": VolumeSection,
    "image": ImageSection,
    "metadata": MetadataSection,
    "import_filtering_opts": ImportFilteringSection,
    "metrics": MetricsSection,
    "logging": LoggingSection,
    "vnc": VncSection,
    "serial_console": SerialConsoleSection,
    "consoleauth": ConsoleauthSection,
    "console": ConsoleSection,
}


@dataclass
class Config:
    """The whole validated configuration."""

    DEFAULT: DefaultSection = field(default_factory=DefaultSection)
    api: ApiSection = field(default_factory=ApiSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    compute: ComputeSection = field(default_factory=ComputeSection)
    scheduler: SchedulerSection = field(default_factory=SchedulerSection)
    identity: IdentitySection = field(default_factory=IdentitySection)
    keystone_authtoken: KeystoneAuthtokenSection = field(
        default_factory=KeystoneAuthtokenSection)
    glance: GlanceSection = field(default_factory=GlanceSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    quota: QuotaSection = field(default_factory=QuotaSection)
    volume: VolumeSection = field(default_factory=VolumeSection)
    image: ImageSection = field(default_factory=ImageSection)
    metadata: MetadataSection = field(default_factory=MetadataSection)
    import_filtering_opts: ImportFilteringSection = field(
        default_factory=ImportFilteringSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    vnc: VncSection = field(default_factory=VncSection)
    serial_console: SerialConsoleSection = field(default_factory=SerialConsoleSection)
    consoleauth: ConsoleauthSection = field(default_factory=ConsoleauthSection)
    console: ConsoleSection = field(default_factory=ConsoleSection)
    #: Driver sections ([fake], [qemu], ...) as given, checked by :meth:`driver_options`.
    drivers: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "(defaults)"

    @property
    def state_path(self) -> str:
        return self.DEFAULT.state_path

    @property
    def public_url(self) -> str:
        return (self.api.public_url or f"http://{self.api.host}:{self.api.port}").rstrip("/")

    @property
    def host_names(self) -> list[str]:
        hosts = self.compute.hosts
        if isinstance(hosts, int):
            return [f"compute-{i}" for i in range(1, hosts + 1)]
        return list(hosts) or [socket.gethostname()]

    @property
    def console_proxy_url(self) -> str:
        """Where the console proxy is served: the API's listener, or its own port."""
        if self.vnc.novncproxy_port:
            return f"http://{self.api.host}:{self.vnc.novncproxy_port}"
        return self.public_url

    def driver_options(self, name: str, defaults: dict[str, Any]) -> dict[str, Any]:
        """The driver's section merged over its ``option_defaults``, type-checked."""
        given = self.drivers.get(name, {})
        merged = dict(defaults)
        for key, value in given.items():
            if key not in defaults:
                known = ", ".join(sorted(defaults)) or "none"
                raise ConfigError(
                    f"[{name}] {key} = {value!r}: unknown key (known keys: {known})"
                )
            merged[key] = _check_type(f"[{name}] {key}", value, defaults[key])
        return merged


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "a boolean (true/false)"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, list):
        return "a list of strings"
    return "a string"


def _check_type(name: str, value: Any, default: Any) -> Any:
    ok: bool
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{name} = {value!r}: expected {_type_name(default)}")
    return value


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section = "DEFAULT" if section.upper() == "DEFAULT" else section.lower()
        out.setdefault(section, {})[key.lower()] = _parse_env_value(raw)
    if "NOVALITE_STATE_PATH" in environ:
        out.setdefault("DEFAULT", {}).setdefault("state_path", environ["NOVALITE_STATE_PATH"])
    return out


def _build_section(name: str, cls: type, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    section = cls()
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"[{name}] {key} = {value!r}: unknown key (known keys: {known})")
        default = getattr(section, key)
        if name == "compute" and key == "hosts":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                pass
            elif isinstance(value, list) and all(isinstance(v, str) and v for v in value):
                # [] is the default: this machine's name.
                if len(set(value)) != len(value):
                    raise ConfigError(f"[compute] hosts = {value!r}: host names must be unique")
            else:
                raise ConfigError(
                    f"[compute] hosts = {value!r}: expected a list of host names "
                    "or a positive number"
                )
        elif name == "import_filtering_opts" and key.endswith("_ports"):
            if not (isinstance(value, list) and all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536
                    for v in value)):
                raise ConfigError(f"[{name}] {key} = {value!r}: expected a list of TCP ports")
        else:
            value = _check_type(f"[{name}] {key}", value, default)
        setattr(section, key, value)
    return section


def _validate(cfg: Config) -> None:
    if not 0 < cfg.api.port < 65536:
        raise ConfigError(f"[api] port = {cfg.api.port!r}: expected a TCP port (1-65535)")
    try:
        net = ipaddress.ip_network(cfg.network.cidr, strict=True)
        if net.num_addresses < 4:
            raise ValueError("too small")
    except ValueError as exc:
        raise ConfigError(
            f"[network] cidr = {cfg.network.cidr!r}: expected an IPv4 network like "
            f"10.0.0.0/24 ({exc})"
        ) from None
    if cfg.network.driver not in ("auto", "bridge", "user"):
        raise ConfigError(f"[network] driver = {cfg.network.driver!r}: expected "
                          '"auto", "bridge" or "user"')
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", cfg.network.nft_table):
        raise ConfigError(f"[network] nft_table = {cfg.network.nft_table!r}: expected a "
                          "lowercase name of letters, digits, - and _")
    for key in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
        if getattr(cfg.scheduler, key) <= 0:
            raise ConfigError(
                f"[scheduler] {key} = {getattr(cfg.scheduler, key)!r}: expected a positive number"
            )
    for key in ("host_subset_size", "max_instances_per_host"):
        if getattr(cfg.scheduler, key) < 1:
            raise ConfigError(
                f"[scheduler] {key} = {getattr(cfg.scheduler, key)!r}: expected at least 1"
            )
    for key in ("soft_affinity_weight_multiplier", "soft_anti_affinity_weight_multiplier"):
        if getattr(cfg.scheduler, key) < 0:
            raise ConfigError(
                f"[scheduler] {key} = {getattr(cfg.scheduler, key)!r}: expected a number >= 0"
            )
    if cfg.scheduler.max_attempts < 1:
        raise ConfigError(
            f"[scheduler] max_attempts = {cfg.scheduler.max_attempts!r}: expected at least 1"
        )
    if not 0 <= cfg.metadata.metadata_listen_port < 65536:
        raise ConfigError(f"[metadata] metadata_listen_port = "
                          f"{cfg.metadata.metadata_listen_port!r}: expected a TCP port "
                          "(0-65535; 0: any free port)")
    for key in ("keep_alive_timeout", "header_timeout", "client_socket_timeout"):
        if getattr(cfg.api, key) <= 0:
            raise ConfigError(f"[api] {key} = {getattr(cfg.api, key)!r}: expected a positive "
                              "number of seconds")
    for key in ("max_connections", "backlog"):
        if getattr(cfg.api, key) < 1:
            raise ConfigError(f"[api] {key} = {getattr(cfg.api, key)!r}: expected at least 1")
    if cfg.identity.lockout_failure_attempts < 0 or cfg.identity.lockout_duration <= 0:
        raise ConfigError(
            f"[identity] lockout_failure_attempts = {cfg.identity.lockout_failure_attempts!r}, "
            f"lockout_duration = {cfg.identity.lockout_duration!r}: expected attempts >= 0 "
            "(0: no lockout) and a positive duration in seconds")
    if cfg.logging.format not in ("auto", "pretty", "json"):
        raise ConfigError(
            f"[logging] format = {cfg.logging.format!r}: expected one of auto, pretty, json"
        )
    if cfg.logging.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"[logging] level = {cfg.logging.level!r}: expected one of debug, info, warning, error"
        )
    url = cfg.DEFAULT.transport_url
    if url and url.partition("://")[0] not in ("rabbit", "rabbits"):
        scheme = url.partition("://")[0] if "://" in url else "(no scheme)"
        raise ConfigError(f"[DEFAULT] transport_url = {scheme}://...: expected "
                          "rabbit://user:pass@host:5672/vhost or rabbits://... (or empty: "
                          "one process)")
    try:
        major, minor = (int(p) for p in cfg.api.max_microversion.split("."))
        if (major, minor) < (2, 37):
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"[api] max_microversion = {cfg.api.max_microversion!r}: expected 2.N with N >= 37"
        ) from None


def load(path: str | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read ``path`` (or ``$NOVALITE_CONFIG``, or nothing), apply the environment, validate."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("NOVALITE_CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    for section, values in _env_overrides(environ).items():
        data.setdefault(section, {}).update(values)
    cfg = Config(source=path or "(defaults)")
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{name} = {values!r}: expected a [section], not a top-level value")
        if name in SECTIONS:
            setattr(cfg, name, _build_section(name, SECTIONS[name], values))
        else:
            cfg.drivers[name] = dict(values)
    if not cfg.DEFAULT.state_path:
        cfg.DEFAULT.state_path = default_state_path()
    cfg.DEFAULT.state_path = os.path.abspath(os.path.expanduser(cfg.DEFAULT.state_path))
    if not cfg.database.connection:
        cfg.database.connection = f"sqlite:///{os.path.join(cfg.state_path, 'novalite.sqlite')}"
    _validate(cfg)
    return cfg


def check_driver_sections(cfg: Config, installed: set[str]) -> None:
    """Reject a section that is neither a known one nor an installed driver's."""
    for name in cfg.drivers:
        if name not in installed:
            known = ", ".join(sorted(set(SECTIONS) | installed))
            raise ConfigError(f"[{name}]: unknown section (known sections: {known})")
