"""The metadata a guest reads about itself, as plain data (Nova's ``nova/api/metadata/base.py``).

Two trees, served by the metadata service and written to the config drive alike:

* OpenStack: ``/openstack`` lists the dated versions and ``latest``;
  ``/openstack/<version>/`` lists ``meta_data.json``, ``user_data`` (when given),
  ``password``, ``vendor_data.json``, ``network_data.json`` and ``vendor_data2.json``,
  each from the version Nova introduced it in.
* EC2: ``/`` lists the EC2 versions; ``/<version>/meta-data/...`` (``instance-id``,
  ``hostname``, ``local-ipv4``, ``public-keys/0/openssh-key``,
  ``placement/availability-zone``, ...) and ``/<version>/user-data``.

Everything here is a pure function of :class:`InstanceData` (built from the instance's
plain-data payload, so the compute host can use it without a database). ``lookup``
answers one request path; :func:`config_drive_files` lists the drive's files.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import posixpath
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The EC2 metadata versions Nova serves (``latest`` is the last one).
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10",
                "2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04")

FOLSOM = "2012-08-10"
GRIZZLY = "2013-04-04"  # password, random_seed
HAVANA = "2013-10-17"  # vendor_data.json
LIBERTY = "2015-10-15"  # network_data.json, project_id
NEWTON_ONE = "2016-06-30"  # devices
NEWTON_TWO = "2016-10-06"  # vendor_data2.json
OCATA = "2017-02-22"
ROCKY = "2018-08-27"
VICTORIA = "2020-10-14"  # dedicated_cpus
#: The OpenStack metadata versions Nova serves (``latest`` is the last one).
OPENSTACK_VERSIONS = (FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA,
                      ROCKY, VICTORIA)

#: The EC2 versions Nova leaves off the config drive (``config_drive_skip_versions``).
CONFIG_DRIVE_SKIP_VERSIONS = EC2_VERSIONS[:-1]

MD_JSON = "meta_data.json"
UD_NAME = "user_data"
PASSWORD = "password"
VD_JSON = "vendor_data.json"
VD2_JSON = "vendor_data2.json"
NW_JSON = "network_data.json"

TEXT = "text/plain"
JSON = "application/json"

#: Most bytes of user data, decoded (Nova's limit: the column holds 65,535).
MAX_USER_DATA = 65535


class NotFound(LookupError):
    """No such metadata path (the service answers 404)."""


def sanitize_hostname(name: str, default: str | None = None) -> str:
    """A hostname from a display name, as Nova's ``utils.sanitize_hostname`` makes it:
    latin-1 only, at most 63 characters, spaces, underscores and dots become dashes,
    other characters that are not word characters go, lower case, no leading or
    trailing dots or dashes; ``default`` when nothing is left."""
    host = name.encode("latin-1", "ignore").decode("latin-1")[:63]
    host = re.sub(r"[ _.]", "-", host)
    host = re.sub(r"[^\w.-]+", "", host)
    host = host.lower().strip(".-")
    if not host and default is not None:
        return default[:63]
    return host


def decode_user_data(value: str) -> bytes:
    """The bytes of base64 ``value``; ValueError when it is not valid base64."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class InstanceData:
    """What the metadata of one instance is made of (plain values)."""

    uuid: str
    name: str
    hostname: str
    project_id: str = ""
    user_id: str = ""
    availability_zone: str = ""
    launch_index: int = 0
    reservation_id: str = ""
    #: The instance's integer id (EC2 ids are made from it).
    ec2_id: int = 0
    image_ref: str = ""
    flavor_name: str = ""
    key_name: str | None = None
    key_data: str | None = None
    #: Base64, as the API received it, or None.
    user_data: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: The guest's fixed addresses: ``address``, ``cidr``, ``gateway``, ``mac``, ``network``.
    addresses: tuple[Mapping[str, Any], ...] = ()
    #: The encrypted password the guest posted ("" when none).
    password: str = ""
    #: Appended to the hostname (Nova's ``dhcp_domain``, "novalocal"; "" for none).
    dhcp_domain: str = "novalocal"

    @classmethod
    def from_payload(cls, instance: Mapping[str, Any], *, dhcp_domain: str = "novalocal",
                     password: str = "") -> InstanceData:
        """From the instance's plain-data payload (the conductor's ``instance_payload``)."""
        return cls(
            uuid=instance["uuid"], name=instance.get("name") or "",
            hostname=instance.get("hostname") or "",
            project_id=instance.get("project_id") or "",
            user_id=instance.get("user_id") or "",
            availability_zone=instance.get("availability_zone") or "",
            launch_index=int(instance.get("launch_index") or 0),
            reservation_id=instance.get("reservation_id") or "",
            ec2_id=int(instance.get("id") or 0), image_ref=instance.get("image_ref") or "",
            flavor_name=instance.get("flavor_name") or "",
            key_name=instance.get("key_name"), key_data=instance.get("key_data"),
            user_data=instance.get("user_data"),
            metadata=dict(instance.get("metadata") or {}),
            addresses=tuple(instance.get("addresses") or ()),
            password=password, dhcp_domain=dhcp_domain)

    @property
    def user_data_raw(self) -> bytes | None:
        if self.user_data is None:
            return None
        try:
            return decode_user_data(self.user_data)
        except ValueError:
            return None

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.dhcp_domain}" if self.dhcp_domain else self.hostname

    @property
    def key_type(self) -> str:
        return "x509" if (self.key_data or "").startswith("-----BEGIN") else "ssh"


def _os_version(version: str) -> str:
    if version == "latest":
        return OPENSTACK_VERSIONS[-1]
    if version not in OPENSTACK_VERSIONS:
        raise NotFound(version)
    return version


def _at_least(required: str, version: str) -> bool:
    return OPENSTACK_VERSIONS.index(version) >= OPENSTACK_VERSIONS.index(required)


def meta_data(data: InstanceData, version: str = "latest", *,
              admin_pass: str | None = None) -> dict[str, Any]:
    """``meta_data.json`` of ``version``; ``admin_pass`` only on the config drive."""
    version = _os_version(version)
    md: dict[str, Any] = {"uuid": data.uuid}
    if data.metadata:
        md["meta"] = dict(data.metadata)
    if admin_pass is not None:
        md["admin_pass"] = admin_pass
    if data.key_name:
        md["public_keys"] = {data.key_name: data.key_data}
        md["keys"] = [{"name": data.key_name, "type": data.key_type, "data": data.key_data}]
    md["hostname"] = data.fqdn
    md["name"] = data.name
    md["launch_index"] = data.launch_index
    md["availability_zone"] = data.availability_zone
    if _at_least(GRIZZLY, version):
        md["random_seed"] = base64.b64encode(os.urandom(512)).decode()
    if _at_least(LIBERTY, version):
        md["project_id"] = data.project_id
    if _at_least(NEWTON_ONE, version):
        md["devices"] = []
    if _at_least(VICTORIA, version):
        md["dedicated_cpus"] = []
    return md


def network_data(data: InstanceData) -> dict[str, Any]:
    """``network_data.json``: one link and one static IPv4 network per fixed address
    (Nova's ``netutils.get_network_metadata``), with the gateway as default route."""
    links, networks = [], []
    for index, addr in enumerate(data.addresses):
        link = f"tap{data.uuid[:8]}-{index}"
        links.append({"id": link, "vif_id": f"{data.uuid}-{index}", "type": "phy",
                      "mtu": 1500, "ethernet_mac_address": addr.get("mac", "")})
        iface = ipaddress.ip_interface(f"{addr['address']}/{str(addr['cidr']).split('/')[-1]}")
        net: dict[str, Any] = {
            "id": f"network{index}", "type": "ipv4", "link": link,
            "ip_address": addr["address"], "netmask": str(iface.netmask),
            "network_id": addr.get("network", ""), "services": [],
            "routes": [],
        }
        if addr.get("gateway"):
            net["routes"] = [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                              "gateway": addr["gateway"]}]
        networks.append(net)
    return {"links": links, "networks": networks, "services": []}


def _ec2_id(prefix: str, number: int) -> str:
    return f"{prefix}-{number:08x}"


def ec2_meta_data(data: InstanceData, version: str = "latest") -> dict[str, Any]:
    """The EC2 ``meta-data`` tree of ``version`` (a nested dict; leaves are strings)."""
    if version == "latest":
        version = EC2_VERSIONS[-1]
    if version not in EC2_VERSIONS:
        raise NotFound(version)
    at_least = EC2_VERSIONS.index(version).__ge__
    fixed = data.addresses[0]["address"] if data.addresses else ""
    md: dict[str, Any] = {
        "ami-id": _ec2_id("ami", zlib.crc32(data.image_ref.encode())),
        "ami-launch-index": data.launch_index,
        "ami-manifest-path": "FIXME",
        "instance-id": _ec2_id("i", data.ec2_id),
        "hostname": data.fqdn,
        "local-ipv4": fixed,
        "reservation-id": data.reservation_id,
        "security-groups": ["default"],
    }
    if data.key_name:
        md["public-keys"] = {"0": {"_name": f"0={data.key_name}",
                                   "openssh-key": data.key_data or ""}}
    if at_least(EC2_VERSIONS.index("2007-01-19")):
        md.update({"local-hostname": data.fqdn, "public-hostname": data.fqdn,
                   "public-ipv4": ""})
    if at_least(EC2_VERSIONS.index("2007-08-29")):
        md["instance-type"] = data.flavor_name
    if at_least(EC2_VERSIONS.index("2007-12-15")):
        md["block-device-mapping"] = {"ami": "vda", "root": "/dev/vda"}
    if at_least(EC2_VERSIONS.index("2008-02-01")):
        md["placement"] = {"availability-zone": data.availability_zone}
    if at_least(EC2_VERSIONS.index("2008-09-01")):
        md["instance-action"] = "none"
    return md


def ec2_md_print(value: Any) -> str:
    """A tree node as Nova prints it: a dict lists its keys (``key/`` for a subtree),
    a list its items, one a line; a leaf is its text."""
    if isinstance(value, dict):
        lines = []
        for key in sorted(value):
            if key == "_name":
                continue
            item = value[key]
            if isinstance(item, dict):
                lines.append(str(item["_name"]) if "_name" in item else f"{key}/")
            else:
                lines.append(str(key))
        return "\n".join(lines)
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Item:
    """The answer to one metadata path: its bytes and content type. ``password`` marks
    the password path, whose GET and POST the service handles (see :mod:`.password`)."""

    body: bytes
    content_type: str = TEXT
    password: bool = False


def _text(value: Any) -> Item:
    return Item(ec2_md_print(value).encode())


def _json(value: Any) -> Item:
    return Item(json.dumps(value).encode(), JSON)


def openstack_listing(version: str, data: InstanceData) -> list[str]:
    """The files under ``/openstack/<version>/``."""
    names = [MD_JSON]
    if data.user_data is not None:
        names.append(UD_NAME)
    if _at_least(GRIZZLY, version):
        names.append(PASSWORD)
    if _at_least(HAVANA, version):
        names.append(VD_JSON)
    if _at_least(LIBERTY, version):
        names.append(NW_JSON)
    if _at_least(NEWTON_TWO, version):
        names.append(VD2_JSON)
    return names


def _openstack_item(data: InstanceData, tokens: list[str]) -> Item:
    if not tokens or not tokens[0]:
        return _text([*OPENSTACK_VERSIONS, "latest"])
    version = _os_version(tokens[0])
    name = "/".join(tokens[1:])
    if not name:
        return _text(openstack_listing(version, data))
    if name == MD_JSON:
        return _json(meta_data(data, version))
    if name == UD_NAME and data.user_data is not None:
        return Item(data.user_data_raw or b"", TEXT)
    if name == PASSWORD and _at_least(GRIZZLY, version):
        return Item(data.password.encode(), TEXT, password=True)
    if name == VD_JSON and _at_least(HAVANA, version):
        return _json({})
    if name == NW_JSON and _at_least(LIBERTY, version):
        return _json(network_data(data))
    if name == VD2_JSON and _at_least(NEWTON_TWO, version):
        return _json({"static": {}})
    raise NotFound(name)


def _ec2_item(data: InstanceData, tokens: list[str]) -> Item:
    if not tokens or not tokens[0]:
        return _text([*EC2_VERSIONS, "latest"])
    tree: dict[str, Any] = {"meta-data": ec2_meta_data(data, tokens[0])}
    raw = data.user_data_raw
    if raw is not None:
        tree["user-data"] = raw
    node: Any = tree
    for token in tokens[1:]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise NotFound("/".join(tokens))
    if isinstance(node, bytes):
        return Item(node)
    return _text(node)


def lookup(data: InstanceData, path: str) -> Item:
    """The metadata at request path ``path`` (Nova's ``InstanceMetadata.lookup``):
    ``/openstack/...`` is the OpenStack tree, anything else the EC2 tree (``/``
    lists the EC2 versions). Raises :class:`NotFound`."""
    path = posixpath.normpath("/" + path.lstrip("/"))
    tokens = [t for t in path.split("/")[1:] if t]
    if tokens and tokens[0] == "openstack":
        return _openstack_item(data, tokens[1:])
    if tokens and tokens[0] == "ec2":
        tokens = tokens[1:]
    return _ec2_item(data, tokens)


def config_drive_files(data: InstanceData, admin_pass: str | None = None
                       ) -> dict[str, bytes]:
    """The config drive's files, path -> bytes (Nova's ``metadata_for_config_drive``):
    ``ec2/<version>/meta-data.json`` and ``user-data`` (for ``2009-04-04`` and
    ``latest``), and every OpenStack version's ``meta_data.json``, ``user_data``,
    ``vendor_data.json``, ``network_data.json`` and ``vendor_data2.json``. The
    ``admin_pass`` given at boot is in ``meta_data.json`` here only."""
    files: dict[str, bytes] = {}
    raw = data.user_data_raw
    for version in (*EC2_VERSIONS, "latest"):
        if version in CONFIG_DRIVE_SKIP_VERSIONS:
            continue
        md = ec2_meta_data(data, version)
        md.get("public-keys", {}).get("0", {}).pop("_name", None)
        files[f"ec2/{version}/meta-data.json"] = json.dumps(md).encode()
        if raw is not None:
            files[f"ec2/{version}/user-data"] = raw
    for version in (*OPENSTACK_VERSIONS, "latest"):
        real = _os_version(version)
        base = f"openstack/{version}/"
        files[base + MD_JSON] = json.dumps(meta_data(data, version,
                                                     admin_pass=admin_pass)).encode()
        if raw is not None:
            files[base + UD_NAME] = raw
        if _at_least(HAVANA, real):
            files[base + VD_JSON] = b"{}"
        if _at_least(LIBERTY, real):
            files[base + NW_JSON] = json.dumps(network_data(data)).encode()
        if _at_least(NEWTON_TWO, real):
            files[base + VD2_JSON] = json.dumps({"static": {}}).encode()
    return files
