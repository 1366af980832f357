"""One active scheduler among several control processes: the control lease.

Several control processes (``novalite serve --role control``, or ``all`` with a
``transport_url``) may share one database and one broker, for an API that survives
the loss of a machine. Most of what they do is safe to do twice at once: the API and
the conductor keep their state in the database. Three things are not:

- **the scheduler** chooses a host and claims its resources in memory, without
  awaiting between the choice and the claim (:mod:`novalite.scheduler.manager`);
  two schedulers would each see the other's claims only after the fact and could
  both fill the last slot of a host;
- **recovery at start** puts every build in flight into ERROR: run by a process
  that starts beside a live one, it would fail that one's builds;
- **the periodic checks** (stuck builds, soft-deleted servers to reclaim).

So one process at a time does them: the holder of the ``control`` lease, a row in
``control_leases`` with the holder's name and an expiry. A process takes the lease
when nobody holds it or the holder let it expire, renews it every third of
``[compute] service_down_time`` while it lives, and hands it back when it stops
cleanly; another process polls at the same pace and takes over within
``service_down_time`` of the holder's death (kill -9, power loss). Only then does it
listen on the ``scheduler`` topic (the broker keeps what was sent there meanwhile),
reconcile, and load the claims from the database, so its picture of every host is the
last holder's.

A holder that finds its lease taken by another process when it renews (it was cut
off from the database for longer than the lease) stops the whole process with
:class:`LeaseLost`: the transport has no way to stop listening on one topic, and a
process that cannot tell whether it still leads must not schedule. Its supervisor
starts it again, as a standby. Clocks of control machines are assumed to agree
within a small part of ``service_down_time`` (NTP), as Nova's service heartbeats do.

Example::

    lease = ControlLease(db, ttl=60.0)
    if await lease.acquire():
        ...  # schedule, reconcile, check
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from novalite.db.engine import Database
from novalite.db.models import ControlLease as LeaseRow
from novalite.db.models import utcnow
from novalite.exceptions import NovaliteError

log = structlog.get_logger("novalite.conductor")

#: The one lease there is today.
CONTROL = "control"


class LeaseLost(NovaliteError):
    """Another control process holds the lease this process was leading by."""

    code = 503


class ControlLease:
    """The lease ``name`` in ``db``, held for ``ttl`` seconds at a time by this process."""

    def __init__(self, db: Database, ttl: float, name: str = CONTROL) -> None:
        self.db = db
        self.ttl = ttl
        self.name = name
        #: Who this process is, in the lease row and the log.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def acquire(self) -> bool:
        """Take or renew the lease; True when this process holds it until now + ttl.

        Free, expired, or already ours: ours until now + ttl. Held by another process
        that renewed in time: False, nothing changed."""
        holder, ttl, name = self.holder, self.ttl, self.name

        def work(s: Session) -> bool:
            now = utcnow()
            row = s.exec(select(LeaseRow).where(LeaseRow.name == name)
                         .with_for_update()).first()
            if row is None:
                row = LeaseRow(name=name, holder=holder, acquired_at=now,
                               expires_at=now + dt.timedelta(seconds=ttl))
            elif row.holder == holder or row.expires_at <= now:
                if row.holder != holder:
                    row.holder, row.acquired_at = holder, now
                row.expires_at = now + dt.timedelta(seconds=ttl)
            else:
                return False
            s.add(row)
            return True

        try:
            return await self.db.write(work)
        except IntegrityError:  # another process inserted the first row at the same time
            return False

    async def held_by(self) -> tuple[str, dt.datetime] | None:
        """The holder and expiry on record, or None when the lease was never taken."""
        name = self.name

        def work(s: Session) -> tuple[str, dt.datetime] | None:
            row = s.exec(select(LeaseRow).where(LeaseRow.name == name)).first()
            return None if row is None else (row.holder, row.expires_at)

        return await self.db.read(work)

    async def release(self) -> None:
        """Give the lease back (a clean stop), so that a standby takes over at once."""
        holder, name = self.holder, self.name

        def work(s: Session) -> None:
            row = s.exec(select(LeaseRow).where(LeaseRow.name == name)
                         .with_for_update()).first()
            if row is not None and row.holder == holder:
                row.expires_at = utcnow()
                s.add(row)

        await self.db.write(work)
