"""More than one machine: a control process and a compute process over RabbitMQ.

Two ``novalite serve`` processes on this machine (loopback), as on two machines: the
control process (``--role control``: API, conductor, scheduler, the database) and a
compute process (``--role compute``: the compute host ``remote-1`` on the fake driver,
no database), talking over the local RabbitMQ in a virtual host of this test run's own
(:func:`tests.test_rpc.rabbit_vhost`). Servers are booted through the public API.

Broker faults run against a RabbitMQ node of this module's own (``rabbitmq-server`` on
free ports, its files in a temporary directory, stopped by its PID at the end), never
the machine's broker: its connections are closed from the broker side
(``rabbitmqctl close_all_connections``) and its application restarted
(``stop_app``/``start_app``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from novalite import rpc
from novalite.context import RequestContext
from novalite.rpc import BusError, Dispatcher, RpcClient
from novalite.rpc.amqp import AmqpTransport
from novalite.testing.server import RunningServer, free_port, novalite_bin, start, wait_for
from tests.helpers import boot, wait_gone, wait_status
from tests.test_rpc import rabbit_vhost  # noqa: F401 - the fixture

DOWN_TIME = 3.0


def service_states(control: RunningServer) -> dict[str, str]:
    """``novalite service list`` on the control machine: host -> ``:-)`` or ``XXX``."""
    out = subprocess.run([novalite_bin(), "service", "list", "--config",
                          str(control.config_path)], capture_output=True, text=True,
                         check=True).stdout
    states = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if cols and cols[0] == "nova-compute":
            states[cols[1]] = ":-)" if ":-)" in cols else "XXX"
    return states


def start_compute(state: Path, url: str, control: RunningServer) -> RunningServer:
    return start(state, config={
        "DEFAULT": {"transport_url": url},
        "compute": {"hosts": ["remote-1"], "image_api_url": f"{control.url}/image",
                    "service_down_time": DOWN_TIME}},
        extra_env={"NOVALITE_ROLE": "compute"})


def test_a_compute_host_in_another_process(tmp_path: Path, rabbit_vhost: str  # noqa: F811
                                           ) -> None:
    url = rabbit_vhost
    control = start(tmp_path / "control", config={
        "DEFAULT": {"transport_url": url},
        "compute": {"service_down_time": DOWN_TIME}}, extra_env={"NOVALITE_ROLE": "control"})
    compute: RunningServer | None = None
    try:
        compute = start_compute(tmp_path / "compute", url, control)
        with control.client() as c:
            # Boot on the remote host, through the public API.
            sid = boot(c, "far-away")
            server: dict[str, Any] = wait_status(c, sid, "ACTIVE")
            assert server["OS-EXT-SRV-ATTR:host"] == "remote-1"
            assert wait_for(lambda: service_states(control).get("remote-1") == ":-)")
            # The control process runs no compute host of its own.
            assert set(service_states(control)) == {"remote-1"}
            r = c.post(f"/compute/v2.1/servers/{sid}/action",
                       json={"os-getConsoleOutput": {"length": 5}})
            assert r.status_code == 200 and "output" in r.json(), r.text
            assert c.post(f"/compute/v2.1/servers/{sid}/action",
                          json={"os-stop": None}).status_code == 202
            wait_status(c, sid, "SHUTOFF")
            assert c.post(f"/compute/v2.1/servers/{sid}/action",
                          json={"os-start": None}).status_code == 202
            wait_status(c, sid, "ACTIVE")

            # The compute process dies: its service is down after service_down_time.
            compute.stop(signal.SIGKILL)
            wait_for(lambda: service_states(control).get("remote-1") == "XXX",
                     timeout=DOWN_TIME + 10)
            # It comes back: up again, and its guest is adopted (still ACTIVE, served).
            compute = start_compute(tmp_path / "compute", url, control)
            wait_for(lambda: service_states(control).get("remote-1") == ":-)")
            server = wait_status(c, sid, "ACTIVE")
            assert server["OS-EXT-STS:power_state"] == 1
            r = c.post(f"/compute/v2.1/servers/{sid}/action",
                       json={"os-getConsoleOutput": {"length": 5}})
            assert r.status_code == 200, r.text
            assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
            wait_gone(c, sid)
        for srv in (control, compute):
            errors = [e for e in srv.log_events() if e.get("level") == "error"]
            assert not errors, errors
            # The broker's password never reaches a log.
            assert "guest:guest" not in srv.log()
    finally:
        if compute is not None:
            compute.stop()
        control.stop()


def test_a_compute_role_needs_a_transport_url(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="transport_url"):
        start(tmp_path, extra_env={"NOVALITE_ROLE": "compute"})


# -- broker faults, on a RabbitMQ node of this module's own ------------------------------------
@dataclass
class Broker:
    node: str
    url: str

    def ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, *args], check=True,
                       capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def own_broker() -> Iterator[Broker]:
    if shutil.which("rabbitmq-server") is None:
        pytest.skip("rabbitmq-server is not installed")
    base = tempfile.mkdtemp(prefix="novalite-rmq-")
    port, dist = free_port(), free_port()
    node = f"novalite-{uuid.uuid4().hex[:8]}@localhost"
    Path(base, "enabled_plugins").write_text("[].\n")
    # The machine's rabbitmq.conf names its own listener: this node gets a file of its own.
    Path(base, "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
    if os.geteuid() == 0:  # rabbitmq-server drops to the rabbitmq user when it exists
        try:
            user = pwd.getpwnam("rabbitmq")
            for path in (base, *(os.path.join(base, f) for f in os.listdir(base))):
                os.chown(path, user.pw_uid, user.pw_gid)
        except KeyError:
            pass
    pid_file = os.path.join(base, "pid")
    env = dict(os.environ, RABBITMQ_NODENAME=node, RABBITMQ_NODE_PORT=str(port),
               RABBITMQ_DIST_PORT=str(dist), RABBITMQ_CONFIG_FILE=f"{base}/rabbitmq.conf",
               RABBITMQ_MNESIA_BASE=f"{base}/mnesia", RABBITMQ_LOG_BASE=f"{base}/log",
               RABBITMQ_ENABLED_PLUGINS_FILE=f"{base}/enabled_plugins",
               RABBITMQ_PID_FILE=pid_file)
    log = open(os.path.join(base, "out.log"), "wb")  # noqa: SIM115 - the node's, for its life
    process = subprocess.Popen(["rabbitmq-server"], cwd=base, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    broker = Broker(node, f"rabbit://guest:guest@127.0.0.1:{port}/")
    try:
        deadline = time.monotonic() + 90
        while True:  # until the node is registered and its application started
            ready = subprocess.run(["rabbitmqctl", "-n", node, "await_startup"],
                                   capture_output=True, text=True, timeout=120)
            if ready.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"a RabbitMQ node of our own does not start here: "
                            f"{Path(base, 'out.log').read_text()[-500:]}")
            time.sleep(1)
        yield broker
    finally:
        try:
            pid = int(Path(pid_file).read_text().strip())
            os.kill(pid, signal.SIGTERM)  # the node itself (the script's child)
        except (OSError, ValueError):
            pass
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)  # its session: the script, su, the node
            process.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


class Counter:
    def __init__(self) -> None:
        self.casts = 0

    @rpc.method
    async def echo(self, ctx: RequestContext, value: int) -> int:
        return value

    @rpc.method
    async def count(self, ctx: RequestContext) -> None:
        self.casts += 1

    @rpc.method
    async def slow(self, ctx: RequestContext) -> None:
        await trio.sleep(30)


async def _until_answered(client: RpcClient, value: int, timeout: float = 30) -> float:
    """Seconds until a call goes through again."""
    start_time = time.monotonic()
    with trio.fail_after(timeout):
        while True:
            try:
                assert await client.call(CTX, "echo", {"value": value}, timeout=2) == value
                return time.monotonic() - start_time
            except BusError:
                await trio.sleep(0.2)


CTX = RequestContext.system("req-fault")


async def test_the_bus_rides_out_broker_faults(own_broker: Broker) -> None:
    """Connections closed by the broker, then the broker restarted: both sides reconnect,
    a call in flight fails with a clear error (not a hang until its timeout), and casts
    sent after the fault are each handled once."""
    server, caller = AmqpTransport(own_broker.url), AmqpTransport(own_broker.url)
    counter = Counter()
    client = RpcClient(caller, "conductor")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher("conductor", counter).serve, server)
            assert await client.call(CTX, "echo", {"value": 1}) == 1

            async def in_flight() -> None:
                with pytest.raises(BusError, match="connection to the broker was lost"):
                    await client.call(CTX, "slow", {}, timeout=25)
                in_flight_done.set()

            in_flight_done = trio.Event()
            nursery.start_soon(in_flight)
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(own_broker.ctl, "close_all_connections", "test")
            with trio.fail_after(10):
                await in_flight_done.wait()
            await _until_answered(client, 2)

            await trio.to_thread.run_sync(own_broker.ctl, "stop_app")
            await trio.to_thread.run_sync(own_broker.ctl, "start_app")
            await _until_answered(client, 3)
            for _ in range(20):
                await client.cast(CTX, "count", {})
            await _until_answered(client, 4)  # after the casts, in order
            assert counter.casts == 20
            assert caller.connections_made >= 3 and server.connections_made >= 3
            nursery.cancel_scope.cancel()
    finally:
        await server.aclose()
        await caller.aclose()


def test_boots_during_broker_faults_all_end(tmp_path: Path, own_broker: Broker) -> None:
    """A stream of boots while the broker drops every connection and then restarts:
    every accepted boot ends ACTIVE or ERROR (with a fault), none stays in BUILD."""
    conf: dict[str, dict[str, Any]] = {
        "DEFAULT": {"transport_url": own_broker.url},
        "compute": {"service_down_time": 30.0, "instance_build_timeout": 20.0,
                    "build_check_interval": 1.0}}
    control = start(tmp_path / "control", config=conf, extra_env={"NOVALITE_ROLE": "control"})
    compute: RunningServer | None = None
    try:
        compute_conf = {**conf, "compute": {**conf["compute"], "hosts": ["remote-1"],
                                            "image_api_url": f"{control.url}/image"}}
        compute = start(tmp_path / "compute", config=compute_conf,
                        extra_env={"NOVALITE_ROLE": "compute"})
        accepted: list[str] = []
        with control.client() as c:
            for i in range(12):
                if i == 4:
                    own_broker.ctl("close_all_connections", "fault test")
                if i == 8:
                    own_broker.ctl("stop_app")
                    own_broker.ctl("start_app")
                try:
                    accepted.append(boot(c, f"stream-{i}"))
                except AssertionError:
                    pass  # not accepted (the API answered an error): nothing to end
            assert len(accepted) >= 8

            def all_ended() -> dict[str, str] | None:
                states = {sid: c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
                          for sid in accepted}
                if any(s["status"] not in ("ACTIVE", "ERROR") for s in states.values()):
                    return None
                return {sid: s["status"] for sid, s in states.items()}

            ended = wait_for(all_ended, timeout=90, interval=1)
            for sid, status in ended.items():
                if status == "ERROR":
                    server = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
                    assert server.get("fault", {}).get("message"), server
            assert "ACTIVE" in ended.values()
    finally:
        if compute is not None:
            compute.stop()
        control.stop()


def test_operations_the_broker_lost_with_its_queues_are_settled(tmp_path: Path,
                                                                own_broker: Broker) -> None:
    """A stop and a build cast to a compute host that had not taken them when the broker
    restarted (its queues, and they, are gone): once the bus is back the conductor asks
    the host what it is still doing and settles the rest. The stopped server is ACTIVE
    again with no task (the user can ask again, and the stop then works); the build is
    ERROR with a fault saying why, without waiting for a build timeout (disabled here)."""
    conf: dict[str, dict[str, Any]] = {
        "DEFAULT": {"transport_url": own_broker.url},
        "compute": {"service_down_time": 30.0, "instance_build_timeout": 0,
                    "build_check_interval": 1.0}}
    control = start(tmp_path / "control", config=conf, extra_env={"NOVALITE_ROLE": "control"})
    compute: RunningServer | None = None
    try:
        compute = start(tmp_path / "compute", config={**conf, "compute": {
            **conf["compute"], "hosts": ["remote-1"], "image_api_url": f"{control.url}/image"}},
            extra_env={"NOVALITE_ROLE": "compute"})
        with control.client() as c:
            sid = boot(c, "kept")
            wait_status(c, sid, "ACTIVE")
            os.kill(compute.process.pid, signal.SIGSTOP)  # takes nothing off its queue
            try:
                r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None})
                assert r.status_code == 202, r.text
                lost = boot(c, "lost-build")
                wait_for(lambda: c.get(f"/compute/v2.1/servers/{lost}").json()["server"][
                    "OS-EXT-SRV-ATTR:host"] == "remote-1", timeout=15)
                own_broker.ctl("stop_app")
                own_broker.ctl("start_app")
            finally:
                os.kill(compute.process.pid, signal.SIGCONT)

            def settled() -> dict[str, Any] | None:
                kept = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
                built = c.get(f"/compute/v2.1/servers/{lost}").json()["server"]
                if kept["OS-EXT-STS:task_state"] is None and built["status"] == "ERROR":
                    return {"kept": kept, "built": built}
                return None

            done = wait_for(settled, timeout=90, interval=0.5)
            assert done["kept"]["status"] == "ACTIVE"
            assert "message broker was lost" in done["built"]["fault"]["message"]
            r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None})
            assert r.status_code == 202, r.text
            wait_status(c, sid, "SHUTOFF", timeout=30)
            for server in (sid, lost):
                assert c.delete(f"/compute/v2.1/servers/{server}").status_code == 204
                wait_gone(c, server)
    finally:
        if compute is not None:
            compute.stop()
        control.stop()
