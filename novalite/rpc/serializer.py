"""What a message is on the wire: plain data as JSON bytes, and exceptions by registry.

Everything that crosses the bus is plain data (DESIGN.md boundary 2). The sender
encodes each message once with :func:`encode` - orjson, held close to plain JSON -
so a non-serializable argument fails at the sender, whichever transport carries it.

A message is ``{"method", "args", "context"}``; a call's reply is ``{"result": ...}``
or ``{"error": {"type", "module", "message"}}``. An error whose type is in the
registry - every exception class of :mod:`novalite.exceptions`, the driver errors
of :mod:`novalite.virt.driver` (``InstanceNotFound``, ``DriverError``,
``SpawnFailed``, ...) and the RPC errors of :mod:`novalite.rpc.errors` - is raised
at the caller as that same type with the same message; any other becomes a
:class:`~novalite.rpc.errors.RemoteError` naming its type and message.

Example::

    data = encode({"method": "release", "args": {"instance_uuid": u}, "context": c})
    ...
    reply = decode(data)
    result = result_of(reply)          # the result, or raises the remote error
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import orjson

from novalite import exceptions
from novalite.rpc import errors
from novalite.rpc.errors import BusError, RemoteError
from novalite.virt import driver

#: orjson, held close to plain JSON: datetimes, dataclasses, subclasses of the JSON
#: types and non-string keys are refused rather than converted on the way (a UUID
#: object still passes as its string, and NaN as null).
_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
           | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _refuse(value: Any) -> Any:
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def encode(payload: dict[str, Any]) -> bytes:
    """Serialize a message; raises :class:`BusError` on anything that is not plain data."""
    try:
        return orjson.dumps(payload, default=_refuse, option=_STRICT)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise BusError(f"message is not plain data: {exc}") from None


def decode(data: bytes) -> dict[str, Any]:
    """Read a message :func:`encode` made."""
    return orjson.loads(data)  # type: ignore[no-any-return]


# -- the exception registry ---------------------------------------------------------------
_REGISTRY: dict[tuple[str, str], type[Exception]] = {}


def register(cls: type[Exception]) -> type[Exception]:
    """Let ``cls`` cross the bus as itself (it must take its message as only argument).

    Usable as a class decorator by a plugin's own exception types."""
    _REGISTRY[(cls.__module__, cls.__name__)] = cls
    return cls


def _register_module(module: ModuleType) -> None:
    for _name, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Exception) and cls.__module__ == module.__name__ \
                and cls is not RemoteError:
            register(cls)


for _module in (exceptions, driver, errors):
    _register_module(_module)


def registered() -> list[type[Exception]]:
    """The exception types that cross the bus as themselves."""
    return list(_REGISTRY.values())


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The reply of a call whose handler raised ``exc``."""
    if isinstance(exc, RemoteError):  # passed on from a call of its own: as it came
        return {"error": {"type": exc.exc_type, "module": "", "message": exc.message}}
    cls = type(exc)
    return {"error": {"type": cls.__name__, "module": cls.__module__, "message": str(exc)}}


def error_from(error: dict[str, Any]) -> Exception:
    """The exception to raise at the caller for an ``error`` of :func:`error_payload`."""
    name, message = str(error.get("type", "")), str(error.get("message", ""))
    cls = _REGISTRY.get((str(error.get("module", "")), name))
    if cls is not None:
        try:
            return cls(message)
        except Exception:  # a constructor that wants more than a message
            pass
    return RemoteError(name, message)


def result_of(reply: dict[str, Any]) -> Any:
    """A decoded reply's result; raises the remote exception when it carries an error."""
    if "error" in reply:
        raise error_from(reply["error"])
    return reply["result"]


__all__ = ["decode", "encode", "error_from", "error_payload", "register", "registered",
           "result_of"]
