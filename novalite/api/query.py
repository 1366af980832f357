"""Query parameters as Nova validates them: a JSON schema over the parameters as
lists of strings (``?a=1&a=2`` is ``{"a": ["1", "2"]}``), Nova's error messages,
and the parameters a schema does not name dropped (Nova's ``additionalProperties:
True``, before the microversion that refuses them) or refused with a 400."""

from __future__ import annotations

from typing import Any

import jsonschema

from novalite.api.framework import Call
from novalite.exceptions import BadRequest


def multi(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter that may be given several times (Nova's ``multi_params``)."""
    return {"type": "array", "items": schema}


def single(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter given at most once (Nova's ``single_param``)."""
    return {"type": "array", "items": schema, "maxItems": 1}


ANY = multi({"type": "string"})
NON_NEGATIVE_INT = multi({"type": "string", "pattern": "^[0-9]*$", "minLength": 1})
POSITIVE_INT = multi({"type": "string", "pattern": "^[0-9]*$", "minLength": 1})
BOOLEAN = multi({"type": "string", "enum": [
    "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
    "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]})
TRUE_STRINGS = {"1", "t", "true", "on", "y", "yes"}

_validators: dict[int, Any] = {}


def validate(call: Call, properties: dict[str, dict[str, Any]], *, strict: bool,
             patterns: dict[str, dict[str, Any]] | None = None) -> dict[str, list[str]]:
    """The request's query parameters that ``properties`` (and ``patterns``) name, each
    a list of values, after checking them; any other parameter is a 400 when ``strict``
    (Nova from the microversion that blocks them), else dropped."""
    given: dict[str, list[str]] = {}
    for key, value in call.query.multi_items():
        given.setdefault(key, []).append(value)
    schema = {"type": "object", "properties": properties,
              "patternProperties": patterns or {}, "additionalProperties": not strict}
    key = id(properties) * 2 + strict
    validator = _validators.get(key)
    if validator is None or validator.schema != schema:
        validator = _validators[key] = jsonschema.Draft7Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(given))
    if error is not None:
        if error.path:
            raise BadRequest(f"Invalid input for query parameters {error.path[0]}. Value: "
                             f"{error.instance}. {error.message}")
        raise BadRequest(error.message)
    if strict:
        return given
    import re

    regexes = [re.compile(p) for p in patterns or {}]
    return {k: v for k, v in given.items()
            if k in properties or any(r.match(k) for r in regexes)}


def last(params: dict[str, list[str]], name: str) -> str | None:
    """The last value given for ``name`` (webob's ``req.GET.get``), or None."""
    values = params.get(name)
    return values[-1] if values else None


def truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_STRINGS


def proxied_page(call: Call, rows: list[Any]) -> list[Any]:
    """Nova's ``offset`` and ``limit`` on a list it proxies from another service
    (``os-volumes``, ``os-security-groups``): whole numbers, else a 400."""
    out = rows
    for name in ("offset", "limit"):
        raw = call.query.get(name)
        if raw is None:
            continue
        if not str(raw).isdigit():
            raise BadRequest(f"{name} param must be an integer")
        out = out[int(raw):] if name == "offset" else out[:int(raw)]
    return out
