"""The compute API's version documents (``GET /compute/`` and ``/compute/v2.1``),
served without a token."""

from __future__ import annotations

from typing import Any

from novalite.api.framework import Call, Reply, Router

VERSION_UPDATED = "2013-07-23T11:33:21Z"

router = Router()


def version_doc(call: Call) -> dict[str, Any]:
    services = call.services
    return {"id": "v2.1", "status": "CURRENT", "version": str(services.max_version),
            "min_version": "2.1", "updated": VERSION_UPDATED,
            "links": [{"rel": "self", "href": f"{services.base_url}/compute/v2.1/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


@router.public("GET", "/")
async def versions(call: Call) -> Reply:
    return Reply(200, {"versions": [version_doc(call)]})


@router.public("GET", "/v2.1")
@router.public("GET", "/v2.1/")
async def version(call: Call) -> Reply:
    return Reply(200, {"version": version_doc(call)})
