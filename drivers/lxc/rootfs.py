"""Build a tiny busybox root filesystem tarball for LXC guests.

The tarball holds Debian's statically linked ``busybox`` (package
``busybox-static``, installed as ``/bin/busybox``) with a link for every applet,
and ``/sbin/init`` (busybox init) with an ``/etc/inittab`` that:

* prints :data:`READY_MARKER` on the console once the guest has booted, so a
  test (or a user running ``nova console-log``) can see the guest came up;
* halts on ``SIGUSR1`` (busybox init's halt signal; the LXC driver sets
  ``lxc.signal.halt = SIGUSR1``) and reboots on ``SIGTERM``
  (``lxc.signal.reboot = SIGTERM``), printing :data:`HALT_MARKER` on the way down.

It packs to a ``.tar.gz`` of about 1 MB. Importing this module has no side
effects and it does not depend on pytest: novalite itself uses
:func:`build_busybox_rootfs` to register a ``demo`` image when the configured
driver is ``lxc``::

    from novalite.testing.rootfs import build_busybox_rootfs
    path = build_busybox_rootfs()          # cached, e.g. .cache/guest-images/...
    build_busybox_rootfs("/tmp/demo.tar.gz")  # or at a path of your choice

Builds are idempotent and safe to run concurrently (from threads or
processes): each writes a private temporary file and renames it into place.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from novalite_drivers.lxc.images import tarball_destination

__all__ = [
    "HALT_MARKER",
    "IMAGE_PROPERTIES",
    "READY_MARKER",
    "RootfsBuildError",
    "build_busybox_rootfs",
    "default_cache_dir",
]

READY_MARKER = "NOVALITE-GUEST-READY"
"""Printed on the guest's console when its init has finished booting."""

HALT_MARKER = "NOVALITE-GUEST-HALT"
"""Printed on the guest's console when its init begins shutting down."""

DEFAULT_BUSYBOX = "/bin/busybox"

#: Glance properties to register the tarball with, so it boots on the lxc driver.
IMAGE_PROPERTIES = {
    "disk_format": "raw",
    "container_format": "bare",
    "hypervisor_type": "lxc",
}

# Bump when the layout below changes: it is part of the cache key.
_LAYOUT_VERSION = "2"

_INITTAB = f"""\
# busybox init: SIGUSR1 halts, SIGUSR2 powers off, SIGTERM reboots.
::sysinit:/etc/init.d/rcS
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


def default_cache_dir() -> Path:
    """``$NOVALITE_IMAGE_CACHE``, else ``<repository>/.cache/guest-images``."""
    env = os.environ.get("NOVALITE_IMAGE_CACHE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".cache" / "guest-images"


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


def _cache_key(busybox: str) -> str:
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


def build_busybox_rootfs(
    dest_path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    busybox: str = DEFAULT_BUSYBOX,
) -> str:
    """Build (or reuse) the busybox rootfs tarball and return its path.

    With ``dest_path`` the tarball is written there (kept if it already
    exists); without, it goes into ``cache_dir`` (default
    :func:`default_cache_dir`) under a name keyed by busybox's content, so a
    new busybox or layout builds a new file. Raises :class:`RootfsBuildError`
    when busybox is missing or not statically linked.
    """
    if not os.path.isfile(busybox):
        raise RootfsBuildError(f"{busybox} not found: install Debian's busybox-static package")
    if not _is_static(busybox):
        raise RootfsBuildError(
            f"{busybox} is dynamically linked: install busybox-static, not busybox"
        )
    if dest_path is None:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        dest = cache / f"busybox-rootfs-{_cache_key(busybox)}.tar.gz"
    else:
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


if __name__ == "__main__":  # pragma: no cover - manual use
    print(build_busybox_rootfs())
