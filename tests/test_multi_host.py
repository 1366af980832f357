"""More than one machine: a control process and a compute process over RabbitMQ.

Two ``novalite serve`` processes on this machine (loopback), as on two machines: the
control process (``--role control``: API, conductor, scheduler, the database) and a
compute process (``--role compute``: the compute host ``remote-1`` on the fake driver,
no database), talking over the local RabbitMQ in a virtual host of this test run's own
(:func:`tests.test_rpc.rabbit_vhost`). Servers are booted through the public API.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from novalite.testing.server import RunningServer, novalite_bin, start, wait_for
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
