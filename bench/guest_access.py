"""Benchmark: from ``POST /servers`` to a successful SSH login, and the metadata service.

Run as ``.venv/bin/python bench/guest_access.py [--runs N] [--requests N]`` (Debian's
``qemu-system-x86``, ``qemu-utils``, ``socat``, ``openssh-client``; the test guest is
built on first use by :mod:`novalite.testing.guest_images`).

The guest is the suite's Linux test guest (Debian cloud kernel, busybox initramfs
acting as cloud-init, Dropbear), 128 MiB, TCG (``/dev/kvm`` here is the nested
``kvm_pvm`` module, which cannot run Linux; where KVM runs Linux pass ``--driver kvm``).
Three ways, one after the other in each run, after one warm-up of each:

* **bare QEMU**: the guest's own command line (rebuilt from the ``launch.json`` the
  driver wrote, foreground), with the config drive ISO novalite made for it handed
  over directly as a disk, and a host port forwarded to its port 22: timed from
  ``Popen`` to the first successful ``ssh -i KEY root@127.0.0.1 true``;
* **novalite, config drive**: ``POST /servers`` (``key_name``, ``config_drive: true``,
  ``ssh_forward=true``) -> the same login through the forwarded port the server's
  metadata names;
* **novalite, metadata service**: the same without a config drive: the guest fetches
  its key with busybox ``wget`` from the metadata service through its compute host's
  relay.

Both sides wait for the SSH banner on the forwarded port (polled every
:data:`POLL` s: QEMU accepts the host connection at once and closes it while the
guest does not listen), then run ``ssh`` until it succeeds.

Then, in one guest on the metadata path, logged in over SSH: ``--requests`` sequential
``wget`` of ``openstack/latest/meta_data.json`` (timed by the guest's
``/proc/uptime``), and the same split over 4 parallel loops; the CPU the
``novalite serve`` process and the ``socat`` processes QEMU starts for each
connection (the guest's relay; counted through QEMU's children times) took per request.

Printed: medians [min-max] over the runs, the overhead against the target (novalite
adds at most 10% or 200 ms, whichever is larger), ratios in the same run. Everything
lives in a temporary directory removed at the end; only processes started here are
ended, by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from novalite.testing import guest_images  # noqa: E402
from novalite.testing.server import RunningServer, free_port, start  # noqa: E402

POLL = 0.05
TIMEOUT = 240.0
FLAVOR = "42"  # m1.nano: 1 vCPU, 128 MiB


def ssh_argv(port: int, key: Path, command: str) -> list[str]:
    return ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@127.0.0.1", command]


def ssh(port: int, key: Path, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ssh_argv(port, key, command), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def banner(port: int) -> bool:
    """True once something answers the SSH protocol on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_login(port: int, key: Path, t0: float, deadline_s: float = TIMEOUT) -> float:
    """Seconds from ``t0`` to the first successful ``ssh ... true`` on ``port``."""
    deadline = t0 + deadline_s
    while time.perf_counter() < deadline:
        if banner(port) and ssh(port, key, "true", timeout=60).returncode == 0:
            return time.perf_counter() - t0
        time.sleep(POLL)
    raise RuntimeError(f"no SSH login on port {port} within {deadline_s} s")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime+stime of ``pid`` (with ``children``: of its waited-for children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    idx = (13, 14) if children else (11, 12)  # cutime/cstime or utime/stime
    return sum(int(fields[i]) for i in idx) / ticks


class Cloud:
    def __init__(self, root: Path, driver: str, key_pub: str) -> None:
        self.srv: RunningServer = start(root / "svc", timeout=60, config={
            "compute": {"driver": driver, "power_sync_interval": 10.0,
                        "shutdown_timeout": 10.0}})
        self.c = self.srv.client()
        self.instances = root / "svc" / "instances"
        r = self.c.post("/compute/v2.1/os-keypairs", json={"keypair": {
            "name": "bench", "public_key": key_pub}})
        r.raise_for_status()

    def upload(self, name: str, path: str, disk_format: str, **props: Any) -> str:
        r = self.c.post("/image/v2/images", json={"name": name, "disk_format": disk_format,
                                                  "container_format": disk_format, **props})
        r.raise_for_status()
        image_id = str(r.json()["id"])
        with open(path, "rb") as f:
            self.c.put(f"/image/v2/images/{image_id}/file", content=f.read(), headers={
                "Content-Type": "application/octet-stream"}).raise_for_status()
        return image_id

    def upload_linux(self, linux: guest_images.LinuxGuest, root: str) -> str:
        kernel = self.upload("ga-kernel", linux.kernel, "aki")
        ramdisk = self.upload("ga-ramdisk", linux.initrd, "ari")
        return self.upload("ga-linux", root, "ami", kernel_id=kernel, ramdisk_id=ramdisk,
                           os_command_line=linux.append)

    def boot(self, image: str, config_drive: bool) -> tuple[str, int, float]:
        """POST /servers; returns (id, forwarded SSH port, perf_counter at POST)."""
        body = {"server": {"name": "ga-guest", "imageRef": image, "flavorRef": FLAVOR,
                           "key_name": "bench", "config_drive": config_drive,
                           "metadata": {"ssh_forward": "true"}}}
        t0 = time.perf_counter()
        r = self.c.post("/compute/v2.1/servers", json=body)
        r.raise_for_status()
        sid = str(r.json()["server"]["id"])
        deadline = t0 + TIMEOUT
        while time.perf_counter() < deadline:
            server = self.c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
            if server["status"] == "ERROR":
                raise RuntimeError(f"boot failed: {server.get('fault')}")
            port = (server.get("metadata") or {}).get("ssh_host_port")
            if port:
                return sid, int(port), t0
            time.sleep(POLL)
        raise RuntimeError("no ssh_host_port")

    def qemu_pid(self, sid: str) -> int:
        pid = qemu_process.live_pid(str(self.instances / sid), sid)
        assert pid is not None
        return pid

    def delete(self, sid: str) -> None:
        self.c.delete(f"/compute/v2.1/servers/{sid}").raise_for_status()
        deadline = time.perf_counter() + 60
        while self.c.get(f"/compute/v2.1/servers/{sid}").status_code != 404:
            if time.perf_counter() > deadline:
                raise RuntimeError("delete did not finish")
            time.sleep(POLL)

    def close(self) -> None:
        self.c.close()
        self.srv.stop()
        if self.instances.is_dir():  # never leave a guest behind: only our pidfiles
            for uuid in os.listdir(self.instances):
                pid = qemu_process.live_pid(str(self.instances / uuid), uuid)
                if pid is not None:
                    qemu_process.kill_qemu(pid, uuid)


def bare_setup(launch_dir: str, work: Path) -> tuple[list[str], int]:
    """The guest's command line from its launch.json (its disks, the config drive among
    them, copied to ``work``), foreground, SSH forwarded to a new free port."""
    cfg = qemu_process.LaunchConfig.load(launch_dir)
    work.mkdir(exist_ok=True)
    for disk in cfg.disks:
        shutil.copyfile(os.path.join(launch_dir, disk.path), work / disk.path)
    for name in (cfg.kernel, cfg.initrd):
        if name:
            shutil.copyfile(os.path.join(launch_dir, name), work / name)
    argv = qemu_process.build_argv(cfg, str(work))
    argv.remove("-daemonize")
    port = free_port()
    netdev = argv.index("-netdev") + 1
    old = cfg.nics[0].ssh_host_port
    argv[netdev] = argv[netdev].replace(f"127.0.0.1:{old}-", f"127.0.0.1:{port}-")
    return argv, port


def bare_login(argv: list[str], work: Path, port: int, key: Path) -> float:
    for name in (qemu_process.QMP_SOCKET, qemu_process.EVENTS_SOCKET):
        (work / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    qemu = subprocess.Popen(argv, cwd=work, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wait_login(port, key, t0)
    finally:
        qemu.send_signal(signal.SIGKILL)
        qemu.wait()


def novalite_login(cloud: Cloud, image: str, key: Path, config_drive: bool,
                   keep: Any = None) -> float:
    sid, port, t0 = cloud.boot(image, config_drive)
    try:
        took = wait_login(port, key, t0)
        if keep is not None:
            keep(sid, port)
        return took
    finally:
        cloud.delete(sid)


def md_rate(cloud: Cloud, sid: str, port: int, key: Path, requests: int,
            loops: int) -> dict[str, float]:
    """``requests`` wget of meta_data.json from inside the guest, over ``loops``
    parallel loops; guest wall time, and the host CPU it cost."""
    per = requests // loops
    script = (
        "ip=$(cat /run/ip); a=${ip%.*}.254; u=http://$a/openstack/latest/meta_data.json; "
        "wget -q -O /dev/null $u || exit 3; "
        "s=$(cut -d' ' -f1 /proc/uptime); "
        f"for l in $(seq {loops}); do (for i in $(seq {per}); do "
        "wget -q -O /dev/null $u || echo FAIL; done) & done; wait; "
        "e=$(cut -d' ' -f1 /proc/uptime); echo $s $e")
    svc = cloud.srv.process.pid
    qemu = cloud.qemu_pid(sid)
    c0, s0 = cpu_seconds(svc), cpu_seconds(qemu, children=True)
    out = ssh(port, key, script, timeout=600)
    c1, s1 = cpu_seconds(svc), cpu_seconds(qemu, children=True)
    if out.returncode != 0 or "FAIL" in out.stdout:
        raise RuntimeError(f"metadata loop failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    start_s, end_s = (float(x) for x in out.stdout.split()[-2:])
    n = per * loops
    return {"n": n, "rate": n / (end_s - start_s), "svc_ms": (c1 - c0) * 1000 / n,
            "socat_ms": (s1 - s0) * 1000 / n}


def med(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s [{min(values):.2f}-{max(values):.2f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured logins per way")
    parser.add_argument("--requests", type=int, default=200,
                        help="metadata requests from inside the guest")
    parser.add_argument("--driver", default="qemu", choices=["qemu", "kvm"])
    args = parser.parse_args()
    if not hostcheck.check_qemu().usable:
        print(f"cannot run: {hostcheck.check_qemu().reason}")
        return 2
    linux = guest_images.linux_guest()
    print(f"guest access benchmark: {args.runs} runs per way after one warm-up, medians "
          f"[min-max]; {args.driver} driver; {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="novalite-bench-ga-") as tmp:
        root = Path(tmp)
        key = root / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        blank = root / "root.img"
        blank.write_bytes(bytes(1024 * 1024))
        cloud = Cloud(root, args.driver, (root / "id_ed25519.pub").read_text().strip())
        try:
            image = cloud.upload_linux(linux, str(blank))
            captured: dict[str, Any] = {}

            def capture(sid: str, port: int) -> None:
                captured["bare"] = bare_setup(str(cloud.instances / sid), root / "bare")

            # Warm-ups (the first also yields the bare command line, config drive in it).
            novalite_login(cloud, image, key, True, keep=capture)
            argv, bare_port = captured["bare"]
            bare_login(argv, root / "bare", bare_port, key)
            novalite_login(cloud, image, key, False)
            bare: list[float] = []
            drive: list[float] = []
            mds: list[float] = []
            for i in range(args.runs):
                bare.append(bare_login(argv, root / "bare", bare_port, key))
                drive.append(novalite_login(cloud, image, key, True))
                mds.append(novalite_login(cloud, image, key, False))
                print(f"  run {i + 1}: bare {bare[-1]:.2f} s, config drive {drive[-1]:.2f} s, "
                      f"metadata service {mds[-1]:.2f} s", flush=True)
            b = statistics.median(bare)
            allowed = max(0.10 * b, 0.200)
            print("\n== POST /servers (or Popen) -> first successful SSH login (key pair)")
            print(f"   bare qemu, config drive handed over   {med(bare)}")
            for label, values in (("novalite, config drive          ", drive),
                                  ("novalite, metadata service      ", mds)):
                m = statistics.median(values)
                ratios = [v / bv for v, bv in zip(values, bare, strict=True)]
                print(f"   {label}       {med(values)}   overhead {(m - b) * 1000:+6.0f} ms, "
                      f"ratio {m / b:.3f} (per run {', '.join(f'{r:.2f}' for r in ratios)}); "
                      f"target <= {allowed * 1000:.0f} ms (10% or 200 ms): "
                      f"{'OK' if m - b <= allowed else 'OVER TARGET'}")

            # The metadata service, from inside one guest.
            result: dict[str, Any] = {}
            sid, port, t0 = cloud.boot(image, False)
            try:
                wait_login(port, key, t0)
                result["seq"] = md_rate(cloud, sid, port, key, args.requests, 1)
                result["par"] = md_rate(cloud, sid, port, key, args.requests, 4)
            finally:
                cloud.delete(sid)
            print("\n== metadata requests from one guest (busybox wget of "
                  "openstack/latest/meta_data.json, guest clock)")
            for label, r in (("sequential ", result["seq"]), ("4 parallel ", result["par"])):
                print(f"   {label} {r['n']:4.0f} requests  {r['rate']:6.1f} req/s   "
                      f"novalite serve CPU {r['svc_ms']:.2f} ms/request, "
                      f"relay socat (QEMU's children) {r['socat_ms']:.2f} ms/request")
        finally:
            cloud.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
