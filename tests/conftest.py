"""Shared fixtures: a real ``novalite serve`` on a free port, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from novalite.testing.server import RunningServer, start


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One service for the session, fake driver on two hosts."""
    srv = start(tmp_path_factory.mktemp("novalite"),
                config={"compute": {"hosts": ["compute-a", "compute-b"]}})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A service of this test's own (for restarts and configuration)."""
    srv = start(tmp_path / "state")
    try:
        yield srv
    finally:
        srv.stop()
