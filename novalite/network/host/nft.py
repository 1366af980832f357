"""The nftables ruleset of one compute host's guest networks (pure rendering).

Everything lives in one table, ``ip novalite`` (the name is a parameter so tests
run side by side), replaced atomically on every change: the script first declares
and deletes the table, then writes it whole, in one ``nft -f`` transaction, so no
packet ever sees half a ruleset and nothing outside the table is touched.

Chains:

* ``postrouting`` (nat): guests' traffic leaving their network is masqueraded.
* ``prerouting`` (nat): a guest's TCP to 169.254.169.254:80 goes to its own
  metadata relay listener on the gateway address (one port per guest, chosen by
  the guest's source address).
* ``input`` / ``forward`` / ``output`` (filter): each port's traffic goes through
  its chains ``sg-out-<port8>`` (from the guest: its address must be its own, then
  the egress rules; returns when allowed) and ``sg-in-<port8>`` (to the guest:
  established/related, then the ingress rules; else drop); ``forward`` first drops
  whatever the host would route from one network's bridge to another's (networks are
  isolated from each other). Bridged guest-to-guest
  traffic reaches these hooks through br_netfilter (``bridge-nf-call-iptables``).
* table ``bridge novalite``: anti-spoofing per tap/veth (``spoof-<port8>``): frames
  from the device must carry the port's MAC, and its ARP and IPv4 the port's
  address (DHCP's 0.0.0.0 excepted). Because a device can only speak as its port,
  the IPv4 chains may tell ports apart by address.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

METADATA_ADDRESS = "169.254.169.254"


@dataclass(frozen=True)
class PortRules:
    """What the ruleset needs of one port."""

    port_id: str
    device: str
    bridge: str
    mac: str
    address: str
    cidr: str
    gateway: str
    rules: Sequence[Mapping[str, Any]] = ()
    #: The host TCP port of this guest's metadata relay on the gateway address.
    metadata_port: int | None = None


@dataclass(frozen=True)
class NetRules:
    bridge: str
    cidr: str
    gateway: str


@dataclass
class Ruleset:
    table: str
    networks: list[NetRules] = field(default_factory=list)
    ports: list[PortRules] = field(default_factory=list)


def short(port_id: str) -> str:
    return port_id.replace("-", "")[:8]


def _q(name: str) -> str:
    return json.dumps(name)  # a quoted nft string


def rule_match(rule: Mapping[str, Any]) -> str | None:
    """The nft match of one security group rule (without direction), or None when the
    rule can never match (another ethertype, no remote group member)."""
    if str(rule.get("ethertype") or "IPv4") != "IPv4":
        return None
    direction = rule.get("direction")
    remote_field = "saddr" if direction == "ingress" else "daddr"
    parts: list[str] = []
    prefix = rule.get("remote_ip_prefix")
    groups = rule.get("remote_group_addresses")
    if prefix:
        net = ipaddress.ip_network(str(prefix), strict=False)
        if net.prefixlen:
            parts.append(f"ip {remote_field} {net}")
    elif groups or rule.get("remote_group_id"):
        # A remote group: its members' addresses (none yet: the rule matches nothing).
        addresses = sorted({str(ipaddress.ip_address(a)) for a in groups or ()})
        if not addresses:
            return None
        parts.append(f"ip {remote_field} {{ {', '.join(addresses)} }}")
    proto = rule.get("protocol")
    if proto in (None, "", "any"):
        pass
    elif proto in ("tcp", "udp"):
        lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
        if lo is None and hi is None:
            parts.append(f"meta l4proto {proto}")
        else:
            lo = int(lo if lo is not None else hi)  # type: ignore[arg-type]
            hi = int(hi if hi is not None else lo)
            parts.append(f"{proto} dport {lo}" if lo == hi else f"{proto} dport {lo}-{hi}")
    elif proto == "icmp":
        parts.append("meta l4proto icmp")
        icmp_type = rule.get("port_range_min")
        if icmp_type is not None:
            parts.append(f"icmp type {int(icmp_type)}")
            if rule.get("port_range_max") is not None:
                parts.append(f"icmp code {int(rule['port_range_max'])}")
    else:
        try:
            parts.append(f"meta l4proto {int(proto)}")
        except (TypeError, ValueError):
            return None
    return " ".join(parts)


def _port_chains(p: PortRules) -> list[str]:
    s = short(p.port_id)
    out_rules = [m for r in p.rules if r.get("direction") == "egress"
                 if (m := rule_match(r)) is not None]
    in_rules = [m for r in p.rules if r.get("direction") == "ingress"
                if (m := rule_match(r)) is not None]
    lines = [f"  chain sg-out-{s} {{",
             f"    ip saddr != {p.address} drop",
             "    ct state established,related return",
             "    ct state invalid drop"]
    lines += [f"    {m} return" if m else "    return" for m in out_rules]
    lines += ["    drop", "  }",
              f"  chain sg-in-{s} {{",
              "    ct state established,related accept",
              f"    ip saddr {p.gateway} udp sport 67 udp dport 68 accept",
              "    ct state invalid drop"]
    lines += [f"    {m} accept" if m else "    accept" for m in in_rules]
    lines += ["    drop", "  }"]
    return lines


def render(rs: Ruleset) -> str:
    """The ``nft -f`` script that replaces tables ``ip <table>`` and ``bridge <table>``."""
    t = rs.table
    lines = [f"table ip {t}", f"delete table ip {t}",
             f"table bridge {t}", f"delete table bridge {t}"]
    if not rs.networks and not rs.ports:
        return "\n".join(lines) + "\n"
    lines.append(f"table ip {t} {{")
    for p in rs.ports:
        lines += _port_chains(p)
    lines += ["  chain prerouting {",
              "    type nat hook prerouting priority dstnat; policy accept;"]
    for p in rs.ports:
        if p.metadata_port:
            lines.append(f"    iifname {_q(p.bridge)} ip saddr {p.address} ip daddr "
                         f"{METADATA_ADDRESS} tcp dport 80 dnat to {p.gateway}:{p.metadata_port}")
    lines += ["  }", "  chain postrouting {",
              "    type nat hook postrouting priority srcnat; policy accept;"]
    for n in rs.networks:
        lines.append(f"    ip saddr {n.cidr} ip daddr != {n.cidr} oifname != {_q(n.bridge)} "
                     "masquerade")
    lines += ["  }", "  chain input {",
              "    type filter hook input priority filter; policy accept;"]
    for n in rs.networks:
        b = _q(n.bridge)
        # DHCP and DNS from dnsmasq on the gateway, whatever the egress rules say.
        lines.append(f"    iifname {b} udp dport {{ 53, 67 }} accept")
        lines.append(f"    iifname {b} tcp dport 53 ip daddr {n.gateway} accept")
    for p in rs.ports:
        s = short(p.port_id)
        if p.metadata_port:  # only its own guest reaches a metadata relay listener
            lines.append(f"    tcp dport {p.metadata_port} ip saddr != {p.address} drop")
            lines.append(f"    iifname {_q(p.bridge)} ip saddr {p.address} tcp dport "
                         f"{p.metadata_port} accept")
        lines.append(f"    iifname {_q(p.bridge)} ip saddr {p.address} jump sg-out-{s}")
    lines += ["  }", "  chain forward {",
              "    type filter hook forward priority filter; policy accept;"]
    # Networks are isolated: the host routes nothing from one of its bridges to another.
    bridges = sorted({n.bridge for n in rs.networks})
    for b in bridges:
        others = [_q(o) for o in bridges if o != b]
        if others:
            lines.append(f"    iifname {_q(b)} oifname {{ {', '.join(others)} }} drop")
    for p in rs.ports:
        lines.append(f"    ip saddr {p.address} iifname {_q(p.bridge)} jump sg-out-{short(p.port_id)}")
    for p in rs.ports:
        lines.append(f"    ip daddr {p.address} oifname {_q(p.bridge)} jump sg-in-{short(p.port_id)}")
    lines += ["  }", "  chain output {",
              "    type filter hook output priority filter; policy accept;"]
    for p in rs.ports:
        lines.append(f"    ip daddr {p.address} oifname {_q(p.bridge)} jump sg-in-{short(p.port_id)}")
    lines += ["  }", "}"]
    # Anti-spoofing on the bridge: a device speaks only as its port.
    lines.append(f"table bridge {t} {{")
    for p in rs.ports:
        s = short(p.port_id)
        lines += [f"  chain spoof-{s} {{",
                  f"    ether saddr != {p.mac} drop",
                  f"    arp saddr ether != {p.mac} drop",
                  f"    arp saddr ip != {{ 0.0.0.0, {p.address} }} drop",
                  "    ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",
                  f"    ip saddr != {p.address} drop",
                  "    ether type { ip, arp } return",
                  "    drop",
                  "  }"]
    lines += ["  chain prerouting {",
              "    type filter hook prerouting priority filter; policy accept;"]
    for p in rs.ports:
        lines.append(f"    iifname {_q(p.device)} jump spoof-{short(p.port_id)}")
    # A guest answers DHCP only from the host: no rogue DHCP servers.
    for p in rs.ports:
        lines.append(f"    iifname {_q(p.device)} udp sport 67 drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def render_port(table: str, port: PortRules) -> str:
    """The ``nft -f`` script that replaces one port's security group chains only (one
    transaction; the rest of the table is untouched)."""
    s = short(port.port_id)
    lines = [f"flush chain ip {table} sg-out-{s}", f"flush chain ip {table} sg-in-{s}",
             f"table ip {table} {{", *_port_chains(port), "}"]
    return "\n".join(lines) + "\n"


def tables_of(script: str) -> Iterable[str]:
    return [line for line in script.splitlines() if line.startswith("table ")]
