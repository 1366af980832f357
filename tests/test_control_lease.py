"""Two control processes on one database and one broker: one schedules at a time.

Two ``novalite serve --role control`` processes share a MariaDB database of this test's
own and a RabbitMQ virtual host of its own; one compute process (the fake host
``remote-1``, room for exactly two m1.tiny servers) serves both. Boots arrive through
both APIs at once: exactly two fit, however they are spread, because only the holder
of the control lease schedules (:mod:`novalite.conductor.lease`). The holder is
frozen past its lease (SIGSTOP): the standby takes over within ``service_down_time``
and schedules with the claims the first one made; the frozen one, awake again, finds
the lease taken and stops, saying why, instead of scheduling beside the new one.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from novalite.testing.server import RunningServer, start, wait_for
from tests.conftest import MariaDB
from tests.helpers import boot, wait_gone, wait_status
from tests.test_rpc import rabbit_vhost  # noqa: F401 - the fixture

DOWN_TIME = 3.0
#: Room on remote-1 for exactly two m1.tiny (512 MiB) servers.
HOST_MEMORY_MB = 1024


def control(state: Path, url: str, db: str) -> RunningServer:
    return start(state, config={
        "DEFAULT": {"transport_url": url},
        "database": {"connection": db},
        "compute": {"service_down_time": DOWN_TIME}}, extra_env={"NOVALITE_ROLE": "control"})


def settled(c: httpx.Client, sids: list[str]) -> dict[str, str]:
    """Each server's status once none is building any more."""
    def check() -> dict[str, str] | None:
        found = {sid: c.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"]
                 for sid in sids}
        return None if "BUILD" in found.values() else found

    result: dict[str, str] = wait_for(check, timeout=30)
    return result


def test_one_control_process_schedules_and_another_takes_over(
        tmp_path: Path, rabbit_vhost: str, mariadb: MariaDB) -> None:  # noqa: F811
    db = mariadb.create()
    first = control(tmp_path / "a", rabbit_vhost, db)
    second: RunningServer | None = None
    compute: RunningServer | None = None
    try:
        second = control(tmp_path / "b", rabbit_vhost, db)
        compute = start(tmp_path / "compute", config={
            "DEFAULT": {"transport_url": rabbit_vhost},
            "compute": {"hosts": ["remote-1"], "image_api_url": f"{first.url}/image",
                        "service_down_time": DOWN_TIME},
            "fake": {"memory_mb": HOST_MEMORY_MB}}, extra_env={"NOVALITE_ROLE": "compute"})
        assert wait_for(lambda: "control standby" in second.log())  # type: ignore[union-attr]
        assert "control standby" not in first.log()

        # Six boots at once, three through each API: two fit on the one host.
        sids: list[str] = []
        errors: list[BaseException] = []

        def boots(server: RunningServer, n: int) -> None:
            try:
                with server.client() as c:
                    sids.extend(boot(c, f"{server.url[-5:]}-{i}") for i in range(n))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=boots, args=(s, 3)) for s in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        with second.client() as c:
            states = settled(c, sids)
            assert sorted(states.values()) == ["ACTIVE", "ACTIVE", "ERROR", "ERROR", "ERROR",
                                               "ERROR"], states
            failed = next(s for s, st in states.items() if st == "ERROR")
            fault = c.get(f"/compute/v2.1/servers/{failed}").json()["server"]["fault"]
            assert "No valid host" in fault["message"], fault

            # The holder freezes (no renewal, not dead): the standby takes over within
            # service_down_time; the frozen one, awake again, finds the lease another's
            # at its next renewal and stops, saying why, instead of scheduling beside it.
            first.process.send_signal(signal.SIGSTOP)
            try:
                assert wait_for(lambda: "control lease taken over" in second.log(),  # type: ignore[union-attr]
                                timeout=DOWN_TIME * 3)
            finally:
                first.process.send_signal(signal.SIGCONT)
            assert first.process.wait(timeout=DOWN_TIME * 3) != 0
            assert any(e.get("event") == "control lease lost" for e in first.log_events())
            assert "took the control lease" in first.log()

            # The new holder schedules with the claims the first one made: still full.
            extra = boot(c, "after-takeover")
            assert settled(c, [extra])[extra] == "ERROR"
            for sid in [*states, extra]:
                assert c.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
            for sid in [*states, extra]:
                wait_gone(c, sid)
            # As in Nova, a server reads as gone a moment before its claim is released
            # (the record first): a user who boots at once may be told No valid host.
            # Wait for the room, as hypervisor statistics show it.
            with second.client("2.87") as old:  # statistics went in 2.88
                wait_for(lambda: old.get("/compute/v2.1/os-hypervisors/statistics").json()[
                    "hypervisor_statistics"]["memory_mb_used"] == 0, timeout=30)
            again = boot(c, "room-again")
            wait_status(c, again, "ACTIVE", timeout=30)
            assert c.delete(f"/compute/v2.1/servers/{again}").status_code == 204
            wait_gone(c, again)
        assert not [e for e in second.log_events() if e.get("level") in ("error", "critical")]
    finally:
        for srv in (compute, second, first):
            if srv is not None:
                srv.stop()
        mariadb.drop(db)
