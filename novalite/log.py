"""Logging: structlog, pretty on a terminal and JSON lines otherwise.

The request id travels in structlog's context variables: the API binds
``request_id`` for each request, every bus message carries it, and each actor
binds it again while handling the message, so one ``grep req-...`` follows a
boot from HTTP to the hypervisor. trio copies context variables into every
task it starts, so a binding made in a task stays in that task and its children.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

get_logger = structlog.get_logger


def _json(event: dict[str, Any], **_kw: Any) -> str:
    # orjson: several times faster than json.dumps for a log line; anything it cannot
    # encode is shown as its str(), as structlog's own fallback does.
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def setup(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog (and the stdlib loggers of libraries) once, at start."""
    stream = stream or sys.stderr
    pretty = fmt == "pretty" or (fmt == "auto" and stream.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if pretty:
        processors.append(structlog.dev.ConsoleRenderer(colors=stream.isatty()))
    else:
        processors += [structlog.processors.format_exc_info,
                       structlog.processors.JSONRenderer(serializer=_json)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    # Libraries (hypercorn, alembic) log through stdlib logging: keep them quiet but visible.
    logging.basicConfig(level=logging.WARNING, stream=stream, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def bind_request(request_id: str, **extra: Any) -> None:
    """Bind the request id (and anything else) for the current task."""
    structlog.contextvars.bind_contextvars(request_id=request_id, **extra)
