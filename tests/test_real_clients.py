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


def test_openstackclient_projects_users_roles_keypairs_quotas(server: RunningServer,
                                                              tmp_path: Path) -> None:
    tag = os.urandom(3).hex()
    project = json.loads(osc(server, "project", "create", "-f", "json", f"osc-proj-{tag}"))
    assert project["name"] == f"osc-proj-{tag}" and project["domain_id"] == "default"
    user = json.loads(osc(server, "user", "create", "-f", "json", "--project", project["id"],
                          "--password", "osc-pass-1", f"osc-user-{tag}"))
    osc(server, "role", "add", "--project", f"osc-proj-{tag}", "--user", f"osc-user-{tag}",
        "member")
    listed = json.loads(osc(server, "role", "assignment", "list", "--user", user["id"],
                            "-f", "json"))
    assert [a["Project"] for a in listed] == [project["id"]]
    osc(server, "quota", "set", "--instances", "3", "--cores", "6", project["id"])
    shown = json.loads(osc(server, "quota", "show", "-f", "json", project["id"]))
    quota = ({row["Resource"]: row["Limit"] for row in shown} if isinstance(shown, list)
             else shown)  # newer clients print rows, older a mapping
    assert quota["instances"] == 3 and quota["cores"] == 6
    # the new user signs in to the new project, and sees its own limits
    member = RunningServer(server.url, server.state_path, server.config_path,
                           server.log_path, server.process)
    member.env = {**server.env, "OS_USERNAME": f"osc-user-{tag}",
                  "OS_PASSWORD": "osc-pass-1", "OS_PROJECT_NAME": f"osc-proj-{tag}"}
    limits = json.loads(osc(member, "limits", "show", "--absolute", "-f", "json"))
    assert {"Name": "instances", "Value": 3} in limits
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    osc(member, "keypair", "create", "--public-key", str(key.with_suffix(".pub")), "osc-key")
    keys = json.loads(osc(member, "keypair", "list", "-f", "json"))
    assert [k["Name"] for k in keys] == ["osc-key"]
    assert json.loads(osc(server, "keypair", "list", "-f", "json")) == [] or all(
        k["Name"] != "osc-key" for k in json.loads(osc(server, "keypair", "list", "-f", "json")))
    osc(member, "keypair", "delete", "osc-key")
    osc(server, "user", "delete", user["id"])
    osc(server, "project", "delete", project["id"])
