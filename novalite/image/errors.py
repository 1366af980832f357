"""Errors of the image API and Glance's error body.

Glance answers errors through webob: ``{"code": "404 Not Found", "title": "Not
Found", "message": "..."}``: the image routes are made with ``style="glance"``
(:func:`novalite.api.framework.error_response`); the compute API keeps Nova's
``{"itemNotFound": {...}}``.
"""

from __future__ import annotations

from novalite.exceptions import BadRequest, NovaliteError


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
