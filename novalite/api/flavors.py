"""``/flavors`` and their ``os-extra_specs`` (Nova's ``flavors.py``,
``flavor_manage.py`` and ``flavors_extraspecs.py``)."""

from __future__ import annotations

from typing import Any

from novalite.api import schemas, views
from novalite.api.framework import ApiCall, Reply, Router

router = Router()
MANAGE = "os_compute_api:os-flavor-manage:"
SPECS = "os_compute_api:os-flavor-extra-specs:"


@router.route("GET", "/v2.1/flavors", rule="os_compute_api:flavors:index")
async def list_flavors(call: ApiCall) -> dict[str, Any]:
    found = await call.services.hosts.flavors(call.ctx, dict(call.query))
    base = call.services.base_url
    return {"flavors": [views.flavor_view(call, base, f, None, detail=False)
                        for f, _ in found]}


@router.route("GET", "/v2.1/flavors/detail", rule="os_compute_api:flavors:index")
async def detail_flavors(call: ApiCall) -> dict[str, Any]:
    found = await call.services.hosts.flavors(call.ctx, dict(call.query))
    base = call.services.base_url
    return {"flavors": [views.flavor_view(call, base, f, s) for f, s in found]}


@router.route("GET", "/v2.1/flavors/{flavor_id}", rule="os_compute_api:flavors:index")
async def show_flavor(call: ApiCall) -> dict[str, Any]:
    flavor, specs = await call.services.compute.flavor(call.ctx, call.params["flavor_id"])
    return {"flavor": views.flavor_view(call, call.services.base_url, flavor, specs)}


@router.route("POST", "/v2.1/flavors", rule=MANAGE + "create")
async def create_flavor(call: ApiCall) -> dict[str, Any]:
    body = schemas.validate(call.body, schemas.FLAVOR_CREATE)["flavor"]
    flavor, specs = await call.services.hosts.create_flavor(body)
    return {"flavor": views.flavor_view(call, call.services.base_url, flavor, specs)}


@router.route("DELETE", "/v2.1/flavors/{flavor_id}", rule=MANAGE + "delete")
async def delete_flavor(call: ApiCall) -> Reply:
    await call.services.hosts.delete_flavor(call.params["flavor_id"])
    return Reply(202)


@router.route("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", rule=SPECS + "index")
async def get_extra_specs(call: ApiCall) -> dict[str, Any]:
    _, specs = await call.services.compute.flavor(call.ctx, call.params["flavor_id"])
    return {"extra_specs": specs}


@router.route("POST", "/v2.1/flavors/{flavor_id}/os-extra_specs", rule=SPECS + "create")
async def set_extra_specs(call: ApiCall) -> dict[str, Any]:
    body = schemas.validate(call.body, schemas.FLAVOR_EXTRA_SPECS)
    specs = {k: str(v) for k, v in body["extra_specs"].items()}
    flavor, _ = await call.services.compute.flavor(call.ctx, call.params["flavor_id"])
    await call.services.hosts.set_extra_specs(flavor, specs)
    return {"extra_specs": specs}


@router.route("DELETE", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}",
              rule=SPECS + "delete")
async def delete_extra_spec(call: ApiCall) -> Reply:
    flavor, _ = await call.services.compute.flavor(call.ctx, call.params["flavor_id"])
    await call.services.hosts.delete_extra_spec(flavor, call.params["key"])
    return Reply(200)
