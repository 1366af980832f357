"""The real clients on networks: ``openstack network/subnet/port/security group``
and ``server create --network --security-group``, unchanged, against a real
``novalite serve`` (fake driver)."""

from __future__ import annotations

import json

from novalite.testing.server import RunningServer
from tests.test_real_clients import osc, pytestmark  # noqa: F401  (skipped without them)


def test_openstackclient_networks_ports_and_security_groups(server: RunningServer) -> None:
    networks = json.loads(osc(server, "network", "list", "-f", "json"))
    private = [n for n in networks if n["Name"] == "private"][0]
    subnets = json.loads(osc(server, "subnet", "list", "-f", "json"))
    assert "10.0.0.0/24" in {s["Subnet"] for s in subnets}
    assert [s for s in subnets if s["Network"] == private["ID"]]
    groups = json.loads(osc(server, "security", "group", "list", "-f", "json"))
    assert "default" in {g["Name"] for g in groups}
    rule = json.loads(osc(server, "security", "group", "rule", "create", "--protocol", "tcp",
                          "--dst-port", "22", "default", "-f", "json"))
    assert rule["port_range_min"] == 22 and rule["protocol"] == "tcp"
    osc(server, "security", "group", "create", "web")
    created = json.loads(osc(server, "server", "create", "--flavor", "m1.tiny", "--image",
                             "demo", "--network", "private", "--security-group", "web",
                             "--wait", "-f", "json", "net-vm1"))
    assert created["status"] == "ACTIVE"
    ports = json.loads(osc(server, "port", "list", "--server", "net-vm1", "-f", "json"))
    assert len(ports) == 1 and ports[0]["MAC Address"].startswith("fa:16:3e:")
    address = ports[0]["Fixed IP Addresses"]
    shown = json.loads(osc(server, "server", "show", "net-vm1", "-f", "json"))
    text = json.dumps(shown["addresses"])
    assert "private" in text
    assert any(ip in text for ip in json.dumps(address).split('"') if ip.startswith("10."))
    assert "web" in json.dumps(shown.get("security_groups"))
    osc(server, "server", "delete", "--wait", "net-vm1")
    with server.client() as c:  # the port made for the server went with it
        left = c.get("/network/v2.0/ports", params={"device_id": created["id"]})
        assert left.json()["ports"] == []
    osc(server, "security", "group", "rule", "delete", rule["id"])
    osc(server, "security", "group", "delete", "web")
