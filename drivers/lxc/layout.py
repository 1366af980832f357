"""The on-disk layout of one container in the driver's LXC path, and its cgroups.

``<lxc_path>/<uuid>/``:

``config``
    LXC configuration (see :mod:`.config`); its presence makes it a container.
``novalite.json``
    What the driver remembers: name, flavor sizes, image id, ``lxc.rootfs.path``.
``upper/``, ``work/`` (overlay) or ``rootfs/`` (copy)
    The container's writable root filesystem.
``console.log`` (+ ``console.log.1`` after rotation), ``lxc.log``
    The guest's console and LXC's own warnings and errors.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
META = "novalite.json"
CONSOLE_TAIL = 256 * 1024
#: "lxc-start NAME 2026... ERROR    start - ../src/lxc/start.c:start:2197 - "
_LOG_PREFIX = re.compile(r"^.*? ERROR\s+\S+ - (?:\S+:\d+ - )?")
#: LXC log lines that only say "it failed, see above".
_LOG_NOISE = (
    "lxc_start.c:main",
    "wait_on_daemonized_start",
    "sync_wait",
    "__lxc_start",
    "Failed to spawn container",
)


def valid_name(name: str) -> bool:
    """True when ``name`` is safe as a container (and directory) name."""
    return bool(_NAME.match(name))


class ContainerDir:
    """Paths and small files of one container directory (blocking I/O: tiny files only)."""

    def __init__(self, lxc_path: str, name: str) -> None:
        self.name = name
        self.path = os.path.join(lxc_path, name)
        self.config = os.path.join(self.path, "config")
        self.meta_file = os.path.join(self.path, META)
        self.console_log = os.path.join(self.path, "console.log")
        self.lxc_log = os.path.join(self.path, "lxc.log")

    def exists(self) -> bool:
        return os.path.isfile(self.config)

    def write(self, config_text: str, meta: dict[str, Any]) -> None:
        with open(self.meta_file, "w") as f:
            json.dump(meta, f)
        with open(self.config, "w") as f:
            f.write(config_text)

    def meta(self) -> dict[str, Any]:
        try:
            with open(self.meta_file) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def log_errors(self, lines: int = 3) -> str:
        """LXC's own reason for a failure: the first ERROR lines of its log for this
        container, without source locations and generic "see the log" hints."""
        try:
            with open(self.lxc_log, errors="replace") as f:
                text = f.read()[-16384:]
        except OSError:
            return ""
        reasons: list[str] = []
        for line in text.splitlines():
            if " ERROR " not in line or any(noise in line for noise in _LOG_NOISE):
                continue
            reason = _LOG_PREFIX.sub("", line).strip()
            if reason not in reasons:
                reasons.append(reason)
        return "; ".join(reasons[:lines])

    def console(self) -> str:
        """The console log's tail, across one rotation."""
        parts = []
        for path in (self.console_log + ".1", self.console_log):
            try:
                with open(path, "rb") as f:
                    parts.append(f.read())
            except FileNotFoundError:
                pass
        text = b"".join(parts)[-CONSOLE_TAIL:].decode(errors="replace")
        return text.replace("\r\n", "\n")


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy."""
    mounts = []
    try:
        with open(mountinfo) as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                if post.split()[:1] in (["cgroup"], ["cgroup2"]):
                    mounts.append(pre.split()[4])
    except OSError:
        pass
    return mounts


def prune_cgroups(name: str) -> None:
    """Remove the empty ``lxc.monitor.<name>``/``lxc.payload.<name>`` cgroups LXC may
    leave after a failed start. rmdir only removes empty cgroups, so a live
    container's are never touched."""
    for mount in cgroup_mounts():
        for prefix in ("lxc.monitor.", "lxc.payload."):
            top = os.path.join(mount, prefix + name)
            if not os.path.isdir(top):
                continue
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
