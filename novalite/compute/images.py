"""The image service as the compute API's ``/images`` proxy sees it (Nova's
``nova.image.glance.API``): images as Glance v2 shows them to the caller, from the
embedded image service or from an external Glance (``[glance] api_servers``) with
the caller's token; their properties are Nova's image "metadata"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import httpx

from novalite.context import AuthContext
from novalite.exceptions import BadRequest, Forbidden, NotFound
from novalite.image.glance_client import GlanceUnavailable
from novalite.image.service import ImageService

#: The attributes of Glance's image schema that are not properties (Nova's
#: ``is_base_property``).
BASE = {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
        "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size", "container_format",
        "disk_format", "created_at", "updated_at", "tags", "direct_url", "min_ram",
        "min_disk", "self", "file", "schema", "locations", "stores"}
NOT_FOUND = "Image not found."


def properties(image: Mapping[str, Any]) -> dict[str, Any]:
    """An image's properties: what is not one of Glance's base attributes."""
    return {k: v for k, v in image.items() if k not in BASE}


def _parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid changes-since value: {text}") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def matches(image: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """Nova's image filters: ``name``, ``status``, ``changes-since``, ``min_ram``,
    ``min_disk`` and ``property-<key>`` (``server`` and ``type`` arrive as the
    ``instance_uuid`` and ``image_type`` properties)."""
    for key, wanted in filters.items():
        if key == "changes-since":
            if _parse_time(str(image.get("updated_at") or "")) < _parse_time(wanted):
                return False
        elif key in ("min_ram", "min_disk"):
            try:
                if int(image.get(key) or 0) < int(wanted):
                    return False
            except ValueError:
                raise BadRequest(f"Invalid {key} filter [{wanted}]") from None
        elif key.startswith("property-"):
            if str(image.get(key[len("property-"):])) != wanted:
                return False
        elif str(image.get(key)) != wanted:
            return False
    return True


class ImageProxy:
    """List, show, delete and set the properties of images, as the caller."""

    def __init__(self, embedded: ImageService | None, glance_url: str | None) -> None:
        self.embedded = embedded
        #: An external Glance's URL, or None for the embedded image service.
        self.glance_url = glance_url.rstrip("/") if glance_url else None

    async def _http(self, ctx: AuthContext, method: str, path: str, **kwargs: Any
                    ) -> httpx.Response:
        headers = {"X-Auth-Token": ctx.token, **kwargs.pop("headers", {})}
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                r = await http.request(method, f"{self.glance_url}{path}", headers=headers,
                                       **kwargs)
        except httpx.HTTPError as exc:
            raise GlanceUnavailable(f"Glance at {self.glance_url} cannot be reached: {exc}"
                                    ) from None
        if r.status_code == 404:
            raise NotFound(NOT_FOUND)
        if r.status_code == 403:
            raise Forbidden(r.text[:200])
        if r.status_code >= 400:
            raise GlanceUnavailable(f"{method} {self.glance_url}{path} answered HTTP "
                                    f"{r.status_code}: {r.text[:200]}")
        return r

    async def find(self, ctx: AuthContext, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every image the caller sees that ``filters`` match, newest first."""
        images: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            if self.embedded is not None:
                query: dict[str, list[str]] = {"limit": ["1000"]}
                if marker:
                    query["marker"] = [marker]
                rows, marker = await self.embedded.list(ctx, query)
                images += [self.embedded.view(row) for row in rows]
            else:
                params = {"limit": "1000", **({"marker": marker} if marker else {})}
                body = (await self._http(ctx, "GET", "/v2/images", params=params)).json()
                images += body.get("images", [])
                nxt = body.get("next")
                marker = images[-1]["id"] if nxt and images else None
            if not marker:
                break
        return [image for image in images if matches(image, filters)]

    async def get(self, ctx: AuthContext, image_id: str) -> dict[str, Any]:
        if self.embedded is not None:
            try:
                return self.embedded.view(await self.embedded.get(ctx, image_id))
            except NotFound:
                raise NotFound(NOT_FOUND) from None
        return dict((await self._http(ctx, "GET", f"/v2/images/{image_id}")).json())

    async def delete(self, ctx: AuthContext, image_id: str) -> None:
        try:
            if self.embedded is not None:
                await self.embedded.delete(ctx, image_id)
            else:
                await self._http(ctx, "DELETE", f"/v2/images/{image_id}")
        except NotFound:
            raise NotFound(NOT_FOUND) from None
        except Forbidden:
            raise Forbidden("You are not allowed to delete the image.") from None

    async def set_properties(self, ctx: AuthContext, image_id: str, new: dict[str, Any]
                             ) -> dict[str, Any]:
        """Make the image's properties exactly ``new`` (Nova's ``purge_props``);
        returns the image after."""
        image = await self.get(ctx, image_id)
        old = properties(image)
        ops: list[dict[str, Any]] = [{"op": "remove", "path": f"/{k}"}
                                     for k in old if k not in new]
        ops += [{"op": "replace" if k in old else "add", "path": f"/{k}", "value": v}
                for k, v in new.items() if old.get(k) != v]
        if not ops:
            return image
        try:
            if self.embedded is not None:
                return self.embedded.view(await self.embedded.update(ctx, image_id, ops))
            r = await self._http(ctx, "PATCH", f"/v2/images/{image_id}", json=ops, headers={
                "Content-Type": "application/openstack-images-v2.1-json-patch"})
            return dict(r.json())
        except Forbidden as exc:
            raise Forbidden(exc.message) from None
