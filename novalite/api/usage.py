"""``os-simple-tenant-usage`` (``openstack usage list/show``) and
``os-instance_usage_audit_log`` (Nova's ``simple_tenant_usage.py`` and
``instance_usage_audit_log.py``): paging from 2.40, unknown query parameters
refused from 2.75."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from novalite.api import query
from novalite.api.framework import ApiCall, Router
from novalite.compute.usage import UsageAPI, UsagePeriod, parse_time
from novalite.db.models import utcnow
from novalite.exceptions import BadRequest, Forbidden, NotFound

router = Router()
RULE = "os_compute_api:os-simple-tenant-usage:"
AUDIT = "os_compute_api:os-instance-usage-audit-log:"
_SHOW_QUERY = {"start": query.ANY, "end": query.ANY}
_INDEX_QUERY = {**_SHOW_QUERY, "detailed": query.ANY}
_PAGING = {"limit": query.NON_NEGATIVE_INT, "marker": query.ANY}
_SHOW_QUERY_V240 = {**_SHOW_QUERY, **_PAGING}
_INDEX_QUERY_V240 = {**_INDEX_QUERY, **_PAGING}


def _api(call: ApiCall) -> UsageAPI:
    return call.services.hosts.usage_api


def _period(params: dict[str, list[str]]) -> tuple[dt.datetime, dt.datetime]:
    start = parse_time(params["start"][0] if params.get("start") else None)
    stop = parse_time(params["end"][0] if params.get("end") else None)
    if not start < stop:
        raise BadRequest("Invalid start time. The start time cannot occur after the end "
                         "time.")
    return start, min(stop, utcnow())


def _paging(call: ApiCall, params: dict[str, list[str]]) -> tuple[int | None, str | None]:
    if not call.mv("2.40"):
        return None, None
    limit = query.last(params, "limit")
    return (int(limit) if limit is not None else None), query.last(params, "marker")


def _next_link(call: ApiCall, params: dict[str, list[str]], found: UsagePeriod,
               limit: int | None, path: str) -> list[dict[str, str]] | None:
    if not call.mv("2.40") or not limit or len(found.servers) != limit:
        return None
    args = {k: v[-1] for k, v in params.items()}
    args["marker"] = found.servers[-1]["instance_id"]
    return [{"rel": "next",
             "href": f"{call.services.base_url}/compute/v2.1/{path}?{urlencode(args)}"}]


@router.route("GET", "/v2.1/os-simple-tenant-usage", rule=RULE + "list")
async def list_usage(call: ApiCall) -> dict[str, Any]:
    schema = _INDEX_QUERY_V240 if call.mv("2.40") else _INDEX_QUERY
    params = query.validate(call, schema, strict=call.mv("2.75"))
    start, stop = _period(params)
    limit, marker = _paging(call, params)
    detailed = (params.get("detailed") or ["0"])[0] == "1"
    found = await _api(call).period(start, stop, detailed=detailed, limit=limit,
                                    marker=marker)
    out: dict[str, Any] = {"tenant_usages": found.tenants}
    if links := _next_link(call, params, found, limit, "os-simple-tenant-usage"):
        out["tenant_usages_links"] = links
    return out


@router.route("GET", "/v2.1/os-simple-tenant-usage/{tenant_id}", rule=RULE + "show")
async def show_usage(call: ApiCall) -> dict[str, Any]:
    project = call.params["tenant_id"]
    if project != call.ctx.project_id and not call.ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow {RULE}show to be performed.")
    schema = _SHOW_QUERY_V240 if call.mv("2.40") else _SHOW_QUERY
    params = query.validate(call, schema, strict=call.mv("2.75"))
    start, stop = _period(params)
    limit, marker = _paging(call, params)
    found = await _api(call).period(start, stop, project_id=project, limit=limit,
                                    marker=marker)
    out: dict[str, Any] = {"tenant_usage": found.tenants[0] if found.tenants else {}}
    if links := _next_link(call, params, found, limit, f"os-simple-tenant-usage/{project}"):
        out["tenant_usage_links"] = links
    return out


@router.route("GET", "/v2.1/os-instance_usage_audit_log", rule=AUDIT + "list")
async def audit_logs(call: ApiCall) -> dict[str, Any]:
    return {"instance_usage_audit_logs": await _api(call).audit_log()}


@router.route("GET", "/v2.1/os-instance_usage_audit_log/{before}", rule=AUDIT + "show")
async def audit_log(call: ApiCall) -> dict[str, Any]:
    text = call.params["before"]
    try:
        before = dt.datetime.strptime(
            text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise BadRequest(f"Invalid timestamp for date {text}") from None
    return {"instance_usage_audit_log": await _api(call).audit_log(before)}


@router.route("GET", "/v2.1/os-simple-tenant-usage/", rule=RULE + "show")
async def show_usage_without_project(call: ApiCall) -> dict[str, Any]:
    """An empty project id is no project (Nova's router answers 404; Starlette would
    redirect to the list)."""
    raise NotFound("The resource could not be found.")
