"""The real OpenStack clients, unchanged, against a real `novalite serve`.

python-openstackclient, python-novaclient and openstacksdk are installed by
``./dev test`` in their own venv (``.venv-clients``) and driven as subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from novalite.testing.server import RunningServer

CLIENTS = Path(__file__).resolve().parent.parent / ".venv-clients" / "bin"
pytestmark = pytest.mark.skipif(
    not (CLIENTS / "openstack").exists(),
    reason="the real OpenStack clients are not installed (./dev test installs them "
           "into .venv-clients)")


def run(server: RunningServer, *args: str, timeout: float = 120) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(server.env)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


def osc(server: RunningServer, *args: str) -> str:
    return run(server, str(CLIENTS / "openstack"), *args)


def test_openstackclient_server_lifecycle(server: RunningServer) -> None:
    created = json.loads(osc(server, "server", "create", "--flavor", "m1.tiny", "--image",
                             "demo", "--wait", "-f", "json", "osc-vm1"))
    assert created["status"] == "ACTIVE"
    listing = json.loads(osc(server, "server", "list", "-f", "json"))
    row = [r for r in listing if r["Name"] == "osc-vm1"][0]
    assert row["Status"] == "ACTIVE" and row["Image"] == "demo" and row["Flavor"] == "m1.tiny"
    shown = json.loads(osc(server, "server", "show", "-f", "json", "osc-vm1"))
    assert shown["id"] == created["id"]
    osc(server, "server", "reboot", "osc-vm1")
    osc(server, "server", "stop", "osc-vm1")
    osc(server, "server", "start", "osc-vm1")
    log = osc(server, "console", "log", "show", "osc-vm1")
    assert "osc-vm1" in log
    flavors = json.loads(osc(server, "flavor", "list", "-f", "json"))
    assert "m1.tiny" in {f["Name"] for f in flavors}
    images = json.loads(osc(server, "image", "list", "-f", "json"))
    assert "demo" in {i["Name"] for i in images}
    services = json.loads(osc(server, "compute", "service", "list", "-f", "json"))
    assert {s["Host"] for s in services} >= {"compute-a", "compute-b"}
    hypervisors = json.loads(osc(server, "hypervisor", "list", "-f", "json"))
    assert len(hypervisors) >= 2
    osc(server, "server", "create", "--flavor", "m1.tiny", "--image", "demo", "--nic", "none",
        "osc-vm2")
    osc(server, "server", "delete", "--wait", "osc-vm1", "osc-vm2")
    names = {r["Name"] for r in json.loads(osc(server, "server", "list", "-f", "json"))}
    assert not names & {"osc-vm1", "osc-vm2"}


def test_novaclient_boot_list_show_delete(server: RunningServer) -> None:
    nova = str(CLIENTS / "nova")
    out = run(server, nova, "boot", "--flavor", "m1.tiny", "--image", "demo", "--poll",
              "nc-vm1")
    assert "100% complete" in out or "ACTIVE" in out or "Finished" in out
    assert "nc-vm1" in run(server, nova, "list")
    shown = run(server, nova, "show", "nc-vm1")
    assert "ACTIVE" in shown and "m1.tiny" in shown
    assert "nova-compute" in run(server, nova, "service-list")
    run(server, nova, "delete", "nc-vm1")


SDK_SCRIPT = """
import openstack
conn = openstack.connect()
image = conn.image.find_image("demo")
flavor = conn.compute.find_flavor("m1.tiny")
server = conn.compute.create_server(name="sdk-vm1", image_id=image.id, flavor_id=flavor.id)
server = conn.compute.wait_for_server(server, wait=60, interval=0.5)
assert server.status == "ACTIVE", server.status
assert "sdk-vm1" in [s.name for s in conn.compute.servers()]
conn.compute.stop_server(server)
conn.compute.wait_for_server(server, status="SHUTOFF", wait=60, interval=0.5)
conn.compute.delete_server(server)
conn.compute.wait_for_delete(server, wait=60, interval=0.5)
print("sdk ok")
"""


def test_openstacksdk_create_wait_delete(server: RunningServer) -> None:
    out = run(server, str(CLIENTS / "python"), "-c", SDK_SCRIPT)
    assert "sdk ok" in out
