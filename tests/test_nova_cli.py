"""The `nova` command line, run as a real process against a real `novalite serve`.

The `server` fixture (tests/conftest.py) runs the service with the fake driver
and yields ``.url``, ``.env`` (OS_* variables for admin) and ``.state_path``.
Each test uses its own server names, so tests do not depend on each other.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NOVA = str(Path(sys.executable).parent / "nova")
IMAGE = "demo"
FLAVOR = "m1.tiny"
COMMAND_TIMEOUT = 180
STATE_TIMEOUT = 60.0
CREDENTIAL_VARIABLES = ("OS_CLOUD", "OS_CLIENT_CONFIG_FILE", "NOVALITE_STATE_PATH")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture(scope="module")
def token_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private XDG_CACHE_HOME, so tests never touch the user's cached tokens."""
    return tmp_path_factory.mktemp("xdg-cache")


def clean_env(cache: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OS_") and key not in CREDENTIAL_VARIABLES
    }
    env["XDG_CACHE_HOME"] = str(cache)
    env.update(extra or {})
    return env


def nova(*args: str, env: Mapping[str, str], timeout: float = COMMAND_TIMEOUT) -> Result:
    done = subprocess.run(
        [NOVA, *args], env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    return Result(done.returncode, done.stdout, done.stderr)


def ok(*args: str, env: Mapping[str, str]) -> Result:
    result = nova(*args, env=env)
    assert result.code == 0, f"nova {' '.join(args)} failed: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def fails(*args: str, env: Mapping[str, str]) -> Result:
    result = nova(*args, env=env)
    assert result.code != 0, f"nova {' '.join(args)} should fail: {result.stdout}"
    assert "Traceback" not in result.stderr + result.stdout
    assert any(line.startswith("ERROR (") for line in result.stderr.splitlines()), result.stderr
    return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def boot(name: str, env: Mapping[str, str], *extra: str) -> dict[str, Any]:
    result = ok(
        "-f", "json", "boot", name, "--flavor", FLAVOR, "--image", IMAGE, "--poll", *extra, env=env
    )
    return result.json()


def show(ref: str, env: Mapping[str, str]) -> dict[str, Any]:
    return ok("show", ref, "-f", "json", env=env).json()


def wait_for(ref: str, env: Mapping[str, str], **expected: Any) -> dict[str, Any]:
    """Poll ``nova show`` until every expected field has its value (actions are async)."""
    deadline = time.monotonic() + STATE_TIMEOUT
    while True:
        server = show(ref, env)
        if all(server.get(key) == value for key, value in expected.items()):
            return server
        if time.monotonic() > deadline:
            pytest.fail(f"{ref} never reached {expected}; last seen {server}")
        time.sleep(0.3)


@pytest.fixture
def env(server: Any, token_cache: Path) -> dict[str, str]:
    return clean_env(token_cache, server.env)


# -- booting, listing, showing -------------------------------------------------


def test_boot_poll_reaches_active_and_prints_the_server(env: dict[str, str]) -> None:
    name = unique("vm")
    result = ok("boot", name, "--flavor", FLAVOR, "--image", IMAGE, "--poll", env=env)
    assert "ACTIVE" in result.stdout
    assert name in result.stdout
    assert f"{IMAGE} (" in result.stdout  # image shown as "name (id)"
    assert "ACTIVE" in result.stderr  # the progress lines go to stderr

    table = ok("list", env=env).stdout
    row = next(line for line in table.splitlines() if name in line)
    assert "ACTIVE" in row and "Running" in row


def test_list_and_show_as_table_and_json(env: dict[str, str]) -> None:
    name = unique("vm")
    created = boot(name, env)
    assert created["status"] == "ACTIVE"

    listed = ok("-f", "json", "list", env=env).json()
    mine = [server for server in listed if server["name"] == name]
    assert [(s["id"], s["status"]) for s in mine] == [(created["id"], "ACTIVE")]
    assert ok("list", "-f", "json", "--name", name, env=env).json()[0]["id"] == created["id"]

    by_name, by_id = show(name, env), show(created["id"], env)
    assert by_name["id"] == by_id["id"] == created["id"]
    assert by_name["name"] == name and by_name["status"] == "ACTIVE"

    table = ok("show", name, env=env).stdout
    assert "Property" in table and created["id"] in table and "ACTIVE" in table
    header = ok("list", env=env).stdout.splitlines()[1]
    for column in ("ID", "Name", "Status", "Task State", "Power State", "Networks"):
        assert column in header


def test_boot_options_reach_the_server(env: dict[str, str], tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    user_data.write_text("#!/bin/sh\necho hello\n")
    name = unique("vm")
    options = ["--meta", "role=web", "--meta", "tier=1", "--nic", "none"]
    server = boot(name, env, *options, "--user-data", str(user_data))
    assert server["metadata"] == {"role": "web", "tier": "1"}
    assert server["addresses"] == {}
    tenants = ok("list", "--all-tenants", env=env).stdout
    assert "Tenant ID" in tenants.splitlines()[1] and name in tenants


def test_boot_poll_ending_in_error_exits_non_zero_with_the_fault(env: dict[str, str]) -> None:
    name = unique("doomed")
    result = fails(
        "boot",
        name,
        "--flavor",
        FLAVOR,
        "--image",
        IMAGE,
        "--meta",
        "fake_fail_spawn=1",
        "--poll",
        env=env,
    )
    assert "ERROR (ResourceInErrorState)" in result.stderr
    assert "fake spawn failure" in result.stderr  # the fault message, as `show` has it
    assert show(name, env)["status"] == "ERROR"


def test_actions_reflect_in_show(env: dict[str, str]) -> None:
    name = unique("vm")
    boot(name, env)
    steps = [
        (["stop"], {"status": "SHUTOFF"}),
        (["start"], {"status": "ACTIVE"}),
        (["pause"], {"status": "PAUSED"}),
        (["unpause"], {"status": "ACTIVE"}),
        (["suspend"], {"status": "SUSPENDED"}),
        (["resume"], {"status": "ACTIVE"}),
        (["reboot"], {"status": "ACTIVE", "OS-EXT-STS:task_state": None}),
        (["reboot", "--hard"], {"status": "ACTIVE", "OS-EXT-STS:task_state": None}),
        (["lock"], {"locked": True}),
        (["unlock"], {"locked": False}),
    ]
    for command, expected in steps:
        result = ok(*command, name, env=env)
        assert "has been accepted" in result.stdout
        wait_for(name, env, **expected)

    actions = ok("-f", "json", "instance-action-list", name, env=env).json()
    names = {action["action"] for action in actions}
    assert {"create", "stop", "start", "pause", "reboot"} <= names
    assert "create" in ok("instance-action-list", name, env=env).stdout


def test_conflicting_action_is_an_api_error(env: dict[str, str]) -> None:
    name = unique("vm")
    boot(name, env)
    result = fails("unpause", name, env=env)  # an ACTIVE server is not paused
    assert "ERROR (Conflict)" in result.stderr and "(HTTP 409)" in result.stderr
    assert "Request-ID: req-" in result.stderr


def test_console_log_prints_something(env: dict[str, str]) -> None:
    name = unique("vm")
    boot(name, env)
    assert ok("console-log", name, env=env).stdout.strip()
    assert "output" in ok("console-log", name, "--length", "5", "-f", "json", env=env).json()


def test_delete_wait_then_show_fails(env: dict[str, str]) -> None:
    name = unique("vm")
    server_id = boot(name, env)["id"]
    result = ok("delete", name, "--wait", env=env)
    assert f"Request to delete server {name} has been accepted." in result.stdout
    for ref in (name, server_id):
        gone = fails("show", ref, env=env)
        assert ref in gone.stderr


# -- finding servers by name ---------------------------------------------------------


def test_ambiguous_name_lists_both_ids(env: dict[str, str]) -> None:
    name = unique("twin")
    first, second = boot(name, env)["id"], boot(name, env)["id"]
    result = fails("show", name, env=env)
    assert "Multiple server matches" in result.stderr
    assert first in result.stderr and second in result.stderr
    fails("delete", name, env=env)
    assert len(ok("-f", "json", "list", "--name", name, env=env).json()) == 2


def test_name_is_matched_exactly_not_as_a_regex(env: dict[str, str]) -> None:
    name = unique("a.b")
    server_id = boot(name, env)["id"]
    assert show(name, env)["id"] == server_id
    fails("show", name.replace(".", "x"), env=env)
    fails("show", name[:-1], env=env)


def test_unknown_server_is_a_clear_error(env: dict[str, str]) -> None:
    result = fails("show", "no-such-server", env=env)
    assert "No server with a name or ID of 'no-such-server' exists." in result.stderr
    fails("stop", "no-such-server", env=env)
    missing_image = fails("boot", unique("vm"), "--flavor", FLAVOR, "--image", "nope", env=env)
    assert "No image with a name or ID of 'nope'" in missing_image.stderr
    missing_flavor = fails("boot", unique("vm"), "--flavor", "m9.huge", "--image", IMAGE, env=env)
    assert "No flavor with a name or ID of 'm9.huge'" in missing_flavor.stderr


# -- other listings ----------------------------------------------------------------


def test_flavor_image_service_and_hypervisor_lists(env: dict[str, str]) -> None:
    assert FLAVOR in {flavor["name"] for flavor in ok("-f", "json", "flavor-list", env=env).json()}
    assert IMAGE in {image["name"] for image in ok("image-list", "-f", "json", env=env).json()}
    services = ok("-f", "json", "service-list", env=env).json()
    assert any(service["binary"] == "nova-compute" for service in services)
    assert ok("-f", "json", "hypervisor-list", env=env).json()
    for command in ("flavor-list", "image-list", "service-list", "hypervisor-list"):
        assert ok(command, env=env).stdout.strip()


# -- credentials and failures --------------------------------------------------------


def test_bad_password_is_an_error_without_traceback(env: dict[str, str]) -> None:
    result = fails("list", env={**env, "OS_PASSWORD": "not-the-password"})
    assert "ERROR (Unauthorized)" in result.stderr and "(HTTP 401)" in result.stderr


def test_refused_cached_token_logs_in_again(env: dict[str, str], token_cache: Path) -> None:
    ok("list", env=env)
    entries = list((token_cache / "novalite" / "tokens").glob("*.json"))
    assert entries and all(entry.stat().st_mode & 0o077 == 0 for entry in entries)
    for entry in entries:
        cached = json.loads(entry.read_text())
        entry.write_text(json.dumps({**cached, "token": "revoked-token"}))
    ok("list", env=env)
    assert all(json.loads(e.read_text())["token"] != "revoked-token" for e in entries)


def test_credentials_from_the_state_directory_clouds_yaml(server: Any, token_cache: Path) -> None:
    state_env = clean_env(token_cache, {"NOVALITE_STATE_PATH": str(server.state_path)})
    ok("list", env=state_env)
    clouds = Path(server.state_path) / "clouds.yaml"
    named = clean_env(token_cache, {"OS_CLOUD": "novalite", "OS_CLIENT_CONFIG_FILE": str(clouds)})
    ok("flavor-list", env=named)
    fails("list", env={**named, "OS_CLOUD": "elsewhere"})


def test_no_credentials_says_how_to_set_them(tmp_path: Path, token_cache: Path) -> None:
    env = clean_env(
        token_cache, {"NOVALITE_STATE_PATH": str(tmp_path / "none"), "HOME": str(tmp_path)}
    )
    result = nova("list", env=env, timeout=30)
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "OS_AUTH_URL" in result.stderr and "novalite serve" in result.stderr


def test_unreachable_service_is_a_clear_message(token_cache: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = clean_env(
        token_cache,
        {
            "OS_AUTH_URL": f"http://127.0.0.1:{port}/identity",
            "OS_USERNAME": "admin",
            "OS_PASSWORD": "secret",
            "OS_PROJECT_NAME": "admin",
        },
    )
    result = nova("list", env=env, timeout=30)
    assert result.code != 0 and "Traceback" not in result.stderr
    assert f"cannot reach novalite at http://127.0.0.1:{port}" in result.stderr
    assert "novalite serve" in result.stderr


def test_usage_errors_and_help(token_cache: Path) -> None:
    env = clean_env(token_cache)
    assert "boot" in nova("--help", env=env).stdout
    assert nova("list", "-f", "xml", env=env).code != 0
    assert nova("no-such-command", env=env).code != 0


def test_nova_list_wall_time(env: dict[str, str]) -> None:
    ok("list", env=env)  # warm: token cached, bytecode compiled
    times = []
    for _ in range(5):
        started = time.perf_counter()
        ok("list", env=env)
        times.append(time.perf_counter() - started)
    print(f"\nnova list wall time: median {statistics.median(times):.3f}s, min {min(times):.3f}s")


def test_keypairs_quotas_and_limits(env: dict[str, str], tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    name = unique("key")
    ok("keypair-add", name, "--pub-key", str(key.with_suffix(".pub")), env=env)
    listed = ok("keypair-list", "-f", "json", env=env).json()
    assert name in [k["name"] for k in listed]
    assert name in ok("keypair-list", env=env).stdout  # the table
    shown = ok("keypair-show", name, "-f", "json", env=env).json()
    assert shown["public_key"].split()[1] in key.with_suffix(".pub").read_text()
    generated = ok("keypair-add", unique("gen"), env=env).stdout
    assert "PRIVATE KEY" in generated
    missing = fails("keypair-add", unique("x"), "--pub-key", str(tmp_path / "none.pub"), env=env)
    assert "none.pub" in missing.stderr
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-rsa AAAA\n")
    assert "Keypair data is invalid" in fails("keypair-add", unique("bad"), "--pub-key",
                                              str(bad), env=env).stderr
    ok("keypair-delete", name, env=env)
    assert "not found" in fails("keypair-show", name, env=env).stderr
    quotas = ok("quota-show", "-f", "json", env=env).json()
    assert quotas["instances"] != 0 and "cores" in quotas  # -1: unlimited
    limits = ok("limits", env=env).stdout
    assert "Instances" in limits and "RAM" in limits
    assert "at least one quota" in fails("quota-update", "someproject", env=env).stderr
