"""The lxc hypervisor driver: instances as LXC containers (see :mod:`.driver`)."""

from .driver import LxcDriver

__all__ = ["LxcDriver"]
