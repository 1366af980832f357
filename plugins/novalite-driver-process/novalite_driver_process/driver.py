"""The process driver: every instance is a supervised host process.

An instance runs the shell command its image names in the Glance property
``process_command`` (run with ``/bin/sh -c``), in a directory of its own, in its
own session, so it outlives ``novalite serve`` and ignores the terminal's
Ctrl-C. The image file itself is copied into that directory as ``image`` (the
command finds it as ``$NOVALITE_IMAGE``), so an image can be the script to run::

    openstack image create --file hello.sh --property process_command='sh "$NOVALITE_IMAGE"' \\
        --property hypervisor_type=process hello

What each action means here:

* stop = SIGTERM to the process group, SIGKILL after the timeout; start = run the
  command again in the same directory (its files survive, like a disk);
* pause = SIGSTOP, unpause = SIGCONT; reboot = stop then start;
* console = the tail of the process's stdout and stderr (``console.log``);
* suspend and snapshot are not supported.

State on disk, per guest, under ``<state_path>/guests/<uuid>/``: ``guest.json``
(what was spawned), ``pid`` ("<pid> <start time>", so a recycled pid is never
mistaken for the guest), ``console.log``, and ``work/`` (the command's cwd).
A restarted service adopts guests by reading the pidfiles back.

The driver's ``run`` task (contract 1.1) watches the guests every
``poll_interval`` seconds, reaps the ones that exited, records why (exit status
or signal) and reports the change at once with a lifecycle event; ``get_info``
gives that reason.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any

import psutil
import trio

from novalite.virt import (
    Driver,
    DriverContext,
    DriverError,
    HostCheck,
    HostResources,
    ImageInfo,
    InstanceInfo,
    InstanceNotFound,
    InstanceSpec,
    LifecycleEvent,
    NetworkInfo,
    PowerState,
    SpawnFailed,
)

#: The Glance property holding the command to run.
COMMAND_PROPERTY = "process_command"
#: Console output returned at most (the tail of console.log).
CONSOLE_TAIL = 64 * 1024


@dataclass
class Guest:
    """Where one guest's files are."""

    root: str

    @property
    def meta_path(self) -> str:
        return os.path.join(self.root, "guest.json")

    @property
    def pid_path(self) -> str:
        return os.path.join(self.root, "pid")

    @property
    def console_path(self) -> str:
        return os.path.join(self.root, "console.log")

    @property
    def work(self) -> str:
        return os.path.join(self.root, "work")

    def meta(self) -> dict[str, Any]:
        with open(self.meta_path) as f:
            data: dict[str, Any] = json.load(f)
        return data

    def write_meta(self, meta: dict[str, Any]) -> None:
        tmp = self.meta_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, self.meta_path)


class ProcessDriver(Driver):
    """Instances are host processes, each in its own session; see the module docstring."""

    name = "process"
    contract_version = "1.1"
    hypervisor_type = "process"
    capabilities = {
        "supports_reboot": True,
        "supports_power_off": True,
        "supports_pause": True,
        "supports_suspend": False,
        "supports_console_output": True,
        "supports_snapshot": False,
    }
    option_defaults = {
        # Seconds between two looks at the guests in the background task.
        "poll_interval": 1.0,
        # Seconds a SOFT reboot waits for the process to exit on SIGTERM.
        "soft_reboot_timeout": 10.0,
        # The shell that runs process_command.
        "shell": "/bin/sh",
    }

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        opts = {**self.option_defaults, **dict(context.options)}
        self.poll_interval = float(opts["poll_interval"])
        self.soft_reboot_timeout = float(opts["soft_reboot_timeout"])
        self.shell = str(opts["shell"])
        self.guests_dir = os.path.abspath(os.path.join(context.state_path, "guests"))
        self._locks: dict[str, trio.Lock] = {}
        self._last_state: dict[str, PowerState] = {}

    # -- helpers -----------------------------------------------------------------
    def _guest(self, uuid: str) -> Guest:
        guest = Guest(os.path.join(self.guests_dir, uuid))
        if "/" in uuid or uuid in ("", ".", "..") or not os.path.isfile(guest.meta_path):
            raise InstanceNotFound(f"process guest {uuid} not found in {self.guests_dir}")
        return guest

    def _lock(self, uuid: str) -> trio.Lock:
        return self._locks.setdefault(uuid, trio.Lock())

    @staticmethod
    def _read_pid(guest: Guest) -> tuple[int, float] | None:
        try:
            with open(guest.pid_path) as f:
                pid, started = f.read().split()
            return int(pid), float(started)
        except (OSError, ValueError):
            return None

    def _process(self, guest: Guest) -> psutil.Process | None:
        """The guest's live process (never a recycled pid), reaping it if it exited."""
        recorded = self._read_pid(guest)
        if recorded is None:
            return None
        pid, started = recorded
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) > 0.05:
                return None  # the pid was reused by another process
            if proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except psutil.NoSuchProcess:
            return None
        self._reap(guest, pid)
        return None

    def _reap(self, guest: Guest, pid: int) -> None:
        """Collect the exit status of a guest started by this process, and record it."""
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (adopted): its parent reaps it
            return
        if waited == 0:
            return
        if os.WIFSIGNALED(status):
            why = f"process killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            why = f"process exited with status {os.WEXITSTATUS(status)}"
        meta = guest.meta()
        if not meta.get("stopped_by_request"):
            meta["reason"] = why
            guest.write_meta(meta)

    def _power(self, guest: Guest) -> tuple[PowerState, str | None, int | None]:
        proc = self._process(guest)
        meta = guest.meta()
        if proc is None:
            reason = meta.get("reason") or "process is not running"
            return PowerState.SHUTDOWN, reason, None
        try:
            stopped = _group_stopped(proc)
        except psutil.NoSuchProcess:
            return PowerState.SHUTDOWN, meta.get("reason"), None
        if stopped:
            return PowerState.PAUSED, "process stopped with SIGSTOP", proc.pid
        return PowerState.RUNNING, None, proc.pid

    def _start(self, guest: Guest) -> None:
        """Run the guest's command in its own session, stdout/stderr to its console log."""
        meta = guest.meta()
        os.makedirs(guest.work, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": guest.work,
            "LANG": "C.UTF-8",
            "NOVALITE_INSTANCE_UUID": meta["uuid"],
            "NOVALITE_INSTANCE_NAME": meta["name"],
            "NOVALITE_HOSTNAME": meta["hostname"],
            "NOVALITE_IMAGE": os.path.join(guest.root, "image"),
            "NOVALITE_ADDRESSES": " ".join(meta.get("addresses", [])),
        }
        if meta.get("user_data"):
            env["NOVALITE_USER_DATA"] = meta["user_data"]
        with open(guest.console_path, "ab") as log:
            log.write(f"--- novalite: starting {meta['command']!r} at "
                      f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode())
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            pid = os.posix_spawn(self.shell, [self.shell, "-c", meta["command"]], env,
                                 file_actions=[
                                     (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                     (os.POSIX_SPAWN_OPEN, 1, guest.console_path, flags, 0o644),
                                     (os.POSIX_SPAWN_DUP2, 1, 2),
                                 ],
                                 setsid=True)
        except OSError as exc:
            raise DriverError(f"cannot start {self.shell}: {exc}") from exc
        # cwd: posix_spawn has no chdir action before Python 3.13; the shell changes it.
        started = psutil.Process(pid).create_time()
        with open(guest.pid_path + ".tmp", "w") as f:
            f.write(f"{pid} {started}\n")
        os.replace(guest.pid_path + ".tmp", guest.pid_path)
        meta.pop("reason", None)
        meta["stopped_by_request"] = False
        guest.write_meta(meta)

    async def _stop(self, guest: Guest, timeout: float, reason: str) -> None:
        """SIGTERM the process group, SIGKILL after ``timeout``; wait until it is gone."""
        meta = guest.meta()
        meta["stopped_by_request"] = True
        meta["reason"] = reason
        guest.write_meta(meta)
        proc = self._process(guest)
        if proc is None:
            return
        pgid = proc.pid  # the session leader: its pid is the group's id
        _signal_group(pgid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        _signal_group(pgid, signal.SIGTERM)
        with trio.move_on_after(timeout):
            while self._process(guest) is not None:
                await trio.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)  # the leader's children too, every time
        with trio.fail_after(10):
            while self._process(guest) is not None:
                await trio.sleep(0.05)

    # -- host ----------------------------------------------------------------------
    @classmethod
    def check_host(cls) -> HostCheck:
        if not hasattr(os, "posix_spawn") or not os.path.isdir("/proc"):
            return HostCheck(False, "needs a Linux host (posix_spawn and /proc)")
        shell = str(cls.option_defaults["shell"])
        if not os.access(shell, os.X_OK):
            return HostCheck(False, f"{shell} is not executable")
        return HostCheck(True)

    async def init_host(self) -> None:
        """Create the state directory; guests found there are adopted as they are."""
        os.makedirs(self.guests_dir, exist_ok=True)
        for uuid in await self.list_instances():
            self._last_state[uuid] = self._power(self._guest(uuid))[0]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Every ``poll_interval`` s: reap exited guests and report state changes."""
        task_status.started()
        while True:
            await trio.sleep(self.poll_interval)
            for uuid in await self.list_instances():
                if self._lock(uuid).locked():
                    continue  # an action is changing it; it will report itself
                try:
                    state, reason, _pid = self._power(self._guest(uuid))
                except (InstanceNotFound, OSError, ValueError):
                    continue  # destroyed meanwhile
                if self._last_state.get(uuid) not in (None, state):
                    self.context.emit_event(LifecycleEvent(uuid, state, reason or ""))
                self._last_state[uuid] = state

    async def get_available_resource(self) -> HostResources:
        disk = shutil.disk_usage(self.context.state_path if os.path.isdir(
            self.context.state_path) else "/")
        release = platform.release().split("-", 1)[0].split(".")
        major, minor, patch = ([int(x) for x in release if x.isdigit()] + [0, 0, 0])[:3]
        return HostResources(
            vcpus=os.cpu_count() or 1,
            memory_mb=psutil.virtual_memory().total // (1024 * 1024),
            local_gb=disk.total // (1024 ** 3),
            hypervisor_type="process",
            hypervisor_version=major * 1_000_000 + minor * 1000 + patch,
            hypervisor_hostname=self.context.host,
            cpu_info={"arch": platform.machine(), "kernel": platform.release()},
            supported_instances=((platform.machine(), "process", "exe"),),
        )

    # -- guests --------------------------------------------------------------------
    async def list_instances(self) -> list[str]:
        if not os.path.isdir(self.guests_dir):
            return []
        return sorted(u for u in os.listdir(self.guests_dir)
                      if os.path.isfile(os.path.join(self.guests_dir, u, "guest.json")))

    async def spawn(self, instance: InstanceSpec, image: ImageInfo,
                    network: list[NetworkInfo]) -> None:
        command = str(image.properties.get(COMMAND_PROPERTY) or "").strip()
        if not command:
            raise SpawnFailed(f"image {image.name!r} has no {COMMAND_PROPERTY} property: "
                              "nothing to run")
        root = os.path.join(self.guests_dir, instance.uuid)
        if os.path.exists(root):
            raise SpawnFailed(f"a guest {instance.uuid} already exists")
        async with self._lock(instance.uuid):
            try:
                os.makedirs(os.path.join(root, "work"))
                shutil.copyfile(image.path, os.path.join(root, "image"))
                guest = Guest(root)
                guest.write_meta({
                    "uuid": instance.uuid, "name": instance.name,
                    "hostname": instance.hostname, "vcpus": instance.vcpus,
                    "memory_mb": instance.memory_mb, "image": image.id,
                    "command": f"cd \"$HOME\" && {command}",
                    "addresses": [n.address for n in network],
                    "user_data": instance.user_data,
                })
                self._start(guest)
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    await self._remove(root)
                if isinstance(exc, OSError | DriverError):
                    raise SpawnFailed(f"cannot start the process: {exc}") from None
                raise
        self._last_state[instance.uuid] = PowerState.RUNNING

    async def _remove(self, root: str) -> None:
        if os.path.isfile(os.path.join(root, "guest.json")):
            await self._stop(Guest(root), 0, "destroyed")
        await trio.to_thread.run_sync(shutil.rmtree, root, True)

    async def destroy(self, uuid: str) -> None:
        try:
            guest = self._guest(uuid)
        except InstanceNotFound:
            return
        async with self._lock(uuid):
            await self._remove(guest.root)
        self._locks.pop(uuid, None)
        self._last_state.pop(uuid, None)

    async def get_info(self, uuid: str) -> InstanceInfo:
        guest = self._guest(uuid)
        state, reason, pid = self._power(guest)
        meta = guest.meta()
        return InstanceInfo(state=state, handle=f"pid:{pid}" if pid else "",
                            vcpus=int(meta["vcpus"]), memory_mb=int(meta["memory_mb"]),
                            reason=reason)

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        guest = self._guest(uuid)
        async with self._lock(uuid):
            await self._stop(guest, timeout, "stopped by request (SIGTERM)")
            self._last_state[uuid] = PowerState.SHUTDOWN

    async def power_on(self, uuid: str) -> None:
        guest = self._guest(uuid)
        async with self._lock(uuid):
            proc = self._process(guest)
            if proc is not None:
                _signal_group(proc.pid, signal.SIGCONT)
                return
            self._start(guest)
            self._last_state[uuid] = PowerState.RUNNING

    async def reboot(self, uuid: str, reboot_type: str) -> None:
        guest = self._guest(uuid)
        timeout = self.soft_reboot_timeout if reboot_type.upper() == "SOFT" else 0.0
        async with self._lock(uuid):
            await self._stop(guest, timeout, "rebooting")
            self._start(guest)
            self._last_state[uuid] = PowerState.RUNNING

    async def pause(self, uuid: str) -> None:
        await self._signal_running(uuid, signal.SIGSTOP, psutil.STATUS_STOPPED)
        self._last_state[uuid] = PowerState.PAUSED

    async def unpause(self, uuid: str) -> None:
        await self._signal_running(uuid, signal.SIGCONT, None)
        self._last_state[uuid] = PowerState.RUNNING

    async def _signal_running(self, uuid: str, sig: signal.Signals, want: str | None) -> None:
        guest = self._guest(uuid)
        async with self._lock(uuid):
            proc = self._process(guest)
            if proc is None:
                raise DriverError(f"process guest {uuid} is not running")
            _signal_group(proc.pid, sig)
            with trio.fail_after(10):  # the kernel applies the signal asynchronously
                while _group_stopped(proc) != (want is not None):
                    await trio.sleep(0.01)

    async def get_console_output(self, uuid: str) -> str:
        guest = self._guest(uuid)
        try:
            with open(guest.console_path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - CONSOLE_TAIL))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


#: States of a process that is not executing: stopped, or waiting on a stopped child
#: (a shell that vforked waits in uninterruptible sleep until its child execs).
_IDLE = {psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP, psutil.STATUS_ZOMBIE,
         psutil.STATUS_DISK_SLEEP, psutil.STATUS_DEAD}


def _group_stopped(leader: psutil.Process) -> bool:
    """True when SIGSTOP holds the guest: some process of its group is stopped, none runs."""
    states = {leader.status()}
    for child in leader.children(recursive=True):
        try:
            if os.getpgid(child.pid) == leader.pid:
                states.add(child.status())
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    return psutil.STATUS_STOPPED in states and states <= _IDLE


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
