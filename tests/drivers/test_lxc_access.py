"""Getting into a container: its console over a websocket, its metadata at
http://169.254.169.254/ and its config drive, through a real ``novalite serve``.

The package's lxc service (shared with test_lxc_api.py) and two busybox containers
for the module:

* A: key pair ``login``, no config drive: it reads its metadata with busybox
  ``wget`` from 169.254.169.254 (a listener novalite made inside A's own network
  namespace, relayed through the compute host's signed per-guest socket);
* B: ``config_drive: true`` and an ``adminPass``: it reads the drive's files at
  cloud-init's seed path, read-only; its metadata requests, A's identity headers and
  all, get B's own data.

A command typed over the serial-console websocket runs in A's console shell, while the
console log keeps recording. Teardown deletes both through the API (the service
fixture removes anything left in its private LXC path).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketUpgradeError, connect_ws

from novalite.testing.rootfs import build_busybox_rootfs
from novalite.testing.server import wait_for
from tests.drivers.test_lxc_api import (
    CONFIG,
    FLAVOR,
    TIMEOUT,
    Service,
    _check,
    console,
    upload,
)
from tests.helpers import wait_gone, wait_status

pytestmark = [
    pytest.mark.lxc,
    pytest.mark.skipif(not _check.usable, reason=f"lxc driver unusable here: {_check.reason}"),
]

SEED = "/var/lib/cloud/seed/config_drive"
MD_URL = "http://169.254.169.254/openstack/latest/meta_data.json"


@pytest.fixture(scope="module")
def service(lxc_service: Service) -> Service:
    """The package's lxc service (conftest.py), shared with test_lxc_api.py."""
    assert CONFIG["compute"]["driver"] == "lxc"
    return lxc_service


@pytest.fixture(scope="module")
def guests(service: Service) -> Iterator[dict[str, str]]:
    """A and B, ACTIVE, with their console shells up."""
    c = service.client()
    with open(build_busybox_rootfs(), "rb") as f:
        image = upload(c, "busybox-access", f.read(), {
            "disk_format": "raw", "container_format": "bare", "hypervisor_type": "lxc"})
    r = c.post("/compute/v2.1/flavors", json={"flavor": {**FLAVOR, "name": "lxc.access"}})
    assert r.status_code == 200, r.text
    flavor = r.json()["flavor"]["id"]
    r = c.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "login"}},
               headers={"OpenStack-API-Version": "compute 2.91"})
    assert r.status_code in (200, 201), r.text

    def boot(name: str, **extra: Any) -> str:
        body = {"server": {"name": name, "imageRef": image, "flavorRef": flavor,
                           "key_name": "login", **extra}}
        r = c.post("/compute/v2.1/servers", json=body)
        assert r.status_code == 202, r.text
        return str(r.json()["server"]["id"])

    ids = {"a": boot("Guest A", metadata={"role": "a"}),
           "b": boot("guest_b", config_drive=True, adminPass="Boot-Pass-42")}
    for sid in ids.values():
        wait_status(c, sid, "ACTIVE", TIMEOUT)
    yield ids
    for sid in ids.values():
        c.delete(f"/compute/v2.1/servers/{sid}")
    for sid in ids.values():
        wait_gone(c, sid, TIMEOUT)


def fetch(service: Service, sid: str, *headers: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The guest's meta_data.json as busybox wget inside it gets it (retried while its
    metadata listener comes up)."""
    args = " ".join(f"--header '{h}'" for h in headers)
    script = f"wget -q -O - {args} {MD_URL}"  # (-T crashes Debian's static busybox)

    def attempt() -> dict[str, Any] | None:
        proc = service.lxc("lxc-attach", sid, "--", "/bin/sh", "-c", script)
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout else None

    return wait_for(attempt, timeout, interval=0.2)  # type: ignore[no-any-return]


def test_a_container_reads_its_own_metadata_at_169_254_169_254(
        service: Service, guests: dict[str, str]) -> None:
    a, b = guests["a"], guests["b"]
    c = service.client()
    data = fetch(service, a)
    assert data["uuid"] == a and data["name"] == "Guest A"
    assert data["hostname"] == "guest-a.novalocal" and data["meta"] == {"role": "a"}
    key = c.get("/compute/v2.1/os-keypairs/login").json()["keypair"]["public_key"]
    assert data["public_keys"] == {"login": key}
    assert "admin_pass" not in data, "admin_pass goes only to the config drive"
    # What stock cloud-init's ds-identify looks for to try the OpenStack datasource.
    assert "product_name=OpenStack Nova" in service.attach(a, "tr '\\0' '\\n' < /proc/1/environ")
    # The EC2 tree too.
    out = service.attach(a, "wget -q -O - http://169.254.169.254/latest/meta-data/"
                            "public-keys/0/openssh-key")
    assert out.strip() == key.strip()

    # B sends A's identity: it still gets its own data (the listener in its namespace
    # knows whose it is; the relay replaces whatever the guest sends).
    project = c.get(f"/compute/v2.1/servers/{a}").json()["server"]["tenant_id"]
    forged = fetch(service, b, f"X-Instance-ID: {a}", f"X-Tenant-ID: {project}",
                   "X-Instance-ID-Signature: forged")
    assert forged["uuid"] == b

    # A restart the guest makes itself (a new network namespace): the listener follows.
    state, pid = service.state(a)
    service.lxc("lxc-attach", a, "--", "/bin/sh", "-c", "reboot")
    wait_for(lambda: service.state(a)[0] == "RUNNING" and service.state(a)[1] != pid,
             TIMEOUT, interval=0.1)
    assert fetch(service, a)["uuid"] == a


def test_the_config_drive_is_read_only_at_cloud_inits_seed_path(
        service: Service, guests: dict[str, str]) -> None:
    a, b = guests["a"], guests["b"]
    c = service.client()
    assert c.get(f"/compute/v2.1/servers/{b}").json()["server"]["config_drive"] == "True"
    data = json.loads(service.attach(b, f"cat {SEED}/openstack/latest/meta_data.json"))
    assert data["uuid"] == b and data["admin_pass"] == "Boot-Pass-42"
    assert data["hostname"] == "guest-b.novalocal" and list(data["public_keys"]) == ["login"]
    ec2 = json.loads(service.attach(b, f"cat {SEED}/ec2/latest/meta-data.json"))
    assert ec2["hostname"] == "guest-b.novalocal"
    assert "network_data.json" in service.attach(b, f"ls {SEED}/openstack/latest")
    write = service.lxc("lxc-attach", b, "--", "/bin/sh", "-c",
                        f"echo x > {SEED}/openstack/latest/meta_data.json")
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    # A has no config drive.
    assert service.lxc("lxc-attach", a, "--", "/bin/ls", SEED).returncode != 0


def console_url(c: httpx.Client, sid: str, protocol: str, kind: str) -> httpx.Response:
    return c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
                  json={"remote_console": {"protocol": protocol, "type": kind}})


def receive_until(ws: Any, marker: bytes, timeout: float = TIMEOUT) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while marker not in got:
        assert time.monotonic() < deadline, f"no {marker!r} in {got[-500:]!r}"
        got += ws.receive_bytes(timeout=timeout)
    return got


def test_a_command_typed_on_the_console_websocket_runs_in_the_container(
        service: Service, guests: dict[str, str]) -> None:
    a = guests["a"]
    c = service.client()
    r = console_url(c, a, "serial", "serial")
    assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    with httpx.Client(timeout=30) as client, \
            connect_ws("http" + url.removeprefix("ws"), client) as ws:
        ws.send_bytes(b"echo con$((6*7))sole; hostname\r")
        assert b"con42sole" in receive_until(ws, b"guest-a")
        # Ctrl-a reaches the shell as itself, not as lxc-console's escape (Ctrl-a q
        # would detach): the line editor's "start of line" puts each text before the last.
        ws.send_bytes(b"ill\x01q\x01echo st$((1+1))\r")
        receive_until(ws, b"st2qill")
    # The console log recorded the session.
    wait_for(lambda: "con42sole" in console(c, a), TIMEOUT, interval=0.2)
    # The older action answers the same way, and a second session works.
    r = service.srv.client("2.5").post(f"/compute/v2.1/servers/{a}/action",
                                       json={"os-getSerialConsole": {"type": "serial"}})
    assert r.status_code == 200, r.text
    url = r.json()["console"]["url"]
    # One session at a time: the first is released once lxc-console has detached.
    with httpx.Client(timeout=30) as client:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with connect_ws("http" + url.removeprefix("ws"), client) as ws:
                    ws.send_bytes(b"uname -s\r")
                    receive_until(ws, b"Linux")
                break
            except WebSocketUpgradeError as exc:
                assert exc.response.status_code == 403 and time.monotonic() < deadline
                time.sleep(0.5)
    # No VNC for a container: Nova's answer for a console the hypervisor lacks.
    r = console_url(c, a, "vnc", "novnc")
    assert r.status_code == 501, r.text
    assert r.json()["notImplemented"]["message"] == \
        "The requested functionality is not supported."
