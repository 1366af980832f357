"""Test guests built from Debian packages, cached across a test run.

* :func:`boot_sector_image` - a 512-byte raw disk that prints a marker on COM1.
* :func:`linux_guest` - the Debian cloud kernel (``apt-get download`` of
  ``linux-image-*-cloud-amd64``, ``dpkg -x``) and a busybox initramfs whose ``/init``
  prints :data:`LINUX_MARKER` on ttyS0 and powers off on the ACPI power button.

The cache directory is the ``cache_dir`` argument, else ``$NOVALITE_IMAGE_CACHE``,
else ``<repo>/.cache/guest-images``. Builds are idempotent and safe to run
concurrently (an ``flock`` per artifact, results renamed into place atomically).
Needs ``apt-get``, ``dpkg``, ``cpio`` and ``busybox-static`` on the host.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from novalite_drivers.qemu.bootsector import make_boot_sector

BOOT_MARKER = "NOVALITE-BOOT-SECTOR-READY"
LINUX_MARKER = "NOVALITE-GUEST-READY"
#: Printed by the Linux guest with the address its DHCP lease gave: "<marker> ip/mask ...".
IP_MARKER = "NOVALITE-GUEST-IP"
#: Kernel modules the initramfs loads, in this order (ACPI button, then virtio-net).
GUEST_MODULES = ("evdev", "button", "virtio_ring", "virtio", "virtio_pci_modern_dev",
                 "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover",
                 "virtio_net")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX = "/bin/busybox"

_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /etc/acpi/PWRF
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
printf '#!/bin/sh\\n[ "$1" = bound ] && echo "@IP_MARKER@ $ip/$mask router $router" > /dev/ttyS0\\n' > /bin/dhcp-event
chmod +x /bin/dhcp-event
ip link set lo up
ip link set eth0 up 2>/dev/null && udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/dhcp-event >/dev/null 2>&1
printf '#!/bin/sh\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
ln -s /etc/acpi/PWRF /etc/acpi/button
acpid -c /etc/acpi -l /dev/console
echo @LINUX_MARKER@ > /dev/ttyS0
while true; do setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'; sleep 1; done
"""


@dataclass(frozen=True)
class LinuxGuest:
    """Paths of a bootable Linux test guest."""

    kernel: str
    initrd: str
    append: str = "console=ttyS0 quiet panic=-1"


def cache_dir(path: str | None = None) -> str:
    """The image cache directory (created)."""
    root = path or os.environ.get("NOVALITE_IMAGE_CACHE") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        ".cache", "guest-images")
    os.makedirs(root, exist_ok=True)
    return root


@contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_once(dest: str, build: Callable[[str], None]) -> str:
    """Run ``build(tmp_path)`` unless ``dest`` exists; rename the result into place."""
    if os.path.exists(dest):
        return dest
    with _locked(dest):
        if not os.path.exists(dest):
            tmp = f"{dest}.tmp.{os.getpid()}"
            try:
                build(tmp)
                os.replace(tmp, dest)
            finally:
                if os.path.isdir(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)
                elif os.path.exists(tmp):
                    os.unlink(tmp)
    return dest


def boot_sector_image(directory: str | None = None, message: str = BOOT_MARKER) -> str:
    """A raw 512-byte disk image that prints ``message`` on the serial port."""
    root = cache_dir(directory)
    name = "bootsector-" + "".join(c if c.isalnum() else "_" for c in message)[:40] + ".img"

    def build(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(make_boot_sector(message))

    return _build_once(os.path.join(root, name), build)


def _run(argv: list[str], cwd: str | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def _kernel_tree(root: str) -> str:
    """``dpkg -x`` of the cloud kernel package (directory)."""

    def build(tmp: str) -> None:
        os.makedirs(tmp)
        depends = _run(["apt-cache", "depends", KERNEL_PACKAGE])
        pkg = next((line.split(":", 1)[1].strip() for line in depends.splitlines()
                    if line.strip().startswith("Depends:") and "linux-image" in line), None)
        if pkg is None:
            raise RuntimeError(f"cannot resolve {KERNEL_PACKAGE}'s kernel package")
        _run(["apt-get", "download", pkg], cwd=tmp)
        deb = glob.glob(os.path.join(tmp, "*.deb"))[0]
        _run(["dpkg", "-x", deb, os.path.join(tmp, "root")])
        os.unlink(deb)

    return _build_once(os.path.join(root, "kernel-tree"), build)


def _initramfs(tree: str, dest: str) -> None:
    """busybox + /init + :data:`GUEST_MODULES` packed as a newc cpio, gzipped."""
    with tempfile.TemporaryDirectory() as work:
        for sub in ("bin", "lib/modules", "etc"):
            os.makedirs(os.path.join(work, sub))
        shutil.copy(BUSYBOX, os.path.join(work, "bin", "busybox"))
        os.symlink("busybox", os.path.join(work, "bin", "sh"))
        for index, name in enumerate(GUEST_MODULES):
            found = glob.glob(os.path.join(tree, "lib/modules/*/kernel/**", name + ".ko*"),
                              recursive=True)
            for path in found[:1]:
                target = os.path.join(work, "lib/modules", f"{index:02d}-{name}.ko")
                if path.endswith(".xz"):
                    _run(["sh", "-c", f"xz -dc '{path}' > '{target}'"])
                else:
                    shutil.copy(path, target)
        with open(os.path.join(work, "init"), "w") as f:
            f.write(_INIT.replace("@LINUX_MARKER@", LINUX_MARKER)
                    .replace("@IP_MARKER@", IP_MARKER))
        os.chmod(os.path.join(work, "init"), 0o755)
        files = _run(["find", ".", "-print0"], cwd=work)
        packed = subprocess.run(["cpio", "-o", "-H", "newc", "--null", "--quiet"],
                                input=files.encode(), cwd=work, capture_output=True,
                                check=True, timeout=120).stdout
    with open(dest, "wb") as f:
        f.write(gzip.compress(packed, compresslevel=6))


def linux_guest(directory: str | None = None) -> LinuxGuest:
    """The Debian cloud kernel and a busybox initramfs (see the module docstring)."""
    root = cache_dir(directory)
    tree = os.path.join(_kernel_tree(root), "root")

    def kernel(tmp: str) -> None:
        shutil.copy(sorted(glob.glob(os.path.join(tree, "boot", "vmlinuz-*")))[-1], tmp)

    return LinuxGuest(
        kernel=_build_once(os.path.join(root, "vmlinuz-cloud"), kernel),
        initrd=_build_once(os.path.join(root, "initrd-novalite-v4.gz"),
                           lambda tmp: _initramfs(tree, tmp)),
    )


if __name__ == "__main__":  # build the cache: python -m novalite.testing.guest_images
    print(boot_sector_image())
    print(linux_guest())
