"""What a newcomer meets from a fresh clone: `./dev`, `novalite serve`'s options, the
root URL, the openrc file, `nova help`, and one service per state directory."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from novalite.testing.server import (
    RunningServer,
    free_port,
    novalite_bin,
    start,
    write_config,
)

REPO = Path(__file__).resolve().parent.parent
NOVA = str(Path(sys.executable).parent / "nova")
CLIENTS = REPO / ".venv-clients" / "bin"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None,
                                reason="./dev checks Debian packages with dpkg-query")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOVALITE_", "OS_"))}
    env.update(extra)
    return env


def run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env if env is not None else clean_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# -- ./dev ---------------------------------------------------------------------------


@needs_dpkg
def test_dev_serve_a_second_time_installs_nothing_and_prints_nothing() -> None:
    first = run([str(REPO / "dev"), "serve", "--help"], timeout=600)
    assert first.returncode == 0, first.stderr
    assert "Warning" not in first.stderr and "deprecated" not in first.stderr, first.stderr
    again = run([str(REPO / "dev"), "serve", "--help"])
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""  # no "installing", no pip, no setuptools
    assert "--port" in again.stdout and "--state-path" in again.stdout


def test_building_novalite_prints_no_setuptools_warnings(tmp_path: Path) -> None:
    """The licence is declared as setuptools wants it (an SPDX expression): building the
    package, as `./dev`'s first run does, warns about nothing."""
    tree = tmp_path / "novalite-src"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "novalite", tree / "novalite", ignore=ignore)
    shutil.copytree(REPO / "drivers", tree / "drivers", ignore=ignore)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                 str(tmp_path / "dist"), str(tree)], timeout=600)
    assert built.returncode == 0, built.stderr
    assert list((tmp_path / "dist").glob("novalite-*.whl"))
    assert "Warning" not in built.stdout + built.stderr, built.stdout + built.stderr
    assert "license" not in (built.stdout + built.stderr).lower()


@needs_dpkg
@pytest.mark.clients
def test_dev_clients_installs_the_real_clients_on_their_own(tmp_path: Path) -> None:
    shutil.copy(REPO / "dev", tmp_path / "dev")  # a checkout of its own: a venv of its own
    first = run([str(tmp_path / "dev"), "clients"], timeout=900)
    assert first.returncode == 0, first.stderr
    assert "installing into .venv-clients" in first.stderr
    for command in ("openstack", "nova"):
        assert (tmp_path / ".venv-clients" / "bin" / command).exists()
    assert not (tmp_path / ".venv").exists()  # the clients only
    again = run([str(tmp_path / "dev"), "clients"])
    assert again.returncode == 0, again.stderr
    assert "installing" not in again.stderr and "pip" not in again.stderr


def test_dev_without_a_command_names_all_three() -> None:
    out = run([str(REPO / "dev")])
    assert out.returncode == 2
    for command in ("./dev serve", "./dev test", "./dev clients"):
        assert command in out.stderr


# -- novalite serve --port --state-path ---------------------------------------------------


def launch(args: list[str], log: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    """``novalite serve ARGS`` in the background, its output in ``log``; waits for ready."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([novalite_bin(), "serve", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env or clean_env())
    deadline = time.monotonic() + 30
    while '"novalite ready"' not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"novalite serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def test_serve_help_shows_port_and_state_path() -> None:
    out = run([novalite_bin(), "serve", "--help"], env=clean_env(COLUMNS="200"))
    assert out.returncode == 0
    for text in ("--port", "--state-path", "NOVALITE_API__PORT", "NOVALITE_STATE_PATH",
                 "[api] port", "[DEFAULT] state_path"):
        assert text in out.stdout, text


def test_serve_port_and_state_path_override_the_configuration(tmp_path: Path) -> None:
    configured_state = tmp_path / "configured"
    config = write_config(tmp_path / "novalite.toml", {
        "DEFAULT": {"state_path": str(configured_state)},
        "api": {"port": free_port()},
        "compute": {"driver": "fake"},
        "logging": {"format": "json"}})
    state, port = tmp_path / "given", free_port()
    env = clean_env(NOVALITE_API__PORT=str(free_port()),
                    NOVALITE_DEFAULT__STATE_PATH=str(tmp_path / "from-env"))
    proc = launch(["--config", str(config), "--port", str(port), "--state-path", str(state)],
                  tmp_path / "serve.log", env)
    try:
        root = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert root.status_code == 200
        assert (state / "novalite.sqlite").exists() and (state / "clouds.yaml").exists()
        assert not configured_state.exists() and not (tmp_path / "from-env").exists()
        clouds = yaml.safe_load((state / "clouds.yaml").read_text())
        assert clouds["clouds"]["novalite"]["auth"]["auth_url"] == (
            f"http://127.0.0.1:{port}/identity")
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "0"], "0: expected a TCP port (1-65535)"),
    (["--port", "65536"], "65536: expected a TCP port (1-65535)"),
    (["--port", "http"], "--port"),
    (["--state-path", ""], "expected a directory"),
])
def test_serve_rejects_a_bad_port_or_state_path(args: list[str], message: str) -> None:
    out = run([novalite_bin(), "serve", *args], env=clean_env(COLUMNS="200"))
    assert out.returncode == 2
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_serve_rejects_a_state_path_that_is_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    out = run([novalite_bin(), "serve", "--state-path", str(a_file)],
              env=clean_env(COLUMNS="200"))
    assert out.returncode == 2
    assert f"{a_file} exists and is not a directory" in out.stderr


# -- GET / -------------------------------------------------------------------------------


def test_root_url_is_a_json_index_of_the_services(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["name"] == "novalite"
    services = body["services"]
    assert services["identity"]["href"] == f"{server.url}/identity"
    assert services["compute"]["href"] == f"{server.url}/compute"
    assert services["image"]["href"] == f"{server.url}/image"
    assert services["identity"]["version"] == f"{server.url}/identity/v3/"
    assert services["compute"]["version"] == f"{server.url}/compute/v2.1/"
    for entry in services.values():  # every version document answers, without a token
        for key in ("versions", "version"):
            if key in entry:
                doc = httpx.get(entry[key], timeout=10)
                assert doc.status_code in (200, 300), (entry[key], doc.status_code)
                assert doc.json()
    assert httpx.head(f"{server.url}/", timeout=10).status_code == 200


# -- openrc ------------------------------------------------------------------------------


def sourced(openrc: Path, *command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``command`` run by a shell that sourced ``openrc`` first."""
    script = '. "$1" && shift && exec "$@"'
    return run(["bash", "-c", script, "bash", str(openrc), *command], env=env, timeout=180)


def test_first_start_writes_an_openrc_beside_clouds_yaml(tmp_path: Path) -> None:
    state = tmp_path / "state"
    srv = start(state, config={"identity": {"admin_password": ""}})  # generated
    try:
        openrc = state / "openrc"
        assert stat.S_IMODE(openrc.stat().st_mode) == 0o600
        password = yaml.safe_load((state / "clouds.yaml").read_text())[
            "clouds"]["novalite"]["auth"]["password"]
        env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
        printed = sourced(openrc, "env", env=env)
        variables = dict(line.split("=", 1) for line in printed.stdout.splitlines()
                         if line.startswith("OS_"))
        assert variables["OS_AUTH_URL"] == f"{srv.url}/identity"
        assert variables["OS_PASSWORD"] == password
        assert variables["OS_USERNAME"] == "admin" and variables["OS_PROJECT_NAME"] == "admin"
        assert variables["OS_USER_DOMAIN_NAME"] == variables["OS_PROJECT_DOMAIN_NAME"] == (
            "Default")
        assert variables["OS_IDENTITY_API_VERSION"] == "3"
        listed = sourced(openrc, NOVA, "flavor-list", env=env)  # novalite's own nova
        assert listed.returncode == 0 and "m1.tiny" in listed.stdout, listed.stderr
        if (CLIENTS / "nova").exists():  # python-novaclient, which reads no clouds.yaml
            real = sourced(openrc, str(CLIENTS / "nova"), "flavor-list", env=env)
            assert real.returncode == 0 and "m1.tiny" in real.stdout, real.stderr
    finally:
        srv.stop()
    # A restart on another port: the password is remembered, the URL follows the port.
    again = start(state, config={"identity": {"admin_password": ""}})
    try:
        text = (state / "openrc").read_text()
        assert f"OS_AUTH_URL={again.url}/identity" in text and password in text
    finally:
        again.stop()


# -- nova help ---------------------------------------------------------------------------


def nova(*args: str) -> subprocess.CompletedProcess[str]:
    return run([NOVA, *args], env=clean_env(XDG_CACHE_HOME="/nonexistent", COLUMNS="100"))


def test_nova_help_lists_the_commands_with_one_line_descriptions() -> None:
    out = nova("help")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for command, description in (("boot", "Boot a new server."), ("list", "List servers."),
                                 ("help", "Display help about this program")):
        assert any(line.split()[:1] == [command] and description in line for line in lines), (
            command, out.stdout)
    assert 'See "nova help COMMAND" for help on a specific command.' in out.stdout
    assert "delete specified server(s)." in out.stdout  # whole descriptions, not cut short


def test_nova_help_command_shows_its_options() -> None:
    out = nova("help", "boot")
    assert out.returncode == 0, out.stderr
    assert "Usage: nova boot" in out.stdout and "--flavor" in out.stdout
    assert out.stdout == nova("boot", "--help").stdout


def test_nova_help_of_an_unknown_command_is_an_error() -> None:
    out = nova("help", "no-such-command")
    assert out.returncode == 1
    assert out.stderr.strip() == "ERROR (CommandError): 'no-such-command' is not a valid subcommand"


# -- one service per state directory --------------------------------------------------------


def test_a_second_serve_on_the_same_state_path_is_refused_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start(state)
    try:
        started = time.monotonic()
        second = run([novalite_bin(), "serve", "--config", str(first.config_path),
                      "--port", str(free_port())], timeout=30)
        assert time.monotonic() - started < 15
        assert second.returncode == 1
        assert (f"state path {state} is in use by another novalite serve "
                f"(pid {first.process.pid})") in second.stderr, second.stderr
        assert httpx.get(f"{first.url}/", timeout=10).status_code == 200  # undisturbed
    finally:
        first.stop()


def test_serve_starts_again_after_the_holder_was_killed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start(state)
    first.process.send_signal(signal.SIGKILL)  # no clean-up at all: the kernel frees the lock
    first.process.wait()
    again = start(state)
    try:
        assert again.client().get("/compute/v2.1/flavors").status_code == 200
    finally:
        assert again.stop() == 0
    # Stopped cleanly: a third start finds the directory free as well.
    third = start(state)
    third.stop()
