"""The query of ``GET /servers`` and ``/servers/detail``, read as Nova's ``servers.py``
reads it (``_get_servers``, ``remove_invalid_options``, ``remove_invalid_sort_keys``
and the ``index_query`` schemas), into a :class:`~novalite.compute.server_list.ServerSearch`.

The rules, per microversion:

* Unknown parameters: below 2.75 Nova's schema allows them and they are dropped
  (for admins they reach the database layer, which ignores a name that is no
  column); from 2.75 they are a 400 ``Additional properties are not allowed``.
  That is Nova's own behaviour, followed here on purpose.
* Non-admins (without ``os_compute_api:servers:allow_all_filters``) may filter by
  ``reservation_id``, ``name``, ``status``, ``image``, ``flavor``, ``ip``,
  ``changes-since``, ``all_tenants``; ``ip6`` from 2.5; the tag filters from 2.26;
  ``changes-before`` from 2.66; ``locked`` from 2.73; ``availability_zone``,
  ``config_drive``, ``key_name``, ``created_at``, ``launched_at``, ``terminated_at``,
  ``power_state``, ``task_state``, ``vm_state``, ``progress``, ``user_id`` from 2.83;
  ``hostname`` from 2.90. Any other filter of theirs is ignored, as in Nova.
* ``all_tenants`` (an empty value means true) needs the ``get_all_tenants`` rule:
  a non-admin asking for it is refused (403); ``project_id``/``tenant_id`` filter
  only with it.
* ``sort_key`` must be one of Nova's keys (400 otherwise); keys Nova ignores are
  dropped below 2.75 (``locked`` is a key from 2.73); ``host``/``node`` are
  admin-only (403).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from novalite import states
from novalite.api.framework import ApiCall
from novalite.compute.server_list import DEFAULT_SORT, ServerSearch
from novalite.exceptions import BadRequest, Forbidden
from novalite.policy import allowed, authorize

TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
PAGING_SORTING = ("sort_key", "sort_dir", "limit", "marker")
#: Nova's JOINED_TABLE_QUERY_PARAMS_SERVERS: in the schema, refused by the handler.
JOINED = ("block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
          "security_groups", "pci_devices")
#: index_query's parameters (2.1); exact string parameters, regex parameters.
_PLAIN = ("user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image",
          "vm_state", "task_state", "host", "uuid", "sort_dir", "all_tenants",
          "soft_deleted", "deleted", "status", "marker", "limit", "sort_key",
          "changes-since", *JOINED)
_REGEX = ("kernel_id", "ramdisk_id", "hostname", "key_name", "power_state", "node", "flavor",
          "reservation_id", "launched_at", "terminated_at", "availability_zone", "name",
          "display_name", "description", "display_description", "locked_by",
          "root_device_name", "config_drive", "access_ip_v4", "access_ip_v6",
          "auto_disk_config", "progress", "ip", "ip6", "created_at")
#: search option -> the instance attribute it is a regular expression on
_REGEX_ATTRIBUTE = {"name": "display_name", "display_name": "display_name",
                    "description": "display_description",
                    "display_description": "display_description"}
_EXACT = {"project_id": "project_id", "tenant_id": "project_id", "user_id": "user_id",
          "image": "image_ref", "image_ref": "image_ref", "vm_state": "vm_state",
          "task_state": "task_state", "uuid": "uuid", "host": "host"}

IGNORED_SORT_KEYS = ("architecture", "cell_name", "cleaned", "default_ephemeral_device",
                     "default_swap_device", "deleted", "deleted_at", "disable_terminate",
                     "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
                     "locked", "memory_mb", "os_type", "reservation_id", "root_gb",
                     "shutdown_terminate", "user_data", "vcpus", "vm_mode")
SORT_KEYS = ("access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone",
             "config_drive", "created_at", "display_description", "display_name", "host",
             "hostname", "image_ref", "instance_type_id", "kernel_id", "key_name",
             "launch_index", "launched_at", "locked_by", "node", "power_state", "progress",
             "project_id", "ramdisk_id", "root_device_name", "task_state", "terminated_at",
             "updated_at", "user_id", "uuid", "vm_state")
_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")
MAX_LIMIT = 1000


def known_parameters(call: ApiCall) -> set[str]:
    """The parameters of Nova's ``index_query`` schema at the call's microversion."""
    known = {*_PLAIN, *_REGEX}
    if call.mv("2.26"):
        known.update(TAG_FILTERS)
    if call.mv("2.66"):
        known.add("changes-before")
    if call.mv("2.73"):
        known.add("locked")
    return known


def non_admin_filters(call: ApiCall) -> tuple[str, ...]:
    """The filters a caller without ``allow_all_filters`` may use (Nova's
    ``_get_server_search_options``)."""
    opts: tuple[str, ...] = ("reservation_id", "name", "status", "image", "flavor", "ip",
                             "changes-since", "all_tenants")
    if call.mv("2.5"):
        opts += ("ip6",)
    if call.mv("2.26"):
        opts += TAG_FILTERS
    if call.mv("2.66"):
        opts += ("changes-before",)
    if call.mv("2.73"):
        opts += ("locked",)
    if call.mv("2.83"):
        opts += ("availability_zone", "config_drive", "key_name", "created_at",
                 "launched_at", "terminated_at", "power_state", "task_state", "vm_state",
                 "progress", "user_id")
    if call.mv("2.90"):
        opts += ("hostname",)
    return opts


def _invalid(name: str, value: Any, why: str) -> BadRequest:
    return BadRequest(f"Invalid input for query parameters {name}. Value: {value}. {why}")


def strict_bool(value: str) -> bool:
    """oslo's ``bool_from_string(strict=True)``, with its message."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    accepted = ", ".join(f"'{v}'" for v in sorted(_TRUE + _FALSE))
    raise BadRequest(f"Invalid input received: Unrecognized value '{value}', acceptable "
                     f"values are: {accepted}")


def _time(name: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(name, value, f"'{value}' is not a 'date-time'") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _regex(name: str, value: str) -> re.Pattern[str]:
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error:
        raise _invalid(name, value, f"'{value}' is not a 'regex'") from None


def _validate(call: ApiCall, items: list[tuple[str, str]]) -> None:
    """Nova's query schema: unknown names (from 2.75), regex, date-time, limit, sort_key."""
    known = known_parameters(call)
    if call.mv("2.75"):
        unknown = sorted({k for k, _ in items if k not in known and not k.startswith("_")})
        if unknown:
            names = ", ".join(f"'{k}'" for k in unknown)
            verb = "were" if len(unknown) > 1 else "was"
            raise BadRequest(f"Additional properties are not allowed ({names} {verb} "
                             "unexpected)")
    sort_keys = list(SORT_KEYS)
    if call.mv("2.73"):
        sort_keys.append("locked")
    if not call.mv("2.75"):
        sort_keys += [k for k in IGNORED_SORT_KEYS if k != "locked" or not call.mv("2.73")]
    for name, value in items:
        if name in _REGEX and name in known:
            _regex(name, value)
        elif name in ("changes-since", "changes-before") and name in known:
            _time(name, value)
        elif name == "limit" and not re.fullmatch(r"[0-9]+", value):
            raise _invalid(name, value, f"'{value}' is not a non-negative integer")
        elif name == "sort_key" and value.strip() not in sort_keys:
            raise _invalid(name, value, f"'{value}' is not one of {sorted(sort_keys)}")


def search_from(call: ApiCall, detail: bool) -> ServerSearch | None:
    """The search a list request asks for; None when it can match nothing (an unknown
    status below 2.38)."""
    ctx = call.ctx
    items = list(call.query.multi_items())
    _validate(call, items)
    opts: dict[str, str] = {}
    for name, value in items:  # the last value of a repeated parameter wins, as in webob
        opts[name] = value
    statuses = [v for k, v in items if k == "status"]
    sort_keys = [v.strip() for k, v in items if k == "sort_key"]
    sort_dirs = [v.strip() for k, v in items if k == "sort_dir"]
    admin_filters = allowed(ctx.roles, "os_compute_api:servers:allow_all_filters")
    if admin_filters:
        for key in PAGING_SORTING:
            opts.pop(key, None)
    else:
        allowed_opts = non_admin_filters(call)
        opts = {k: v for k, v in opts.items() if k in allowed_opts}
    for name in opts:
        if name in JOINED or name.startswith("_"):
            raise BadRequest(f"Invalid filter field: {name}.")
    search = ServerSearch()
    opts.pop("status", None)
    vm_wanted: list[str] | None = None
    if statuses:
        vm_wanted, task_wanted = task_and_vm_state_from_status(statuses)
        if not vm_wanted and not task_wanted:
            if call.mv("2.38"):
                raise BadRequest("Invalid status value")
            return None
        search.exact["vm_state"] = vm_wanted
        opts.pop("vm_state", None)  # the status decides, as in Nova
        if "default" not in task_wanted:
            search.exact["task_state"] = task_wanted
            opts.pop("task_state", None)
    if "changes-since" in opts:
        search.changes_since = _time("changes-since", opts.pop("changes-since"))
    if "changes-before" in opts:
        search.changes_before = _time("changes-before", opts.pop("changes-before"))
        if search.changes_since and search.changes_before < search.changes_since:
            raise BadRequest("The value of changes-since must be less than or equal to "
                             "changes-before.")
    if "deleted" not in opts:
        if search.changes_since is None and search.changes_before is None:
            search.deleted = False
        else:
            search.deleted = None
    else:
        search.deleted = opts.pop("deleted").strip().lower() in _TRUE
    opts.pop("soft_deleted", None)  # novalite never soft-deletes: nothing to include
    if vm_wanted == [states.DELETED]:
        if not ctx.is_admin:
            raise Forbidden("Only administrators may list deleted instances")
        search.deleted = True
    if call.mv("2.26"):
        for tag_filter in TAG_FILTERS:
            if tag_filter in opts:
                setattr(search, tag_filter.replace("-", "_"),
                        opts.pop(tag_filter).split(","))
    for tag_filter in TAG_FILTERS:
        opts.pop(tag_filter, None)  # below 2.26: no such filter
    all_tenants = is_all_tenants(opts)
    opts.pop("all_tenants", None)
    if "locked" in opts:
        search.exact["locked"] = [strict_bool(opts.pop("locked"))]
    if all_tenants:
        authorize(ctx, "os_compute_api:servers:" + ("detail" if detail else "index")
                  + ":get_all_tenants")
    else:
        opts.pop("tenant_id", None)
        opts["project_id"] = ctx.project_id
    _to_filters(opts, search)
    _paging(call, search, sort_keys, sort_dirs)
    return search


def is_all_tenants(opts: dict[str, str]) -> bool:
    """Nova's ``common.is_all_tenants``: present with no value means true."""
    value = opts.get("all_tenants")
    if value:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        accepted = ", ".join(f"'{v}'" for v in sorted(_TRUE + _FALSE))
        raise BadRequest(f"Invalid input received: Unrecognized value '{value}', "
                         f"acceptable values are: {accepted}")
    return "all_tenants" in opts


def task_and_vm_state_from_status(statuses: list[str]) -> tuple[list[str], list[str]]:
    """The vm_states and task_states ``statuses`` select (Nova's common function)."""
    wanted = {s.lower() for s in statuses}
    vm: set[str] = set()
    task: set[str] = set()
    for vm_state, by_task in states._STATE_MAP.items():
        for task_state, status in by_task.items():
            if status.lower() in wanted:
                vm.add(vm_state)
                task.add(str(task_state))
    return sorted(vm), sorted(task)


def _to_filters(opts: dict[str, str], search: ServerSearch) -> None:
    """The remaining options as exact, regular-expression and special filters."""
    # tenant_id is project_id's alias; project_id wins when both are given.
    if "tenant_id" in opts:
        opts.setdefault("project_id", opts["tenant_id"])
        del opts["tenant_id"]
    for name, value in opts.items():
        if name in _EXACT:
            search.exact[_EXACT[name]] = [value]
        elif name == "flavor":
            search.flavor = value
        elif name == "ip":
            search.ip = _regex(name, value)
        elif name == "ip6":
            search.ip6 = _regex(name, value)
        elif name in _REGEX or name == "launch_index":
            search.regex[_REGEX_ATTRIBUTE.get(name, name)] = _regex(name, value)
        # anything else names no column of Nova's: its database layer ignores it


def _paging(call: ApiCall, search: ServerSearch, keys: list[str], dirs: list[str]) -> None:
    limit = call.query.get("limit")
    search.limit = min(int(limit), MAX_LIMIT) if limit is not None else MAX_LIMIT
    search.marker = call.query.get("marker")
    ignored = [k for k in IGNORED_SORT_KEYS if k != "locked" or not call.mv("2.73")]
    kept_keys: list[str] = []
    kept_dirs = list(dirs)
    for key in list(keys):
        if key in ignored:  # Nova drops the key and its direction
            index = keys.index(key)
            if len(kept_dirs) > index:
                kept_dirs.pop(index)
            keys.pop(index)
            continue
        if key in ("host", "node") and not call.ctx.is_admin:
            raise Forbidden(f"Only administrators can sort servers by {key}")
        kept_keys.append(key)
    if not kept_keys:
        kept_keys = ["created_at"]
    if not kept_dirs:
        kept_dirs = ["desc"]
    for d in kept_dirs:
        if d not in ("asc", "desc"):
            raise BadRequest("Invalid input received: Unknown sort direction, must be "
                             "'desc' or 'asc'")
    if len(kept_dirs) > len(kept_keys):
        raise BadRequest("Invalid input received: Sort direction size exceeds sort key size")
    default_dir = kept_dirs[0]
    while len(kept_dirs) < len(kept_keys):
        kept_dirs.append(default_dir)
    for key in ("created_at", "id"):
        if key not in kept_keys:
            kept_keys.append(key)
            kept_dirs.append(default_dir)
    search.sort = list(zip(kept_keys, kept_dirs, strict=True))
    if search.sort == DEFAULT_SORT:
        search.sort = list(DEFAULT_SORT)
