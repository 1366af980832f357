"""``os-server-groups``, ``os-aggregates`` and ``os-availability-zone``: Nova's shapes.

Server groups: ``policies`` (a one-item list) and ``metadata`` before 2.64,
``policy`` and ``rules`` from 2.64; ``project_id`` and ``user_id`` from 2.13;
the soft policies from 2.15. Aggregates: ``uuid`` from 2.41.
"""

from __future__ import annotations

import socket
from typing import Any

from novalite.api.framework import ApiCall, Reply
from novalite.api.views import iso_usec
from novalite.exceptions import BadRequest
from novalite.policy import authorize
from novalite.scheduler.aggregates import AggregateAPI, AggregateRecord
from novalite.scheduler.groups import POLICIES, GroupRecord, ServerGroupAPI


def _name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255 \
            or value != value.strip():
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         "must be a non-empty string of at most 255 characters without "
                         "leading or trailing whitespace")
    return value


def _int_query(call: ApiCall, key: str, minimum: int) -> int | None:
    raw = call.query.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
        if value < minimum:
            raise ValueError
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {key}. Value: {raw}.") from None
    return value


def group_view(call: ApiCall, record: GroupRecord) -> dict[str, Any]:
    g = record.group
    body: dict[str, Any] = {"id": g.uuid, "name": g.name}
    if call.mv("2.64"):
        body["policy"] = g.policy
        body["rules"] = dict(g.rules)
    else:
        body["policies"] = [g.policy]
    body["members"] = list(record.members)
    if not call.mv("2.64"):
        body["metadata"] = {}
    if call.mv("2.13"):
        body["project_id"] = g.project_id
        body["user_id"] = g.user_id
    return body


def _group_body(call: ApiCall) -> tuple[str, str, dict[str, Any]]:
    body = call.body
    if not isinstance(body, dict) or not isinstance(body.get("server_group"), dict):
        raise BadRequest("Invalid input for field/attribute server_group. Value: None. "
                         "'server_group' is a required property")
    sg = body["server_group"]
    allowed = {"name", "policy", "rules"} if call.mv("2.64") else {"name", "policies"}
    extra = sorted(set(sg) - allowed)
    if extra:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                         "was unexpected)")
    name = _name(sg.get("name"))
    known = POLICIES if call.mv("2.15") else POLICIES[:2]
    if call.mv("2.64"):
        policy = sg.get("policy")
        if policy is None:
            raise BadRequest("Invalid input for field/attribute server_group. 'policy' is a "
                             "required property")
        rules = sg.get("rules", {})
        if not isinstance(rules, dict) or set(rules) - {"max_server_per_host"}:
            raise BadRequest(f"Invalid input for field/attribute rules. Value: {rules}. "
                             "Only 'max_server_per_host' is allowed")
        if "max_server_per_host" in rules:
            most = rules["max_server_per_host"]
            if isinstance(most, str) and most.isdigit():
                most = int(most)
            if not isinstance(most, int) or isinstance(most, bool) or most < 1:
                raise BadRequest(f"Invalid input for field/attribute max_server_per_host. "
                                 f"Value: {most}. must be an integer >= 1")
            rules = {"max_server_per_host": most}
    else:
        policies = sg.get("policies")
        if not isinstance(policies, list) or len(policies) != 1:
            raise BadRequest(f"Invalid input for field/attribute policies. Value: {policies}. "
                             "expected a list of exactly one policy")
        policy, rules = policies[0], {}
    if policy not in known:
        raise BadRequest(f"Invalid input for field/attribute policy. Value: {policy}. "
                         f"'{policy}' is not one of {list(known)}")
    return name, policy, rules


def aggregate_view(call: ApiCall, record: AggregateRecord, full: bool = True
                   ) -> dict[str, Any]:
    a = record.aggregate
    body: dict[str, Any] = {
        "availability_zone": record.availability_zone,
        "created_at": iso_usec(a.created_at), "deleted": False, "deleted_at": None,
        "id": a.id, "name": a.name, "updated_at": iso_usec(a.updated_at),
    }
    if full:
        body["hosts"] = list(record.hosts)
        body["metadata"] = dict(record.metadata)
    if call.mv("2.41"):
        body["uuid"] = a.uuid
    return body


def _aggregate_body(call: ApiCall, required: bool) -> dict[str, Any]:
    body = call.body
    if not isinstance(body, dict) or not isinstance(body.get("aggregate"), dict):
        raise BadRequest("Invalid input for field/attribute aggregate. Value: None. "
                         "'aggregate' is a required property")
    agg = body["aggregate"]
    extra = sorted(set(agg) - {"name", "availability_zone"})
    if extra:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                         "was unexpected)")
    values: dict[str, Any] = {}
    if "name" in agg or required:
        values["name"] = _name(agg.get("name"))
    if agg.get("availability_zone") is not None:
        values["availability_zone"] = _name(agg["availability_zone"], "availability_zone")
    elif "availability_zone" in agg:
        values["availability_zone"] = None
    if not values:
        raise BadRequest("Invalid input for field/attribute aggregate: give name and/or "
                         "availability_zone")
    return values


def table(groups: ServerGroupAPI, aggregates: AggregateAPI, default_zone: str
          ) -> list[tuple[str, str, Any, str]]:
    # -- server groups ---------------------------------------------------------------
    async def create_group(call: ApiCall) -> dict[str, Any]:
        name, policy, rules = _group_body(call)
        record = await groups.create(call.ctx, name, policy, rules)  # type: ignore[arg-type]
        return {"server_group": group_view(call, record)}

    async def list_groups(call: ApiCall) -> dict[str, Any]:
        assert call.ctx is not None
        all_projects = str(call.query.get("all_projects", "")).lower() in ("true", "1", "yes")
        if all_projects:
            authorize(call.ctx, "os_compute_api:os-server-groups:index:all_projects")
        records = await groups.list(call.ctx, all_projects, _int_query(call, "limit", 1),
                                    _int_query(call, "offset", 0))
        return {"server_groups": [group_view(call, r) for r in records]}

    async def show_group(call: ApiCall) -> dict[str, Any]:
        record = await groups.get(call.ctx, call.params["group_id"])  # type: ignore[arg-type]
        return {"server_group": group_view(call, record)}

    async def delete_group(call: ApiCall) -> Reply:
        await groups.delete(call.ctx, call.params["group_id"])  # type: ignore[arg-type]
        return Reply(204)

    # -- aggregates ------------------------------------------------------------------
    async def list_aggregates(call: ApiCall) -> dict[str, Any]:
        return {"aggregates": [aggregate_view(call, r) for r in await aggregates.list()]}

    async def create_aggregate(call: ApiCall) -> dict[str, Any]:
        values = _aggregate_body(call, required=True)
        record = await aggregates.create(values["name"], values.get("availability_zone"))
        return {"aggregate": aggregate_view(call, record, full=False)}

    async def show_aggregate(call: ApiCall) -> dict[str, Any]:
        return {"aggregate": aggregate_view(call, await aggregates.get(
            call.params["aggregate_id"]))}

    async def update_aggregate(call: ApiCall) -> dict[str, Any]:
        values = _aggregate_body(call, required=False)
        return {"aggregate": aggregate_view(call, await aggregates.update(
            call.params["aggregate_id"], values))}

    async def delete_aggregate(call: ApiCall) -> Reply:
        await aggregates.delete(call.params["aggregate_id"])
        return Reply(200)

    async def aggregate_action(call: ApiCall) -> dict[str, Any]:
        assert call.ctx is not None
        body = call.body
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("Malformed request body: expected one action")
        name, args = next(iter(body.items()))
        agg_id = call.params["aggregate_id"]
        if name in ("add_host", "remove_host"):
            authorize(call.ctx, f"os_compute_api:os-aggregates:{name}")
            host = args.get("host") if isinstance(args, dict) else None
            if not isinstance(host, str) or not host:
                raise BadRequest(f"Invalid input for field/attribute {name}. 'host' is a "
                                 "required property")
            fn = aggregates.add_host if name == "add_host" else aggregates.remove_host
            record = await fn(agg_id, host)
        elif name == "set_metadata":
            authorize(call.ctx, "os_compute_api:os-aggregates:set_metadata")
            metadata = args.get("metadata") if isinstance(args, dict) else None
            if not isinstance(metadata, dict) or not all(
                    isinstance(k, str) and 0 < len(k) <= 255 and (
                        v is None or (isinstance(v, str) and len(v) <= 255))
                    for k, v in metadata.items()):
                raise BadRequest("Invalid input for field/attribute metadata: expected an "
                                 "object of strings (null removes a key)")
            record = await aggregates.set_metadata(agg_id, metadata)
        else:
            raise BadRequest(f"Invalid input for field/attribute action. Value: {name}. "
                             "Additional properties are not allowed")
        return {"aggregate": aggregate_view(call, record)}

    # -- availability zones ------------------------------------------------------------
    async def availability_zones(call: ApiCall) -> dict[str, Any]:
        zones: dict[str, bool] = {}
        for zh in await aggregates.zone_hosts():
            zones[zh.zone] = zones.get(zh.zone, False) or not zh.service.disabled
        if not zones:
            zones[default_zone] = True
        return {"availabilityZoneInfo": [
            {"zoneName": z, "zoneState": {"available": up}, "hosts": None}
            for z, up in sorted(zones.items())]}

    async def availability_zones_detail(call: ApiCall) -> dict[str, Any]:
        from novalite.db.models import utcnow

        hosts_api = aggregates
        zones: dict[str, dict[str, Any]] = {}
        states: dict[str, bool] = {}
        for zh in await hosts_api.zone_hosts():
            svc = zh.service
            up = _service_up(svc, aggregates.cfg.compute.service_down_time)
            zones.setdefault(zh.zone, {})[zh.host] = {"nova-compute": {
                "available": not svc.disabled, "active": up and not svc.disabled,
                "updated_at": iso_usec(svc.updated_at)}}
            states[zh.zone] = states.get(zh.zone, False) or not svc.disabled
        now = iso_usec(utcnow())
        me = {b: {"available": True, "active": True, "updated_at": now}
              for b in ("nova-conductor", "nova-scheduler")}
        out = [{"zoneName": "internal", "zoneState": {"available": True},
                "hosts": {socket.gethostname(): me}}]
        out += [{"zoneName": z, "zoneState": {"available": states[z]}, "hosts": hosts}
                for z, hosts in sorted(zones.items())]
        return {"availabilityZoneInfo": out}

    sg, ag = "os_compute_api:os-server-groups:", "os_compute_api:os-aggregates:"
    az = "os_compute_api:os-availability-zone:"
    return [
        ("/v2.1/os-server-groups", "GET", list_groups, sg + "index"),
        ("/v2.1/os-server-groups", "POST", create_group, sg + "create"),
        ("/v2.1/os-server-groups/{group_id}", "GET", show_group, sg + "show"),
        ("/v2.1/os-server-groups/{group_id}", "DELETE", delete_group, sg + "delete"),
        ("/v2.1/os-aggregates", "GET", list_aggregates, ag + "index"),
        ("/v2.1/os-aggregates", "POST", create_aggregate, ag + "create"),
        ("/v2.1/os-aggregates/{aggregate_id}", "GET", show_aggregate, ag + "show"),
        ("/v2.1/os-aggregates/{aggregate_id}", "PUT", update_aggregate, ag + "update"),
        ("/v2.1/os-aggregates/{aggregate_id}", "DELETE", delete_aggregate, ag + "delete"),
        # Each action is checked against its own rule too (add_host, remove_host, ...).
        ("/v2.1/os-aggregates/{aggregate_id}/action", "POST", aggregate_action, ag + "index"),
        ("/v2.1/os-availability-zone", "GET", availability_zones, az + "list"),
        ("/v2.1/os-availability-zone/detail", "GET", availability_zones_detail, az + "detail"),
    ]


def _service_up(svc: Any, down_after: float) -> bool:
    from novalite.db.models import utcnow

    if svc.forced_down or svc.updated_at is None:
        return False
    return (utcnow() - svc.updated_at).total_seconds() < down_after
