"""The service as a whole: start, stop, restart, configuration errors, the admin CLI.

The restart tests run on each database backend (``db_config``, tests/conftest.py)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx

from novalite.testing.server import novalite_bin, start, write_config
from tests.helpers import boot, wait_status


def test_restart_keeps_every_record_and_adopts_guests(tmp_path: Path, db_config: dict) -> None:
    state = tmp_path / "state"
    srv = start(state, config=db_config)
    c = srv.client()
    running = boot(c, "keep-running")
    stopped = boot(c, "keep-stopped")
    wait_status(c, running, "ACTIVE")
    wait_status(c, stopped, "ACTIVE")
    c.post(f"/compute/v2.1/servers/{stopped}/action", json={"os-stop": None})
    wait_status(c, stopped, "SHUTOFF")
    assert srv.stop(signal.SIGTERM) == 0
    assert "novalite stopped; guests keep running" in srv.log()

    again = start(state, port=int(srv.url.rsplit(":", 1)[1]), config=db_config)
    try:
        c2 = again.client()
        assert wait_status(c2, running, "ACTIVE")["addresses"]["private"]
        assert wait_status(c2, stopped, "SHUTOFF")
        names = {s["name"] for s in c2.get("/compute/v2.1/servers").json()["servers"]}
        assert {"keep-running", "keep-stopped"} <= names
        c2.post(f"/compute/v2.1/servers/{stopped}/action", json={"os-start": None})
        wait_status(c2, stopped, "ACTIVE")
    finally:
        again.stop()


def test_kill_9_then_start_adopts(tmp_path: Path, db_config: dict) -> None:
    state = tmp_path / "state"
    srv = start(state, config=db_config)
    c = srv.client()
    sid = boot(c, "survivor")
    wait_status(c, sid, "ACTIVE")
    srv.stop(signal.SIGKILL)
    again = start(state, config=db_config)
    try:
        assert wait_status(again.client(), sid, "ACTIVE")["OS-EXT-STS:power_state"] == 1
    finally:
        again.stop()


def _serve_fails(tmp_path: Path, sections: dict) -> str:
    config = write_config(tmp_path / "bad.toml", sections)
    proc = subprocess.run([novalite_bin(), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_unknown_key_stops_the_service_naming_it(tmp_path: Path) -> None:
    err = _serve_fails(tmp_path, {"api": {"prot": 1234}})
    assert "[api] prot = 1234: unknown key" in err


def test_bad_value_names_key_value_and_expectation(tmp_path: Path) -> None:
    err = _serve_fails(tmp_path, {"api": {"port": "eighty"}})
    assert "[api] port = 'eighty': expected an integer" in err
    err = _serve_fails(tmp_path, {"compute": {"driver": "nosuch"}})
    assert "[compute] driver = 'nosuch': no such driver installed" in err


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    srv = start(tmp_path / "one")
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        err = _serve_fails(tmp_path, {"DEFAULT": {"state_path": str(tmp_path / "two")},
                                      "api": {"port": port},
                                      "compute": {"driver": "fake"}})
        assert f"cannot listen on 127.0.0.1:{port}" in err
    finally:
        srv.stop()


def test_generated_admin_password_lands_in_clouds_yaml(tmp_path: Path) -> None:
    import yaml

    srv = start(tmp_path / "state", config={"identity": {"admin_password": ""}})
    try:
        clouds = yaml.safe_load((tmp_path / "state" / "clouds.yaml").read_text())
        auth = clouds["clouds"]["novalite"]["auth"]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": auth["password"]}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
        r = httpx.post(f"{auth['auth_url']}/v3/auth/tokens", json=body)
        assert r.status_code == 201 and r.headers["X-Subject-Token"]
        catalog = {e["type"]: e for e in r.json()["token"]["catalog"]}
        assert catalog["compute"]["endpoints"][0]["url"] == f"{srv.url}/compute/v2.1"
        assert catalog["image"]["endpoints"][0]["url"] == f"{srv.url}/image"
    finally:
        srv.stop()


def test_admin_cli_service_list_and_drivers(server) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([novalite_bin(), "service", "list", "--config",
                          str(server.config_path)], capture_output=True, text=True, check=True)
    assert "nova-compute" in out.stdout and ":-)" in out.stdout
    # Which network mode the service runs, and why (the suite pins user-mode).
    assert 'Network: user ([network] driver = "user": per-guest user-mode networking)' \
        in out.stdout
    drivers = subprocess.run([novalite_bin(), "drivers", "-f", "json"], capture_output=True,
                             text=True, check=True)
    import json

    by_name = {d["name"]: d for d in json.loads(drivers.stdout)}
    assert by_name["fake"]["usable"] is True
    assert set(by_name) >= {"fake", "qemu", "kvm", "lxc"}
