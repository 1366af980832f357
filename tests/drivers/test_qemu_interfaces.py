"""A network interface hot-plugged into a running QEMU guest and taken out again,
through ``os-interface``: the guest sees a new NIC with the port's MAC, which DHCP on
its user-mode network leases the port's address; after the detach the NIC is gone
from the guest and from its launch.json."""

from __future__ import annotations

import pytest
from novalite_drivers.qemu import hostcheck
from novalite_drivers.qemu import process as qemu_process

from tests.drivers.test_qemu_api import Cloud
from tests.drivers.test_qemu_volumes import cloud, shell, vm  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(not hostcheck.check_qemu().usable,
                                reason=f"host lacks QEMU: {hostcheck.check_qemu().reason}")


def test_an_interface_is_hot_plugged_and_unplugged(cloud: Cloud, vm: str  # noqa: F811
                                                   ) -> None:
    c = cloud.c
    r = c.post(f"/compute/v2.1/servers/{vm}/os-interface", json={"interfaceAttachment": {}})
    assert r.status_code == 200, r.text
    made = r.json()["interfaceAttachment"]
    mac, address = made["mac_addr"], made["fixed_ips"][0]["ip_address"]
    nics = qemu_process.LaunchConfig.load(cloud.instance_dir(vm)).nics
    assert [n.mac for n in nics][-1] == mac and len(nics) == 2
    # Inside the guest: a second NIC with the port's MAC; DHCP leases it the address.
    out = shell(cloud, vm,
                b"for i in $(seq 100); do [ -e /sys/class/net/eth1 ] && break; sleep 0.2; "
                b"done; cat /sys/class/net/eth1/address; ip link set eth1 up; "
                b"udhcpc -i eth1 -n -q -t 5 -T 1 -s /bin/true 2>&1 | grep -o 'lease of [0-9.]*'; "
                b"echo nic-$((40+7))", b"nic-47")
    text = out.decode(errors="replace").replace("\r", "")
    assert mac in text, text
    assert f"lease of {address}" in text, text
    r = c.delete(f"/compute/v2.1/servers/{vm}/os-interface/{made['port_id']}")
    assert r.status_code == 202, r.text
    shell(cloud, vm, b"[ -e /sys/class/net/eth1 ] || echo gone-$((40+8))", b"gone-48")
    assert len(qemu_process.LaunchConfig.load(cloud.instance_dir(vm)).nics) == 1
    assert len(c.get(f"/compute/v2.1/servers/{vm}/os-interface").json()[
        "interfaceAttachments"]) == 1
