"""The repository's novalite.toml runs as is: every key at its default."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from novalite.testing.server import free_port, novalite_bin

REPO = Path(__file__).resolve().parent.parent


def test_the_shipped_novalite_toml_starts_the_service(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVALITE_", "OS_"))}
    # Only what a test must not share with the user: where state lives, the port, and a
    # driver that starts no real guests.
    env.update(NOVALITE_STATE_PATH=str(tmp_path / "state"), NOVALITE_API__PORT=str(port),
               NOVALITE_COMPUTE__DRIVER="fake", NOVALITE_LOGGING__FORMAT="json")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([novalite_bin(), "serve", "--config",
                                 str(REPO / "novalite.toml")], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while '"novalite ready"' not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert '"novalite ready"' in text, text
        assert f":{port}" in text and "clouds.yaml" in text
        # [network] driver = "auto" with the fake driver: no bridges (its guests have no
        # NICs to put on them), and the log says so.
        assert '"mode":"user"' in text and "the fake compute driver puts no NIC" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
