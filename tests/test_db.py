"""The database: one schema on SQLite and MariaDB, migrations, start-up errors, and the
differences between the backends, seen through the API.

Every test that takes ``backend`` runs on both (tests/conftest.py); the MariaDB
runs use a database of their own on the local server and skip, saying why, where
it cannot be reached.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from sqlalchemy import text
from sqlmodel import Session, select

from novalite.config import Config
from novalite.db import migrate, queries
from novalite.db.engine import Database, make_engine
from novalite.db.models import (
    Image,
    Instance,
    IPAllocation,
    Quota,
    Role,
    Subnet,
    ValueTooLong,
    row_values,
)
from novalite.db.types import mysql_collation
from novalite.exceptions import Conflict
from novalite.network import ipam
from novalite.network.ports import ensure_default_network
from novalite.testing.server import (
    RunningServer,
    free_port,
    novalite_bin,
    start,
    wait_for,
    write_config,
)
from tests.helpers import boot, wait_gone, wait_status


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


# -- the schema -------------------------------------------------------------------------
def test_migrations_build_exactly_the_models_schema(backend: str, fresh_database: Any,
                                                    tmp_path: Path) -> None:
    engine = make_engine(fresh_database(tmp_path))
    try:
        assert migrate.sync(engine) == (None, migrate.head_revision())
        assert migrate.schema_drift(engine) == []
        if backend == "mariadb":
            _assert_names_compare_exactly(engine)
        # Down to nothing and up again: the migration is reversible on this backend.
        from alembic import command

        with engine.begin() as conn:
            cfg = migrate._alembic_config(engine, conn)
            command.downgrade(cfg, "base")
        assert set(migrate.tables(engine)) <= {"alembic_version"}
        assert migrate.sync(engine)[1] == migrate.head_revision()
        assert migrate.schema_drift(engine) == []
    finally:
        engine.dispose()


def _assert_names_compare_exactly(engine: Any) -> None:
    """Every novalite table and text column: utf8mb4 with a binary collation."""
    expected = mysql_collation(engine.dialect)
    with engine.connect() as conn:
        tables = dict(conn.execute(text(
            "SELECT table_name, table_collation FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version'")).all())
        columns = conn.execute(text(
            "SELECT table_name, column_name, character_set_name, collation_name "
            "FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND collation_name IS NOT NULL AND table_name <> 'alembic_version'")).all()
    assert tables and set(tables.values()) == {expected}, tables
    for table, column, charset, collation in columns:
        assert charset == "utf8mb4" and collation.endswith("_bin"), (table, column, collation)


def test_db_sync_creates_then_finds_the_schema_current(backend: str, fresh_database: Any,
                                                       tmp_path: Path) -> None:
    url = fresh_database(tmp_path)
    config = write_config(tmp_path / "novalite.toml", {
        "DEFAULT": {"state_path": str(tmp_path / "state")}, "database": {"connection": url}})
    head = migrate.head_revision()

    def sync() -> str:
        proc = subprocess.run([novalite_bin(), "db", "sync", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert f"upgraded from empty to schema revision {head}" in sync()
    assert f"already at schema revision {head}" in sync()


# -- start-up errors: one line, non-zero exit, no traceback ------------------------------
def serve_fails(tmp_path: Path, connection: str) -> str:
    """Start ``novalite serve`` on ``connection``; return its one error line."""
    config = write_config(tmp_path / "bad-db.toml", {
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "api": {"host": "127.0.0.1", "port": free_port()},
        "compute": {"driver": "fake"}, "database": {"connection": connection}})
    proc = subprocess.run([novalite_bin(), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("novalite: error:")]
    assert len(errors) == 1, proc.stderr
    assert "novalite ready" not in proc.stderr + proc.stdout
    return errors[0]


@pytest.mark.parametrize("connection,message", [
    ("nonsense", "[database] connection = 'nonsense': not a database URL (expected "
                 "sqlite:///PATH or mysql+pymysql://USER:PASS@HOST[:PORT]/DB)"),
    ("postgresql://nova:s3cret@127.0.0.1/nova", "unsupported database 'postgresql'"),
    ("mysql+pymysql://nova:s3cret@127.0.0.1:port/nova", "not a database URL"),
    ("mysql+pymysql://nova:s3cret@127.0.0.1:3306", "no database name"),
    ("mysql+pymysql://nova:s3cret@127.0.0.1:{closed}/nova",
     "cannot connect to database mysql+pymysql://nova:***@127.0.0.1:{closed}/nova: "
     "Can't connect to MySQL server on '127.0.0.1'"),
])
def test_bad_connection_is_a_one_line_error(tmp_path: Path, connection: str,
                                            message: str) -> None:
    closed = free_port()  # nothing listens there once free_port has closed it
    error = serve_fails(tmp_path, connection.format(closed=closed))
    assert message.format(closed=closed) in error
    assert "s3cret" not in error


def test_refused_credentials_and_unknown_database_are_one_line_errors(
        tmp_path: Path, mariadb: Any) -> None:
    error = serve_fails(tmp_path, "mysql+pymysql://novalite_nosuch:s3cret@127.0.0.1:3306/nova")
    assert "Access denied for user 'novalite_nosuch'" in error and "s3cret" not in error
    missing = f"novalite_test_missing_{secrets.token_hex(4)}"
    error = serve_fails(tmp_path, f"mysql+pymysql://root:@127.0.0.1:3306/{missing}")
    assert f"Unknown database '{missing}'" in error
    assert f"create it first: CREATE DATABASE {missing} CHARACTER SET utf8mb4" in error


def test_database_newer_than_the_code_stops_the_start(backend: str, fresh_database: Any,
                                                      tmp_path: Path) -> None:
    url = fresh_database(tmp_path)
    engine = make_engine(url)
    try:
        migrate.sync(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        engine.dispose()
    error = serve_fails(tmp_path, url)
    assert "is at schema revision 9999_future, which this novalite does not know" in error
    assert "created by a newer novalite" in error


# -- the database layer -----------------------------------------------------------------
async def test_concurrent_read_then_write_functions_never_interleave(
        backend: str, fresh_database: Any, tmp_path: Path) -> None:
    """Twenty writes each take "the lowest free address": twenty different addresses."""
    db = Database(fresh_database(tmp_path))
    try:
        await trio.to_thread.run_sync(migrate.sync, db.engine)
        net = await db.write(lambda s: ensure_default_network(s, Config()).id)
        got: list[str] = []

        def take(s: Session, i: int) -> str:
            subnet = s.exec(select(Subnet).where(Subnet.network_id == net)).one()
            return ipam.allocate(s, subnet, f"port-{i}")

        async def allocate(i: int) -> None:
            got.append(await db.write(lambda s: take(s, i)))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(allocate, i)
        rows = await db.read(lambda s: s.exec(select(IPAllocation)).all())
        assert len(set(got)) == 20 and {r.address for r in rows} == set(got)
    finally:
        db.close()


async def test_a_write_that_fails_among_concurrent_ones_leaves_nothing_and_the_rest_commit(
        backend: str, fresh_database: Any, tmp_path: Path) -> None:
    """Thirty concurrent writes (on SQLite, committed together); every third one raises
    after writing its row: each caller gets its own outcome, only the others' rows stay."""
    db = Database(fresh_database(tmp_path))
    try:
        await trio.to_thread.run_sync(migrate.sync, db.engine)
        outcomes: dict[int, Any] = {}

        async def write(i: int) -> None:
            def work(s: Any) -> int:
                s.add(Quota(project_id="p", resource=f"r{i}", hard_limit=i))
                s.flush()
                if i % 3 == 0:
                    raise Conflict(f"refused {i}")
                return i

            try:
                outcomes[i] = await db.write(work)
            except Conflict as exc:
                outcomes[i] = exc.message

        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(write, i)
        assert outcomes == {i: f"refused {i}" if i % 3 == 0 else i for i in range(30)}
        rows = await db.read(lambda s: s.exec(select(Quota)).all())
        assert sorted(r.hard_limit for r in rows) == [i for i in range(30) if i % 3]
    finally:
        db.close()


async def test_boot_path_statements_store_what_the_models_read(
        backend: str, fresh_database: Any, tmp_path: Path) -> None:
    """The boot path writes with prebuilt statements (novalite.db.queries): the rows read
    back through the models exactly, and an over-long value is refused as by the ORM."""
    db = Database(fresh_database(tmp_path))
    try:
        await trio.to_thread.run_sync(migrate.sync, db.engine)
        when = dt.datetime(2030, 1, 2, 3, 4, 5, 678901)
        row = row_values(Instance, display_name="ü" * 255, project_id="p", user_id="u",
                         flavor={"extra_specs": {"hw:cpu": "2"}}, metadata_={"k": "v"},
                         locked=True, launched_at=when)
        await db.write(lambda s: queries.insert_instances(s, [row]))
        await db.write(lambda s: queries.update_instance(
            s, row["uuid"], {"task_state": "spawning", "addresses": [{"address": "10.0.0.2"}]}))
        got = await db.read(lambda s: s.exec(select(Instance)).one())
        assert (got.display_name, got.flavor, got.metadata_, got.locked, got.launched_at,
                got.created_at, got.task_state, got.addresses) == (
            "ü" * 255, {"extra_specs": {"hw:cpu": "2"}}, {"k": "v"}, True, when,
            row["created_at"], "spawning", [{"address": "10.0.0.2"}])
        state = await db.read(lambda s: queries.instance_state(s, row["uuid"]))
        assert state == {"uuid": row["uuid"], "vm_state": "building", "task_state": "spawning",
                         "power_state": 0, "deleted": 0, "metadata": {"k": "v"}}
        with pytest.raises(ValueTooLong, match=r"instances\.host: 256 characters"):
            await db.write(lambda s: queries.update_instance(s, row["uuid"], {"host": "h" * 256}))
        assert (await db.read(lambda s: queries.instance(s, row["uuid"])))["host"] is None
    finally:
        db.close()


async def test_values_are_kept_exactly_on_every_backend(backend: str, fresh_database: Any,
                                                        tmp_path: Path) -> None:
    db = Database(fresh_database(tmp_path))
    try:
        await trio.to_thread.run_sync(migrate.sync, db.engine)
        size = 5 * 2**30 + 1  # past MySQL's INT
        when = dt.datetime(2030, 1, 2, 3, 4, 5, 678901)
        image = Image(name="big", size=size, virtual_size=size, created_at=when)
        await db.write(lambda s: s.add(image))
        got = await db.read(lambda s: s.get(Image, image.id))
        assert (got.size, got.virtual_size, got.created_at) == (size, size, when)
        # Too long for its column: refused on SQLite as MySQL refuses it.
        with pytest.raises(ValueTooLong, match=r"roles\.name: 256 characters, the column "
                                               r"holds 255"):
            await db.write(lambda s: s.add(Role(name="r" * 256)))
    finally:
        db.close()


# -- backend differences, seen through the API ------------------------------------------
@pytest.fixture
def c(server: RunningServer) -> httpx.Client:
    return server.client()


def test_names_compare_exactly(c: httpx.Client) -> None:
    """"Web" and "web" are two names on every backend (MySQL's default would merge them)."""
    name = unique("CaseFlavor")
    ids = []
    for variant in (name, name.lower()):
        r = c.post("/compute/v2.1/flavors", json={"flavor": {
            "name": variant, "ram": 64, "vcpus": 1, "disk": 0}})
        assert r.status_code == 200, r.text
        ids.append(r.json()["flavor"]["id"])
    r = c.post("/compute/v2.1/flavors", json={"flavor": {
        "name": name, "ram": 64, "vcpus": 1, "disk": 0}})
    assert r.status_code == 409
    for flavor_id in ids:
        c.delete(f"/compute/v2.1/flavors/{flavor_id}")

    image_name = unique("CaseImage")
    r = c.post("/image/v2/images", json={"name": image_name, "disk_format": "raw",
                                          "container_format": "bare"})
    assert r.status_code == 201, r.text
    try:
        assert [i["name"] for i in c.get("/image/v2/images", params={"name": image_name})
                .json()["images"]] == [image_name]
        assert c.get("/image/v2/images", params={"name": image_name.lower()}
                     ).json()["images"] == []
    finally:
        c.delete(f"/image/v2/images/{r.json()['id']}")


def test_name_filter_is_a_case_insensitive_regex(c: httpx.Client) -> None:
    name = unique("CaseVM")
    sid = boot(c, name)
    try:
        for pattern in (f"^{name}$", f"^{name.lower()}$", name.upper()[2:]):
            found = c.get("/compute/v2.1/servers", params={"name": pattern}).json()["servers"]
            assert [s["id"] for s in found] == [sid], pattern
    finally:
        c.delete(f"/compute/v2.1/servers/{sid}")


def test_changes_since_sees_changes_within_the_second(c: httpx.Client) -> None:
    sid = boot(c, unique("since"))
    wait_status(c, sid, "ACTIVE")
    before_stop = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None})
    wait_status(c, sid, "SHUTOFF")
    changed = c.get("/compute/v2.1/servers", params={"changes-since": before_stop}).json()
    assert sid in [s["id"] for s in changed["servers"]]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert c.get("/compute/v2.1/servers", params={"changes-since": later}
                 ).json()["servers"] == []
    c.delete(f"/compute/v2.1/servers/{sid}")


def test_long_and_precise_values_read_back_unchanged(c: httpx.Client) -> None:
    user_data = base64.b64encode(secrets.token_bytes(49149)).decode()  # 65532 characters
    sid = boot(c, unique("long"), user_data=user_data)
    shown = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
    assert shown["OS-EXT-SRV-ATTR:user_data"] == user_data
    c.delete(f"/compute/v2.1/servers/{sid}")

    r = c.post("/compute/v2.1/flavors", json={"flavor": {
        "name": unique("rxtx"), "ram": 64, "vcpus": 1, "disk": 0, "rxtx_factor": 1.2345678901}})
    assert r.status_code == 200, r.text
    flavor_id = r.json()["flavor"]["id"]
    assert c.get(f"/compute/v2.1/flavors/{flavor_id}").json()["flavor"]["rxtx_factor"] == 1.2345678901
    c.delete(f"/compute/v2.1/flavors/{flavor_id}")


# -- the service against a database that goes away and comes back ----------------------
@pytest.mark.backends("mariadb")
def test_service_reconnects_after_the_database_drops_its_connections(
        fresh_server: RunningServer, db_config: dict, mariadb: Any) -> None:
    c = fresh_server.client()
    first = boot(c, "before-outage")
    wait_status(c, first, "ACTIVE")
    # What a MariaDB restart does to the service: every connection it holds is gone.
    assert mariadb.kill_connections(db_config["database"]["connection"]) > 0
    assert c.get("/compute/v2.1/servers").status_code == 200
    second = boot(c, "after-outage")
    assert wait_status(c, second, "ACTIVE")["addresses"]["private"]
    assert not [e for e in fresh_server.log_events() if e.get("level") == "error"]
    assert "Traceback" not in fresh_server.log()


# -- the scheduler's claims under concurrency -------------------------------------------
def test_concurrent_boots_never_overfill_a_host(tmp_path: Path, db_config: dict) -> None:
    """Three hosts with room for two m1.tiny each, ten boots at once: six land.

    Ten: as many as a project's default instance quota allows.
    """
    hosts = ["tight-a", "tight-b", "tight-c"]
    srv = start(tmp_path / "state", config={
        **db_config, "compute": {"hosts": hosts}, "fake": {"memory_mb": 1024}})
    try:
        def boot_one(i: int) -> str:
            with srv.client() as c:
                return boot(c, f"crowd-{i}")

        with ThreadPoolExecutor(10) as pool:
            ids = list(pool.map(boot_one, range(10)))
        c = srv.client()

        def settled() -> list[dict[str, Any]] | None:
            found = c.get("/compute/v2.1/servers/detail", params={"name": "^crowd-"}).json()
            done = [s for s in found["servers"] if s["status"] in ("ACTIVE", "ERROR")
                    and s["OS-EXT-STS:task_state"] is None]
            return done if len(done) == len(ids) else None

        servers = wait_for(settled, timeout=60)
        active = [s for s in servers if s["status"] == "ACTIVE"]
        assert Counter(s["OS-EXT-SRV-ATTR:host"] for s in active) == dict.fromkeys(hosts, 2)
        for s in servers:
            if s["status"] == "ERROR":
                assert "No valid host was found" in s["fault"]["message"]
        addresses = [a["addr"] for s in active for a in s["addresses"]["private"]]
        assert len(addresses) == len(set(addresses)) == 6
        hypervisors = c.get("/compute/v2.1/os-hypervisors/detail", headers={
            "OpenStack-API-Version": "compute 2.28"}).json()["hypervisors"]
        assert len(hypervisors) == 3
        for h in hypervisors:
            assert h["memory_mb_used"] <= h["memory_mb"] == 1024, h
        for sid in ids:
            c.delete(f"/compute/v2.1/servers/{sid}")
        for sid in ids:
            wait_gone(c, sid)
    finally:
        srv.stop()
