"""Build a tiny busybox root filesystem tarball for LXC guests.

The tarball holds Debian's statically linked ``busybox`` (package
``busybox-static``, installed as ``/bin/busybox``) with a link for every applet,
and ``/sbin/init`` (busybox init) with an ``/etc/inittab`` that:

* prints :data:`READY_MARKER` on the console once the guest has booted, so a
  test (or a user running ``nova console-log``) can see the guest came up;
* runs a root shell on the console (``/dev/console``: the console log, and the
  interactive console through a console token);
* halts on ``SIGUSR1`` (busybox init's halt signal; the LXC driver sets
  ``lxc.signal.halt = SIGUSR1``) and reboots on ``SIGTERM``
  (``lxc.signal.reboot = SIGTERM``), printing :data:`HALT_MARKER` on the way down.

It packs to a ``.tar.gz`` of about 1 MB. Importing this module has no side
effects. The lxc driver's ``demo`` image (:meth:`LxcDriver.demo_image`) is this
tarball; the tests build it too, through :mod:`novalite.testing.rootfs` (which
adds a cache keyed by busybox's content)::

    from novalite_drivers.lxc.rootfs import build_busybox_rootfs
    build_busybox_rootfs("/tmp/demo.tar.gz")

Builds are idempotent and safe to run concurrently (from threads or
processes): each writes a private temporary file and renames it into place.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from .images import tarball_destination

__all__ = [
    "DEFAULT_BUSYBOX",
    "HALT_MARKER",
    "READY_MARKER",
    "RootfsBuildError",
    "build_busybox_rootfs",
    "content_key",
]

READY_MARKER = "NOVALITE-GUEST-READY"
"""Printed on the guest's console when its init has finished booting."""

HALT_MARKER = "NOVALITE-GUEST-HALT"
"""Printed on the guest's console when its init begins shutting down."""

DEFAULT_BUSYBOX = "/bin/busybox"

# Bump when the layout below changes: it is part of the cache key.
_LAYOUT_VERSION = "3"

_INITTAB = f"""\
# busybox init: SIGUSR1 halts, SIGUSR2 powers off, SIGTERM reboots.
::sysinit:/etc/init.d/rcS
::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/echo {HALT_MARKER}
"""

_RCS = f"""\
#!/bin/sh
# Boot script of the novalite busybox guest.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t tmpfs -o mode=1777 tmpfs /tmp 2>/dev/null
mount -t tmpfs -o mode=755 tmpfs /run 2>/dev/null
echo "{READY_MARKER} $(hostname) $(uname -r)"
"""

_FILES: dict[str, tuple[str, int]] = {
    "etc/inittab": (_INITTAB, 0o644),
    "etc/init.d/rcS": (_RCS, 0o755),
    "etc/hostname": ("novalite-guest\n", 0o644),
    "etc/hosts": ("127.0.0.1\tlocalhost\n", 0o644),
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
    "etc/group": ("root:x:0:\n", 0o644),
    "etc/shadow": ("root:*:19000:0:99999:7:::\n", 0o600),
    "etc/profile": ("export PATH=/sbin:/bin:/usr/sbin:/usr/bin\n", 0o644),
}

_DIRS: dict[str, int] = {
    "bin": 0o755,
    "sbin": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "etc": 0o755,
    "etc/init.d": 0o755,
    "dev": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "tmp": 0o1777,
    "run": 0o755,
    "root": 0o700,
    "var": 0o755,
    "var/log": 0o755,
    "mnt": 0o755,
}


class RootfsBuildError(RuntimeError):
    """The root filesystem cannot be built (busybox missing, not static, ...)."""


def _applets(busybox: str) -> list[str]:
    """The applet paths busybox installs (``bin/ls``, ``sbin/init``, ...)."""
    import subprocess

    try:
        out = subprocess.run(
            [busybox, "--list-full"], check=True, capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RootfsBuildError(f"cannot list the applets of {busybox}: {exc}") from exc
    applets = [line.strip().lstrip("/") for line in out.splitlines() if line.strip()]
    if "sbin/init" not in applets:
        raise RootfsBuildError(f"{busybox} has no init applet")
    return applets


def _is_static(busybox: str) -> bool:
    """True when the 64-bit ELF file has no PT_INTERP header (needs no dynamic loader)."""
    import struct

    with open(busybox, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # not a 64-bit ELF: let it be
            return True
        endian = "<" if head[5] == 1 else ">"
        (phoff,) = struct.unpack_from(endian + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def content_key(busybox: str = DEFAULT_BUSYBOX) -> str:
    """A short key of busybox's content and this module's layout: equal keys, equal tarballs."""
    digest = hashlib.sha256(_LAYOUT_VERSION.encode())
    with open(busybox, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def _write_tarball(busybox: str, out: io.BufferedWriter) -> None:
    applets = _applets(busybox)
    # mtime=0 keeps the gzip header stable for identical content.
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info("./", tarfile.DIRTYPE, 0o755))
        for path, mode in _DIRS.items():
            tar.addfile(_info(f"./{path}/", tarfile.DIRTYPE, mode))
        with open(busybox, "rb") as f:
            info = _info("./bin/busybox", tarfile.REGTYPE, 0o755)
            info.size = os.fstat(f.fileno()).st_size
            tar.addfile(info, f)
        seen = {"bin/busybox"}
        for applet in sorted(applets):
            if applet in seen:
                continue
            seen.add(applet)
            parent = os.path.dirname(applet)
            link = _info(f"./{applet}", tarfile.SYMTYPE, 0o777)
            link.linkname = os.path.relpath("bin/busybox", parent)
            tar.addfile(link)
        for path, (text, mode) in _FILES.items():
            data = text.encode()
            info = _info(f"./{path}", tarfile.REGTYPE, mode)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def check_busybox(busybox: str = DEFAULT_BUSYBOX) -> None:
    """Raise :class:`RootfsBuildError` unless ``busybox`` exists and is statically linked."""
    if not os.path.isfile(busybox):
        raise RootfsBuildError(f"{busybox} not found: install Debian's busybox-static package")
    if not _is_static(busybox):
        raise RootfsBuildError(
            f"{busybox} is dynamically linked: install busybox-static, not busybox"
        )


def build_busybox_rootfs(dest_path: str | os.PathLike[str], *,
                         busybox: str = DEFAULT_BUSYBOX) -> str:
    """Write the busybox rootfs tarball to ``dest_path`` (kept if it already exists)
    and return its path.

    Raises :class:`RootfsBuildError` when busybox is missing or not statically linked.
    """
    check_busybox(busybox)
    dest = Path(dest_path)
    if dest.is_file() and dest.stat().st_size > 0:
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: concurrent builders produce the same content; readers never see half.
    with tarball_destination(dest) as tmp, open(tmp, "wb") as out:
        _write_tarball(busybox, out)
        out.flush()
        os.fsync(out.fileno())
    return str(dest)
