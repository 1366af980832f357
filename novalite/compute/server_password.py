"""The server password (``os-server-password``) and ``changePassword``, as Nova answers them.

The password a guest agent encrypted with the instance's key pair and posted to the
metadata service (:mod:`novalite.metadata.password`) is shown to the server's owner,
who decrypts it with the private key (``nova get-password``), and can be cleared.
Setting a running guest's password needs an agent inside it (Nova's libvirt driver
uses the QEMU guest agent); no novalite driver has one, so ``changePassword`` gets
Nova's answer for a driver that cannot: 501 "Unable to set password on instance".
"""

from __future__ import annotations

from sqlmodel import Session

from novalite import states
from novalite.compute.api import ComputeAPI
from novalite.context import AuthContext
from novalite.exceptions import InstanceInvalidState, NovaliteError
from novalite.metadata.service import read_password, write_password


class NotImplementedByDriver(NovaliteError):
    """The hypervisor cannot do this (Nova's ``HTTPNotImplemented``)."""

    code = 501
    title = "notImplemented"


async def get(compute: ComputeAPI, ctx: AuthContext, server_id: str) -> str:
    """The encrypted password of the caller's server ("" when the guest posted none)."""
    record = await compute.get(ctx, server_id)
    uuid = record.instance.uuid
    return await compute.db.read(lambda s: read_password(s, uuid))


async def clear(compute: ComputeAPI, ctx: AuthContext, server_id: str) -> None:
    """Forget the server's password (the guest may then post a new one)."""
    record = await compute.get(ctx, server_id)
    uuid = record.instance.uuid

    def work(s: Session) -> None:
        write_password(s, uuid, "")

    await compute.db.write(work)


async def change(compute: ComputeAPI, ctx: AuthContext, server_id: str) -> None:
    """``changePassword``: 409 unless ACTIVE, then 501 (no driver can set it)."""
    record = await compute.get(ctx, server_id)
    inst = record.instance
    if inst.vm_state != states.ACTIVE or inst.task_state is not None:
        raise InstanceInvalidState(
            f"Cannot 'changePassword' instance {inst.uuid} while it is in vm_state "
            f"{inst.vm_state}" + (f", task_state {inst.task_state}" if inst.task_state
                                  else ""))
    raise NotImplementedByDriver("Unable to set password on instance")
