"""Cinder's volume and snapshot states, and the attach states of an attachment."""

from __future__ import annotations

CREATING = "creating"
AVAILABLE = "available"
ATTACHING = "attaching"
IN_USE = "in-use"
DETACHING = "detaching"
DELETING = "deleting"
ERROR = "error"
ERROR_DELETING = "error_deleting"
EXTENDING = "extending"

#: Every volume status, for the ``status`` filter and os-reset_status.
VOLUME_STATES = (CREATING, AVAILABLE, ATTACHING, IN_USE, DETACHING, DELETING, ERROR,
                 ERROR_DELETING, EXTENDING)

# An attachment's attach_status.
ATTACHED = "attached"
DETACHED = "detached"
