"""Ansible's ``openstack.cloud`` collection against novalite, unchanged.

``./dev test`` installs ansible-core and the collection (unpacked from the pinned
``ansible`` package) into ``.venv-ansible``, beside the openstacksdk the modules use
(4.14: the collection's 2.5.0 reads ``openstack.version``, gone from 4.15).
A playbook makes a key pair, a security group with a rule, and a server on the
default network in that group; run a second time it changes nothing (Ansible's
idempotence: every module finds what it made, the server's security groups included,
where a missing ``GET /servers/{id}/os-security-groups`` once failed the second run).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from novalite.testing.server import RunningServer

VENV = Path(__file__).resolve().parent.parent / ".venv-ansible"
pytestmark = pytest.mark.skipif(
    not (VENV / "bin" / "ansible-playbook").exists()
    or not (VENV / "share" / "ansible_collections" / "openstack" / "cloud").is_dir(),
    reason="Ansible and its openstack.cloud collection are not installed (./dev test "
           "installs them into .venv-ansible)")

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  tasks:
    - openstack.cloud.keypair:
        name: ans-key
        public_key: "{public_key}"
    - openstack.cloud.security_group:
        name: ans-web
        description: web servers
    - openstack.cloud.security_group_rule:
        security_group: ans-web
        protocol: tcp
        port_range_min: 80
        port_range_max: 80
        remote_ip_prefix: 0.0.0.0/0
    - openstack.cloud.server:
        name: ans-vm
        image: demo
        flavor: m1.tiny
        key_name: ans-key
        network: private
        security_groups: [ans-web]
        auto_ip: false
        metadata:
          role: web
        wait: true
        timeout: 120
"""

PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv9LpWCK7bPuDkJ0bJpsEq1vZiOJ8iX5C9ux6K"
              "rwIq5 ansible@novalite")


def play(server: RunningServer, path: Path) -> dict[str, int]:
    """Run the playbook; its recap's counts for localhost (``ok``, ``changed``, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ANSIBLE_"))}
    env.update(server.env, ANSIBLE_COLLECTIONS_PATH=str(VENV / "share"),
               ANSIBLE_LOCAL_TEMP=str(path.parent / "ansible-tmp"),
               ANSIBLE_HOME=str(path.parent / "ansible-home"),
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_LOCALHOST_WARNING="false", PATH=f"{VENV / 'bin'}:{env['PATH']}")
    proc = subprocess.run([str(VENV / "bin" / "ansible-playbook"), str(path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.search(r"^localhost\s*:\s*(.*)$", proc.stdout, re.M)
    assert recap, proc.stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def test_a_playbook_makes_a_server_and_its_second_run_changes_nothing(
        server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "site.yml"
    path.write_text(PLAYBOOK.format(python=VENV / "bin" / "python", public_key=PUBLIC_KEY))
    first = play(server, path)
    assert first["failed"] == 0 and first["changed"] == 4, first
    with server.client() as c:
        (vm,) = c.get("/compute/v2.1/servers/detail", params={"name": "^ans-vm$"}
                      ).json()["servers"]
        try:
            assert vm["status"] == "ACTIVE" and vm["key_name"] == "ans-key"
            assert vm["metadata"] == {"role": "web"}
            assert [g["name"] for g in vm["security_groups"]] == ["ans-web"]
            assert "private" in vm["addresses"]
            second = play(server, path)
            assert second["failed"] == 0 and second["changed"] == 0, second
            assert len(c.get("/compute/v2.1/servers", params={"name": "^ans-vm$"}
                             ).json()["servers"]) == 1
        finally:
            assert c.delete(f"/compute/v2.1/servers/{vm['id']}").status_code == 204
            from tests.helpers import wait_gone

            wait_gone(c, vm["id"], 30)
            c.delete("/compute/v2.1/os-keypairs/ans-key")
            groups = c.get("/network/v2.0/security-groups", params={"name": "ans-web"}
                           ).json()["security_groups"]
            for g in groups:
                c.delete(f"/network/v2.0/security-groups/{g['id']}")
