"""A stock Debian 12 cloud image with Debian's own, unmodified cloud-init, on novalite.

Run as ``.venv/bin/python bench/stock_image.py`` (root: ``debootstrap`` writes a root
file system with device nodes and root-owned files; Debian's ``debootstrap``,
``grub-pc-bin``, ``e2fsprogs``, ``qemu-system-x86``, ``qemu-utils``,
``openssh-client``). Slow: it builds an image once (cached) and boots a whole Debian
under TCG where KVM cannot run Linux.

**The image**, made only of Debian packages, the way Debian's cloud images are:

* ``debootstrap --variant=minbase`` of bookworm from a Debian mirror (``--mirror``)
  with ``linux-image-cloud-amd64``, ``cloud-init``, ``openssh-server``, systemd,
  ``ifupdown`` + ``isc-dhcp-client`` (cloud-init's ENI renderer) and ``sudo``; nothing
  in cloud-init's files is touched. The image keeps no SSH host keys, no machine-id,
  no resolv.conf and no apt cache (each instance makes its own, as in Debian's images);
  ``/etc/fstab`` names the root file system by UUID; ``en_US.UTF-8`` is generated and
  set as the default locale (what cloud-init's locale module asks for on Debian).
* One MBR partition, ext4 made by ``mkfs.ext4 -d`` straight from the tree (no loop
  device, no mount), GRUB for BIOS from the host's ``grub-pc-bin``: ``grub-mkimage``
  builds the core image (``biosdisk part_msdos ext2``), written after the MBR as
  ``grub-install`` would; GRUB's modules and a ``grub.cfg`` (``console=tty0
  console=ttyS0``, as Debian's cloud images) in ``/boot/grub``. Then ``qemu-img
  convert`` to qcow2, uploaded through the Glance API as an ordinary ``qcow2`` image.

**The boot**: a real ``novalite serve`` (qemu driver, TCG, or ``--driver kvm``),
``POST /servers`` with m1.small, a key pair, cloud-config user data, ``config_drive:
true`` (on QEMU's user-mode network the metadata service is not at 169.254.169.254,
so a stock cloud-init reads the config drive, its first choice anyway) and
``ssh_forward=true``. Timed: POST -> ACTIVE, -> the kernel's first line and
"Cloud-init ... finished" on the console log, -> the SSH banner, -> the first
successful login as cloud-init's default user (``debian``) with the key pair. Then,
over SSH: the hostname, the instance id cloud-init recorded, the data source, the
file and the command the user data asked for, ``cloud-init status``.

The image cache is ``<repo>/.cache/stock-image`` (``--rebuild`` makes it again). The
service and the guest live in a temporary directory removed at the end; only
processes started here are ended, by PID.
"""

from __future__ import annotations

import argparse
import base64
import glob
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from novalite.testing.server import RunningServer, start  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "stock-image"
SUITE = "bookworm"
#: What Debian's own cloud images have for booting, networking and logging in; the
#: resolver of debootstrap does not follow virtual packages, hence python3-cffi-backend
#: (python3-cryptography's ``python3-cffi-backend-api-*``).
PACKAGES = ("systemd-sysv", "udev", "dbus", "linux-image-cloud-amd64", "cloud-init",
            "openssh-server", "ifupdown", "isc-dhcp-client", "iproute2", "sudo", "netbase",
            "procps", "ca-certificates", "python3-cffi-backend")
DISK_BYTES = 2 * 1024**3
PART_START = 2048  # sectors: 1 MiB, as every partitioning tool leaves for the boot loader
GRUB_DIR = "/usr/lib/grub/i386-pc"
FLAVOR = "2"  # m1.small: 1 vCPU, 2 GiB, 20 GiB disk
USER = "debian"  # cloud-init's default user in Debian's cloud.cfg
TIMEOUT = 1800.0
POLL = 0.5

USER_DATA = """#cloud-config
write_files:
  - path: /etc/novalite-user-data
    content: "user data reached the guest\\n"
runcmd:
  - [sh, -c, "echo runcmd-ran-$((6*7)) > /run/novalite-runcmd"]
"""


def run(argv: list[str], **kw: object) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")
    return str(result.stdout)


# -- the image -------------------------------------------------------------------------


def debootstrap(tree: Path, mirror: str) -> None:
    log = CACHE / "debootstrap.log"
    with open(log, "w") as out:
        rc = subprocess.run(["debootstrap", "--variant=minbase",
                             f"--include={','.join(PACKAGES)}", SUITE, str(tree), mirror],
                            stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise RuntimeError(f"debootstrap failed ({rc}); see {log} and "
                           f"{tree}/debootstrap/debootstrap.log")


def configure(tree: Path, fs_uuid: str) -> tuple[str, str]:
    """What Debian's image build does after installing: fstab, network, no per-instance
    state. Returns the kernel and initrd paths inside the tree."""
    (tree / "etc/fstab").write_text(f"UUID={fs_uuid} / ext4 errors=remount-ro 0 1\n")
    (tree / "etc/network/interfaces").write_text(
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n")
    (tree / "etc/hostname").write_text("localhost\n")
    (tree / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    (tree / "etc/machine-id").write_text("")
    # The image's locale, made at build time as Debian's images do: Debian's
    # locale-gen builds only what /etc/locale.gen lists, so cloud-init's locale module
    # (en_US.UTF-8 by default) finds it already set instead of failing to generate it.
    (tree / "etc/locale.gen").write_text("en_US.UTF-8 UTF-8\n")
    (tree / "etc/default/locale").write_text("LANG=en_US.UTF-8\n")
    run(["chroot", str(tree), "locale-gen"])
    for path in [*glob.glob(str(tree / "etc/ssh/ssh_host_*")),
                 *glob.glob(str(tree / "var/cache/apt/archives/*.deb")),
                 *glob.glob(str(tree / "var/lib/apt/lists/*_Packages")),
                 str(tree / "var/lib/dbus/machine-id"), str(tree / "etc/resolv.conf")]:
        if os.path.lexists(path):
            os.unlink(path)
    shutil.rmtree(tree / "debootstrap", ignore_errors=True)
    kernel = sorted(glob.glob(str(tree / "boot/vmlinuz-*")))[-1]
    initrd = sorted(glob.glob(str(tree / "boot/initrd.img-*")))[-1]
    # GRUB's modules and its configuration where the core image's prefix points.
    grub = tree / "boot/grub"
    shutil.rmtree(grub, ignore_errors=True)
    shutil.copytree(GRUB_DIR, grub / "i386-pc",
                    ignore=shutil.ignore_patterns("*.img", "*.image", "*.exec"))
    k, i = "/boot/" + os.path.basename(kernel), "/boot/" + os.path.basename(initrd)
    (grub / "grub.cfg").write_text(
        "set timeout=0\nset default=0\n"
        "menuentry 'Debian GNU/Linux' {\n"
        f"  search --no-floppy --fs-uuid --set=root {fs_uuid}\n"
        f"  linux {k} root=UUID={fs_uuid} ro console=tty0 console=ttyS0,115200\n"
        f"  initrd {i}\n}}\n")
    return kernel, initrd


def mbr_entry(start: int, sectors: int) -> bytes:
    """One bootable Linux (0x83) partition entry, LBA only (CHS fields saturated)."""
    return struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff",
                       start, sectors)


def make_disk(tree: Path, fs_uuid: str, dest: Path) -> None:
    raw = dest.with_suffix(".raw")
    sectors = DISK_BYTES // 512 - PART_START
    with open(raw, "wb") as f:
        f.truncate(DISK_BYTES)
    run(["mkfs.ext4", "-F", "-q", "-L", "root", "-U", fs_uuid, "-d", str(tree),
         "-E", f"offset={PART_START * 512}", str(raw), f"{sectors // 2}k"])
    core = raw.with_suffix(".core")
    run(["grub-mkimage", "-O", "i386-pc", "-o", str(core), "-d", GRUB_DIR,
         "-p", "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2"])
    core_img = core.read_bytes()
    core.unlink()
    # The core image's first sector loads the rest from the sectors after it (its
    # blocklist, which grub-mkimage fills in: start 2, the count of the rest).
    start, count, _segment = struct.unpack("<QHH", core_img[500:512])
    if start != 2 or count != (len(core_img) + 511) // 512 - 1:
        raise RuntimeError(f"unexpected GRUB core blocklist: start={start} count={count}")
    if len(core_img) > (PART_START - 1) * 512:
        raise RuntimeError("GRUB's core image does not fit before the partition")
    boot = Path(GRUB_DIR, "boot.img").read_bytes()
    if struct.unpack("<Q", boot[0x5C:0x64])[0] != 1:  # where boot.img finds the core
        raise RuntimeError("GRUB's boot.img does not load the core from sector 1")
    with open(raw, "r+b") as f:
        f.write(boot[:440])  # boot code; disk signature and partition table follow
        f.seek(446)
        f.write(mbr_entry(PART_START, sectors) + bytes(48) + b"\x55\xaa")
        f.seek(512)
        f.write(core_img)
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(dest)])
    raw.unlink()


def build_image(mirror: str, rebuild: bool) -> tuple[Path, dict[str, float]]:
    CACHE.mkdir(parents=True, exist_ok=True)
    dest = CACHE / f"debian-12-cloud-{SUITE}.qcow2"
    timings: dict[str, float] = {}
    if dest.exists() and not rebuild:
        return dest, timings
    tree = CACHE / "rootfs"
    shutil.rmtree(tree, ignore_errors=True)
    t = time.perf_counter()
    debootstrap(tree, mirror)
    timings["debootstrap"] = time.perf_counter() - t
    t = time.perf_counter()
    fs_uuid = str(uuid.uuid4())
    configure(tree, fs_uuid)
    tmp = dest.with_suffix(".tmp.qcow2")
    make_disk(tree, fs_uuid, tmp)
    os.replace(tmp, dest)
    shutil.rmtree(tree)
    timings["disk image"] = time.perf_counter() - t
    return dest, timings


# -- the boot ------------------------------------------------------------------------


def ssh(port: int, key: Path, command: str, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", f"{USER}@127.0.0.1", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(5)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def console(c: httpx.Client, sid: str) -> str:
    r = c.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}})
    return str(r.json()["output"]) if r.status_code == 200 else ""


def boot_and_verify(image: Path, driver: str, root: Path) -> int:
    key = root / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    srv: RunningServer = start(root / "svc", timeout=60, config={
        "compute": {"driver": driver, "power_sync_interval": 10.0,
                    "shutdown_timeout": 30.0}})
    c = srv.client()
    sid = None
    try:
        c.post("/compute/v2.1/os-keypairs", json={"keypair": {
            "name": "stock", "public_key": (root / "id_ed25519.pub").read_text().strip()}}
               ).raise_for_status()
        t = time.perf_counter()
        r = c.post("/image/v2/images", json={"name": "debian-12-cloud", "disk_format": "qcow2",
                                             "container_format": "bare",
                                             "os_distro": "debian", "os_version": "12"})
        r.raise_for_status()
        image_id = r.json()["id"]
        with open(image, "rb") as f:
            c.put(f"/image/v2/images/{image_id}/file", content=f.read(),
                  headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        print(f"uploaded {image.name} ({image.stat().st_size / 2**20:.0f} MiB qcow2) through "
              f"the Glance API in {time.perf_counter() - t:.1f} s")
        body = {"server": {"name": "Debian Stock_1", "imageRef": image_id,
                           "flavorRef": FLAVOR, "key_name": "stock", "config_drive": True,
                           "user_data": base64.b64encode(USER_DATA.encode()).decode(),
                           "metadata": {"ssh_forward": "true"}}}
        t0 = time.perf_counter()
        r = c.post("/compute/v2.1/servers", json=body)
        r.raise_for_status()
        sid = r.json()["server"]["id"]
        marks: dict[str, float] = {}
        port = 0
        deadline = t0 + TIMEOUT
        logged_in = False
        last_log = ""
        while time.perf_counter() < deadline and not logged_in:
            now = time.perf_counter() - t0
            if "ACTIVE" not in marks:
                server = c.get(f"/compute/v2.1/servers/{sid}").json()["server"]
                if server["status"] == "ERROR":
                    raise RuntimeError(f"boot failed: {server.get('fault')}")
                if server["status"] == "ACTIVE":
                    marks["ACTIVE"] = now
                    port = int(server["metadata"]["ssh_host_port"])
            else:
                last_log = console(c, sid)
                for label, text in (("kernel's first line", "Linux version"),
                                    ("cloud-init init (network stage)", "Cloud-init v."),
                                    ("cloud-init finished", "finished at")):
                    if label not in marks and text in last_log:
                        marks[label] = now
                if banner(port):
                    marks.setdefault("SSH banner", now)
                    if ssh(port, key, "true").returncode == 0:
                        marks["SSH login (key pair)"] = time.perf_counter() - t0
                        logged_in = True
            time.sleep(POLL)
        if not logged_in:
            print(f"no login within {TIMEOUT:.0f} s; console:\n{last_log[-4000:]}")
            return 1
        print(f"\n== POST /servers -> ... ({driver} driver, m1.small: 1 vCPU, 2 GiB)")
        for label, when in sorted(marks.items(), key=lambda kv: kv[1]):
            print(f"   {label:34s} {when:7.1f} s")
        # What the unmodified cloud-init did, seen from inside.
        out = ssh(port, key, "cloud-init status --wait --long >/dev/null 2>&1; "
                  "echo hostname=$(hostname); "
                  "echo instance-id=$(cat /var/lib/cloud/data/instance-id); "
                  "echo cloud-id=$(cloud-id); "
                  "echo datasource=$(cat /run/cloud-init/cloud-id 2>/dev/null); "
                  "echo ds=$(grep -o 'DataSource[A-Za-z]*' /run/cloud-init/status.json | "
                  "head -1); "
                  "echo user-data-file=$(cat /etc/novalite-user-data); "
                  "echo runcmd=$(cat /run/novalite-runcmd); "
                  "echo key=$(cut -d' ' -f1-2 ~/.ssh/authorized_keys | md5sum | cut -c1-8); "
                  "echo status=$(cloud-init status | tr '\\n' ' '); "
                  "echo errors=$(grep -c -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log); "
                  "echo cloud-init=$(dpkg-query -W -f='${Version}' cloud-init); "
                  "echo kernel=$(uname -r); echo sudo=$(sudo -n id -un); "
                  "echo boot=$(systemd-analyze | head -1); "
                  "echo slowest=$(systemd-analyze blame | head -4 | tr -s ' ' | tr '\\n' ';'); "
                  "echo network=$(grep -v '^#' /etc/network/interfaces.d/50-cloud-init | "
                  "tr -s ' \\n' ' ')", timeout=600)
        facts = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        mine = run(["sh", "-c", f"cut -d' ' -f1-2 {key}.pub | md5sum | cut -c1-8"]).strip()
        expected = {
            "hostname": "debian-stock-1", "instance-id": sid, "cloud-id": "configdrive",
            "ds": "DataSourceConfigDrive", "user-data-file": "user data reached the guest",
            "status": "status: done",
            "runcmd": "runcmd-ran-42", "key": mine, "sudo": "root",
        }
        print("\n== what Debian's cloud-init did (read over SSH as "
              f"{USER}@127.0.0.1 -p {port})")
        ok = True
        for name, value in facts.items():
            want = expected.get(name)
            mark = "" if want is None else ("  OK" if value.strip() == want else
                                            f"  EXPECTED {want!r}")
            ok &= not mark.startswith("  EXPECTED")
            print(f"   {name:15s} {value.strip()}{mark}")
        missing = set(expected) - set(facts)
        if missing:
            print(f"   missing: {sorted(missing)}")
            ok = False
        print("\nverified: key pair login, hostname, instance id, user data "
              "(write_files, runcmd), data source" if ok else "\nNOT all verified")
        return 0 if ok else 1
    finally:
        if sid is not None:
            c.delete(f"/compute/v2.1/servers/{sid}")
            deadline = time.perf_counter() + 120
            while (c.get(f"/compute/v2.1/servers/{sid}").status_code != 404
                   and time.perf_counter() < deadline):
                time.sleep(0.5)
        c.close()
        srv.stop()
        from novalite_drivers.qemu import process as qemu_process

        instances = root / "svc" / "instances"
        if instances.is_dir():  # never leave a guest behind: only our pidfiles
            for name in os.listdir(instances):
                pid = qemu_process.live_pid(str(instances / name), name)
                if pid is not None:
                    qemu_process.kill_qemu(pid, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", default="http://deb.debian.org/debian")
    parser.add_argument("--rebuild", action="store_true", help="build the image again")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--driver", default="qemu", choices=["qemu", "kvm"])
    args = parser.parse_args()
    for tool in ("debootstrap", "grub-mkimage", "mkfs.ext4", "qemu-img", "ssh"):
        if shutil.which(tool) is None:
            print(f"cannot run: {tool} not found (Debian packages debootstrap, grub-pc-bin, "
                  "e2fsprogs, qemu-utils, openssh-client)")
            return 2
    t = time.perf_counter()
    image, timings = build_image(args.mirror, args.rebuild)
    if timings:
        print(f"built {image} in {time.perf_counter() - t:.0f} s (" +
              ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")")
    else:
        print(f"using the cached {image} (--rebuild to make it again)")
    if args.build_only:
        return 0
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="novalite-stock-") as tmp:
        return boot_and_verify(image, args.driver, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
