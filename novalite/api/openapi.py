"""OpenAPI 3.1 documents of the mounts, generated from the routers that serve them.

Each mount (``/compute``, ``/image``, ``/identity``, ``/volume``, ``/network``)
answers ``GET <mount>/openapi.json`` with a document built by walking its
routers: every registered route is an operation, whatever module registered it.
A request body is described by the very schema that validates it
(``Router.route(..., body=...)``, an action registry's per-action schemas); a
route that declares none is described as taking any JSON value (it checks its
body itself). Path parameters are strings; the compute mount's operations take
the microversion headers; authenticated operations take ``X-Auth-Token``.

OpenAPI 3.1 schemas are JSON Schema, so the validation schemas go in as they are
(type lists, ``errorMessage`` and other keywords a consumer does not know are
ignored by it). The documents are what a property-based fuzzer (schemathesis)
runs against every route (``tests/test_openapi.py``, ``bench/fuzz_api.py``).
"""

from __future__ import annotations

import re
from typing import Any

from novalite.api.framework import (
    ActionRegistry,
    PublicRouteSpec,
    Router,
    RouteSpec,
    Version,
    body_schema,
)

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
#: Each mount's title and the version of the API it serves.
TITLES = {"/compute": ("OpenStack Compute (Nova) API, novalite", "2.1"),
          "/image": ("OpenStack Image (Glance) API v2, novalite", "2.16"),
          "/identity": ("OpenStack Identity (Keystone) API v3, novalite", "3.14"),
          "/volume": ("OpenStack Block Storage (Cinder) API v3, novalite", "3.0"),
          "/network": ("OpenStack Networking (Neutron) API v2.0, novalite", "2.0")}
_ANY_JSON: dict[str, Any] = {}


def _microversion_parameters(max_version: Version) -> list[dict[str, Any]]:
    versions = ["2.1", str(max_version), "latest"]
    return [{"name": "OpenStack-API-Version", "in": "header", "required": False,
             "description": "The compute microversion asked for (default 2.1).",
             "schema": {"type": "string", "enum": [f"compute {v}" for v in versions]}},
            {"name": "X-OpenStack-Nova-API-Version", "in": "header", "required": False,
             "description": "The compute microversion asked for (the older header).",
             "schema": {"type": "string", "enum": versions}}]


def _action_body(registry: ActionRegistry) -> dict[str, Any]:
    """``{"<action>": <argument>}``: one of the registry's actions, each with its schema."""
    choices = []
    for name, action in sorted(registry.actions.items()):
        choices.append(action.schema if action.schema is not None else {
            "type": "object", "properties": {name: _ANY_JSON}, "required": [name],
            "additionalProperties": False})
    return {"oneOf": choices} if choices else {"type": "object"}


def _operation_id(spec: RouteSpec | PublicRouteSpec, taken: set[str]) -> str:
    base = f"{spec.method.lower()}_{spec.handler.__name__.strip('_')}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _summary(spec: RouteSpec | PublicRouteSpec) -> str:
    doc = (spec.handler.__doc__ or "").strip().splitlines()
    return doc[0] if doc else f"{spec.method} {spec.path}"


def document(prefix: str, routers: list[Router],
             max_version: Version | None = None) -> dict[str, Any]:
    """The OpenAPI document of the mount at ``prefix`` served by ``routers``;
    ``max_version``: the compute microversion headers are parameters, their request
    body schemas those of this version."""
    title, api_version = TITLES.get(prefix, (f"novalite {prefix}", "1"))
    latest = max_version or Version(2, 1)
    actions = {path: registry for router in routers for path, registry in router.actions}
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    specs: list[RouteSpec | PublicRouteSpec] = [
        *(s for r in routers for s in r.public_specs), *(s for r in routers for s in r.specs)]
    for spec in specs:
        path = _PARAM.sub(r"{\1}", spec.path)
        operation: dict[str, Any] = {
            "operationId": _operation_id(spec, taken),
            "summary": _summary(spec),
            "parameters": [{"name": name, "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1}}
                           for name in _PARAM.findall(spec.path)],
            "responses": {"default": {"description": "The API's answer, or its error body "
                                                     "(never a 5xx for a client's input)."}},
        }
        if isinstance(spec, RouteSpec):
            operation["security"] = [{"token": []}]
            if spec.rule:
                operation["x-policy-rule"] = spec.rule
        else:
            operation["security"] = []
        if max_version is not None and (isinstance(spec, RouteSpec) or spec.versioned):
            operation["parameters"].extend(_microversion_parameters(max_version))
        if spec.method in ("POST", "PUT", "PATCH"):
            operation["requestBody"] = _request_body(spec, actions, latest)
        paths.setdefault(path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": api_version,
                 "description": "Generated from the schemas that validate the requests."},
        "servers": [{"url": prefix}],
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}}},
    }


def _request_body(spec: RouteSpec | PublicRouteSpec, actions: dict[str, ActionRegistry],
                  version: Version) -> dict[str, Any]:
    if isinstance(spec, RouteSpec) and not spec.parse_body:  # image data
        return {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    registry = actions.get(spec.path) if spec.method == "POST" else None
    if registry is not None and isinstance(spec, RouteSpec) \
            and spec.handler == registry.dispatch:
        schema = _action_body(registry)
    else:
        schema = body_schema(spec.body, version) or _ANY_JSON
    media = "application/json"
    if spec.method == "PATCH" and spec.path.startswith("/v2/images"):
        media = "application/openstack-images-v2.1-json-patch"
    return {"required": spec.body is not None, "content": {media: {"schema": schema}}}
