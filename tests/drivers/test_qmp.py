"""The trio QMP client against a real QEMU, and against a socket that never answers."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import trio
from novalite_drivers.qemu.qmp import QmpClient, QmpCommandError, QmpError, QmpTimeout, qmp_execute


@pytest.fixture
def qemu_monitor(tmp_path, need_qemu):
    """A paused (-S) QEMU with a QMP socket at a path longer than sockaddr_un allows."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    sock = str(deep / "qmp.sock")
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-S", "-M", "pc", "-m", "16", "-nodefaults", "-display", "none",
         "-chardev", "socket,id=m,path=qmp.sock,server=on,wait=off", "-mon", "chardev=m,mode=control"],
        cwd=str(deep), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        yield sock
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()


async def test_execute_and_events_with_a_long_socket_path(qemu_monitor):
    assert len(qemu_monitor) > 108
    async with await QmpClient.connect(qemu_monitor, timeout=5) as qmp:
        assert qmp.greeting["QMP"]["version"]["qemu"]["major"] >= 7
        assert (await qmp.execute("query-status"))["status"] == "prelaunch"
        await qmp.execute("cont")
        event = await qmp.next_event()
        assert event["event"] == "RESUME"
        await qmp.execute("stop")
        with trio.fail_after(5):
            assert (await qmp.next_event())["event"] == "STOP"
        with pytest.raises(QmpCommandError) as err:
            await qmp.execute("no-such-command")
        assert err.value.error_class == "CommandNotFound"
        await qmp.execute("quit")
        with pytest.raises(QmpError, match="closed|broken"):
            with trio.fail_after(5):
                await qmp.next_event()
                await qmp.next_event()


async def test_one_shot_execute_reconnects(qemu_monitor):
    for _ in range(3):
        assert (await qmp_execute(qemu_monitor, "query-status"))["status"] == "prelaunch"


async def test_a_silent_socket_times_out_instead_of_hanging(tmp_path):
    path = str(tmp_path / "silent.sock")
    listener = trio.socket.socket(trio.socket.AF_UNIX)
    await listener.bind(path)
    listener.listen(1)
    try:
        with trio.fail_after(5):
            with pytest.raises(QmpTimeout, match="no greeting"):
                await QmpClient.connect(path, timeout=0.3)
    finally:
        listener.close()


async def test_missing_socket_is_a_clear_error(tmp_path):
    with pytest.raises(QmpError, match="cannot connect"):
        await QmpClient.connect(str(tmp_path / "absent.sock"), timeout=1)
