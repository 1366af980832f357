"""PackWeigher's weights, on novalite's own HostState (plain data, no service)."""

from __future__ import annotations

from novalite_weigher_pack import PackWeigher

from novalite.scheduler import plugins
from novalite.scheduler.host_state import HostState, RequestSpec

SPEC = RequestSpec(instance_uuid="u", vcpus=1, memory_mb=512, disk_gb=1)


def host(name: str, used_vcpus: int, used_mb: int) -> HostState:
    state = HostState(name, vcpus=8, memory_mb=8192, local_gb=100)
    state.vcpus_used, state.memory_mb_used = used_vcpus, used_mb
    return state


def test_busier_hosts_weigh_more() -> None:
    weigher = PackWeigher({})
    empty, half, full = host("a", 0, 0), host("b", 4, 4096), host("c", 8, 8192)
    weights = [weigher.weigh(h, SPEC) for h in (empty, half, full)]
    assert weights == [0.0, 0.5, 1.0]
    assert weigher.multiplier == 1.0


def test_a_host_without_capacity_weighs_zero() -> None:
    assert PackWeigher({}).weigh(HostState("new"), SPEC) == 0.0


def test_novalite_finds_it_through_its_entry_point() -> None:
    assert plugins.load("weigher", "PackWeigher") is PackWeigher
    entry = plugins.discover("weigher")["PackWeigher"]
    assert (entry.distribution, entry.version) == ("novalite-weigher-pack", "0.1.0")
