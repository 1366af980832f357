"""Nova's vocabularies: vm_states, task_states, power states and the API status.

The API's ``status`` is derived from (vm_state, task_state) exactly as Nova's
``nova.api.openstack.common.status_from_state`` does.
"""

from __future__ import annotations

from novalite.virt.driver import PowerState

# vm_states
ACTIVE = "active"
BUILDING = "building"
PAUSED = "paused"
SUSPENDED = "suspended"
STOPPED = "stopped"
DELETED = "deleted"
ERROR = "error"
SOFT_DELETED = "soft-delete"
RESCUED = "rescued"
RESIZED = "resized"
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"

# task_states
SCHEDULING = "scheduling"
BLOCK_DEVICE_MAPPING = "block_device_mapping"
NETWORKING = "networking"
SPAWNING = "spawning"
REBOOTING = "rebooting"
REBOOT_PENDING = "reboot_pending"
REBOOT_STARTED = "reboot_started"
REBOOTING_HARD = "rebooting_hard"
REBOOT_PENDING_HARD = "reboot_pending_hard"
REBOOT_STARTED_HARD = "reboot_started_hard"
PAUSING = "pausing"
UNPAUSING = "unpausing"
SUSPENDING = "suspending"
RESUMING = "resuming"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
DELETING = "deleting"
IMAGE_SNAPSHOT = "image_snapshot"
# task_states of rebuild, rescue, backup and soft delete (issue 20, part A)
REBUILDING = "rebuilding"
REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
REBUILD_SPAWNING = "rebuild_spawning"
RESCUING = "rescuing"
UNRESCUING = "unrescuing"
IMAGE_BACKUP = "image_backup"
SOFT_DELETING = "soft-deleting"
RESTORING = "restoring"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
RESIZE_CONFIRMING = "resize_confirming"
MIGRATING = "migrating"
SHELVING = "shelving"
SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"
#: The task states of a resize or cold migration before VERIFY_RESIZE (status RESIZE).
RESIZE_TASKS = (RESIZE_PREP, RESIZE_MIGRATING, RESIZE_MIGRATED, RESIZE_FINISH)

POWER_STATE_NAMES = {
    PowerState.NOSTATE: "NOSTATE",
    PowerState.RUNNING: "Running",
    PowerState.PAUSED: "Paused",
    PowerState.SHUTDOWN: "Shutdown",
    PowerState.CRASHED: "Crashed",
    PowerState.SUSPENDED: "Suspended",
}

_STATE_MAP: dict[str, dict[str | None, str]] = {
    ACTIVE: {
        "default": "ACTIVE",
        REBOOTING: "REBOOT",
        REBOOT_PENDING: "REBOOT",
        REBOOT_STARTED: "REBOOT",
        REBOOTING_HARD: "HARD_REBOOT",
        REBOOT_PENDING_HARD: "HARD_REBOOT",
        REBOOT_STARTED_HARD: "HARD_REBOOT",
        **dict.fromkeys(RESIZE_TASKS, "RESIZE"),
        MIGRATING: "MIGRATING",
    },
    BUILDING: {"default": "BUILD"},
    STOPPED: {"default": "SHUTOFF", **dict.fromkeys(RESIZE_TASKS, "RESIZE")},
    RESIZED: {"default": "VERIFY_RESIZE", RESIZE_REVERTING: "REVERT_RESIZE"},
    SHELVED: {"default": "SHELVED"},
    SHELVED_OFFLOADED: {"default": "SHELVED_OFFLOADED"},
    PAUSED: {"default": "PAUSED"},
    SUSPENDED: {"default": "SUSPENDED"},
    ERROR: {"default": "ERROR"},
    DELETED: {"default": "DELETED"},
    SOFT_DELETED: {"default": "SOFT_DELETED"},
    RESCUED: {"default": "RESCUE"},
}
# REBUILD while a rebuild runs, from each state a rebuild starts in (Nova's map).
for _vm in (ACTIVE, STOPPED, ERROR):
    _STATE_MAP[_vm].update({REBUILDING: "REBUILD", REBUILD_BLOCK_DEVICE_MAPPING: "REBUILD",
                            REBUILD_SPAWNING: "REBUILD"})


def status_from_state(vm_state: str, task_state: str | None = None) -> str:
    """The API ``status`` of an instance (Nova's mapping)."""
    by_task = _STATE_MAP.get(vm_state, {"default": "UNKNOWN"})
    status = by_task.get(task_state) or by_task["default"]
    if status == "UNKNOWN":
        return "UNKNOWN"
    return status


def states_for_status(status: str) -> list[str]:
    """The vm_states a ``status`` filter value selects (Nova's ``task_and_vm_state_from_status``)."""
    status = status.upper()
    return sorted({vm for vm, tasks in _STATE_MAP.items() if status in tasks.values()})

