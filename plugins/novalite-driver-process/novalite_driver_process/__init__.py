"""novalite-driver-process: instances that are supervised host processes."""

from novalite_driver_process.driver import COMMAND_PROPERTY, ProcessDriver

__all__ = ["COMMAND_PROPERTY", "ProcessDriver"]
__version__ = "0.1.0"
