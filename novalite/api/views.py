"""Nova's response bodies, field for field, gated by microversion.

No field appears below the microversion that introduced it (Nova's published
response schemas forbid extra properties at lower microversions).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from novalite import states
from novalite.api.framework import ApiCall
from novalite.compute.api import ServerRecord
from novalite.db.models import Flavor, InstanceAction, InstanceActionEvent


def iso(value: dt.datetime | None) -> str | None:
    # isoformat is C code; strftime costs several times more per call.
    return value.replace(microsecond=0).isoformat() + "Z" if value else None


def iso_usec(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def links(base: str, kind: str, ident: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}/compute/v2.1/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/compute/{kind}/{ident}"}]


def server_brief(base: str, record: ServerRecord) -> dict[str, Any]:
    inst = record.instance
    return {"id": inst.uuid, "name": inst.display_name,
            "links": links(base, "servers", inst.uuid)}


def addresses(inst_addresses: list[dict[str, Any]], extended: bool = True
              ) -> dict[str, list[dict[str, Any]]]:
    """A server's addresses by network; ``extended``: with the ``OS-EXT-IPS`` type and
    MAC (every view but ``PUT /servers/{id}`` below 2.75)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for a in inst_addresses or []:
        item: dict[str, Any] = {"version": a.get("version", 4), "addr": a["address"]}
        if extended:
            item["OS-EXT-IPS:type"] = "fixed"
            item["OS-EXT-IPS-MAC:mac_addr"] = a["mac"]
        out.setdefault(a["network"], []).append(item)
    return out


#: The statuses Nova shows ``progress`` in.
_PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")


def server_detail(call: ApiCall, base: str, record: ServerRecord, show: bool = False,
                  full: bool = True) -> dict[str, Any]:
    """A server as ``GET /servers/{id}`` (``show``) or ``/servers/detail`` shows it.
    ``full=False``: the reduced view ``PUT /servers/{id}`` answers below 2.75 (no
    availability zone, config drive, key name, usage times, security groups,
    extended status, volumes, extended attributes or host status)."""
    inst = record.instance
    admin = call.ctx.is_admin
    flavor = inst.flavor
    status = states.status_from_state(inst.vm_state, inst.task_state)
    body: dict[str, Any] = {
        "id": inst.uuid,
        "name": inst.display_name,
        "status": status,
        "tenant_id": inst.project_id,
        "user_id": inst.user_id,
        "metadata": dict(inst.metadata_),
        "hostId": hashlib.sha224((inst.project_id + (inst.host or "")).encode()).hexdigest()
        if inst.host else "",
        "image": {"id": inst.image_ref,
                  "links": [{"rel": "bookmark",
                             "href": f"{base}/compute/images/{inst.image_ref}"}]},
        "created": iso(inst.created_at),
        "updated": iso(inst.updated_at),
        "addresses": addresses(inst.addresses, extended=full),
        "accessIPv4": inst.access_ip_v4 or "",
        "accessIPv6": inst.access_ip_v6 or "",
        "links": links(base, "servers", inst.uuid),
        "OS-DCF:diskConfig": "AUTO" if inst.auto_disk_config else "MANUAL",
    }
    if status in _PROGRESS_STATUSES:
        body["progress"] = 100 if status == "ACTIVE" else (inst.progress or 0)
    if full:
        body.update({
            "OS-EXT-AZ:availability_zone": inst.availability_zone or "",
            "config_drive": inst.config_drive,
            "key_name": inst.key_name,
            "OS-SRV-USG:launched_at": iso_usec(inst.launched_at),
            "OS-SRV-USG:terminated_at": iso_usec(inst.terminated_at),
            "OS-EXT-STS:task_state": inst.task_state,
            "OS-EXT-STS:vm_state": inst.vm_state,
            "OS-EXT-STS:power_state": inst.power_state,
            "os-extended-volumes:volumes_attached": [
                {"id": vid, **({"delete_on_termination": dot} if call.mv("2.3") else {})}
                for vid, dot in record.volumes],
        })
        # the groups of its ports, by name (Nova asks Neutron); none: no key, as Nova
        names = dict.fromkeys(n for a in inst.addresses or []
                              for n in a.get("security_group_names", ["default"]))
        if names:
            body["security_groups"] = [{"name": n} for n in names]
    if call.mv("2.47"):
        body["flavor"] = {"vcpus": flavor.get("vcpus"), "ram": flavor.get("memory_mb"),
                          "disk": flavor.get("root_gb"), "ephemeral": flavor.get("ephemeral_gb"),
                          "swap": flavor.get("swap"), "original_name": flavor.get("name"),
                          "extra_specs": dict(flavor.get("extra_specs", {}))}
    else:
        body["flavor"] = {"id": flavor.get("id"),
                          "links": [{"rel": "bookmark",
                                     "href": f"{base}/compute/flavors/{flavor.get('id')}"}]}
    if admin and full:
        body["OS-EXT-SRV-ATTR:host"] = inst.host
        body["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.node
        body["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst.id or 0:08x}"
        if call.mv("2.3"):
            body.update({
                "OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                "OS-EXT-SRV-ATTR:hostname": inst.hostname,
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                "OS-EXT-SRV-ATTR:user_data": inst.user_data,
            })
    if call.mv("2.9"):
        body["locked"] = bool(inst.locked)
    if call.mv("2.16") and admin and full:
        body["host_status"] = "UP" if inst.host else ""
    if call.mv("2.19"):
        body["description"] = inst.display_description
    if call.mv("2.26"):
        body["tags"] = list(inst.tags or [])
    if call.mv("2.63"):
        body["trusted_image_certificates"] = None
    if call.mv("2.71") and show:
        body["server_groups"] = []
    if call.mv("2.73"):
        body["locked_reason"] = inst.locked_reason
    if call.mv("2.90"):
        body["OS-EXT-SRV-ATTR:hostname"] = inst.hostname
    if call.mv("2.96") and full:
        body["pinned_availability_zone"] = None
    if record.fault is not None and status in ("ERROR", "DELETED"):
        fault: dict[str, Any] = {"code": record.fault.code, "message": record.fault.message,
                                 "created": iso(record.fault.created_at)}
        if admin or record.fault.code != 500:
            fault["details"] = record.fault.details
        body["fault"] = fault
    return body


def flavor_view(call: ApiCall, base: str, flavor: Flavor, extra_specs: dict[str, str] | None,
                detail: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": flavor.flavorid, "name": flavor.name,
                            "links": links(base, "flavors", flavor.flavorid)}
    if call.mv("2.55"):
        body["description"] = flavor.description
    if not detail:
        return body
    body.update({
        "ram": flavor.memory_mb, "disk": flavor.root_gb, "vcpus": flavor.vcpus,
        "swap": flavor.swap or "", "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": flavor.disabled, "os-flavor-access:is_public":
        flavor.is_public, "rxtx_factor": flavor.rxtx_factor,
    })
    if call.mv("2.75"):
        body["swap"] = flavor.swap
    if call.mv("2.61") and extra_specs is not None:
        body["extra_specs"] = extra_specs
    return body


def action_view(call: ApiCall, action: InstanceAction,
                events: list[InstanceActionEvent] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": action.action, "instance_uuid": action.instance_uuid,
        "request_id": action.request_id, "user_id": action.user_id,
        "project_id": action.project_id, "start_time": iso_usec(action.start_time),
        "message": action.message,
    }
    if call.mv("2.58"):
        body["updated_at"] = iso_usec(action.updated_at)
    if events is not None:
        admin = call.ctx.is_admin
        out = []
        for e in events:
            ev: dict[str, Any] = {"event": e.event, "start_time": iso_usec(e.start_time),
                                  "finish_time": iso_usec(e.finish_time), "result": e.result}
            if admin:
                ev["traceback"] = e.traceback
            if call.mv("2.62"):
                ev["hostId"] = hashlib.sha224((action.project_id + (e.host or "")).encode()
                                              ).hexdigest() if e.host else ""
                if admin:
                    ev["host"] = e.host
            if call.mv("2.84"):
                ev["details"] = e.details
            out.append(ev)
        body["events"] = out
    return body
