"""Nova's ``os-interface`` attach and detach over real HTTP (fake driver): a port made
on a network or given by the user is bound to the server and its guest gets a NIC;
detach frees it (deleting the port Nova made); Nova's answers to bad requests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer
from tests.helpers import boot, wait_gone, wait_status

N = "/network/v2.0"


@pytest.fixture(scope="module")
def c(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def net(c: httpx.Client) -> dict[str, Any]:
    """A network of the project's own with a subnet."""
    r = c.post(f"{N}/networks", json={"network": {"name": f"if-{uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 201, r.text
    network = r.json()["network"]
    r = c.post(f"{N}/subnets", json={"subnet": {
        "network_id": network["id"], "cidr": "10.77.0.0/24", "ip_version": 4}})
    assert r.status_code == 201, r.text
    return dict(network)


@pytest.fixture
def vm(c: httpx.Client) -> Iterator[str]:
    sid = boot(c, f"if-{uuid.uuid4().hex[:6]}")
    wait_status(c, sid, "ACTIVE")
    yield sid
    c.delete(f"/compute/v2.1/servers/{sid}")
    wait_gone(c, sid)


def interfaces(c: httpx.Client, sid: str) -> list[dict[str, Any]]:
    r = c.get(f"/compute/v2.1/servers/{sid}/os-interface")
    assert r.status_code == 200, r.text
    return list(r.json()["interfaceAttachments"])


def attach(c: httpx.Client, sid: str, **body: Any) -> httpx.Response:
    return c.post(f"/compute/v2.1/servers/{sid}/os-interface",
                  json={"interfaceAttachment": body})


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    (body,) = r.json().values()
    return str(body["message"])


def test_attach_on_a_network_and_detach(c: httpx.Client, vm: str,
                                        net: dict[str, Any]) -> None:
    r = attach(c, vm, net_id=net["id"], fixed_ips=[{"ip_address": "10.77.0.50"}])
    assert r.status_code == 200, r.text
    made = r.json()["interfaceAttachment"]
    assert made["net_id"] == net["id"] and made["port_state"] == "ACTIVE"
    assert [f["ip_address"] for f in made["fixed_ips"]] == ["10.77.0.50"]
    assert made["port_id"] in [i["port_id"] for i in interfaces(c, vm)]
    assert len(interfaces(c, vm)) == 2
    server = c.get(f"/compute/v2.1/servers/{vm}").json()["server"]
    assert [a["addr"] for a in server["addresses"][net["name"]]] == ["10.77.0.50"]
    port = c.get(f"{N}/ports/{made['port_id']}").json()["port"]
    assert port["device_id"] == vm and port["device_owner"].startswith("compute:")
    # The address is taken now.
    other = boot(c, "if-other")
    try:
        wait_status(c, other, "ACTIVE")
        msg = error(attach(c, other, net_id=net["id"],
                           fixed_ips=[{"ip_address": "10.77.0.50"}]), 400)
        assert "already in use" in msg
    finally:
        c.delete(f"/compute/v2.1/servers/{other}")
    r = c.delete(f"/compute/v2.1/servers/{vm}/os-interface/{made['port_id']}")
    assert r.status_code == 202, r.text
    assert len(interfaces(c, vm)) == 1
    assert c.get(f"{N}/ports/{made['port_id']}").status_code == 404  # Nova made it
    server = c.get(f"/compute/v2.1/servers/{vm}").json()["server"]
    assert net["name"] not in server["addresses"]


def test_a_users_port_is_bound_then_freed(c: httpx.Client, vm: str,
                                          net: dict[str, Any]) -> None:
    r = c.post(f"{N}/ports", json={"port": {"network_id": net["id"], "name": "mine"}})
    assert r.status_code == 201, r.text
    port = r.json()["port"]
    r = attach(c, vm, port_id=port["id"])
    assert r.status_code == 200, r.text
    assert r.json()["interfaceAttachment"]["mac_addr"] == port["mac_address"]
    # A port in use cannot be given to another server.
    other = boot(c, "if-other-2")
    try:
        wait_status(c, other, "ACTIVE")
        assert "still in use" in error(attach(c, other, port_id=port["id"]), 409)
    finally:
        c.delete(f"/compute/v2.1/servers/{other}")
    assert c.delete(f"/compute/v2.1/servers/{vm}/os-interface/{port['id']}"
                    ).status_code == 202
    kept = c.get(f"{N}/ports/{port['id']}").json()["port"]
    assert kept["device_id"] == "" and kept["name"] == "mine"  # the user's: kept
    assert c.delete(f"{N}/ports/{port['id']}").status_code == 204


def test_bad_requests_answer_as_nova(c: httpx.Client, vm: str, net: dict[str, Any]) -> None:
    some = str(uuid.uuid4())
    assert "both" in error(attach(c, vm, net_id=net["id"], port_id=some), 400)
    assert "network_id" in error(attach(c, vm, fixed_ips=[{"ip_address": "10.77.0.9"}]),
                                 400)
    assert "is not a 'uuid'" in error(attach(c, vm, net_id="nope"), 400)
    assert "could not be found" in error(attach(c, vm, net_id=some), 404)
    assert "could not be found" in error(attach(c, vm, port_id=some), 404)
    msg = error(attach(c, vm, net_id=net["id"], fixed_ips=[{"ip_address": "10.99.0.9"}]),
                400)
    assert "not a valid ip address" in msg
    r = c.post(f"/compute/v2.1/servers/{vm}/os-interface", json={"bogus": 1})
    assert r.status_code == 400, r.text
    assert error(c.delete(f"/compute/v2.1/servers/{vm}/os-interface/{some}"), 404)
    assert len(interfaces(c, vm)) == 1  # nothing half-made
    c.post(f"/compute/v2.1/servers/{vm}/action", json={"suspend": None})
    wait_status(c, vm, "SUSPENDED")
    assert "vm_state suspended" in error(attach(c, vm, net_id=net["id"]), 409)
    c.post(f"/compute/v2.1/servers/{vm}/action", json={"resume": None})
    wait_status(c, vm, "ACTIVE")


@pytest.mark.backends("sqlite")
def test_openstackclient_server_add_and_remove_network(server: RunningServer, c: httpx.Client,
                                                      vm: str, net: dict[str, Any]) -> None:
    from tests.test_real_clients import CLIENTS, osc

    if not (CLIENTS / "openstack").exists():
        pytest.skip("the real OpenStack clients are not installed")
    osc(server, "server", "add", "network", vm, net["name"])
    assert len(interfaces(c, vm)) == 2
    osc(server, "server", "remove", "network", vm, net["name"])
    assert len(interfaces(c, vm)) == 1
