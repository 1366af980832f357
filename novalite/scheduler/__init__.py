"""The scheduler: filters, weighers and claims over its own view of the hosts."""

# Transitional, for novalite.api only (being rewritten on another branch): server groups
# and aggregates moved to the compute API package. Delete these lines once novalite.api
# imports novalite.compute.server_groups / novalite.compute.aggregates; nothing else may
# use the old names.
import sys as _sys

from novalite.compute import aggregates as _aggregates
from novalite.compute import server_groups as _server_groups

_sys.modules.setdefault(f"{__name__}.aggregates", _aggregates)
_sys.modules.setdefault(f"{__name__}.groups", _server_groups)
