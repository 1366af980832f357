"""The compute API's version documents, served without a token: ``GET /compute/``
lists v2.0 (Nova's legacy v2 compatible API, deprecated) beside v2.1 as Nova
does; ``/compute/v2.1/`` and ``/compute/v2/`` describe one each. novalite serves
its API at v2.1 only: the v2 document is there because clients read it."""

from __future__ import annotations

from typing import Any

from novalite.api.framework import Call, Reply, Router

VERSION_UPDATED = "2013-07-23T11:33:21Z"
V20_UPDATED = "2025-07-04T12:00:00Z"
DOCS = "http://docs.openstack.org/"

router = Router()


def _versions(call: Call) -> dict[str, dict[str, Any]]:
    services = call.services
    return {
        "v2.0": {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
                 "updated": V20_UPDATED, "path": "v2",
                 "media-types": [{"base": "application/json",
                                  "type": "application/vnd.openstack.compute+json;version=2"}]},
        "v2.1": {"id": "v2.1", "status": "CURRENT", "version": str(services.max_version),
                 "min_version": "2.1", "updated": VERSION_UPDATED, "path": "v2.1",
                 "media-types": [{"base": "application/json",
                                  "type": "application/vnd.openstack.compute+json;"
                                          "version=2.1"}]},
    }


def version_doc(call: Call, version_id: str = "v2.1") -> dict[str, Any]:
    """One version as ``GET /compute/<version>/`` shows it."""
    doc = dict(_versions(call)[version_id])
    path = doc.pop("path")
    doc["links"] = [{"rel": "self", "href": f"{call.services.base_url}/compute/{path}/"},
                    {"rel": "describedby", "type": "text/html", "href": DOCS}]
    return doc


@router.public("GET", "/")
async def versions(call: Call) -> Reply:
    out = []
    for doc in _versions(call).values():
        out.append({k: doc[k] for k in ("id", "status", "version", "min_version", "updated")}
                   | {"links": [{"rel": "self", "href": f"{call.services.base_url}/compute/"
                                                        f"{doc['path']}/"}]})
    return Reply(200, {"versions": out})


@router.public("GET", "/v2.1")
@router.public("GET", "/v2.1/")
async def version(call: Call) -> Reply:
    return Reply(200, {"version": version_doc(call)})


@router.public("GET", "/v2")
@router.public("GET", "/v2/")
async def version_v2(call: Call) -> Reply:
    return Reply(200, {"version": version_doc(call, "v2.0")})
