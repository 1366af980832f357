"""Shared fixtures: a real ``novalite serve`` on a free port, over real HTTP.

Everything that touches the database runs on both backends: the ``backend``
parameter is ``sqlite`` or ``mariadb``, and each MariaDB run gets a database of
its own (``novalite_test_<random>`` on the local server, root with an empty
password), dropped at teardown. Where that server cannot be reached, the
``mariadb`` runs skip and say why.

A test (or module) can narrow the backends with ``@pytest.mark.backends("sqlite")``.
The real OpenStack clients and the ``nova`` CLI tests (:data:`SQLITE_ONLY_MODULES`)
run on SQLite only: they exercise the clients, not the database, and each costs
seconds per command.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from novalite.testing.server import RunningServer, start

BACKENDS = ("sqlite", "mariadb")
MARIADB_HOST, MARIADB_PORT, MARIADB_USER = "127.0.0.1", 3306, "root"
#: Modules whose ``server`` is SQLite only (see the module docstring).
SQLITE_ONLY_MODULES = {"tests.test_real_clients", "tests.test_nova_cli", "tests.test_ansible"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): the database backends a test runs on")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None:
        names = marker.args
    elif metafunc.module.__name__ in SQLITE_ONLY_MODULES:
        names = ("sqlite",)
    else:
        names = BACKENDS
    # Session scope: the session ``server`` is started once per backend, not per test.
    metafunc.parametrize("backend", names, indirect=True, scope="session")


class MariaDB:
    """The local MariaDB server, reached as root: creates and drops test databases."""

    def __init__(self) -> None:
        self.created: set[str] = set()

    def connect(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER,
                               password="", database=database, connect_timeout=5,
                               autocommit=True, charset="utf8mb4")

    def execute(self, sql: str, *args: Any, database: str | None = None) -> list[tuple]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args or None)
                return list(cur.fetchall())
        finally:
            conn.close()

    def url(self, name: str) -> str:
        return f"mysql+pymysql://{MARIADB_USER}:@{MARIADB_HOST}:{MARIADB_PORT}/{name}"

    def create(self) -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        name = f"novalite_test_{secrets.token_hex(6)}"
        self.execute(f"CREATE DATABASE `{name}`")
        self.created.add(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?")[0]
        # Connections a killed service left behind would hold metadata locks: end them.
        for (conn_id,) in self.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> "
                "connection_id()", name):
            try:
                self.execute(f"KILL CONNECTION {int(conn_id)}")
            except Exception:  # already gone
                pass
        self.execute(f"DROP DATABASE IF EXISTS `{name}`")
        self.created.discard(name)

    def kill_connections(self, url: str) -> int:
        """Kill every connection to ``url``'s database (as a server restart would)."""
        name = url.rsplit("/", 1)[1].split("?")[0]
        ids = [row[0] for row in self.execute(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> "
            "connection_id()", name)]
        for conn_id in ids:
            try:
                self.execute(f"KILL CONNECTION {int(conn_id)}")
            except Exception:  # it closed between the listing and the kill
                pass
        return len(ids)


@functools.cache
def _mariadb_unreachable() -> str | None:
    """Why the local MariaDB cannot be used (None when it can)."""
    try:
        MariaDB().execute("SELECT 1")
    except Exception as exc:  # ImportError (no PyMySQL) or a connection error
        return f"MariaDB not reachable at {MARIADB_HOST}:{MARIADB_PORT}: {exc}"
    return None


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    why = _mariadb_unreachable()
    if why:
        pytest.skip(why)
    server = MariaDB()
    yield server
    for name in list(server.created):  # a test that failed before its own teardown
        server.drop(server.url(name))


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``mariadb`` (parametrized by :func:`pytest_generate_tests`)."""
    name = str(request.param)
    if name == "mariadb" and (why := _mariadb_unreachable()):
        pytest.skip(why)
    return name


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest, backend: str) -> Iterator[Any]:
    """``fresh_database(dir)``: a new, empty database of the backend, as a URL.

    SQLite: a file in ``dir``. MariaDB: a new database, dropped at teardown.
    """
    made: list[str] = []

    def make(directory: Path) -> str:
        if backend == "sqlite":
            directory.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{directory / 'novalite.sqlite'}"
        server: MariaDB = request.getfixturevalue("mariadb")
        made.append(server.create())
        return made[-1]

    yield make
    for url in made:
        request.getfixturevalue("mariadb").drop(url)


def _database_config(request: pytest.FixtureRequest, backend: str
                     ) -> Iterator[dict[str, dict[str, Any]]]:
    if backend == "sqlite":
        yield {}  # the default: novalite.sqlite under state_path
        return
    server: MariaDB = request.getfixturevalue("mariadb")
    url = server.create()
    try:
        yield {"database": {"connection": url}}
    finally:
        server.drop(url)


@pytest.fixture
def db_config(request: pytest.FixtureRequest, backend: str
              ) -> Iterator[dict[str, dict[str, Any]]]:
    """Config sections pointing a service at a new database of this test's backend."""
    yield from _database_config(request, backend)


@pytest.fixture(scope="session")
def session_db_config(request: pytest.FixtureRequest, backend: str
                      ) -> Iterator[dict[str, dict[str, Any]]]:
    yield from _database_config(request, backend)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory,
           session_db_config: dict[str, dict[str, Any]]) -> Iterator[RunningServer]:
    """One service per backend for the session, fake driver on two hosts."""
    srv = start(tmp_path_factory.mktemp("novalite"),
                config={**session_db_config,
                        "compute": {"hosts": ["compute-a", "compute-b"]},
                        # Many modules boot in the admin project of this one service;
                        # quota tests set their own projects' limits.
                        "quota": {"instances": -1, "cores": -1, "ram": -1}})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path, db_config: dict[str, dict[str, Any]]
                 ) -> Iterator[RunningServer]:
    """A service of this test's own, on a new database (for restarts and configuration)."""
    srv = start(tmp_path / "state", config=db_config)
    try:
        yield srv
    finally:
        srv.stop()
