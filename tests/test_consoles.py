"""Remote consoles on the fake driver: console URLs (Nova's API and shapes), console
tokens, and the websocket proxy's refusals, over real HTTP and real websockets.

The fake driver's serial console echoes what is typed and answers each line with
``<hostname>: <line>`` (drivers/fake.py); it has no VNC console. Real guests'
consoles are in tests/drivers/test_qemu_consoles.py.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketUpgradeError, connect_ws

from novalite.testing.server import RunningServer, start
from tests.helpers import boot, wait_gone, wait_status
from tests.test_tenancy import PASSWORD, login

TTL = 6


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start(tmp_path_factory.mktemp("consoles"),
                   config={"consoleauth": {"token_ttl": TTL},
                           "console": {"allowed_origins": ["console.example.org"]}})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def c(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.client("2.96") as client:
        yield client


def serial_url(c: httpx.Client, sid: str) -> str:
    r = c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
               json={"remote_console": {"protocol": "serial", "type": "serial"}})
    assert r.status_code == 200, r.text
    body = r.json()["remote_console"]
    assert body["protocol"] == "serial" and body["type"] == "serial"
    return str(body["url"])


def http_url(ws_url: str) -> str:
    return "http" + ws_url.removeprefix("ws")


def type_line(url: str, line: bytes, headers: dict[str, str] | None = None) -> bytes:
    """Type ``line`` into the console at ``url``; return what came back up to the answer."""
    with httpx.Client(timeout=10, headers=headers or {}) as client, \
            connect_ws(http_url(url), client, subprotocols=["binary"]) as ws:
        ws.send_bytes(line + b"\r")
        got = b""
        deadline = time.monotonic() + 10
        while b"\r\n" not in got.split(line, 1)[-1][2:] and time.monotonic() < deadline:
            got += ws.receive_bytes(timeout=10)
        return got


def refused(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status of a refused websocket upgrade."""
    with httpx.Client(timeout=10, headers=headers or {}) as client:
        with pytest.raises(WebSocketUpgradeError) as caught:
            with connect_ws(http_url(url), client):
                pass
    return caught.value.response.status_code


@pytest.fixture(scope="module")
def vm(c: httpx.Client) -> str:
    sid = boot(c, "console-vm")
    wait_status(c, sid, "ACTIVE")
    return sid


def test_serial_console_url_has_nova_shape_and_a_typed_line_comes_back(
        srv: RunningServer, c: httpx.Client, vm: str) -> None:
    url = serial_url(c, vm)
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme == "ws" and parts.path == "/"
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    assert len(token) >= 32
    out = type_line(url, b"hello serial")
    assert b"hello serial" in out  # echoed as typed
    assert b"console-vm: hello serial\r\n" in out  # the guest's answer
    # The token stays usable until it expires (a client may reconnect).
    assert b"console-vm: again" in type_line(url, b"again")
    # Admins can look a token up (2.31+); it is stored hashed, found by its value.
    admin = srv.client("2.31")
    shown = admin.get(f"/compute/v2.1/os-console-auth-tokens/{token}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["console"]["instance_uuid"] == vm
    assert shown.json()["console"]["host"] == "127.0.0.1"
    assert admin.get("/compute/v2.1/os-console-auth-tokens/not-a-token").status_code == 404
    assert srv.client("2.30").get(
        f"/compute/v2.1/os-console-auth-tokens/{token}").status_code == 400


def test_legacy_serial_action_before_2_6(srv: RunningServer, vm: str) -> None:
    c25 = srv.client("2.5")
    r = c25.post(f"/compute/v2.1/servers/{vm}/action",
                 json={"os-getSerialConsole": {"type": "serial"}})
    assert r.status_code == 200, r.text
    assert r.json()["console"]["type"] == "serial"
    assert b"console-vm: old" in type_line(r.json()["console"]["url"], b"old")
    assert c25.post(f"/compute/v2.1/servers/{vm}/remote-consoles", json={
        "remote_console": {"protocol": "serial", "type": "serial"}}).status_code == 404


def test_unsupported_and_unknown_consoles_answer_as_nova(c: httpx.Client, vm: str) -> None:
    def create(protocol: str, kind: str) -> httpx.Response:
        return c.post(f"/compute/v2.1/servers/{vm}/remote-consoles",
                      json={"remote_console": {"protocol": protocol, "type": kind}})

    r = create("vnc", "novnc")  # the fake driver has no display
    assert r.status_code == 501, r.text
    assert r.json()["notImplemented"]["message"] == \
        "The requested functionality is not supported."
    r = create("spice", "spice-html5")
    assert r.status_code == 400 and "Unavailable console type spice-html5." in r.text
    assert create("rdp", "rdp-html5").status_code == 400
    r = create("vnc", "xvpvnc")
    assert r.status_code == 400 and "Invalid console type xvpvnc" in r.text
    assert create("vnc", "bogus").status_code == 400


def test_refused_tokens_origins_and_states(srv: RunningServer, c: httpx.Client) -> None:
    sid = boot(c, "console-refusals")
    wait_status(c, sid, "ACTIVE")
    url = serial_url(c, sid)
    host = urllib.parse.urlsplit(url).hostname
    # A browser's Origin must name the proxy's own host or an allowed one, scheme http.
    assert b"ok-origin" in type_line(url, b"ok-origin", {"Origin": f"http://{host}:1234"})
    assert b"allowed" in type_line(url, b"allowed",
                                   {"Origin": "http://console.example.org"})
    assert refused(url, {"Origin": "http://evil.example.com"}) == 403
    assert refused(url, {"Origin": f"https://{host}"}) == 403  # ws base: http only
    assert refused(url.replace("token=", "token=x")) == 403  # unknown token
    assert refused(url.split("?")[0]) == 403  # no token
    # ERROR / SHUTOFF servers: 409, as Nova.
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None})
    assert r.status_code == 202, r.text
    wait_status(c, sid, "SHUTOFF")
    r = c.post(f"/compute/v2.1/servers/{sid}/remote-consoles",
               json={"remote_console": {"protocol": "serial", "type": "serial"}})
    assert r.status_code == 409 and "vm_state stopped" in r.text, r.text
    bad = boot(c, "console-error", metadata={"fake_fail_spawn": "1"})
    wait_status(c, bad, "ERROR", timeout=30)
    r = c.post(f"/compute/v2.1/servers/{bad}/remote-consoles",
               json={"remote_console": {"protocol": "serial", "type": "serial"}})
    assert r.status_code == 409, r.text
    # A deleted server's token is refused (the token was issued while it ran).
    c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-start": None})
    wait_status(c, sid, "ACTIVE")
    url = serial_url(c, sid)
    assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    assert refused(url) == 403
    wait_gone(c, sid)
    assert refused(url) == 403
    c.delete(f"/compute/v2.1/servers/{bad}")


def test_expired_token_is_refused(c: httpx.Client, vm: str) -> None:
    url = serial_url(c, vm)
    time.sleep(TTL + 1)
    assert refused(url) == 403


def test_another_projects_console_is_404(srv: RunningServer, c: httpx.Client, vm: str) -> None:
    tag = secrets.token_hex(3)
    admin = srv.client()
    project = admin.post("/identity/v3/projects",
                         json={"project": {"name": f"other-{tag}"}}).json()["project"]["id"]
    user = admin.post("/identity/v3/users", json={"user": {
        "name": f"mallory-{tag}", "password": PASSWORD,
        "default_project_id": project}}).json()["user"]["id"]
    role = admin.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
    admin.put(f"/identity/v3/projects/{project}/users/{user}/roles/{role}")
    token = login(srv, f"mallory-{tag}", f"other-{tag}").headers["x-subject-token"]
    headers: dict[str, Any] = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.96"}
    r = httpx.post(f"{srv.url}/compute/v2.1/servers/{vm}/remote-consoles", headers=headers,
                   json={"remote_console": {"protocol": "serial", "type": "serial"}})
    assert r.status_code == 404, r.text
    # ... and a member may not look tokens up.
    r = httpx.get(f"{srv.url}/compute/v2.1/os-console-auth-tokens/x", headers=headers)
    assert r.status_code == 403


def test_real_clients_show_a_serial_console_url(srv: RunningServer, vm: str) -> None:
    from tests.test_real_clients import CLIENTS, run

    if not (CLIENTS / "openstack").exists():
        pytest.skip("the real OpenStack clients are not installed")
    shown = json.loads(run(srv, str(CLIENTS / "openstack"), "console", "url", "show",
                           "--serial", "-f", "json", vm))
    assert shown["url"].startswith("ws://") and "token=" in shown["url"]
    assert b"console-vm: from-osc" in type_line(shown["url"], b"from-osc")
    # novaclient: the real `nova get-serial-console` (it uses remote-consoles at 2.6+).
    out = run(srv, str(CLIENTS / "nova"), "get-serial-console", vm)
    assert "ws://" in out and "token=" in out
    # noVNC on the fake driver: not supported, said clearly.
    r = subprocess.run([str(CLIENTS / "openstack"), "console", "url", "show", "--novnc", vm],
                       env={**os.environ, **srv.env}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "not supported" in r.stderr
