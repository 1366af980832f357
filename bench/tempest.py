"""OpenStack's own API test suite, Tempest, against a fake-driver novalite.

    .venv/bin/python bench/tempest.py                       # compute, image.v2, identity.v3
    .venv/bin/python bench/tempest.py --regex 'tempest\\.api\\.compute\\.flavors'
    .venv/bin/python bench/tempest.py --keep                # keep the work directory
    .venv/bin/python bench/tempest.py --neutron             # [service_available] neutron
    .venv/bin/python bench/tempest.py --cinder --regex 'tempest\\.api\\.(compute\\.volumes|volume)'

What it does, each run:
1. installs Tempest (pinned below) into its own venv, ``.venv-tempest`` (once);
2. starts ``novalite serve`` on the fake driver with three hosts, on a free port, in a
   temporary state directory;
3. creates pre-provisioned accounts (Tempest's ``accounts.yaml``): members, readers and
   managers in projects of their own, an admin; a second image for ``image_ref_alt``;
4. writes ``tempest.conf`` whose feature flags say what novalite claims, nothing more,
   and whose ``max_microversion`` is the server's (from its versions document);
5. runs ``tempest run`` (concurrency 1 by default) and prints passed / failed / skipped
   per package, the failing test ids, and how many tests Tempest's compute base class
   skipped because neutron is off (classes marked ``create_default_network``).

Not part of ``.ci/run``: a full run takes minutes. The service's log is kept in the
work directory when a run fails or with ``--keep``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from novalite.testing.server import ADMIN_PASSWORD, RunningServer, start  # noqa: E402

TEMPEST = "tempest==47.0.0"
VENV = ROOT / ".venv-tempest"
PACKAGES = ("tempest.api.compute", "tempest.api.image.v2", "tempest.api.identity.v3")
DEFAULT_REGEX = r"^tempest\.api\.(compute|image\.v2|identity\.v3)\."
PASSWORD = "tempest-secret-1"

#: Tempest's [compute-feature-enabled] flags: True only for what novalite does.
COMPUTE_FEATURES = {
    "console_output": True, "pause": True, "suspend": True, "snapshot": True,
    "resize": True, "shelve": True, "shelve_migrate": False, "cold_migration": True,
    "live_migration": False, "live_migrate_back_and_forth": False,
    "block_migration_for_live_migration": False, "metadata_service": False,
    "vnc_console": False, "spice_console": False, "serial_console": False,
    "rescue": True, "stable_rescue": True, "change_password": False,
    "interface_attach": True, "personality": False, "config_drive": False,
    "attach_encrypted_volume": False, "swap_volume": False, "volume_multiattach": False,
    "volume_backed_live_migration": False, "enable_instance_password": True,
    "disk_config": True, "ide_bus": False, "unified_limits": False,
    "hostname_fqdn_sanitization": False,
}


def say(*parts: Any) -> None:
    print("==>", *parts, file=sys.stderr, flush=True)


def ensure_tempest() -> Path:
    tempest = VENV / "bin" / "tempest"
    if tempest.exists():
        return tempest
    say(f"installing {TEMPEST} into {VENV}")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", TEMPEST], check=True)
    return tempest


class Admin:
    """The bits of the identity, image and compute APIs the set-up needs, as admin."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30,
                                 headers={"X-Auth-Token": server.token()})

    def _ok(self, r: httpx.Response) -> dict[str, Any]:
        if r.status_code >= 400:
            raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text}")
        return r.json() if r.content else {}

    def role_id(self, name: str) -> str:
        roles = self._ok(self.http.get("/identity/v3/roles", params={"name": name}))["roles"]
        return str(roles[0]["id"])

    def project(self, name: str) -> str:
        found = self._ok(self.http.get("/identity/v3/projects", params={"name": name}))
        if found["projects"]:
            return str(found["projects"][0]["id"])
        body = {"project": {"name": name, "domain_id": "default"}}
        return str(self._ok(self.http.post("/identity/v3/projects", json=body))["project"]["id"])

    def user(self, name: str, project_id: str, role: str) -> None:
        body = {"user": {"name": name, "password": PASSWORD, "domain_id": "default",
                         "default_project_id": project_id}}
        user_id = self._ok(self.http.post("/identity/v3/users", json=body))["user"]["id"]
        self._ok(self.http.put(f"/identity/v3/projects/{project_id}/users/{user_id}"
                               f"/roles/{self.role_id(role)}"))

    def max_microversion(self) -> str:
        """The compute API's maximum microversion, from its versions document."""
        doc = self._ok(self.http.get("/compute/"))
        return next(str(v["version"]) for v in doc["versions"] if v["id"] == "v2.1")

    def image_id(self, name: str) -> str:
        images = self._ok(self.http.get("/image/v2/images", params={"name": name}))["images"]
        return str(images[0]["id"])

    def copy_image(self, source_id: str, name: str) -> str:
        """A second public image with the same data (Tempest's ``image_ref_alt``)."""
        src = self._ok(self.http.get(f"/image/v2/images/{source_id}"))
        data = self.http.get(f"/image/v2/images/{source_id}/file").content
        body = {"name": name, "disk_format": src["disk_format"],
                "container_format": src["container_format"], "visibility": "public"}
        image = self._ok(self.http.post("/image/v2/images", json=body))
        self._ok(self.http.put(f"/image/v2/images/{image['id']}/file", content=data,
                               headers={"Content-Type": "application/octet-stream"}))
        return str(image["id"])


def write_accounts(admin: Admin, path: Path) -> None:
    """Members and readers in projects of their own (Tempest wants a project per account),
    and admins. Concurrency N needs about 2N of each."""
    accounts: list[dict[str, Any]] = []
    # Members first: Tempest's ``alt`` credentials take the first free non-admin account,
    # which must be a member of another project than ``primary``'s, not a reader of it.
    # Managers (Nova's project manager persona: migrations) share the members' projects.
    for role, prefix in (("member", "tempest-member"), ("reader", "tempest-reader"),
                         ("manager", "tempest-manager")):
        for i in range(1, 5):
            project = f"tempest-p{i}"
            pid = admin.project(project)
            admin.user(f"{prefix}{i}", pid, role)
            accounts.append({"username": f"{prefix}{i}", "project_name": project,
                             "password": PASSWORD, "user_domain_name": "Default",
                             "project_domain_name": "Default", "roles": [role]})
    for i in range(1, 3):
        project = f"tempest-admin-p{i}"
        pid = admin.project(project)
        admin.user(f"tempest-admin{i}", pid, "admin")
        accounts.append({"username": f"tempest-admin{i}", "project_name": project,
                         "password": PASSWORD, "user_domain_name": "Default",
                         "project_domain_name": "Default", "roles": ["admin"],
                         "types": ["admin"]})
    path.write_text(json.dumps(accounts, indent=1))  # JSON is YAML


def write_conf(path: Path, server: RunningServer, accounts: Path, image: str,
               image_alt: str, max_mv: str, neutron: bool = False,
               cinder: bool = False) -> None:
    def section(name: str, values: dict[str, Any]) -> str:
        def fmt(v: Any) -> str:
            return str(v).lower() if isinstance(v, bool) else str(v)
        return f"[{name}]\n" + "".join(f"{k} = {fmt(v)}\n" for k, v in values.items()) + "\n"

    text = "".join([
        section("DEFAULT", {"log_file": str(path.parent.parent / "tempest.log"),
                            "use_stderr": False}),
        section("auth", {"use_dynamic_credentials": False, "test_accounts_file": accounts,
                         "create_isolated_networks": False,
                         "default_credentials_domain_name": "Default",
                         "admin_username": "admin", "admin_password": ADMIN_PASSWORD,
                         "admin_project_name": "admin", "admin_domain_name": "Default"}),
        section("identity", {"uri_v3": f"{server.url}/identity/v3", "auth_version": "v3",
                             "region": "RegionOne", "v3_endpoint_type": "public"}),
        section("identity-feature-enabled", {"api_v2": False, "api_v3": True, "trust": False,
                                             "security_compliance": False,
                                             "access_rules": False}),
        section("compute", {"image_ref": image, "image_ref_alt": image_alt,
                            "flavor_ref": "1", "flavor_ref_alt": "2",
                            "build_timeout": 60, "build_interval": 1,
                            "min_compute_nodes": 3, "min_microversion": "2.1",
                            "max_microversion": max_mv,
                            "fixed_network_name": "private" if neutron else "",
                            "endpoint_type": "publicURL"}),
        section("compute-feature-enabled", COMPUTE_FEATURES),
        section("image", {"build_timeout": 60, "build_interval": 1,
                          "endpoint_type": "publicURL",
                          "container_formats": "bare,ami,aki,ari,ovf",
                          "disk_formats": "qcow2,raw,ami,ari,aki,vhd,vmdk,vdi,iso"}),
        section("image-feature-enabled", {"api_v2": True, "import_image": False,
                                          "os_glance_reserved": False,
                                          "manage_locations": False}),
        section("network-feature-enabled", {
            "floating_ips": False, "ipv6": False, "port_security": True,
            "api_extensions": "security-group,port-security,binding,network-mtu,"
                              "standard-attr-description,standard-attr-timestamp,"
                              "project-id,external-net,quotas,quota_details"}),
        section("network", {"project_network_cidr": "10.100.0.0/16",
                            "shared_physical_network": True}),
        section("service_available", {"nova": True, "glance": True, "neutron": neutron,
                                       "cinder": cinder, "swift": False, "horizon": False,
                                       "placement": False}),
        section("volume", {"catalog_type": "volumev3", "endpoint_type": "publicURL",
                           "build_timeout": 60, "build_interval": 1, "volume_size": 1,
                           "min_microversion": "3.0", "max_microversion": "3.42"}),
        section("volume-feature-enabled", {
            "backup": False, "snapshot": True, "clone": True, "manage_volume": False,
            "manage_snapshot": False, "extend_attached_volume": True,
            "volume_revert": False, "cluster_active_active": False}),
        section("validation", {"run_validation": False}),
        section("oslo_concurrency", {"lock_path": str(path.parent.parent / "locks")}),
    ])
    path.write_text(text)


#: Reads Tempest's subunit stream (in Tempest's venv) and prints one JSON line per test.
_SUBUNIT_READER = r"""
import json, sys
import subunit, testtools
def emit(test):
    reason = ""
    details = test.get("details") or {}
    if "reason" in details:
        reason = details["reason"].as_text()
    print(json.dumps({"id": test["id"], "status": test["status"], "reason": reason[:300]}))
stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
result = testtools.StreamToDict(emit)
result.startTestRun(); stream.run(result); result.stopTestRun()
"""


def package_of(test_id: str) -> str:
    m = re.search(r"\((tempest[^)]*)\)", test_id)  # setUpClass (tempest.api....Class)
    name = m.group(1) if m else test_id
    for pkg in PACKAGES:
        if name.startswith(pkg + "."):
            return pkg
    return "other"


def class_of(test_id: str) -> str:
    m = re.search(r"\((tempest[^)]*)\)", test_id)
    if m:
        return m.group(1)
    return test_id.split("[")[0].rsplit(".", 1)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regex", default=DEFAULT_REGEX)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--max-microversion", default="latest")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--neutron", action="store_true",
                        help="[service_available] neutron = true: the classes that need "
                             "networks run on novalite's Neutron subset (network private)")
    parser.add_argument("--cinder", action="store_true",
                        help="[service_available] cinder = true: volume tests run on "
                             "novalite's Cinder v3 subset (file backend)")
    args = parser.parse_args()

    tempest = ensure_tempest()
    work = Path(tempfile.mkdtemp(prefix="novalite-tempest-"))
    server = start(work / "state", config={
        "compute": {"driver": "fake", "hosts": [f"tempest-host{i}" for i in range(1,
                                                                             args.hosts + 1)]},
        "quota": {"instances": 200, "cores": 400, "ram": 1024000},
        "volume": {"quota_volumes": 200, "quota_gigabytes": 4000, "quota_snapshots": 200},
    }, timeout=120)  # a loaded machine (other runs beside this one) starts slowly
    failed_run = True
    try:
        admin = Admin(server)
        image = admin.image_id("demo")
        # Tempest's "latest" means no cap: tests of a newer microversion than the
        # server's would run and fail instead of skipping. Cap it at the server's.
        max_mv = args.max_microversion
        if max_mv == "latest":
            max_mv = admin.max_microversion()
        image_alt = admin.copy_image(image, "demo-alt")
        # A workspace file of its own: nothing is written to ~/.tempest.
        subprocess.run([str(tempest), "init", "--name", work.name, "--workspace-path",
                        str(work / "workspace.yaml"), str(work / "tempest")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        accounts = work / "tempest" / "etc" / "accounts.yaml"
        write_accounts(admin, accounts)
        write_conf(work / "tempest" / "etc" / "tempest.conf", server, accounts, image,
                   image_alt, max_mv, neutron=args.neutron, cinder=args.cinder)
        os.environ["TEMPEST_CONFIG_DIR"] = str(work / "tempest" / "etc")
        os.environ["TEMPEST_CONFIG"] = "tempest.conf"
        listed = subprocess.run([str(tempest), "run", "--list-tests", "--regex", args.regex],
                                cwd=work / "tempest", capture_output=True, text=True)
        all_ids = [line.strip() for line in listed.stdout.splitlines()
                   if line.strip().startswith("tempest.")]
        if not all_ids:
            say("Tempest found no test; its discovery said:\n" + listed.stdout[-3000:]
                + listed.stderr[-3000:])
            return 1
        say(f"running {len(all_ids)} tests matching {args.regex!r} "
            f"(concurrency {args.concurrency}); work directory {work}")
        started = time.monotonic()
        subprocess.run([str(tempest), "run", "--regex", args.regex, "--concurrency",
                        str(args.concurrency)], cwd=work / "tempest",
                       stdout=open(work / "tempest-run.txt", "w"), stderr=subprocess.STDOUT)
        minutes = (time.monotonic() - started) / 60
        stream = subprocess.run([str(VENV / "bin" / "stestr"), "last", "--subunit"],
                                cwd=work / "tempest", capture_output=True)
        parsed = subprocess.run([str(VENV / "bin" / "python"), "-c", _SUBUNIT_READER],
                                input=stream.stdout, capture_output=True)
        results = [json.loads(line) for line in parsed.stdout.decode().splitlines()
                   if line.startswith("{")]
        failed_run = report(results, all_ids, minutes)
    finally:
        server.stop()
        if args.keep or failed_run:
            say(f"kept {work} (service log: {server.log_path})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed_run else 0


def report(results: list[dict[str, Any]], all_ids: list[str], minutes: float) -> bool:
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failures: list[str] = []
    neutron_classes: set[str] = set()
    for r in results:
        status = {"success": "passed", "fail": "failed", "skip": "skipped",
                  "xfail": "passed", "uxsuccess": "failed"}.get(r["status"])
        if status is None:
            continue
        pkg = package_of(r["id"])
        if status == "skipped" and "Neutron is not available" in r["reason"]:
            neutron_classes.add(class_of(r["id"]))
        # A class that fails or skips in setUpClass reports once for all of its tests:
        # count each of its tests, so the figures are per test.
        weight = 1
        if r["id"].startswith("setUpClass"):
            weight = max(1, sum(1 for t in all_ids if class_of(t) == class_of(r["id"])))
        counts[pkg][status] += weight
        if status == "failed":
            failures.append(r["id"])
    hidden = sum(1 for t in all_ids if class_of(t) in neutron_classes)
    print(f"\nTempest against novalite (fake driver), {minutes:.1f} min")
    print(f"{'package':28} {'passed':>7} {'failed':>7} {'skipped':>8} {'pass rate':>10}")
    for pkg in (*PACKAGES, "other"):
        c = counts.get(pkg)
        if not c:
            continue
        ran = c["passed"] + c["failed"]
        rate = f"{100 * c['passed'] / ran:.1f}%" if ran else "-"
        print(f"{pkg:28} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8} {rate:>10}")
    print(f"\nhidden by 'Neutron is not available' (classes marked create_default_network): "
          f"{len(neutron_classes)} classes, {hidden} tests")
    if failures:
        print(f"\nfailing ({len(failures)}):")
        for t in sorted(failures):
            print("  " + t)
    return bool(failures)


if __name__ == "__main__":
    raise SystemExit(main())
