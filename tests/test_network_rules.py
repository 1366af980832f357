"""The nftables ruleset the compute host's network layer renders (no root needed)."""

from __future__ import annotations

from novalite.network.host import nft


def rule(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"direction": "ingress", "ethertype": "IPv4", "protocol": None,
                               "port_range_min": None, "port_range_max": None,
                               "remote_ip_prefix": None, "remote_group_addresses": []}
    return {**base, **kw}


def test_security_group_rules_become_matches() -> None:
    assert nft.rule_match(rule(protocol="tcp", port_range_min=22, port_range_max=22,
                               remote_ip_prefix="0.0.0.0/0")) == "tcp dport 22"
    assert nft.rule_match(rule(protocol="udp", port_range_min=1000, port_range_max=2000,
                               remote_ip_prefix="10.1.2.3/24")) == \
        "ip saddr 10.1.2.0/24 udp dport 1000-2000"
    assert nft.rule_match(rule(direction="egress", protocol="tcp",
                               remote_ip_prefix="192.0.2.0/24")) == \
        "ip daddr 192.0.2.0/24 meta l4proto tcp"
    assert nft.rule_match(rule(protocol="icmp", port_range_min=8)) == \
        "meta l4proto icmp icmp type 8"
    assert nft.rule_match(rule(remote_group_addresses=["10.0.0.4", "10.0.0.3"])) == \
        "ip saddr { 10.0.0.3, 10.0.0.4 }"
    assert nft.rule_match(rule()) == ""  # everything
    # Rules that can never match here: IPv6, a remote group without members.
    assert nft.rule_match(rule(ethertype="IPv6")) is None
    assert nft.rule_match(rule(remote_group_id="g1", remote_group_addresses=[])) is None


def test_the_ruleset_names_only_its_own_tables_and_devices() -> None:
    port = nft.PortRules("0123abcd-ffff", "nltap-0123abcd", "nlbr-99999999",
                         "fa:16:3e:00:00:05", "10.9.0.5", "10.9.0.0/24", "10.9.0.1",
                         [rule(protocol="tcp", port_range_min=80, port_range_max=80)], 40000)
    script = nft.render(nft.Ruleset("novalite", [nft.NetRules("nlbr-99999999", "10.9.0.0/24",
                                                              "10.9.0.1")], [port]))
    assert nft.tables_of(script) == [
        "table ip novalite", "table bridge novalite", "table ip novalite {",
        "table bridge novalite {"]
    assert [line for line in script.splitlines() if line.startswith("delete")] == [
        "delete table ip novalite", "delete table bridge novalite"]
    assert "chain sg-in-0123abcd" in script and "chain spoof-0123abcd" in script
    assert "tcp dport 80 accept" in script
    assert "ether saddr != fa:16:3e:00:00:05 drop" in script
    assert "dnat to 10.9.0.1:40000" in script
    assert "masquerade" in script
    # One network alone: nothing to isolate it from.
    assert " drop" not in script.split("chain forward {")[1].split("}")[0]
    # Two networks: the host routes nothing from one bridge to the other.
    two = nft.render(nft.Ruleset("novalite", [
        nft.NetRules("nlbr-99999999", "10.9.0.0/24", "10.9.0.1"),
        nft.NetRules("nlbr-88888888", "10.8.0.0/24", "10.8.0.1")], [port]))
    assert 'iifname "nlbr-99999999" oifname { "nlbr-88888888" } drop' in two
    assert 'iifname "nlbr-88888888" oifname { "nlbr-99999999" } drop' in two
    # No ports, no networks: the tables are only removed.
    empty = nft.render(nft.Ruleset("novalite"))
    assert "{" not in empty and "delete table ip novalite" in empty
