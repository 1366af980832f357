"""The kvm driver: the qemu driver's engine with ``accel=kvm``."""

from __future__ import annotations

from novalite.virt.driver import HostCheck, ImageInfo, SpawnFailed

from . import hostcheck
from .driver import QemuDriver


class KvmDriver(QemuDriver):
    """The same engine with hardware acceleration (``accel=kvm``).

    On a host whose /dev/kvm is the nested ``kvm_pvm`` module, Linux kernels cannot
    run (KVM internal error after minutes), so Linux images are refused up front with
    that reason, and a guest QEMU stops with ``internal-error`` is reported CRASHED
    with it.
    """

    name = "kvm"
    hypervisor_type = "kvm"
    auto_priority = 300
    accel = "kvm"
    option_defaults = {**QemuDriver.option_defaults, "cpu_model": "host"}

    @classmethod
    def check_host(cls) -> HostCheck:
        """Usable when QEMU is installed and /dev/kvm can be opened read-write; on a
        nested ``kvm_pvm`` host usable with a reason: real-mode guests only."""
        check = hostcheck.check_kvm()
        if check.usable and hostcheck.is_kvm_pvm():
            return HostCheck(True, f"real-mode guests only: {hostcheck.PVM_REASON}")
        return check

    @classmethod
    def auto_select(cls) -> HostCheck:
        """``driver = "auto"`` takes kvm first, but only where KVM runs Linux guests
        (not on a nested ``kvm_pvm`` host)."""
        check = hostcheck.kvm_runs_linux()
        return HostCheck(True, "KVM is usable and runs Linux guests") if check.usable else check

    def _cpu_model(self) -> str:
        model = str(self.options["cpu_model"])
        # kvm_pvm aborts on `-cpu host` ("failed to set MSR 0x10a").
        if model == "host" and hostcheck.is_kvm_pvm():
            return "host,-arch-capabilities"
        return model

    def _check_image(self, image: ImageInfo) -> None:
        if not hostcheck.is_kvm_pvm():
            return
        props = image.properties
        linux = (image.kernel_path or props.get("os_command_line")
                 or str(props.get("os_type", "")).lower() == "linux" or props.get("os_distro"))
        if linux:
            raise SpawnFailed(f"image {image.name or image.id} is a Linux guest: "
                              f"{hostcheck.PVM_REASON}")

    def _crash_reason(self, status: str) -> str:
        if status == "internal-error" and hostcheck.is_kvm_pvm():
            return f"KVM internal error: {hostcheck.PVM_REASON}"
        return super()._crash_reason(status)
