"""An external Glance (``[glance] api_servers``), used instead of the embedded one.

novalite then serves no ``/image`` of its own and keeps no image records: a boot
looks its image up in that Glance with the caller's token (as Nova does), the
image payloads ride with the build to the compute host, and the host's image
cache downloads the data with the same token, verifying its checksum; a
snapshot is created there as the caller and its data uploaded by the compute
host. The catalog of the embedded Keystone (if it is in use) points ``image``
there. Compute hosts talk to the image API, embedded or not, through
:mod:`novalite.compute.host.image_client`; :func:`image_api_url` says where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from novalite.config import Config
from novalite.exceptions import BadRequest, NovaliteError


def image_api_url(cfg: Config) -> str:
    """The image API's base URL: the external Glance's, else the embedded one's
    (``<public_url>/image``). Image payloads name their data under it, and compute
    hosts upload snapshots to it."""
    if cfg.glance.api_servers:
        return cfg.glance.api_servers[0].rstrip("/")
    return f"{cfg.public_url}/image"


class GlanceUnavailable(NovaliteError):
    """The image service cannot be reached."""

    code = 503
    title = "serviceUnavailable"


@dataclass
class ExternalImage:
    """The fields of a Glance v2 image that a boot checks, with everything else kept."""

    id: str
    name: str | None
    status: str
    visibility: str
    owner: str | None
    disk_format: str | None
    container_format: str | None
    size: int | None
    min_ram: int
    min_disk: int
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    properties: dict[str, Any] = field(default_factory=dict)


CORE = set(ExternalImage.__dataclass_fields__) - {"properties"}


class GlanceClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    async def get(self, image_id: str, token: str) -> ExternalImage | None:
        """The image as the caller sees it; None when Glance says 404."""
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                r = await http.get(f"{self.url}/v2/images/{image_id}",
                                   headers={"X-Auth-Token": token})
        except httpx.HTTPError as exc:
            raise GlanceUnavailable(f"Glance at {self.url} cannot be reached: {exc}") from None
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise GlanceUnavailable(f"Glance at {self.url} answered HTTP {r.status_code} for "
                                    f"image {image_id}")
        body = r.json()
        props = {k: v for k, v in body.items() if k not in CORE and k not in (
            "tags", "created_at", "updated_at", "self", "file", "schema", "protected",
            "os_hidden", "virtual_size", "locations", "direct_url", "stores")}
        return ExternalImage(
            id=body["id"], name=body.get("name"), status=body.get("status", ""),
            visibility=body.get("visibility", "shared"), owner=body.get("owner"),
            disk_format=body.get("disk_format"), container_format=body.get("container_format"),
            size=body.get("size"), min_ram=int(body.get("min_ram") or 0),
            min_disk=int(body.get("min_disk") or 0), checksum=body.get("checksum"),
            os_hash_algo=body.get("os_hash_algo"), os_hash_value=body.get("os_hash_value"),
            properties=props)

    def payload(self, image: ExternalImage) -> dict[str, Any]:
        """The image as a build carries it to the compute host (see image_payload)."""
        return {"id": image.id, "name": image.name, "disk_format": image.disk_format,
                "container_format": image.container_format, "size": image.size,
                "properties": dict(image.properties), "checksum": image.checksum,
                "os_hash_algo": image.os_hash_algo, "os_hash_value": image.os_hash_value,
                "url": f"{self.url}/v2/images/{image.id}/file"}

    async def payloads(self, image: ExternalImage, token: str) -> dict[str, Any]:
        """The image and, for AKI/ARI boots, its kernel and ramdisk, as payloads."""
        out: dict[str, Any] = {"image": self.payload(image), "kernel": None, "ramdisk": None}
        for key, slot in (("kernel_id", "kernel"), ("ramdisk_id", "ramdisk")):
            ref = image.properties.get(key)
            if ref:
                extra = await self.get(str(ref), token)
                if extra is None:
                    raise BadRequest(f"Image {image.id} names {key} {ref}, which could not "
                                     "be found.")
                out[slot] = self.payload(extra)
        return out


    async def _call(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Auth-Token": token, **kwargs.pop("headers", {})}
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0)) as http:
                r = await http.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise GlanceUnavailable(f"Glance at {self.url} cannot be reached: {exc}") from None
        if r.status_code >= 400:
            raise GlanceUnavailable(f"{method} {self.url}{path} answered HTTP "
                                    f"{r.status_code}: {r.text[:200]}")
        return r

    async def create_image(self, token: str, body: dict[str, Any]) -> str:
        """A new queued image (a snapshot's record); returns its id."""
        return str((await self._call("POST", "/v2/images", token, json=body)).json()["id"])

    async def delete(self, token: str, image_id: str) -> None:
        await self._call("DELETE", f"/v2/images/{image_id}", token)

