"""Waiting for servers: ``boot --poll`` (until ACTIVE or ERROR) and ``delete --wait`` (until 404).

On a terminal the state is shown live with a spinner on stderr; otherwise
each change of state is printed as one line on stderr, so stdout stays clean
for ``-f json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from novalite.cli.client import Session
from novalite.cli.nova_errors import CliError
from novalite.cli.output import console, power_state_name

FIRST_INTERVAL = 0.25
MAX_INTERVAL = 2.0


class ResourceInErrorState(CliError):
    """The server ended in ERROR; the message is its fault."""

    title = "ResourceInErrorState"


def describe(server: dict[str, Any]) -> str:
    """``BUILD (task: spawning, power: NOSTATE, 40%)`` for one poll."""
    task = server.get("OS-EXT-STS:task_state") or "-"
    power = power_state_name(server.get("OS-EXT-STS:power_state"))
    text = f"{server.get('status')} (task: {task}, power: {power}"
    progress = server.get("progress")
    if progress not in (None, 0):
        text += f", {progress}%"
    return text + ")"


class _Display:
    """A live status line on a terminal, one line per change elsewhere."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.err = console(stderr=True)
        self.last: dict[str, str] = {}
        self.status: Any = None
        self.started = time.monotonic()

    def __enter__(self) -> _Display:
        if self.err.is_terminal:
            self.status = self.err.status(self.title)
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def update(self, text: str, key: str = "") -> None:
        """Show ``text`` (the state of ``key``); a change of state is also kept as a line."""
        elapsed = time.monotonic() - self.started
        if self.status is not None:
            from rich.markup import escape

            self.status.update(f"{escape(self.title)}: {escape(text)} [dim]{elapsed:.0f}s[/]")
        if self.last.get(key) != text:
            self.last[key] = text
            prefix = f"[{elapsed:5.1f}s] " if self.status is not None else ""
            self.err.print(f"{prefix}{self.title}: {text}", markup=False, highlight=False)


def _poll(step: Callable[[], bool], display: AbstractContextManager[Any]) -> None:
    interval = FIRST_INTERVAL
    with display:
        while not step():
            time.sleep(interval)
            interval = min(interval * 1.5, MAX_INTERVAL)


def wait_for_server(session: Session, server_id: str, title: str) -> dict[str, Any]:
    """Poll the server until ACTIVE; raise `ResourceInErrorState` with its fault on ERROR."""
    latest: dict[str, Any] = {}
    display = _Display(title)

    def step() -> bool:
        latest.update(session.compute_json("GET", f"/servers/{server_id}")["server"])
        display.update(describe(latest))
        return latest.get("status") in {"ACTIVE", "ERROR"}

    _poll(step, display)
    if latest.get("status") == "ERROR":
        fault = latest.get("fault") or {}
        message = fault.get("message") if isinstance(fault, dict) else None
        raise ResourceInErrorState(
            f"Server {title} is in the error state due to '{message or 'an unknown fault'}'"
        )
    return latest


def wait_for_delete(session: Session, servers: dict[str, str], quiet: bool = False) -> None:
    """Poll each server (id → label) until its GET answers 404."""
    pending = dict(servers)
    display: AbstractContextManager[Any] = (
        nullcontext() if quiet else _Display(f"deleting {len(pending)} server(s)")
    )

    def step() -> bool:
        for server_id, label in list(pending.items()):
            response = session.compute("GET", f"/servers/{server_id}", accept=(404,))
            if response.status_code == 404:
                del pending[server_id]
                _note(display, server_id, f"{label} deleted")
                continue
            server = response.json().get("server") or {}
            if server.get("status") == "ERROR" and not server.get("OS-EXT-STS:task_state"):
                raise ResourceInErrorState(f"Server {label} went to ERROR while deleting")
            _note(display, server_id, f"{label}: {describe(server)}")
        return not pending

    _poll(step, display)


def _note(display: AbstractContextManager[Any], key: str, text: str) -> None:
    if isinstance(display, _Display):
        display.update(text, key)
