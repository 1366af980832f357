"""`nova image-*` commands, run as real processes against a real `novalite serve`.

Files are real raw and qcow2 disks made with ``qemu-img``; web downloads come
from an HTTP server this module starts on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from novalite.testing.server import start
from tests.test_nova_cli import NOVA, clean_env, fails, ok, unique

pytestmark = pytest.mark.backends("sqlite")  # the CLI is under test, not the database


@pytest.fixture(scope="module")
def token_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture
def env(server: Any, token_cache: Path) -> dict[str, str]:
    return clean_env(token_cache, server.env)


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("disks")
    raw = d / "disk.raw"
    subprocess.run(["qemu-img", "create", "-f", "raw", str(raw), "8M"], check=True,
                   capture_output=True)
    with open(raw, "r+b") as f:
        f.write(os.urandom(1 << 20))
    qcow2 = d / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True,
                   capture_output=True)
    return {"raw": raw, "qcow2": qcow2}


def test_upload_list_show_download_delete(env: dict[str, str], disks: dict[str, Path],
                                          tmp_path: Path) -> None:
    name = unique("img")
    result = ok("-f", "json", "image-upload", name, "--file", str(disks["qcow2"]),
                "--property", "os_distro=debian", env=env)
    image = result.json()
    assert image["status"] == "active" and image["disk_format"] == "qcow2"  # from the header
    assert image["os_distro"] == "debian" and image["virtual_size"] == 8 << 20
    assert f"Uploading {name}" in result.stderr and "MiB/s" in result.stderr
    assert name in ok("image-list", env=env).stdout
    shown = ok("image-show", name, "-f", "json", env=env).json()
    assert shown["id"] == image["id"]
    assert shown["checksum"] == hashlib.md5(disks["qcow2"].read_bytes()).hexdigest()
    target = tmp_path / "copy.qcow2"
    ok("image-download", name, "--file", str(target), env=env)
    assert target.read_bytes() == disks["qcow2"].read_bytes()
    ok("image-delete", name, env=env)
    assert name not in ok("image-list", env=env).stdout
    failed = fails("image-show", name, env=env)
    assert f"No image with a name or ID of '{name}' exists." in failed.stderr


def test_upload_refuses_mismatched_format_with_a_clear_error(env: dict[str, str],
                                                            disks: dict[str, Path]) -> None:
    name = unique("bad")
    failed = fails("image-upload", name, "--file", str(disks["qcow2"]), "--disk-format", "raw",
                   env=env)
    assert "disk_format is raw but the uploaded data is a qcow2 image" in failed.stderr
    assert "(HTTP 400)" in failed.stderr
    assert ok("image-show", name, "-f", "json", env=env).json()["status"] == "queued"
    ok("image-delete", name, env=env)


def test_ctrl_c_during_upload_deletes_the_image_and_says_so(env: dict[str, str],
                                                            tmp_path: Path) -> None:
    fifo = tmp_path / "slow.raw"
    os.mkfifo(fifo)
    name = unique("ctrlc")
    # Ctrl-C as in a terminal: a process started from a background job (`cmd &` in a
    # script) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen([NOVA, "image-upload", name, "--file", str(fifo), "--disk-format",
                             "raw"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        with open(fifo, "wb") as writer:
            writer.write(os.urandom(2 << 20))
            writer.flush()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # wait until the data is streaming in
                listed = ok("-f", "json", "image-list", env=env).json()
                if any(i["name"] == name and i["status"] == "saving" for i in listed):
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the upload never started")
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "upload interrupted" in stderr and "was deleted" in stderr, stderr
    assert "Traceback" not in stderr
    assert name not in ok("image-list", env=env).stdout


def test_image_create_snapshots_a_server_and_polls(env: dict[str, str]) -> None:
    vm = unique("vm")
    ok("boot", vm, "--flavor", "m1.tiny", "--image", "demo", "--poll", env=env)
    snap = unique("snap")
    result = ok("-f", "json", "image-create", vm, snap, "--poll", "--metadata", "k=v", env=env)
    image = result.json()
    assert image["status"] == "active" and image["name"] == snap
    assert image["image_type"] == "snapshot" and image["k"] == "v"
    server = ok("show", vm, "-f", "json", env=env).json()
    assert image["instance_uuid"] == server["id"]
    ok("delete", vm, env=env)
    ok("image-delete", snap, env=env)


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web(disks: dict[str, Path]) -> Iterator[str]:
    handler = type("Handler", (_Files,), {"files": {"/disk.qcow2": disks["qcow2"].read_bytes()}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def web_env(tmp_path: Path, db_config: dict[str, dict[str, Any]], token_cache: Path
            ) -> Iterator[dict[str, str]]:
    """A service of this test's own that may import from this machine's loopback (refused
    by default: [import_filtering_opts]), and the CLI's environment for it."""
    srv = start(tmp_path / "state", config={**db_config, "import_filtering_opts": {
        "allowed_hosts": ["127.0.0.1"], "allowed_ports": []}})
    try:
        yield clean_env(token_cache, srv.env)
    finally:
        srv.stop()


def test_upload_from_url_imports_with_web_download(web_env: dict[str, str], web: str,
                                                   disks: dict[str, Path]) -> None:
    env = web_env
    name = unique("web")
    result = ok("-f", "json", "image-upload", name, "--url", f"{web}/disk.qcow2",
                "--disk-format", "qcow2", env=env)
    image = result.json()
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(disks["qcow2"].read_bytes()).hexdigest()
    assert f"Importing {name}" in result.stderr
    failed = fails("image-upload", unique("web404"), "--url", f"{web}/missing", env=env)
    assert "HTTP 404" in failed.stderr and "left queued" in failed.stderr
