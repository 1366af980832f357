"""A database outage: MariaDB killed and back under a stream of boots.

The test runs a MariaDB server of its own (its own datadir under tmp, a free
port, its socket in tmp; never the shared one), kills it with SIGKILL while
boots keep coming, and starts it again five seconds later. Requests that ran out
of the database layer's retries get Nova's 503 body, never a bare 500; once the
database is back every server ends ACTIVE or ERROR with a fault, none in BUILD.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novalite.testing.server import RunningServer, free_port, start, wait_for

#: Seconds the database is down: longer than the database layer's retries (about ten
#: connection attempts), so requests run out of them and must be answered 503.
OUTAGE = 12.0
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"


class OwnMariaDB:
    """A mariadbd of this test's own: started and killed by its PID."""

    def __init__(self, root: Path) -> None:
        self.datadir = root / "data"
        self.socket = root / "mariadb.sock"
        self.log = root / "mariadb.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             f"--socket={self.socket}", "--bind-address=127.0.0.1", "--user=root",
             "--skip-grant-tables", "--skip-name-resolve", f"--log-error={self.log}",
             f"--pid-file={self.datadir / 'mariadbd.pid'}", "--innodb-buffer-pool-size=32M",
             "--max-connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=60, interval=0.2)

    def _answers(self) -> bool:
        import pymysql

        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                            connect_timeout=2).close()
        except pymysql.err.OperationalError:
            return False
        return True

    def execute(self, sql: str) -> None:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def own_mariadb(tmp_path: Path) -> Iterator[OwnMariaDB]:
    if not (Path(MARIADBD).exists() and Path(INSTALL_DB).exists()):
        pytest.skip("mariadbd and mariadb-install-db are not installed")
    db = OwnMariaDB(tmp_path / "mariadb")
    db.start()
    try:
        yield db
    finally:
        db.stop()


def _boots(server: RunningServer, image: str, statuses: Counter[int], bad: list[str],
           stop: threading.Event) -> list[threading.Thread]:
    token = server.token()

    def worker(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"X-Auth-Token": token}) as c:
            i = 0
            while not stop.is_set():
                i += 1
                r = c.post("/compute/v2.1/servers", json={"server": {
                    "name": f"b-{n}-{i}", "imageRef": image, "flavorRef": "1"}})
                statuses[r.status_code] += 1
                if r.status_code != 202 and not (
                        r.status_code == 503 and r.headers["content-type"].startswith(
                            "application/json")
                        and r.json()["serviceUnavailable"]["code"] == 503):
                    bad.append(f"{r.status_code} {r.headers.get('content-type')} "
                               f"{r.text[:200]}")
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    return threads


def test_a_database_outage_answers_503_and_strands_no_build(tmp_path: Path,
                                                            own_mariadb: OwnMariaDB) -> None:
    own_mariadb.execute("CREATE DATABASE nova")
    url = f"mysql+pymysql://root:@127.0.0.1:{own_mariadb.port}/nova"
    server = start(tmp_path / "state", config={
        "database": {"connection": url}, "compute": {"hosts": 4},
        "quota": {"instances": 10000, "cores": 10000, "ram": 10_000_000}})
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    stop = threading.Event()
    try:
        c = server.client()
        image = c.get("/image/v2/images", params={"name": "demo"}).json()["images"][0]["id"]
        threads = _boots(server, image, statuses, bad, stop)
        time.sleep(2)
        own_mariadb.kill()
        time.sleep(OUTAGE)
        own_mariadb.start()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(120)

        def settled() -> list[dict[str, Any]] | None:
            r = c.get("/compute/v2.1/servers/detail", params={"all_tenants": "1",
                                                              "limit": 10000})
            if r.status_code != 200:
                return None
            servers: list[dict[str, Any]] = r.json()["servers"]
            return None if any(s["status"] == "BUILD" for s in servers) else servers

        try:
            servers = wait_for(settled, timeout=90, interval=0.5)
        except AssertionError:
            servers = c.get("/compute/v2.1/servers/detail", params={
                "all_tenants": "1", "limit": 10000}).json()["servers"]
        stuck = [s["id"] for s in servers if s["status"] == "BUILD"]
        failed = [s for s in servers if s["status"] == "ERROR"]
        print(f"\ndatabase outage: {sum(statuses.values())} boots {dict(statuses)}, "
              f"{len(servers)} servers, {len(failed)} error, {len(stuck)} stuck")
        assert not bad, "\n".join(bad[:20])
        assert statuses[503] > 0, statuses  # the outage was seen, and answered 503
        assert not stuck, f"{len(stuck)} servers stuck in BUILD"
        for s in failed:
            assert s.get("fault"), s
        events = server.log_events()
        assert not [e for e in events if e.get("event") == "cast failed"], \
            [e for e in events if e.get("event") == "cast failed"][:3]
    finally:
        stop.set()
        server.stop()
