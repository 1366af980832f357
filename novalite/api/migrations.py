"""``/os-migrations`` and ``/servers/{id}/migrations`` (Nova's ``migrations.py`` and
``server_migrations.py``): the fields and filters of each microversion."""

from __future__ import annotations

import datetime as dt
from typing import Any

from novalite import policy
from novalite.api.framework import ApiCall, Reply, Router
from novalite.compute.migrations import MigrationSearch
from novalite.db.models import Migration
from novalite.exceptions import BadRequest, NotFound

router = Router()

#: Query parameters of each microversion range (unknown ones: 400 from 2.59, as the
#: schema of 2.59 and later has additionalProperties False).
_FILTERS_OLD = ("hidden", "host", "instance_uuid", "source_compute", "status",
                "migration_type", "cell_name")
_FILTERS_259 = (*_FILTERS_OLD, "limit", "marker", "changes-since")


def _time(name: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}. "
                         f"'{value}' is not a 'date-time'") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _stamp(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


_HOST_FIELDS = ("source_compute", "dest_compute", "source_node", "dest_node", "dest_host")


def migration_view(call: ApiCall, m: Migration, *, server_view: bool = False,
                   hosts: bool = True) -> dict[str, Any]:
    """One migration as Nova shows it at the call's microversion (``hosts`` False: the
    host fields are null, as Nova shows them to a project manager)."""
    body: dict[str, Any] = {
        "id": m.id, "instance_uuid": m.instance_uuid, "status": m.status,
        "source_compute": m.source_compute, "dest_compute": m.dest_compute,
        "source_node": m.source_node, "dest_node": m.dest_node, "dest_host": m.dest_host,
        "created_at": _stamp(m.created_at), "updated_at": _stamp(m.updated_at)}
    if server_view:
        body.pop("instance_uuid")
        body["server_uuid"] = m.instance_uuid
        body.update(memory_total_bytes=None, memory_processed_bytes=None,
                    memory_remaining_bytes=None, disk_total_bytes=None,
                    disk_processed_bytes=None, disk_remaining_bytes=None)
    else:
        body["old_instance_type_id"] = m.old_instance_type_id
        body["new_instance_type_id"] = m.new_instance_type_id
    if call.mv("2.23") and not server_view:
        body["migration_type"] = m.migration_type
        base = f"{call.services.base_url}/compute"
        if m.migration_type == "live-migration" and m.status in (
                "queued", "preparing", "running"):
            href = f"/servers/{m.instance_uuid}/migrations/{m.id}"
            body["links"] = [{"rel": "self", "href": f"{base}/v2.1{href}"},
                             {"rel": "bookmark", "href": f"{base}{href}"}]
    if call.mv("2.59"):
        body["uuid"] = m.uuid
    if call.mv("2.80"):
        body["user_id"] = m.user_id
        body["project_id"] = m.project_id
    if not hosts:
        body.update(dict.fromkeys(_HOST_FIELDS))
    return body


@router.route("GET", "/v2.1/os-migrations", rule="os_compute_api:os-migrations:index")
async def list_migrations(call: ApiCall) -> dict[str, Any]:
    query = call.query
    allowed = list(_FILTERS_259 if call.mv("2.59") else _FILTERS_OLD)
    if call.mv("2.66"):
        allowed.append("changes-before")
    if call.mv("2.80"):
        allowed += ["user_id", "project_id"]
    if call.mv("2.59"):
        unknown = sorted(set(query.keys()) - set(allowed))
        if unknown:
            raise BadRequest(f"Additional properties are not allowed ('{unknown[0]}' was "
                             "unexpected)")
    search = MigrationSearch()
    for key in ("instance_uuid", "source_compute", "status", "migration_type", "user_id",
                "project_id"):
        if key in allowed and query.get(key):
            search.exact[key] = query[key]
    search.host = query.get("host") or None
    if "changes-since" in allowed and query.get("changes-since"):
        search.changes_since = _time("changes-since", query["changes-since"])
    if "changes-before" in allowed and query.get("changes-before"):
        search.changes_before = _time("changes-before", query["changes-before"])
        if search.changes_since and search.changes_before < search.changes_since:
            raise BadRequest("The value of changes-since must be less than or equal to "
                             "changes-before.")
    if "limit" in allowed and query.get("limit") is not None:
        try:
            search.limit = int(query["limit"])
        except ValueError:
            raise BadRequest(f"Invalid input for query parameters limit. Value: "
                             f"{query['limit']}.") from None
        if search.limit < 0:
            raise BadRequest(f"Invalid input for query parameters limit. Value: "
                             f"{query['limit']}.")
    if "marker" in allowed and query.get("marker"):
        search.marker = query["marker"]
    roles = call.ctx.roles
    if not policy.allowed(roles, "os_compute_api:os-migrations:index:all_projects"):
        search.exact["project_id"] = call.ctx.project_id  # a manager: their project's
    hosts = policy.allowed(roles, "os_compute_api:os-migrations:index:host")
    rows = await call.services.compute.migrations(call.ctx, search)
    body: dict[str, Any] = {"migrations": [migration_view(call, m, hosts=hosts)
                                           for m in rows]}
    if call.mv("2.59") and search.limit is not None and rows and len(rows) == search.limit:
        base = f"{call.services.base_url}/compute/v2.1/os-migrations"
        body["migrations_links"] = [{"rel": "next",
                                     "href": f"{base}?limit={search.limit}&marker={rows[-1].uuid}"}]
    return body


def _server_migrations_at(call: ApiCall, since: str) -> None:
    if not call.mv(since):  # no such resource before its microversion
        raise NotFound("The resource could not be found.")


@router.route("GET", "/v2.1/servers/{server_id}/migrations",
              rule="os_compute_api:servers:migrations:index")
async def list_server_migrations(call: ApiCall) -> dict[str, Any]:
    _server_migrations_at(call, "2.23")
    rows = await call.services.compute.server_migrations(call.ctx, call.params["server_id"])
    return {"migrations": [migration_view(call, m, server_view=True) for m in rows]}


@router.route("GET", "/v2.1/servers/{server_id}/migrations/{migration_id}",
              rule="os_compute_api:servers:migrations:show")
async def show_server_migration(call: ApiCall) -> dict[str, Any]:
    _server_migrations_at(call, "2.23")
    m = await call.services.compute.server_migration(call.ctx, call.params["server_id"],
                                                     call.params["migration_id"])
    return {"migration": migration_view(call, m, server_view=True)}


@router.route("POST", "/v2.1/servers/{server_id}/migrations/{migration_id}/action",
              rule="os_compute_api:servers:migrations:force_complete")
async def force_complete(call: ApiCall) -> Reply:
    _server_migrations_at(call, "2.22")
    if not isinstance(call.body, dict) or "force_complete" not in call.body:
        raise BadRequest("There is no such action: "
                         f"{next(iter(call.body), '') if isinstance(call.body, dict) else ''}")
    await call.services.compute.migration_action(
        call.ctx, call.params["server_id"], call.params["migration_id"],
        "force_complete")
    return Reply(202)


@router.route("DELETE", "/v2.1/servers/{server_id}/migrations/{migration_id}",
              rule="os_compute_api:servers:migrations:delete")
async def abort(call: ApiCall) -> Reply:
    _server_migrations_at(call, "2.24")
    await call.services.compute.migration_action(
        call.ctx, call.params["server_id"], call.params["migration_id"], "abort live migration")
    return Reply(202)
