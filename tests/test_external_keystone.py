"""An external Keystone validates the tokens: ``[keystone_authtoken] auth_url``.

The external Keystone is a second, real ``novalite serve``: its embedded identity
speaks Keystone v3's token issue and validation shapes over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from novalite.testing.server import ADMIN_PASSWORD, RunningServer, start


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start(tmp_path_factory.mktemp("keystone"))
    try:
        yield srv
    finally:
        srv.stop()


def test_tokens_from_the_external_keystone_work_and_the_embedded_one_is_off(
        keystone: RunningServer, tmp_path: Path) -> None:
    nova = start(tmp_path / "nova", config={"keystone_authtoken": {
        "auth_url": f"{keystone.url}/identity/v3", "username": "admin",
        "password": ADMIN_PASSWORD, "project_name": "admin", "cache_seconds": 0.0}})
    try:
        token = keystone.token(fresh=True)
        r = httpx.get(f"{nova.url}/compute/v2.1/servers", headers={"X-Auth-Token": token})
        assert r.status_code == 200 and r.json() == {"servers": []}
        flavors = httpx.get(f"{nova.url}/compute/v2.1/os-services",
                            headers={"X-Auth-Token": token})
        assert flavors.status_code == 200  # the admin role came from the external Keystone
        assert httpx.get(f"{nova.url}/compute/v2.1/servers",
                         headers={"X-Auth-Token": "bogus"}).status_code == 401
        assert httpx.get(f"{nova.url}/identity/v3").status_code == 404
        # revoked at the external Keystone: refused here at once (no cache configured)
        assert httpx.delete(f"{keystone.url}/identity/v3/auth/tokens", headers={
            "X-Auth-Token": token, "X-Subject-Token": token}).status_code == 204
        assert httpx.get(f"{nova.url}/compute/v2.1/servers",
                         headers={"X-Auth-Token": token}).status_code == 401
    finally:
        nova.stop()


def test_wrong_service_credentials_stop_the_service_with_one_line(
        keystone: RunningServer, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        start(tmp_path / "nova", config={"keystone_authtoken": {
            "auth_url": f"{keystone.url}/identity", "username": "admin",
            "password": "wrong"}}, timeout=20)
    message = str(info.value)
    assert "novalite: error: [keystone_authtoken] Keystone at" in message
    assert "refused novalite's service credentials" in message
    assert "Traceback" not in message
