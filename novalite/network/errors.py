"""Neutron's errors: each carries the ``type`` of Neutron's error body
(``{"NeutronError": {"type", "message", "detail"}}``, rendered by
:func:`novalite.api.framework.error_response` in its ``neutron`` style)."""

from __future__ import annotations

from novalite.exceptions import BadRequest, Conflict, NotFound


class NeutronNotFound(NotFound):
    """A Neutron resource the caller cannot see (another project's is not found too)."""

    def __init__(self, kind: str, resource_id: str) -> None:
        label = {"Network": "Network", "Subnet": "Subnet", "Port": "Port",
                 "SecurityGroup": "Security group",
                 "SecurityGroupRule": "Security group rule"}[kind]
        super().__init__(f"{label} {resource_id} could not be found.")
        self.neutron_type = f"{kind}NotFound"


class InvalidInput(BadRequest):
    """Invalid input for operation."""

    neutron_type = "InvalidInput"

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid input for operation: {detail}.")


class NeutronConflict(Conflict):
    """A Neutron 409 with its type (``InUse``, ``IpAddressAlreadyAllocated``...)."""

    def __init__(self, neutron_type: str, message: str) -> None:
        super().__init__(message)
        self.neutron_type = neutron_type


class NeutronBadRequest(BadRequest):
    """A Neutron 400 with its type."""

    def __init__(self, neutron_type: str, message: str) -> None:
        super().__init__(message)
        self.neutron_type = neutron_type
