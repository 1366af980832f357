"""Can this machine run the qemu and kvm drivers? Fast, side-effect-free checks."""

from __future__ import annotations

import os
import shutil

from novalite.virt.driver import HostCheck

KVM_DEVICE = "/dev/kvm"
#: Present when /dev/kvm is the nested, paravirtualized ``kvm_pvm`` module.
KVM_PVM_MODULE = "/sys/module/kvm_pvm"

PVM_REASON = (
    "/dev/kvm is the nested kvm_pvm module, which cannot run Linux kernels "
    "(they stop after minutes with 'KVM internal error ... emulation failure'); "
    "use the qemu driver (TCG) for Linux guests on this host"
)


def check_qemu(binary: str = "qemu-system-x86_64") -> HostCheck:
    """The QEMU binaries the qemu driver needs are on PATH."""
    for tool in (binary, "qemu-img"):
        if shutil.which(tool) is None:
            return HostCheck(
                False, f"{tool} not found on PATH (install Debian packages qemu-system-x86 "
                "and qemu-utils)"
            )
    return HostCheck(True)


def check_kvm_device() -> HostCheck:
    """/dev/kvm exists and this process can open it read-write."""
    if not os.path.exists(KVM_DEVICE):
        return HostCheck(False, f"{KVM_DEVICE} does not exist (no hardware virtualization "
                         "or the kvm module is not loaded)")
    try:
        fd = os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return HostCheck(False, f"cannot open {KVM_DEVICE}: {exc.strerror} "
                         "(add this user to the kvm group?)")
    os.close(fd)
    return HostCheck(True)


def is_kvm_pvm() -> bool:
    """True when /dev/kvm is provided by the nested ``kvm_pvm`` module."""
    return os.path.isdir(KVM_PVM_MODULE)


def check_kvm(binary: str = "qemu-system-x86_64") -> HostCheck:
    """Everything the kvm driver needs: QEMU and a usable /dev/kvm."""
    qemu = check_qemu(binary)
    if not qemu.usable:
        return qemu
    return check_kvm_device()


def kvm_runs_linux() -> HostCheck:
    """True only where KVM can run ordinary Linux guests.

    False (with the reason) when /dev/kvm is missing or unusable, or when it is the
    nested ``kvm_pvm`` module, where only real-mode guests run. The service uses it
    to choose its default driver: kvm where this is usable, else qemu, else fake.
    """
    kvm = check_kvm()
    if not kvm.usable:
        return kvm
    if is_kvm_pvm():
        return HostCheck(False, PVM_REASON)
    return HostCheck(True)
