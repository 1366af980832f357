"""Starting a guest's QEMU from its persisted launch.json, and reading its run state."""

from __future__ import annotations

import contextlib
import os
import subprocess

import trio

from novalite.virt.driver import PowerState, SpawnFailed

from . import process as proc
from .qmp import QmpError, qmp_execute

#: QMP ``query-status`` run states -> power state.
POWER_STATES: dict[str, PowerState] = {
    "running": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "suspended": PowerState.PAUSED,
    "inmigrate": PowerState.PAUSED,
    "postmigrate": PowerState.PAUSED,
    "finish-migrate": PowerState.PAUSED,
    "prelaunch": PowerState.PAUSED,
    "save-vm": PowerState.PAUSED,
    "restore-vm": PowerState.PAUSED,
    "io-error": PowerState.PAUSED,
    "debug": PowerState.PAUSED,
    "watchdog": PowerState.PAUSED,
    "colo": PowerState.PAUSED,
    "shutdown": PowerState.SHUTDOWN,
    "internal-error": PowerState.CRASHED,
    "guest-panicked": PowerState.CRASHED,
}

#: Seconds QEMU may take to initialize (the daemonizing parent returns after that).
START_TIMEOUT = 60.0
#: Seconds an incoming migration (resume from suspend.state) may take.
INCOMING_TIMEOUT = 300.0


async def _status(directory: str) -> str:
    path = os.path.join(directory, proc.QMP_SOCKET)
    return str((await qmp_execute(path, "query-status", timeout=5.0))["status"])


async def start_qemu(directory: str, uuid: str, incoming: str | None = None,
                     wait: bool = True) -> None:
    """Run QEMU (``-daemonize``, its own session) for the guest in ``directory``.

    Returns once QMP reports ``running`` (after the incoming migration when
    ``incoming`` is given; with ``wait`` False, as soon as QEMU has daemonized: a live
    migration's destination, ``incoming="defer"``). Raises SpawnFailed with QEMU's own
    message otherwise, and then leaves no QEMU process behind.
    """
    cfg = proc.LaunchConfig.load(directory)
    for name in (proc.QMP_SOCKET, proc.EVENTS_SOCKET, proc.PID_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
    argv = proc.build_argv(cfg, directory, incoming)
    try:
        with open(os.path.join(directory, proc.LAUNCH_ERR), "wb") as err, \
                trio.fail_after(START_TIMEOUT):
            result = await trio.run_process(
                argv, cwd=directory, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                check=False, start_new_session=True,
            )
    except (OSError, trio.TooSlowError) as exc:
        _kill(directory, uuid)
        raise SpawnFailed(f"cannot start {cfg.binary}: {exc}") from None
    if result.returncode != 0:
        message = (proc.read_log_tail(directory, proc.LAUNCH_ERR)
                   or proc.read_log_tail(directory, proc.QEMU_LOG))
        raise SpawnFailed(f"QEMU failed to start guest {uuid} "
                          f"(exit {result.returncode}): {message or 'no message'}")
    if not wait:
        return
    try:
        if incoming is not None:
            with trio.fail_after(INCOMING_TIMEOUT):
                while (status := await _status(directory)) == "inmigrate":
                    await trio.sleep(0.05)
            if status == "paused":
                await qmp_execute(os.path.join(directory, proc.QMP_SOCKET), "cont")
        status = await _status(directory)
        if status != "running":
            raise SpawnFailed(f"guest {uuid} is {status!r} instead of running after start: "
                              f"{proc.read_log_tail(directory, proc.QEMU_LOG)}")
    except (QmpError, trio.TooSlowError) as exc:
        _kill(directory, uuid)
        raise SpawnFailed(f"QEMU of guest {uuid} started but does not run: {exc}; "
                          f"{proc.read_log_tail(directory, proc.QEMU_LOG)}") from None
    except SpawnFailed:
        _kill(directory, uuid)
        raise


def _kill(directory: str, uuid: str) -> None:
    pid = proc.read_pid(directory)
    if pid is not None:
        proc.kill_qemu(pid, uuid)
