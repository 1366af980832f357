"""Compute API behaviours Tempest checks: x509 key pairs (2.2), the project manager
persona for migrations (Nova's 2025 defaults), and a server without security groups,
over real HTTP on both databases."""

from __future__ import annotations

import hashlib
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from novalite.testing.server import RunningServer
from tests.helpers import boot, wait_gone, wait_status
from tests.test_image_members import Person, make_people

API = "/compute/v2.1"


def mv(version: str) -> dict[str, str]:
    return {"X-OpenStack-Nova-API-Version": version}


@pytest.fixture(scope="module")
def people(server: RunningServer) -> Iterator[dict[str, Person]]:
    found = make_people(server, (("max", "c1", "manager"), ("mo", "c1", "member"),
                                 ("ned", "c2", "member")))
    yield found
    for person in found.values():
        person.client.close()


def test_x509_keypairs_are_generated_and_imported(people: dict[str, Person],
                                                  tmp_path: Path) -> None:
    c = people["mo"].client
    name = f"cert-{secrets.token_hex(3)}"
    r = c.post(f"{API}/os-keypairs", json={"keypair": {"name": name, "type": "x509"}},
               headers=mv("2.2"))
    assert r.status_code == 201, r.text
    made = r.json()["keypair"]
    assert made["type"] == "x509" and "BEGIN CERTIFICATE" in made["public_key"]
    assert "PRIVATE KEY" in made["private_key"]
    assert re.fullmatch(r"([0-9a-f]{2}:){19}[0-9a-f]{2}", made["fingerprint"])
    listed = c.get(f"{API}/os-keypairs", headers=mv("2.2")).json()["keypairs"]
    assert {"name": name, "type": "x509"}.items() <= next(
        k["keypair"] for k in listed if k["keypair"]["name"] == name).items()
    assert c.get(f"{API}/os-keypairs/{name}", headers=mv("2.2")).json()["keypair"][
        "type"] == "x509"
    # an imported certificate: its fingerprint is the SHA-1 of its DER form
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=t", "-keyout", str(key), "-out", str(cert)], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"],
                         check=True, capture_output=True).stdout
    digest = hashlib.sha1(der).hexdigest()
    r = c.post(f"{API}/os-keypairs", json={"keypair": {
        "name": name + "i", "type": "x509", "public_key": cert.read_text()}},
        headers=mv("2.2"))
    assert r.status_code == 201, r.text
    assert r.json()["keypair"]["fingerprint"].replace(":", "") == digest
    r = c.post(f"{API}/os-keypairs", json={"keypair": {
        "name": name + "b", "type": "x509", "public_key": "-----BEGIN CERTIFICATE-----\n"
        "MIIBbad=\n-----END CERTIFICATE-----\n"}}, headers=mv("2.2"))
    assert r.status_code == 400 and "Keypair data is invalid" in r.text
    r = c.post(f"{API}/os-keypairs", json={"keypair": {"name": name + "o", "type": "x509"}},
               headers=mv("2.1"))
    assert r.status_code == 400  # no type before 2.2
    for k in (name, name + "i"):
        assert c.delete(f"{API}/os-keypairs/{k}", headers=mv("2.2")).status_code == 204


def test_a_project_manager_migrates_and_lists_its_projects_migrations(
        people: dict[str, Person], server: RunningServer) -> None:
    manager, member, other = people["max"].client, people["mo"].client, people["ned"].client
    admin = people["admin"].client
    roles = [r["name"] for r in admin.get("/identity/v3/roles").json()["roles"]]
    assert "manager" in roles
    sid = boot(member, "mgr-vm")
    wait_status(member, sid, "ACTIVE")
    theirs = boot(other, "other-vm")
    wait_status(other, theirs, "ACTIVE")
    try:
        # members may not migrate; a manager may, without choosing the host
        assert member.post(f"{API}/servers/{sid}/action", json={"migrate": None}
                           ).status_code == 403
        assert member.get(f"{API}/os-migrations").status_code == 403
        r = manager.post(f"{API}/servers/{sid}/action", json={"migrate": {"host": "x"}},
                         headers=mv("2.56"))
        assert r.status_code == 403 and "migrate:host" in r.text
        r = manager.post(f"{API}/servers/{sid}/action", json={"migrate": None})
        assert r.status_code == 202, r.text
        wait_status(manager, sid, "VERIFY_RESIZE")
        assert manager.post(f"{API}/servers/{sid}/action", json={"confirmResize": None}
                            ).status_code == 204
        assert admin.post(f"{API}/servers/{theirs}/action", json={"migrate": None}
                          ).status_code == 202
        # the manager sees its project's migrations only, without hosts
        seen = manager.get(f"{API}/os-migrations", headers=mv("2.80")).json()["migrations"]
        assert {m["instance_uuid"] for m in seen} == {sid}
        assert seen[0]["source_compute"] is None and seen[0]["dest_compute"] is None
        everything = admin.get(f"{API}/os-migrations", headers=mv("2.80")).json()[
            "migrations"]
        mine = next(m for m in everything if m["instance_uuid"] == sid)
        assert mine["source_compute"] in ("compute-a", "compute-b")
        assert theirs in {m["instance_uuid"] for m in everything}
    finally:
        for c, s in ((member, sid), (other, theirs)):
            c.delete(f"{API}/servers/{s}")
            wait_gone(c, s)


def test_a_server_without_security_groups_has_no_security_groups_key(
        people: dict[str, Person]) -> None:
    c = people["ned"].client
    sid = boot(c, "nosg")
    try:
        shown = wait_status(c, sid, "ACTIVE")
        assert shown["security_groups"] == [{"name": "default"}]
        r = c.post(f"{API}/servers/{sid}/action",
                   json={"removeSecurityGroup": {"name": "default"}})
        assert r.status_code == 202, r.text
        shown = c.get(f"{API}/servers/{sid}").json()["server"]
        assert "security_groups" not in shown
        detail = c.get(f"{API}/servers/detail").json()["servers"]
        assert "security_groups" not in next(s for s in detail if s["id"] == sid)
    finally:
        c.delete(f"{API}/servers/{sid}")
        wait_gone(c, sid)


def test_disk_config_is_kept_and_shown(server: RunningServer) -> None:
    """OS-DCF:diskConfig as given at create, update, rebuild and resize; a value outside
    AUTO/MANUAL and AUTO on an image that disables it are 400s, nothing created."""
    with server.client() as c:
        r = c.post(f"{API}/servers", json={"server": {
            "name": "dcf", "imageRef": c.get("/image/v2/images", params={"name": "demo"})
            .json()["images"][0]["id"], "flavorRef": "1", "OS-DCF:diskConfig": "AUTO"}})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        assert r.json()["server"]["OS-DCF:diskConfig"] == "AUTO"
        try:
            shown = wait_status(c, sid, "ACTIVE")
            assert shown["OS-DCF:diskConfig"] == "AUTO"
            detail = c.get(f"{API}/servers/detail", params={"name": "^dcf$"}).json()["servers"]
            assert [s["OS-DCF:diskConfig"] for s in detail] == ["AUTO"]
            r = c.put(f"{API}/servers/{sid}", json={"server": {"OS-DCF:diskConfig": "MANUAL"}})
            assert r.status_code == 200 and r.json()["server"]["OS-DCF:diskConfig"] == "MANUAL"
            r = c.post(f"{API}/servers/{sid}/action", json={"rebuild": {
                "imageRef": shown["image"]["id"], "OS-DCF:diskConfig": "AUTO"}})
            assert r.status_code == 202, r.text
            assert wait_status(c, sid, "ACTIVE")["OS-DCF:diskConfig"] == "AUTO"
            r = c.put(f"{API}/servers/{sid}", json={"server": {"OS-DCF:diskConfig": "auto"}})
            assert r.status_code == 400, r.text
            assert c.get(f"{API}/servers/{sid}").json()["server"]["OS-DCF:diskConfig"] == "AUTO"
        finally:
            c.delete(f"{API}/servers/{sid}")
            wait_gone(c, sid)
        # An image that disables automatic disk resize refuses AUTO.
        r = c.post("/image/v2/images", json={"name": "no-auto", "disk_format": "raw",
                                             "container_format": "bare",
                                             "auto_disk_config": "disabled"})
        assert r.status_code == 201, r.text
        image = r.json()["id"]
        try:
            c.put(f"/image/v2/images/{image}/file", content=b"\0" * 512,
                  headers={"Content-Type": "application/octet-stream"})
            before = len(c.get(f"{API}/servers").json()["servers"])
            r = c.post(f"{API}/servers", json={"server": {
                "name": "dcf-off", "imageRef": image, "flavorRef": "1",
                "OS-DCF:diskConfig": "AUTO"}})
            assert r.status_code == 400, r.text
            assert "automatic disk resize disabled" in r.json()["badRequest"]["message"]
            r = c.post(f"{API}/servers", json={"server": {
                "name": "dcf-bad", "imageRef": image, "flavorRef": "1",
                "OS-DCF:diskConfig": "SOMETIMES"}})
            assert r.status_code == 400, r.text
            assert len(c.get(f"{API}/servers").json()["servers"]) == before
        finally:
            c.delete(f"/image/v2/images/{image}")
