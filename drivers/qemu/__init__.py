"""The built-in ``qemu`` (TCG) and ``kvm`` drivers: one QEMU process per guest."""

from .bootsector import make_boot_sector
from .driver import QemuDriver
from .hostcheck import kvm_runs_linux
from .kvm import KvmDriver

__all__ = ["KvmDriver", "QemuDriver", "kvm_runs_linux", "make_boot_sector"]
