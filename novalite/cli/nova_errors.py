"""Errors of the `nova` client, and how API error responses map to them.

Each renders as the one line novaclient prints:
``ERROR (<Title>): <message> (HTTP <code>) (Request-ID: req-...)``.
Nova error bodies are ``{"<title>": {"code": N, "message": "..."}}``,
Keystone's ``{"error": {"code", "title", "message"}}``; Glance may answer HTML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

# novaclient names its exceptions after the HTTP status; the title is that name.
HTTP_TITLES: dict[int, str] = {
    300: "MultipleChoices",
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "OverLimit",
    415: "UnsupportedMediaType",
    429: "RateLimit",
    500: "InternalServerError",
    501: "HTTPNotImplemented",
    503: "ServiceUnavailable",
}


class CliError(Exception):
    """An error to show the user as one ``ERROR (...)`` line and exit non-zero."""

    title = "CommandError"
    exit_code = 1

    def render(self) -> str:
        return f"ERROR ({self.title}): {self}"


class CommandError(CliError):
    """A problem found on the client side (bad name, ambiguous match, missing endpoint)."""


class ConnectionProblem(CliError):
    """The service could not be reached at all."""

    title = "ConnectionRefused"


class ApiError(CliError):
    """An HTTP error answered by the API, carrying its message and request id."""

    def __init__(self, code: int, message: str, request_id: str | None, url: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.url = url
        self.title = HTTP_TITLES.get(code, "ClientException")

    def render(self) -> str:
        text = f"ERROR ({self.title}): {self.message} (HTTP {self.code})"
        if self.request_id:
            text += f" (Request-ID: {self.request_id})"
        return text


def error_from_response(response: httpx.Response) -> ApiError:
    """Map an error response (Nova, Keystone or Glance shaped) to an `ApiError`."""
    request_id = response.headers.get("x-openstack-request-id") or response.headers.get(
        "x-compute-request-id"
    )
    message = _error_message(response) or response.reason_phrase or "unknown error"
    return ApiError(response.status_code, message, request_id, str(response.request.url))


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return _strip_html(response.text)
    if isinstance(body, dict):
        keystone = body.get("error")
        if isinstance(keystone, dict) and keystone.get("message"):
            return str(keystone["message"])
        for value in body.values():  # Nova: {"itemNotFound": {"code": 404, "message": "..."}}
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
        if body.get("message"):
            return str(body["message"])
        if body.get("detail"):
            return str(body["detail"])
    return _strip_html(response.text)


def _strip_html(text: str) -> str:
    import re

    plain = re.sub(r"<[^>]+>", " ", text)
    return " ".join(plain.split())[:500]
