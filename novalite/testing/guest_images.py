"""Test guests built from Debian packages, cached across a test run.

* :func:`boot_sector_image` - a 512-byte raw disk that prints a marker on COM1.
* :func:`linux_guest` - the Debian cloud kernel (``apt-get download`` of
  ``linux-image-*-cloud-amd64``, ``dpkg -x``) and a busybox initramfs whose ``/init``
  prints :data:`LINUX_MARKER` on ttyS0 and powers off on the ACPI power button.
  Before that it does what cloud-init does: reads the config drive (label
  ``config-2``) when there is one, else the metadata service (busybox ``wget``),
  prints what it got (:data:`METADATA_MARKER`), takes the hostname, installs the key
  pair's public key for Dropbear (Debian's ``dropbear-bin``, with the libraries it
  needs, listening on port 22) and runs the user data when it is a script.

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
#: Printed by the Linux guest with where its metadata came from:
#: "<marker> source=config-drive|metadata-service|none address=<metadata address>",
#: followed by its meta_data.json and "<marker>-END".
METADATA_MARKER = "NOVALITE-METADATA"
#: Printed around the output of the guest's user data script.
USER_DATA_MARKER = "NOVALITE-USER-DATA"
#: Kernel modules the initramfs loads, in this order (ACPI button, then virtio-net).
GUEST_MODULES = ("evdev", "button", "virtio_ring", "virtio", "virtio_pci_modern_dev",
                 "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover",
                 "virtio_net", "virtio_blk", "virtio-rng", "cdrom", "isofs")
#: Debian packages of the guest's SSH server (``apt-get download``, ``dpkg -x``); the
#: libraries they need beyond these come from the host (libc, libcrypt, zlib, gmp).
DROPBEAR_PACKAGES = ("dropbear-bin", "libtomcrypt1", "libtommath1")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX = "/bin/busybox"

_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /etc/acpi/PWRF
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
mkdir -p /dev/pts /run /tmp /mnt/cd /var/run && mount -t devpts devpts /dev/pts
printf '#!/bin/sh\\n[ "$1" = bound ] && echo "@IP_MARKER@ $ip/$mask router $router" > /dev/ttyS0 && echo "$ip" > /run/ip && ip addr add "$ip/$mask" dev "$interface" && ip route add default via "$router"\\n' > /bin/dhcp-event
chmod +x /bin/dhcp-event
ip link set lo up
ip link set eth0 up 2>/dev/null && udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/dhcp-event >/dev/null 2>&1
# As cloud-init: the config drive first, else the metadata service.
md=/run/md; mkdir -p $md; src=none; addr=
for dev in /dev/vd? /dev/sr? /dev/sd?; do
  [ -b "$dev" ] || continue
  if mount -t iso9660 -o ro "$dev" /mnt/cd 2>/dev/null; then
    if [ -f /mnt/cd/openstack/latest/meta_data.json ]; then
      cp /mnt/cd/openstack/latest/meta_data.json $md/
      [ -f /mnt/cd/openstack/latest/user_data ] && cp /mnt/cd/openstack/latest/user_data $md/
      src=config-drive; break
    fi
    umount /mnt/cd
  fi
done
if [ $src = none ] && [ -f /run/ip ]; then
  ip=$(cat /run/ip); addr=${ip%.*}.254; [ "$addr" = "$ip" ] && addr=${ip%.*}.253
  if timeout 20 wget -q -O $md/meta_data.json "http://$addr/openstack/latest/meta_data.json"; then
    src=metadata-service
    timeout 20 wget -q -O $md/user_data "http://$addr/openstack/latest/user_data" || rm -f $md/user_data
    timeout 20 wget -q -O $md/key "http://$addr/latest/meta-data/public-keys/0/openssh-key"
  fi
fi
echo "@METADATA_MARKER@ source=$src address=$addr" > /dev/ttyS0
if [ $src != none ]; then
  cat $md/meta_data.json > /dev/ttyS0; echo > /dev/ttyS0
  echo "@METADATA_MARKER@-END" > /dev/ttyS0
  name=$(sed -n 's/.*"hostname": "\\([^"]*\\)".*/\\1/p' $md/meta_data.json)
  [ -n "$name" ] && hostname "$name"
  [ -f $md/key ] || sed -n 's/.*"public_keys": {"[^"]*": "\\([^"]*\\)".*/\\1/p' $md/meta_data.json | sed 's/\\\\n$//' > $md/key
  mkdir -p /root/.ssh && chmod 700 /root/.ssh && cp $md/key /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
  dropbear -s -p 22 -r /etc/dropbear/host_key -P /var/run/dropbear.pid
  if [ -f $md/user_data ] && [ "$(head -c 2 $md/user_data)" = "#!" ]; then
    chmod +x $md/user_data
    echo "@USER_DATA_MARKER@" > /dev/ttyS0
    $md/user_data > /dev/ttyS0 2>&1
    echo "@USER_DATA_MARKER@-END" > /dev/ttyS0
  fi
fi
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


def _dropbear_tree(root: str) -> str:
    """``dpkg -x`` of :data:`DROPBEAR_PACKAGES` (directory)."""

    def build(tmp: str) -> None:
        os.makedirs(os.path.join(tmp, "root"))
        _run(["apt-get", "download", *DROPBEAR_PACKAGES], cwd=tmp)
        for deb in glob.glob(os.path.join(tmp, "*.deb")):
            _run(["dpkg", "-x", deb, os.path.join(tmp, "root")])
            os.unlink(deb)

    return _build_once(os.path.join(root, "dropbear-tree"), build)


def _add_dropbear(tree: str, work: str) -> None:
    """Dropbear, its libraries (as ``ldd`` resolves them, the packages' before the
    host's), a host key made at build time, and root's account."""
    binary = os.path.join(tree, "usr/sbin/dropbear")
    libdirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(tree, "usr/lib/**/*.so*"),
                                                             recursive=True)})
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(libdirs)}
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, env=env,
                         check=True).stdout
    libs = [line.split("=>")[1].split("(")[0].strip() for line in out.splitlines()
            if "=>" in line and "/" in line.split("=>")[1]]
    libs += [line.split("(")[0].strip() for line in out.splitlines()
             if line.strip().startswith("/")]  # the dynamic loader
    for lib in libs:
        target = os.path.join(work, lib.lstrip("/")) if lib.startswith("/lib64") else \
            os.path.join(work, "lib/x86_64-linux-gnu", os.path.basename(lib))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(lib, target)
    os.makedirs(os.path.join(work, "usr/sbin"), exist_ok=True)
    shutil.copy(binary, os.path.join(work, "usr/sbin/dropbear"))
    os.symlink("/usr/sbin/dropbear", os.path.join(work, "bin/dropbear"))
    os.makedirs(os.path.join(work, "etc/dropbear"))
    subprocess.run([os.path.join(tree, "usr/bin/dropbearkey"), "-t", "ed25519", "-f",
                    os.path.join(work, "etc/dropbear/host_key")], env=env, check=True,
                   capture_output=True, timeout=60)
    with open(os.path.join(work, "etc/passwd"), "w") as f:
        f.write("root::0:0:root:/root:/bin/sh\n")
    with open(os.path.join(work, "etc/group"), "w") as f:
        f.write("root:x:0:\n")
    with open(os.path.join(work, "etc/shells"), "w") as f:
        f.write("/bin/sh\n")
    os.makedirs(os.path.join(work, "root"), mode=0o700)


def _initramfs(tree: str, dest: str, dropbear: str | None = None) -> None:
    """busybox + /init + :data:`GUEST_MODULES` (+ Dropbear) as a newc cpio, gzipped."""
    with tempfile.TemporaryDirectory() as work:
        for sub in ("bin", "lib/modules", "etc"):
            os.makedirs(os.path.join(work, sub))
        if dropbear is not None:
            _add_dropbear(dropbear, work)
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
                    .replace("@IP_MARKER@", IP_MARKER)
                    .replace("@METADATA_MARKER@", METADATA_MARKER)
                    .replace("@USER_DATA_MARKER@", USER_DATA_MARKER))
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
    dropbear = os.path.join(_dropbear_tree(root), "root")

    def kernel(tmp: str) -> None:
        shutil.copy(sorted(glob.glob(os.path.join(tree, "boot", "vmlinuz-*")))[-1], tmp)

    return LinuxGuest(
        kernel=_build_once(os.path.join(root, "vmlinuz-cloud"), kernel),
        initrd=_build_once(os.path.join(root, "initrd-novalite-v7.gz"),
                           lambda tmp: _initramfs(tree, tmp, dropbear)),
    )


if __name__ == "__main__":  # build the cache: python -m novalite.testing.guest_images
    print(boot_sector_image())
    print(linux_guest())
