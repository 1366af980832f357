"""Small helpers for API tests: boot a server and wait for a status."""

from __future__ import annotations

from typing import Any

import httpx

from novalite.testing.server import wait_for


def demo_image(c: httpx.Client) -> str:
    return c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]


def boot(c: httpx.Client, name: str, **extra: Any) -> str:
    body = {"server": {"name": name, "imageRef": demo_image(c), "flavorRef": "1", **extra}}
    r = c.post("/compute/v2.1/servers", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def wait_status(c: httpx.Client, sid: str, status: str, timeout: float = 15) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        server = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
        return server if server["status"] == status and server["OS-EXT-STS:task_state"] is None \
            else None

    return wait_for(check, timeout)  # type: ignore[no-any-return]


def wait_gone(c: httpx.Client, sid: str, timeout: float = 15) -> None:
    wait_for(lambda: c.get(f"/compute/v2.1/servers/{sid}").status_code == 404, timeout)
