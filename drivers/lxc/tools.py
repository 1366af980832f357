"""Thin async wrappers around LXC's ``lxc-*`` command-line tools.

Every call names novalite's private LXC path (``-P``), so the project's
containers never mix with the system's, and runs through ``trio.run_process``
so the event loop never blocks.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import trio

#: The tools the driver calls; ``check_host`` reports the first one missing.
REQUIRED_TOOLS = (
    "lxc-start",
    "lxc-stop",
    "lxc-info",
    "lxc-wait",
    "lxc-freeze",
    "lxc-unfreeze",
    "lxc-destroy",
    "tar",
    "mount",
    "umount",
)


class LxcCommandError(Exception):
    """An ``lxc-*`` (or helper) command exited non-zero; the message holds its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr.strip()
        detail = self.stderr.splitlines()[-1] if self.stderr else "no output"
        super().__init__(f"{' '.join(argv[:1])} exited {returncode}: {detail}")


def missing_tools() -> list[str]:
    """The names in :data:`REQUIRED_TOOLS` that are not on ``PATH``."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


async def run(argv: list[str], *, check: bool = True, timeout: float = 120.0) -> tuple[int, str]:
    """Run ``argv``; return ``(returncode, stdout)``. Raise :class:`LxcCommandError` if
    ``check`` and it fails; ``trio.TooSlowError`` after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        try:
            proc = await trio.run_process(
                argv,
                check=False,
                capture_stdout=True,
                capture_stderr=True,
                stdin=b"",
                env={**os.environ, "LC_ALL": "C"},
            )
        except FileNotFoundError as exc:
            raise LxcCommandError(argv, 127, f"{argv[0]} not found on PATH") from exc
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        raise LxcCommandError(argv, proc.returncode, stderr or stdout)
    return proc.returncode, stdout


@dataclass(frozen=True)
class ContainerStatus:
    """What ``lxc-info`` says about one container: its LXC state and init's host pid."""

    state: str
    pid: int | None


class Lxc:
    """The ``lxc-*`` tools bound to one LXC path (``-P``)."""

    def __init__(self, lxc_path: str) -> None:
        self.path = lxc_path

    def _argv(self, tool: str, name: str, *extra: str) -> list[str]:
        return [tool, "-P", self.path, "-n", name, *extra]

    async def start(self, name: str, log_file: str, timeout: float = 120.0) -> None:
        """``lxc-start -d``: the monitor daemonizes, so the container outlives us.

        Returns once the container is RUNNING: ``lxc-start -d`` waits for the
        monitor to report RUNNING and exits non-zero for any other state, so no
        ``lxc-wait`` is needed after it. ``trio.TooSlowError`` after ``timeout`` s."""
        await run(
            self._argv("lxc-start", name, "-d", "-o", log_file, "-l", "WARN"), timeout=timeout
        )

    async def stop(self, name: str, timeout: float) -> None:
        """Ask init to halt (``lxc.signal.halt``); kill after ``timeout`` seconds."""
        secs = str(max(1, int(timeout)))
        await run(self._argv("lxc-stop", name, "-t", secs), timeout=timeout + 30)

    async def kill(self, name: str) -> None:
        """``lxc-stop -k``: SIGKILL init at once."""
        await run(self._argv("lxc-stop", name, "-k"), timeout=60)

    async def reboot(self, name: str, timeout: float) -> None:
        """``lxc-stop -r``: send init ``lxc.signal.reboot`` and wait for the restart."""
        await run(self._argv("lxc-stop", name, "-r"), timeout=timeout)

    async def wait(self, name: str, states: str, timeout: float) -> bool:
        """``lxc-wait -s STATE[|STATE]``; True when reached within ``timeout``."""
        rc, _ = await run(
            self._argv("lxc-wait", name, "-s", states, "-t", str(max(1, int(timeout)))),
            check=False,
            timeout=timeout + 10,
        )
        return rc == 0

    async def freeze(self, name: str) -> None:
        await run(self._argv("lxc-freeze", name))

    async def unfreeze(self, name: str) -> None:
        await run(self._argv("lxc-unfreeze", name))

    async def destroy(self, name: str) -> None:
        """``lxc-destroy``: remove the container's directory and its rootfs."""
        await run(self._argv("lxc-destroy", name))

    async def status(self, name: str) -> ContainerStatus | None:
        """State and pid per ``lxc-info``, or None when LXC knows no such container."""
        rc, out = await run(self._argv("lxc-info", name, "-s", "-p", "-H"), check=False)
        if rc != 0:
            return None
        state, pid = "UNKNOWN", None
        for line in out.splitlines():
            key, _, value = line.partition(":")
            value = value.strip()
            if key.strip() == "State":
                state = value
            elif key.strip() == "PID" and value.isdigit():
                pid = int(value)
        return ContainerStatus(state, pid)


async def lxc_version() -> str:
    """LXC's version string (``lxc-start --version``), e.g. ``"5.0.2"``."""
    _, out = await run(["lxc-start", "--version"], timeout=10)
    return out.strip()
