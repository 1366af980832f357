"""novalite's exception types.

Each is raised where the problem is known and carries what the API needs:
``code`` (the HTTP status) and ``title`` (the key of Nova's error body,
``{"itemNotFound": {"code": 404, "message": ...}}``). The mapping to HTTP lives
in one place, :mod:`novalite.api.errors`.
"""

from __future__ import annotations


class NovaliteError(Exception):
    """Base of every error novalite reports to a user."""

    code = 500
    title = "computeFault"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(NovaliteError):
    """The configuration is invalid."""


class BadRequest(NovaliteError):
    """The request is malformed."""

    code = 400
    title = "badRequest"


class Unauthorized(NovaliteError):
    """The request you have made requires authentication."""

    code = 401
    title = "unauthorized"


class Forbidden(NovaliteError):
    """Policy doesn't allow this operation to be performed."""

    code = 403
    title = "forbidden"


class QuotaExceeded(Forbidden):
    """Quota exceeded."""


class NotFound(NovaliteError):
    """Resource could not be found."""

    code = 404
    title = "itemNotFound"


class Conflict(NovaliteError):
    """The request conflicts with the current state of the resource."""

    code = 409
    title = "conflict"


class InstanceInvalidState(Conflict):
    """The instance is in a state that forbids this action."""


class NotAcceptable(NovaliteError):
    """The requested microversion is not supported."""

    code = 406
    title = "computeFault"


class NoValidHost(NovaliteError):
    """No valid host was found."""

    code = 500


class Timeout(NovaliteError):
    """An operation did not finish in time."""

    code = 504


class ServiceUnavailable(NovaliteError):
    """The service cannot do this now; try again later."""

    code = 503
    title = "serviceUnavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached (after the database layer's retries): try again."""


class OutOfSpace(ServiceUnavailable):
    """The database could not write: the disk holding it is full."""


class StorageFull(NovaliteError):
    """Image storage media is full (Glance's 413)."""

    code = 413
    title = "overLimit"


class RequestTooLarge(NovaliteError):
    """The request body is larger than the service accepts."""

    code = 413
    title = "overLimit"


class UnsupportedMediaType(NovaliteError):
    """The request body's Content-Type is not one this route reads."""

    code = 415
    title = "badMediaType"


class InternalError(NovaliteError):
    """An unexpected error: the answer to a bug, logged with its traceback."""
