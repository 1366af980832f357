"""The errors of the RPC layer: what a send can fail with, on either side of the line.

Every one of these crosses the bus as itself (see :mod:`novalite.rpc.serializer`):
a handler that raises :class:`CallTimeout` makes its caller's call raise
:class:`CallTimeout` too.
"""

from __future__ import annotations


class BusError(Exception):
    """The bus could not deliver a message, or a message is not plain data."""


class UnknownTopic(BusError):
    """Nobody listens on that topic."""


class CallTimeout(BusError):
    """A call got no reply in time."""


class UnknownMethod(BusError):
    """The actor of the topic has no such RPC method."""


class RemoteError(Exception):
    """A call's handler raised an exception that is not one of novalite's own.

    ``exc_type`` names its type and ``message`` says what it said. novalite's own
    exception types (:mod:`novalite.exceptions`, the driver errors of
    :mod:`novalite.virt.driver`, the errors of this module) are raised again at the
    caller as themselves instead.
    """

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


__all__ = ["BusError", "CallTimeout", "RemoteError", "UnknownMethod", "UnknownTopic"]
