"""Run schemathesis, the property-based API fuzzer, against a running novalite.

The mounts' OpenAPI documents (``<mount>/openapi.json``, :mod:`novalite.api.openapi`)
are joined into one (paths under their mount) and given to one ``schemathesis run``
with an admin token; every operation is fuzzed.
The figures come from the service's own request log (each request it answered and
its status), not from the fuzzer's summary: ``requests`` is what the service
served during the run, ``server_errors`` those it answered with a 5xx.

Optionally ``parameters`` binds path parameters to resources that exist (a server,
an image, a flavor...) so the fuzzer's requests reach past the 404 of a made-up id;
destructive methods are then left out (``exclude_methods``), or the first DELETE
would take the resource from every later request.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from novalite.testing.server import RunningServer

MOUNTS = ("/compute", "/image", "/identity", "/volume", "/network")


#: schemathesis hooks: Glance's JSON-patch media type is sent as JSON.
_HOOKS = """import schemathesis

schemathesis.serializer.alias("application/openstack-images-v2.1-json-patch",
                              "application/json")
"""


@dataclass
class FuzzResult:
    mounts: tuple[str, ...]
    operations: int = 0
    test_cases: int = 0
    requests: int = 0
    #: "<status> <method> <path>" of each 5xx the service logged, but 501.
    server_errors: list[str] = field(default_factory=list)
    #: The 501s: Nova's answer for what the driver does not do (os-hosts power actions),
    #: by design, counted apart.
    not_implemented: list[str] = field(default_factory=list)
    seconds: float = 0.0
    exit_code: int = 0
    output: str = ""


def schemathesis_bin() -> str:
    """The ``schemathesis`` script of this interpreter's environment (or on PATH)."""
    beside = Path(sys.executable).with_name("schemathesis")
    if beside.exists():
        return str(beside)
    found = shutil.which("schemathesis")
    if found is None:
        raise FileNotFoundError("schemathesis is not installed (pip install '.[test]')")
    return found


def _toml_value(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def joined_document(srv: RunningServer, mounts: tuple[str, ...]) -> dict[str, Any]:
    """The mounts' documents as one, each path under its mount."""
    joined: dict[str, Any] = {"paths": {}}
    for mount in mounts:
        doc = httpx.get(f"{srv.url}{mount}/openapi.json", timeout=60).json()
        if not joined.get("openapi"):
            joined.update({k: v for k, v in doc.items() if k != "paths"})
            joined["info"] = dict(doc["info"], title="novalite: " + ", ".join(mounts))
            joined["servers"] = [{"url": "/"}]
        for path, operations in doc["paths"].items():
            for operation in operations.values():
                operation["operationId"] = mount.strip("/") + "_" + operation["operationId"]
            joined["paths"][mount + path] = operations
    return joined


def fuzz(srv: RunningServer, mounts: tuple[str, ...] = MOUNTS, *, max_examples: int = 3,
         phases: str = "fuzzing", workers: int = 2,
         parameters: dict[str, str] | None = None, exclude_methods: tuple[str, ...] = (),
         exclude_paths: tuple[str, ...] = (), seed: int | None = None,
         timeout: float = 600.0) -> FuzzResult:
    """Fuzz every operation of ``mounts`` (``/compute``...) on ``srv``; see the module."""
    result = FuzzResult(mounts)
    before = len(srv.log_events())
    with tempfile.TemporaryDirectory(prefix="novalite-fuzz-") as tmp:
        config = Path(tmp) / "schemathesis.toml"
        lines = ["[parameters]"] + [f'"path.{name}" = {_toml_value(value)}'
                                    for name, value in (parameters or {}).items()]
        config.write_text("\n".join(lines) + "\n")
        document = Path(tmp) / "openapi.json"
        document.write_text(json.dumps(joined_document(srv, mounts)))
        hooks = Path(tmp) / "novalite_fuzz_hooks.py"
        hooks.write_text(_HOOKS)
        cmd = [schemathesis_bin(), "--no-color", "--config-file", str(config), "run",
               str(document), "--url", srv.url,
               "-H", f"X-Auth-Token: {srv.token()}", "--checks", "not_a_server_error",
               "--max-examples", str(max_examples), "--phases", phases,
               "--workers", str(workers), "--request-timeout", "30",
               "--suppress-health-check", "all"]
        for method in exclude_methods:
            cmd += ["--exclude-method", method]
        for path in exclude_paths:
            cmd += ["--exclude-path-regex", path]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        started = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=tmp, env={**os.environ, "SCHEMATHESIS_HOOKS": str(hooks)})
        result.seconds = time.monotonic() - started
    result.exit_code = done.returncode
    result.output = done.stdout + done.stderr
    tested = re.search(r"Tested:\s+(\d+)", result.output)
    result.operations = int(tested.group(1)) if tested else 0
    cases = re.search(r"(\d+) generated", result.output)
    result.test_cases = int(cases.group(1)) if cases else 0
    for event in srv.log_events()[before:]:
        if event.get("event") != "request" or not str(event.get("path", "")).startswith(mounts):
            continue
        result.requests += 1
        status = int(event.get("status", 0))
        if status >= 500:
            (result.not_implemented if status == 501 else result.server_errors).append(
                f"{status} {event.get('method')} {event.get('path')}")
    return result
