"""Run a real ``novalite serve`` in a subprocess for tests and benchmarks.

The process gets its own state directory and a free port, is stopped with
SIGTERM by its PID (never by name), and leaves nothing outside its directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_PASSWORD = "novalite-test-admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def novalite_bin(name: str = "novalite") -> str:
    return str(Path(sys.executable).with_name(name))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class RunningServer:
    """A ``novalite serve`` process started by :func:`start`."""

    url: str
    state_path: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    _token: str | None = None

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def token(self, fresh: bool = False) -> str:
        if self._token is None or fresh:
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": ADMIN_PASSWORD}}},
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
            r = httpx.post(f"{self.url}/identity/v3/auth/tokens", json=body, timeout=10)
            r.raise_for_status()
            self._token = r.headers["x-subject-token"]
        return self._token

    def client(self, microversion: str = "2.96") -> httpx.Client:
        """An HTTP client for the compute API with the admin token and a microversion."""
        return httpx.Client(base_url=self.url, timeout=30, headers={
            "X-Auth-Token": self.token(), "OpenStack-API-Version": f"compute {microversion}"})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """The service's JSON log lines, parsed (lines that are not JSON are left out)."""
        events = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process (by PID) and wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


#: The log of a service that could not bind its port (another process took it first).
_PORT_TAKEN = ("Address already in use", "cannot listen on")


def start(state_path: Path, *, port: int | None = None, config: dict[str, dict[str, Any]]
          | None = None, timeout: float = 30.0, extra_env: dict[str, str] | None = None,
          prefix: list[str] | None = None) -> RunningServer:
    """Start ``novalite serve`` on a free port with ``config`` merged over test defaults.
    ``prefix``: a command that runs it, e.g. ``["ip", "netns", "exec", name]`` for a
    machine of its own (the command must exec it, so its pid is the service's).

    A port found free can be taken by another process before the service binds it (an
    ephemeral port of some other listener or connection): when the port was chosen here,
    a start that fails for that reason alone is tried again on another port.
    """
    for attempt in range(3):
        try:
            return _start(state_path, port=port, config=config, timeout=timeout,
                          extra_env=extra_env, prefix=prefix or [])
        except PortTaken:
            if port is not None or attempt == 2:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    """The service exited because its API port was taken."""


def _start(state_path: Path, *, port: int | None, config: dict[str, dict[str, Any]] | None,
           timeout: float, extra_env: dict[str, str] | None, prefix: list[str]
           ) -> RunningServer:
    state_path.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    sections: dict[str, dict[str, Any]] = {
        "DEFAULT": {"state_path": str(state_path)},
        "api": {"host": "127.0.0.1", "port": port, "graceful_timeout": 5.0},
        "compute": {"driver": "fake", "heartbeat_interval": 1.0, "power_sync_interval": 1.0},
        "identity": {"admin_password": ADMIN_PASSWORD},
        "metadata": {"metadata_listen_port": 0},
        # Services side by side on one host would share 10.0.0.0/24 on bridges: tests
        # run user-mode networking unless they ask for bridges (and their own names).
        "network": {"driver": "user"},
        "logging": {"format": "json", "level": "info"},
    }
    for name, values in (config or {}).items():
        sections.setdefault(name, {}).update(values)
    config_path = write_config(state_path / "novalite.toml", sections)
    log_path = state_path / "serve.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVALITE_", "OS_"))}
    env.update(extra_env or {})
    log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the process for its life
    process = subprocess.Popen([*prefix, novalite_bin(), "serve", "--config",
                                str(config_path)],
                               stdout=log_file, stderr=subprocess.STDOUT, env=env)
    log_file.close()
    host = sections["api"]["host"]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:" \
          f"{sections['api']['port']}"
    server = RunningServer(url, state_path, config_path, log_path, process)
    server.env = {
        "OS_AUTH_URL": f"{url}/identity", "OS_USERNAME": "admin",
        "OS_PASSWORD": ADMIN_PASSWORD, "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "RegionOne", "OS_IDENTITY_API_VERSION": "3",
        "NOVALITE_STATE_PATH": str(state_path),
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = server.log()[offset:]
            error = PortTaken if any(t in tail for t in _PORT_TAKEN) else RuntimeError
            raise error(f"novalite serve exited with {process.returncode}:\n"
                        f"{server.log()[-4000:]}")
        if '"novalite ready"' in server.log()[offset:]:
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"novalite serve not ready after {timeout} s:\n{server.log()[-4000:]}")


def wait_for(fn: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Call ``fn`` until it returns a truthy value; return it (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")
