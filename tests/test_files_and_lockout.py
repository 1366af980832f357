"""Passwords and files: failed-login lockout and its expiry, no timing difference for
unknown users, state readable by the service's user only, and the web-download
import filtered as Glance does (``[import_filtering_opts]``), loopback and
link-local refused by default."""

from __future__ import annotations

import http.server
import os
import secrets
import stat
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import ADMIN_PASSWORD, RunningServer, start, wait_for
from tests.helpers import boot, wait_status

pytestmark = pytest.mark.backends("sqlite")

#: Files the test harness (not the service) writes into the state directory.
HARNESS_FILES = {"novalite.toml", "serve.log"}


def _login(srv: RunningServer, user: str, password: str) -> httpx.Response:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}}}}
    return httpx.post(f"{srv.url}/identity/v3/auth/tokens", json=body, timeout=10)


# -- lockout and timing ----------------------------------------------------------------

@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start(tmp_path_factory.mktemp("strict") / "state", config={"identity": {
        "lockout_failure_attempts": 3, "lockout_duration": 2.0}})
    try:
        yield srv
    finally:
        srv.stop()


def _user(srv: RunningServer, password: str) -> str:
    with srv.client() as admin:
        project = admin.get("/identity/v3/projects", params={"name": "admin"}).json()
        name = f"guessme-{secrets.token_hex(3)}"
        r = admin.post("/identity/v3/users", json={"user": {
            "name": name, "password": password,
            "default_project_id": project["projects"][0]["id"]}})
        assert r.status_code == 201, r.text
        user_id = r.json()["user"]["id"]
        role = admin.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]
        admin.put(f"/identity/v3/projects/{project['projects'][0]['id']}/users/{user_id}/"
                  f"roles/{role['id']}")
    return name


def test_failed_logins_lock_the_account_until_the_duration_passes(strict: RunningServer
                                                                  ) -> None:
    name = _user(strict, "right-password")
    assert _login(strict, name, "right-password").status_code == 201
    for _ in range(3):
        r = _login(strict, name, "wrong")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 401
    # Locked: the right password is refused too, with the same answer.
    r = _login(strict, name, "right-password")
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "The request you have made requires authentication."
    assert any(e.get("event") == "account locked after failed logins"
               for e in strict.log_events())
    # After lockout_duration (2 s) the right password works again.
    time.sleep(2.2)
    assert _login(strict, name, "right-password").status_code == 201


def test_a_successful_login_resets_the_count(strict: RunningServer) -> None:
    name = _user(strict, "right-password")
    for _ in range(5):
        assert _login(strict, name, "wrong").status_code == 401
        assert _login(strict, name, "wrong").status_code == 401
        assert _login(strict, name, "right-password").status_code == 201


def test_other_users_are_not_locked_out_by_someone_elses_guesses(strict: RunningServer
                                                                ) -> None:
    victim = _user(strict, "right-password")
    for _ in range(4):
        _login(strict, victim, "wrong")
    assert _login(strict, "admin", ADMIN_PASSWORD).status_code == 201


def test_an_unknown_user_takes_as_long_as_a_wrong_password(strict: RunningServer) -> None:
    known = _user(strict, "right-password")

    def timed(user: str) -> float:
        started = time.perf_counter()
        assert _login(strict, user, "wrong").status_code == 401
        return time.perf_counter() - started

    # Below the lockout threshold for the known user: every try is a plain failure.
    known_times, unknown_times = [], []
    for _ in range(2):
        known_times.append(timed(known))
        unknown_times.append(timed(f"nobody-{secrets.token_hex(4)}"))
    _login(strict, known, "right-password")  # reset its count
    known_times.append(timed(known))
    unknown_times.append(timed(f"nobody-{secrets.token_hex(4)}"))
    known_ms = statistics.median(known_times) * 1000
    unknown_ms = statistics.median(unknown_times) * 1000
    print(f"login refused: known user {known_ms:.1f} ms, unknown user {unknown_ms:.1f} ms")
    assert unknown_ms > 0.6 * known_ms


# -- files ------------------------------------------------------------------------------

def _open_to_others(state: Path) -> list[str]:
    """Paths under ``state`` (the harness's own files aside) with any group/other bit."""
    loose = []
    if stat.S_IMODE(state.stat().st_mode) & 0o077:
        loose.append(f"{state} {oct(stat.S_IMODE(state.stat().st_mode))}")
    for root, dirs, names in os.walk(state):
        for name in dirs + names:
            path = Path(root) / name
            if path.parent == state and name in HARNESS_FILES or path.is_symlink():
                continue
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077:
                loose.append(f"{path} {oct(mode)}")
    return loose


def test_state_is_readable_by_the_service_user_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)  # as a user's `mkdir` would, whatever this process's umask
    srv = start(state)
    try:
        with srv.client() as c:
            sid = boot(c, "modes")
            wait_status(c, sid, "ACTIVE")
            image = c.post("/image/v2/images", json={
                "name": "modes", "disk_format": "raw", "container_format": "bare"}).json()
            r = c.put(f"/image/v2/images/{image['id']}/file", content=os.urandom(4096),
                      headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 204, r.text
        assert (state / "novalite.sqlite-wal").exists()
        assert list((state / "images").iterdir())
        assert _open_to_others(state) == []
    finally:
        srv.stop()


def test_a_state_directory_left_open_is_tightened_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    srv = start(state)
    srv.stop()
    # As an older novalite left them: world-readable directory, database and images.
    for path in [state, *state.rglob("*")]:
        if path.name not in HARNESS_FILES and not path.is_symlink():
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
    srv = start(state)
    try:
        loose = _open_to_others(state)
        # Only the state directory, the database files and the service's top-level
        # directories (and image files) are tightened; what is inside a 0700 directory
        # is out of other users' reach anyway.
        assert not any(str(state / n) + " " in entry for entry in loose
                       for n in ("novalite.sqlite", "novalite.sqlite-wal", "images"))
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600
                   for p in (state / "images").iterdir())
    finally:
        srv.stop()


# -- the web-download import filter ------------------------------------------------------

def _import(c: httpx.Client, uri: str) -> httpx.Response:
    image = c.post("/image/v2/images", json={
        "name": "filtered", "disk_format": "raw", "container_format": "bare"}).json()
    return c.post(f"/image/v2/images/{image['id']}/import",
                  json={"method": {"name": "web-download", "uri": uri}})


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1/disk.img",             # loopback
    "http://localhost/disk.img",             # a name resolving to loopback
    "http://[::1]/disk.img",                 # IPv6 loopback
    "http://127.1.2.3/disk.img",             # anywhere in 127/8
    "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata services
    "http://0.0.0.0/disk.img",               # unspecified
    "http://[::ffff:127.0.0.1]/disk.img",    # loopback, IPv4-mapped
    "http://example.com:8774/disk.img",      # a port not in allowed_ports (80, 443)
    "ftp://example.com/disk.img",            # a scheme not allowed
])
def test_import_urls_refused_by_default(server: RunningServer, uri: str) -> None:
    with server.client() as c:
        r = _import(c, uri)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("URI for web-download does not pass filtering")


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_redirect_to_a_refused_host_is_not_followed(tmp_path: Path) -> None:
    handler = type("Handler", (_Redirect,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    srv = start(tmp_path / "state", config={"import_filtering_opts": {
        "allowed_hosts": ["127.0.0.1"], "allowed_ports": []}})
    try:
        port = httpd.server_address[1]
        # 127.0.0.1 is allowed here; it redirects to localhost, which is not.
        handler.target = f"http://localhost:{srv.url.rsplit(':', 1)[1]}/compute/"
        with srv.client() as c:
            r = _import(c, f"http://127.0.0.1:{port}/disk.img")
            assert r.status_code == 202, r.text
            image_id = r.request.url.path.split("/")[-2]
            failed = wait_for(lambda: (s := c.get(f"/image/v2/images/{image_id}").json()).get(
                "os_glance_failed_import") and s, 20)
        assert failed["status"] == "queued"
        assert "does not pass filtering" in failed["os_glance_import_error"]
        assert "localhost" in failed["os_glance_import_error"]
    finally:
        srv.stop()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
