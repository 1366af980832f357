"""The database schema: SQLModel tables. Times are naive UTC; soft-deleted rows keep
``deleted != 0`` as Nova's do (``deleted`` holds the row's own id once deleted).

Column types come from :mod:`novalite.db.types`, so SQLite and MySQL/MariaDB store
the same values (microseconds, long texts, big byte counts, doubles). String
lengths are checked at flush on every backend (:class:`ValueTooLong`): MySQL
refuses a value longer than its column where SQLite would keep it, and a bug
of that kind must show on SQLite too."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from typing import Any, cast

from pydantic import NaiveDatetime
from pydantic_core import PydanticUndefined
from sqlalchemy import JSON, Column, Index, String, Table, UniqueConstraint, event
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from novalite.db.types import BIG_INTEGER, DATETIME, DOUBLE, LONG_TEXT, NAMING_CONVENTION
from novalite.exceptions import NovaliteError

# Named constraints, the same on every backend (set before any table is declared).
SQLModel.metadata.naming_convention = NAMING_CONVENTION


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def _json(default: Any = None) -> Any:
    factory = dict if default is None else default
    return Field(default_factory=factory, sa_column=Column(JSON, nullable=False))


# -- identity -----------------------------------------------------------------
class Project(SQLModel, table=True):
    __tablename__ = "projects"
    id: str = Field(default_factory=lambda: uuidlib.uuid4().hex, primary_key=True, max_length=64)
    name: str = Field(max_length=64)
    domain_id: str = Field(default="default", max_length=64)
    description: str = Field(default="", sa_column=Column(LONG_TEXT, nullable=False, default=""))
    enabled: bool = True
    __table_args__ = (UniqueConstraint("domain_id", "name"),)


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: str = Field(default_factory=lambda: uuidlib.uuid4().hex, primary_key=True, max_length=64)
    name: str = Field(max_length=255)
    domain_id: str = Field(default="default", max_length=64)
    password_hash: str = Field(max_length=255)
    default_project_id: str | None = Field(default=None, max_length=64)
    enabled: bool = True
    __table_args__ = (UniqueConstraint("domain_id", "name"),)


class Role(SQLModel, table=True):
    __tablename__ = "roles"
    id: str = Field(default_factory=lambda: uuidlib.uuid4().hex, primary_key=True, max_length=64)
    name: str = Field(max_length=255, unique=True)


class RoleAssignment(SQLModel, table=True):
    __tablename__ = "role_assignments"
    user_id: str = Field(primary_key=True, max_length=64)
    project_id: str = Field(primary_key=True, max_length=64)
    role_id: str = Field(primary_key=True, max_length=64)


class Token(SQLModel, table=True):
    """An issued token, stored by the sha256 of its value (the value itself is never kept)."""

    __tablename__ = "tokens"
    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=64)
    project_id: str = Field(max_length=64)
    issued_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    expires_at: NaiveDatetime = Field(sa_type=DATETIME)
    audit_id: str = Field(max_length=64)
    revoked: bool = False
    #: The application credential the token was issued for (None: a password token).
    app_cred_id: str | None = Field(default=None, max_length=64, index=True)


class ApplicationCredential(SQLModel, table=True):
    """A user's application credential: a secret (stored as a hash) that authenticates
    as the user on one project with a subset of the user's roles there."""

    __tablename__ = "application_credentials"
    id: str = Field(default_factory=lambda: uuidlib.uuid4().hex, primary_key=True, max_length=64)
    name: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))
    secret_hash: str = Field(max_length=255)
    user_id: str = Field(max_length=64, index=True)
    project_id: str = Field(max_length=64)
    #: The ids of the roles the credential delegates.
    roles: list[str] = _json(list)
    unrestricted: bool = False
    expires_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    __table_args__ = (UniqueConstraint("user_id", "name"),)


class Credential(SQLModel, table=True):
    """A Keystone credential; here only EC2 ones (``/v3/users/{id}/credentials/OS-EC2``).
    ``id`` is the sha256 of the access key, as Keystone's."""

    __tablename__ = "credentials"
    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=64, index=True)
    project_id: str | None = Field(default=None, max_length=64)
    type: str = Field(max_length=255)
    blob: dict[str, Any] = _json()
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


# -- flavors ------------------------------------------------------------------
class Flavor(SQLModel, table=True):
    __tablename__ = "flavors"
    id: int | None = Field(default=None, primary_key=True)
    flavorid: str = Field(max_length=255, unique=True)
    name: str = Field(max_length=255, unique=True)
    memory_mb: int
    vcpus: int
    root_gb: int = 0
    ephemeral_gb: int = 0
    swap: int = 0
    rxtx_factor: float = Field(default=1.0, sa_type=DOUBLE)
    is_public: bool = True
    disabled: bool = False
    description: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class FlavorExtraSpec(SQLModel, table=True):
    __tablename__ = "flavor_extra_specs"
    flavor_id: int = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    value: str = Field(default="", max_length=255)


class FlavorProject(SQLModel, table=True):
    """A project given access to a private flavor (Nova's ``flavor_projects``)."""

    __tablename__ = "flavor_projects"
    flavor_id: int = Field(primary_key=True)
    project_id: str = Field(primary_key=True, max_length=255)


class QuotaClass(SQLModel, table=True):
    """A limit of a quota class (``os-quota-class-sets``): the ``default`` class's rows
    override ``[quota]`` for every project without an override of its own."""

    __tablename__ = "quota_classes"
    class_name: str = Field(primary_key=True, max_length=255)
    resource: str = Field(primary_key=True, max_length=255)
    hard_limit: int


# -- images -------------------------------------------------------------------
class Image(SQLModel, table=True):
    __tablename__ = "images"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    name: str | None = Field(default=None, max_length=255, index=True)
    status: str = Field(default="queued", max_length=30)
    disk_format: str | None = Field(default=None, max_length=20)
    container_format: str | None = Field(default=None, max_length=20)
    size: int | None = Field(default=None, sa_type=BIG_INTEGER)
    virtual_size: int | None = Field(default=None, sa_type=BIG_INTEGER)
    checksum: str | None = Field(default=None, max_length=32)
    os_hash_algo: str | None = Field(default=None, max_length=64)
    os_hash_value: str | None = Field(default=None, max_length=128)
    visibility: str = Field(default="shared", max_length=20)
    protected: bool = False
    owner: str | None = Field(default=None, max_length=64)
    min_disk: int = 0
    min_ram: int = 0
    properties: dict[str, Any] = _json()
    tags: list[str] = _json(list)
    path: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class MetadefNamespace(SQLModel, table=True):
    """A namespace of Glance's metadata definitions catalog (``/v2/metadefs``)."""

    __tablename__ = "metadef_namespaces"
    namespace: str = Field(primary_key=True, max_length=80)
    display_name: str | None = Field(default=None, max_length=80)
    description: str | None = Field(default=None, max_length=500)
    visibility: str = Field(default="private", max_length=32)
    protected: bool = False
    owner: str = Field(max_length=255, index=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class MetadefEntry(SQLModel, table=True):
    """One object, property, tag or resource type association of a metadefs namespace:
    ``kind`` says which, ``body`` holds its definition."""

    __tablename__ = "metadef_entries"
    namespace: str = Field(primary_key=True, max_length=80)
    kind: str = Field(primary_key=True, max_length=16)
    name: str = Field(primary_key=True, max_length=255)
    body: dict[str, Any] = _json()
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class MetadefResourceType(SQLModel, table=True):
    """A resource type namespaces can be associated with (Glance's seeded ones, and
    any an association named)."""

    __tablename__ = "metadef_resource_types"
    name: str = Field(primary_key=True, max_length=80)
    protected: bool = False
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class ImageTask(SQLModel, table=True):
    """A Glance v2 task (``/v2/tasks``, type ``import``): the image it made shows its
    progress, and its status follows that image's."""

    __tablename__ = "image_tasks"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    type: str = Field(max_length=30)
    owner: str = Field(max_length=255, index=True)
    input: dict[str, Any] = _json()
    image_id: str = Field(max_length=36)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class ImageMember(SQLModel, table=True):
    """A project an image is shared with (Glance's image members), and its answer."""

    __tablename__ = "image_members"
    image_id: str = Field(primary_key=True, max_length=36)
    member_id: str = Field(primary_key=True, max_length=255, index=True)
    status: str = Field(default="pending", max_length=20)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


# -- compute ------------------------------------------------------------------
class Instance(SQLModel, table=True):
    __tablename__ = "instances"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(default_factory=new_uuid, max_length=36, unique=True)
    display_name: str = Field(max_length=255)
    display_description: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))
    hostname: str = Field(default="", max_length=255)
    project_id: str = Field(max_length=64, index=True)
    user_id: str = Field(max_length=64)
    host: str | None = Field(default=None, max_length=255, index=True)
    node: str | None = Field(default=None, max_length=255)
    availability_zone: str | None = Field(default=None, max_length=255)
    image_ref: str = Field(default="", max_length=255)
    flavor: dict[str, Any] = _json()
    vcpus: int = 0
    memory_mb: int = 0
    root_gb: int = 0
    ephemeral_gb: int = 0
    vm_state: str = Field(default="building", max_length=255)
    task_state: str | None = Field(default=None, max_length=255)
    power_state: int = 0
    key_name: str | None = Field(default=None, max_length=255)
    key_data: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))
    user_data: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))
    metadata_: dict[str, str] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    addresses: list[dict[str, Any]] = _json(list)
    config_drive: str = Field(default="", max_length=255)
    locked: bool = False
    locked_by: str | None = Field(default=None, max_length=16)
    locked_reason: str | None = Field(default=None, max_length=255)
    launch_index: int = 0
    reservation_id: str = Field(default="", max_length=255)
    progress: int = 0
    launched_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    terminated_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, index=True, sa_type=DATETIME)
    deleted_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    deleted: int = Field(default=0, index=True)
    #: OS-DCF:diskConfig AUTO (True) or MANUAL (False, or None on rows written before
    #: it was kept), Nova's ``auto_disk_config``.
    auto_disk_config: bool | None = False
    #: accessIPv4/accessIPv6, as the user gave them (Nova's access_ip_v4/v6).
    access_ip_v4: str | None = Field(default=None, max_length=39)
    access_ip_v6: str | None = Field(default=None, max_length=39)
    #: The server's tags (2.26), in the order they were added; None on rows written
    #: before migration 0005 (read as none).
    tags: list[str] | None = Field(default_factory=list, sa_column=Column(JSON, nullable=True))
    #: ``personality`` files (below 2.57): ``[{"path", "contents"}]`` (contents base64),
    #: for the config drive and metadata service to serve.
    injected_files: list[dict[str, str]] | None = Field(
        default_factory=list, sa_column=Column(JSON, nullable=True))
    __table_args__ = (Index("ix_instances_project_deleted", "project_id", "deleted"),)


class Row:
    """A row read with a Core statement, its columns as attributes."""

    def __init__(self, mapping: Any) -> None:
        self.__dict__.update(mapping)


class ImageRow(Row):
    """An ``images`` row read with a Core statement: the columns of :class:`Image`."""

    id: str
    name: str | None
    status: str
    disk_format: str | None
    container_format: str | None
    size: int | None
    virtual_size: int | None
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    visibility: str
    protected: bool
    owner: str | None
    min_disk: int
    min_ram: int
    properties: dict[str, Any]
    tags: list[str]
    path: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class InstanceRow(Row):
    """An ``instances`` row read for a view, with the attribute names of :class:`Instance`."""

    # The columns, as :class:`Instance` declares them (for the type checker: the values
    # come from the row's mapping).
    id: int
    uuid: str
    display_name: str
    display_description: str | None
    hostname: str
    project_id: str
    user_id: str
    host: str | None
    node: str | None
    availability_zone: str | None
    image_ref: str
    flavor: dict[str, Any]
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int
    vm_state: str
    task_state: str | None
    power_state: int
    key_name: str | None
    key_data: str | None
    user_data: str | None
    metadata_: dict[str, str]
    addresses: list[dict[str, Any]]
    config_drive: str
    locked: bool
    locked_by: str | None
    locked_reason: str | None
    launch_index: int
    reservation_id: str
    progress: int
    launched_at: dt.datetime | None
    terminated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None
    deleted: int
    auto_disk_config: bool | None
    access_ip_v4: str | None
    access_ip_v6: str | None
    tags: list[str] | None
    injected_files: list[dict[str, str]] | None

    def __init__(self, mapping: Any) -> None:
        super().__init__(mapping)
        self.metadata_ = mapping["metadata"]  # the model's name for the "metadata" column


class InstanceFault(SQLModel, table=True):
    __tablename__ = "instance_faults"
    id: int | None = Field(default=None, primary_key=True)
    instance_uuid: str = Field(max_length=36, index=True)
    code: int = 500
    message: str = Field(default="", max_length=255)
    details: str = Field(default="", sa_column=Column(LONG_TEXT, nullable=False, default=""))
    host: str | None = Field(default=None, max_length=255)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class InstanceSystemMetadata(SQLModel, table=True):
    """Nova's ``instance_system_metadata``: items the service keeps about an instance,
    e.g. the password its guest posted (``password_0`` ... ``password_3``)."""

    __tablename__ = "instance_system_metadata"
    id: int | None = Field(default=None, primary_key=True)
    instance_uuid: str = Field(max_length=36, index=True)
    key: str = Field(max_length=255)
    value: str = Field(default="", max_length=255)
    __table_args__ = (UniqueConstraint("instance_uuid", "key"),)


class InstanceAction(SQLModel, table=True):
    __tablename__ = "instance_actions"
    id: int | None = Field(default=None, primary_key=True)
    instance_uuid: str = Field(max_length=36, index=True)
    action: str = Field(max_length=255)
    request_id: str = Field(max_length=255, index=True)
    user_id: str = Field(max_length=64)
    project_id: str = Field(max_length=64)
    start_time: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    finish_time: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    message: str | None = Field(default=None, max_length=255)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class InstanceActionEvent(SQLModel, table=True):
    __tablename__ = "instance_actions_events"
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(index=True)
    event: str = Field(max_length=255)
    start_time: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    finish_time: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    result: str | None = Field(default=None, max_length=255)
    traceback: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))
    host: str | None = Field(default=None, max_length=255)
    details: str | None = Field(default=None, sa_column=Column(LONG_TEXT, nullable=True))


class Service(SQLModel, table=True):
    __tablename__ = "services"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(default_factory=new_uuid, max_length=36, unique=True)
    host: str = Field(max_length=255)
    binary: str = Field(max_length=255)
    topic: str = Field(max_length=255)
    report_count: int = 0
    disabled: bool = False
    disabled_reason: str | None = Field(default=None, max_length=255)
    forced_down: bool = False
    availability_zone: str = Field(default="nova", max_length=255)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    __table_args__ = (UniqueConstraint("host", "binary"),)


class ComputeNode(SQLModel, table=True):
    __tablename__ = "compute_nodes"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(default_factory=new_uuid, max_length=36, unique=True)
    host: str = Field(max_length=255, unique=True)
    hypervisor_hostname: str = Field(max_length=255)
    hypervisor_type: str = Field(max_length=255)
    hypervisor_version: int = 0
    vcpus: int = 0
    memory_mb: int = 0
    local_gb: int = 0
    cpu_info: dict[str, Any] = _json()
    supported_instances: list[Any] = _json(list)
    #: The driver's capabilities as the host last reported them (None: not yet).
    capabilities: dict[str, bool] | None = Field(default=None, sa_column=Column(JSON))
    host_ip: str = Field(default="127.0.0.1", max_length=64)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class Allocation(SQLModel, table=True):
    """Resources an instance holds on its host: the scheduler's claim, made durable."""

    __tablename__ = "allocations"
    instance_uuid: str = Field(primary_key=True, max_length=36)
    host: str = Field(max_length=255, index=True)
    vcpus: int
    memory_mb: int
    disk_gb: int


class FixedIP(SQLModel, table=True):
    """An address of the default network held by an instance (unique: never given twice)."""

    __tablename__ = "fixed_ips"
    address: str = Field(primary_key=True, max_length=64)
    network: str = Field(max_length=255)
    instance_uuid: str = Field(max_length=36, index=True)
    mac: str = Field(max_length=32)


class KeyPair(SQLModel, table=True):
    __tablename__ = "key_pairs"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255)
    user_id: str = Field(max_length=64)
    fingerprint: str = Field(max_length=255)
    public_key: str = Field(sa_column=Column(LONG_TEXT, nullable=False))
    type: str = Field(default="ssh", max_length=16)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    __table_args__ = (UniqueConstraint("user_id", "name"),)


class Quota(SQLModel, table=True):
    """A project's override of one ``[quota]`` default (os-quota-sets update)."""

    __tablename__ = "quotas"
    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(max_length=64)
    resource: str = Field(max_length=64)
    hard_limit: int
    __table_args__ = (UniqueConstraint("project_id", "resource"),)


# -- scheduling: server groups and host aggregates --------------------------------
class InstanceGroup(SQLModel, table=True):
    """A server group (os-server-groups): a placement policy for its members."""

    __tablename__ = "instance_groups"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(default_factory=new_uuid, max_length=36, unique=True)
    name: str = Field(max_length=255)
    project_id: str = Field(max_length=64, index=True)
    user_id: str = Field(max_length=64)
    policy: str = Field(max_length=255)
    rules: dict[str, Any] = _json()
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class InstanceGroupMember(SQLModel, table=True):
    """An instance's membership of a server group (an instance joins at most one)."""

    __tablename__ = "instance_group_members"
    instance_uuid: str = Field(primary_key=True, max_length=36)
    group_id: int = Field(index=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class Aggregate(SQLModel, table=True):
    """A host aggregate (os-aggregates); its availability_zone is also kept as metadata."""

    __tablename__ = "aggregates"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(default_factory=new_uuid, max_length=36, unique=True)
    name: str = Field(max_length=255, unique=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)


class AggregateHost(SQLModel, table=True):
    __tablename__ = "aggregate_hosts"
    aggregate_id: int = Field(primary_key=True)
    host: str = Field(primary_key=True, max_length=255)


class AggregateMetadata(SQLModel, table=True):
    __tablename__ = "aggregate_metadata"
    aggregate_id: int = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    value: str = Field(default="", max_length=255)


# -- consoles (nova-consoleauth) -------------------------------------------------------
class ConsoleAuthToken(SQLModel, table=True):
    """A console token: only its SHA-256 is kept, with what it opens and until when
    (Nova's ``console_auth_tokens``; see :mod:`novalite.console.tokens`)."""

    __tablename__ = "console_auth_tokens"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=255, unique=True)
    console_type: str = Field(max_length=255)
    #: Where the console proxy connects: the compute host's console relay.
    host: str = Field(max_length=255)
    port: int | None = None
    internal_access_path: str | None = Field(default=None, max_length=255)
    #: The base URL the token was issued for (the Origin check compares its scheme).
    access_url_base: str | None = Field(default=None, max_length=255)
    instance_uuid: str = Field(max_length=36, index=True)
    #: The compute host (service host name) whose guest it opens.
    compute_host: str = Field(max_length=255)
    #: Unix time after which the token is refused.
    expires: int = Field(index=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)



class Migration(SQLModel, table=True):
    """A move of an instance between hosts (Nova's ``migrations``): a resize, a cold
    migration (``migration``) or a live migration (``live-migration``). The scheduler's
    claim of the source host's resources is held under the migration's ``uuid`` until
    the move is confirmed or reverted. ``old_flavor``/``new_flavor`` are the instance's
    flavor snapshots before and after (Nova keeps them in ``instance_extra``)."""

    __tablename__ = "migrations"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(default_factory=new_uuid, max_length=36, unique=True)
    instance_uuid: str = Field(max_length=36, index=True)
    source_compute: str | None = Field(default=None, max_length=255)
    dest_compute: str | None = Field(default=None, max_length=255)
    source_node: str | None = Field(default=None, max_length=255)
    dest_node: str | None = Field(default=None, max_length=255)
    dest_host: str | None = Field(default=None, max_length=255)
    old_instance_type_id: int | None = None
    new_instance_type_id: int | None = None
    old_flavor: dict[str, Any] = _json()
    new_flavor: dict[str, Any] = _json()
    status: str = Field(default="pre-migrating", max_length=255, index=True)
    migration_type: str = Field(default="resize", max_length=255)
    hidden: bool = False
    user_id: str | None = Field(default=None, max_length=64)
    project_id: str | None = Field(default=None, max_length=64)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True, sa_type=DATETIME)
    updated_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    deleted_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    deleted: int = 0


# -- block storage (the Cinder subset, novalite.volume) ----------------------------------
class Volume(SQLModel, table=True):
    """A Cinder volume: its size in GiB, its state (novalite.volume.states) and where
    its backend keeps its data (``provider_location``, backend-specific)."""

    __tablename__ = "volumes"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    project_id: str = Field(max_length=64, index=True)
    user_id: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    size: int
    status: str = Field(default="creating", max_length=32)
    volume_type: str = Field(default="__DEFAULT__", max_length=255)
    availability_zone: str = Field(default="nova", max_length=255)
    metadata_: dict[str, Any] = Field(default_factory=dict,
                                      sa_column=Column("metadata", JSON, nullable=False))
    bootable: bool = False
    image_id: str | None = Field(default=None, max_length=36)
    #: The image's properties when made from an image (Cinder's volume_image_metadata).
    image_metadata: dict[str, Any] = _json()
    snapshot_id: str | None = Field(default=None, max_length=36)
    source_volid: str | None = Field(default=None, max_length=36)
    backend: str = Field(default="file", max_length=64)
    provider_location: str | None = Field(default=None, max_length=1024)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)


class VolumeSnapshot(SQLModel, table=True):
    """A point-in-time copy of a volume (Cinder's snapshots)."""

    __tablename__ = "volume_snapshots"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    volume_id: str = Field(max_length=36, index=True)
    project_id: str = Field(max_length=64, index=True)
    user_id: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    size: int
    status: str = Field(default="creating", max_length=32)
    metadata_: dict[str, Any] = Field(default_factory=dict,
                                      sa_column=Column("metadata", JSON, nullable=False))
    provider_location: str | None = Field(default=None, max_length=1024)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)


class VolumeAttachment(SQLModel, table=True):
    """A volume attached to a server, as Cinder records it (and Nova's block device
    mapping: ``device``, ``boot_index``, ``delete_on_termination``)."""

    __tablename__ = "volume_attachments"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    volume_id: str = Field(max_length=36, index=True)
    instance_uuid: str = Field(max_length=36, index=True)
    attached_host: str | None = Field(default=None, max_length=255)
    device: str | None = Field(default=None, max_length=255)
    #: attaching, attached, detaching (novalite.volume.states)
    attach_status: str = Field(default="attaching", max_length=32)
    boot_index: int | None = None
    delete_on_termination: bool = False
    tag: str | None = Field(default=None, max_length=60)
    attached_at: NaiveDatetime | None = Field(default=None, sa_type=DATETIME)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


# -- one rule for string lengths on every backend ----------------------------------
class ValueTooLong(NovaliteError):
    """A value is longer than its column holds (MySQL would refuse it; SQLite would not)."""


_LIMITS: dict[str, dict[str, int]] = {}


def string_limits(table: Any) -> dict[str, int]:
    """``{column name: length}`` of ``table``'s bounded string columns."""
    limits = _LIMITS.get(table.name)
    if limits is None:
        limits = {}
        for column in table.columns:
            kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
            length = getattr(kind, "length", None)
            if length and isinstance(kind, String):
                limits[column.name] = length
        _LIMITS[table.name] = limits
    return limits


def check_lengths(table: Any, values: dict[str, Any]) -> None:
    """Raise :class:`ValueTooLong` if a value of ``values`` (by column name) is longer
    than its column of ``table`` holds: the rule of ORM flushes, for Core statements."""
    limits = string_limits(table)
    for name, value in values.items():
        limit = limits.get(name)
        if limit and isinstance(value, str) and len(value) > limit:
            raise ValueTooLong(f"{table.name}.{name}: {len(value)} characters, the column "
                               f"holds {limit}")


def row_values(model: type[SQLModel], **given: Any) -> dict[str, Any]:
    """A full row of ``model``'s table for a Core INSERT: ``given`` (by attribute name)
    over the model's defaults, keyed by column name; lengths checked. The same row
    the model would flush, without building (and validating) a model object."""
    table = model.__table__  # type: ignore[attr-defined]
    row: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in given:
            value = given[name]
        elif field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
        else:
            value = field.default
            if value is PydanticUndefined:
                raise TypeError(f"{model.__name__}.{name} has no default")
        if value is None and name == "id":
            continue  # autoincrement
        row[_COLUMN_NAMES.get(name, name)] = value
    check_lengths(table, row)
    return row


#: Attributes whose column has another name.
_COLUMN_NAMES = {"metadata_": "metadata"}


@event.listens_for(SQLModel, "before_insert", propagate=True)
@event.listens_for(SQLModel, "before_update", propagate=True)
def _check_string_lengths(mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    table = cast(Table, mapper.local_table)  # a table=True model maps exactly one Table
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        limit = string_limits(table).get(column.name)
        if not limit:
            continue
        value = getattr(target, prop.key, None)
        if isinstance(value, str) and len(value) > limit:
            raise ValueTooLong(f"{table.name}.{column.name}: {len(value)} "
                               f"characters, the column holds {limit}")


# -- networking (the Neutron v2.0 subset: novalite.network) -----------------------
class NetworkRecord(SQLModel, table=True):
    """A Neutron network: one flat L2 segment (a bridge on each compute host)."""

    __tablename__ = "networks"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    name: str = Field(default="", max_length=255)
    project_id: str = Field(max_length=64, index=True)
    description: str = Field(default="", max_length=255)
    shared: bool = False
    admin_state_up: bool = True
    mtu: int = 1500
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class Subnet(SQLModel, table=True):
    """An IPv4 subnet of a network: its CIDR, gateway, allocation pools and DNS."""

    __tablename__ = "subnets"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    network_id: str = Field(max_length=36, index=True)
    project_id: str = Field(max_length=64)
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    cidr: str = Field(max_length=64)
    gateway_ip: str | None = Field(default=None, max_length=64)
    ip_version: int = 4
    enable_dhcp: bool = True
    allocation_pools: list[dict[str, str]] = _json(list)
    dns_nameservers: list[str] = _json(list)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class Port(SQLModel, table=True):
    """A Neutron port: a MAC on a network, its fixed IPs (:class:`IPAllocation`) and
    security groups; bound to a server (``device_id``) and its host when in use."""

    __tablename__ = "ports"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    network_id: str = Field(max_length=36, index=True)
    project_id: str = Field(max_length=64, index=True)
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    mac_address: str = Field(max_length=32, unique=True)
    admin_state_up: bool = True
    device_id: str = Field(default="", max_length=255, index=True)
    device_owner: str = Field(default="", max_length=255)
    binding_host: str = Field(default="", max_length=255)
    #: Whether novalite created the port for a boot (deleted with the server) or the
    #: user did (unbound and kept, as Neutron does for a port given to Nova).
    nova_created: bool = False
    port_security_enabled: bool = True
    security_group_ids: list[str] = _json(list)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class IPAllocation(SQLModel, table=True):
    """A fixed IP of a port (the primary key makes double allocation impossible)."""

    __tablename__ = "ip_allocations"
    subnet_id: str = Field(primary_key=True, max_length=36)
    address: str = Field(primary_key=True, max_length=64)
    network_id: str = Field(max_length=36, index=True)
    port_id: str = Field(max_length=36, index=True)


class SecurityGroup(SQLModel, table=True):
    """A project's security group (``default`` made on the project's first use)."""

    __tablename__ = "security_groups"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    project_id: str = Field(max_length=64, index=True)
    name: str = Field(max_length=255)
    description: str = Field(default="", max_length=255)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


class SecurityGroupRule(SQLModel, table=True):
    """One rule of a security group (what it lets in or out)."""

    __tablename__ = "security_group_rules"
    id: str = Field(default_factory=new_uuid, primary_key=True, max_length=36)
    security_group_id: str = Field(max_length=36, index=True)
    project_id: str = Field(max_length=64)
    direction: str = Field(max_length=16)
    ethertype: str = Field(default="IPv4", max_length=16)
    protocol: str | None = Field(default=None, max_length=40)
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = Field(default=None, max_length=64)
    remote_group_id: str | None = Field(default=None, max_length=36)
    description: str = Field(default="", max_length=255)
    created_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    updated_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)


# -- the control plane ------------------------------------------------------------
class ControlLease(SQLModel, table=True):
    """Who does the control plane's one-at-a-time work (scheduling, recovery, periodic
    checks) when several control processes share a database and a broker: the holder
    until ``expires_at`` (see :mod:`novalite.conductor.lease`)."""

    __tablename__ = "control_leases"
    name: str = Field(primary_key=True, max_length=64)
    #: ``<host>:<pid>:<random>`` of the process holding it.
    holder: str = Field(max_length=255)
    acquired_at: NaiveDatetime = Field(default_factory=utcnow, sa_type=DATETIME)
    expires_at: NaiveDatetime = Field(sa_type=DATETIME)
