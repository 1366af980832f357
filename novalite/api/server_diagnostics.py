"""``GET /servers/{id}/diagnostics`` (admin): Nova's standard shape from 2.48.

novalite's drivers report no guest counters, so the counters are None (the 2.48
schema allows that); what is known is the state, the hypervisor, vCPUs, memory,
NICs and disks. Below 2.48 Nova answers whatever its driver returns: here the
same facts, flat.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from novalite.api.framework import ApiCall, Router
from novalite.db.models import utcnow
from novalite.virt.driver import PowerState

router = Router()

_STATE = {PowerState.NOSTATE: "pending", PowerState.RUNNING: "running",
          PowerState.PAUSED: "paused", PowerState.SHUTDOWN: "shutdown",
          PowerState.CRASHED: "crashed", PowerState.SUSPENDED: "suspended"}
_NIC_COUNTERS = ("rx_octets", "rx_errors", "rx_drop", "rx_packets", "rx_rate", "tx_octets",
                 "tx_errors", "tx_drop", "tx_packets", "tx_rate")
_DISK_COUNTERS = ("read_bytes", "read_requests", "write_bytes", "write_requests",
                  "errors_count")


@router.route("GET", "/v2.1/servers/{server_id}/diagnostics",
              rule="os_compute_api:os-server-diagnostics")
async def diagnostics(call: ApiCall) -> dict[str, Any]:
    found = await call.services.compute.diagnostics(call.ctx, call.params["server_id"])
    inst = found["instance"]
    state = _STATE.get(inst.power_state, "pending")
    launched: dt.datetime | None = inst.launched_at
    uptime = int((utcnow() - launched).total_seconds()) if launched and \
        state == "running" else None
    disks = 1 + (1 if inst.ephemeral_gb else 0)
    nics = list(inst.addresses or [])
    if not call.mv("2.48"):
        flat: dict[str, Any] = {"state": state, "memory": inst.memory_mb * 1024,
                                "uptime": uptime}
        for i, nic in enumerate(nics):
            flat[f"nic{i}_mac_address"] = nic.get("mac")
        return flat
    return {
        "state": state,
        # novalite's drivers are libvirt's kind (qemu, kvm, lxc); the fake driver says
        # so too, as Nova's fake driver does.
        "driver": "libvirt",
        "hypervisor": (found["hypervisor_type"] or "").lower() or None,
        "hypervisor_os": None,
        "uptime": uptime,
        "config_drive": str(inst.config_drive).lower() in ("true", "1", "t", "yes"),
        "num_cpus": inst.vcpus,
        "num_nics": len(nics),
        "num_disks": disks,
        "memory_details": {"maximum": inst.memory_mb, "used": None},
        "cpu_details": [{"id": i, "time": None, "utilisation": None}
                        for i in range(inst.vcpus)],
        "nic_details": [{"mac_address": nic.get("mac"), **dict.fromkeys(_NIC_COUNTERS)}
                        for nic in nics],
        "disk_details": [dict.fromkeys(_DISK_COUNTERS) for _ in range(disks)],
    }
