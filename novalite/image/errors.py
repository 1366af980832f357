"""Errors of the image API and Glance's error body.

Glance answers errors through webob: ``{"code": "404 Not Found", "title": "Not
Found", "message": "..."}``. The image routes map every
:class:`~novalite.exceptions.NovaliteError` to that shape (the compute API keeps
Nova's ``{"itemNotFound": {...}}``).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from novalite.exceptions import BadRequest, NovaliteError

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          409: "Conflict", 410: "Gone", 413: "Request Entity Too Large",
          415: "Unsupported Media Type", 500: "Internal Server Error",
          503: "Service Unavailable", 504: "Gateway Timeout"}


class DataRejected(BadRequest):
    """The uploaded data is not what the image's disk_format says."""


class QuotaExceeded413(NovaliteError):
    """An upload would exceed the project's image storage quota."""

    code = 413
    title = "overLimit"

    def __init__(self, limit: int | str) -> None:
        if isinstance(limit, int):
            limit = (f"Denying attempt to upload image because it exceeds the quota: the "
                     f"project may store {limit} more bytes of image data "
                     "([image] storage_quota_mb)")
        super().__init__(limit)


class UnsupportedMediaType(NovaliteError):
    """The request's Content-Type is not one this call accepts."""

    code = 415
    title = "unsupportedMediaType"


def glance_error(exc: NovaliteError) -> JSONResponse:
    """Glance's JSON error body for ``exc``."""
    title = TITLES.get(exc.code, "Error")
    body: dict[str, Any] = {"code": f"{exc.code} {title}", "title": title,
                            "message": exc.message}
    headers = {"WWW-Authenticate": 'Keystone uri="/identity"'} if exc.code == 401 else {}
    return JSONResponse(body, status_code=exc.code, headers=headers)
